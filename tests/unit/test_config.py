"""Loading and validating the platform config: defaults, and one test per kind of bad input."""

import os

import pytest
import yaml

from hub_config.config import ConfigError, load_platform_config, schema, validate


def write(tmp_path, text, name="dlhub.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(path) -> str:
    with pytest.raises(ConfigError) as info:
        load_platform_config(path)
    return str(info.value)


def test_builtin_defaults(monkeypatch):
    monkeypatch.delenv("DLHUB_CONFIG", raising=False)
    cfg = load_platform_config()
    assert cfg["backend"] == "local"
    assert cfg["hub"]["bind_url"] == "http://127.0.0.1:8000"
    assert cfg["hub"]["db_url"] is None
    assert cfg["auth"]["admin_users"] == ["admin"]
    assert [p["name"] for p in cfg["profiles"]] == ["cpu"]
    assert cfg["culling"] == {"enabled": True, "timeout": 3600, "every": 300, "max_age": 0}


def test_empty_file_is_defaults(tmp_path):
    assert load_platform_config(write(tmp_path, "")) == validate({})


def test_env_var_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, "hub:\n  bind_url: http://0.0.0.0:9000\n")
    monkeypatch.setenv("DLHUB_CONFIG", str(path))
    assert load_platform_config()["hub"]["bind_url"] == "http://0.0.0.0:9000"


def test_partial_profile_gets_defaults(tmp_path):
    cfg = load_platform_config(write(tmp_path, "profiles:\n  - name: small\n    mem_limit: 1G\n"))
    assert cfg["profiles"] == [
        {
            "name": "small",
            "mem_limit": "1G",
            "shm_size": None,
            "display_name": "",
            "description": "",
            "cpu_limit": 2,
            "gpus": 0,
            "gpu_idle_timeout": 1800,
            "max_lifetime": 0,
            "image": None,
            "groups": [],
            "default": False,
        }
    ]


def test_postgres_url_accepted(tmp_path):
    url = "postgresql://hub:secret@127.0.0.1:5432/hub"
    cfg = load_platform_config(write(tmp_path, f"hub:\n  db_url: {url}\n"))
    assert cfg["hub"]["db_url"] == url


def test_every_key_has_description_type_and_default():
    def walk(node, path):
        required = set(node.get("required", []))
        for name, sub in node.get("properties", {}).items():
            key = f"{path}.{name}" if path else name
            for field in ("description", "type"):
                assert field in sub, f"{key} has no {field}"
            assert ("default" in sub) != (name in required), f"{key}: a default or required"
            walk(sub, key)
            if isinstance(sub.get("items"), dict):
                walk(sub["items"], key + "[]")

    walk(schema(), "")


def test_schema_defaults_are_valid():
    # the defaults written in the schema pass the schema (and the extra rules)
    cfg = validate({})
    assert validate(cfg) == cfg


# --- bad input: one message naming the file, the key path and what is allowed ----------


def test_unknown_key(tmp_path):
    path = write(tmp_path, "hub:\n  bind_ulr: http://x:1\n")
    msg = load_error(path)
    assert msg == (
        f"invalid dlhub config {path}: hub.bind_ulr: unknown key; allowed keys here: "
        "active_server_limit, bind_url, concurrent_spawn_limit, data_dir, db_url, hub_port, "
        "log_level, poll_interval, proxy_api_port, tls"
    )


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, "gpu: 2\n")
    msg = load_error(path)
    assert msg.startswith(f"invalid dlhub config {path}: gpu: unknown key; allowed keys here:")
    assert "backend" in msg and "profiles" in msg


def test_wrong_type(tmp_path):
    path = write(tmp_path, "hub:\n  hub_port: eighty\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: hub.hub_port: expected an integer, got 'eighty'"
    )


def test_wrong_type_in_list_item(tmp_path):
    path = write(tmp_path, "profiles:\n  - name: a\n    cpu_limit: lots\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: profiles[0].cpu_limit: expected a number, got 'lots'"
    )


def test_out_of_range(tmp_path):
    path = write(tmp_path, "hub:\n  hub_port: 70000\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: hub.hub_port: must be at most 65535, got 70000"
    )


def test_below_minimum(tmp_path):
    path = write(tmp_path, "culling:\n  timeout: 1\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: culling.timeout: must be at least 5, got 1"
    )


def test_zero_cpu_limit(tmp_path):
    path = write(tmp_path, "profiles:\n  - name: a\n    cpu_limit: 0\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: profiles[0].cpu_limit: must be greater than 0, got 0"
    )


def test_bad_enum(tmp_path):
    path = write(tmp_path, "backend: slurm\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: backend: must be one of local, docker, kubernetes, "
        "got 'slurm'"
    )


def test_kubernetes_inventory_needs_the_kubernetes_backend(tmp_path):
    path = write(tmp_path, "gpus:\n  enabled: true\n  inventory: kubernetes\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: gpus.inventory: inventory: kubernetes needs "
        "backend: kubernetes; allowed here: declared, nvml"
    )


def test_volume_mounts_must_differ(tmp_path):
    path = write(tmp_path, "volumes:\n  shared: {mount: data}\n  datasets: {mount: data}\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: volumes.shared.mount: 'data' is already the mount "
        "of volumes.datasets"
    )
    path = write(tmp_path, "volumes:\n  groups: [{group: a}, {group: a, mount: x}]\n")
    assert "one volume per group" in load_error(path)
    path = write(tmp_path, "volumes:\n  groups: [{group: a, mount: ../../etc}]\n")
    assert "cannot contain '..'" in load_error(path)


def test_group_volume_defaults(tmp_path):
    cfg = load_platform_config(write(tmp_path, "volumes:\n  groups: [{group: physics}]\n"))
    assert cfg["volumes"]["groups"] == [
        {"group": "physics", "mount": "", "others": "none", "source": ""}
    ]
    assert cfg["volumes"]["datasets"] == {"enabled": True, "mount": "datasets", "source": ""}


def test_bad_pattern(tmp_path):
    path = write(tmp_path, "profiles:\n  - name: a\n    mem_limit: lots\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: profiles[0].mem_limit: must be a size such as 512M, "
        "4G or 1.5G, got 'lots'"
    )


def test_bad_bind_url(tmp_path):
    path = write(tmp_path, "hub:\n  bind_url: 127.0.0.1:8000\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: hub.bind_url: must be an http:// or https:// URL with "
        "a host, e.g. http://127.0.0.1:8000, got '127.0.0.1:8000'"
    )


def test_bad_db_url(tmp_path):
    path = write(tmp_path, "hub:\n  db_url: mysql://x\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: hub.db_url: must be null, an sqlite:/// URL or a "
        "postgresql:// URL, got 'mysql://x'"
    )


def test_duplicate_profile_names(tmp_path):
    path = write(tmp_path, "profiles:\n  - name: a\n  - name: a\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: profiles[1].name: duplicate profile name 'a' "
        "(also profiles[0]); names must be unique"
    )


def test_two_default_profiles(tmp_path):
    path = write(
        tmp_path, "profiles:\n  - {name: a, default: true}\n  - {name: b, default: true}\n"
    )
    assert load_error(path) == (
        f"invalid dlhub config {path}: profiles[1].default: only one profile can be the default"
    )


def test_gpu_profile_needs_the_scheduler(tmp_path):
    path = write(tmp_path, "profiles:\n  - {name: gpu, gpus: 1}\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: profiles[0].gpus: GPUs are handed out by the GPU "
        "scheduler: set gpus.enabled; allowed: 0"
    )


def test_profile_without_name(tmp_path):
    path = write(tmp_path, "profiles:\n  - {mem_limit: 1G}\n")
    msg = load_error(path)
    assert msg.startswith(f"invalid dlhub config {path}: profiles[0]: missing required key")
    assert "'name'" in msg


def test_empty_profile_list(tmp_path):
    path = write(tmp_path, "profiles: []\n")
    assert load_error(path) == (f"invalid dlhub config {path}: profiles: needs at least 1 item(s)")


def test_top_level_not_a_mapping(tmp_path):
    path = write(tmp_path, "- a\n- b\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: the top level must be a mapping of keys, got [a, b]"
    )


def test_yaml_syntax_error(tmp_path):
    path = write(tmp_path, "hub:\n  bind_url: [unclosed\n")
    msg = load_error(path)
    assert msg.startswith(f"invalid dlhub config {path}: not valid YAML at line 3, column 1")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert load_error(path) == f"invalid dlhub config {path}: file not found"


def test_directory_instead_of_file(tmp_path):
    assert load_error(tmp_path) == (
        f"invalid dlhub config {tmp_path}: is a directory, not a YAML file"
    )


def _error_as(uid: int, path) -> str:
    """Load ``path`` in a child process running as ``uid`` (root reads any file)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            if os.geteuid() != uid:
                os.setgid(uid)
                os.setuid(uid)
            try:
                load_platform_config(path)
                message = "no error"
            except ConfigError as e:
                message = str(e)
            os.write(w, message.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    return message


def test_unreadable_file(tmp_path):
    path = write(tmp_path, "backend: local\n")
    path.chmod(0)
    uid = 65534 if os.geteuid() == 0 else os.geteuid()
    assert _error_as(uid, path) == (
        f"invalid dlhub config {path}: permission denied reading the file"
    )


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert load_error(path) == f"invalid dlhub config {path}: not a UTF-8 text file"


def test_no_python_in_yaml(tmp_path):
    # safe_load refuses arbitrary Python objects
    path = write(tmp_path, "backend: !!python/object/apply:os.system ['true']\n")
    assert "not valid YAML" in load_error(path)


def test_check_command_prints_effective_config(tmp_path, capsys):
    from hub_config.__main__ import main

    path = write(tmp_path, "culling:\n  enabled: false\n")
    assert main(["check", str(path)]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["culling"]["enabled"] is False
    assert printed["hub"]["bind_url"] == "http://127.0.0.1:8000"


def test_check_command_fails_on_bad_config(tmp_path, capsys):
    from hub_config.__main__ import main

    path = write(tmp_path, "backend: 3\n")
    with pytest.raises(SystemExit) as info:
        main(["check", str(path)])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"dlhub: invalid dlhub config {path}: backend: expected a string, got 3"
    )


def test_check_command_gets_one_value(tmp_path, capsys):
    from hub_config.__main__ import main

    path = write(tmp_path, "backend: docker\n")
    assert main(["check", "--get", "backend", str(path)]) == 0
    assert capsys.readouterr().out == "docker\n"
    assert main(["check", "--get", "hub.hub_port", str(path)]) == 0
    assert capsys.readouterr().out == "8081\n"


def test_enabled_gpus_need_devices_or_nvml(tmp_path):
    path = write(tmp_path, "gpus:\n  enabled: true\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: gpus.devices: declare at least one GPU, or use "
        "inventory: nvml"
    )
    ok = write(tmp_path, "gpus:\n  enabled: true\n  inventory: nvml\n", "nvml.yaml")
    assert load_platform_config(ok)["gpus"]["inventory"] == "nvml"


def test_duplicate_gpu_uuid(tmp_path):
    path = write(
        tmp_path,
        "gpus:\n  devices:\n    - {uuid: GPU-0, model: A100}\n    - {uuid: GPU-0, model: T4}\n",
    )
    assert load_error(path) == (
        f"invalid dlhub config {path}: gpus.devices[1].uuid: duplicate device 'GPU-0'"
    )


def test_negative_group_quota(tmp_path):
    path = write(tmp_path, "gpus:\n  quotas:\n    lab: -1\n")
    assert load_error(path) == (
        f"invalid dlhub config {path}: gpus.quotas.lab: must be at least 0, got -1"
    )
