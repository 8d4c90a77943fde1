"""What a dlhub username may be (pure).

One rule for every way a name enters the hub (sign-up, log-in, the admin panel and REST
API, ``dlhub roster import``): 1 to :data:`MAX_LENGTH` characters, lower-case ASCII
letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit, never ``..``.

Such a name is the same in a URL path, a file name, a container label and a log line:
no whitespace or control characters, no ``/`` or ``%`` (nothing that decodes into a
path), no look-alike Unicode letters. Names are compared after JupyterHub lower-cases
them, so ``Alice`` signs up as ``alice``.
"""

from __future__ import annotations

import re

#: Longest username: the longest name ``useradd`` accepts on common Linux systems.
MAX_LENGTH = 32
#: The rule, as a user reads it.
RULE = (
    f"1 to {MAX_LENGTH} characters: lower-case letters a-z, digits 0-9, '.', '_' or '-', "
    "starting with a letter or digit"
)
_ALLOWED = re.compile(rf"[a-z0-9][a-z0-9._-]{{0,{MAX_LENGTH - 1}}}")


def problem(name: str) -> str | None:
    """Why ``name`` cannot be a username (one sentence saying what is allowed), or None.

    ``name`` is the name after JupyterHub's normalisation (lower-cased). Cheap for a
    name of any size: only the first characters are ever echoed.
    """
    if not name:
        return f"Please choose a username: {RULE}."
    if len(name) > MAX_LENGTH:
        return f"That username has {len(name)} characters; a username has {RULE}."
    if ".." in name:
        return f"A username cannot contain '..'; it has {RULE}."
    if not _ALLOWED.fullmatch(name):
        return f"The username {name!r} is not allowed; a username has {RULE}."
    return None
