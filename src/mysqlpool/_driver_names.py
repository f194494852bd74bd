"""Which database drivers a pool can run on, and what to say when one is missing.

Kept apart from the driver seam (``_driver``) because :class:`ConnectParams`
checks the name, and the seam itself depends on ConnectParams.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from .errors import DriverNotInstalled

__all__ = [
    "DEFAULT_DRIVER",
    "DRIVER_NAMES",
    "check_driver_name",
    "driver_errors",
    "import_driver_package",
]

#: The driver a pool uses unless told otherwise: the drop-in mode was built for it.
DEFAULT_DRIVER = "aiomysql"
#: Every driver name ``driver=`` and a ``mysql+<name>://`` DSN accept.
DRIVER_NAMES = ("aiomysql", "asyncmy")

# What to install for each driver: aiomysql is a dependency of mysqlpool
# itself, asyncmy comes with the extra.
_INSTALL = {"aiomysql": "pip install aiomysql", "asyncmy": "pip install 'mysqlpool[asyncmy]'"}


def check_driver_name(name: object, where: str) -> str:
    """``name`` if it names a driver; else a ValueError (TypeError for a
    non-str) that says which names there are. ``where`` starts the message."""
    if not isinstance(name, str):
        raise TypeError(f"{where}: driver must be a str, got {type(name).__name__}")
    if name not in DRIVER_NAMES:
        known = " or ".join(repr(known) for known in DRIVER_NAMES)
        raise ValueError(f"{where}: driver must be {known}, got {name!r}")
    return name


def import_driver_package(name: str, module: str | None = None) -> ModuleType:
    """Import the driver's package (or ``module`` inside it).

    Raises:
        DriverNotInstalled: the package is not installed; the message says
            what to install.
    """
    try:
        return importlib.import_module(module or name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing != name:
            raise
        raise DriverNotInstalled(name, _INSTALL.get(name, f"pip install {name}")) from None


# Where each driver keeps the base class of the errors it raises.
_ERROR_BASES = {
    "aiomysql": ("pymysql.err", "MySQLError"),
    "asyncmy": ("asyncmy.errors", "MySQLError"),
}


def driver_errors() -> tuple[type[Exception], ...]:
    """The base error classes of every driver imported so far (PyMySQL's at
    least): what ``except`` catches for "the server or the driver said no".
    A driver never imported can't have raised, so it is not imported here."""
    found: list[type[Exception]] = []
    for module_name, class_name in _ERROR_BASES.values():
        module = sys.modules.get(module_name)
        if module is None and module_name == "pymysql.err":
            module = importlib.import_module(module_name)  # the default driver's: always there
        if module is not None:
            found.append(getattr(module, class_name))
    return tuple(found)
