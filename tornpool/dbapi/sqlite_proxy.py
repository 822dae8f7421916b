"""A multi-process SQLite proxy: :class:`SQLiteProxy` (blocking, thread-safe)
and :class:`AsyncSQLiteProxy` (awaitables, for Tornado and asyncio).

N reader processes and one writer each hold their own sqlite3 connection
to one database file in WAL mode.  Reads spread over the readers, so a
multithreaded server gets more than one core out of SQLite; writes and
transactions go to the writer (SQLite has one writer at a time), which is a
process of its own (``writer="process"``) or a connection in the calling
process (``writer="thread"``).

    proxy = SQLiteProxy("/srv/app.db", readers=2)
    proxy.executescript("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")
    proxy.execute("INSERT INTO kv VALUES (?, ?)", ("a", "1"))
    row = proxy.execute("SELECT v FROM kv WHERE k = ?", ("a",)).fetchone()
    with proxy.transaction() as tx:
        tx.execute("UPDATE kv SET v = v || '!' WHERE k = ?", ("a",))
    proxy.close()

See ``docs/dbapi.md`` ("SQLite process proxy") for the guarantees:
read-your-writes, crash recovery, durability, errors, costs.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType
from typing import (
    TYPE_CHECKING, Any, Callable, Iterable, List, Optional, Sequence, Type, TypeVar, Union, overload,
)

from ._sqlite_async import AsyncSQLiteProxy
from ._sqlite_core import (
    ProxyCore, Statement, WorkerInfo, check_mode, execute_plan, lost_transaction, make_core,
    run_plan, run_write, split_statement,
)
from ._sqlite_errors import (
    DatabaseNotFound, ProxyClosed, ProxyConfigError, ProxyTimeout, SQLiteDatabaseError,
    SQLiteDataError, SQLiteError, SQLiteIntegrityError, SQLiteInterfaceError, SQLiteInternalError,
    SQLiteNotSupportedError, SQLiteOperationalError, SQLiteProgrammingError, TransactionClosed,
    TransactionControlError, UnpicklableParameters, WorkerCrashed, WouldDeadlock,
)
from ._sqlite_protocol import OP_BEGIN, OP_COMMIT, OP_EXEC, OP_MANY, OP_ROLLBACK, OP_SCRIPT, Request
from ._sqlite_result import Result, result_from_reply
from ._sqlite_statements import RouteCache

if TYPE_CHECKING:  # pragma: no cover
    from ._sqlite_handles import Handle

__all__ = [
    "SQLiteProxy", "AsyncSQLiteProxy", "Transaction", "Result", "WorkerInfo",
    "SQLiteError", "SQLiteInterfaceError", "SQLiteDatabaseError", "SQLiteDataError",
    "SQLiteOperationalError", "SQLiteIntegrityError", "SQLiteInternalError",
    "SQLiteProgrammingError", "SQLiteNotSupportedError", "ProxyClosed", "TransactionClosed",
    "TransactionControlError", "WouldDeadlock", "UnpicklableParameters", "ProxyConfigError",
    "WorkerCrashed", "ProxyTimeout", "DatabaseNotFound",
]

P = TypeVar("P", bound="SQLiteProxy")

class SQLiteProxy:
    """SQLite in worker processes, behind a blocking, thread-safe DB-API-like API.

    The constructor starts the workers -- fresh interpreters, which import
    tornpool but not your main module -- and waits until they opened the
    database (about 0.1-0.2 s; they boot in parallel).

    :param path: the database file.  Its directory must exist.
    :param readers: reader processes (0: reads run on the writer too).
    :param create: create the file if it does not exist (sqlite3's
        behaviour); with False a missing file raises
        :class:`DatabaseNotFound`.
    :param timeout: seconds a call waits for a free worker before
        :class:`ProxyTimeout` (None: no limit).  A running statement is not
        interrupted.
    :param busy_timeout: sqlite3's ``timeout``: how long a statement waits
        for a lock held by *another process* using the same file.
    :param synchronous: the writer's ``PRAGMA synchronous``: ``"FULL"``
        (default: a commit survives power loss) or ``"NORMAL"`` (a commit
        survives any crash of a process, and is lost only with the OS or
        the power; faster).
    :param init_sql: statements run on every worker's connection when it
        opens (per-connection PRAGMAs such as ``foreign_keys=ON``).
    :param initializer: a ``callable(sqlite3.Connection)`` run on every
        worker's connection when it opens (register functions, collations,
        adapters there).  It is pickled by name, so it must be a module-level
        function of an importable module -- not of the main script.
    :param executable: the Python interpreter the workers run (default
        ``sys.executable``; set it where that is not Python, e.g. embedded).
    :param cached_statements: sqlite3's prepared-statement cache per worker.
    :param writer: where the writer runs: ``"process"`` (default: a worker
        process, like the readers -- a crash in SQLite or a CPU-heavy write
        does not touch the caller) or ``"thread"`` (its connection lives in
        this process and a write runs in the calling thread -- no IPC and
        no pickling, so cheaper per write; parameters are not pickled, so one
        sqlite3 cannot bind raises ``SQLiteProgrammingError``).
    :param group_commit: whether single writes (``execute`` of DML,
        ``executemany``) that arrive while the writer is busy wait together
        and commit as one transaction -- one fsync for all of them, each
        still failing alone.  ``None`` (default) decides from the set-up:
        on for a writer process, and for ``synchronous`` FULL or EXTRA (a
        commit is an fsync); off for the in-process writer with NORMAL,
        where a commit is cheap and a write runs on the writer by itself,
        in the caller's thread (a thread that finds the writer busy naps
        and retries for up to 50 ms before it queues, which spares a thread
        switch per write).
    :raises DatabaseNotFound: no such directory, or no file and ``create=False``.
    :raises ProxyConfigError: an invalid argument (``:memory:``, ...).
    :raises SQLiteError: a worker could not open the file (its sqlite3 error).
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], readers: int = 2,
                 **options: Any) -> None:
        self.core = make_core(path, readers, **options)
        self.core.start()

    @classmethod
    def over(cls: Type[P], core: ProxyCore) -> P:
        """A blocking face over the workers of ``core`` (another face's core)."""
        self = cls.__new__(cls)
        self.core = core
        return self

    # -- statements --------------------------------------------------------------------

    def execute(self, sql: str, params: Any = ()) -> Result:
        """Run one statement.  A read (SELECT, WITH, VALUES, EXPLAIN, a
        reporting PRAGMA) runs on a reader, anything else on the writer,
        autocommitted.

        :param params: a sequence for ``?`` placeholders or a mapping for
            ``:name`` ones.
        :returns: the whole result.
        :raises SQLiteError: SQLite refused the statement (sqlite3's class).
        :raises TransactionControlError: BEGIN / COMMIT / ROLLBACK.
        :raises UnpicklableParameters: ``params`` cannot be sent.
        :raises WorkerCrashed: the worker died during the call.
        :raises WouldDeadlock: a write inside this caller's own transaction.
        :raises ProxyTimeout, ProxyClosed: no worker in time / closed.
        """
        return run_plan(self.core, execute_plan(self.core, sql, params))

    def executemany(self, sql: str, seq_of_params: Iterable[Any]) -> Result:
        """Run a DML statement once per parameter set, on the writer, as one
        transaction: every row or none.

        :returns: a result without rows; ``rowcount`` is the total.
        :raises: as :meth:`execute`.
        """
        request = (OP_MANY, sql, list(seq_of_params), False)
        return run_write(self.core, request, batch=True)

    def executescript(self, script: str) -> Result:
        """Run several ``;``-separated statements on the writer (schema set-up,
        migrations).  A script that leaves a transaction open is rolled back
        and raises :class:`TransactionControlError`.

        :raises: as :meth:`execute`.
        """
        return run_write(self.core, (OP_SCRIPT, script), batch=False)

    @overload
    def transaction(self, statements: None = None, *, mode: str = "IMMEDIATE") -> "Transaction": ...

    @overload
    def transaction(self, statements: Sequence[Statement], *, mode: str = "IMMEDIATE") -> List[Result]: ...

    def transaction(self, statements: Optional[Sequence[Statement]] = None, *,
                    mode: str = "IMMEDIATE") -> Union["Transaction", List[Result]]:
        """``with proxy.transaction() as tx:`` -- the writer, pinned to this
        block: ``BEGIN <mode>``, ``COMMIT`` when the block ends, ``ROLLBACK``
        when it raises.  Other callers' writes wait; reads elsewhere go on
        and see the state before the commit.  With a list of statements (SQL
        or ``(SQL, params)``), runs them in one transaction and returns their
        results.

        :raises WouldDeadlock: already inside a transaction of this proxy.
        :raises: as :meth:`execute`, from any statement (after ROLLBACK).
        """
        tx = Transaction(self.core, mode)
        if statements is None:
            return tx
        with tx:
            return [tx.execute(*split_statement(s)) for s in statements]

    # -- lifecycle -------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Stop the workers.  Calls already running get ``timeout`` seconds to
        finish (then :class:`ProxyClosed`); new calls raise
        :class:`ProxyClosed` at once.  Idempotent."""
        self.core.close(timeout)

    @property
    def closed(self) -> bool:
        return self.core.closed

    @property
    def path(self) -> str:
        """Absolute path of the database file."""
        return self.core.path

    @property
    def routes(self) -> RouteCache:
        """The statement route cache (read candidate or writer, per SQL text)."""
        return self.core.routes

    @property
    def writer_mode(self) -> str:
        """``"process"`` or ``"thread"``: where the writer runs."""
        return self.core.writer_mode

    @property
    def group_commit(self) -> bool:
        """Whether writes that queue together commit together (the
        ``group_commit`` parameter, decided)."""
        return self.core.group_commit

    def workers(self) -> List[WorkerInfo]:
        """The workers (role, number, pid, restarts), readers first; the
        in-process writer's pid is None (it has no process of its own)."""
        return self.core.workers()

    def aio(self) -> AsyncSQLiteProxy:
        """The awaitable face over the same workers."""
        return AsyncSQLiteProxy.over(self.core)

    def __enter__(self: P) -> P:
        return self

    def __exit__(self, et: Optional[Type[BaseException]], e: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def __repr__(self) -> str:
        readers = self.core.readers
        return "<SQLiteProxy %s readers=%d writer=%s%s>" % (
            self.core.path, 0 if readers is None else len(readers.handles),
            self.core.writer_mode, " closed" if self.core.closed else "")


class Transaction:
    """A transaction on the pinned writer (from :meth:`SQLiteProxy.transaction`).

    Use it from the thread that opened it.  Its statements run on the
    writer, reads included, and see the transaction's own changes.
    """

    def __init__(self, core: ProxyCore, mode: str) -> None:
        self.core = core
        self.mode = check_mode(mode)
        self._handle: Optional["Handle"] = None
        self._generation = 0
        self._token: Optional[Any] = None
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """True inside the block."""
        return self._handle is not None

    def __enter__(self) -> "Transaction":
        core = self.core
        core.check_no_tx()
        handle = core.writer.acquire(core.timeout)
        try:
            result_from_reply(handle.call(handle.prepare((OP_BEGIN, self.mode))))
        except BaseException:
            core.writer.release(handle)
            raise
        self._handle, self._generation = handle, handle.generation
        self._token = core.tx_owner.set(self)
        return self

    def _call(self, request: Request) -> Result:
        with self._lock:
            handle = self._handle
            if handle is None:
                raise TransactionClosed("this transaction's block has ended")
            if handle.generation != self._generation:
                raise lost_transaction()
            try:
                return result_from_reply(handle.call(handle.prepare(request), fresh_ok=False))
            except WorkerCrashed as exc:
                raise lost_transaction() from exc

    def execute(self, sql: str, params: Any = ()) -> Result:
        """Run one statement in the transaction (SAVEPOINT / RELEASE /
        ROLLBACK TO allowed).

        :raises TransactionClosed: the block has ended.
        :raises WorkerCrashed: the writer died; the transaction is lost.
        :raises: as :meth:`SQLiteProxy.execute`.
        """
        self.core.routes.route(sql, True)
        return self._call((OP_EXEC, sql, params, True))

    def executemany(self, sql: str, seq_of_params: Iterable[Any]) -> Result:
        """Run a DML statement once per parameter set, in the transaction."""
        return self._call((OP_MANY, sql, list(seq_of_params), True))

    def __exit__(self, et: Optional[Type[BaseException]], e: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        handle = self._handle
        assert handle is not None and self._token is not None
        try:
            with self._lock:
                if handle.generation != self._generation:
                    if et is None:
                        raise lost_transaction()
                elif et is None:
                    try:
                        result_from_reply(handle.call(handle.prepare((OP_COMMIT,)),
                                                      fresh_ok=False))
                    except WorkerCrashed as exc:
                        raise lost_transaction() from exc
                else:
                    try:
                        handle.call(handle.prepare((OP_ROLLBACK,)), fresh_ok=False)
                    except Exception:
                        pass  # the block's own error is the one to see
        finally:
            self._handle = None
            self.core.tx_owner.reset(self._token)
            if handle.awaiting_reply:
                handle.restart()
            self.core.writer.release(handle)
