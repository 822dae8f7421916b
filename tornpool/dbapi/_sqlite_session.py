"""Running the proxy's requests on one sqlite3 connection: :class:`Session`.

A session answers one request at a time (a tuple whose first item is an
``OP_*`` code, see :mod:`tornpool.dbapi._sqlite_protocol`) with a reply
``(ST_*, body)``.  It is the same code wherever the connection lives: in a
worker process (:mod:`tornpool.dbapi._sqlite_worker`, which pickles the
replies back over its channel) or in the calling process
(:mod:`tornpool.dbapi._sqlite_thread_writer`, which hands them over as they
are).

The connection runs in autocommit mode (``isolation_level=None``): a
statement outside ``transaction()`` commits when it returns, which is what
makes a write visible to the readers as soon as its reply is sent.

A **reader** refuses anything that is not a pure read, while the statement
is being prepared -- so before anything ran -- with an authorizer
(:class:`ReadGuard`), and as a second line with ``PRAGMA query_only``; the
proxy then sends the statement to the writer.  The **writer** switches the
file to WAL mode.

Results are fully materialised (``fetchall``): the statement is reset
before the reply goes out, so a reader never keeps a read snapshot open
between two requests.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from typing import Any, Callable, List, Optional

from ._sqlite_errors import ErrorPayload
from ._sqlite_protocol import (
    OP_BATCH,
    OP_BEGIN,
    OP_COMMIT,
    OP_EXEC,
    OP_MANY,
    OP_ROLLBACK,
    OP_SCRIPT,
    ST_BOUNCE,
    ST_ERR,
    ST_OK,
    Reply,
    Request,
    WorkerSpec,
)

__all__ = ["Session", "ReadGuard", "open_connection", "error_payload"]

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


def _done() -> Reply:
    """The reply of a request without a result of its own (a fresh row
    list each time: in-process replies are not copied by pickling)."""
    return (ST_OK, ([], None, -1, None))


def error_payload(exc: BaseException) -> ErrorPayload:
    """Describe ``exc`` for :func:`tornpool.dbapi._sqlite_errors.error_from_payload`."""
    if isinstance(exc, sqlite3.Error):
        # the sqlite3 class itself, never a subclass a user function raised
        kind = next(c.__name__ for c in type(exc).__mro__ if c.__module__ == "sqlite3")
    else:
        kind = type(exc).__name__
    return (kind, str(exc), getattr(exc, "sqlite_errorcode", None),
            getattr(exc, "sqlite_errorname", None))


class ReadGuard:
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


def open_connection(spec: WorkerSpec) -> tuple[sqlite3.Connection, Optional[ReadGuard]]:
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
            guard = ReadGuard()
            db.set_authorizer(guard)
        return db, guard
    except BaseException:
        db.close()
        raise


def _same(item: Any) -> Any:
    return item


class Session:
    """Runs requests on one connection, one at a time.

    The members of an ``OP_BATCH`` request arrive as each caller prepared
    them; ``open_member`` turns one into its request tuple (a worker process
    unpickles it; it may raise, which fails that member alone), and
    ``close_member`` turns a member's reply into what goes back (a worker
    frames it with :func:`~tornpool.dbapi._sqlite_protocol.encode_reply`).
    Both default to handing the object over as it is (the in-process writer).

    :param db: the connection (autocommit: ``isolation_level=None``).
    :param guard: the reader's authorizer, installed on ``db``; None for the writer.
    """

    def __init__(self, db: sqlite3.Connection, guard: Optional[ReadGuard],
                 open_member: Callable[[Any], Request] = _same,
                 close_member: Callable[[Reply], Any] = _same) -> None:
        self.db = db
        self.guard = guard
        self.open_member = open_member
        self.close_member = close_member
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

    def _one(self, member: Any, in_tx: bool) -> Any:
        """Run one member of a batch; its reply, as ``close_member`` makes it."""
        try:
            request = self.open_member(member)
            if in_tx:  # inside the batch's transaction: no BEGIN of its own
                request = request[:3] + (True,)
            reply = self.handle(request)
        except Exception as exc:
            reply = (ST_ERR, ("Unpicklable", "the parameters cannot be unpickled in the "
                              "worker: %s" % (exc,), None, None))
        return self.close_member(reply)

    def batch(self, requests: List[Any]) -> Reply:
        """Independent DML requests (OP_EXEC / OP_MANY) from different callers,
        group-committed: one transaction, one savepoint per request, so a
        failing request undoes only itself and one COMMIT (one fsync) covers
        them all.  If an error makes SQLite roll the whole transaction back
        (``INSERT OR ROLLBACK``, ``RAISE(ROLLBACK)``, a full disk), the
        other requests run again in a new one.

        :returns: ``(ST_OK, [reply of each request])``, each as
            ``close_member`` made it (its first item is its status).
        """
        if len(requests) == 1:
            return (ST_OK, [self._one(requests[0], False)])
        db = self.db
        replies: List[Any] = [None] * len(requests)
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
                failed = self.close_member((ST_ERR, error_payload(exc)))
                for i in ran:
                    if replies[i][0] == ST_OK:
                        replies[i] = failed
            todo = []
        return (ST_OK, replies)

    def executescript(self, script: str) -> Reply:
        self.db.executescript(script)
        return self._left_open(False) or _done()

    def begin(self, mode: str) -> Reply:
        self.db.execute("BEGIN %s" % mode)
        return _done()

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
        return _done()

    def rollback(self) -> Reply:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        return _done()


