"""Safe names derived from user-chosen strings.

JupyterHub usernames may hold any character. Where a username becomes part of a path
(or, later, a container or volume name) it is escaped with :mod:`escapism`: letters
and digits stay as they are, everything else becomes ``-XX`` hex codes. Because ``-``
itself is escaped, two different usernames never map to the same name.
"""

import hashlib
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


#: Longest slug: a DNS label, so the same names work for containers, volumes and pods.
MAX_SLUG = 63


def safe_slug(name: str, max_length: int = MAX_SLUG) -> str:
    """:func:`safe_name`, shortened to ``max_length`` when needed, still collision-free.

    A name that is too long keeps its beginning and gets ``--`` and a hash of the whole
    name. ``--`` never occurs in :func:`safe_name` output (the escape character is always
    followed by two hex digits), so a shortened name cannot equal an unshortened one.
    """
    slug = safe_name(name)
    if len(slug) <= max_length:
        return slug
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    return f"{slug[: max_length - len(digest) - 2]}--{digest}"


#: Longest Kubernetes object name that is also a DNS label (RFC 1123).
MAX_DNS_LABEL = 63
#: Shortest ``max_length`` :func:`dns_label` accepts: a letter, ``---`` and the hash.
MIN_DNS_LABEL = 12


def dns_label(name: str, max_length: int = MAX_DNS_LABEL) -> str:
    """A Kubernetes object name for ``name``: KubeSpawner's safe slug
    (:func:`kubespawner.slugs.safe_slug`), as KubeSpawner names pods.

    A name that is already a DNS label of at most ``max_length`` characters (lowercase
    letters, digits and ``-``, starting with a letter, ending with a letter or digit, no
    ``--``) stays as it is: ``ml-team``. Any other name becomes its lowercase letters and
    digits (each run of other characters written ``-``) cut to ``max_length - 11``
    characters, then ``---`` and the first 8 hex digits of the SHA-256 of the whole name
    (UTF-8): ``ML_Team`` -> ``ml-team---<hash>``. A changed name always has ``---`` and an
    unchanged one never has, so distinct names give distinct labels. The Helm chart
    computes the same (``dlhub.safeSlug`` in ``helm/dlhub/templates/_helpers.tpl``).
    """
    # imported here: kubespawner loads the Kubernetes client, which only the
    # kubernetes backend needs at start-up
    from kubespawner.slugs import safe_slug as kubespawner_safe_slug

    return kubespawner_safe_slug(name, max_length=max(max_length, MIN_DNS_LABEL))
