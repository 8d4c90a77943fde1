"""The platform config mapped onto JupyterHub traits (pure, no hub)."""

from pathlib import Path

from traitlets.config import Config

from hub_config import mapping
from hub_config.config import validate

DATA = Path("/srv/dlhub")


def traits(raw=None, **kw):
    kw.setdefault("python", "/env/bin/python")
    return mapping.traits_for(validate(raw or {}), DATA, **kw)


def test_defaults():
    t = traits()
    hub = t["JupyterHub"]
    assert hub["bind_url"] == "http://127.0.0.1:8000"
    assert hub["hub_bind_url"] == "http://127.0.0.1:8081"
    assert hub["db_url"] == "sqlite:////srv/dlhub/jupyterhub.sqlite"
    assert hub["cookie_secret_file"] == "/srv/dlhub/jupyterhub_cookie_secret"
    assert hub["authenticator_class"] == "hub_config.auth.DlhubAuthenticator"
    assert hub["spawner_class"] == "hub_config.spawners.LocalSpawner"
    assert t["ConfigurableHTTPProxy"]["api_url"] == "http://127.0.0.1:8001"
    assert t["Authenticator"] == {"admin_users": {"admin"}, "allow_all": True}
    assert t["NativeAuthenticator"]["open_signup"] is False
    assert t["LocalSpawner"]["users_dir"] == "/srv/dlhub/users"


def test_postgres_db_url_passes_through():
    url = "postgresql://hub:pw@db:5432/hub"
    assert traits({"hub": {"db_url": url}})["JupyterHub"]["db_url"] == url


def test_culler_service_has_only_the_scopes_it_needs():
    t = traits({"culling": {"timeout": 600, "every": 60, "max_age": 86400}})
    (service,) = t["JupyterHub"]["services"]
    assert service["name"] == "idle-culler"
    assert service["command"] == [
        "/env/bin/python",
        "-m",
        "jupyterhub_idle_culler",
        "--timeout=600",
        "--cull-every=60",
        "--max-age=86400",
    ]
    assert "admin" not in service
    (role,) = t["JupyterHub"]["load_roles"]
    assert role["services"] == ["idle-culler"]
    assert sorted(role["scopes"]) == sorted(
        ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    )


def test_culling_disabled_means_no_service_and_no_role():
    t = traits({"culling": {"enabled": False}})
    assert t["JupyterHub"]["services"] == []
    assert t["JupyterHub"]["load_roles"] == []


def test_user_env_precedence():
    assert traits(hub_prefix="/hub")["LocalSpawner"]["user_env_prefix"] == "/hub"
    env = {"DLHUB_USER_ENV": "/from-env"}
    assert traits(environ=env, hub_prefix="/hub")["LocalSpawner"]["user_env_prefix"] == "/from-env"
    cfg = {"local": {"user_env": "/from-config"}}
    assert traits(cfg, environ=env)["LocalSpawner"]["user_env_prefix"] == "/from-config"


def test_profiles_passed_to_spawner():
    cfg = {"profiles": [{"name": "a", "mem_limit": "1G"}, {"name": "b", "default": True}]}
    names = [p["name"] for p in traits(cfg)["LocalSpawner"]["profiles"]]
    assert names == ["a", "b"]


def test_relative_data_dir_from_cwd(tmp_path):
    cfg = validate({"hub": {"data_dir": "state"}})
    assert mapping.resolve_data_dir(cfg, tmp_path) == tmp_path / "state"
    cfg = validate({"hub": {"data_dir": "/abs/dir"}})
    assert mapping.resolve_data_dir(cfg, tmp_path) == Path("/abs/dir")


def test_apply_sets_traits_on_config():
    c = Config()
    mapping.apply(c, traits({"hub": {"bind_url": "http://0.0.0.0:9000"}}))
    assert c.JupyterHub.bind_url == "http://0.0.0.0:9000"
    assert c.NativeAuthenticator.minimum_password_length == 8
    assert c.LocalSpawner.profiles[0]["name"] == "cpu"


def test_docker_backend():
    cfg = {
        "backend": "docker",
        "hub": {"hub_port": 9081, "poll_interval": 5},
        "docker": {"network": "team", "image": "dlhub/singleuser:1"},
        "profiles": [{"name": "a"}, {"name": "b", "image": "dlhub/singleuser-gpu:1"}],
    }
    t = traits(cfg, docker_gateway="172.30.0.1")
    hub = t["JupyterHub"]
    assert hub["spawner_class"] == "hub_config.spawners.DockerSpawner"
    assert hub["hub_bind_url"] == "http://172.30.0.1:9081"
    assert hub["cleanup_servers"] is False
    assert hub["bind_url"] == "http://127.0.0.1:8000"  # the rest of the section is kept
    spawner = t["DockerSpawner"]
    assert spawner["network_name"] == "team"
    assert spawner["use_internal_ip"] is True
    assert spawner["default_image"] == "dlhub/singleuser:1"
    assert spawner["home_volumes"] == {"dlhub-home-{username}": "/home/jovyan"}
    assert "name_template" not in spawner and spawner["prefix"] == "dlhub"  # per server
    assert [p["image"] for p in spawner["profiles"]] == [None, "dlhub/singleuser-gpu:1"]
    assert t["Spawner"]["poll_interval"] == 5
    assert "LocalSpawner" not in t


def test_docker_backend_needs_a_gateway():
    import pytest

    with pytest.raises(ValueError):
        traits({"backend": "docker"})


def test_gpu_scheduler_service_and_roles():
    cfg = {
        "gpus": {
            "enabled": True,
            "devices": [{"uuid": "GPU-0", "model": "A100"}],
            "port": 9095,
        }
    }
    t = traits(cfg, environ={"DLHUB_CONFIG": "/etc/dlhub.yaml"}, gpu_secret="s3cret")
    services = {s["name"]: s for s in t["JupyterHub"]["services"]}
    gpu = services["gpu-scheduler"]
    assert gpu["url"] == "http://127.0.0.1:9095"
    assert gpu["command"] == ["/env/bin/python", "-m", "gpu_scheduler"]
    assert gpu["environment"] == {
        "DLHUB_GPU_DB_URL": "sqlite:////srv/dlhub/gpu-scheduler.sqlite",
        "DLHUB_GPU_SHARED_SECRET": "s3cret",
        "DLHUB_CONFIG": "/etc/dlhub.yaml",
    }
    assert t["GpuMixin"] == {
        "gpu_scheduler_url": "http://127.0.0.1:9095/services/gpu-scheduler/",
        "gpu_public_prefix": "/services/gpu-scheduler/",
        "gpu_secret": "s3cret",
        "gpu_max_wait": 3600.0,
    }
    # the wait in the queue is part of the start; the backend's table decides it
    assert t["LocalSpawner"]["start_timeout"] == 3900
    roles = {r["name"]: r for r in t["JupyterHub"]["load_roles"]}
    assert sorted(roles["gpu-scheduler"]["scopes"]) == sorted(
        [
            "list:users",
            "read:users:groups",
            "read:users:activity",
            "read:servers",
            "admin:server_state",
            "delete:servers",
        ]
    )
    assert roles["user"]["scopes"] == ["self", "access:services!service=gpu-scheduler"]


def test_gpu_scheduler_off_by_default():
    t = traits()
    assert [s["name"] for s in t["JupyterHub"]["services"]] == ["idle-culler"]
    assert t["GpuMixin"] == {}
    assert "start_timeout" not in t["LocalSpawner"]  # JupyterHub's own


def test_docker_gpu_scheduler_listens_on_the_gateway():
    cfg = {
        "backend": "docker",
        "hub": {"bind_url": "http://0.0.0.0:8000/lab/"},
        "gpus": {"enabled": True, "devices": [{"uuid": "GPU-0", "model": "A100"}]},
    }
    t = traits(cfg, docker_gateway="172.30.0.1", gpu_secret="s3cret")
    services = {s["name"]: s for s in t["JupyterHub"]["services"]}
    assert services["gpu-scheduler"]["url"] == "http://172.30.0.1:8095"
    assert services["gpu-scheduler"]["environment"]["DLHUB_GPU_SHARED_SECRET"] == "s3cret"
    assert t["GpuMixin"] == {
        "gpu_scheduler_url": "http://172.30.0.1:8095/lab/services/gpu-scheduler/",
        "gpu_public_prefix": "/lab/services/gpu-scheduler/",
        "gpu_secret": "s3cret",
        "gpu_max_wait": 3600.0,
    }
    assert t["DockerSpawner"]["start_timeout"] == 3900
    assert t["Spawner"]["server_token_scopes"] == mapping.SERVER_TOKEN_SCOPES


def test_every_backend_gets_the_same_sections_everywhere_else():
    """One table per backend: the sections they share are filled by one function, and
    only what the backend decides differs."""
    shared = traits()
    for backend, kw in [
        ("docker", {"docker_gateway": "172.30.0.1"}),
        ("kubernetes", {"environ": {"DLHUB_RELEASE": "lab", "DLHUB_HUB_CONNECT_URL": "http://h"}}),
    ]:
        t = traits({"backend": backend}, **kw)
        for section in ("Authenticator", "DlhubAuthenticator", "NativeAuthenticator"):
            assert t[section] == shared[section], (backend, section)
        # the servers' check interval is the backend's (mapping.POLL_INTERVAL)
        unpolled = {**t["Spawner"], "poll_interval": None}
        assert unpolled == {**shared["Spawner"], "poll_interval": None}, backend
        decided = {"hub_bind_url", "spawner_class", "cleanup_servers", "hub_connect_url"}
        for key in set(shared["JupyterHub"]) - decided:
            assert t["JupyterHub"][key] == shared["JupyterHub"][key], (backend, key)


def test_a_value_set_twice_is_refused():
    import pytest

    assert mapping.merged({"A": {"x": 1}}, {"A": {"y": 2}, "B": {}}) == {
        "A": {"x": 1, "y": 2},
        "B": {},
    }
    with pytest.raises(RuntimeError, match="A: x decided twice"):
        mapping.merged({"A": {"x": 1}}, {"A": {"x": 2}})


def test_local_dirs_as_root_are_outside_the_data_dir():
    local = traits(as_root=True)["LocalSpawner"]
    assert (local["users_dir"], local["volumes_dir"]) == ("/home", "/srv/dlhub/volumes")
    assert local["account_prefix"] == "dlhub-"
    local = traits()["LocalSpawner"]
    assert (local["users_dir"], local["volumes_dir"]) == (
        "/srv/dlhub/users",
        "/srv/dlhub/volumes",
    )
    chosen = {"users_dir": "/data/homes", "volumes_dir": "/data/vol", "account_prefix": "jh-"}
    for as_root in (True, False):
        local = traits({"local": chosen}, as_root=as_root)["LocalSpawner"]
        assert (local["users_dir"], local["volumes_dir"], local["account_prefix"]) == (
            "/data/homes",
            "/data/vol",
            "jh-",
        )
