"""The documentation site: docs/ builds with MkDocs in strict mode, and the chart's values
page is generated from the chart's schema and kept in step with it."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def chart_schema_tool():
    spec = importlib.util.spec_from_file_location(
        "chart_schema", REPO / "tools" / "chart_schema.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_site_builds_strict_with_every_page(tmp_path):
    site = tmp_path / "site"
    result = mkdocs_build(REPO / "mkdocs.yml", site)
    assert result.returncode == 0, f"`make docs` fails:\n{result.stderr}"
    for page in DOCS.glob("*.md"):
        built = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), f"docs/{page.name} is not in the site"
    for image in (DOCS / "images").glob("*.png"):
        assert (site / "images" / image.name).is_file()
    assert (site / "search" / "search_index.json").is_file()
    assert "Chart values" in (site / "kubernetes" / "index.html").read_text()


def test_a_broken_link_or_a_page_left_out_of_the_nav_fails_the_build(tmp_path):
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    index = tmp_path / "docs" / "index.md"
    original = index.read_text()

    index.write_text(original + "\nSee [the missing page](no-such-page.md).\n")
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site1")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr

    index.write_text(original)
    (tmp_path / "docs" / "orphan.md").write_text("# Orphan\n")
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site2")
    assert result.returncode != 0
    assert "orphan.md" in result.stderr


def test_chart_values_page_is_current():
    tool = chart_schema_tool()
    committed = (DOCS / "chart-values.md").read_text("utf-8")
    assert committed == tool.render_values_doc(), "run `make docs` and commit the result"


def test_chart_values_page_lists_the_chart_keys_with_defaults():
    text = chart_schema_tool().render_values_doc()
    for key in ("images.hub.repository", "hub.resources", "proxy.service.type", "ingress.enabled"):
        assert f"### `{key}`" in text
    assert '- default: `"dlhub/hub"`' in text
    assert "&lt;release&gt;-dlhub" in text  # not swallowed as an HTML tag
