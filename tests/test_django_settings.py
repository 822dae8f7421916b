"""greentor_compat.django: the settings shapes, and the backend on PyMySQL
whatever ``MySQLdb`` is."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from greentor_compat.django.pooling import (DEFAULT_KEEP_ALIVE, DEFAULT_MAX_SIZE, DEFAULT_TIMEOUT,
                                            ImproperPool, pool_settings)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pool_true_and_absent_mean_the_defaults() -> None:
    for options in ({"pool": True}, {}):
        got = pool_settings({"OPTIONS": options})
        assert got.enabled
        assert (got.min_size, got.max_size, got.timeout, got.keep_alive) == (
            0, DEFAULT_MAX_SIZE, DEFAULT_TIMEOUT, DEFAULT_KEEP_ALIVE)
    assert pool_settings({}).enabled


def test_pool_false_turns_it_off() -> None:
    assert not pool_settings({"OPTIONS": {"pool": False}}).enabled
    assert not pool_settings({"OPTIONS": {"pool": None}, "MAX_SIZE": 5}).enabled


def test_pool_mapping_in_djangos_shape_with_engine_options() -> None:
    got = pool_settings({"OPTIONS": {"pool": {"min_size": 2, "max_size": 4, "timeout": 10,
                                              "max_lifetime": 600, "max_idle": 30}}})
    assert (got.min_size, got.max_size, got.timeout) == (2, 4, 10)
    assert dict(got.options) == {"max_lifetime": 600, "max_idle": 30}


def test_greentor_keys_at_either_level_and_the_pool_mapping_wins() -> None:
    top = pool_settings({"MAX_SIZE": 7, "KEEP_ALIVE": 60, "OPTIONS": {}})
    assert (top.max_size, top.keep_alive) == (7, 60)
    inner = pool_settings({"OPTIONS": {"MAX_SIZE": 6, "KEEP_ALIVE": 0}})
    assert (inner.max_size, inner.keep_alive) == (6, None)  # 0: never ping
    both = pool_settings({"MAX_SIZE": 7, "OPTIONS": {"pool": {"max_size": 3}}})
    assert both.max_size == 3


@pytest.mark.parametrize("pool, message", [
    ({"max_size": 0}, "max_size >= 1"),
    ({"min_size": 5, "max_size": 2}, "min_size <= max_size"),
    ({"max_size": -1}, ">= 0"),
    ({"max_size": "10"}, "whole number"),
    ({"max_size": True}, "whole number"),
    ({"timeout": "soon"}, "number"),
    ({"size": 3}, "unknown pool option(s) size"),
    ("yes", "must be True, False or a mapping"),
])
def test_bad_pool_settings_say_what_is_wrong(pool: Any, message: str) -> None:
    with pytest.raises(ImproperPool, match=message.replace("(", r"\(").replace(")", r"\)")):
        pool_settings({"OPTIONS": {"pool": pool}})


def test_connection_params_are_pymysqls_without_the_pool_keys(django_db: str) -> None:
    import pymysql
    from django.db import connections

    from greentor_compat.django.mysql.base import CONVERSIONS

    wrapper = connections["default"]
    params = wrapper.get_connection_params()
    assert "pool" not in params and "MAX_SIZE" not in params
    assert params["conv"] is CONVERSIONS
    assert params["database"] == django_db
    assert wrapper.Database is pymysql


def test_bad_pool_settings_surface_as_improperly_configured(django_db: str) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connections

    from greentor_compat.django.mysql.base import DatabaseWrapper

    bad = dict(connections["default"].settings_dict, OPTIONS={"pool": {"max_size": 0}})
    with pytest.raises(ImproperlyConfigured, match="max_size >= 1"):
        DatabaseWrapper(bad, alias="bad").connect()


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_mysqlclient_pymysql_stands_in_only_while_django_imports() -> None:
    out = run_python("""
        import sys
        sys.modules["MySQLdb"] = None          # as if mysqlclient were not installed
        import pymysql
        own_version = pymysql.version_info
        from greentor_compat.django.mysqldb import MYSQLDB_API_LEVEL, django_mysql_base
        base = django_mysql_base()
        assert base.Database.version_info >= MYSQLDB_API_LEVEL[:3]
        assert base.Database.connect is pymysql.connect
        assert base.Database is not pymysql     # PyMySQL's module is left alone
        assert pymysql.version_info == own_version
        assert sys.modules["MySQLdb"] is None   # taken out again
        try:
            import MySQLdb
        except ImportError:
            print("still absent")
    """)
    assert out.strip() == "still absent"


def test_with_mysqlclient_installed_nothing_is_replaced() -> None:
    pytest.importorskip("MySQLdb")
    out = run_python("""
        import MySQLdb, pymysql
        from greentor_compat.django.mysql import base
        from django.db.backends.mysql import base as stock
        assert stock.Database is MySQLdb and MySQLdb is not pymysql
        assert base.DatabaseWrapper.Database is pymysql
        print("ok")
    """)
    assert out.strip() == "ok"
