"""How passwords of any length become bcrypt input (pure).

bcrypt reads at most 72 bytes of a password, and bcrypt 5 refuses longer input instead
of cutting it. dlhub accepts passwords of up to :data:`MAX_LENGTH` characters:

- a password of at most 72 bytes (UTF-8) is hashed as it is, exactly as
  NativeAuthenticator always did, so every stored hash stays valid;
- a longer one is first reduced with SHA-256 to a fixed 71-character secret
  (:data:`PREHASH_PREFIX` and the hex digest), which bcrypt then hashes; every
  character of the password counts. The secret is longer than any
  ``minimum_password_length`` allowed (64), so strength checks on it pass where the
  password's own did.

A password longer than :data:`MAX_LENGTH` is refused at sign-up and password change and
never matches at log-in (:func:`bcrypt_secret` still maps it to a secret, cheaply, so a
log-in with it is simply a wrong password).
"""

from __future__ import annotations

import hashlib

#: Longest password accepted at sign-up or password change, in characters.
MAX_LENGTH = 1024
#: What bcrypt reads of its input.
BCRYPT_MAX_BYTES = 72
#: Marks a reduced long password (no password of 72 bytes or less is reduced).
PREHASH_PREFIX = "sha256:"


def bcrypt_secret(password: str) -> str:
    """The string bcrypt hashes for ``password``: itself when bcrypt can take it whole,
    else a SHA-256 reduction of all of it. Idempotent (a reduction is short)."""
    raw = password.encode("utf-8")
    if len(raw) <= BCRYPT_MAX_BYTES:
        return password
    return PREHASH_PREFIX + hashlib.sha256(raw).hexdigest()


def problem(password: str) -> str | None:
    """Why ``password`` cannot be chosen (length only; strength is NativeAuthenticator's)."""
    if len(password) > MAX_LENGTH:
        return (
            f"That password has {len(password)} characters; please choose one of at most "
            f"{MAX_LENGTH}."
        )
    return None
