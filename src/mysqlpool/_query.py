"""Reading the text of a DSN: strict percent-decoding, and the query string
split into items.

One decoding rule for every part of a DSN, connection and pool options
alike: a stray ``%`` or invalid UTF-8 is an error that names the part, and
``+`` in a query item means a space.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NoReturn

from ._redaction import show

__all__ = ["QueryItem", "invalid_dsn", "percent_decode", "query_items"]

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def invalid_dsn(message: str) -> NoReturn:
    """Raise the ``ValueError`` for a malformed DSN; ``message`` must hold no secret."""
    raise ValueError(f"invalid DSN: {message}")


def percent_decode(text: str, part: str, *, plus: bool = False) -> str:
    """Strict percent-decoding: a stray ``%`` or invalid UTF-8 is an error.

    Lenient decoding would silently turn a mistyped password into a
    different one; the error names ``part`` and never echoes ``text``.
    """
    if plus:
        text = text.replace("+", " ")
    if _BAD_PERCENT.search(text):
        invalid_dsn(f"{part} is not valid percent-encoding (write a literal '%' as %25)")
    try:
        return urllib.parse.unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        invalid_dsn(f"{part} is not valid UTF-8 after percent-decoding")


@dataclass(frozen=True)
class QueryItem:
    """One ``name=value`` item of a query string."""

    #: The decoded name.
    name: str
    #: The item as it was written, to rebuild a query without some items.
    text: str
    #: The name as an error message may show it (withheld if it looks like
    #: part of the password).
    shown: str
    #: The value as written; ``None`` when the item has no ``=``.
    raw_value: str | None

    def value(self) -> str:
        """The decoded value; ``""`` when the item has no ``=``.

        Raises:
            ValueError: the value is not valid percent-encoding or UTF-8.
        """
        if self.raw_value is None:
            return ""
        return percent_decode(self.raw_value, f"the value of option {self.shown}", plus=True)


def query_items(query: str, secrets: Iterable[str]) -> Iterator[QueryItem]:
    """The items of ``query`` (the text after ``?``), in order.

    Empty items (``"?"``, ``"&&"``, a trailing ``"&"``) are skipped.  Names
    are decoded as each item is reached and values only when asked for, so
    a caller checking its items one by one reports the first problem in the
    order it reads them: a bad or unknown name before a bad value.

    Raises:
        ValueError: a name that is not valid percent-encoding or UTF-8.
    """
    secrets = list(secrets)
    for item in query.split("&"):
        if not item:
            continue
        raw_name, eq, raw_value = item.partition("=")
        name = percent_decode(raw_name, "an option name", plus=True)
        yield QueryItem(name, item, show(name, secrets), raw_value if eq else None)
