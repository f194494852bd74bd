"""Errors raised by mysqlpool itself.

Errors from the server or the driver (PyMySQL's ``OperationalError`` and
friends) are not wrapped: they reach the caller unchanged.
"""

from __future__ import annotations

__all__ = ["PoolClosed", "PoolError", "PoolTimeout"]


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


class PoolClosed(PoolError):
    """The pool is closing or closed: it hands out no more connections."""

    __module__ = "mysqlpool"
