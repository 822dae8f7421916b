"""Multi-host DSNs and host lists, parsed (pure: no server)."""

from __future__ import annotations

from typing import Any

import pytest

from tornpool import DSNError, Pool, parse_dsn
from tornpool.dsn import HostSpec, parse_hosts, parse_multi_host_dsn
from tornpool.hosts import HostList

SINGLE_HOST_DSNS = [
    "mysql://bob:p%40ss@db.example:3307/shop?charset=utf8mb4&connect_timeout=2.5",
    "mysql://127.0.0.1",
    "mariadb://u@h/d",
    "mysql+tornpool://u@[::1]:3306/d",
    "mysql://root@/test?unix_socket=/run/mysqld/mysqld.sock",
    "mysql://root@%2Frun%2Fmysqld%2Fmysqld.sock/test",
    "mysql://u@h/d?autocommit=true&ssl_verify_cert=1&ssl_ca=/ca.pem&read_timeout=3&passwd=x&db=other",
    "mysql://u@/d?host=h2&port=3310",
]


@pytest.mark.parametrize("dsn", SINGLE_HOST_DSNS)
def test_single_host_dsns_read_the_same_both_ways(dsn: str) -> None:
    """parse_multi_host_dsn gives exactly parse_dsn's arguments, with the
    host moved into the host list."""
    single = parse_dsn(dsn)
    multi = parse_multi_host_dsn(dsn)
    expected = {k: v for k, v in single.items() if k not in ("host", "port", "unix_socket")}
    assert multi.options == expected
    if "unix_socket" in single:
        assert multi.hosts == (HostSpec(single["unix_socket"]),)
    elif "host" in single:
        assert multi.hosts == (HostSpec(single["host"], single.get("port")),)
    else:
        assert multi.hosts == ()
    assert multi.target_session_attrs is None and multi.load_balance_hosts is None


def test_several_hosts_in_order() -> None:
    got = parse_multi_host_dsn(
        "mysql://app:s%3Acret@db1:3306,[::1]:3307,db3,%2Frun%2Fm.sock/shop"
        "?target_session_attrs=read-write&load_balance_hosts=random&charset=utf8mb4&port=3310")
    assert got.hosts == (HostSpec("db1", 3306), HostSpec("::1", 3307), HostSpec("db3", 3310),
                         HostSpec("/run/m.sock"))
    assert got.options == {"user": "app", "password": "s:cret", "database": "shop",
                           "charset": "utf8mb4"}
    assert got.target_session_attrs == "read-write"
    assert got.load_balance_hosts == "random"
    assert [str(h) for h in got.hosts] == ["db1:3306", "[::1]:3307", "db3:3310", "/run/m.sock"]
    assert got.hosts[3].connect_kwargs() == {"unix_socket": "/run/m.sock"}
    assert got.hosts[0].connect_kwargs() == {"host": "db1", "port": 3306}


@pytest.mark.parametrize("hosts, expected", [
    ("h1,h2:3307", (HostSpec("h1"), HostSpec("h2", 3307))),
    (["h1:1", ("h2", 2), "[fe80::1]"], (HostSpec("h1", 1), HostSpec("h2", 2), HostSpec("fe80::1"))),
    ([("[::1]", 5)], (HostSpec("::1", 5),)),
])
def test_parse_hosts_forms(hosts: Any, expected: tuple[HostSpec, ...]) -> None:
    assert parse_hosts(hosts) == expected


@pytest.mark.parametrize("hosts", [
    "", "h1,,h2", "h1:0", "h1:99999", "h1:x", "::1", "[::1", "[::1]x", ":3306", [], [("h", "3306")],
    [("h", True)], [42],
])
def test_bad_host_lists_are_typed(hosts: Any) -> None:
    with pytest.raises(DSNError):
        parse_hosts(hosts)


@pytest.mark.parametrize("dsn, words", [
    ("mysql://u@h1,h2/d?target_session_attrs=master", "target_session_attrs"),
    ("mysql://u@h1,h2/d?load_balance_hosts=yes", "load_balance_hosts"),
    ("mysql://u@h1,h2/d?host=h3", "both"),
    ("mysql://u@h1,h2/d?unix_socket=/s", "both"),
    ("mysql://u@h1,h2/d?bogus=1", "unknown DSN parameter"),
    ("postgres://u@h1,h2/d", "scheme"),
])
def test_bad_multi_host_dsns_are_typed(dsn: str, words: str) -> None:
    with pytest.raises(DSNError) as info:
        parse_multi_host_dsn(dsn)
    assert words in str(info.value)


def test_parse_dsn_points_host_lists_elsewhere_and_hides_the_password() -> None:
    with pytest.raises(DSNError) as info:
        parse_dsn("mysql://u:secret@h1:3306,h2:3306/d")
    assert "several hosts" in str(info.value) and "tornpool.Pool" in str(info.value)
    assert "secret" not in str(info.value)
    with pytest.raises(DSNError) as info:
        parse_dsn("mysql://u@h1/d?target_session_attrs=read-write")
    assert "tornpool.Pool" in str(info.value)


def test_plain_pools_keep_the_single_host_path() -> None:
    """No host list, no host option: the pool connects as it always did."""
    for dsn in SINGLE_HOST_DSNS:
        assert HostList.from_config(dsn, {}) is None
    pool = Pool("mysql://u@h/d", host="other")
    assert pool.hosts is None
    assert pool.engine.backoff.max_interval == 0.8


def test_pool_host_list_from_dsn_and_kwargs() -> None:
    pool = Pool("mysql://u@h1,h2:3307/d?target_session_attrs=read-write", user="v",
                connect_timeout=1.5)
    hosts = pool.hosts
    assert hosts is not None
    assert hosts.hosts == (HostSpec("h1"), HostSpec("h2", 3307))
    assert hosts.target == "read-write" and hosts.load_balance == "disable"
    assert hosts.options["user"] == "v" and hosts.options["connect_timeout"] == 1.5
    assert hosts.options["autocommit"] is True  # the pool's default, as for one host
    assert pool.engine.backoff.max_interval == 0.25

    # hosts= and the options override the DSN's; port= is the default port
    pool = Pool("mysql://u@h1,h2/d?target_session_attrs=read-write", hosts=["x", "y:1"],
                port=3311, target_session_attrs="any", load_balance_hosts="random")
    assert pool.hosts is not None
    assert pool.hosts.hosts == (HostSpec("x", 3311), HostSpec("y", 1))
    assert pool.hosts.target == "any" and pool.hosts.load_balance == "random"

    # one host with a target is checked too
    pool = Pool("mysql://u@h1/d", target_session_attrs="read-only", reconnect_max_interval=2.0)
    assert pool.hosts is not None and pool.hosts.hosts == (HostSpec("h1"),)
    assert pool.engine.backoff.max_interval == 2.0


@pytest.mark.parametrize("kwargs", [
    {"host": "h3"},
    {"unix_socket": "/s"},
    {"target_session_attrs": "master"},
    {"load_balance_hosts": "round-robin"},
])
def test_pool_host_list_misuse_is_typed(kwargs: Any) -> None:
    with pytest.raises(DSNError):
        Pool("mysql://u@h1,h2/d", **kwargs)


def test_host_order_is_as_given_or_shuffled() -> None:
    hosts = parse_hosts(",".join("h%d" % i for i in range(8)))
    ordered = HostList(hosts, {})
    assert ordered.order() == list(hosts)
    shuffled = HostList(hosts, {}, load_balance_hosts="random")
    orders = {tuple(shuffled.order()) for _ in range(20)}
    assert len(orders) > 1 and all(sorted(o, key=hosts.index) == list(hosts) for o in orders)
