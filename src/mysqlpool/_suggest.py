"""The nearest known name to a misspelt one, for "did you mean ...?" hints."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" (did you mean pool_size?)"`` for the known name closest to
    ``name``, or ``""`` when none is close enough to be a likely typo.

    Only a known name is ever shown, so the hint can't echo a secret.
    """
    # 0.75 accepts one or two wrong letters in a name of six or more, and
    # rejects pairs such as "bogus"/"host" that share only a letter or two.
    close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""
