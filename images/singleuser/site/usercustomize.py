"""dlhub: the user's own packages (``pip install``, ``pip install --user``, ``%pip install``)
live in their home, beside the environment's pinned ones, which always win.

Installed into the site-packages of a user environment (the images' /opt/venv, the local
backend's user environment) by ``install-user-site``, which also marks the environment
``include-system-site-packages = true``: only then does pip accept ``--user`` in a virtual
environment, and, the environment being read-only for users, a plain ``pip install`` goes
to the user site too ("Defaulting to user installation").

Python imports this module at start-up, after it has set up ``sys.path``; this puts the
user site (``~/.local/lib/pythonX.Y/site-packages``, or ``$PYTHONUSERBASE``'s) right after
the environment's site-packages, so a package the user installed never shadows a pinned
one (pip refuses such an install: "Will not install to the user site because it will lack
sys.path precedence"), and takes the system's dist-packages out again (only the
environment and the user's packages are seen). The user site is made if missing, so that
a package installed from a running kernel imports there without a restart.
"""

import os
import site
import sys


def layer_user_site() -> None:
    if sys.prefix == sys.base_prefix:
        return  # not a virtual environment
    own = site.getsitepackages([sys.prefix])
    system = set(site.getsitepackages([sys.base_prefix, sys.base_exec_prefix])) - set(own)
    user = site.getusersitepackages()
    try:
        # in a home one may write to (a Kubernetes claim may be root's with the users'
        # group), but root never makes its directories in someone else's home
        home = os.path.expanduser("~")
        euid = os.geteuid()
        if os.stat(home).st_uid == euid or (euid != 0 and os.access(home, os.W_OK)):
            os.makedirs(user, exist_ok=True)
    except OSError:
        pass  # no home, or a read-only one: nothing can be installed there anyway
    paths = [p for p in sys.path if p not in system and p != user]
    last_own = max((i for i, p in enumerate(paths) if p in own), default=len(paths) - 1)
    paths.insert(last_own + 1, user)
    sys.path[:] = paths


layer_user_site()
