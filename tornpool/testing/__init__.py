"""Test helpers: throwaway MariaDB servers and a fault-injecting TCP proxy.

Everything here is meant to be reused in *your* test suite as well as ours:

* :class:`MariaDBServer` starts a private ``mariadbd`` (temp datadir, free
  port on 127.0.0.1, its own unix socket, ``root`` without a password,
  database ``test``), optionally with TLS; it can be killed and restarted
  on the same port with its data intact.
* :class:`FaultProxy` is a loopback TCP proxy, running in its own thread,
  that adds latency, swallows traffic, resets or half-closes connections and
  refuses new ones, on demand.
* :class:`ReplicationCluster` starts a primary and read-only replicas
  (real GTID replication over loopback, each a :class:`MariaDBServer`) and
  kills, promotes, demotes and delays them on demand.
* :class:`PostgresServer` starts a private PostgreSQL the same way (Debian's
  ``initdb`` and ``postgres``, trust authentication, database ``test``), for
  the tests of :class:`tornpool.dbapi.ExecutorPool` over psycopg.
* :func:`test_dsn`, :func:`postgres_test_dsn` and the pytest fixtures
  ``mariadb_dsn``, ``throwaway_mariadb``, ``tls_mariadb``,
  ``mariadb_replication``, ``postgres_dsn`` and ``throwaway_postgres``
  (enable them with ``pytest_plugins = ["tornpool.testing"]`` in your
  top-level ``conftest.py``).

Importing this module starts nothing and touches no event loop.  The fixtures
are defined only when pytest is already imported (which it is whenever this
module is loaded as a plugin or from a ``conftest.py``); importing
``tornpool.testing`` never imports pytest.

The code lives in :mod:`tornpool.testing.server` (``mariadbd`` discovery,
template datadir, :class:`MariaDBServer`, :func:`test_dsn`),
:mod:`tornpool.testing.replication` (:class:`ReplicationCluster`),
:mod:`tornpool.testing.replica_status` (:class:`ReplicaStatus`, the
replication errors) and :mod:`tornpool.testing.proxy` (:class:`FaultProxy`);
import it from here.

See ``docs/testing.md`` for a walk-through.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterator, TypeVar, cast

from .postgres import (
    PG_TEST_DSN_ENV,
    PostgresNotFound,
    PostgresServer,
    PostgresStartError,
    find_pg_bindir,
    postgres_test_dsn,
)
from .proxy import FaultProxy
from .replica_status import ReplicaStatus, ReplicationError, ReplicationTimeout
from .replication import ADMIN_USER, REPLICATION_USER, ReplicationCluster
from .server import (
    INSTALL_HINT,
    MARIADBD_ENV,
    TEST_DSN_ENV,
    MariaDBNotFound,
    MariaDBServer,
    ServerStartError,
    find_mariadbd,
    test_dsn,
)

__all__ = [
    "MariaDBNotFound",
    "ServerStartError",
    "MariaDBServer",
    "FaultProxy",
    "ReplicationCluster",
    "ReplicaStatus",
    "ReplicationError",
    "ReplicationTimeout",
    "ADMIN_USER",
    "REPLICATION_USER",
    "find_mariadbd",
    "test_dsn",
    "TEST_DSN_ENV",
    "INSTALL_HINT",
    "PostgresServer",
    "PostgresNotFound",
    "PostgresStartError",
    "find_pg_bindir",
    "postgres_test_dsn",
    "PG_TEST_DSN_ENV",
]


# --------------------------------------------------------------------------
# pytest fixtures (only when pytest is already loaded)
# --------------------------------------------------------------------------

_pytest = sys.modules.get("pytest")

_F = TypeVar("_F", bound=Callable[..., Any])


def _fixture(scope: str = "function") -> Callable[[_F], _F]:
    assert _pytest is not None
    return cast(Callable[[_F], _F], _pytest.fixture(scope=scope))


if _pytest is not None:

    @_fixture(scope="session")
    def mariadb_dsn() -> str:
        """Session-wide DSN: ``$TORNPOOL_TEST_DSN`` or a throwaway server.

        Do not kill or restart the server behind it; use ``throwaway_mariadb``.
        """
        return test_dsn()

    @_fixture()
    def throwaway_mariadb() -> Iterator[MariaDBServer]:
        """A fresh :class:`MariaDBServer` for this test only (kill/restart freely)."""
        with MariaDBServer() as srv:
            yield srv

    @_fixture(scope="session")
    def tls_mariadb() -> Iterator[MariaDBServer]:
        """A session-wide throwaway :class:`MariaDBServer` with TLS enabled."""
        with MariaDBServer(tls=True) as srv:
            yield srv

    @_fixture()
    def mariadb_replication(request: Any) -> Iterator[ReplicationCluster]:
        """A started :class:`ReplicationCluster` for this test only: one
        replica, or as many as ``@pytest.mark.parametrize("mariadb_replication",
        [N], indirect=True)`` asks for.  Everything is stopped and removed after
        the test, whether it passed or failed."""
        with ReplicationCluster(replicas=getattr(request, "param", 1)) as cluster:
            yield cluster

    @_fixture(scope="session")
    def postgres_dsn() -> str:
        """Session-wide libpq connection string: ``$TORNPOOL_TEST_PG_DSN`` or
        a throwaway :class:`PostgresServer` (never stop it in a test)."""
        return postgres_test_dsn()

    @_fixture()
    def throwaway_postgres() -> Iterator[PostgresServer]:
        """A fresh :class:`PostgresServer` for this test only (stop it freely)."""
        with PostgresServer() as srv:
            yield srv

    __all__ += ["mariadb_dsn", "throwaway_mariadb", "tls_mariadb", "mariadb_replication",
                "postgres_dsn", "throwaway_postgres"]
