"""Safe names derived from user-chosen strings.

JupyterHub usernames may hold any character. Where a username becomes part of a path
(or, later, a container or volume name) it is escaped with :mod:`escapism`: letters
and digits stay as they are, everything else becomes ``-XX`` hex codes. Because ``-``
itself is escaped, two different usernames never map to the same name.
"""

import string

from escapism import escape

SAFE_CHARS = set(string.ascii_lowercase + string.digits)
ESCAPE_CHAR = "-"


def safe_name(name: str) -> str:
    """Escape ``name`` into lowercase letters, digits and ``-``; injective.

    Uppercase letters are escaped too, so ``Alice`` and ``alice`` stay distinct even on
    case-insensitive file systems.
    """
    # escapism writes hex digits in uppercase; they only ever follow the escape
    # character, so lowercasing them keeps the mapping one-to-one.
    return escape(name, safe=SAFE_CHARS, escape_char=ESCAPE_CHAR).lower()
