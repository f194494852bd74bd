"""Connection parameters: what ``aiomysql.connect`` is called with, and the
pool key derived from them.

A :class:`ConnectParams` is built from keywords (the ones ``aiomysql.connect``
takes); :func:`~mysqlpool._dsn.parse_dsn` builds one from a DSN.  It never
shows the clear password in ``str()``, ``repr()``, its ``key`` or an error
message.
"""

from __future__ import annotations

import inspect
import math
import ssl as _ssl
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, NoReturn

from ._display import redacted_dsn
from ._driver_names import DEFAULT_DRIVER, check_driver_name
from ._extras import EXPLICIT, copy_value, freeze, keep_extras
from ._hostport import check_hosts
from ._redaction import password_digest
from ._tls import SSL_SETTING_NAMES, SslSettings, resolve_tls

__all__ = ["ConnectParams"]


def _require(name: str, value: object, types: type | tuple[type, ...], what: str) -> None:
    # bool is an int subclass; a port or flag of True is a caller bug.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise TypeError(f"ConnectParams(): {name} must be {what}, got {type(value).__name__}")


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


class ConnectParams:
    """Immutable keyword arguments for ``aiomysql.connect``, plus the pool key.

    Takes the ``aiomysql.connect`` keywords (all keyword-only) with
    aiomysql's defaults, except ``autocommit``, which defaults to ``True``:
    a pooled connection with autocommit off may hold an open transaction
    (and its locks and snapshot) while idle, so every return to the pool
    would need a ``ROLLBACK`` round trip.  Pass ``autocommit=False`` to get
    aiomysql's behaviour.

    TLS: ``ssl`` is an ``ssl.SSLContext``, or ``True`` for a default
    (verifying) context.  Instead of a context, ``ssl_ca``, ``ssl_cert``,
    ``ssl_key`` (file paths) and ``ssl_verify`` (default ``True``) build one;
    any of them turns TLS on.  ``ssl_verify=False`` turns off certificate and
    host name checks.  With TLS configured, a server that doesn't offer it
    is refused (error 2026) where aiomysql would go on in plaintext;
    ``ssl_allow_plaintext=True`` goes on in plaintext as aiomysql does
    (logging a warning for each such connection).

    ``driver`` says which driver opens the connections: ``"aiomysql"`` (the
    default) or ``"asyncmy"`` (``pip install 'mysqlpool[asyncmy]'``).

    Any other keyword the driver's ``connect`` accepts (aiomysql's ``conv``,
    ``cursorclass``, ``echo``, ``use_unicode``, ...; asyncmy's ``cursor_cls``,
    ``stmt_cache_size``, ``read_timeout``, ...) is kept in :attr:`extra`.
    ``loop`` is not accepted: connections are made on the running loop.

    Equal parameters compare equal and hash alike (by :attr:`key`).

    Raises:
        TypeError: an unknown keyword, or a value of the wrong type.
        ValueError: a value out of range, conflicting TLS settings, or TLS
            files that cannot be loaded.
    """

    __slots__ = (
        "_extra",
        "_hosts",
        "_key",
        "_ssl_settings",
        "auth_plugin",
        "autocommit",
        "charset",
        "client_flag",
        "connect_timeout",
        "db",
        "driver",
        "host",
        "init_command",
        "local_infile",
        "password",
        "port",
        "program_name",
        "read_default_file",
        "read_default_group",
        "server_public_key",
        "sql_mode",
        "ssl",
        "ssl_allow_plaintext",
        "unix_socket",
        "user",
    )

    host: str
    port: int
    user: str | None
    password: str | bytes
    db: str | None
    driver: str
    unix_socket: str | None
    charset: str
    sql_mode: str | None
    init_command: str | None
    connect_timeout: float | None
    autocommit: bool
    local_infile: bool
    ssl: _ssl.SSLContext | None
    ssl_allow_plaintext: bool
    auth_plugin: str
    program_name: str
    server_public_key: str | bytes | None
    client_flag: int
    read_default_file: str | None
    read_default_group: str | None
    _ssl_settings: SslSettings | None
    _extra: dict[str, Any]
    _hosts: tuple[tuple[str, int], ...]
    _key: tuple[tuple[str, Any], ...]

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int = 3306,
        user: str | None = None,
        password: str | bytes = "",
        db: str | None = None,
        unix_socket: str | None = None,
        charset: str = "",
        sql_mode: str | None = None,
        init_command: str | None = None,
        connect_timeout: float | None = None,
        autocommit: bool = True,
        local_infile: bool = False,
        ssl: _ssl.SSLContext | bool | None = None,
        ssl_ca: str | None = None,
        ssl_cert: str | None = None,
        ssl_key: str | None = None,
        ssl_verify: bool | None = None,
        ssl_allow_plaintext: bool = False,
        auth_plugin: str = "",
        program_name: str = "",
        server_public_key: str | bytes | None = None,
        client_flag: int = 0,
        read_default_file: str | None = None,
        read_default_group: str | None = None,
        hosts: Iterable[tuple[str, int] | str] | None = None,
        driver: str = DEFAULT_DRIVER,
        **extra: Any,
    ) -> None:
        check_driver_name(driver, "ConnectParams()")
        if driver == "asyncmy" and auth_plugin:
            raise ValueError(
                "ConnectParams(): auth_plugin is not supported by the asyncmy driver "
                "(it follows the server's choice of plugin)"
            )
        if hosts is not None:
            host_list = check_hosts(hosts)
            host, port = host_list[0]
            if unix_socket is not None and len(host_list) > 1:
                raise ValueError(
                    "ConnectParams(): unix_socket can't be combined with several hosts"
                )
        if not isinstance(password, (str, bytes)):
            raise TypeError(
                f"ConnectParams(): password must be str or bytes, got {type(password).__name__}"
            )
        _require("host", host, str, "a str")
        if not host:
            raise ValueError("ConnectParams(): host must not be empty")
        _require("port", port, int, "an int")
        if not 1 <= port <= 65535:
            raise ValueError(f"ConnectParams(): port must be from 1 to 65535, got {port}")
        for name, value in (
            ("user", user),
            ("db", db),
            ("unix_socket", unix_socket),
            ("sql_mode", sql_mode),
            ("init_command", init_command),
            ("read_default_file", read_default_file),
            ("read_default_group", read_default_group),
            ("ssl_ca", ssl_ca),
            ("ssl_cert", ssl_cert),
            ("ssl_key", ssl_key),
        ):
            if value is not None:
                _require(name, value, str, "a str or None")
        for name, value in (
            ("charset", charset),
            ("auth_plugin", auth_plugin),
            ("program_name", program_name),
        ):
            _require(name, value, str, "a str")
        for name, flag in (
            ("autocommit", autocommit),
            ("local_infile", local_infile),
            ("ssl_allow_plaintext", ssl_allow_plaintext),
        ):
            _require(name, flag, bool, "a bool")
        if ssl_verify is not None:
            _require("ssl_verify", ssl_verify, bool, "a bool or None")
        _require("client_flag", client_flag, int, "an int")
        if server_public_key is not None:
            _require("server_public_key", server_public_key, (str, bytes), "str, bytes or None")
        timeout: float | None = None
        if connect_timeout is not None:
            _require("connect_timeout", connect_timeout, (int, float), "a number or None")
            timeout = float(connect_timeout)
            if not (math.isfinite(timeout) and timeout > 0):
                raise ValueError(
                    f"ConnectParams(): connect_timeout must be a positive number, got {timeout}"
                )

        kept = keep_extras(extra, driver)

        secrets = [password] if isinstance(password, str) else []
        context, settings = resolve_tls(ssl, ssl_ca, ssl_cert, ssl_key, ssl_verify, secrets)

        setattr_ = object.__setattr__
        setattr_(self, "host", host)
        setattr_(self, "port", port)
        setattr_(self, "user", user)
        setattr_(self, "password", password)
        setattr_(self, "db", db)
        setattr_(self, "driver", driver)
        setattr_(self, "unix_socket", unix_socket)
        setattr_(self, "charset", charset)
        setattr_(self, "sql_mode", sql_mode)
        setattr_(self, "init_command", init_command)
        setattr_(self, "connect_timeout", timeout)
        setattr_(self, "autocommit", autocommit)
        setattr_(self, "local_infile", local_infile)
        setattr_(self, "ssl", context)
        setattr_(self, "ssl_allow_plaintext", ssl_allow_plaintext)
        setattr_(self, "auth_plugin", auth_plugin)
        setattr_(self, "program_name", program_name)
        setattr_(self, "server_public_key", server_public_key)
        setattr_(self, "client_flag", client_flag)
        setattr_(self, "read_default_file", read_default_file)
        setattr_(self, "read_default_group", read_default_group)
        setattr_(self, "_ssl_settings", settings)
        setattr_(self, "_extra", kept)
        setattr_(self, "_hosts", tuple(host_list) if hosts is not None else ((host, port),))
        setattr_(self, "_key", self._make_key())

    def _make_key(self) -> tuple[tuple[str, Any], ...]:
        # A context built from settings is described by them (equal settings,
        # equal contexts); a caller's context is mutable and opaque, so only
        # its identity is safe.
        ssl_part: Any = (
            ("settings", *self._ssl_settings) if self._ssl_settings is not None else self.ssl
        )
        return (
            ("driver", self.driver),
            ("hosts", self._hosts),  # in order: it is the failover order
            ("unix_socket", self.unix_socket),
            ("user", self.user),
            ("password_sha256", password_digest(self.password)),
            ("db", self.db),
            ("charset", self.charset),
            ("sql_mode", self.sql_mode),
            ("init_command", self.init_command),
            ("connect_timeout", self.connect_timeout),
            ("autocommit", self.autocommit),
            ("local_infile", self.local_infile),
            ("ssl", ssl_part),
            ("ssl_allow_plaintext", self.ssl_allow_plaintext),
            ("auth_plugin", self.auth_plugin),
            ("program_name", self.program_name),
            ("server_public_key", self.server_public_key),
            ("client_flag", self.client_flag),
            ("read_default_file", self.read_default_file),
            ("read_default_group", self.read_default_group),
            ("extra", tuple(sorted((k, freeze(v)) for k, v in self._extra.items()))),
        )

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"ConnectParams is immutable; use replace({name}=...)")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("ConnectParams is immutable")

    @property
    def key(self) -> tuple[tuple[str, Any], ...]:
        """Hashable identity of the connection: equal keys may share a pool.

        A tuple of ``(name, value)`` pairs covering every connect option;
        the password appears only as a salted SHA-256 digest, so the key is
        safe to log but comparable only within this process.
        """
        return self._key

    @property
    def hosts(self) -> list[tuple[str, int]]:
        """The servers to connect to, in the DSN's order, as ``[(host, port), ...]``.

        ``host`` and ``port`` are the first of them.
        """
        return list(self._hosts)

    def for_host(self, host: str, port: int) -> ConnectParams:
        """These parameters for one server of :attr:`hosts` (or any other)."""
        if self._hosts == ((host, port),):
            return self
        return self.replace(host=host, port=port)

    @property
    def extra(self) -> Mapping[str, Any]:
        """Other keywords of the driver's ``connect`` given (read-only view)."""
        return MappingProxyType(self._extra)

    @property
    def ssl_ca(self) -> str | None:
        """CA file the ssl context was built from, if any."""
        return self._ssl_settings[0] if self._ssl_settings else None

    @property
    def ssl_cert(self) -> str | None:
        """Client certificate file the ssl context was built from, if any."""
        return self._ssl_settings[1] if self._ssl_settings else None

    @property
    def ssl_key(self) -> str | None:
        """Client key file the ssl context was built from, if any."""
        return self._ssl_settings[2] if self._ssl_settings else None

    @property
    def ssl_verify(self) -> bool | None:
        """Whether the built ssl context verifies the server; ``None`` when
        there is no TLS or the caller gave the context."""
        return self._ssl_settings[3] if self._ssl_settings else None

    def connect_kwargs(self) -> dict[str, Any]:
        """Keywords for the driver's ``connect(**kw)`` as aiomysql names them
        (no ``loop``, no ``driver``); a fresh dict."""
        kwargs: dict[str, Any] = {name: getattr(self, name) for name in EXPLICIT}
        kwargs.update((name, copy_value(value)) for name, value in self._extra.items())
        return kwargs

    def replace(self, **changes: Any) -> ConnectParams:
        """A copy with ``changes`` applied (same keywords as the constructor).

        Giving ``ssl`` drops the ``ssl_*`` settings not given alongside it;
        giving an ``ssl_*`` setting replaces a caller-supplied context.

        Raises:
            TypeError, ValueError: as the constructor.
        """
        kwargs = self._init_kwargs()
        if "ssl" in changes:
            for name in SSL_SETTING_NAMES:
                kwargs.pop(name, None)
        elif any(name in changes for name in SSL_SETTING_NAMES) and self._ssl_settings is None:
            kwargs["ssl"] = None
        if ("host" in changes or "port" in changes) and "hosts" not in changes:
            kwargs.pop("hosts", None)  # a single host given: it replaces the list
        kwargs.update(changes)
        return ConnectParams(**kwargs)

    def _init_kwargs(self) -> dict[str, Any]:
        kwargs = self.connect_kwargs()
        if self.driver != DEFAULT_DRIVER:
            kwargs["driver"] = self.driver
        if len(self._hosts) > 1:
            kwargs["hosts"] = list(self._hosts)
        if self._ssl_settings is not None:
            kwargs["ssl"] = None
            kwargs.update(zip(SSL_SETTING_NAMES, self._ssl_settings, strict=True))
        if self.ssl_allow_plaintext:
            kwargs["ssl_allow_plaintext"] = True  # not an aiomysql keyword
        return kwargs

    def redacted(self) -> str:
        """This as a DSN with the password shown as ``***``.

        Options that differ from the defaults appear in the query string;
        ones a DSN cannot express (an ssl context, ``conv``, ...) appear as a
        short description, so the result is for display, not for parsing.
        """
        return redacted_dsn(self, _DEFAULTS)

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"ConnectParams({self.redacted()!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ConnectParams):
            return self._key == other._key
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key)

    def __copy__(self) -> ConnectParams:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ConnectParams:
        return self

    def __reduce__(self) -> tuple[Callable[[dict[str, Any]], ConnectParams], tuple[Any, ...]]:
        # The default reduce would restore slots through __setattr__, which
        # refuses; rebuilding also recomputes the digest with this process's salt.
        return (_rebuild, (self._init_kwargs(),))


def _rebuild(kwargs: dict[str, Any]) -> ConnectParams:
    return ConnectParams(**kwargs)


# The constructor's defaults: redacted() shows only the options that differ.
_DEFAULTS: dict[str, Any] = {
    name: p.default
    for name, p in inspect.signature(ConnectParams.__init__).parameters.items()
    if p.kind is p.KEYWORD_ONLY
}
