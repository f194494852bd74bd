"""Host and port as a DSN writes them: ``host``, ``host:port``, ``[v6]:port``,
and the ``hosts=`` list, whose items may be written that way too.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Iterable

from ._query import invalid_dsn, percent_decode

__all__ = ["check_hosts", "parse_hostport", "quote_host"]

_PORT = re.compile(r"[0-9]{1,5}")


def parse_hostport(hostport: str) -> tuple[str, int | None]:
    """``"host"``, ``"host:port"`` or ``"[v6]:port"`` as ``(host, port)``; the
    host percent-decoded, the port ``None`` when not given.

    Raises:
        ValueError: an "invalid DSN" error naming what is wrong; the text is
            never echoed (in a malformed DSN it may be a piece of the password).
    """
    if hostport.startswith("["):
        close = hostport.find("]")
        if close == -1:
            invalid_dsn("IPv6 host is missing its closing ']'")
        host = percent_decode(hostport[1:close], "host")
        after = hostport[close + 1 :]
        if after and not after.startswith(":"):
            invalid_dsn("unexpected text after the bracketed IPv6 host")
        port_text = after[1:] if after else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            invalid_dsn("the bracketed host is not a valid IPv6 address")
    else:
        raw_host, colon, rest = hostport.partition(":")
        if ":" in rest:
            invalid_dsn("host contains ':'; put an IPv6 address in brackets, e.g. [::1]:3306")
        if "[" in raw_host or "]" in raw_host:
            invalid_dsn("host contains a bracket outside an IPv6 address")
        host = percent_decode(raw_host, "host")
        port_text = rest if colon else None
    if port_text is None:
        return host, None
    if not port_text:
        invalid_dsn("empty port after ':'")
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        invalid_dsn("port is not an integer from 1 to 65535")
    return host, int(port_text)


def quote_host(host: str) -> str:
    """``host`` as :func:`parse_hostport` reads it back (IPv6 in brackets)."""
    if ":" in host:
        return "[" + host.replace("%", "%25") + "]"
    return urllib.parse.quote(host, safe="")


def check_hosts(hosts: Iterable[tuple[str, int] | str]) -> list[tuple[str, int]]:
    """``hosts=`` as a list of ``(host, port)``: each a pair or ``"host[:port]"``."""
    if isinstance(hosts, (str, bytes)):
        raise TypeError(
            "ConnectParams(): hosts must be a list of (host, port) pairs or 'host:port' strings, "
            "not one string"
        )
    checked: list[tuple[str, int]] = []
    for item in hosts:
        if isinstance(item, str):
            host, port = parse_hostport(item)
            pair = (host, 3306 if port is None else port)
        elif (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], int)
            and not isinstance(item[1], bool)
        ):
            pair = item
        else:
            raise TypeError(
                f"ConnectParams(): each of hosts must be a (host, port) pair or a 'host:port' "
                f"string, got {item!r}"
            )
        if not pair[0]:
            raise ValueError("ConnectParams(): a host in hosts is empty")
        if not 1 <= pair[1] <= 65535:
            raise ValueError(f"ConnectParams(): port must be from 1 to 65535, got {pair[1]}")
        if pair in checked:
            raise ValueError(f"ConnectParams(): {pair[0]}:{pair[1]} is listed twice in hosts")
        checked.append(pair)
    if not checked:
        raise ValueError("ConnectParams(): hosts is empty")
    return checked
