"""Choosing the driver: ``driver=``, the DSN scheme, the pool key, and the one
line a pool says when its driver is not installed."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import pytest

from mysqlpool import ConnectParams, DriverNotInstalled, Pool, PoolError, PoolManager, parse_dsn

pytest.importorskip("asyncmy")


@pytest.mark.parametrize(
    ("scheme", "driver"),
    [
        ("mysql", "aiomysql"),
        ("mariadb", "aiomysql"),
        ("mysql+aiomysql", "aiomysql"),
        ("mysql+asyncmy", "asyncmy"),
        ("mariadb+asyncmy", "asyncmy"),
        ("MySQL+AsyncMy", "asyncmy"),
    ],
)
def test_the_dsn_scheme_names_the_driver(scheme: str, driver: str) -> None:
    assert parse_dsn(f"{scheme}://app:pw@db1/shop").driver == driver


def test_aiomysql_is_the_default() -> None:
    assert ConnectParams(host="db1").driver == "aiomysql"


def test_the_driver_is_part_of_the_key() -> None:
    on_aiomysql = parse_dsn("mysql://app:pw@db1/shop")
    on_asyncmy = parse_dsn("mysql+asyncmy://app:pw@db1/shop")
    assert on_aiomysql.key != on_asyncmy.key
    assert on_aiomysql.replace(driver="asyncmy") == on_asyncmy


def test_a_pool_keyword_chooses_the_driver() -> None:
    pool = Pool("mysql://app:pw@db1/shop", driver="asyncmy")
    assert pool.params.driver == "asyncmy"
    assert str(pool.params) == "mysql+asyncmy://app:***@db1:3306/shop"


def test_str_and_pickle_keep_the_driver() -> None:
    params = parse_dsn("mariadb+asyncmy://app:pw@db1/shop?charset=utf8mb4")
    assert str(params).startswith("mysql+asyncmy://")
    assert parse_dsn(str(params).replace("***", "pw")) == params
    assert pickle.loads(pickle.dumps(params)) == params


async def test_pool_manager_keeps_one_pool_per_driver(mysql_dsn: str) -> None:
    params = parse_dsn(mysql_dsn)
    manager = PoolManager()
    try:
        on_aiomysql = await manager.get_pool(params.replace(driver="aiomysql"))
        on_asyncmy = await manager.get_pool(params.replace(driver="asyncmy"))
        assert on_aiomysql is not on_asyncmy
        assert await manager.get_pool(params, driver="aiomysql") is on_aiomysql
        assert len(manager.pools) == 2
        async with on_asyncmy.acquire() as conn:
            assert type(conn).__module__ == "asyncmy.connection"
    finally:
        await manager.close()


@pytest.mark.parametrize("driver", ["pymysql", "", "AIOMYSQL"])
def test_an_unknown_driver_is_refused_with_the_known_names(driver: str) -> None:
    with pytest.raises(ValueError, match="driver must be 'aiomysql' or 'asyncmy'"):
        ConnectParams(host="db1", driver=driver)


def test_an_unknown_scheme_lists_the_asyncmy_one() -> None:
    with pytest.raises(ValueError, match=r"mysql\+asyncmy://"):
        parse_dsn("mysql+mysqldb://app:pw@db1/shop")


def test_each_driver_takes_its_own_extra_keywords() -> None:
    import aiomysql
    import asyncmy.cursors

    assert ConnectParams(driver="asyncmy", stmt_cache_size=16).extra == {"stmt_cache_size": 16}
    cursor = ConnectParams(driver="asyncmy", cursor_cls=asyncmy.cursors.DictCursor)
    assert cursor.extra == {"cursor_cls": asyncmy.cursors.DictCursor}
    with pytest.raises(TypeError, match=r"'cursorclass' \(not one asyncmy.connect takes\)"):
        ConnectParams(driver="asyncmy", cursorclass=aiomysql.DictCursor)
    with pytest.raises(TypeError, match=r"'stmt_cache_size' \(not one aiomysql.connect takes\)"):
        ConnectParams(stmt_cache_size=16)


def test_asyncmy_refuses_a_forced_auth_plugin() -> None:
    with pytest.raises(ValueError, match="auth_plugin is not supported by the asyncmy driver"):
        parse_dsn("mysql+asyncmy://app:pw@db1/shop?auth_plugin=mysql_native_password")


def test_a_driver_not_installed_fails_at_pool_with_what_to_install() -> None:
    # A child interpreter where importing asyncmy fails, as if not installed.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["asyncmy"] = None
        from mysqlpool import DriverNotInstalled, Pool, parse_dsn
        params = parse_dsn("mysql+asyncmy://app:secret-pw@db1/shop")  # no import yet
        try:
            Pool(params)
        except DriverNotInstalled as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "the asyncmy driver is not installed: pip install 'mysqlpool[asyncmy]'\n"
    assert done.stderr == ""


def test_driver_not_installed_is_an_import_error_and_a_pool_error() -> None:
    error = DriverNotInstalled("asyncmy", "pip install 'mysqlpool[asyncmy]'")
    assert isinstance(error, ImportError)
    assert isinstance(error, PoolError)
    assert error.driver == "asyncmy"
