"""Tests for ConnectParams and parse_dsn (no database needed)."""

from __future__ import annotations

import copy
import hashlib
import inspect
import pickle
import ssl
import traceback
import urllib.parse
from typing import Any

import aiomysql
import pytest

from certs import self_signed
from mysqlpool import ConnectParams, parse_dsn

SECRET = "s3cr3t-P@ss"
SECRET_Q = urllib.parse.quote(SECRET, safe="")  # as it appears in a well-formed DSN


# -- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A self-signed CA certificate, its key, and both in one file."""
    directory = tmp_path_factory.mktemp("certs")
    cert, key = self_signed(directory, "mysqlpool test CA")
    combined = directory / "combined.pem"
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    return {"cert": str(cert), "key": str(key), "combined": str(combined)}


def full_error(exc_info: pytest.ExceptionInfo[BaseException]) -> str:
    """Message, chained exceptions and traceback text of a caught error."""
    return "".join(traceback.format_exception(exc_info.type, exc_info.value, exc_info.tb))


# -- the API.md example -----------------------------------------------------------


def test_api_example() -> None:
    params = parse_dsn("mysql://user:secret@127.0.0.1:3306/test?charset=utf8mb4&connect_timeout=5")
    assert (params.host, params.port, params.user, params.db) == ("127.0.0.1", 3306, "user", "test")
    assert params.password == "secret"
    kwargs = params.connect_kwargs()
    assert kwargs["charset"] == "utf8mb4"
    assert kwargs["connect_timeout"] == 5.0
    assert isinstance(kwargs["connect_timeout"], float)
    assert kwargs["password"] == "secret"
    assert kwargs["autocommit"] is True
    assert hash(params.key) == hash(params.key)
    assert "secret" not in str(params)
    assert "secret" not in repr(params)


# -- schemes ----------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["mysql", "mariadb", "mysql+aiomysql", "MySQL", "MARIADB"])
def test_schemes_accepted_and_equivalent(scheme: str) -> None:
    params = parse_dsn(f"{scheme}://app:pw@db1:3307/shop")
    assert params == ConnectParams(host="db1", port=3307, user="app", password="pw", db="shop")


@pytest.mark.parametrize(
    ("dsn", "fragment"),
    [
        ("postgresql://app:pw@db1/shop", "'postgresql'"),
        ("mysql+pymysql://app:pw@db1/shop", "'mysql+pymysql'"),
        ("db1:3306/shop", "missing scheme"),
        ("mysql:/db1/shop", "missing scheme"),
        ("", "missing scheme"),
    ],
)
def test_bad_scheme(dsn: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="scheme") as exc_info:
        parse_dsn(dsn)
    assert fragment in str(exc_info.value)


def test_non_str_dsn_is_type_error() -> None:
    with pytest.raises(TypeError, match="str"):
        parse_dsn(b"mysql://h/db")  # type: ignore[arg-type]


# -- netloc: user, password, host, port -----------------------------------------------


def test_percent_decoding_of_user_password_and_db() -> None:
    params = parse_dsn("mysql://us%40er%3A:p%3Ass%2Fw%23rd%25@h/my%20db%C3%A9")
    assert params.user == "us@er:"
    assert params.password == "p:ss/w#rd%"
    assert params.db == "my dbé"


def test_plus_is_literal_in_userinfo_and_path() -> None:
    params = parse_dsn("mysql://a+b:c+d@h/e+f")
    assert (params.user, params.password, params.db) == ("a+b", "c+d", "e+f")


def test_unencoded_at_sign_in_password_uses_last_at() -> None:
    params = parse_dsn(f"mysql://root:{SECRET}@h/db")
    assert params.password == SECRET
    assert params.host == "h"
    assert parse_dsn("mysql://root:a:b@h").password == "a:b"  # only the first ':' splits


def test_user_without_password_and_password_without_user() -> None:
    only_user = parse_dsn("mysql://app@h")
    assert (only_user.user, only_user.password) == ("app", "")
    empty_password = parse_dsn("mysql://app:@h")
    assert (empty_password.user, empty_password.password) == ("app", "")
    only_password = parse_dsn("mysql://:pw@h")
    assert (only_password.user, only_password.password) == (None, "pw")
    nobody = parse_dsn("mysql://h")
    assert (nobody.user, nobody.password) == (None, "")


@pytest.mark.parametrize(
    ("dsn", "host", "port"),
    [
        ("mysql://u@[::1]:3307/db", "::1", 3307),
        ("mysql://u@[::1]/db", "::1", 3306),
        ("mysql://[2001:db8::17]", "2001:db8::17", 3306),
        ("mysql://u@[fe80::1%25eth0]:3310/db", "fe80::1%eth0", 3310),
        ("mysql://db.example.com:1/db", "db.example.com", 1),
        ("mysql://h:65535", "h", 65535),
    ],
)
def test_hosts_and_ports(dsn: str, host: str, port: int) -> None:
    params = parse_dsn(dsn)
    assert (params.host, params.port) == (host, port)
    assert params.hosts == [(host, port)]


@pytest.mark.parametrize(
    ("netloc", "fragment"),
    [
        ("[::1", "closing ']'"),
        ("[not-an-ip]:3306", "not a valid IPv6"),
        ("[::1]x", "after the bracketed IPv6 host"),
        ("::1", "brackets"),
        ("h]:3306", "bracket"),
        ("h:", "empty port"),
        ("h:0", "port"),
        ("h:65536", "port"),
        ("h:99999999", "port"),
        ("h:abc", "port"),
        ("h:+1", "port"),
        ("h: 1", "port"),
        ("h:3306x", "port"),
        ("", "no host"),
        ("u:pw@", "no host"),
        ("u:pw@:3306", "no host"),
    ],
)
def test_bad_netloc(netloc: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="invalid DSN") as exc_info:
        parse_dsn(f"mysql://{netloc}/db")
    assert fragment in str(exc_info.value)


def test_empty_host_allowed_with_unix_socket() -> None:
    params = parse_dsn("mysql://app:pw@/shop?unix_socket=/run/mysqld/mysqld.sock")
    assert params.host == "localhost"
    assert params.unix_socket == "/run/mysqld/mysqld.sock"
    assert params.connect_kwargs()["unix_socket"] == "/run/mysqld/mysqld.sock"


def test_several_hosts_in_order_with_default_ports() -> None:
    params = parse_dsn("mysql://app:pw@127.0.0.1:3307,db2,[::1]:3309/shop")
    assert params.hosts == [("127.0.0.1", 3307), ("db2", 3306), ("::1", 3309)]
    assert (params.host, params.port) == ("127.0.0.1", 3307)
    assert params.connect_kwargs()["host"] == "127.0.0.1"  # the driver sees one server


def test_host_list_is_part_of_the_key_and_its_order_too() -> None:
    one = parse_dsn("mysql://app:pw@h1:3307/shop")
    both = parse_dsn("mysql://app:pw@h1:3307,h2:3308/shop")
    swapped = parse_dsn("mysql://app:pw@h2:3308,h1:3307/shop")
    assert len({one.key, both.key, swapped.key}) == 3
    assert both == parse_dsn("mysql://app:pw@h1:3307,h2:3308/shop")


def test_several_hosts_round_trip_through_str_pickle_and_keywords() -> None:
    params = parse_dsn(f"mysql://app:{SECRET_Q}@h1:3307,h2:3308/shop?charset=utf8mb4")
    assert str(params) == "mysql://app:***@h1:3307,h2:3308/shop?charset=utf8mb4"
    assert SECRET not in repr(params)
    assert pickle.loads(pickle.dumps(params)) == params
    assert ConnectParams(hosts=["h1:3307", ("h2", 3308)], user="app", password=SECRET,
                         db="shop", charset="utf8mb4") == params


def test_for_host_gives_one_server_with_everything_else_kept() -> None:
    params = parse_dsn("mysql://app:pw@h1:3307,h2:3308/shop?connect_timeout=2")
    second = params.for_host("h2", 3308)
    assert second.hosts == [("h2", 3308)]
    assert (second.user, second.db, second.connect_timeout) == ("app", "shop", 2.0)
    assert second.for_host("h2", 3308) is second


def test_replace_with_one_host_drops_the_list() -> None:
    params = parse_dsn("mysql://app:pw@h1:3307,h2:3308/shop")
    assert params.replace(host="h9").hosts == [("h9", 3307)]
    assert params.replace(db="other").hosts == params.hosts


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("mysql://app:pw@h1,,h2/shop", "empty host"),
        ("mysql://app:pw@h1,h1:3306/shop", "listed twice"),
        ("mysql://app:pw@h1,h2:0/shop", "port"),
        ("mysql://app:pw@h1,h2/shop?unix_socket=/tmp/s", "unix_socket"),
    ],
)
def test_bad_host_lists_are_refused_by_name(dsn: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_dsn(dsn)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("hosts", [[], "h1:3306", [("h1", "3306")], [("h1",)]])
def test_bad_hosts_keyword_is_refused(hosts: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="hosts"):
        ConnectParams(hosts=hosts)


# -- path ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tail", "db"),
    [("", None), ("/", None), ("/shop", "shop"), ("/?charset=utf8", None), ("/a%2Fb", "a/b")],
)
def test_db_from_path(tail: str, db: str | None) -> None:
    assert parse_dsn(f"mysql://h{tail}").db == db


def test_db_with_slash_rejected() -> None:
    with pytest.raises(ValueError, match="database name"):
        parse_dsn("mysql://h/a/b")


def test_fragment_rejected() -> None:
    with pytest.raises(ValueError, match="fragment"):
        parse_dsn("mysql://h/db#frag")


# -- defaults -------------------------------------------------------------------


def test_constructor_defaults_match_aiomysql_except_autocommit() -> None:
    ours = ConnectParams().connect_kwargs()
    theirs = inspect.signature(aiomysql.connect).parameters
    for name, value in ours.items():
        expected = True if name == "autocommit" else theirs[name].default
        assert value == expected, name
    assert theirs["autocommit"].default is False  # the documented difference


def test_dsn_defaults() -> None:
    params = parse_dsn("mysql://h")
    assert params.port == 3306
    assert params.user is None
    assert params.password == ""
    assert params.db is None
    assert params.autocommit is True
    assert params.charset == ""
    assert params.connect_timeout is None
    assert params.ssl is None
    assert params == ConnectParams(host="h")


# -- options --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "attribute", "expected"),
    [
        ("charset=utf8mb4", "charset", "utf8mb4"),
        ("connect_timeout=5", "connect_timeout", 5.0),
        ("connect_timeout=0.25", "connect_timeout", 0.25),
        ("connect_timeout=1e1", "connect_timeout", 10.0),
        ("autocommit=false", "autocommit", False),
        ("autocommit=true", "autocommit", True),
        ("init_command=SET+NAMES+utf8mb4", "init_command", "SET NAMES utf8mb4"),
        ("init_command=SELECT%201%2B1", "init_command", "SELECT 1+1"),
        ("sql_mode=ANSI_QUOTES%2CSTRICT_ALL_TABLES", "sql_mode", "ANSI_QUOTES,STRICT_ALL_TABLES"),
        ("unix_socket=%2Ftmp%2Fmysql.sock", "unix_socket", "/tmp/mysql.sock"),
        ("local_infile=1", "local_infile", True),
        ("local_infile=off", "local_infile", False),
        ("program_name=billing", "program_name", "billing"),
        ("auth_plugin=mysql_clear_password", "auth_plugin", "mysql_clear_password"),
        ("read_default_file=/etc/my.cnf", "read_default_file", "/etc/my.cnf"),
        ("read_default_group=client", "read_default_group", "client"),
        ("client_flag=65536", "client_flag", 65536),
    ],
)
def test_option_conversion(query: str, attribute: str, expected: object) -> None:
    params = parse_dsn(f"mysql://h/db?{query}")
    value = getattr(params, attribute)
    assert value == expected
    assert type(value) is type(expected)
    assert params.connect_kwargs()[attribute] == expected


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("ON", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("off", False),
        ("FALSE", False),
    ],
)
def test_bool_spellings(spelling: str, expected: bool) -> None:
    assert parse_dsn(f"mysql://h?autocommit={spelling}").autocommit is expected


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("connect_timeout=abc", "'connect_timeout'"),
        ("connect_timeout=0", "'connect_timeout'"),
        ("connect_timeout=-1", "'connect_timeout'"),
        ("connect_timeout=nan", "'connect_timeout'"),
        ("connect_timeout=inf", "'connect_timeout'"),
        ("autocommit=maybe", "'autocommit'"),
        ("local_infile=2", "'local_infile'"),
        ("ssl=sometimes", "'ssl'"),
        ("client_flag=-1", "'client_flag'"),
        ("client_flag=0x10", "'client_flag'"),
        ("bogus=1", "unknown option 'bogus'"),
        ("password=x", "unknown option 'password'"),
        ("charset=utf8&charset=latin1", "more than once"),
        ("charset", "has no value"),
        ("charset=", "empty value"),
        ("charset=%zz", "percent-encoding"),
        ("charset=%ff", "UTF-8"),
    ],
)
def test_bad_options(query: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="invalid DSN") as exc_info:
        parse_dsn(f"mysql://h/db?{query}")
    assert fragment in str(exc_info.value)


def test_bad_option_value_is_named() -> None:
    with pytest.raises(ValueError, match=r"'connect_timeout': 'soon' is not a number"):
        parse_dsn("mysql://h?connect_timeout=soon")


def test_empty_query_items_tolerated() -> None:
    params = parse_dsn("mysql://h/db?&charset=utf8&&")
    assert params.charset == "utf8"



@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("bogus=%zz", "unknown option 'bogus'"),
        ("pool_size=%zz", "pool_size is a pool option"),
        ("charset=utf8&charset=%zz", "given more than once"),
        ("charset=utf8&%zz=1", "an option name is not valid percent-encoding"),
        ("char%73et=%ff", "the value of option 'charset' is not valid UTF-8"),
    ],
)
def test_a_bad_name_is_reported_before_a_bad_value(query: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="invalid DSN") as exc_info:
        parse_dsn(f"mysql://h/db?{query}")
    assert fragment in str(exc_info.value)


# -- TLS ------------------------------------------------------------------------


def test_ssl_true_gives_default_verifying_context() -> None:
    params = parse_dsn("mysql://h/db?ssl=true")
    context = params.connect_kwargs()["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert params.ssl_verify is True


def test_ssl_false_means_no_tls() -> None:
    params = parse_dsn("mysql://h/db?ssl=false")
    assert params.ssl is None
    assert params == parse_dsn("mysql://h/db")


def test_ssl_ca_builds_verifying_context(certs: dict[str, str]) -> None:
    ca = urllib.parse.quote(certs["cert"], safe="")
    params = parse_dsn(f"mysql://h/db?ssl_ca={ca}")
    context = params.ssl
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    subjects = [cert["subject"] for cert in context.get_ca_certs()]
    assert ((("commonName", "mysqlpool test CA"),),) in subjects
    assert params.ssl_ca == certs["cert"]


def test_ssl_verify_false_disables_checks(certs: dict[str, str]) -> None:
    params = parse_dsn(f"mysql://h/db?ssl_ca={certs['cert']}&ssl_verify=false")
    assert params.ssl is not None
    assert params.ssl.verify_mode == ssl.CERT_NONE
    assert params.ssl.check_hostname is False
    assert params.ssl_verify is False


def test_ssl_verify_false_alone_turns_tls_on() -> None:
    params = parse_dsn("mysql://h/db?ssl_verify=no")
    assert params.ssl is not None
    assert params.ssl.verify_mode == ssl.CERT_NONE


def test_client_certificate(certs: dict[str, str]) -> None:
    params = parse_dsn(
        f"mysql://h/db?ssl_ca={certs['cert']}&ssl_cert={certs['cert']}&ssl_key={certs['key']}"
    )
    assert isinstance(params.ssl, ssl.SSLContext)
    assert (params.ssl_cert, params.ssl_key) == (certs["cert"], certs["key"])
    combined = parse_dsn(f"mysql://h/db?ssl_cert={certs['combined']}")
    assert isinstance(combined.ssl, ssl.SSLContext)


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("ssl_ca=/nonexistent/ca.pem", "ssl_ca '/nonexistent/ca.pem'"),
        ("ssl_cert=/nonexistent/cert.pem", "ssl_cert '/nonexistent/cert.pem'"),
        ("ssl_key=/nonexistent/key.pem", "ssl_key given without ssl_cert"),
        ("ssl=false&ssl_verify=true", "conflicts"),
    ],
)
def test_bad_ssl_settings(query: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="invalid DSN") as exc_info:
        parse_dsn(f"mysql://u:{SECRET_Q}@h/db?{query}")
    message = str(exc_info.value)
    assert fragment in message
    assert SECRET not in full_error(exc_info)


def test_cert_without_key_in_file_is_an_error(certs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="cannot load ssl_cert"):
        ConnectParams(ssl_cert=certs["cert"])


def test_ssl_context_given_directly() -> None:
    context = ssl.create_default_context()
    params = ConnectParams(ssl=context)
    assert params.connect_kwargs()["ssl"] is context
    assert params.ssl_ca is None
    assert params.ssl_verify is None
    with pytest.raises(ValueError, match="not both"):
        ConnectParams(ssl=context, ssl_verify=False)


def test_ssl_of_wrong_type() -> None:
    with pytest.raises(TypeError, match="ssl must be"):
        ConnectParams(ssl="yes")  # type: ignore[arg-type]


# -- key ------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "host": "db1",
    "port": 3306,
    "user": "app",
    "password": "pw",
    "db": "shop",
}

# One change per connect option; every ConnectParams keyword must appear here
# or in SSL_VARIANTS (checked below).
CHANGES: list[tuple[str, Any]] = [
    ("host", "db2"),
    ("host", "DB1"),
    ("port", 3307),
    ("hosts", [("db1", 3306), ("db2", 3306)]),
    ("hosts", [("db2", 3306), ("db1", 3306)]),
    ("user", "other"),
    ("user", None),
    ("password", "pw2"),
    ("password", "PW"),
    ("password", ""),
    ("password", b"pw2"),
    ("db", "shop2"),
    ("db", None),
    ("unix_socket", "/tmp/mysql.sock"),
    ("charset", "utf8mb4"),
    ("sql_mode", "ANSI"),
    ("init_command", "SET time_zone='+00:00'"),
    ("connect_timeout", 5),
    ("autocommit", False),
    ("local_infile", True),
    ("ssl", True),
    ("ssl_verify", False),
    ("ssl_allow_plaintext", True),
    ("auth_plugin", "mysql_native_password"),
    ("program_name", "billing"),
    ("server_public_key", "-----BEGIN PUBLIC KEY-----"),
    ("client_flag", 2),
    ("read_default_file", "/etc/my.cnf"),
    ("read_default_group", "client"),
    ("echo", True),
    ("cursorclass", aiomysql.DictCursor),
    ("use_unicode", False),
    ("conv", {}),
    ("driver", "asyncmy"),
]


@pytest.mark.parametrize(("name", "value"), CHANGES)
def test_key_differs_when_one_parameter_differs(name: str, value: Any) -> None:
    base = ConnectParams(**BASE)
    changed = ConnectParams(**{**BASE, name: value})
    assert changed.key != base.key
    assert changed != base
    assert base.replace(**{name: value}) == changed


def ssl_variants(certs: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {},
        {"ssl": True},
        {"ssl_verify": False},
        {"ssl_ca": certs["cert"]},
        {"ssl_ca": certs["cert"], "ssl_verify": False},
        {"ssl_cert": certs["combined"]},
        {"ssl_cert": certs["cert"], "ssl_key": certs["key"]},
        {"ssl_ca": certs["cert"], "ssl_cert": certs["cert"], "ssl_key": certs["key"]},
        {"ssl": ssl.create_default_context()},
        {"ssl": ssl.create_default_context()},
    ]


def test_key_differs_for_every_tls_setting(certs: dict[str, str]) -> None:
    keys = [ConnectParams(**BASE, **variant).key for variant in ssl_variants(certs)]
    assert len(set(keys)) == len(keys)


def test_every_keyword_is_covered_by_the_key_tests(certs: dict[str, str]) -> None:
    covered = {name for name, _ in CHANGES}
    for variant in ssl_variants(certs):
        covered.update(variant)
    keywords = {
        name
        for name, p in inspect.signature(ConnectParams).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    extras = {"echo", "cursorclass", "use_unicode", "conv"}
    assert keywords | extras <= covered
    passthrough = set(inspect.signature(aiomysql.connect).parameters) - keywords - {"loop"}
    assert passthrough == extras


def test_key_equal_for_equal_parameters(certs: dict[str, str]) -> None:
    settings = {**BASE, "charset": "utf8mb4", "ssl_ca": certs["cert"], "conv": {1: int}}
    first = ConnectParams(**settings)
    second = ConnectParams(**settings)
    assert first.key == second.key
    assert first == second
    assert hash(first) == hash(second)
    assert first.ssl is not second.ssl  # separate contexts, same settings
    assert len({first, second}) == 1


def test_same_context_object_gives_equal_keys() -> None:
    context = ssl.create_default_context()
    assert ConnectParams(ssl=context) == ConnectParams(ssl=context)


def test_extras_at_aiomysql_default_do_not_change_key() -> None:
    defaults = inspect.signature(aiomysql.connect).parameters
    explicit = ConnectParams(
        echo=False,
        cursorclass=aiomysql.Cursor,
        use_unicode=None,
        conv=dict(defaults["conv"].default),
    )
    assert explicit == ConnectParams()


def test_key_does_not_reveal_password() -> None:
    params = ConnectParams(**{**BASE, "password": SECRET})
    texts = [str(params.key), repr(params.key)]
    forms = [
        SECRET,
        SECRET_Q,
        SECRET.encode().hex(),
        hashlib.sha256(SECRET.encode()).hexdigest(),
        hashlib.md5(SECRET.encode()).hexdigest(),
        "s3cr3t",
    ]
    for text in texts:
        for form in forms:
            assert form not in text
    assert ("password_sha256", hashlib.sha256(SECRET.encode()).hexdigest()) not in params.key


def test_key_is_a_hashable_tuple() -> None:
    params = ConnectParams(conv={1: int}, cursorclass=aiomysql.DictCursor)
    assert isinstance(params.key, tuple)
    assert {params.key: 1}[ConnectParams(conv={1: int}, cursorclass=aiomysql.DictCursor).key] == 1


# -- str / repr -----------------------------------------------------------------


def test_str_and_repr_redact_password() -> None:
    params = ConnectParams(host="127.0.0.1", user="root", password=SECRET, db="test")
    assert str(params) == "mysql://root:***@127.0.0.1:3306/test"
    assert repr(params) == "ConnectParams('mysql://root:***@127.0.0.1:3306/test')"
    assert params.redacted() == str(params)
    for text in (str(params), repr(params), f"{params!s} {params!r}", str([params])):
        assert "s3cr3t" not in text
        assert SECRET_Q not in text


def test_str_without_password_has_no_stars() -> None:
    assert str(ConnectParams(host="h", user="root")) == "mysql://root@h:3306"
    assert str(ConnectParams(host="h")) == "mysql://h:3306"
    assert str(ConnectParams(host="h", password="x")) == "mysql://:***@h:3306"


def test_str_shows_non_default_options_and_ipv6() -> None:
    params = parse_dsn("mariadb://r%40t:pw@[::1]:3307/d%20b?charset=utf8mb4&autocommit=0&ssl=1")
    assert str(params) == (
        "mysql://r%40t:***@[::1]:3307/d%20b?charset=utf8mb4&autocommit=false&ssl=true"
    )
    assert str(params.replace(charset="latin1")) != str(params)


def test_str_of_passwordless_params_parses_back(certs: dict[str, str]) -> None:
    params = ConnectParams(
        host="db1",
        port=3307,
        user="app user",
        db="shop",
        charset="utf8mb4",
        connect_timeout=2.5,
        init_command="SET a=1+1",
        sql_mode="ANSI",
        local_infile=True,
        program_name="p",
        client_flag=4,
        ssl_ca=certs["cert"],
        ssl_verify=False,
    )
    assert parse_dsn(str(params)) == params


def test_str_describes_options_a_dsn_cannot_hold() -> None:
    params = ConnectParams(ssl=ssl.create_default_context(), cursorclass=aiomysql.DictCursor)
    text = str(params)
    assert "ssl=SSLContext" in text
    assert "cursorclass=DictCursor" in text


# -- errors never reveal the password -----------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgres://root:{SECRET_Q}@h/db",
        f"postgres://root:{SECRET}@h/db",
        f"mysql://root:{SECRET}@h:abc/db",
        f"mysql://root:{SECRET}@h:/db",
        f"mysql://root:{SECRET}@/db",
        f"mysql://root:{SECRET}@h/db?bogus=1",
        f"mysql://root:{SECRET}@h/db?connect_timeout={SECRET_Q}",
        f"mysql://root:{SECRET}@h/db?autocommit={SECRET_Q}",
        f"mysql://root:{SECRET}@h/db?{SECRET_Q}=1",
        f"mysql://root:{SECRET}@h/db?charset=a&charset=b",
        f"mysql://root:{SECRET}@h/db?ssl_ca=/nonexistent",
        f"mysql://root:{SECRET}@h/a/b",
        f"mysql://root:{SECRET}@h1,,h2/db",
        f"mysql://root:{SECRET}@[::1/db",
        f"mysql://root:{SECRET}@[nope]/db",
        "mysql://root:s3cr3t%zzP@ss@h/db",  # malformed percent-encoding in the password
        "mysql://root:s3cr3t%ffP@ss@h/db",  # invalid UTF-8 in the password
        "mysql://root:s3cr3t%@h/db",
        "mysql://root:s3cr3t/P@ss@h/db",  # unencoded '/' ends the netloc early
        "mysql://root:s3cr3t?P@ss@h/db",  # unencoded '?'
        "mysql://root:s3cr3t#P@ss@h/db",  # unencoded '#'
        "mysql://root:s3cr3t/P@ss@h/db?connect_timeout=s3cr3t",
        "mysql://root:s3cr3t?connect_timeout=s3cr3t@h/db",
        "mysql://root:s3cr3t?s3cr3t=1@h/db",
    ],
)
def test_errors_never_contain_password(dsn: str) -> None:
    with pytest.raises(ValueError, match="invalid DSN") as exc_info:
        parse_dsn(dsn)
    text = full_error(exc_info)
    assert "s3cr3t" not in text
    assert SECRET_Q not in text
    assert exc_info.value.__cause__ is None


def test_password_cut_short_gets_a_hint() -> None:
    with pytest.raises(ValueError, match="percent-encode it"):
        parse_dsn("mysql://root:s3cr3t/P@ss@h/db")


def test_malformed_password_encoding_is_named() -> None:
    with pytest.raises(ValueError, match="password is not valid percent-encoding"):
        parse_dsn("mysql://root:s3cr3t%zz@h/db")
    with pytest.raises(ValueError, match="user is not valid UTF-8"):
        parse_dsn("mysql://r%ffot:pw@h/db")


def test_constructor_errors_never_contain_password() -> None:
    with pytest.raises(ValueError, match="ssl_ca") as exc_info:
        ConnectParams(password=SECRET, ssl_ca=f"/nonexistent/{SECRET}")
    assert SECRET not in full_error(exc_info)
    with pytest.raises(TypeError, match="password must be str or bytes") as type_info:
        ConnectParams(password=12345)  # type: ignore[arg-type]
    assert "12345" not in str(type_info.value)


# -- ConnectParams from keywords ------------------------------------------------------


def test_keywords_equal_dsn(certs: dict[str, str]) -> None:
    from_dsn = parse_dsn(
        f"mysql://app:{SECRET_Q}@db1:3307/shop?charset=utf8mb4&connect_timeout=5"
        f"&autocommit=false&init_command=SET+a%3D1&sql_mode=ANSI&local_infile=yes"
        f"&program_name=billing&client_flag=2&ssl_ca={certs['cert']}"
    )
    from_keywords = ConnectParams(
        host="db1",
        port=3307,
        user="app",
        password=SECRET,
        db="shop",
        charset="utf8mb4",
        connect_timeout=5,
        autocommit=False,
        init_command="SET a=1",
        sql_mode="ANSI",
        local_infile=True,
        program_name="billing",
        client_flag=2,
        ssl_ca=certs["cert"],
    )
    assert from_dsn == from_keywords
    assert from_dsn.key == from_keywords.key
    kw_dsn = from_dsn.connect_kwargs()
    kw_keywords = from_keywords.connect_kwargs()
    assert kw_dsn.pop("ssl").verify_mode == kw_keywords.pop("ssl").verify_mode
    assert kw_dsn == kw_keywords


def test_unknown_keyword_raises() -> None:
    with pytest.raises(TypeError, match="'hostname'"):
        ConnectParams(hostname="db1")
    with pytest.raises(TypeError, match="'loop'"):
        ConnectParams(loop=None)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"port": "3306"}, TypeError),
        ({"port": True}, TypeError),
        ({"port": 0}, ValueError),
        ({"port": 70000}, ValueError),
        ({"host": ""}, ValueError),
        ({"host": None}, TypeError),
        ({"user": 1}, TypeError),
        ({"connect_timeout": 0}, ValueError),
        ({"connect_timeout": float("nan")}, ValueError),
        ({"connect_timeout": "5"}, TypeError),
        ({"autocommit": "yes"}, TypeError),
        ({"autocommit": None}, TypeError),
        ({"local_infile": 1}, TypeError),
        ({"ssl_verify": "no"}, TypeError),
        ({"client_flag": 1.5}, TypeError),
        ({"ssl": False, "ssl_verify": True}, ValueError),
    ],
)
def test_constructor_validates(kwargs: dict[str, Any], error: type[Exception]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        ConnectParams(**kwargs)


def test_extra_keywords_pass_through() -> None:
    conv: dict[int, type] = {1: int}
    params = ConnectParams(cursorclass=aiomysql.DictCursor, echo=True, conv=conv)
    kwargs = params.connect_kwargs()
    assert kwargs["cursorclass"] is aiomysql.DictCursor
    assert kwargs["echo"] is True
    assert kwargs["conv"] == {1: int}
    assert dict(params.extra) == {"cursorclass": aiomysql.DictCursor, "echo": True, "conv": conv}
    conv[2] = float  # the caller's dict is copied: params do not change
    assert params.connect_kwargs()["conv"] == {1: int}
    assert params == ConnectParams(cursorclass=aiomysql.DictCursor, echo=True, conv={1: int})


def test_connect_kwargs_bind_to_aiomysql_connect() -> None:
    params = parse_dsn("mysql://app:pw@h/db?ssl=true&charset=utf8").replace(echo=True)
    kwargs = params.connect_kwargs()
    bound = inspect.signature(aiomysql.connect).bind(**kwargs)
    assert bound.arguments["password"] == "pw"
    assert "loop" not in kwargs
    assert not any(name.startswith("ssl_") for name in kwargs)
    inspect.signature(aiomysql.Connection).bind(**kwargs)


def test_connect_kwargs_is_a_fresh_dict() -> None:
    params = ConnectParams(host="h", conv={1: int})
    kwargs = params.connect_kwargs()
    kwargs["host"] = "other"
    kwargs["conv"][2] = float
    assert params.host == "h"
    assert params.connect_kwargs()["conv"] == {1: int}


def test_immutable() -> None:
    params = ConnectParams(host="h")
    with pytest.raises(AttributeError, match="immutable"):
        params.host = "other"
    with pytest.raises(AttributeError, match="immutable"):
        params.new_attribute = 1
    with pytest.raises(AttributeError, match="immutable"):
        del params.port
    assert params.host == "h"
    assert params.port == 3306


def test_replace() -> None:
    params = parse_dsn("mysql://app:pw@h/db?charset=utf8")
    other = params.replace(db="other", port=3310)
    assert (other.db, other.port) == ("other", 3310)
    assert (other.user, other.password, other.charset) == ("app", "pw", "utf8")
    assert (params.db, params.port) == ("db", 3306)
    assert params.replace() == params
    with pytest.raises(TypeError, match="'nope'"):
        params.replace(nope=1)


def test_replace_ssl(certs: dict[str, str]) -> None:
    params = ConnectParams(ssl_ca=certs["cert"])
    unverified = params.replace(ssl_verify=False)
    assert unverified.ssl_ca == certs["cert"]
    assert unverified.ssl is not None
    assert unverified.ssl.verify_mode == ssl.CERT_NONE
    plain = params.replace(ssl=False)
    assert plain.ssl is None
    assert plain.ssl_ca is None
    context = ssl.create_default_context()
    custom = params.replace(ssl=context)
    assert custom.ssl is context
    back = custom.replace(ssl_ca=certs["cert"])
    assert back == params


def test_copy_and_pickle(certs: dict[str, str]) -> None:
    params = parse_dsn(f"mysql://app:{SECRET_Q}@h/db?charset=utf8&ssl_ca={certs['cert']}")
    assert copy.copy(params) is params
    assert copy.deepcopy(params) is params
    restored = pickle.loads(pickle.dumps(params))
    assert restored == params
    assert restored.password == SECRET
    assert isinstance(restored.ssl, ssl.SSLContext)


def test_hosts_is_a_fresh_list() -> None:
    params = ConnectParams(host="h", port=3307)
    hosts = params.hosts
    hosts.append(("x", 1))
    assert params.hosts == [("h", 3307)]


def test_not_equal_to_other_types() -> None:
    params = ConnectParams()
    assert params != params.key
    assert params != str(params)
