"""Developer and CI sessions: ``nox`` runs lint, typecheck and tests.

Every session uses a virtualenv made from the interpreter running nox (no
pinned Python versions); virtualenvs are reused between runs to keep CI fast.
The tests find their database through ``tests/conftest.py`` (``MYSQL_DSN`` is
passed through from the environment as-is).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "tests_asyncmy"]
nox.options.reuse_existing_virtualenvs = True

LINT_PATHS = ("src", "tests", "examples", "benchmarks", "noxfile.py")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (needs a MySQL/MariaDB server; see tests/conftest.py)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-W", "error::ResourceWarning", *session.posargs)


# The modules that prove the pool's guarantees, run again on the asyncmy driver
# by tests_asyncmy (the whole suite runs on aiomysql in tests; both in CI).
ASYNCMY_MODULES = (
    "tests/test_faults_network.py",
    "tests/test_faults_server.py",
    "tests/test_faults_limits.py",
    "tests/test_faults_writes.py",
    "tests/test_cancellation.py",
    "tests/test_release.py",
    "tests/test_disconnects.py",
    "tests/test_recycle.py",
    "tests/test_tls.py",
    "tests/test_hosts.py",
    "tests/test_cluster.py",
    "tests/test_acquire.py",
    "tests/test_drivers.py",
    # asyncmy.connect under the drop-in mode (also run by tests: asyncmy is in [test]).
    "tests/test_dropin_asyncmy.py",
    # The SQLAlchemy bridge on mysql+asyncmy:// (tests/sa_support.py follows --driver).
    "tests/test_sqlalchemy_engine.py",
    "tests/test_sqlalchemy_faults.py",
    "tests/test_sqlalchemy_features.py",
)

#: The test modules of mysqlpool.sqlalchemy (the bridge to SQLAlchemy's asyncio engine).
SQLALCHEMY_TESTS = (
    "tests/test_sqlalchemy_engine.py",
    "tests/test_sqlalchemy_faults.py",
    "tests/test_sqlalchemy_features.py",
)


@nox.session
def tests_asyncmy(session: nox.Session) -> None:
    """The guarantee modules again, on the asyncmy driver (``pytest --driver=asyncmy``).

    ``nox -s tests_asyncmy -- tests/`` runs the whole suite on asyncmy instead.
    """
    session.install("-e", ".[test,asyncmy]")
    modules = session.posargs or ASYNCMY_MODULES
    session.run("pytest", "-W", "error::ResourceWarning", "--driver=asyncmy", *modules)


@nox.session
def sqlalchemy20(session: nox.Session) -> None:
    """The SQLAlchemy bridge's tests on SQLAlchemy 2.0.x (``tests`` runs them on
    the current release); about 30 s, part of CI."""
    session.install("-e", ".[test]", "sqlalchemy[asyncio]>=2.0,<2.1")
    session.run("python", "-c", "import sqlalchemy; print('SQLAlchemy', sqlalchemy.__version__)")
    session.run("pytest", "-W", "error::ResourceWarning", *SQLALCHEMY_TESTS, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint with ruff (no format check)."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", *LINT_PATHS, *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package and the tests with mypy --strict."""
    session.install("-e", ".[test]", "mypy>=1.10", "types-PyMySQL")
    session.run("mypy", "--strict", "src", "tests", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers: ``nox -s bench -- [--quick] [--dsn DSN] [--only ...]``.

    Writes benchmarks/results/ (results.md, results.json, PNG charts); needs a
    MySQL/MariaDB server (``MYSQL_DSN``, default root@127.0.0.1:3306/test).
    """
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def bench_http(session: nox.Session) -> None:
    """The HTTP benchmark (about 8 minutes): ``nox -s bench_http -- [--reps 3] [--only burst]``.

    The FastAPI recipe under uvicorn, loaded by ``wrk`` (Debian package
    ``wrk``), beside aiomysql's pool and SQLAlchemy, and the disconnect burst
    with and without CancelOnDisconnect; writes benchmarks/results/http.md.
    """
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/http_load.py", *session.posargs)


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
