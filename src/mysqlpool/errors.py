"""Errors raised by mysqlpool itself.

Errors from the server or the driver (PyMySQL's ``OperationalError`` and
friends) are not wrapped: they reach the caller unchanged.
"""

from __future__ import annotations

import pymysql

__all__ = [
    "DriverNotInstalled",
    "NoServerAvailable",
    "PoolClosed",
    "PoolError",
    "PoolOverloaded",
    "PoolTimeout",
    "no_server_available_for",
]


class PoolError(Exception):
    """Base class of every error mysqlpool raises, and the error for misuse
    such as releasing a connection twice or one the pool never handed out."""

    __module__ = "mysqlpool"


class PoolTimeout(PoolError, TimeoutError):
    """``acquire()`` waited its whole timeout without getting a connection.

    A subclass of the builtin ``TimeoutError`` (and so of
    ``asyncio.TimeoutError`` on Python 3.11+), so generic timeout handling
    catches it too.
    """

    __module__ = "mysqlpool"


class PoolOverloaded(PoolTimeout):
    """``acquire()`` was refused at once: ``max_waiting`` acquirers were
    already queued for a connection.

    A :class:`PoolTimeout`, so code that answers a busy pool (a 503 with
    ``Retry-After``) answers this too; it comes without the wait, so a
    request that would queue behind work likely to time out fails fast.
    """

    __module__ = "mysqlpool"


class PoolClosed(PoolError):
    """The pool is closing or closed: it hands out no more connections."""

    __module__ = "mysqlpool"


class NoServerAvailable(PoolError, pymysql.err.OperationalError):
    """No server of a pool's host list could give a usable connection.

    Raised when every host failed to connect, or answered in the wrong role
    for the pool's ``target``, or is a Galera node that is not Synced; the
    message names each host and why. Also the driver's ``OperationalError``
    (PyMySQL's; asyncmy's too for a pool on asyncmy) with the "can't
    connect" code 2003 in ``args[0]``, so code that handles a server that is
    down keeps working with several hosts.
    """

    __module__ = "mysqlpool"

    #: The driver's CR_CONN_HOST_ERROR: "Can't connect to MySQL server".
    CODE = 2003

    def __init__(self, message: str) -> None:
        super().__init__(self.CODE, message)

    def __str__(self) -> str:
        return str(self.args[1])


# One subclass per driver: made once, so equal errors have equal types.
_NO_SERVER_BY_DRIVER_ERROR: dict[type[Exception], type[NoServerAvailable]] = {}


def no_server_available_for(operational_error: type[Exception]) -> type[NoServerAvailable]:
    """The :class:`NoServerAvailable` a pool on a driver raises: also that
    driver's ``OperationalError`` (asyncmy's for a pool on asyncmy), so the
    handler the driver's users already have catches it."""
    if issubclass(NoServerAvailable, operational_error):
        return NoServerAvailable
    made = _NO_SERVER_BY_DRIVER_ERROR.get(operational_error)
    if made is None:
        made = type(
            "NoServerAvailable",
            (NoServerAvailable, operational_error),
            {"__module__": "mysqlpool", "__doc__": NoServerAvailable.__doc__},
        )
        _NO_SERVER_BY_DRIVER_ERROR[operational_error] = made
    return made


class DriverNotInstalled(PoolError, ImportError):
    """The driver a pool was asked to use (``driver="asyncmy"``, a
    ``mysql+asyncmy://`` DSN) is not installed, or too old; the message says
    what to install.

    Raised when the pool (or its :class:`ConnectParams`, when given the
    driver's own keywords) is made, never later at a connection attempt.
    """

    __module__ = "mysqlpool"

    def __init__(self, driver: str, install: str, too_old: str | None = None) -> None:
        if too_old is None:
            message = f"the {driver} driver is not installed: {install}"
        else:
            message = f"the {driver} driver installed ({too_old}) is too old: {install}"
        super().__init__(message)
        self.driver = driver
        self.install = install
