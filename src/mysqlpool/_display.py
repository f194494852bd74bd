"""ConnectParams shown as a DSN with the password as ``***``: what ``str()``,
``repr()`` and a pool's default name show.

Options that differ from the defaults appear in the query string; ones a
DSN cannot express (an ssl context, ``conv``, ...) appear as a short
description, so the text is for display, not for parsing.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._hostport import quote_host
from ._redaction import describe

if TYPE_CHECKING:
    from ._params import ConnectParams

__all__ = ["redacted_dsn"]

# The connection options a DSN can hold, in the order they are shown.
_SHOWN = (
    "unix_socket",
    "charset",
    "connect_timeout",
    "autocommit",
    "init_command",
    "sql_mode",
    "local_infile",
    "program_name",
    "auth_plugin",
    "read_default_file",
    "read_default_group",
    "client_flag",
)


def redacted_dsn(params: ConnectParams, defaults: Mapping[str, Any]) -> str:
    """``params`` as a DSN, the password as ``***``; ``defaults`` are the
    constructor's, so that only options that differ are shown."""
    userinfo = ""
    if params.user is not None:
        userinfo = urllib.parse.quote(params.user, safe="")
    if params.password:
        userinfo += ":***"
    if userinfo:
        userinfo += "@"
    netloc = ",".join(f"{quote_host(host)}:{port}" for host, port in params.hosts)
    path = "/" + urllib.parse.quote(params.db, safe="") if params.db else ""
    options = _options(params, defaults)
    query = "&".join(f"{name}={_quote_value(value)}" for name, value in options)
    # The default driver's DSNs say plain mysql://, as the user most likely wrote.
    scheme = "mysql" if params.driver == defaults["driver"] else f"mysql+{params.driver}"
    if query:
        return f"{scheme}://{userinfo}{netloc}{path or '/'}?{query}"
    return f"{scheme}://{userinfo}{netloc}{path}"


def _options(params: ConnectParams, defaults: Mapping[str, Any]) -> list[tuple[str, str]]:
    options: list[tuple[str, str]] = []
    for name in _SHOWN:
        value = getattr(params, name)
        if value == defaults[name]:
            continue
        if isinstance(value, float) and value.is_integer():
            options.append((name, str(int(value))))
        else:
            options.append((name, describe(value)))
    if params.ssl_verify is not None:  # the context was built from ssl_* settings
        ca, cert, key = params.ssl_ca, params.ssl_cert, params.ssl_key
        given = [("ssl_ca", ca), ("ssl_cert", cert), ("ssl_key", key)]
        options.extend((name, value) for name, value in given if value is not None)
        if not params.ssl_verify:
            options.append(("ssl_verify", "false"))
        elif ca is None and cert is None:
            options.append(("ssl", "true"))
    elif params.ssl is not None:
        options.append(("ssl", "SSLContext"))
    if params.ssl_allow_plaintext:
        options.append(("ssl_allow_plaintext", "true"))
    if params.server_public_key is not None:
        options.append(("server_public_key", "given"))
    extra = params.extra
    options.extend((name, describe(extra[name])) for name in sorted(extra))
    return options


def _quote_value(text: str) -> str:
    # Keep paths readable ("/etc/ssl/ca.pem"), encode everything else.
    return urllib.parse.quote(text, safe="/:")
