""" "Open in dlhub" links: what a link may carry, and where it leads (pure)."""

from urllib.parse import parse_qs, urlsplit

import pytest

from hub_config.open_links import (
    MAX_REPO,
    Link,
    LinkError,
    html_badge,
    markdown_badge,
    parse_link,
    pull_url,
    spawn_url,
)


@pytest.mark.parametrize(
    "repo",
    [
        "https://github.com/team/course.git",
        "http://127.0.0.1:8421/course.git",
        "git://127.0.0.1:9418/course",
        "https://gitlab.example.org/a/b/c",
    ],
)
def test_good_repositories(repo):
    assert parse_link({"repo": repo}).repo == repo


@pytest.mark.parametrize(
    "repo, said",
    [
        ("", "names no repository"),
        ("file:///etc", "http://, https:// or git://"),
        ("ssh://git@host/x.git", "http://, https:// or git://"),
        ("ext::sh -c touch% /tmp/x", "spaces"),
        ("-uhttps://x", "http://, https:// or git://"),
        ("javascript:alert(1)", "http://, https:// or git://"),
        ("https://", "with a host"),
        ("https://user:secret@host/x.git", "user name or password"),
        ("https://host/x.git?a=b", "query"),
        ("https://host/x.git#frag", "fragment"),
        ("https://host:99999/x", "not a URL"),
        ("https://host/x\n.git", "control"),
        ("https://host/" + "x" * MAX_REPO, "longer than"),
    ],
)
def test_bad_repositories_are_refused_saying_why(repo, said):
    with pytest.raises(LinkError, match=said.replace("?", r"\?").replace("+", r"\+")):
        parse_link({"repo": repo})


@pytest.mark.parametrize("branch", ["main", "release/2026", "v1.2_x"])
def test_good_branches(branch):
    assert parse_link({"repo": "https://h/x", "branch": branch}).branch == branch


@pytest.mark.parametrize(
    "branch", ["-f", "--upload-pack=x", "a..b", "a b", "a;b", "x.lock", "a/", "a//b", "b" * 256]
)
def test_bad_branches(branch):
    with pytest.raises(LinkError, match="branch"):
        parse_link({"repo": "https://h/x", "branch": branch})


@pytest.mark.parametrize(
    "file, kept",
    [("intro.ipynb", "intro.ipynb"), ("/lessons/one two.ipynb", "lessons/one two.ipynb")],
)
def test_good_files(file, kept):
    assert parse_link({"repo": "https://h/x", "file": file}).file == kept


@pytest.mark.parametrize("file", ["../x", "a/../../b", "a//b", "a\\b", "a\x00b", "x" * 1025])
def test_bad_files(file):
    with pytest.raises(LinkError, match="file"):
        parse_link({"repo": "https://h/x", "file": file})


@pytest.mark.parametrize("profile", ["GPU", "a_b", "-x", "x" * 64, "<b>"])
def test_bad_profile_names(profile):
    with pytest.raises(LinkError, match="profile"):
        parse_link({"repo": "https://h/x", "profile": profile})


def test_messages_never_echo_the_value():
    evil = "https://h/x?<script>alert(1)</script>"
    with pytest.raises(LinkError) as e:
        parse_link({"repo": evil})
    assert "<script>" not in str(e.value)


def test_the_clone_folder_is_the_repository_name():
    assert Link("https://h/team/course.git").folder == "course"
    assert Link("git://h:1/course/").folder == "course"
    assert Link("https://h/").folder == "repository"
    assert Link("https://h/..").folder == "repository"


def test_pull_url_opens_the_file_in_lab():
    link = parse_link({"repo": "git://h:9/course.git", "branch": "main", "file": "a b.ipynb"})
    url = pull_url("/user/alice/", link)
    parts = urlsplit(url)
    assert parts.path == "/user/alice/git-pull"
    assert parse_qs(parts.query) == {
        "repo": ["git://h:9/course.git"],
        "targetpath": ["course"],
        "branch": ["main"],
        "urlpath": ["lab/tree/course/a%20b.ipynb"],
    }


def test_spawn_url_carries_the_profile_and_the_way_on():
    link = parse_link({"repo": "https://h/x", "profile": "gpu"})
    url = spawn_url("/hub/", "a.b", link, "/user/a.b/git-pull?repo=x")
    parts = urlsplit(url)
    assert parts.path == "/hub/spawn/a.b"
    assert parse_qs(parts.query) == {"opt-profile": ["gpu"], "next": ["/user/a.b/git-pull?repo=x"]}
    no_profile = spawn_url("/hub/", "bo", parse_link({"repo": "https://h/x"}), "/n")
    assert parse_qs(urlsplit(no_profile).query) == {"next": ["/n"]}


def test_badges_point_at_the_link():
    link = "https://hub.example.org/hub/open?repo=https%3A%2F%2Fh%2Fx&profile=gpu"
    badge = "https://hub.example.org/hub/open/badge.svg"
    assert markdown_badge(badge, link) == f"[![Open in dlhub]({badge})]({link})"
    assert 'href="https://hub.example.org/hub/open?repo=https%3A%2F%2Fh%2Fx&amp;profile=gpu"' in (
        html_badge(badge, link)
    )
