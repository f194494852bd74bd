"""Keeping the password out of what users see: error messages, pool keys and
the redacted DSN.

Error messages go through :func:`show`, which withholds any text that looks
like part of a secret; :func:`secret_candidates` finds those secrets in a DSN
before it is parsed.  A pool key holds only :func:`password_digest`, and the
redacted DSN (``_display``) shows values a DSN cannot hold through
:func:`describe`, never by their ``repr()``.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

__all__ = ["describe", "password_digest", "secret_candidates", "show"]

# Salted so that a key (which may end up in logs or stats) cannot be checked
# against a password list offline; per process, so keys are only meaningful
# inside the process that made them, which is all a pool needs.
_PASSWORD_SALT = os.urandom(32)


def password_digest(password: str | bytes) -> str:
    """Salted SHA-256 of ``password``: comparable within this process only."""
    raw = password.encode("utf-8") if isinstance(password, str) else bytes(password)
    return hashlib.sha256(_PASSWORD_SALT + raw).hexdigest()


def show(text: str, secrets: Iterable[str]) -> str:
    """``repr(text)`` for an error message, unless it would reveal a secret.

    Also withheld when ``text`` is only a piece of a secret: a malformed DSN
    can cut a password in two, and half a password is still a leak.
    """
    for secret in secrets:
        if secret and text and (secret in text or text in secret):
            return "<withheld: looks like part of the password>"
    return repr(text)


def secret_candidates(dsn: str) -> list[str]:
    """Strings an error message must not contain (or be part of).

    Found before parsing so that even a DSN too malformed to parse cannot
    leak its password: if the normal split finds no ``user:password@``, the
    text up to the last ``@`` is assumed to be one (an unencoded ``/``, ``?``
    or ``#`` in a password ends the netloc early).
    """
    rest = dsn.partition("://")[2] or dsn
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        userinfo, at, _ = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return []
    raw = userinfo.partition(":")[2]
    # Lenient decodings on purpose: the password may be malformed, and any
    # spelling of it must be withheld.
    candidates = {raw, urllib.parse.unquote(raw), urllib.parse.unquote_plus(raw)}
    return sorted(c for c in candidates if c)


def describe(value: Any) -> str:
    """Short text for a non-DSN option in the redacted DSN."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    name = getattr(value, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(value).__name__
