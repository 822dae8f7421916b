"""A connection's baseline session, and how to get back to it.

A pool promises that every lease starts in the session state the pool
configured: autocommit, database, character set, ``sql_mode``,
``init_command``, the pool's ``setsession`` statements.  Leases change that
state (``SET @x``, ``USE other``, ``SET autocommit=0``, temporary tables,
prepared statements, ``SET time_zone``...), so the state must be restored
before the next lease -- but only when it changed, so the common path costs
nothing:

* **Knowing when.**  tornpool asks for ``CLIENT_SESSION_TRACK`` at the
  handshake and turns on ``session_track_state_change``; from then on the
  server sets ``SERVER_SESSION_STATE_CHANGED`` (0x4000) in the status of any
  statement that changed session state, and the connection remembers it
  (``session_dirty``).  MariaDB keeps that flag set in the EOF packets of later
  result sets until an OK packet is sent, so the baseline ends with a
  ``COM_PING`` whose OK clears it.
* **Restoring.**  ``COM_RESET_CONNECTION`` (MariaDB >= 10.2.4, MySQL >=
  5.7.3) rolls back, drops user variables, temporary tables, prepared
  statements, user locks, and resets session variables to their global
  values.  It keeps the current database, and tracking is itself a session
  variable, so the reset is followed by the statements that rebuild the
  baseline, then ``COM_INIT_DB`` and ``COM_PING``.  All of it is written in one
  go when the lease is released; the replies are checked before the next
  command on that connection is written (usually they are already there).
* **Fallbacks** (documented in ``docs/pool.md``): a server without session
  tracking gets the reset after every lease; a server without
  ``COM_RESET_CONNECTION`` has a changed connection closed and replaced.

Nothing here does I/O; :class:`tornpool.Connection` sends what this module
builds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tornpool import codec

__all__ = ["supports_reset", "Baseline", "TRACKING_ON"]

COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_PING = 0x0E
COM_RESET_CONNECTION = 0x1F

#: Turns on the state-change tracker for this session.
TRACKING_ON = "SET SESSION session_track_state_change = 1"

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def supports_reset(server_version: str) -> bool:
    """Whether the server knows ``COM_RESET_CONNECTION``: MariaDB >= 10.2.4
    (whose version string may start with the compatibility prefix
    ``5.5.5-``) or MySQL >= 5.7.3."""
    found = [tuple(int(x) for x in m.groups()) for m in _VERSION.finditer(server_version)]
    if not found:
        return False
    if "mariadb" in server_version.lower():
        version = found[-1] if found[0] == (5, 5, 5) and len(found) > 1 else found[0]
        return version >= (10, 2, 4)
    return found[0] >= (5, 7, 3)


def _command(command: int, payload: bytes) -> bytes:
    packet, _ = codec.build_command(command, payload)
    return packet


class Baseline:
    """The statements that rebuild a connection's configured session after
    ``COM_RESET_CONNECTION``, as packets ready to pipeline.

    :param raw: the connection's PyMySQL object (its charset, collation,
        ``sql_mode``, ``init_command``, autocommit mode, database).
    :param tracking: whether the session tracker is on (it must be turned on
        again after a reset).
    """

    __slots__ = ("_raw", "_tracking", "_extra", "_packets")

    def __init__(self, raw: Any, tracking: bool) -> None:
        self._raw = raw
        self._tracking = tracking
        self._extra: list[str] = []
        self._packets: list[bytes] | None = None

    def add(self, statements: Sequence[str]) -> None:
        """Statements the pool ran at connect (``setsession``), already
        formatted, to run again after every reset."""
        self._extra.extend(statements)
        self._packets = None

    def statements(self) -> list[str]:
        """The SQL run after the reset, in order (for docs and tests)."""
        raw = self._raw
        out: list[str] = []
        charset = raw.charset
        collation = getattr(raw, "collation", None)
        if collation:
            out.append("SET NAMES %s COLLATE %s" % (charset, collation))
        else:
            out.append("SET NAMES %s" % charset)
        if raw.sql_mode is not None:
            out.append("SET sql_mode=%s" % raw.escape(raw.sql_mode))
        if raw.init_command is not None:
            out.append(raw.init_command)
            out.append("COMMIT")
        if raw.autocommit_mode is not None:
            out.append("SET AUTOCOMMIT = %d" % int(bool(raw.autocommit_mode)))
        if self._tracking:
            out.append(TRACKING_ON)
        out.extend(self._extra)
        return out

    def packets(self) -> list[bytes]:
        """Every packet of a reset, in the order they are written:
        ``COM_RESET_CONNECTION``, the statements, ``COM_INIT_DB`` (if the
        connection has a database), ``COM_PING``."""
        packets = self._packets
        if packets is None:
            raw = self._raw
            encoding = raw.encoding
            packets = [_command(COM_RESET_CONNECTION, b"")]
            packets.extend(_command(COM_QUERY, s.encode(encoding)) for s in self.statements())
            if raw.db:
                db = raw.db if isinstance(raw.db, bytes) else raw.db.encode(encoding)
                packets.append(_command(COM_INIT_DB, db))
            packets.append(_command(COM_PING, b""))
            self._packets = packets
        return packets
