"""Command line: ``python -m mysqlpool <command> [options]``.

Argument parsing and dispatch only; each command's work lives in its own
module. A command is added by writing an ``_add_<command>`` function that
registers its sub-parser with a ``run`` default, and listing it in
``_COMMANDS``.

Exit status: 0 success; 1 failure (``demo``: no server, a driver error); 2
usage (a bad option or DSN) and, for ``doctor``, every way the server can't
be examined (unreachable, bad credentials, unknown database); 130
interrupted. A failure is one line on stderr,
``mysqlpool <command>: <what went wrong>``, never a traceback or a password.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeAlias

from ._demo import run_demo
from ._discovery import EXIT_USAGE, CommandError
from ._doctor import run_doctor
from ._driver_names import DRIVER_NAMES
from ._redaction import secret_candidates, show
from ._version import __version__

__all__ = ["build_parser", "main"]

_PROG = "python -m mysqlpool"
_EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT

# What add_subparsers() returns; argparse does not name it publicly.
_Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_dsn_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dsn",
        nargs="?",
        metavar="DSN",
        help=(
            "mysql://user:password@host:port/db?options (default: $MYSQL_DSN, else "
            "mysql://root@127.0.0.1:3306/test if it answers, else a mariadb:10.11 "
            "container through testcontainers)"
        ),
    )


def _add_driver_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--driver",
        choices=DRIVER_NAMES,
        default=None,
        help="the driver to connect with (default: the DSN's scheme says; mysql:// is aiomysql)",
    )


def _run_demo(args: argparse.Namespace) -> int:
    return run_demo(
        args.dsn,
        handlers=args.handlers,
        pool_size=args.pool_size,
        progress=args.progress,
        driver=args.driver,
    )


def _add_demo(commands: _Subparsers) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "demo",
        help="run a simulated web workload through a pool and report on it",
        description=(
            "Start N simulated web handlers at once; each acquires a connection from "
            "one pool (max_overflow=0), runs a short query and releases it. Prints "
            "throughput, acquire-wait percentiles and the pool's stats."
        ),
    )
    _add_dsn_argument(parser)
    parser.add_argument(
        "--handlers",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="concurrent simulated handlers (default: %(default)s)",
    )
    parser.add_argument(
        "--pool-size",
        type=_positive_int,
        default=10,
        metavar="N",
        help="the pool's pool_size, and so its connection limit (default: %(default)s)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: only when stderr is a terminal)",
    )
    _add_driver_argument(parser)
    parser.set_defaults(run=_run_demo)
    return parser


def _run_doctor(args: argparse.Namespace) -> int:
    return run_doctor(
        args.dsn, processes=args.processes, as_json=args.json, driver=args.driver
    )


def _add_doctor(commands: _Subparsers) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "doctor",
        help="check a server and recommend pool settings for it",
        description=(
            "Connect and report the server's version, timeouts, connection "
            "limits, TLS, COM_RESET_CONNECTION support and round-trip time, with the "
            "recycle and per-process pool_size + max_overflow to configure. With "
            "several hosts in the DSN, examine each: role, Galera state, replication, "
            "and which hosts each pool target would use."
        ),
    )
    _add_dsn_argument(parser)
    parser.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        metavar="N",
        help="processes that will each run a pool against this server (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    _add_driver_argument(parser)
    parser.set_defaults(run=_run_doctor)
    return parser


# One entry per command, in the order --help lists them.
_COMMANDS: tuple[Callable[[_Subparsers], argparse.ArgumentParser], ...] = (
    _add_demo,
    _add_doctor,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m mysqlpool`` argument parser, with every command."""
    parser = argparse.ArgumentParser(
        prog=_PROG, description="mysqlpool: an asyncio connection pool for MySQL and MariaDB."
    )
    parser.add_argument("--version", action="version", version=f"mysqlpool {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMANDS:
        command = add(commands)
        # Arguments left over are reported with the command's own usage line.
        command.set_defaults(command_parser=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m mysqlpool`` with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status instead of exiting, so tests can call it in
    process; argparse's own exits (``--help``, a bad option) are returned too.
    """
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            # A stray DSN-like argument may hold a password: withheld, as always.
            shown = " ".join(
                show(arg, secret_candidates(arg)) if secret_candidates(arg) else arg
                for arg in extra
            )
            command_parser: argparse.ArgumentParser = args.command_parser
            command_parser.error(f"unrecognized arguments: {shown}")
    except SystemExit as exc:
        # argparse has already printed the help or the usage error.
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except CommandError as exc:
        print(f"mysqlpool {args.command}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"mysqlpool {args.command}: interrupted", file=sys.stderr)
        return _EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
