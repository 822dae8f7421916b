"""DSN parsing (pure, no server)."""

from __future__ import annotations

import pytest

from tornpool import DSNError, parse_dsn


def test_full_tcp_dsn() -> None:
    assert parse_dsn("mysql://bob:p%40ss@db.example:3307/shop?charset=utf8mb4&connect_timeout=2.5") == {
        "user": "bob",
        "password": "p@ss",
        "host": "db.example",
        "port": 3307,
        "database": "shop",
        "charset": "utf8mb4",
        "connect_timeout": 2.5,
    }


def test_minimal_and_schemes() -> None:
    assert parse_dsn("mysql://127.0.0.1") == {"host": "127.0.0.1"}
    assert parse_dsn("mariadb://u@h/d") == {"user": "u", "host": "h", "database": "d"}
    assert parse_dsn("mysql+tornpool://u@[::1]:3306/d")["host"] == "::1"


def test_unix_socket_forms() -> None:
    assert parse_dsn("mysql://root@/test?unix_socket=/run/mysqld/mysqld.sock") == {
        "user": "root",
        "database": "test",
        "unix_socket": "/run/mysqld/mysqld.sock",
    }
    assert parse_dsn("mysql://root@%2Frun%2Fmysqld%2Fmysqld.sock/test")["unix_socket"] == "/run/mysqld/mysqld.sock"


def test_typed_params_and_aliases() -> None:
    got = parse_dsn(
        "mysql://u@h/d?autocommit=true&ssl_verify_cert=1&ssl_ca=/ca.pem&read_timeout=3&passwd=x&db=other"
    )
    assert got["autocommit"] is True and got["ssl_verify_cert"] is True
    assert got["read_timeout"] == 3.0 and got["password"] == "x" and got["database"] == "other"


@pytest.mark.parametrize(
    "dsn",
    [
        "postgres://u@h/d",
        "mysql://u@h:notaport/d",
        "mysql://u@h/d?bogus=1",
        "mysql://u@h/d?autocommit=maybe",
        "mysql://u@h/d?connect_timeout=soon",
    ],
)
def test_bad_dsns_are_typed(dsn: str) -> None:
    with pytest.raises(DSNError) as info:
        parse_dsn(dsn)
    assert isinstance(info.value, ValueError)


def test_password_not_echoed() -> None:
    with pytest.raises(DSNError) as info:
        parse_dsn("postgres://u:secret@h/d")
    assert "secret" not in str(info.value)


def test_non_string() -> None:
    with pytest.raises(DSNError):
        parse_dsn(42)  # type: ignore[arg-type]
