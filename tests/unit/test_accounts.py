"""System account and group names of the local backend run as root (pure)."""

import re
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub_config.accounts import (
    AccountError,
    account_name,
    check_existing,
    is_dlhub_account,
    is_volume_group,
    local_mode_lines,
    users_group,
    volume_group,
)
from hub_config.unix_accounts import closed_dir

POSIX_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
prefixes = st.from_regex(r"[a-z][a-z0-9-]{0,11}", fullmatch=True)


def test_examples():
    assert account_name("dlhub-", "alice") == "dlhub-alice"
    assert account_name("dlhub-", "Alice") == "dlhub--41lice"
    assert account_name("dlhub-", "a.b") == "dlhub-a-2eb"
    assert users_group("dlhub-") == "dlhub_users"
    assert volume_group("dlhub-", "physics") == "dlhub_g_physics"
    assert volume_group("jupyter", "ML Team") == "jupyter_g_-4d-4c-20-54eam"


def test_long_names_are_cut_with_a_hash():
    a, b = "x" * 40, "x" * 39 + "y"
    assert len(account_name("dlhub-", a)) == 32
    assert account_name("dlhub-", a) != account_name("dlhub-", b)
    assert "--" in account_name("dlhub-", a)


@given(prefixes, st.text(min_size=1, max_size=80))
def test_valid_posix_names_of_at_most_32(prefix, name):
    account = account_name(prefix, name)
    assert POSIX_NAME.fullmatch(account) and account.startswith(prefix)
    group = volume_group(prefix, name)
    assert POSIX_NAME.fullmatch(group)
    # a group name holds "_", an account name never does: no clash with an account or
    # the account's own group
    assert "_" in group and "_" not in account and "_" in users_group(prefix)
    assert is_volume_group(prefix, group) and not is_volume_group(prefix, account)


@given(prefixes, st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_distinct_users_and_groups_get_distinct_names(prefix, a, b):
    if a != b:
        assert account_name(prefix, a) != account_name(prefix, b)
        assert volume_group(prefix, a) != volume_group(prefix, b)
    assert volume_group(prefix, a) != users_group(prefix)


@pytest.mark.parametrize("prefix", ["", "Dlhub-", "1dl-", "dl_hub-", "a" * 13, "dl hub"])
def test_bad_prefix_is_refused(prefix):
    with pytest.raises(AccountError, match="account prefix"):
        account_name(prefix, "alice")


def test_an_account_dlhub_did_not_make_is_refused():
    check_existing("dlhub-alice", None)
    check_existing("dlhub-alice", "dlhub account")
    assert is_dlhub_account("dlhub account,,,")
    with pytest.raises(AccountError, match="not made by dlhub"):
        check_existing("dlhub-alice", "Alice Smith,,,")
    with pytest.raises(AccountError):
        check_existing("dlhub-alice", "")


def test_what_dlhub_up_says():
    root = local_mode_lines("dlhub-", True, "root", "v1")
    assert "system account of their own (dlhub-<name>)" in root[0]
    assert root[1] == "  Profiles' memory and CPU limits are enforced with cgroup v1."
    shared = local_mode_lines("dlhub-", False, "ann", None, "the hub does not run as root")
    assert len(shared) == 2
    assert "runs as ann, the hub's own account: users share it" in shared[0]
    assert "trusted team" in shared[0]
    assert shared[1].endswith("not enforced: the hub does not run as root.")


def test_closed_dir():
    root = Path(tempfile.mkdtemp())  # pytest's own tree is inside a 0700 directory
    root.chmod(0o755)
    tmp_path = root
    outer = tmp_path / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    tmp_path.chmod(0o755)
    outer.chmod(0o700)
    assert closed_dir(inner) == outer
    outer.chmod(0o711)
    assert closed_dir(inner) is None
    inner.chmod(0o700)
    assert closed_dir(inner) == inner
    assert closed_dir(inner, include_self=False) is None
    assert closed_dir(inner / "not-yet") == inner
    assert stat.S_IMODE(outer.stat().st_mode) == 0o711
    shutil.rmtree(root)


def test_the_config_keys_say_what_is_allowed():
    from hub_config.config import ConfigError, validate

    assert validate({})["local"] == {
        "user_env": None,
        "users_dir": None,
        "volumes_dir": None,
        "account_prefix": "dlhub-",
    }
    with pytest.raises(ConfigError, match="local.account_prefix: must be 1-12 lower-case"):
        validate({"local": {"account_prefix": "Dl_"}})
    with pytest.raises(ConfigError, match="local.users_dir: must be null or an absolute path"):
        validate({"local": {"users_dir": "homes"}})
