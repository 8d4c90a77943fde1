"""What the two directory log-ins (``auth.type: oidc`` and ``auth.type: ldap``) share.

Both map their section of the platform config's ``auth`` to an authenticator the same way:
who may log in (``allowed_groups``, ``admin_groups``, ``allowed_users``, ``allow_all``),
nobody kept allowed because the hub knew them, the three config sections, the rule that
someone must be able to log in, and the check of a secret file before the hub starts.
"""

from __future__ import annotations

from pathlib import Path


def access_traits(section: dict, groups_trait_prefix: str = "") -> dict:
    """The authenticator's allow rules from ``section`` (``auth.oidc`` or ``auth.ldap``,
    validated). ``groups_trait_prefix`` is put before ``allowed_groups`` and
    ``admin_groups`` (the LDAP authenticator's own group rules are ``directory_...``)."""
    return {
        f"{groups_trait_prefix}allowed_groups": set(section["allowed_groups"]),
        f"{groups_trait_prefix}admin_groups": set(section["admin_groups"]),
        "allowed_users": set(section["allowed_users"]),
        "allow_all": section["allow_all"],
        # who leaves the directory must not stay allowed because the hub knew them
        "allow_existing_users": False,
    }


def given(section: dict, *keys: str, **renamed: str) -> dict:
    """The keys of ``section`` that are set (not empty, not 0), as traits of the same name;
    ``renamed``: ``trait="key"`` for a trait named otherwise than its config key. An unset
    key leaves the authenticator's own default."""
    pairs = [(key, key) for key in keys] + list(renamed.items())
    return {trait: section[key] for trait, key in pairs if section[key]}


def authenticator_config(
    auth: dict, class_path: str, class_name: str, section: dict
) -> dict[str, dict]:
    """The config sections: the authenticator class (``class_path``), the hub's admins
    (``auth.admin_users``) and the authenticator's own traits (``section``)."""
    return {
        "JupyterHub": {"authenticator_class": class_path},
        "Authenticator": {"admin_users": set(auth["admin_users"])},
        class_name: section,
    }


def nobody_allowed(auth: dict, kind: str) -> tuple[str, str] | None:
    """(key, what is wrong) when ``auth.<kind>`` lets nobody log in; else None."""
    section = auth[kind]
    if (
        section["allow_all"]
        or section["allowed_groups"]
        or section["allowed_users"]
        or section["admin_groups"]
        or auth["admin_users"]
    ):
        return None
    return (
        f"auth.{kind}.allowed_groups",
        "nobody could log in: name allowed_groups, allowed_users or admin_groups, "
        "or set allow_all",
    )


def secret_file_problem(key: str, path: str) -> str | None:
    """One line naming ``key`` when the secret file at ``path`` cannot be read or is
    empty (white space only); None when ``path`` is empty or the file holds a secret."""
    if not path:
        return None
    try:
        secret = Path(path).read_text().strip()
    except OSError as e:
        return f"{key}: cannot read {path} ({e.strerror})"
    if not secret:
        return f"{key}: {path} is empty"
    return None
