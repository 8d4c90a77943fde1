"""Starter notebooks kept current without touching the user's edits (dlhub-lab's
``dlhub_lab/starter.py``, loaded alone: it needs only the standard library)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "images/singleuser/dlhub-lab/dlhub_lab/starter.py"


@pytest.fixture(scope="module")
def starter():
    spec = importlib.util.spec_from_file_location("dlhub_lab_starter", SOURCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture
def src(tmp_path):
    src = tmp_path / "starter"
    (src / "data").mkdir(parents=True)
    (src / "01-intro.ipynb").write_text("intro v1")
    (src / "02-more.ipynb").write_text("more v1")
    (src / "data" / "x.csv").write_text("1,2")
    return src


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return home


def test_copies_everything_into_a_new_home(starter, src, home):
    result = starter.sync(src, home)
    assert result.copied == ["01-intro.ipynb", "02-more.ipynb", "data/x.csv"]
    assert (home / "01-intro.ipynb").read_text() == "intro v1"
    assert (home / "data" / "x.csv").read_text() == "1,2"
    manifest = json.loads((home / starter.MANIFEST).read_text())["files"]
    assert set(manifest) == {"01-intro.ipynb", "02-more.ipynb", "data/x.csv"}


def test_an_edited_notebook_is_kept_and_an_unchanged_one_updated(starter, src, home):
    starter.sync(src, home)
    (home / "01-intro.ipynb").write_text("my own work")
    (src / "01-intro.ipynb").write_text("intro v2")
    (src / "02-more.ipynb").write_text("more v2")
    result = starter.sync(src, home)
    assert (home / "01-intro.ipynb").read_text() == "my own work"
    assert (home / "02-more.ipynb").read_text() == "more v2"
    assert result.kept == ["01-intro.ipynb"] and result.updated == ["02-more.ipynb"]
    # and again later: the edit still wins
    (src / "01-intro.ipynb").write_text("intro v3")
    starter.sync(src, home)
    assert (home / "01-intro.ipynb").read_text() == "my own work"


def test_a_new_starter_notebook_appears(starter, src, home):
    starter.sync(src, home)
    (src / "05-new.ipynb").write_text("new")
    assert starter.sync(src, home).copied == ["05-new.ipynb"]
    assert (home / "05-new.ipynb").read_text() == "new"


def test_a_deleted_notebook_stays_deleted(starter, src, home):
    starter.sync(src, home)
    (home / "02-more.ipynb").unlink()
    (src / "02-more.ipynb").write_text("more v2")
    result = starter.sync(src, home)
    assert not (home / "02-more.ipynb").exists()
    assert result.copied == [] and result.updated == []


def test_the_users_own_file_of_that_name_is_never_overwritten(starter, src, home):
    (home / "01-intro.ipynb").write_text("mine, from before")
    result = starter.sync(src, home)
    assert (home / "01-intro.ipynb").read_text() == "mine, from before"
    assert "01-intro.ipynb" in result.kept
    # nor later, when the starter changes: it was never the starter's copy
    (src / "01-intro.ipynb").write_text("intro v2")
    starter.sync(src, home)
    assert (home / "01-intro.ipynb").read_text() == "mine, from before"


def test_links_in_the_home_are_not_followed(starter, src, home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / "data").symlink_to(outside, target_is_directory=True)
    (home / "01-intro.ipynb").symlink_to(outside / "target")
    result = starter.sync(src, home)
    assert os.listdir(outside) == []
    assert {"01-intro.ipynb", "data/x.csv"} <= set(result.kept)


def test_missing_starter_dir_is_fine(starter, tmp_path, home):
    result = starter.sync(tmp_path / "none", home)
    assert (result.copied, result.updated, result.kept) == ([], [], [])
    assert not (home / starter.MANIFEST).exists()
