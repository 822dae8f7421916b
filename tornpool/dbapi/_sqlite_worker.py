"""The worker process of the SQLite proxy: one sqlite3 connection, one loop.

:func:`main` is what the worker's interpreter runs (see
:mod:`tornpool.dbapi._sqlite_handle`).  It reads its
:class:`~tornpool.dbapi._sqlite_protocol.WorkerSpec` from the channel,
opens the connection, sends ``ST_READY`` (or ``ST_BOOT_ERR``), then answers
one request at a time until it reads ``OP_CLOSE`` or the channel closes
(the proxy went away).

The connection runs in autocommit mode (``isolation_level=None``): a
statement outside ``transaction()`` commits when it returns, which is what
makes a write visible to the readers as soon as its reply is sent.

A **reader** refuses anything that is not a pure read, while the statement
is being prepared -- so before anything ran -- with an authorizer, and as a
second line with ``PRAGMA query_only``; the proxy then sends the statement
to the writer.  The **writer** switches the file to WAL mode.

Results are fully materialised here (``fetchall``) and pickled back: the
statement is reset before the reply is sent, so a reader never keeps a read
snapshot open between two requests.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import urllib.parse
from typing import Any, Callable, List, Optional

from ._sqlite_channel import Channel
from ._sqlite_errors import ErrorPayload
from ._sqlite_protocol import (
    OP_BATCH,
    OP_BEGIN,
    OP_CLOSE,
    OP_COMMIT,
    OP_EXEC,
    OP_MANY,
    OP_ROLLBACK,
    OP_SCRIPT,
    ST_BOOT_ERR,
    ST_BOUNCE,
    ST_ERR,
    ST_OK,
    ST_READY,
    Reply,
    WorkerSpec,
    decode,
    encode_reply,
)

__all__ = ["main", "serve"]

#: authorizer actions a pure read needs
_READ_ACTIONS = frozenset((sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                           sqlite3.SQLITE_RECURSIVE))
#: PRAGMAs a reader may run without an argument (they only report)
_READ_PRAGMAS = frozenset((
    "application_id", "auto_vacuum", "cache_size", "collation_list", "compile_options",
    "data_version", "database_list", "encoding", "freelist_count", "function_list",
    "journal_mode", "module_list", "page_count", "page_size", "pragma_list",
    "schema_version", "user_version", "foreign_key_check", "foreign_key_list",
    "index_info", "index_list", "index_xinfo", "integrity_check", "quick_check",
    "table_info", "table_list", "table_xinfo",
))
#: ...and those of them whose argument names what to report on
_ARG_PRAGMAS = frozenset((
    "foreign_key_check", "foreign_key_list", "index_info", "index_list", "index_xinfo",
    "integrity_check", "quick_check", "table_info", "table_list", "table_xinfo",
))


#: the reply of a request without a result of its own
_DONE: Reply = (ST_OK, ([], None, -1, None))


def error_payload(exc: BaseException) -> ErrorPayload:
    """Describe ``exc`` for :func:`tornpool.dbapi._sqlite_errors.error_from_payload`."""
    if isinstance(exc, sqlite3.Error):
        # the sqlite3 class itself, never a subclass a user function raised
        kind = next(c.__name__ for c in type(exc).__mro__ if c.__module__ == "sqlite3")
    else:
        kind = type(exc).__name__
    return (kind, str(exc), getattr(exc, "sqlite_errorcode", None),
            getattr(exc, "sqlite_errorname", None))


class _ReadGuard:
    """A reader's authorizer: allows pure reads, denies (and remembers) anything else."""

    __slots__ = ("denied",)

    def __init__(self) -> None:
        self.denied = False

    def __call__(self, action: int, arg1: Optional[str], arg2: Optional[str],
                 dbname: Optional[str], source: Optional[str]) -> int:
        if action in _READ_ACTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and arg1 is not None:
            name = arg1.lower()
            if name in _READ_PRAGMAS and (arg2 is None or name in _ARG_PRAGMAS):
                return sqlite3.SQLITE_OK
        self.denied = True
        return sqlite3.SQLITE_DENY


def open_connection(spec: WorkerSpec) -> tuple[sqlite3.Connection, Optional[_ReadGuard]]:
    """Open and configure the worker's connection.

    :raises sqlite3.Error: the file cannot be opened or configured.
    """
    writer = spec.role == "writer"
    # only the writer may create the file; readers open what the writer made
    mode = "rwc" if writer and spec.create else "rw"
    uri = "file:%s?mode=%s" % (urllib.parse.quote(spec.path), mode)
    db = sqlite3.connect(uri, uri=True, timeout=spec.busy_timeout, isolation_level=None,
                         check_same_thread=False, cached_statements=spec.cached_statements)
    try:
        if writer:
            mode_now = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode_now).lower() != "wal":
                raise sqlite3.OperationalError(
                    "cannot switch %s to WAL mode (journal_mode is %s)" % (spec.path, mode_now))
            db.execute("PRAGMA synchronous=%s" % spec.synchronous)
        for sql in spec.init_sql:
            db.execute(sql).fetchall()
        if spec.initializer is not None:
            spec.initializer(db)
        guard = None
        if not writer:
            db.execute("PRAGMA query_only=ON")
            guard = _ReadGuard()
            db.set_authorizer(guard)
        return db, guard
    except BaseException:
        db.close()
        raise


class _Session:
    """Runs requests on one connection."""

    def __init__(self, db: sqlite3.Connection, guard: Optional[_ReadGuard]) -> None:
        self.db = db
        self.guard = guard
        self.handlers: dict[int, Callable[..., Reply]] = {
            OP_EXEC: self.execute, OP_MANY: self.executemany, OP_SCRIPT: self.executescript,
            OP_BEGIN: self.begin, OP_COMMIT: self.commit, OP_ROLLBACK: self.rollback,
            OP_BATCH: self.batch,
        }

    def handle(self, request: tuple[Any, ...]) -> Reply:
        try:
            return self.handlers[request[0]](*request[1:])
        except Exception as exc:
            return (ST_ERR, error_payload(exc))

    def _left_open(self, in_tx: bool) -> Optional[Reply]:
        """Outside transaction(): a statement must not leave one open."""
        if not in_tx and self.db.in_transaction:
            self.db.execute("ROLLBACK")
            return (ST_ERR, ("TransactionControl", "the statement left a transaction open "
                             "(rolled back); use proxy.transaction()", None, None))
        return None

    def _lost(self, in_tx: bool) -> Optional[Reply]:
        """Inside transaction(): SQLite may have rolled it back after an error."""
        if in_tx and not self.db.in_transaction:
            return (ST_ERR, ("TransactionLost", "the transaction is no longer active (SQLite "
                             "rolled it back after an error); nothing of it was committed",
                             None, None))
        return None

    def execute(self, sql: str, params: Any, in_tx: bool) -> Reply:
        lost = self._lost(in_tx)
        if lost is not None:
            return lost
        guard = self.guard
        if guard is not None:
            guard.denied = False
        try:
            cur = self.db.execute(sql, params)
            try:
                rows: List[Any] = cur.fetchall()
                desc = cur.description
                count = len(rows) if desc is not None else cur.rowcount
                reply: Reply = (ST_OK, (rows, desc, count, cur.lastrowid))
            finally:
                cur.close()
        except Exception as exc:
            if guard is not None and guard.denied:
                return (ST_BOUNCE, None)
            return self._left_open(in_tx) or (ST_ERR, error_payload(exc))
        return self._left_open(in_tx) or reply

    def executemany(self, sql: str, seq: List[Any], in_tx: bool) -> Reply:
        lost = self._lost(in_tx)
        if lost is not None:
            return lost
        db = self.db
        own = not in_tx  # atomic on its own: all parameter sets or none
        if own:
            db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.executemany(sql, seq)
            count, last = cur.rowcount, cur.lastrowid
            cur.close()
            if own:
                db.execute("COMMIT")
        except Exception as exc:
            if own and db.in_transaction:
                db.execute("ROLLBACK")
            return (ST_ERR, error_payload(exc))
        return (ST_OK, ([], None, count, last))

    def _one(self, data: bytes, in_tx: bool) -> bytes:
        """Run one request of a batch; its framed reply."""
        try:
            request = decode(data)
            if in_tx:  # inside the batch's transaction: no BEGIN of its own
                request = request[:3] + (True,)
            reply = self.handle(request)
        except Exception as exc:
            reply = (ST_ERR, ("Unpicklable", "the parameters cannot be unpickled in the "
                              "worker: %s" % (exc,), None, None))
        return encode_reply(*reply)

    def batch(self, requests: List[bytes]) -> Reply:
        """Independent DML requests (OP_EXEC / OP_MANY) from different callers,
        group-committed: one transaction, one savepoint per request, so a
        failing request undoes only itself and one COMMIT (one fsync) covers
        them all.  If an error makes SQLite roll the whole transaction back
        (``INSERT OR ROLLBACK``, ``RAISE(ROLLBACK)``, a full disk), the
        other requests run again in a new one.

        :returns: ``(ST_OK, [framed reply of each request])``.
        """
        if len(requests) == 1:
            return (ST_OK, [self._one(requests[0], False)])
        db = self.db
        replies: List[bytes] = [b""] * len(requests)
        todo = list(range(len(requests)))
        while todo:
            db.execute("BEGIN IMMEDIATE")
            ran: List[int] = []
            rerun: Optional[List[int]] = None
            for k, i in enumerate(todo):
                db.execute("SAVEPOINT tornpool_batch")
                replies[i] = self._one(requests[i], True)
                if not db.in_transaction:  # SQLite rolled everything back
                    rerun = ran + todo[k + 1:]
                    break
                if replies[i][0] != ST_OK:
                    db.execute("ROLLBACK TO tornpool_batch")
                db.execute("RELEASE tornpool_batch")
                ran.append(i)
            if rerun is not None:
                todo = rerun
                continue
            try:
                db.execute("COMMIT")
            except Exception as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                failed = encode_reply(ST_ERR, error_payload(exc))
                for i in ran:
                    if replies[i][0] == ST_OK:
                        replies[i] = failed
            todo = []
        return (ST_OK, replies)

    def executescript(self, script: str) -> Reply:
        self.db.executescript(script)
        return self._left_open(False) or _DONE

    def begin(self, mode: str) -> Reply:
        self.db.execute("BEGIN %s" % mode)
        return _DONE

    def commit(self) -> Reply:
        lost = self._lost(True)
        if lost is not None:
            return lost
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error:
            # e.g. a deferred foreign key: the transaction stays open; end it
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return _DONE

    def rollback(self) -> Reply:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        return _DONE


def main(fd: int) -> None:
    """Entry point of a worker process: ``fd`` is its end of the socket pair."""
    # Ctrl-C reaches the whole process group; the proxy decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = Channel(socket.socket(fileno=fd))
    try:
        try:
            spec = decode(channel.recv())
        except EOFError:
            return
        except Exception as exc:  # e.g. an initializer this process cannot import
            channel.send(encode_reply(ST_BOOT_ERR, error_payload(exc)))
            return
        serve(channel, spec)
    finally:
        channel.close()


def serve(channel: Channel, spec: WorkerSpec) -> None:
    """Open the connection ``spec`` describes and answer requests on
    ``channel`` until ``OP_CLOSE`` or end of file."""
    try:
        db, guard = open_connection(spec)
    except Exception as exc:
        channel.send(encode_reply(ST_BOOT_ERR, error_payload(exc)))
        return
    channel.send(encode_reply(ST_READY, os.getpid()))
    session = _Session(db, guard)
    try:
        while True:
            try:
                data = channel.recv()
            except (EOFError, OSError):
                break
            try:
                request = decode(data)
            except Exception as exc:
                reply: Reply = (ST_ERR, ("Unpicklable", "the parameters cannot be unpickled "
                                         "in the worker: %s" % (exc,), None, None))
            else:
                if request[0] == OP_CLOSE:
                    break
                reply = session.handle(request)
            try:
                out = encode_reply(*reply)
            except Exception as exc:
                out = encode_reply(ST_ERR, ("InternalError", "the result cannot be pickled: %s"
                                            % (exc,), None, None))
            channel.send(out)
    finally:
        db.close()
