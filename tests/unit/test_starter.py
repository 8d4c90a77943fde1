"""Starter notebooks: first start only, never over the user's files."""

from hub_config.starter import STAMP, copy_starter


def make_starter(tmp_path):
    src = tmp_path / "starter"
    (src / "data").mkdir(parents=True)
    (src / "01-intro.ipynb").write_text("starter intro")
    (src / "02-more.ipynb").write_text("starter more")
    (src / "data" / "x.csv").write_text("1,2")
    return src


def test_copies_into_a_new_home(tmp_path):
    src, home = make_starter(tmp_path), tmp_path / "home"
    home.mkdir()
    assert copy_starter(src, home) == ["01-intro.ipynb", "02-more.ipynb", "data"]
    assert (home / "01-intro.ipynb").read_text() == "starter intro"
    assert (home / "data" / "x.csv").read_text() == "1,2"
    assert (home / STAMP).exists()


def test_never_overwrites_the_users_files(tmp_path):
    src, home = make_starter(tmp_path), tmp_path / "home"
    home.mkdir()
    (home / "01-intro.ipynb").write_text("my own work")
    assert copy_starter(src, home) == ["02-more.ipynb", "data"]
    assert (home / "01-intro.ipynb").read_text() == "my own work"


def test_only_on_first_start(tmp_path):
    src, home = make_starter(tmp_path), tmp_path / "home"
    home.mkdir()
    copy_starter(src, home)
    (home / "02-more.ipynb").unlink()  # the user deleted it
    assert copy_starter(src, home) == []
    assert not (home / "02-more.ipynb").exists()


def test_missing_starter_dir_is_fine(tmp_path):
    assert copy_starter(tmp_path / "none", tmp_path) == []
