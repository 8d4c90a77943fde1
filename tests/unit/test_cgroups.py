"""cgroup limits of local servers: what is written where, and what the machine allows."""

from hub_config.cgroups import CPU_PERIOD, ServerCgroup, detect, limit_files

GIB = 1024**3


def test_v1_files():
    files = limit_files("v1", 4 * GIB, 0.5)
    assert files["memory"] == [
        ("memory.memsw.limit_in_bytes", "-1"),
        ("memory.limit_in_bytes", str(4 * GIB)),
        ("memory.memsw.limit_in_bytes", str(4 * GIB)),
    ]
    assert files["cpu"] == [("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000")]


def test_v2_files():
    assert limit_files("v2", GIB, 2) == {
        "": [("memory.max", str(GIB)), ("memory.swap.max", "0"), ("cpu.max", "200000 100000")]
    }


def test_no_limits():
    assert dict(limit_files("v2", None, None)[""])["cpu.max"] == f"max {CPU_PERIOD}"
    assert dict(limit_files("v2", 0, 0)[""])["memory.max"] == "max"
    v1 = limit_files("v1", 0, None)
    assert dict(v1["memory"])["memory.limit_in_bytes"] == "-1"
    assert dict(v1["cpu"])["cpu.cfs_quota_us"] == "-1"


def test_detect(tmp_path):
    assert detect(tmp_path, euid=1000).reason == "the hub does not run as root"
    assert detect(tmp_path, euid=0).version is None
    for controller in ("memory", "cpu"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "tasks").touch()
    assert detect(tmp_path, euid=0).version == "v1"
    assert (tmp_path / "memory" / "dlhub").is_dir() and (tmp_path / "cpu" / "dlhub").is_dir()
    (tmp_path / "cgroup.controllers").write_text("cpuset io\n")
    v2 = detect(tmp_path, euid=0)
    assert v2.version is None and "memory" in v2.reason
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert "cannot make cgroups" in detect(tmp_path, euid=0).reason
    (tmp_path / "cgroup.subtree_control").touch()
    (tmp_path / "dlhub").mkdir()
    (tmp_path / "dlhub" / "cgroup.subtree_control").write_text("memory cpu\n")
    assert detect(tmp_path, euid=0).version == "v2"
    # the controllers are turned on for the servers' groups
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +cpu"


def test_server_cgroup_paths(tmp_path):
    v1 = ServerCgroup("v1", "dlhub-alice", tmp_path)
    assert v1.dirs == {
        "memory": tmp_path / "memory/dlhub/dlhub-alice",
        "cpu": tmp_path / "cpu/dlhub/dlhub-alice",
    }
    assert ServerCgroup("v2", "dlhub-bob", tmp_path).dirs == {"": tmp_path / "dlhub/dlhub-bob"}
