"""The kubernetes backend: its traits from the config and the chart's environment
(hub_config.mapping.kubernetes_traits, hub_config.k8s_env), and the pod KubernetesSpawner
makes of them (no cluster needed: the API server is never contacted)."""

import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hub_config import mapping
from hub_config.config import validate
from hub_config.k8s_env import KubernetesEnvError, release_fullname

#: What helm/dlhub/templates/hub/deployment.yaml gives the hub (release "lab").
CHART_ENV = {
    "DLHUB_RELEASE": "lab",
    "DLHUB_RELEASE_FULLNAME": "lab-dlhub",
    "POD_NAMESPACE": "dlhub",
    "DLHUB_HUB_CONNECT_URL": "http://lab-dlhub-hub:8081",
    "DLHUB_PROXY_API_URL": "http://lab-dlhub-proxy-api:8001",
    "CONFIGPROXY_AUTH_TOKEN": "proxy-token",
    "DLHUB_GPU_SHARED_SECRET": "shared-secret",
}
GPU_ENV = {
    **CHART_ENV,
    "DLHUB_GPU_SCHEDULER_URL": "http://lab-dlhub-gpu-scheduler:8095",
    "DLHUB_GPU_SCHEDULER_TOKEN": "scheduler-token",
}
GPU_CONFIG = {
    "backend": "kubernetes",
    "gpus": {"enabled": True, "inventory": "kubernetes"},
    "profiles": [
        {"name": "cpu", "default": True},
        {"name": "t4", "gpus": 1, "image": "dlhub/singleuser-gpu:0.1.0"},
    ],
}


def all_traits(raw=None, environ=None):
    """Through mapping.traits_for, as the hub gets them."""
    cfg = validate({"backend": "kubernetes", **(raw or {})})
    env = CHART_ENV if environ is None else environ
    return mapping.traits_for(cfg, Path("/srv/dlhub"), python=sys.executable, environ=env)


def test_default_config_on_the_chart():
    t = all_traits()
    hub = t["JupyterHub"]
    assert hub["spawner_class"] == "hub_config.kubernetes.KubernetesSpawner"
    assert hub["hub_bind_url"] == "http://0.0.0.0:8081"
    assert hub["hub_connect_url"] == "http://lab-dlhub-hub:8081"
    assert hub["cleanup_servers"] is False
    assert t["ConfigurableHTTPProxy"]["should_start"] is False
    assert t["ConfigurableHTTPProxy"]["api_url"] == "http://lab-dlhub-proxy-api:8001"
    # no GPUs: the culler is the only service, and it is the hub's own
    assert [s["name"] for s in hub["services"]] == ["idle-culler"]

    s = t["KubernetesSpawner"]
    assert s["namespace"] == "dlhub"
    assert s["image"] == s["default_image"] == "dlhub/singleuser:0.1.0"
    assert s["image_pull_policy"] == "IfNotPresent"
    assert s["cmd"] == ["dlhub-start", "jupyterhub-singleuser"]
    assert (s["uid"], s["gid"], s["fs_gid"]) == (1000, 100, 100)
    assert s["allow_privilege_escalation"] is False
    assert s["container_security_context"]["capabilities"] == {"drop": ["ALL"]}
    assert s["container_security_context"]["runAsNonRoot"] is True
    assert s["automount_service_account_token"] is False
    assert s["service_account"] is None
    assert s["extra_labels"] == {"app.kubernetes.io/instance": "lab"}
    assert s["release_fullname"] == "lab-dlhub"
    assert s["storage_pvc_ensure"] is True
    assert s["storage_capacity"] == "10Gi"
    assert s["storage_class"] is None  # the cluster's default class
    assert s["storage_access_modes"] == ["ReadWriteOnce"]
    assert "{user_server}" in s["pod_name_template"]
    assert "{username}" in s["pvc_name_template"]  # one home for all of a user's servers
    assert s["volumes"] == [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    assert s["volume_mounts"] == [{"name": "home", "mountPath": "/home/jovyan"}]
    assert s["environment"] == {"NVIDIA_VISIBLE_DEVICES": "void"}
    assert s["start_timeout"] >= 600
    assert [p["name"] for p in s["profiles"]] == ["cpu"]
    assert t["GpuMixin"] == {}  # GPU scheduling off


def test_kubernetes_settings_pass_through():
    t = all_traits(
        {
            "kubernetes": {
                "image": "registry.example.org/dlhub/singleuser:0.1.0",
                "image_pull_policy": "Always",
                "home_size": "50Gi",
                "storage_class": "fast-ssd",
                "node_selector": {"pool": "users"},
                "gpu_product_label": "example.com/gpu-model",
            }
        }
    )
    s = t["KubernetesSpawner"]
    assert s["image"] == "registry.example.org/dlhub/singleuser:0.1.0"
    assert s["image_pull_policy"] == "Always"
    assert s["storage_capacity"] == "50Gi"
    assert s["storage_class"] == "fast-ssd"
    assert s["node_selector"] == {"pool": "users"}
    assert s["gpu_product_label"] == "example.com/gpu-model"


def test_gpus_use_the_charts_scheduler_as_an_external_service():
    t = all_traits(GPU_CONFIG, GPU_ENV)
    services = {s["name"]: s for s in t["JupyterHub"]["services"]}
    assert set(services) == {"idle-culler", "gpu-scheduler"}
    assert services["gpu-scheduler"] == {
        "name": "gpu-scheduler",
        "url": "http://lab-dlhub-gpu-scheduler:8095",
        "api_token": "scheduler-token",
        "display": True,
        "oauth_no_confirm": True,
    }
    # the hub does not start it: no command, no environment of a hub-managed service
    assert "command" not in services["gpu-scheduler"]
    assert services["idle-culler"]["command"][0] == sys.executable
    roles = {r["name"]: r for r in t["JupyterHub"]["load_roles"]}
    assert roles["gpu-scheduler"]["services"] == ["gpu-scheduler"]
    gpu = t["GpuMixin"]
    assert (
        gpu["gpu_scheduler_url"] == "http://lab-dlhub-gpu-scheduler:8095/services/gpu-scheduler/"
    )
    assert gpu["gpu_secret"] == "shared-secret"
    # the wait in the queue is part of the start
    assert t["KubernetesSpawner"]["start_timeout"] >= 600 + 3600
    assert [p["name"] for p in t["KubernetesSpawner"]["profiles"]] == ["cpu", "t4"]


def test_gpu_scheduler_url_follows_the_base_path():
    t = all_traits({**GPU_CONFIG, "hub": {"bind_url": "https://example.org/dlhub/"}}, GPU_ENV)
    assert t["GpuMixin"]["gpu_scheduler_url"] == (
        "http://lab-dlhub-gpu-scheduler:8095/dlhub/services/gpu-scheduler/"
    )


def test_culling_off_with_gpus_leaves_only_the_scheduler():
    t = all_traits({**GPU_CONFIG, "culling": {"enabled": False}}, GPU_ENV)
    assert [s["name"] for s in t["JupyterHub"]["services"]] == ["gpu-scheduler"]


@pytest.mark.parametrize(
    "missing, raw",
    [
        ("DLHUB_HUB_CONNECT_URL", None),
        ("DLHUB_GPU_SCHEDULER_URL", GPU_CONFIG),
        ("DLHUB_GPU_SCHEDULER_TOKEN", GPU_CONFIG),
        ("DLHUB_GPU_SHARED_SECRET", GPU_CONFIG),
    ],
)
def test_a_missing_variable_is_named_in_one_line(missing, raw):
    environ = {k: v for k, v in GPU_ENV.items() if k != missing}
    with pytest.raises(ValueError) as info:
        all_traits(raw, environ)
    message = str(info.value)
    assert missing in message and "\n" not in message
    assert isinstance(info.value, KubernetesEnvError)


def test_release_name_is_needed_without_the_fullname():
    environ = {k: v for k, v in CHART_ENV.items() if not k.startswith("DLHUB_RELEASE")}
    with pytest.raises(KubernetesEnvError, match="DLHUB_RELEASE"):
        all_traits(None, environ)
    environ["DLHUB_RELEASE"] = "lab"
    assert all_traits(None, environ)["KubernetesSpawner"]["release_fullname"] == "lab-dlhub"


def test_without_the_charts_proxy_the_hub_starts_its_own():
    environ = {k: v for k, v in CHART_ENV.items() if k != "DLHUB_PROXY_API_URL"}
    t = all_traits(None, environ)
    assert "should_start" not in t["ConfigurableHTTPProxy"]  # JupyterHub's default: True
    assert t["ConfigurableHTTPProxy"]["api_url"] == "http://127.0.0.1:8001"


@pytest.mark.parametrize("name", ["home-lab", "jupyter-x"])
def test_a_release_named_like_users_objects_is_refused(name):
    with pytest.raises(KubernetesEnvError, match="starts like the names of users"):
        release_fullname({"DLHUB_RELEASE_FULLNAME": name})


# --- the whole result, and the pod it makes ---------------------------------------------------

#: A GPU config on the chart: every trait traits_for sets, each decided in one place (the
#: kubernetes table of hub_config.mapping). The GPU scheduler is the chart's; the hub's own
#: secret file (gpu_secret) is not used on Kubernetes.
WHOLE_GPU_CONFIG = {
    **GPU_CONFIG,
    "hub": {"bind_url": "https://example.org/dlhub/"},
    "volumes": {"groups": [{"group": "ml-team"}]},
}
EXPECTED_GPU_TRAITS = {
    "JupyterHub": {
        "bind_url": "https://example.org/dlhub/",
        "hub_bind_url": "http://0.0.0.0:8081",
        "db_url": "sqlite:////srv/dlhub/jupyterhub.sqlite",
        "db_kwargs": {"connect_args": {"check_same_thread": False, "timeout": 30}},
        "concurrent_spawn_limit": 10,
        "active_server_limit": 0,
        "cookie_secret_file": "/srv/dlhub/jupyterhub_cookie_secret",
        "tornado_settings": {
            "cookie_options": {"samesite": "Lax", "secure": True},
            "headers": {},
        },
        "pid_file": "/srv/dlhub/jupyterhub.pid",
        "proxy_class": "hub_config.proxy.ConfigurableHTTPProxy",
        "log_level": "INFO",
        "authenticator_class": "hub_config.auth.DlhubAuthenticator",
        "spawner_class": "hub_config.kubernetes.KubernetesSpawner",
        "services": [
            {
                "name": "idle-culler",
                "command": [
                    "/env/bin/python",
                    "-m",
                    "jupyterhub_idle_culler",
                    "--timeout=3600",
                    "--cull-every=300",
                    "--max-age=0",
                ],
            },
            {
                "name": "gpu-scheduler",
                "url": "http://lab-dlhub-gpu-scheduler:8095",
                "api_token": "scheduler-token",
                "display": True,
                "oauth_no_confirm": True,
            },
        ],
        "load_roles": [
            {
                "name": "idle-culler",
                "description": "Stop idle servers (dlhub culling settings).",
                "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
                "services": ["idle-culler"],
            },
            {
                "name": "gpu-scheduler",
                "description": "The GPU scheduler: read groups and activity, "
                "see and stop servers.",
                "scopes": [
                    "list:users",
                    "read:users:groups",
                    "read:users:activity",
                    "read:servers",
                    "admin:server_state",
                    "delete:servers",
                ],
                "services": ["gpu-scheduler"],
            },
            {
                "name": "user",
                "description": "Every user: their own things, and the GPU scheduler's API.",
                "scopes": ["self", "access:services!service=gpu-scheduler"],
            },
        ],
        "allow_named_servers": False,
        "named_server_limit_per_user": 0,
        "template_paths": [str(mapping.TEMPLATES)],
        "hub_connect_url": "http://lab-dlhub-hub:8081",
        "cleanup_servers": False,
    },
    "ConfigurableHTTPProxy": {
        "api_url": "http://lab-dlhub-proxy-api:8001",
        "pid_file": "/srv/dlhub/jupyterhub-proxy.pid",
        "should_start": False,
    },
    "Authenticator": {"admin_users": {"admin"}, "allow_all": True},
    "DlhubAuthenticator": {
        "approve_known_users": True,
        "password_hash_threads": 4,
        "login_throttle_failures": 10,
        "login_throttle_seconds": 600,
        "signup_throttle_attempts": 10,
        "max_pending_signups": 500,
        "trusted_proxies": [],
        "first_admin_token_file": "/srv/dlhub/first-admin-token",
    },
    "NativeAuthenticator": {
        "open_signup": False,
        "minimum_password_length": 8,
        "check_common_password": True,
        "allowed_failed_logins": 5,
        "seconds_before_next_try": 60,
    },
    "Spawner": {
        "default_url": "/lab",
        "poll_interval": 5,
        "server_token_scopes": [
            "users:activity!user",
            "access:servers!server",
            "access:services!service=gpu-scheduler",
        ],
    },
    "GpuMixin": {
        "gpu_scheduler_url": "http://lab-dlhub-gpu-scheduler:8095/dlhub/services/gpu-scheduler/",
        "gpu_public_prefix": "/dlhub/services/gpu-scheduler/",
        "gpu_secret": "shared-secret",
        "gpu_max_wait": 3600.0,
    },
    "VolumesMixin": {
        "volumes_config": {
            "groups": [{"group": "ml-team", "mount": "", "others": "none", "source": ""}],
            "datasets": {"enabled": True, "mount": "datasets", "source": ""},
            "shared": {"enabled": True, "mount": "shared", "source": ""},
        }
    },
    "KubernetesSpawner": {
        "profiles": [
            {
                "name": "cpu",
                "default": True,
                "display_name": "",
                "description": "",
                "cpu_limit": 2,
                "mem_limit": "4G",
                "shm_size": None,
                "gpus": 0,
                "image": None,
                "gpu_idle_timeout": 1800,
                "max_lifetime": 0,
                "groups": [],
            },
            {
                "name": "t4",
                "gpus": 1,
                "image": "dlhub/singleuser-gpu:0.1.0",
                "display_name": "",
                "description": "",
                "cpu_limit": 2,
                "mem_limit": "4G",
                "shm_size": None,
                "gpu_idle_timeout": 1800,
                "max_lifetime": 0,
                "groups": [],
                "default": False,
            },
        ],
        "default_image": "dlhub/singleuser:0.1.0",
        "image": "dlhub/singleuser:0.1.0",
        "image_pull_policy": "IfNotPresent",
        "node_selector": {},
        "gpu_product_label": "nvidia.com/gpu.product",
        "release_fullname": "lab-dlhub",
        "cmd": ["dlhub-start", "jupyterhub-singleuser"],
        "start_timeout": 4200,
        "http_timeout": 120,
        "uid": 1000,
        "gid": 100,
        "fs_gid": 100,
        "allow_privilege_escalation": False,
        "container_security_context": {
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "service_account": None,
        "automount_service_account_token": False,
        "extra_labels": {"app.kubernetes.io/instance": "lab"},
        "pod_name_template": "jupyter-{user_server}",
        "pvc_name_template": "home-{username}",
        "storage_pvc_ensure": True,
        "storage_capacity": "10Gi",
        "storage_class": None,
        "storage_access_modes": ["ReadWriteOnce"],
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}],
        "volume_mounts": [{"name": "home", "mountPath": "/home/jovyan"}],
        "environment": {"NVIDIA_VISIBLE_DEVICES": "void"},
        "namespace": "dlhub",
    },
}


def test_the_whole_result_for_gpus_on_the_chart():
    cfg = validate(WHOLE_GPU_CONFIG)
    t = mapping.traits_for(
        cfg,
        Path("/srv/dlhub"),
        python="/env/bin/python",
        environ=GPU_ENV,
        gpu_secret="not-on-kubernetes",
    )
    assert t == EXPECTED_GPU_TRAITS
    # the start's timeout is the spawner's alone: the pod's start, then the GPU queue
    assert "start_timeout" not in t["GpuMixin"]


def gpu_pod(traits: dict, groups: list[str], devices: list[str]):
    """The spawner configured with ``traits`` as the hub configures it, and the pod it
    would ask for after choosing the profile "t4" and being leased ``devices`` (what
    start() does before it calls the API)."""
    from kubernetes_asyncio.client import ApiClient
    from traitlets.config import Config

    from hub_config.kubernetes import KubernetesSpawner

    async def made():
        c = Config()
        mapping.apply(c, traits)
        user = SimpleNamespace(
            name="alice",
            id=1,
            url="/user/alice/",
            groups=[SimpleNamespace(name=g) for g in groups],
        )
        spawner = KubernetesSpawner(_mock=True, user=user, config=c)
        spawner.api_token = "the-servers-token"
        spawner.apply_user_options(spawner, {"profile": "t4"})
        spawner.mount_volumes()
        spawner.assign_gpus(devices)
        pod = await spawner.get_pod_manifest()
        await spawner.api.api_client.close()  # nothing was sent
        return spawner, ApiClient().sanitize_for_serialization(pod)

    return asyncio.run(made())


def test_the_spawner_takes_the_mapped_traits_and_makes_the_pod(kubeconfig):
    cfg = validate(WHOLE_GPU_CONFIG)
    traits = mapping.traits_for(cfg, Path("/srv/dlhub"), python=sys.executable, environ=GPU_ENV)
    spawner, pod = gpu_pod(traits, ["ml-team"], ["node1/Tesla-T4/0"])
    # configured: the pod's start, then the wait in the GPU queue
    assert spawner.start_timeout == 600 + 3600
    assert spawner.gpu_scheduler_url == (
        "http://lab-dlhub-gpu-scheduler:8095/dlhub/services/gpu-scheduler/"
    )
    assert spawner.gpu_secret == "shared-secret"
    assert spawner.namespace == "dlhub"
    assert pod["metadata"]["name"] == "jupyter-alice"
    assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "lab"
    spec = pod["spec"]
    assert spec["nodeSelector"] == {
        "kubernetes.io/hostname": "node1",
        "nvidia.com/gpu.product": "Tesla-T4",
    }
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["fsGroup"] == 100
    (container,) = spec["containers"]
    assert container["image"] == "dlhub/singleuser-gpu:0.1.0"
    assert container["args"][:2] == ["dlhub-start", "jupyterhub-singleuser"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e for e in container["env"]}
    assert "NVIDIA_VISIBLE_DEVICES" not in env  # the device plugin says which GPU
    assert "secretKeyRef" in env["JUPYTERHUB_API_TOKEN"]["valueFrom"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in spec["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {
        "home-alice",
        "lab-dlhub-datasets",
        "lab-dlhub-shared",
        "lab-dlhub-group-ml-team",
    }
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]}
    assert mounts["/home/jovyan"] is False
    assert mounts["/home/jovyan/datasets"] is True
    assert mounts["/home/jovyan/groups/ml-team"] is False


def test_a_cpu_start_sees_no_gpu(kubeconfig):
    cfg = validate(WHOLE_GPU_CONFIG)
    traits = mapping.traits_for(cfg, Path("/srv/dlhub"), python=sys.executable, environ=GPU_ENV)
    _, pod = gpu_pod(traits, [], [])
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert not any(k.startswith("nvidia.com/") for k in container["resources"].get("limits", {}))
    assert "kubernetes.io/hostname" not in (pod["spec"].get("nodeSelector") or {})
