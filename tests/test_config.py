"""Pool options from the DSN's query string, and Pool.from_env()."""

from __future__ import annotations

import pytest

from conftest import PoolFactory, scalar
from mysqlpool import Pool, PoolManager, parse_dsn

DSN = "mysql://app:s3cretpw@127.0.0.1:3306/test"  # Pool() alone does not connect


def with_query(dsn: str, query: str) -> str:
    return dsn + ("&" if "?" in dsn else "?") + query


async def test_pool_options_are_read_from_the_dsn(mysql_dsn: str, make_pool: PoolFactory) -> None:
    dsn = with_query(
        mysql_dsn,
        "pool_size=3&max_overflow=none&timeout=2.5&recycle=auto&max_lifetime=600"
        "&pre_ping=true&reset_on_return=reset&min_size=1&reaper_interval=5"
        "&leak_timeout=30&lifo=yes&name=orders",
    )
    pool = await make_pool(dsn)
    assert pool.size == 3
    assert pool.name == "orders"
    options = pool.options
    assert options.max_overflow is None
    assert options.timeout == 2.5
    assert options.max_lifetime == 600.0
    assert options.pre_ping is True
    assert options.pre_ping_after == 1.0
    assert options.reset_on_return == "reset"
    assert options.reaper_interval == 5.0
    assert options.leak_timeout == 30.0
    assert options.lifo
    assert len(pool) == 1  # min_size=1 was applied by open()
    async with pool.acquire() as conn:
        assert await scalar(conn, "SELECT 1") == 1


async def test_pool_options_do_not_change_the_connection_identity(mysql_dsn: str) -> None:
    plain = Pool(mysql_dsn)
    tuned = Pool(with_query(mysql_dsn, "pool_size=9&recycle=60"))
    assert tuned.params.key == plain.params.key
    assert tuned.recycle == 60.0


async def test_connection_options_in_the_same_query_still_apply(mysql_dsn: str) -> None:
    pool = Pool(with_query(mysql_dsn, "pool_size=2&charset=latin1&connect_timeout=3"))
    assert pool.size == 2
    assert pool.params.charset == "latin1"
    assert pool.params.connect_timeout == 3.0


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("pool_size=many", "pool_size"),
        ("pool_size=0", "pool_size"),
        ("timeout=soon", "timeout"),
        ("recycle=-1", "recycle"),
        ("lifo=maybe", "lifo"),
        ("reset_on_return=sometimes", "reset_on_return"),
        ("pool_size=2&pool_size=3", "pool_size"),
    ],
)
def test_a_bad_pool_option_in_the_dsn_names_it(query: str, named: str) -> None:
    dsn = with_query(DSN, query)
    with pytest.raises(ValueError, match=named) as raised:
        Pool(dsn)
    assert "s3cretpw" not in str(raised.value)


# Pool and connection options share one query-string parser, so a value is
# decoded alike whichever kind of option it belongs to.
@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("a%20b", "a b"),
        ("a+b", "a b"),
        ("1%2B1", "1+1"),
        ("100%25", "100%"),
        ("caf%C3%A9", "caf\u00e9"),
        ("%2Fsrv%2Fapp", "/srv/app"),
    ],
)
def test_pool_and_connection_options_decode_alike(raw: str, decoded: str) -> None:
    pool = Pool(with_query(DSN, f"name={raw}&program_name={raw}"))
    assert pool.name == decoded
    assert pool.params.program_name == decoded


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("a%", "is not valid percent-encoding"),
        ("a%zzb", "is not valid percent-encoding"),
        ("%ff", "is not valid UTF-8"),
    ],
)
@pytest.mark.parametrize("option", ["name", "pool_size", "program_name"])
def test_a_badly_encoded_value_is_refused_naming_the_option(
    option: str, raw: str, fragment: str
) -> None:
    with pytest.raises(ValueError, match="invalid DSN") as raised:
        Pool(with_query(DSN, f"{option}={raw}"))
    message = str(raised.value)
    assert f"the value of option {option!r} {fragment}" in message
    assert "s3cretpw" not in message


def test_a_pool_option_name_is_percent_decoded_too() -> None:
    pool = Pool(with_query(DSN, "pool%5Fsize=4&na%6De=orders"))
    assert pool.size == 4
    assert pool.name == "orders"
    with pytest.raises(ValueError, match="an option name is not valid percent-encoding"):
        Pool(with_query(DSN, "pool_size%=4"))


def test_empty_query_items_are_tolerated_around_pool_options() -> None:
    pool = Pool(with_query(DSN, "&pool_size=2&&charset=latin1&"))
    assert pool.size == 2
    assert pool.params.charset == "latin1"


def test_an_option_given_both_ways_must_agree(mysql_dsn: str) -> None:
    with pytest.raises(ValueError, match="pool_size is given both in the DSN"):
        Pool(with_query(mysql_dsn, "pool_size=3"), pool_size=7)
    # The same value both ways, or the argument left at its default, is fine.
    assert Pool(with_query(mysql_dsn, "pool_size=3"), pool_size=3).size == 3
    assert Pool(with_query(mysql_dsn, "pool_size=3"), pool_size=5).size == 3


def test_parse_dsn_says_a_pool_option_belongs_to_the_pool() -> None:
    with pytest.raises(ValueError, match="pool_size is a pool option"):
        parse_dsn("mysql://root@127.0.0.1/test?pool_size=3")


async def test_manager_applies_pool_options_from_the_dsn(mysql_dsn: str) -> None:
    async with PoolManager(pool_size=2) as manager:
        pool = await manager.get_pool(with_query(mysql_dsn, "pool_size=4&name=reports"))
        assert pool.size == 4
        assert pool.name == "reports"
        # Same identity without the options: the same pool.
        assert await manager.get_pool(mysql_dsn) is pool


async def test_from_env_reads_mysql_dsn(
    mysql_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYSQL_DSN", with_query(mysql_dsn, "pool_size=2"))
    async with Pool.from_env(max_overflow=0) as pool:
        assert pool.size == 2
        async with pool.acquire() as conn:
            assert await scalar(conn, "SELECT 7") == 7


def test_from_env_names_a_missing_or_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_DB", raising=False)
    with pytest.raises(ValueError, match="APP_DB is not set"):
        Pool.from_env("APP_DB")
    monkeypatch.setenv("APP_DB", "mysql://app:s3cretpw@127.0.0.1:3306/test?pool_size=x")
    with pytest.raises(ValueError, match="APP_DB") as raised:
        Pool.from_env("APP_DB")
    assert "s3cretpw" not in str(raised.value)


def test_a_misspelt_option_in_the_dsn_suggests_the_nearest_name() -> None:
    hint = r"unknown option 'pool_sise' \(did you mean pool_size\?\)"
    with pytest.raises(ValueError, match=hint):
        Pool("mysql://app:s3cret@h/db?pool_sise=3")


def test_the_unknown_option_error_lists_pool_and_connection_options() -> None:
    with pytest.raises(ValueError, match="unknown option 'bogus'") as caught:
        Pool("mysql://app:s3cret@h/db?bogus=3")
    message = str(caught.value)
    assert "did you mean" not in message  # nothing is close to "bogus"
    assert "connection options: " in message
    assert "pool options: " in message
    for name in ("charset", "connect_timeout", "pool_size", "max_overflow", "recycle"):
        assert name in message
    assert "s3cret" not in message


def test_a_misspelt_keyword_suggests_the_nearest_option() -> None:
    with pytest.raises(TypeError, match=r"'pool_sise' \(did you mean pool_size\?\)"):
        Pool("mysql://app@h/db", pool_sise=3)
    with pytest.raises(TypeError, match=r"'chrset' \(did you mean charset\?\)"):
        Pool(host="h", chrset="utf8mb4")
