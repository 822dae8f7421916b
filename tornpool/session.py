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

:class:`Baseline` builds the packets; :class:`SessionKeeper` (one per
connection, :attr:`tornpool.Connection.session`) knows whether the session
changed and pipelines the packets through the connection's fast path without
waiting for their replies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pymysql.constants import SERVER_STATUS

from tornpool import codec

if TYPE_CHECKING:
    from tornpool.fastpath import FastPath

__all__ = ["supports_reset", "Baseline", "SessionKeeper", "TRACKING_ON"]

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


class SessionKeeper:
    """A connection's session as its pool sees it: whether it changed since
    the baseline, and the commands that restore it, written without waiting
    (the fast path writes the next command once their replies came back
    clean).

    :param fp: the connection's fast path.
    :param writable: ``writable(idle)`` -- whether commands may be written
        now: the connection is open and no stream is unfinished; with
        ``idle``, no command is running either.
    :param fatal: closes the connection (a restoring command failed).
    """

    __slots__ = ("_fp", "_writable", "_fatal", "_baseline", "resettable", "tracking")

    def __init__(self, fp: FastPath, writable: Callable[[bool], bool],
                 fatal: Callable[[BaseException], None]) -> None:
        self._fp = fp
        self._writable = writable
        self._fatal = fatal
        self._baseline: Baseline | None = None
        #: The server knows ``COM_RESET_CONNECTION``.
        self.resettable = False
        #: The server flags session-state changes.
        self.tracking = False

    def opened(self, raw: Any, tracking: bool) -> None:
        """The handshake is done (``raw``: the PyMySQL object); ``tracking``
        tells whether the state-change tracker is on."""
        self.resettable = supports_reset(raw.server_version)
        self.tracking = tracking
        self._baseline = Baseline(raw, tracking)

    @property
    def dirty(self) -> bool:
        """A statement changed session state since the baseline (or the
        server cannot tell: no session tracking)."""
        return self._fp.dirty or not self.tracking

    def add(self, statements: Sequence[str]) -> None:
        """Make ``statements`` (already run, formatted) part of the baseline."""
        assert self._baseline is not None
        self._baseline.add(statements)

    def statements(self) -> list[str]:
        """The statements a reset runs after ``COM_RESET_CONNECTION``."""
        return [] if self._baseline is None else self._baseline.statements()

    def reset(self, on_error: Callable[[BaseException], None]) -> bool:
        """Write the commands that bring the session back to its baseline.
        If one fails, the connection closes and ``on_error`` is called.

        :returns: False (nothing sent) if the server cannot reset a session
            or the connection is busy or closed.
        """
        if not self.resettable or self._baseline is None:
            return False
        return self._pipeline(self._baseline.packets(), on_error, clean=True)

    def rollback_soon(self, on_error: Callable[[BaseException], None]) -> bool:
        """Write ``ROLLBACK`` (as :meth:`reset`).

        :returns: False if the connection is busy or closed.
        """
        return self._pipeline([_command(COM_QUERY, b"ROLLBACK")], on_error, clean=False)

    def drain(self) -> bool:
        """Read and drop the result sets a statement left on the wire (a
        ``CALL``'s status result, sets nobody asked ``nextset()`` for); an
        error among them is dropped too.

        :returns: False if there is nothing of that kind (an unfinished
            streaming result cannot be drained cheaply) or the connection is
            closed.
        """
        return self._writable(False) and self._fp.drain_quietly()

    def _pipeline(self, packets: list[bytes], on_error: Callable[[BaseException], None],
                  clean: bool) -> bool:
        if not self._writable(True):
            return False
        fatal = self._fatal

        def failed(exc: BaseException) -> None:
            fatal(exc)
            on_error(exc)

        fp = self._fp
        fp.pipeline(packets, failed)
        # What the replies will say once they are read.
        fp.status &= ~SERVER_STATUS.SERVER_STATUS_IN_TRANS
        if clean:
            fp.mark_clean()
        return True
