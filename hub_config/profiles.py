"""Profiles: the choices on the spawn form, applied to a spawner.

Pure helpers, so the choice logic is tested without a hub: pick a profile from user
options (form or REST API), render the form.
"""

from __future__ import annotations

from importlib import resources

from jinja2 import Environment, select_autoescape


class ProfileError(ValueError):
    """A user asked for a profile that does not exist."""


def default_profile(profiles: list[dict]) -> dict:
    for profile in profiles:
        if profile.get("default"):
            return profile
    return profiles[0]


def visible(profiles: list[dict], groups) -> list[dict]:
    """The profiles a user in ``groups`` may see and start (``groups`` empty: everyone)."""
    groups = set(groups)
    return [p for p in profiles if not p.get("groups") or groups & set(p["groups"])]


def choose(profiles: list[dict], user_options: dict | None) -> dict:
    """The profile named by ``user_options["profile"]``, or the default one.

    Raises :class:`ProfileError` naming the allowed choices for anything else.
    """
    user_options = user_options or {}
    if not profiles:
        raise ProfileError("no profile is available to you; ask an admin to add you to a group")
    unknown = sorted(set(user_options) - {"profile"})
    if unknown:
        raise ProfileError(
            f"unknown option {unknown[0]!r}; a server is chosen by its 'profile' only"
        )
    if "profile" not in user_options:
        return default_profile(profiles)
    wanted = user_options["profile"]
    if isinstance(wanted, list) and len(wanted) == 1:
        wanted = wanted[0]
    for profile in profiles:
        if isinstance(wanted, str) and profile["name"] == wanted:
            return profile
    names = ", ".join(p["name"] for p in profiles)
    raise ProfileError(f"unknown profile {wanted!r}; choose one of: {names}")


def options_from_form(formdata: dict) -> dict:
    """Form fields (lists of strings) to user options: only ``profile`` is read."""
    values = formdata.get("profile") or []
    return {"profile": values[0]} if values else {}


_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def gpu_notes(profiles: list[dict], capacity: dict | None) -> dict[str, dict]:
    """For each GPU profile: a line about free GPUs and the user's quota, and whether it
    can never be granted (more GPUs than the hub has). ``capacity`` is the scheduler's
    answer for this user (None: unknown)."""
    notes: dict[str, dict] = {}
    if capacity is None:
        return notes
    total = sum(m["total"] for m in capacity["models"].values())
    free = sum(m["free"] for m in capacity["models"].values())
    for p in profiles:
        n = p.get("gpus", 0)
        if not n:
            continue
        line = f"{free} of {total} GPUs free; you hold {capacity['used']} of your quota of "
        line += f"{capacity['quota']}"
        reason = ""
        if n > total:
            reason = f"needs {n} GPUs, this hub has {total}"
        elif capacity["used"] + n > capacity["quota"]:
            line += "; beyond your quota you get idle GPUs only, and they are taken back first"
        elif free < n:
            line += "; you will wait in the queue"
        notes[p["name"]] = {"line": line, "disabled": reason}
    return notes


def render_form(
    profiles: list[dict], selected: str | None = None, capacity: dict | None = None
) -> str:
    """The spawn form's HTML (empty when there is nothing to choose)."""
    if len(profiles) < 2:
        return ""
    notes = gpu_notes(profiles, capacity)
    usable = [p for p in profiles if not notes.get(p["name"], {}).get("disabled")]
    selected = selected or default_profile(profiles)["name"]
    if selected not in {p["name"] for p in usable}:
        preferred = default_profile(profiles)["name"]
        names = [p["name"] for p in usable]
        selected = preferred if preferred in names else (names[0] if names else None)
    source = resources.files("hub_config").joinpath("templates/profiles_form.html")
    template = _env.from_string(source.read_text("utf-8"))
    return template.render(profiles=profiles, selected=selected, notes=notes)
