"""Log-in against an LDAP directory: ``jupyterhub-ldapauthenticator``'s ``LDAPAuthenticator``,
thinly, with the directory's groups as the hub's groups.

What this module adds to ``LDAPAuthenticator`` (ldapauthenticator 2.0.2, which binds as
the user, by a DN template or after looking the DN up, and checks allowed group DNs but
does not report a user's groups):

- **group sync**: once the user's bind succeeded, the groups under ``group_search_base``
  that name the user (``group_search_filter``: ``member``/``uniqueMember`` holding the
  user's DN, or ``memberUid`` holding the uid) are read on the same connection; their
  ``group_name_attribute`` values are returned as the auth model's ``groups`` and, with
  ``manage_groups``, become exactly the user's hub groups at every log-in. A user taken
  out of a group in the directory leaves the hub group at their next log-in.
- **allowed and admin groups by name** (the hub groups' names):
  ``directory_allowed_groups``, ``directory_admin_groups``. Leaving an admin group ends
  admin rights at the next log-in; ``admin_users`` stay admins.
- **a refresh at each server start** when a lookup account is configured
  (``lookup_dn_search_user``): the user's entry and groups are read again with that
  account, so a user removed from a group loses its folder and quota at their next
  start, and a user removed from the directory is sent back to log in (and refused).
- **certificates checked**: StartTLS and LDAPS verify the server's certificate and name
  (ldap3's default is not to), against ``ca_file`` or the system's trust store; a server
  that cannot be reached or whose certificate is refused gives a clear 503 page.
- **the lookup account's password from a file** (``lookup_dn_search_password_file``), as
  a Kubernetes Secret is mounted. Neither it nor users' passwords are logged.

The platform config's ``auth.ldap`` becomes these traits in :mod:`hub_config.ldap`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn
from ldapauthenticator import LDAPAuthenticator
from tornado import web
from traitlets import Set, Unicode, default

#: Where the user's groups travel from the bind to :meth:`DirectoryAuthenticator.authenticate`
#: (a key of ldapauthenticator's user attributes, removed before the auth state is kept).
_GROUPS_KEY = "dlhub-directory-groups"


class DirectoryAuthenticator(LDAPAuthenticator):
    """``LDAPAuthenticator`` that reports the user's directory groups (``manage_groups``).

    Needs ``group_search_base`` for groups; without it no groups are reported and hub
    groups stay as admins make them. The allowed and admin groups are group names (the
    ``group_name_attribute``, ``cn`` by default), not DNs.
    """

    group_search_base = Unicode(
        "",
        help="""Where the groups are, e.g. ``ou=groups,dc=example,dc=org``.

        The groups under it (whole subtree) that match ``group_search_filter`` for the
        user are the user's hub groups, set at every log-in. Empty: no groups are read.
        Set from the platform config key ``auth.ldap.group_search_base``.
        """,
    ).tag(config=True)

    group_name_attribute = Unicode(
        "cn",
        help="""The attribute of a group entry that is the hub group's name (``cn``).

        Set from ``auth.ldap.group_name_attribute``.
        """,
    ).tag(config=True)

    directory_allowed_groups = Set(
        help="""Names of directory groups whose members may log in.

        Members of ``directory_admin_groups`` may log in too. Set from
        ``auth.ldap.allowed_groups``.
        """,
    ).tag(config=True)

    directory_admin_groups = Set(
        help="""Names of directory groups whose members are hub admins.

        Checked at each log-in: leaving the group ends admin rights at the next log-in
        (``admin_users`` stay admins). Set from ``auth.ldap.admin_groups``.
        """,
    ).tag(config=True)

    lookup_dn_search_password_file = Unicode(
        "",
        help="""A file holding ``lookup_dn_search_password`` (white space around it is ignored).

        Used when ``lookup_dn_search_password`` is not set. Set from
        ``auth.ldap.lookup_dn_search_password_file``.
        """,
    ).tag(config=True)

    @default("lookup_dn_search_password")
    def _password_from_file(self):
        if self.lookup_dn_search_password_file:
            return Path(self.lookup_dn_search_password_file).read_text().strip()
        return None

    # --- log-in ----------------------------------------------------------------------------

    def get_user_attributes(self, conn, userdn):
        """ldapauthenticator's user attributes, plus the user's groups, read on the
        connection bound as the user (ldapauthenticator calls this once the bind
        succeeded)."""
        attributes = super().get_user_attributes(conn, userdn)
        if self.group_search_base:
            attributes = dict(attributes)
            attributes[_GROUPS_KEY] = self.groups_of(conn, userdn)
        return attributes

    def groups_of(self, conn, userdn: str) -> list[str]:
        """The names of the groups under ``group_search_base`` that have ``userdn`` (or
        its uid) as a member, sorted."""
        uid = self._uid_of(conn, userdn)
        search_filter = self.group_search_filter.format(
            userdn=escape_filter_chars(userdn), uid=escape_filter_chars(uid)
        )
        conn.search(
            search_base=self.group_search_base,
            search_scope=ldap3.SUBTREE,
            search_filter=search_filter,
            attributes=[self.group_name_attribute],
        )
        names = set()
        for entry in conn.entries:
            values = entry.entry_attributes_as_dict.get(self.group_name_attribute) or []
            names.update(str(v) for v in values)
        return sorted(names)

    def _uid_of(self, conn, userdn: str) -> str:
        attribute = self.user_attribute or "uid"
        conn.search(
            search_base=userdn,
            search_scope=ldap3.BASE,
            search_filter="(objectClass=*)",
            attributes=[attribute],
        )
        if len(conn.entries) == 1:
            values = conn.entries[0].entry_attributes_as_dict.get(attribute) or []
            if values:
                return str(values[0])
        return ""

    def _model(self, username: str, groups: list[str] | None) -> dict:
        """The groups and admin flag of an auth model (None: no groups are read)."""
        model: dict = {}
        if groups is None:
            return model
        model["groups"] = groups
        if self.directory_admin_groups:
            model["admin"] = bool(set(groups) & self.directory_admin_groups) or (
                username in self.admin_users
            )
        return model

    async def authenticate(self, handler, data):
        # hub names are lower case; directories match names without regard to case
        data = {**data, "username": (data.get("username") or "").strip().lower()}
        try:
            model = await super().authenticate(handler, data)
        except LDAPException as e:
            # unreachable, or its certificate refused: a clear page, not a 500
            self.log.error("LDAP server %s: %s", self.server_address, e)
            raise web.HTTPError(
                503,
                f"The directory ({self.server_address}) cannot be reached or its certificate "
                "is not trusted right now; try again in a minute, or tell an admin.",
            ) from None
        if not model:
            return model
        attributes = (model.get("auth_state") or {}).get("user_attributes") or {}
        groups = attributes.pop(_GROUPS_KEY, None)
        model.update(self._model(model["name"], groups))
        return model

    async def check_allowed(self, username, auth_model):
        if await super().check_allowed(username, auth_model):
            return True
        if username in self.admin_users:
            return True
        groups = set((auth_model or {}).get("groups") or [])
        return bool(groups & (self.directory_allowed_groups | self.directory_admin_groups))

    # --- refresh at server start -----------------------------------------------------------

    def _lookup(self, username: str):
        """The user's DN and groups, read with the lookup account; None when the user is
        not (or no longer) in the directory."""
        conn = self.get_connection(self.lookup_dn_search_user, self.lookup_dn_search_password)
        if conn is None:
            raise LDAPException("the lookup account cannot bind")
        try:
            if self.lookup_dn:
                found_name, userdn = self.resolve_username(username)
                if not userdn:
                    return None
            else:
                userdn = None
                for template in self.bind_dn_template:
                    candidate = template.format(username=escape_rdn(username))
                    conn.search(candidate, "(objectClass=*)", search_scope=ldap3.BASE)
                    if conn.entries:
                        userdn = candidate
                        break
                if userdn is None:
                    return None
            groups = self.groups_of(conn, userdn) if self.group_search_base else None
            return userdn, groups
        finally:
            conn.unbind()

    async def refresh_user(self, user, handler=None):
        """Read the user's entry and groups again with the lookup account: False (log in
        again) when the user left the directory, else their groups. Without a lookup
        account, nothing is read (True)."""
        if not self.lookup_dn_search_user:
            return True
        try:
            found = await asyncio.to_thread(self._lookup, user.name)
        except LDAPException as e:
            # the directory cannot be asked now: keep what the last log-in said
            self.log.warning("LDAP refresh of %s failed: %s", user.name, e)
            return True
        if found is None:
            self.log.info("%s is no longer in the LDAP directory; log-in needed", user.name)
            return False
        _, groups = found
        if groups is not None:
            allowed = await self.check_allowed(user.name, {"groups": groups})
            if not allowed:
                self.log.info("%s is no longer in an allowed LDAP group", user.name)
                return False
        return {"name": user.name, **self._model(user.name, groups)}
