"""Developer and CI sessions: ``nox`` runs lint, typecheck and tests.

Every session uses a virtualenv made from the interpreter running nox (no
pinned Python versions); virtualenvs are reused between runs to keep CI fast.
The tests find their database through ``tests/conftest.py`` (``MYSQL_DSN`` is
passed through from the environment as-is).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

LINT_PATHS = ("src", "tests", "examples", "benchmarks", "noxfile.py")
TYPECHECK_PATHS = LINT_PATHS


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (needs a MySQL/MariaDB server; see tests/conftest.py)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-W", "error::ResourceWarning", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint with ruff (no format check)."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", *LINT_PATHS, *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check everything lint covers (package, tests, examples, benchmarks, this file)."""
    session.install("-e", ".[test]", "mypy>=1.10", "types-PyMySQL", "nox")
    session.run("mypy", "--strict", *TYPECHECK_PATHS, *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers: ``nox -s bench -- [--quick] [--dsn DSN] [--only ...]``.

    Writes benchmarks/results/ (results.md, results.json, PNG charts), or
    build/bench-quick/ for a ``--quick`` smoke run; needs a
    MySQL/MariaDB server (``MYSQL_DSN``, default root@127.0.0.1:3306/test).
    """
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Run the package's demo: ``nox -s demo -- [args]``."""
    session.install("-e", ".")
    session.run("python", "-m", "mysqlpool", "demo", *session.posargs)


@nox.session
def cluster(session: nox.Session) -> None:
    """The failover tests on real clusters, with their figures table (about 2 minutes).

    Starts a 3-node Galera cluster and a primary/replica pair on free loopback
    ports (needs mariadb-server, galera-4 and rsync; ``.ci/run`` installs
    them) and prints the failover figures at the end. They are part of
    ``nox -s tests`` too.
    """
    session.install("-e", ".[test]")
    session.run(
        "pytest", "-W", "error::ResourceWarning", "tests/test_cluster.py", *session.posargs
    )


@nox.session
def soak(session: nox.Session) -> None:
    """A bounded soak under injected faults (a few minutes; not part of CI).

    ``nox -s soak -- --seconds 180 --tasks 100``: needs mariadbd installed
    locally (a private server is started on a free loopback port).
    """
    session.install("-e", ".[test]")
    session.run("python", "tests/soak.py", *session.posargs)


@nox.session
def soak_cluster(session: nox.Session) -> None:
    """A bounded soak over a 3-node Galera cluster under faults (not part of CI).

    ``nox -s soak_cluster -- --seconds 120 --tasks 100 [--seed N]``: needs
    mariadb-server, galera-4 and rsync (a private cluster is started on free
    loopback ports and removed at the end); about 2.5 minutes with its start,
    up to a minute more if a killed node is still waiting out the pool's
    backoff at the end.
    """
    session.install("-e", ".[test]")
    session.run("python", "tests/soak_cluster.py", *session.posargs)
