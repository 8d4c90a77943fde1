"""Each setting that can be wrong is refused when set, with a message naming it."""

import asyncio
from types import SimpleNamespace

import pytest
from traitlets import TraitError
from traitlets.config import Config

from hub_config.gpu import GpuMixin
from hub_config.login_checks import CredentialRules
from hub_config.spawners import DockerSpawner, LocalSpawner


def user():
    return SimpleNamespace(name="alice", id=1, url="/user/alice/", groups=[])


@pytest.mark.parametrize(
    ("trait", "value"),
    [
        ("gpu_max_wait", -1),
        ("gpu_poll_interval", 0),
        ("gpu_poll_interval", -0.5),
        ("gpu_scheduler_url", "127.0.0.1:8092"),
        ("gpu_public_prefix", "services/gpu-scheduler/"),
        ("gpu_public_prefix", "/services/gpu-scheduler"),
    ],
)
def test_gpu_settings_refuse_wrong_values(trait, value):
    with pytest.raises(TraitError, match=trait):
        GpuMixin(**{trait: value})


def test_gpu_settings_keep_right_values():
    gpu = GpuMixin(
        gpu_max_wait=0,
        gpu_poll_interval=0.2,
        gpu_scheduler_url="http://127.0.0.1:8092/",
        gpu_public_prefix="/dlhub/services/gpu-scheduler/",
    )
    assert (gpu.gpu_max_wait, gpu.gpu_poll_interval) == (0, 0.2)
    assert GpuMixin(gpu_scheduler_url="").gpu_scheduler_url == ""


@pytest.mark.parametrize("prefix", ["", "Dlhub-", "1x-", "a-very-long-prefix-", "dl_hub"])
def test_account_prefix_must_fit_account_names(prefix):
    config = Config({"LocalSpawner": {"account_prefix": prefix}})
    with pytest.raises(TraitError, match="account_prefix"):
        LocalSpawner(user=user(), config=config)


def test_account_prefix_keeps_a_valid_one():
    assert LocalSpawner(user=user(), account_prefix="lab-").account_prefix == "lab-"


@pytest.mark.parametrize(
    ("trait", "value"), [("cpu_limit", 0), ("cpu_limit", -1.0), ("mem_limit", 0)]
)
def test_profile_limits_must_be_positive(trait, value):
    spawner = LocalSpawner(user=user())
    with pytest.raises(TraitError, match=trait):
        setattr(spawner, trait, value)


def test_profile_limits_keep_positive_values_and_none():
    spawner = LocalSpawner(user=user())
    spawner.cpu_limit = 0.5
    spawner.mem_limit = "2G"
    assert (spawner.cpu_limit, spawner.mem_limit) == (0.5, 2 * 1024**3)
    spawner.cpu_limit = None
    assert spawner.cpu_limit is None


@pytest.mark.parametrize("owner", ["jovyan", "1000", "1000:", ":100", "jovyan:users", "-1:100"])
def test_volume_owner_is_numeric_uid_gid(owner):
    with pytest.raises(TraitError, match="volume_owner"):
        DockerSpawner(user=user(), volume_owner=owner)


@pytest.mark.parametrize(
    "trait",
    [
        "login_throttle_failures",
        "login_throttle_seconds",
        "signup_throttle_attempts",
        "max_pending_signups",
    ],
)
def test_throttle_counts_are_not_negative(trait):
    with pytest.raises(TraitError, match=trait):
        CredentialRules(**{trait: -1})
    assert getattr(CredentialRules(**{trait: 0}), trait) == 0


@pytest.fixture
def kube_spawner(kubeconfig):
    """A KubernetesSpawner made with settings (KubeSpawner makes its client on a loop)."""
    from hub_config.kubernetes import KubernetesSpawner

    def make(**settings):
        async def made():
            return KubernetesSpawner(_mock=True, user=user(), namespace="dlhub", **settings)

        return asyncio.run(made())

    return make


@pytest.mark.parametrize(
    ("trait", "value"),
    [
        ("guarantee_fraction", 0),
        ("guarantee_fraction", -0.25),
        ("guarantee_fraction", 1.5),
        ("release_fullname", "My-Hub"),
        ("release_fullname", "dlhub-"),
        ("release_fullname", "x" * 64),
        ("gpu_product_label", ""),
        ("gpu_product_label", "nvidia.com/"),
        ("gpu_product_label", "gpu product"),
    ],
)
def test_kubernetes_settings_refuse_wrong_values(kube_spawner, trait, value):
    with pytest.raises(TraitError, match=trait):
        kube_spawner(**{trait: value})


def test_kubernetes_settings_keep_right_values(kube_spawner):
    spawner = kube_spawner(
        guarantee_fraction=1, release_fullname="lab-dlhub", gpu_product_label="gpu.product"
    )
    assert (spawner.guarantee_fraction, spawner.release_fullname) == (1, "lab-dlhub")
    assert spawner.gpu_product_label == "gpu.product"
