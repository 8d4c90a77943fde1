"""Sign-up with admin approval: NativeAuthenticator, adapted to JupyterHub 6.

Thin subclasses only:

- the login page: NativeAuthenticator 1.3 times logins with ``self.statsd``, which
  JupyterHub 6 no longer has, and renders error pages through its own form renderer,
  which cannot render synchronously; both are bridged here.
- approve / discard: NativeAuthenticator changes an account on a plain GET link, which a
  page on another site could trigger in an admin's browser. These handlers refuse
  requests the browser marks as coming from another site (``Sec-Fetch-Site``).
"""

from __future__ import annotations

from jupyterhub.handlers import BaseHandler
from nativeauthenticator import NativeAuthenticator, handlers
from tornado import web


class _NoTimer:
    def start(self):
        return self

    def stop(self, send=True):
        pass


class _NoStats:
    """Stands in for the statsd client that JupyterHub 6 removed (metrics are Prometheus)."""

    def timer(self, name):
        return _NoTimer()

    def incr(self, *args, **kwargs):
        pass


class LoginHandler(handlers.LoginHandler):
    statsd = _NoStats()

    def render_template(self, name, **ns):
        # render error pages as the hub does, not through the login form
        return BaseHandler.render_template(self, name, **ns)


class _SameSiteOnly:
    def prepare(self):
        site = self.request.headers.get("Sec-Fetch-Site", "same-origin")
        if site not in ("same-origin", "none"):
            raise web.HTTPError(403, "Account changes must come from the hub's own pages.")
        return super().prepare()


class ToggleAuthorizationHandler(_SameSiteOnly, handlers.ToggleAuthorizationHandler):
    pass


class DiscardHandler(_SameSiteOnly, handlers.DiscardHandler):
    pass


REPLACEMENTS = {
    handlers.LoginHandler: LoginHandler,
    handlers.ToggleAuthorizationHandler: ToggleAuthorizationHandler,
    handlers.DiscardHandler: DiscardHandler,
}


class DlhubAuthenticator(NativeAuthenticator):
    """NativeAuthenticator (configured as ``c.NativeAuthenticator``) with the handlers above."""

    def get_handlers(self, app):
        return [(route, REPLACEMENTS.get(h, h)) for route, h in super().get_handlers(app)]
