"""Developer and CI sessions: ``nox`` runs lint, typecheck and the tests.

``tests`` is one session per supported Python (``nox -s tests-3.12`` runs
one); ``core`` runs the core test modules on each; ``lowest`` runs them on
the lowest versions of the dependencies pyproject.toml declares. An
interpreter that is not installed is skipped with a warning, never an error
(CI runs what the machine has: see ``.ci/run``). Interpreters installed with
pyenv are found even when the active pyenv version is another one.

Virtualenvs are reused between runs to keep CI fast; uv makes them when it
is installed (``pip install nox uv``), else virtualenv. The tests find their
database through ``tests/conftest.py`` (``MYSQL_DSN`` is passed through from
the environment as-is).
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "tests_asyncmy"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "uv|virtualenv"
# nox fails a session whose interpreter is missing when $CI is set; the
# matrix is what the machine has, so a missing one is skipped (with a line
# saying so), here and in CI alike.
nox.options.error_on_missing_interpreters = False

#: The Pythons pyproject.toml's classifiers name (requires-python >= 3.10).
PYTHONS = ("3.10", "3.11", "3.12", "3.13")

LINT_PATHS = ("src", "tests", "examples", "benchmarks", "docs/_ext", "noxfile.py")
TYPECHECK_PATHS = LINT_PATHS

#: Modules that exercise the pool itself and the driver internals it reads
#: (about 30 s): what every Python and the lowest dependencies must pass.
#: The whole suite (faults, clusters, recipes) runs on one Python in CI.
CORE_TESTS = (
    "tests/test_acquire.py",
    "tests/test_release.py",
    "tests/test_cancellation.py",
    "tests/test_pool_api.py",
    "tests/test_pool_internals.py",
    "tests/test_dsn.py",
    "tests/test_config.py",
    "tests/test_stats.py",
    "tests/test_recycle.py",
    "tests/test_shutdown.py",
    "tests/test_manager.py",
    "tests/test_dropin.py",
    "tests/test_hooks.py",
    "tests/test_hostset.py",
    "tests/test_redaction.py",
    "tests/test_disconnects.py",
    "tests/test_tls.py",
)

PYTEST = ("pytest", "-W", "error::ResourceWarning")


def _add_pyenv_interpreters() -> None:
    """Put each pyenv-installed Python of PYTHONS on PATH as ``python3.X``.

    pyenv's shims only run the versions its active setting names; nox looks
    for ``python3.X`` on PATH. Nothing changes for a version that already
    runs, or where pyenv isn't installed.
    """
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if not root.is_dir():
        return
    for version in PYTHONS:
        found = shutil.which(f"python{version}")
        if found and "/shims/" not in found:
            continue
        installed = [
            path
            for path in root.glob(f"{version}.*")
            if re.fullmatch(rf"{re.escape(version)}\.\d+", path.name)
            and (path / "bin" / f"python{version}").exists()
        ]
        if installed:
            newest = max(installed, key=lambda path: int(path.name.rsplit(".", 1)[1]))
            os.environ["PATH"] = f"{newest / 'bin'}{os.pathsep}{os.environ['PATH']}"


_add_pyenv_interpreters()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite on one Python (needs a MySQL/MariaDB server: tests/conftest.py)."""
    session.install("-e", ".[test]")
    session.run(*PYTEST, *session.posargs)


@nox.session(python=PYTHONS)
def core(session: nox.Session) -> None:
    """The core test modules (CORE_TESTS) on one Python."""
    session.install("-e", ".[test]")
    session.run(*PYTEST, *CORE_TESTS, *session.posargs)


_SHOW_VERSIONS = (
    "from importlib.metadata import version as v; "
    "print('lowest-direct:', *(f'{n} {v(n)}' for n in ('aiomysql', 'PyMySQL')))"
)


@nox.session(python=PYTHONS[0], venv_backend="uv")
def lowest(session: nox.Session) -> None:
    """The core tests on the lowest versions of the declared dependencies.

    uv resolves aiomysql and PyMySQL to the lowest versions pyproject.toml
    allows (``--resolution lowest-direct``), on the oldest Python; the test
    tools are then added at their usual versions without moving those two.
    """
    session.run_install("uv", "pip", "install", "--resolution", "lowest-direct", "-e", ".")
    session.install("-e", ".[test]")
    session.run("python", "-c", _SHOW_VERSIONS)
    session.run(*PYTEST, *CORE_TESTS, *session.posargs)


_IMPORT_CHECK = (
    "import sys, mysqlpool; "
    "assert mysqlpool.__file__.startswith(sys.prefix), mysqlpool.__file__; "
    "print('imported', mysqlpool.__version__, 'from', mysqlpool.__file__)"
)


@nox.session
def package(session: nox.Session) -> None:
    """Build the sdist and the wheel, check them, and install the wheel on every Python.

    ``twine check --strict`` (metadata, long description) and
    ``check-wheel-contents``; then, for each Python of PYTHONS that is
    installed, a fresh venv where ``pip install`` of the wheel must import
    and run ``python -m mysqlpool --version``. Last, the sdist must carry
    what its tests need (their conftest and helpers, the examples, the docs).
    """
    session.install("build", "twine", "check-wheel-contents", "uv")
    tmp = Path(session.create_tmp())
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--installer", "uv", "--outdir", str(dist), ".")
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    session.run("twine", "check", "--strict", str(wheel), str(sdist))
    session.run("check-wheel-contents", str(wheel))
    for version in PYTHONS:
        python = shutil.which(f"python{version}")
        if python is None:
            session.warn(f"python{version} not found: the wheel is not installed on it")
            continue
        # uv for speed; the venv is as bare as one pip would install into.
        venv = tmp / f"wheel-{version}"
        session.run("uv", "venv", "-q", "--clear", "--python", python, str(venv))
        venv_python = str(venv / "bin" / "python")
        session.run("uv", "pip", "install", "-q", "--python", venv_python, str(wheel))
        session.run(venv_python, "-c", _IMPORT_CHECK, external=True)
        session.run(venv_python, "-m", "mysqlpool", "--version", external=True)
    _check_sdist_carries_the_tests(session, sdist)


def _check_sdist_carries_the_tests(session: nox.Session, sdist: Path) -> None:
    """Every module of tests/ (conftest and helpers too) and what they read is in the sdist."""
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = {
        path.as_posix()
        for folder in ("tests", "examples", "docs", "benchmarks")
        for path in Path(folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    } | {"README.md", "CHANGELOG.md", "mkdocs.yml", "noxfile.py", "pyproject.toml"}
    missing = sorted(needed - names)
    if missing:
        session.error(f"the sdist lacks what its tests need: {missing}")
    session.log(f"the sdist carries its tests: {len(needed)} files checked")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (docs/, mkdocs.yml) with warnings as errors.

    ``nox -s docs -- serve`` previews it instead; the HTML goes to site/.
    """
    session.install("-e", ".[docs]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # material's banner about its successor
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:])
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs)


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
    # The return path: rollback only when needed, COM_RESET_CONNECTION with
    # the session re-applied, and the calls libraries build on.
    "tests/test_pool_return.py",
    "tests/test_pool_reset.py",
    "tests/test_pool_for_bridges.py",
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
    """Type-check everything lint covers (package, tests, examples, benchmarks, docs, this file)."""
    session.install("-e", ".[test,docs]", "mypy>=1.10", "types-PyMySQL", "nox")
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
