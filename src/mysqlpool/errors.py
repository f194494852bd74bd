"""Errors raised by mysqlpool itself.

Errors from the server or the driver (PyMySQL's ``OperationalError`` and
friends) are not wrapped: they reach the caller unchanged.
"""

from __future__ import annotations

import pymysql

__all__ = ["NoServerAvailable", "PoolClosed", "PoolError", "PoolOverloaded", "PoolTimeout"]


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
    message names each host and why. Also a PyMySQL ``OperationalError``
    with the driver's "can't connect" code 2003 in ``args[0]``, so code that
    handles a server that is down keeps working with several hosts.
    """

    __module__ = "mysqlpool"

    #: The driver's CR_CONN_HOST_ERROR: "Can't connect to MySQL server".
    CODE = 2003

    def __init__(self, message: str) -> None:
        super().__init__(self.CODE, message)

    def __str__(self) -> str:
        return str(self.args[1])
