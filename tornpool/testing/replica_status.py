"""Reading and waiting on a MariaDB replica's state: ``SHOW SLAVE STATUS`` as
a :class:`ReplicaStatus`, GTID positions, and the polling loops
:class:`~tornpool.testing.replication.ReplicationCluster` waits with.

Part of :mod:`tornpool.testing`; import from there.  The functions take an
open PyMySQL cursor on the replica (any account allowed to run
``SHOW SLAVE STATUS``) and block.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from .server import MariaDBServer

__all__ = [
    "ReplicationError",
    "ReplicationTimeout",
    "ReplicaStatus",
    "parse_gtid_pos",
    "read_replica_status",
    "wait_streaming",
    "wait_applied",
]

_POLL = 0.01  # seconds between two looks at a replica's status
_GTID_WAIT_SLICE = 0.1  # longest single MASTER_GTID_WAIT between two error checks


class ReplicationError(RuntimeError):
    """Replication did not start or broke; the message holds the server's error."""


class ReplicationTimeout(ReplicationError, TimeoutError):
    """A replica did not reach the wanted state in time; the message holds its status."""


@dataclass(frozen=True)
class ReplicaStatus:
    """A replica's own view, from ``SHOW SLAVE STATUS`` and ``@@gtid_slave_pos``."""

    io_thread: str
    """``Slave_IO_Running``: ``"Yes"``, ``"No"``, ``"Connecting"`` or ``"Preparing"``."""
    sql_thread: str
    """``Slave_SQL_Running``: ``"Yes"`` or ``"No"``."""
    seconds_behind_master: Optional[int]
    """``Seconds_Behind_Master``; ``None`` while the SQL or I/O thread is not running."""
    gtid_io_pos: str
    """GTID position received (written to the relay log)."""
    gtid_slave_pos: str
    """GTID position applied (``@@gtid_slave_pos``)."""
    sql_delay: int
    """``MASTER_DELAY`` in seconds."""
    source_port: int
    """TCP port of the server it replicates from."""
    last_io_errno: int
    last_io_error: str
    last_sql_errno: int
    last_sql_error: str
    streaming: bool
    """The source has begun sending its binary log (``Master_Log_File`` is known)."""

    @property
    def io_running(self) -> bool:
        return self.io_thread == "Yes"

    @property
    def sql_running(self) -> bool:
        return self.sql_thread == "Yes"

    @property
    def broken(self) -> bool:
        """A thread stopped on an error (not a deliberate stop, not a reconnect)."""
        return (self.io_thread == "No" and self.last_io_errno != 0) or (
            self.sql_thread == "No" and self.last_sql_errno != 0
        )

    def describe(self, replica: MariaDBServer) -> str:
        """One line for error messages: threads, positions, errors."""
        text = (
            f"{replica!r} io={self.io_thread} sql={self.sql_thread} "
            f"received={self.gtid_io_pos!r} applied={self.gtid_slave_pos!r}"
        )
        if self.last_io_errno:
            text += f"; I/O error {self.last_io_errno}: {self.last_io_error}"
        if self.last_sql_errno:
            text += f"; SQL error {self.last_sql_errno}: {self.last_sql_error}"
        return text


def parse_gtid_pos(pos: str) -> Dict[int, int]:
    """``"0-1-42,1-3-7"`` -> ``{0: 42, 1: 7}`` (domain id -> sequence number).

    :raises ValueError: *pos* is not a GTID position.
    """
    out: Dict[int, int] = {}
    for item in pos.replace("\n", "").split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split("-")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"not a GTID position: {pos!r}")
        out[int(parts[0])] = int(parts[2])
    return out


def read_replica_status(cur: Any, replica: MariaDBServer) -> ReplicaStatus:
    """Run ``SHOW SLAVE STATUS`` on *cur* (a cursor on *replica*).

    :raises ReplicationError: the server has no replication configured.
    """
    cur.execute("SHOW SLAVE STATUS")
    names = [d[0] for d in cur.description]
    row = cur.fetchone()
    if row is None:
        raise ReplicationError(f"{replica!r} has no replication configured")
    st = dict(zip(names, row))
    cur.execute("SELECT @@gtid_slave_pos")
    slave_pos: str = cur.fetchone()[0]
    sbm = st["Seconds_Behind_Master"]
    return ReplicaStatus(
        io_thread=str(st["Slave_IO_Running"]),
        sql_thread=str(st["Slave_SQL_Running"]),
        seconds_behind_master=None if sbm is None else int(sbm),
        gtid_io_pos=str(st["Gtid_IO_Pos"]),
        gtid_slave_pos=slave_pos,
        sql_delay=int(st["SQL_Delay"]),
        source_port=int(st["Master_Port"]),
        last_io_errno=int(st["Last_IO_Errno"]),
        last_io_error=str(st["Last_IO_Error"]),
        last_sql_errno=int(st["Last_SQL_Errno"]),
        last_sql_error=str(st["Last_SQL_Error"]),
        streaming=bool(st["Master_Log_File"]),
    )


def wait_streaming(cur: Any, replica: MariaDBServer, deadline: float) -> None:
    """Block until both replication threads run and the source has begun to
    send its binary log (a source without one answers the dump request with an
    error instead).

    :param deadline: a :func:`time.monotonic` value.
    :raises ReplicationError: a thread stopped on an error.
    :raises ReplicationTimeout: *deadline* passed.
    """
    while True:
        st = read_replica_status(cur, replica)
        if st.broken:
            raise ReplicationError(st.describe(replica))
        if st.io_running and st.sql_running and st.streaming:
            return
        if time.monotonic() >= deadline:
            raise ReplicationTimeout("replication did not start: " + st.describe(replica))
        time.sleep(_POLL)


def wait_applied(cur: Any, replica: MariaDBServer, pos: str, deadline: float) -> None:
    """Block until *replica*'s ``gtid_slave_pos`` reaches *pos*
    (``MASTER_GTID_WAIT`` in short slices, checking for errors between them).

    :param deadline: a :func:`time.monotonic` value.
    :raises ReplicationError: a thread stopped on an error.
    :raises ReplicationTimeout: *deadline* passed (e.g. the SQL thread is stopped).
    """
    while True:
        left = deadline - time.monotonic()
        cur.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (pos, max(0.0, min(_GTID_WAIT_SLICE, left))))
        if cur.fetchone()[0] == 0:
            return
        st = read_replica_status(cur, replica)
        if st.broken:
            raise ReplicationError(st.describe(replica))
        if time.monotonic() >= deadline:
            raise ReplicationTimeout(f"not at GTID {pos!r}: " + st.describe(replica))
