"""LDAP log-in, the pure part: the platform config's ``auth.ldap`` mapped to the traits of
:class:`hub_config.ldap_auth.DirectoryAuthenticator` (``jupyterhub-ldapauthenticator``,
thinly), and the rules the schema cannot say.

:func:`ldap_traits` is the table from the validated ``auth`` section to traits;
:func:`problems` is what the config check adds for ``auth.type: ldap``;
:func:`startup_problem` is what ``hub.configure`` checks before the hub starts (it reads
the lookup password's file and the CA file). What the authenticator adds to
ldapauthenticator is said in :mod:`hub_config.ldap_auth`.
"""

from __future__ import annotations

import ssl

from . import directory

#: The class ``JupyterHub.authenticator_class`` names for ``auth.type: ldap``.
AUTHENTICATOR_CLASS = "hub_config.ldap_auth.DirectoryAuthenticator"

#: ``auth.ldap.tls`` -> ldapauthenticator's ``tls_strategy``.
TLS_STRATEGIES = {"starttls": "before_bind", "ldaps": "on_connect", "none": "insecure"}

#: Log-in names the hub accepts from the directory (ldapauthenticator's check, stricter:
#: the hub's own username rule).
USERNAME_REGEX = r"^[a-z0-9][a-z0-9._-]{0,31}$"


def ldap_traits(auth: dict) -> dict[str, dict]:
    """The authenticator's sections for ``auth.type: ldap`` (``auth``: the platform
    config's validated ``auth`` section)."""
    ldap = auth["ldap"]
    tls_kwargs: dict = {}
    if ldap["tls"] != "none":
        # verify the server's certificate and name (ldap3 checks neither by default)
        tls_kwargs["validate"] = ssl.CERT_REQUIRED
        if ldap["ca_file"]:
            tls_kwargs["ca_certs_file"] = ldap["ca_file"]
    section = {
        "server_address": ldap["server_address"],
        "tls_strategy": TLS_STRATEGIES[ldap["tls"]],
        "tls_kwargs": tls_kwargs,
        "bind_dn_template": list(ldap["bind_dn_template"]),
        "lookup_dn": ldap["lookup_dn"],
        "user_attribute": ldap["user_attribute"],
        "valid_username_regex": USERNAME_REGEX,
        "group_search_base": ldap["group_search_base"] or "",
        "group_search_filter": ldap["group_search_filter"],
        "group_name_attribute": ldap["group_name_attribute"],
        **directory.access_traits(ldap, groups_trait_prefix="directory_"),
        # the directory's groups are the user's hub groups, set at each log-in (and start)
        "manage_groups": bool(ldap["group_search_base"]),
    }
    section.update(
        directory.given(
            ldap,
            "server_port",
            "user_search_base",
            "search_filter",
            "lookup_dn_search_password",
            "lookup_dn_search_password_file",
        )
    )
    if ldap["lookup_dn"]:
        section["lookup_dn_user_dn_attribute"] = ldap["user_attribute"]
    if ldap["lookup_dn_search_user"]:
        section["lookup_dn_search_user"] = ldap["lookup_dn_search_user"]
        # each server start reads the user's entry and groups again
        section["refresh_pre_spawn"] = True
        section["auth_refresh_age"] = ldap["refresh_seconds"]
    return directory.authenticator_config(
        auth, AUTHENTICATOR_CLASS, "DirectoryAuthenticator", section
    )


def problems(auth: dict) -> list[tuple[str, str]]:
    """(key, what is wrong) for each rule of ``auth.ldap`` the schema cannot say, when
    ``auth.type`` is ``ldap``; empty otherwise."""
    if auth["type"] != "ldap":
        return []
    ldap = auth["ldap"]
    out: list[tuple[str, str]] = []
    if not ldap["server_address"]:
        out.append(("auth.ldap.server_address", "required with auth.type: ldap"))
    if bool(ldap["bind_dn_template"]) == bool(ldap["lookup_dn"]):
        out.append(
            (
                "auth.ldap.bind_dn_template",
                "set either bind_dn_template (the user's DN from the name) or lookup_dn: "
                "true (the DN looked up under user_search_base), one of them",
            )
        )
    for template in ldap["bind_dn_template"]:
        if "{username}" not in template:
            out.append(("auth.ldap.bind_dn_template", f"{template!r} has no {{username}}"))
    if (ldap["lookup_dn"] or ldap["search_filter"]) and not ldap["user_search_base"]:
        out.append(("auth.ldap.user_search_base", "needed with lookup_dn or search_filter"))
    if ldap["lookup_dn_search_password"] and ldap["lookup_dn_search_password_file"]:
        out.append(
            (
                "auth.ldap.lookup_dn_search_password",
                "set one of lookup_dn_search_password and lookup_dn_search_password_file",
            )
        )
    has_password = ldap["lookup_dn_search_password"] or ldap["lookup_dn_search_password_file"]
    if has_password and not ldap["lookup_dn_search_user"]:
        out.append(("auth.ldap.lookup_dn_search_user", "needed with its password"))
    if (ldap["allowed_groups"] or ldap["admin_groups"]) and not ldap["group_search_base"]:
        out.append(("auth.ldap.group_search_base", "needed with allowed_groups and admin_groups"))
    nobody = directory.nobody_allowed(auth, "ldap")
    if nobody:
        out.append(nobody)
    return out


def startup_problem(auth: dict) -> str | None:
    """What stops the hub from starting with this ``auth`` section (one line naming the
    key), or None. Reads the lookup password's file and the CA file."""
    ldap = auth["ldap"]
    problem = directory.secret_file_problem(
        "auth.ldap.lookup_dn_search_password_file", ldap["lookup_dn_search_password_file"]
    )
    if problem:
        return problem
    path = ldap["ca_file"]
    if path:
        try:
            ssl.create_default_context(cafile=path)
        except OSError as e:
            return f"auth.ldap.ca_file: cannot read {path} ({e.strerror})"
        except ssl.SSLError as e:
            return f"auth.ldap.ca_file: {path} is not a PEM certificate file ({e.reason})"
    return None
