"""The config reference in docs/ is generated from the schema and kept in step with it."""

from pathlib import Path

from hub_config.reference import render_reference

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_config_reference_is_current():
    committed = (DOCS / "config-reference.md").read_text()
    assert committed == render_reference(), "run `make docs` and commit the result"


def test_reference_lists_every_key():
    text = render_reference()
    for key in (
        "backend",
        "hub.bind_url",
        "hub.db_url",
        "hub.data_dir",
        "auth.admin_users",
        "profiles[].mem_limit",
        "profiles[].gpus",
        "culling.max_age",
    ):
        assert f"### `{key}`" in text


def test_every_test_named_in_security_md_exists():
    """docs/security.md names, for each promise, the test that holds it: those tests exist."""
    import re

    repo = DOCS.parent
    text = (DOCS / "security.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text)
    assert len(named) > 50
    for path, test in named:
        source = repo / path
        assert source.is_file(), f"docs/security.md names {path}, which does not exist"
        if test:
            pattern = rf"^(async )?def {test}\("
            assert re.search(pattern, source.read_text(), re.M), f"{path} has no {test}"
