"""What a server is, read from the server itself: writable or read-only, a
replica or not, and how far behind its source it is.

Nothing here assumes a role from a host's place in a list or from a name:
every answer comes from a query on a live connection (or on a pool, whose
``execute`` has the same shape).

* ``SELECT @@global.read_only`` -- ``read_only`` is what MariaDB and MySQL
  refuse writes by (``super_read_only`` implies it); one query, allowed to
  any account.
* ``SHOW REPLICA STATUS`` (MariaDB >= 10.5.1, MySQL >= 8.0.22), else
  ``SHOW SLAVE STATUS`` -- a row means the server replicates from a source;
  its ``Seconds_Behind_Master`` (``Seconds_Behind_Source`` on MySQL) is the
  lag, NULL while the SQL thread is stopped or the I/O thread is not
  connected.  It needs the ``REPLICA MONITOR`` / ``SLAVE MONITOR`` privilege
  on MariaDB >= 10.5.9 (``REPLICATION CLIENT`` on MySQL); without it the
  answer is "cannot tell" (:attr:`ServerRole.replica` is None).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from tornpool.cursors import Cursor
from tornpool.errors import MySQLError

__all__ = [
    "ServerRole",
    "Executor",
    "read_role",
    "replica_status",
    "replica_lag",
    "is_read_only_error",
    "ER_OPTION_PREVENTS_STATEMENT",
]

#: "The MariaDB server is running with the --read-only option so it cannot
#: execute this statement" (also sent for other options: check the text).
ER_OPTION_PREVENTS_STATEMENT = 1290
_ER_PARSE_ERROR = 1064
_ER_ACCESS_DENIED = (1227, 1142, 1045, 1044)  # specific / table / user / database access


class Executor(Protocol):
    """A connection, a lease or a pool: something with ``execute``."""

    def execute(self, query: str, args: Any = None, *, timeout: float | None = None,
                cursor: type[Any] | None = None) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class ServerRole:
    """A server's role as it reported it."""

    #: ``@@global.read_only``.
    read_only: bool
    #: Replication is configured on it; None: not asked, or not allowed to see.
    replica: bool | None = None

    @property
    def standby(self) -> bool:
        """A replica (or, when replication status cannot be read, read-only)."""
        return self.replica if self.replica is not None else self.read_only

    def matches(self, target: str) -> bool:
        """Whether a server in this role serves ``target_session_attrs``
        ``target`` (``prefer-standby`` matches standbys only: the fallback to
        any server is the host list's business)."""
        if target == "any":
            return True
        if target == "read-write":
            return not self.read_only
        if target == "read-only":
            return self.read_only
        if target == "primary":
            return not self.standby
        if target in ("standby", "prefer-standby"):
            return self.standby
        raise ValueError(f"unknown target_session_attrs {target!r}")

    def __str__(self) -> str:
        text = "read-only" if self.read_only else "read-write"
        if self.replica is not None:
            text += ", a replica" if self.replica else ", not a replica"
        return text


async def read_role(conn: Executor, *, replication: bool = False,
                    timeout: float | None = 5.0) -> ServerRole:
    """Ask the server behind ``conn`` what it is: one query
    (``@@global.read_only``), plus the replication status when
    ``replication`` is true.

    :returns: (resolves to) a :class:`ServerRole`.
    :raises MySQLError: the query failed (lost connection, timeout...).
    """
    cur = await conn.execute("SELECT @@global.read_only", timeout=timeout, cursor=Cursor)
    read_only = bool(int(cur.fetchone()[0]))
    replica: bool | None = None
    if replication:
        try:
            replica = await replica_status(conn, timeout=timeout) is not None
        except MySQLError as exc:
            if _errno(exc) not in _ER_ACCESS_DENIED:
                raise
    return ServerRole(read_only, replica)


async def replica_status(conn: Executor, *, timeout: float | None = 5.0) -> dict[str, Any] | None:
    """The server's replication status (the first row of ``SHOW REPLICA
    STATUS``, or of ``SHOW SLAVE STATUS`` where the former is unknown) as a
    dict by column name, or None if it replicates from nobody.

    :raises MySQLError: the account may not see it (1227), or the query failed.
    """
    try:
        cur = await conn.execute("SHOW REPLICA STATUS", timeout=timeout, cursor=Cursor)
    except MySQLError as exc:
        if _errno(exc) != _ER_PARSE_ERROR:
            raise
        cur = await conn.execute("SHOW SLAVE STATUS", timeout=timeout, cursor=Cursor)
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip((d[0] for d in cur.description), row))


def replica_lag(status: dict[str, Any]) -> float | None:
    """Seconds a replica is behind its source, from :func:`replica_status`'s
    row; None when the server cannot say (SQL thread stopped, I/O thread not
    connected)."""
    value = status.get("Seconds_Behind_Master", status.get("Seconds_Behind_Source"))
    return None if value is None else float(value)


def is_read_only_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the server refusing a write because it is
    read-only (error 1290 naming ``--read-only`` or ``--super-read-only``;
    the same number is sent for other options, such as
    ``--secure-file-priv``)."""
    if _errno(exc) != ER_OPTION_PREVENTS_STATEMENT:
        return False
    text = str(exc.args[1]) if len(exc.args) > 1 else ""
    return "read-only" in text or "read_only" in text


def _errno(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0
