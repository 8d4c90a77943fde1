"""A default JupyterHub 6.1 lacks: ``BaseHandler._token_authenticated``.

JupyterHub sets ``_token_authenticated = True`` on a handler whose request came with an API
token and never sets it otherwise; ``BaseHandler.refresh_auth`` reads it when an
authenticator's ``refresh_user`` says the user must log in again. With ``refresh_pre_spawn``
(dlhub's OpenID Connect and LDAP log-ins) a browser's start after the user was removed from
the directory therefore ended in a 500 (``AttributeError``) instead of JupyterHub's own
403 "auth has expired for NAME, login again". The class default ``False`` is what JupyterHub
means by an unset attribute (``getattr(handler, "_token_authenticated", False)`` everywhere
else). Checked with JupyterHub 6.1.1; tests/unit/test_auth_types.py holds the contract.
"""

from __future__ import annotations

from jupyterhub.handlers.base import BaseHandler


def default_token_authenticated() -> None:
    """Give ``BaseHandler`` the class default ``_token_authenticated = False`` (once)."""
    if "_token_authenticated" not in vars(BaseHandler):
        BaseHandler._token_authenticated = False
