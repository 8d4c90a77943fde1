""" "Open in dlhub" links: a link that logs a person in, starts their server with a chosen
profile and opens a notebook from a git repository in JupyterLab.

    /hub/open?repo=URL[&branch=B][&file=PATH][&profile=NAME]

- :func:`parse_link` checks the link's values (pure): the repository is an ``http``,
  ``https`` or ``git`` URL without credentials, query or fragment, at most
  :data:`MAX_REPO` characters; the branch a plain git branch name; the file a relative
  path inside the repository; the profile a profile name. Anything else is a 400 page
  saying which value is wrong and what is allowed (the values are never echoed back).
- :func:`pull_url` is where nbgitpuller (a Jupyter server extension of the user image)
  clones the repository into the home, or pulls it without clobbering the user's edits
  (its merge rules), then opens the file in JupyterLab.
- :class:`OpenHandler` (``/hub/open``): after log-in, with the profile one the user may
  start, redirects to the hub's spawn page with that profile (a GPU profile waits in the
  queue there, its place shown) and on to the pull once the server is up; a running
  server is reused as it is. Without ``profile``, the spawn form lets the user choose.
- :class:`BuildHandler` (``/hub/open/build``): the form for teachers that writes the
  link, with a Markdown and an HTML badge; :class:`BadgeHandler`
  (``/hub/open/badge.svg``) serves the badge, to anyone (it is shown in READMEs).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web

#: Longest repository URL, branch, file path and profile name a link may carry.
MAX_REPO = 2000
MAX_BRANCH = 255
MAX_FILE = 1024
MAX_PROFILE = 63

SCHEMES = ("http", "https", "git")
#: a git branch as links name them: no leading '-', no '..', no spaces or specials
BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<![./])(?<!\.lock)$")
#: the profile names of the platform config's schema
PROFILE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
#: the directory name of a clone: what nbgitpuller would choose, when it is this safe
FOLDER = re.compile(r"^(?!\.)[A-Za-z0-9._-]{1,100}$")
#: what no repository URL holds (spaces and controls, a backslash)
CONTROL = re.compile(r"[\x00-\x20\x7f\\]")
#: what no file path holds (controls, a backslash; spaces are fine)
FILE_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")

#: the query parameters of a link
FIELDS = ("repo", "branch", "file", "profile")


class LinkError(ValueError):
    """A link's value is wrong; the message says which and what is allowed."""


@dataclass(frozen=True)
class Link:
    """What an "Open in dlhub" link asks for, checked."""

    repo: str
    branch: str = ""
    file: str = ""
    profile: str = ""

    @property
    def folder(self) -> str:
        """The folder of the clone in the home: the repository's name (``.git`` off)."""
        name = urlsplit(self.repo).path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
        return name if FOLDER.match(name) else "repository"

    def query(self) -> str:
        """The link's query string (the values that are set, in a fixed order)."""
        return urlencode([(k, getattr(self, k)) for k in FIELDS if getattr(self, k)])


def parse_link(values: dict[str, str]) -> Link:
    """The link of ``values`` (the query's ``repo``, ``branch``, ``file``, ``profile``;
    others are ignored), or :class:`LinkError`."""
    repo = values.get("repo", "").strip()
    if not repo:
        raise LinkError("The link names no repository: add repo=<the repository's URL>.")
    if len(repo) > MAX_REPO:
        raise LinkError(f"The repository URL is longer than {MAX_REPO} characters.")
    if CONTROL.search(repo):
        raise LinkError("The repository URL holds spaces, control characters or '\\'.")
    try:
        parts = urlsplit(repo)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise LinkError("The repository URL is not a URL.") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise LinkError(
            "The repository must be an http://, https:// or git:// URL with a host, "
            "such as https://github.com/team/course.git."
        )
    if parts.username is not None or parts.password is not None:
        raise LinkError("The repository URL must not hold a user name or password.")
    if parts.query or parts.fragment or "?" in repo or "#" in repo:
        raise LinkError("The repository URL must not have a query (?) or fragment (#).")

    branch = values.get("branch", "").strip()
    if branch and (len(branch) > MAX_BRANCH or not BRANCH.match(branch)):
        raise LinkError(
            "The branch must be a git branch name: letters, digits, '.', '_', '-' and '/', "
            f"not starting with '-', at most {MAX_BRANCH} characters."
        )

    file = values.get("file", "").strip().strip("/")
    if file:
        pieces = file.split("/")
        if (
            len(file) > MAX_FILE
            or FILE_CONTROL.search(file)
            or any(p in ("", ".", "..") for p in pieces)
        ):
            raise LinkError(
                "The file must be a path inside the repository such as "
                f"lessons/intro.ipynb: no '..', no '\\', at most {MAX_FILE} characters."
            )

    profile = values.get("profile", "").strip()
    if profile and (len(profile) > MAX_PROFILE or not PROFILE.match(profile)):
        raise LinkError(
            "The profile must be a profile's name: lower-case letters, digits and '-'."
        )
    return Link(repo=repo, branch=branch, file=file, profile=profile)


def pull_url(server_url: str, link: Link) -> str:
    """nbgitpuller's page on the server at ``server_url`` (``/user/alice/``): clone or
    pull ``link.repo`` into the folder :attr:`Link.folder` of the home, then open the
    file (or the folder) in JupyterLab."""
    target = link.folder + (f"/{link.file}" if link.file else "")
    query = [("repo", link.repo), ("targetpath", link.folder)]
    if link.branch:
        query.append(("branch", link.branch))
    query.append(("urlpath", f"lab/tree/{quote(target)}"))
    return url_path_join(server_url, "git-pull") + "?" + urlencode(query)


def spawn_url(hub_base: str, user_name: str, link: Link, next_url: str) -> str:
    """The hub's spawn page of the user's default server with the link's profile (or the
    form, without one), going on to ``next_url`` once the server is up."""
    query = ([("opt-profile", link.profile)] if link.profile else []) + [("next", next_url)]
    return url_path_join(hub_base, "spawn", quote(user_name, safe="")) + "?" + urlencode(query)


def markdown_badge(badge_url: str, link_url: str) -> str:
    return f"[![Open in dlhub]({badge_url})]({link_url})"


def html_badge(badge_url: str, link_url: str) -> str:
    return (
        f'<a href="{html.escape(link_url)}"><img src="{html.escape(badge_url)}" '
        'alt="Open in dlhub"></a>'
    )


#: The badge: a flat, two-part label in the style of shields.io badges (text as paths
#: would need a font; plain text in a common sans-serif renders everywhere).
BADGE_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="118" height="20" \
role="img" aria-label="Open in dlhub">
<title>Open in dlhub</title>
<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" \
stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>
<clipPath id="r"><rect width="118" height="20" rx="3" fill="#fff"/></clipPath>
<g clip-path="url(#r)"><rect width="67" height="20" fill="#555"/>\
<rect x="67" width="51" height="20" fill="#f37726"/>\
<rect width="118" height="20" fill="url(#s)"/></g>
<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" \
font-size="11"><text x="33.5" y="14">Open in</text><text x="92" y="14">dlhub</text></g>
</svg>
"""


def _values(handler: BaseHandler) -> dict[str, str]:
    """The link's query values (the last of each name), bounded before anything else."""
    out = {}
    for name in FIELDS:
        value = handler.get_argument(name, "")
        if len(value) > MAX_REPO + 1:
            raise LinkError(f"The value of {name} is too long.")
        out[name] = value
    return out


class LinkHandler(BaseHandler):
    """What the link's pages share: the user's profiles and the hub's own URLs."""

    def my_profiles(self, user) -> list[dict]:
        """The profiles ``user`` may start (all of them for a spawner without profiles)."""
        spawner = user.spawner
        visible = getattr(spawner, "visible_profiles", None)
        return visible() if visible else []

    def hub_url(self, path: str) -> str:
        """The absolute URL of the hub's page ``path`` as this request reached the hub."""
        return f"{self.request.protocol}://{self.request.host}" + url_path_join(
            self.hub.base_url, path
        )


class OpenHandler(LinkHandler):
    """``GET /hub/open?repo=...``: log in, start the server, pull, open the file."""

    async def get(self):
        try:
            link = parse_link(_values(self))
        except LinkError as e:
            raise web.HTTPError(400, str(e)) from None
        # web.authenticated answers a visitor who is not logged in with the log-in page
        # (coming back here) and returns None instead of the coroutine
        opening = self._open(link)
        if opening is not None:
            await opening

    @web.authenticated
    async def _open(self, link: Link):
        user = self.current_user
        if link.profile:
            names = [p["name"] for p in self.my_profiles(user)]
            if link.profile not in names:
                raise web.HTTPError(
                    400,
                    "This link asks for a profile you cannot start; yours are: "
                    + (", ".join(names) or "none")
                    + ". Ask whoever gave you the link, or open it without profile=.",
                )
        target = pull_url(user.server_url(""), link)
        spawner = user.spawner
        if spawner.ready:
            self.log.info("Open link for %s: the running server pulls %s", user.name, link.repo)
            self.redirect(target)
            return
        self.log.info("Open link for %s: start with profile %r", user.name, link.profile)
        self.redirect(spawn_url(self.hub.base_url, user.name, link, target))


class BuildHandler(LinkHandler):
    """``GET /hub/open/build``: a form for the repository, branch, file and profile, and
    for what it was given, the link and its badges (a 400 with the reason when wrong)."""

    @web.authenticated
    async def get(self):
        values = {name: self.get_argument(name, "") for name in FIELDS}
        ns = {"values": values, "profiles": self.my_profiles(self.current_user)}
        ns["badge_url"] = self.hub_url("open/badge.svg")
        if values["repo"]:
            try:
                link = parse_link(_values(self))
            except LinkError as e:
                self.set_status(400)
                ns["error"] = str(e)
            else:
                url = self.hub_url("open") + "?" + link.query()
                ns["link_url"] = url
                ns["markdown"] = markdown_badge(ns["badge_url"], url)
                ns["html"] = html_badge(ns["badge_url"], url)
        self.finish(await self.render_template("dlhub-open-build.html", **ns))


class BadgeHandler(BaseHandler):
    """``GET /hub/open/badge.svg``: the "Open in dlhub" badge, to anyone."""

    def get(self):
        self.set_header("Content-Type", "image/svg+xml; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=86400")
        self.finish(BADGE_SVG)


#: The pages, under the hub's prefix (``/hub/``).
ROUTES = [
    (r"/open/?", OpenHandler),
    (r"/open/build/?", BuildHandler),
    (r"/open/badge\.svg", BadgeHandler),
]
