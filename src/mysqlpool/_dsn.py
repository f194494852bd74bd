"""Reading a DSN: ``mysql://user:password@host:port/db?option=value`` into a
:class:`~mysqlpool._params.ConnectParams`.

:func:`parse_dsn` with the table of connection options a DSN may set, and
:func:`resolve_params`, which merges a DSN (or params) with keyword overrides.
Pool options in the query string are not read here: ``Pool`` takes them out
first (``_options.split_pool_options``).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._driver_names import DRIVER_NAMES
from ._extras import EXPLICIT, keyword_defaults
from ._hostport import parse_hostport
from ._options import DSN_POOL_OPTIONS, POOL_OPTION_DEFAULTS, parse_bool
from ._params import ConnectParams
from ._query import invalid_dsn, percent_decode, query_items
from ._redaction import secret_candidates, show
from ._suggest import did_you_mean
from .errors import DriverNotInstalled

# ConnectParams is re-exported: "from ._dsn import ConnectParams, parse_dsn"
# was the import path before it had a module of its own.
__all__ = ["ConnectParams", "parse_dsn", "resolve_params"]

# Scheme -> the driver it asks for; a plain scheme means the default driver.
_SCHEMES = {
    "mysql": "aiomysql",
    "mariadb": "aiomysql",
    "mysql+aiomysql": "aiomysql",
    "mariadb+aiomysql": "aiomysql",
    "mysql+asyncmy": "asyncmy",
    "mariadb+asyncmy": "asyncmy",
}
_EXPECTED_SCHEMES = "expected mysql://, mariadb://, mysql+aiomysql:// or mysql+asyncmy://"

_DIGITS = re.compile(r"[0-9]+")


def _to_str(value: str) -> str:
    return value


def _to_timeout(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("is not a number") from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError("must be a positive number of seconds")
    return number


def _to_flags(value: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise ValueError("is not a non-negative integer")
    return int(value)


# DSN option -> (ConnectParams keyword, converter).
_OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "charset": ("charset", _to_str),
    "connect_timeout": ("connect_timeout", _to_timeout),
    "autocommit": ("autocommit", parse_bool),
    "init_command": ("init_command", _to_str),
    "sql_mode": ("sql_mode", _to_str),
    "unix_socket": ("unix_socket", _to_str),
    "local_infile": ("local_infile", parse_bool),
    "program_name": ("program_name", _to_str),
    "auth_plugin": ("auth_plugin", _to_str),
    "read_default_file": ("read_default_file", _to_str),
    "read_default_group": ("read_default_group", _to_str),
    "client_flag": ("client_flag", _to_flags),
    "ssl": ("ssl", parse_bool),
    "ssl_ca": ("ssl_ca", _to_str),
    "ssl_cert": ("ssl_cert", _to_str),
    "ssl_key": ("ssl_key", _to_str),
    "ssl_verify": ("ssl_verify", parse_bool),
    "ssl_allow_plaintext": ("ssl_allow_plaintext", parse_bool),
}


def parse_dsn(dsn: str) -> ConnectParams:
    """Parse ``mysql://user:password@host:port/db?option=value&...``.

    Schemes: ``mysql``, ``mariadb``, ``mysql+aiomysql`` (the aiomysql
    driver); ``mysql+asyncmy``, ``mariadb+asyncmy`` (asyncmy).  User, password
    and database are percent-decoded; an IPv6 host goes in brackets; the port
    defaults to 3306; an empty host is allowed only with ``unix_socket``.
    Options (``+`` in a value means a space): ``charset``, ``init_command``,
    ``sql_mode``, ``unix_socket``, ``program_name``, ``auth_plugin``,
    ``read_default_file``, ``read_default_group`` (text); ``connect_timeout``
    (seconds, float); ``autocommit``, ``local_infile``, ``ssl``,
    ``ssl_verify``, ``ssl_allow_plaintext`` (true/false, 1/0, yes/no,
    on/off); ``client_flag`` (int);
    ``ssl_ca``, ``ssl_cert``, ``ssl_key`` (file paths).  ``ssl=true`` alone
    gives a default verifying context; any ``ssl_*`` option turns TLS on.

    Raises:
        ValueError: a bad scheme, host, port, percent-encoding, an unknown,
            repeated, empty or ill-typed option, or unloadable TLS files.
            The message names the bad part and never contains the password.
        TypeError: ``dsn`` is not a str.
    """
    if not isinstance(dsn, str):
        raise TypeError(f"parse_dsn() needs a str, got {type(dsn).__name__}")
    secrets = secret_candidates(dsn)

    scheme, sep, rest = dsn.partition("://")
    if not sep:
        invalid_dsn(f"missing scheme; {_EXPECTED_SCHEMES}")
    driver = _SCHEMES.get(scheme.lower())
    if driver is None:
        invalid_dsn(f"unsupported scheme {show(scheme, secrets)}; {_EXPECTED_SCHEMES}")

    end = len(rest)
    for char in "/?#":
        found = rest.find(char)
        if found != -1:
            end = min(end, found)
    netloc, tail = rest[:end], rest[end:]
    if "#" in tail:
        invalid_dsn("a fragment ('#') is not allowed; percent-encode '#' in a password as %23")
    path, _, query = tail.partition("?")

    # Netloc values are never echoed: when the DSN is malformed, they may be
    # pieces of the password.
    userinfo, at, hostport = netloc.rpartition("@")
    user: str | None = None
    password = ""
    if at:
        raw_user, colon, raw_password = userinfo.partition(":")
        user = percent_decode(raw_user, "user") or None
        if colon:
            password = percent_decode(raw_password, "password")
        secrets = sorted({*secrets, password} - {""})
    try:
        if "," in hostport:
            several = [parse_hostport(part) for part in hostport.split(",")]
            if not all(name for name, _ in several):
                invalid_dsn("an empty host in the host list")
            hosts: list[tuple[str, int]] | None = [
                (name, 3306 if number is None else number) for name, number in several
            ]
            host, port = several[0]
        else:
            hosts = None
            host, port = parse_hostport(hostport)
    except ValueError as exc:
        if not at and "@" in tail:
            # Most likely user:password@ cut short by an unencoded character.
            raise ValueError(
                f"{exc} (if the password contains '/', '?' or '#', percent-encode it)"
            ) from None
        raise

    kwargs: dict[str, Any] = {"user": user, "password": password, "driver": driver}
    if port is not None:
        kwargs["port"] = port

    if path not in ("", "/"):
        name = path[1:]
        if "/" in name:
            invalid_dsn("the database name (path) must not contain '/'")
        kwargs["db"] = percent_decode(name, "database name")

    kwargs.update(_parse_query(query, secrets))

    if hosts is not None:
        kwargs["hosts"] = hosts
    elif host:
        kwargs["host"] = host
    elif "unix_socket" not in kwargs:
        invalid_dsn("no host given (an empty host needs the unix_socket option)")

    try:
        return ConnectParams(**kwargs)
    except ValueError as exc:
        # The constructor's messages are already password-free; say where
        # the value came from.
        raise ValueError(f"invalid DSN: {exc}") from None


def _parse_query(query: str, secrets: list[str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    seen: set[str] = set()
    for item in query_items(query, secrets):
        name, shown = item.name, item.shown
        if name in POOL_OPTION_DEFAULTS:
            invalid_dsn(
                f"{name} is a pool option, not a connection option: give this DSN to "
                "Pool(), create_pool() or PoolManager"
            )
        if name not in _OPTIONS:
            invalid_dsn(_unknown_option(name, shown))
        if name in seen:
            invalid_dsn(f"option {shown} given more than once")
        seen.add(name)
        if item.raw_value is None:
            invalid_dsn(f"option {shown} has no value")
        value = item.value()
        if not value:
            invalid_dsn(f"option {shown} has an empty value")
        keyword, convert = _OPTIONS[name]
        try:
            kwargs[keyword] = convert(value)
        except ValueError as exc:
            invalid_dsn(f"option {shown}: {show(value, secrets)} {exc}")
    return kwargs


def _unknown_option(name: str, shown: str) -> str:
    # Both kinds are listed: Pool() takes its own options out of the query
    # string before parsing it, so a misspelt pool option ends up here.
    hint = did_you_mean(name, [*_OPTIONS, *DSN_POOL_OPTIONS])
    return (
        f"unknown option {shown}{hint}; connection options: {', '.join(sorted(_OPTIONS))}; "
        f"pool options: {', '.join(DSN_POOL_OPTIONS)}"
    )


def _check_keywords(overrides: Mapping[str, Any]) -> None:
    """A keyword neither ConnectParams nor the driver's connect takes gets a
    TypeError with the nearest connection or pool option: pool options that
    reach here were misspelt, since Pool() takes its own by name.

    The driver is ``driver=`` when given; else the keywords of every
    installed driver are accepted here (the DSN may name the driver, and
    ConnectParams checks the keywords against it)."""
    driver = overrides.get("driver")
    names = [driver] if driver in DRIVER_NAMES else DRIVER_NAMES
    accepted = {*EXPLICIT, "hosts", "loop", "driver"}
    for name in names:
        with contextlib.suppress(DriverNotInstalled):
            accepted.update(keyword_defaults(name))
    for name in overrides:
        if name not in accepted:
            hint = did_you_mean(name, [*accepted - {"loop"}, *POOL_OPTION_DEFAULTS])
            raise TypeError(f"unexpected keyword argument {name!r}{hint}")


def resolve_params(dsn: str | ConnectParams | None, overrides: Mapping[str, Any]) -> ConnectParams:
    """What ``Pool(dsn, **connect_kwargs)`` and the manager accept, as one ConnectParams.

    A DSN string or a ConnectParams, with keyword overrides on top; or just
    the keywords when ``dsn`` is None.
    """
    _check_keywords(overrides)
    if dsn is None:
        return ConnectParams(**overrides)
    if isinstance(dsn, str):
        params = parse_dsn(dsn)
    elif isinstance(dsn, ConnectParams):
        params = dsn
    else:
        raise TypeError(f"expected a DSN string or a ConnectParams, got {type(dsn).__name__}")
    return params.replace(**overrides) if overrides else params
