"""A local server's PATH and Python variables (hub_config.server_env): the user
environment first, the user's ~/.local/bin next, never the hub's environment."""

from __future__ import annotations

import os
import sys

from hub_config import server_env


def test_user_env_then_local_bin_then_the_system_without_the_hubs_venv(tmp_path):
    other_venv = tmp_path / "other"
    (other_venv / "bin").mkdir(parents=True)
    (other_venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    hub_bin = os.path.dirname(sys.executable)
    inherited = os.pathsep.join(
        [str(tmp_path / "node_modules/.bin"), hub_bin, str(other_venv / "bin"), "/usr/bin", "/bin"]
    )
    path = server_env.server_path("/opt/dlhub/user-env", "/home/alice", inherited).split(":")
    assert path == [
        "/opt/dlhub/user-env/bin",
        "/home/alice/.local/bin",
        str(tmp_path / "node_modules/.bin"),
        "/usr/bin",
        "/bin",
    ]


def test_an_account_of_its_own_gets_the_system_path():
    path = server_env.server_path("/opt/u", "/srv/h", None)
    assert path == "/opt/u/bin:/srv/h/.local/bin:" + server_env.SYSTEM_PATH


def test_the_hubs_python_variables_stay_behind_and_tf_is_quiet():
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin",
        "PYTHONPATH": "/hub/src",
        "PYTHONHOME": "/hub",
        "VIRTUAL_ENV": sys.prefix,
    }
    out = server_env.server_env(env, user_env_prefix="/opt/u", home="/h", own_account=False)
    assert out["PATH"] == "/opt/u/bin:/h/.local/bin:/usr/bin"
    assert out["VIRTUAL_ENV"] == "/opt/u"
    assert "PYTHONPATH" not in out and "PYTHONHOME" not in out
    assert out["TF_CPP_MIN_LOG_LEVEL"] == "2"
    # an operator's own setting (Spawner.environment) wins
    env = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    assert (
        server_env.server_env(env, user_env_prefix="/u", home="/h", own_account=True)[
            "TF_CPP_MIN_LOG_LEVEL"
        ]
        == "0"
    )
