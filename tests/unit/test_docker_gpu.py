"""The docker backend's words for a host whose engine cannot give containers GPUs."""

from hub_config.config import validate
from hub_config.docker_gpu import ENGINE_ERROR, missing_runtime, startup_warning

GPU = {"enabled": True, "inventory": "nvml"}
PROFILES = [{"name": "cpu", "default": True}, {"name": "t4", "gpus": 1}]


def cfg(**over):
    return validate({"backend": "docker", "gpus": GPU, "profiles": PROFILES, **over})


def test_a_gpu_profile_on_an_engine_without_the_nvidia_runtime_is_warned_about():
    warning = startup_warning(cfg(), {"runc", "io.containerd.runc.v2"})
    assert warning.startswith("dlhub: warning: the GPU profiles (t4) cannot start")
    assert "nvidia-ctk runtime configure --runtime=docker" in warning


def test_no_warning_with_the_runtime_without_gpu_profiles_or_off_docker():
    assert startup_warning(cfg(), {"runc", "nvidia"}) is None
    assert startup_warning(cfg(profiles=[{"name": "cpu"}]), {"runc"}) is None
    off = cfg(profiles=[{"name": "cpu"}], gpus={"enabled": False})
    assert startup_warning({**off, "profiles": PROFILES}, {"runc"}) is None
    local = validate({"gpus": GPU, "profiles": PROFILES})
    assert startup_warning(local, {"runc"}) is None


def test_the_engines_error_is_recognised():
    class APIError(Exception):
        explanation = f"{ENGINE_ERROR} with capabilities: [[gpu]]"

    assert missing_runtime(APIError("500 Server Error"))
    assert not missing_runtime(RuntimeError("no such image"))
