"""What the kubelet and kube-proxy change on this machine, and how `stop` undoes it: mounts,
iptables chains (networking), cgroups and sysctls (see tools/kube_cluster.py)."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
from pathlib import Path

from kube_common import run


def mounts_under(root: Path) -> list[str]:
    """Mount points below `root` (deepest first)."""
    prefix = str(root) + "/"
    points = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        point = line.split()[4]
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point)
        if point.startswith(prefix) or point == str(root):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def jump_target(tokens: list[str]) -> str | None:
    for flag, value in zip(tokens, tokens[1:], strict=False):
        if flag in ("-j", "--jump", "-g", "--goto"):
            return value
    return None


def remove_kube_chains() -> int:
    """Remove the KUBE-* chains (and the jumps to them) of the kubelet and kube-proxy."""
    removed = 0
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool) or not shutil.which(f"{tool}-save"):
            continue
        for table in ("nat", "filter", "mangle"):
            dump = run([f"{tool}-save", "-t", table], check=False, capture_output=True, text=True)
            if dump.returncode != 0:
                continue
            chains = []
            for line in dump.stdout.splitlines():
                if line.startswith(":KUBE-"):
                    chains.append(line[1:].split()[0])
                elif line.startswith("-A ") and not line.split()[1].startswith("KUBE-"):
                    tokens = shlex.split(line)
                    if (jump_target(tokens) or "").startswith("KUBE-"):
                        run([tool, "-w", "-t", table, "-D", *tokens[1:]], check=False)
            for chain in chains:
                run([tool, "-w", "-t", table, "-F", chain], check=False, capture_output=True)
            for chain in chains:
                result = run(
                    [tool, "-w", "-t", table, "-X", chain], check=False, capture_output=True
                )
                removed += result.returncode == 0
    return removed


# Traffic to the service range that kube-proxy has not translated (a Service that is not
# yet, or no longer, in its rules) would leave through the default route, and something
# off this machine could answer. While the cluster runs it is rejected here instead: nat
# (kube-proxy's DNAT) runs before filter, so only untranslated packets still carry a
# service address when these rules see them.
REJECT_COMMENT = "dlhub: keep the test cluster's service range on this machine"


def _service_range_rule(cidr: str) -> list[str]:
    return [
        "-d",
        cidr,
        "-m",
        "comment",
        "--comment",
        REJECT_COMMENT,
        "-j",
        "REJECT",
        "--reject-with",
        "icmp-port-unreachable",
    ]


def reject_untranslated_service_traffic(cidr: str) -> None:
    """Reject locally (OUTPUT and FORWARD) what is sent to `cidr` without being translated."""
    for chain in ("OUTPUT", "FORWARD"):
        rule = _service_range_rule(cidr)
        present = run(["iptables", "-w", "-C", chain, *rule], check=False, capture_output=True)
        if present.returncode != 0:
            run(["iptables", "-w", "-I", chain, "1", *rule])


def remove_service_range_reject(cidr: str) -> int:
    """Remove the rules `reject_untranslated_service_traffic` added; how many were removed."""
    removed = 0
    if not shutil.which("iptables"):
        return 0
    for chain in ("OUTPUT", "FORWARD"):
        rule = _service_range_rule(cidr)
        while (
            run(
                ["iptables", "-w", "-D", chain, *rule], check=False, capture_output=True
            ).returncode
            == 0
        ):
            removed += 1
    return removed


def remove_kubepods_cgroups() -> tuple[int, int]:
    """rmdir the kubelet's cgroups (`kubepods` in each hierarchy); (removed, left) counts."""
    removed = left = 0
    roots = [p / "kubepods" for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir()]
    roots.append(Path("/sys/fs/cgroup/kubepods"))
    for root in roots:
        if not root.is_dir():
            continue
        for current, _dirs, _files in sorted(os.walk(root), key=lambda w: -len(w[0])):
            try:
                os.rmdir(current)
                removed += 1
            except OSError:
                left += 1
    return removed, left


# sysctls the kubelet and kube-proxy set; `start` saves them and `stop` puts them back
SYSCTLS = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
]


def read_sysctls() -> dict[str, str]:
    values = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            values[key] = (Path("/proc/sys") / key).read_text().strip()
    return values


def write_sysctls(values: dict[str, str]) -> None:
    for key, value in values.items():
        path = Path("/proc/sys") / key
        with contextlib.suppress(OSError):
            if path.read_text().strip() != value:
                path.write_text(value + "\n")
