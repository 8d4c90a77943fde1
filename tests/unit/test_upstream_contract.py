"""The private parts of JupyterHub, KubeSpawner and NativeAuthenticator that dlhub uses,
each checked against the version pinned in pyproject.toml (see the comments where
hub_config uses them): an upgrade that changes one fails here, not in production."""

import asyncio
import importlib.metadata
import inspect
import stat
import tomllib
from pathlib import Path
from types import SimpleNamespace

from jupyterhub import proxy
from jupyterhub.handlers import login
from jupyterhub.spawner import Spawner
from kubespawner import KubeSpawner
from nativeauthenticator import handlers

from hub_config.proxy import ConfigurableHTTPProxy

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

#: the versions the private attributes below were checked against
CHECKED = {
    "jupyterhub": "6.1.1",
    "jupyterhub-kubespawner": "7.1.0",
    "dockerspawner": "14.0.0",
    "jupyterhub-nativeauthenticator": "1.3.0",
}


def pinned() -> dict[str, str]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pins = dict(d.split("==", 1) for d in deps if "==" in d)
    return {name: pins.get(name) for name in CHECKED}


def test_the_pins_are_the_versions_checked_and_installed():
    """Upgrading a pin means checking the private attributes below again (and the
    version named in the comments beside their use)."""
    assert pinned() == CHECKED
    installed = {name: importlib.metadata.version(name) for name in CHECKED}
    assert installed == CHECKED


def spawner(name=""):
    # the server's name comes from its database row, as JupyterHub's User sets it
    row = SimpleNamespace(name=name, server=None)
    return Spawner(user=SimpleNamespace(name="alice", id=1, url="/user/alice/"), orm_spawner=row)


def test_spawner_log_name_is_user_and_server():
    # hub_config.spawners, hub_config.gpu, hub_config.kubernetes log with it
    assert isinstance(inspect.getattr_static(Spawner, "_log_name"), property)
    assert spawner()._log_name == "alice"
    assert spawner("gpu")._log_name == "alice:gpu"


def test_spawner_pending_says_spawn_while_spawning():
    # GpuMixin._gpu_wait_over: the queue is shown for as long as this says "spawn"
    s = spawner()
    assert s.pending is None
    s._spawn_pending = True
    assert s.pending == "spawn"


def test_proxy_writes_its_pid_file_through_write_pid_file(tmp_path):
    # hub_config.proxy overrides it to write the file mode 0600
    assert "self._write_pid_file()" in inspect.getsource(proxy.ConfigurableHTTPProxy.start)
    assert list(inspect.signature(proxy.ConfigurableHTTPProxy._write_pid_file).parameters) == [
        "self"
    ]
    p = ConfigurableHTTPProxy(pid_file=str(tmp_path / "proxy.pid"))
    p.proxy_process = SimpleNamespace(pid=4242)
    p._write_pid_file()
    written = tmp_path / "proxy.pid"
    assert written.read_text() == "4242"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_login_handlers_render_the_page_through_render():
    # hub_config.login_checks.LoginChecks overrides _render(login_error, username)
    for cls in (login.LoginHandler, handlers.LoginHandler):
        params = list(inspect.signature(cls._render).parameters)
        assert params[:3] == ["self", "login_error", "username"], cls
    assert "self._render(" in inspect.getsource(handlers.LoginHandler.post)
    assert "self._render(" in inspect.getsource(login.LoginHandler.get)


def test_kubespawner_start_future_is_none_until_start(kubeconfig):
    # hub_config.kubernetes reads and resets _start_future (the pod's start, which
    # KubeSpawner.progress follows)
    async def made():
        user = SimpleNamespace(name="alice", id=1, url="/user/alice/", groups=[])
        return KubeSpawner(_mock=True, user=user, namespace="dlhub")

    assert asyncio.run(made())._start_future is None
    start = inspect.getsource(KubeSpawner.start)
    assert "self._start_future = asyncio.ensure_future(self._start())" in start
    assert "self._start_future" in inspect.getsource(KubeSpawner.progress)


def test_spawn_page_reads_query_options_through_get_user_options_and_sets_the_handler():
    """hub_config.spawn_limits.NoStartFromOtherSites: the spawn page's GET turns its query
    into user options with ``_get_user_options`` (empty: the form instead of a start) and
    hands itself to the spawner as ``spawner.handler`` before rendering the form."""
    from jupyterhub.handlers import pages

    source = inspect.getsource(pages.SpawnHandler._get)
    assert "user_options = self._get_user_options(query_options)" in source
    assert "if len(user_options) > 0:" in source
    assert source.index("spawner.handler = self") < source.index("get_options_form()")
    handler = SimpleNamespace(log=SimpleNamespace(warning=lambda *a: None))
    options = pages.SpawnHandler._get_user_options(handler, {"opt-profile": ["gpu"]})
    assert options == {"profile": ["gpu"]}
