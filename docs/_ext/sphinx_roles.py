"""A griffe extension for the API reference: Sphinx roles in docstrings
(``:class:`Pool```, ``:meth:`release```) become Markdown code spans.

The docstrings keep the roles (they read well in ``help()`` and editors);
mkdocstrings renders Markdown, where a role would show up verbatim.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|exc|mod|data|obj):`~?([\w.]+)`")


def _as_code(match: re.Match[str]) -> str:
    return f"`{match.group(1)}`"


class SphinxRolesToCode(griffe.Extension):
    """Rewrite each object's docstring once it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_as_code, obj.docstring.value)
