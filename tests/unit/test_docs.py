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
