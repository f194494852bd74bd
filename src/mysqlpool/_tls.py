"""TLS for a connection: the ``ssl.SSLContext`` given, or the one built from
``ssl_ca``, ``ssl_cert``, ``ssl_key`` and ``ssl_verify``.
"""

from __future__ import annotations

import ssl as _ssl
from collections.abc import Iterable

from ._redaction import show

__all__ = ["SSL_SETTING_NAMES", "SslSettings", "build_ssl_context", "resolve_tls"]

#: The keywords that describe a context to build, in :data:`SslSettings` order.
SSL_SETTING_NAMES = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_verify")

#: ``(ssl_ca, ssl_cert, ssl_key, ssl_verify)`` a context was built from.
SslSettings = tuple[str | None, str | None, str | None, bool]


def resolve_tls(
    ssl: _ssl.SSLContext | bool | None,
    ssl_ca: str | None,
    ssl_cert: str | None,
    ssl_key: str | None,
    ssl_verify: bool | None,
    secrets: Iterable[str],
) -> tuple[_ssl.SSLContext | None, SslSettings | None]:
    """The context to connect with, and the settings it was built from.

    The settings are ``None`` when there is no TLS or the caller gave the
    context: then there is nothing to rebuild it from.

    Raises:
        TypeError: ``ssl`` is not a context, a bool or None.
        ValueError: a context together with settings, ``ssl=False`` with
            settings, or files that cannot be loaded.
    """
    has_settings = any(v is not None for v in (ssl_ca, ssl_cert, ssl_key, ssl_verify))
    if isinstance(ssl, _ssl.SSLContext):
        if has_settings:
            raise ValueError(
                "ConnectParams(): give either an ssl context or ssl_ca/ssl_cert/ssl_key/"
                "ssl_verify, not both"
            )
        return ssl, None
    if ssl is True or (ssl is None and has_settings):
        settings = (ssl_ca, ssl_cert, ssl_key, True if ssl_verify is None else ssl_verify)
        return build_ssl_context(settings, secrets), settings
    if ssl is False or ssl is None:
        if has_settings:
            raise ValueError(
                "ConnectParams(): ssl=False conflicts with ssl_ca/ssl_cert/ssl_key/ssl_verify"
            )
        return None, None
    raise TypeError(
        f"ConnectParams(): ssl must be an ssl.SSLContext, a bool or None, got {type(ssl).__name__}"
    )


def build_ssl_context(settings: SslSettings, secrets: Iterable[str]) -> _ssl.SSLContext:
    """A context from ``settings``; an error names the file, never a secret.

    Raises:
        ValueError: a key without a certificate, or files that cannot be loaded.
    """
    ca, cert, key, verify = settings
    if key is not None and cert is None:
        raise ValueError("ssl_key given without ssl_cert")
    try:
        context = _ssl.create_default_context(cafile=ca)
    except (OSError, _ssl.SSLError) as exc:
        raise ValueError(f"cannot load ssl_ca {show(ca or '', secrets)}: {_reason(exc)}") from None
    if not verify:
        # Order matters: verify_mode cannot be CERT_NONE while check_hostname is on.
        context.check_hostname = False
        context.verify_mode = _ssl.CERT_NONE
    if cert is not None:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, _ssl.SSLError) as exc:
            raise ValueError(
                f"cannot load ssl_cert {show(cert, secrets)}"
                + (f" / ssl_key {show(key, secrets)}" if key is not None else "")
                + f": {_reason(exc)}"
            ) from None
    return context


def _reason(exc: BaseException) -> str:
    # strerror alone: the message already names the file, and "[Errno 2]"
    # tells a user nothing "No such file or directory" does not.
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
