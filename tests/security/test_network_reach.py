"""Checklist item 9: what a user's server can reach.

Code in alice's kernel (as anything she runs) tries the proxy's API, bob's server, the
GPU scheduler's hub-only endpoints and the hub's files. On docker: the proxy's API and
the hub's public port (both on the host's 127.0.0.1) are closed from the container, bob's
container is closed (inter-container traffic off), the hub's API is open (the control);
no other service of the host is open (a listener on all addresses is refused on every
address of the host while the hub's API and the scheduler's port answer), the cloud
metadata address 169.254.169.254 is refused by the hub's rule, the scheduler answers its
hub-only endpoints with 403 without the hub's secret, and no hub file is in the
container. On local: the proxy's API answers 403 without its token, the scheduler's
hub-only endpoints 403 without the secret, and the server's environment holds neither
(that the hub's files are out of reach of a local user's account is
tests/security/test_local_isolation.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from securitykit import BACKENDS, NET_PROBE, container, gateway

from gputest import gpu_hub_config
from hub_config import host_rules
from hub_config.docker_network import bridge_name
from hub_config.host_firewall import close_host, forget_removed_networks
from hubtest import free_port, run_ok, start_server, stop_server, token_api

pytestmark = pytest.mark.integration

HUB_ONLY = [
    ("POST", "api/hub/requests"),
    ("GET", "api/hub/capacity?user=alice"),
    ("GET", "api/hub/requests/any"),
    ("DELETE", "api/hub/servers/bob/"),
]


@pytest.fixture(scope="module", params=BACKENDS)
def hub(request, hubs):
    config = gpu_hub_config([{"name": "cpu", "default": True}], count=1)
    hub = hubs.start(request.param, config, name="reach")
    yield hub
    hubs.stop(hub)


@pytest.fixture(scope="module")
def tokens(hub):
    admin = hub.admin()
    out = {name: hub.approved_user(admin, name).new_token("reach") for name in ("alice", "bob")}
    for name, token in out.items():
        start_server(hub.url, token, name)
    yield out
    for name, token in out.items():
        stop_server(hub.url, token, name)


def probe(hub, tokens, code: str) -> list[str]:
    return run_ok(hub.url, tokens["alice"], "alice", NET_PROBE + code).split()


def host_address(hub, request) -> str:
    """Where the host is, seen from alice's server."""
    if hub.backend == "docker":
        return gateway(request.getfixturevalue("engine"), hub)
    return "127.0.0.1"


def test_the_servers_environment_holds_no_hub_secret(hub, tokens):
    names = probe(hub, tokens, "import os; print(*sorted(os.environ))")
    for secret in ("CONFIGPROXY_AUTH_TOKEN", "DLHUB_GPU_SHARED_SECRET", "JUPYTERHUB_CRYPT_KEY"):
        assert secret not in names


def test_the_proxy_api_is_out_of_reach(hub, tokens, request):
    port = hub.config["hub"]["proxy_api_port"]
    host = host_address(hub, request)
    if hub.backend == "docker":
        # the proxy's API and the hub's public port listen on the host's 127.0.0.1
        public = hub.port
        out = probe(
            hub,
            tokens,
            f"print(reach('{host}', {port}), reach('127.0.0.1', {port}), "
            f"reach('{host}', {public}))",
        )
        assert out == ["closed", "closed", "closed"]
    else:
        # it answers, but not without its token
        out = probe(
            hub,
            tokens,
            f"print(get('http://{host}:{port}/api/routes'), "
            f"get('http://{host}:{port}/api/routes/user/alice', method='DELETE'))",
        )
        assert out == ["403", "403"]
    # the routes are unchanged
    r = token_api(hub.url, tokens["alice"], "GET", "/user/alice/api/status")
    assert r.status_code == 200


def test_other_users_servers_are_out_of_reach(hub, tokens, request):
    if hub.backend == "docker":
        engine = request.getfixturevalue("engine")
        net = hub.names["network"]
        bob_ip = container(engine, hub, "bob").attrs["NetworkSettings"]["Networks"][net][
            "IPAddress"
        ]
        hub_port = hub.config["hub"]["hub_port"]
        out = probe(
            hub,
            tokens,
            f"print(reach('{bob_ip}', 8888), reach('{gateway(engine, hub)}', {hub_port}))",
        )
        # bob's server is closed; the hub's API (the control) is open
        assert out == ["closed", "open"]
    else:
        # local servers listen on the host's 127.0.0.1: bob's port is open, but his
        # server lets in nothing without his token
        port = run_ok(
            hub.url,
            tokens["bob"],
            "bob",
            "import os, urllib.parse\n"
            "print(urllib.parse.urlparse(os.environ['JUPYTERHUB_SERVICE_URL']).port)",
        )
        url = f"http://127.0.0.1:{port}/user/bob/api/contents"
        code = (
            "import os\n"
            f"print(get('{url}'), get('{url}', "
            "{'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}))"
        )
        assert probe(hub, tokens, code) == ["403", "403"]


def test_the_schedulers_hub_only_endpoints_need_the_secret(hub, tokens, request):
    host = host_address(hub, request)
    port = hub.config["gpus"]["port"]
    base = f"http://{host}:{port}/services/gpu-scheduler/"
    calls = ", ".join(
        f"get('{base}{path}', {headers}, method='{method}')"
        for method, path in HUB_ONLY
        for headers in (
            "{}",
            "{'Authorization': 'dlhub-hub wrong'}",
            "{'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}",
        )
    )
    out = probe(hub, tokens, f"import os\nprint({calls})")
    assert out == ["403"] * (3 * len(HUB_ONLY)), out


def test_the_hubs_files_are_not_in_the_container(hub, tokens, request):
    if hub.backend != "docker":
        pytest.skip("local: tests/security/test_local_isolation.py (the accounts' reach)")
    engine = request.getfixturevalue("engine")
    mounts = container(engine, hub, "alice").attrs["Mounts"]
    data_dir = str(hub.data_dir)
    assert [m for m in mounts if m["Type"] == "bind" or data_dir in m.get("Source", "")] == []
    code = (
        "import os\n"
        "found = [os.path.join(d, f) for top in ('/etc', '/home', '/opt', '/srv', '/tmp', '/var',"
        " '/run', '/mnt') for d, _, files in os.walk(top) for f in files"
        " if f in ('jupyterhub.sqlite', 'jupyterhub_cookie_secret', 'gpu-scheduler-secret',"
        " 'gpu-scheduler.sqlite')]\n"
        "print(len(found), *found)"
    )
    assert probe(hub, tokens, code) == ["0"]


#: Python run in a user's kernel: why(host, port) -> "open", "refused", "timeout" or errno
WHY_PROBE = """
import errno, socket
def why(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, "error")
"""

#: a throwaway service of the host, listening on all addresses (as sshd or a database)
LISTENER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
while True:
    s.accept()[0].close()
"""


def docker_only(hub) -> None:
    if hub.backend != "docker":
        pytest.skip("docker: the host's rules for the user network (local servers run on it)")


def host_addresses() -> list[str]:
    """The host's IPv4 addresses other than loopback."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    found = [line.split()[3].split("/")[0] for line in out.stdout.splitlines()]
    return [a for a in found if not a.startswith("127.")]


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def host_service():
    """The port of a listener on 0.0.0.0 of the host; stopped (by its pid) afterwards."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", LISTENER, str(port)])
    try:
        deadline = time.monotonic() + 10
        while not answers("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, "listener did not start"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def dlhub_rules(chain: str, bridge: str, counters: bool = False) -> list:
    args = ["iptables", "-w", *(["-v"] if counters else []), "-S", chain]
    listing = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [r for r in host_rules.parse_listing(listing) if host_rules.tagged_bridge(r) == bridge]


def test_host_services_are_out_of_reach_but_the_hub_and_scheduler_answer(
    hub, tokens, request, host_service
):
    docker_only(hub)
    host = gateway(request.getfixturevalue("engine"), hub)
    addresses = [host] + [a for a in host_addresses() if a != host]
    # the control: the service answers on every address of the host, from the host
    assert all(answers(a, host_service) for a in addresses)
    hub_port, gpu_port = hub.config["hub"]["hub_port"], hub.config["gpus"]["port"]
    targets = [(a, host_service) for a in addresses] + [(host, hub_port), (host, gpu_port)]
    calls = ", ".join(f"why('{a}', {p})" for a, p in targets)
    out = run_ok(hub.url, tokens["alice"], "alice", f"{WHY_PROBE}\nprint({calls})").split()
    assert out == ["refused"] * len(addresses) + ["open", "open"], (targets, out)


def test_the_cloud_metadata_address_is_refused_the_internet_is_not(hub, tokens, request):
    docker_only(hub)
    bridge = bridge_name(hub.names["network"], request.getfixturevalue("engine"))

    def refused_packets() -> int:
        # the packets the link-local TCP rule refused (-c packets bytes)
        rules = dlhub_rules("DOCKER-USER", bridge, counters=True)
        rule = next(r for r in rules if "169.254.0.0/16" in r.args and "tcp" in r.args)
        return int(rule.args[rule.args.index("-c") + 1])

    before = refused_packets()
    code = (
        f"{WHY_PROBE}\nprint(why('169.254.169.254', 80), why('169.254.1.1', 443), "
        "why('203.0.113.7', 80))"
    )
    out = run_ok(hub.url, tokens["alice"], "alice", code).split()
    # refused at once (a reset from the hub's rule), not left to time out somewhere
    assert out[:2] == ["refused", "refused"]
    assert refused_packets() >= before + 2
    # an address beyond the host (the internet) is not refused by the rules: whether it
    # answers depends on the network the host is in
    assert out[2] != "refused", out


def test_the_hosts_rules_are_installed_once_and_stale_ones_go(hub, request):
    docker_only(hub)
    engine = request.getfixturevalue("engine")
    network = hub.names["network"]
    bridge = bridge_name(network, engine)
    ports = [hub.config["hub"]["hub_port"], hub.config["gpus"]["port"]]
    wanted = host_rules.wanted_rules(bridge, network, gateway(engine, hub), ports)
    # the hub's start installed them (the ones of this network, each once)
    installed = dlhub_rules("INPUT", bridge) + dlhub_rules("DOCKER-USER", bridge)
    assert installed == wanted
    # rules of a network that is gone (no such interface) go at the next start
    gone = "br-dlhubgone0"
    stale = ["INPUT", "-i", gone, "-m", "comment", "--comment", f"dlhub:{gone}:gone", "-j", "DROP"]
    subprocess.run(["iptables", "-w", "-I", *stale], check=True)
    try:
        assert len(dlhub_rules("INPUT", gone)) == 1
        assert close_host(network, bridge, gateway(engine, hub), ports) is None
        assert dlhub_rules("INPUT", gone) == []
        # and when a network is removed (as the test fixtures do), the live ones stay
        subprocess.run(["iptables", "-w", "-I", *stale], check=True)
        forget_removed_networks()
        assert dlhub_rules("INPUT", gone) == []
        # a second start changes nothing
        assert close_host(network, bridge, gateway(engine, hub), ports) is None
        assert dlhub_rules("INPUT", bridge) + dlhub_rules("DOCKER-USER", bridge) == wanted
    finally:
        subprocess.run(["iptables", "-w", "-D", *stale], capture_output=True)


def test_without_iptables_the_start_says_so_in_one_line(tmp_path):
    code = (
        "from hub_config.host_firewall import close_host, forget_removed_networks\n"
        "print(close_host('dlhub-none', 'br-dlhubnone', '172.31.0.1', [8081]))"
    )
    env = {**os.environ, "PATH": str(tmp_path)}  # no iptables on this PATH
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert len(out.splitlines()) == 1
    if os.geteuid() == 0:
        assert out.startswith("dlhub: warning: iptables is not installed, so user containers")
    else:
        assert out.startswith("dlhub: warning: the hub does not run as root, so user containers")
    assert "169.254.169.254" in out and "docs/docker.md" in out
