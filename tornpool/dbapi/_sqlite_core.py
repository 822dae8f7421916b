"""What both faces of the SQLite proxy share: workers, routing, plans, closing.

:class:`ProxyCore` owns the writer's and the readers' :class:`WorkerSlots`,
the statement route cache and the "which transaction is this caller in"
context variable.  The readers are always worker processes; the writer is
one too (``writer="process"``) or a connection in this process
(``writer="thread"``, :mod:`tornpool.dbapi._sqlite_thread_writer`).  A *plan* (:func:`execute_plan`, :func:`writer_plan`) is
a generator that yields ``(slots, request tuple)`` round trips and returns the
:class:`~tornpool.dbapi._sqlite_result.Result`; the blocking face drives it
with :meth:`ProxyCore.call`, the async face with an awaiting driver, so
routing is written once.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from typing import Any, Callable, Generator, List, NamedTuple, Optional, Protocol, Sequence, Tuple, Union

from ._sqlite_errors import DatabaseNotFound, ProxyClosed, ProxyConfigError, WorkerCrashed, WouldDeadlock
from ._sqlite_handle import WorkerHandle
from ._sqlite_handles import Handle
from ._sqlite_protocol import OP_EXEC, ST_BOUNCE, AnyReply, Request, WorkerSpec
from ._sqlite_thread_writer import ThreadWriter
from ._sqlite_result import Result, result_from_reply
from ._sqlite_batch import WriteBatcher
from ._sqlite_slots import WorkerSlots
from ._sqlite_statements import DML, READ, RouteCache

__all__ = ["ProxyCore", "WorkerInfo", "Plan", "Target", "execute_plan", "writer_plan", "run_plan",
           "run_write",
           "Statement", "split_statement", "make_core", "check_mode", "lost_transaction"]

#: where a request goes: a worker of these slots, or the writer's batcher
Target = Union[WorkerSlots, WriteBatcher]
#: a round-trip generator: yields (target, request), receives the reply
Plan = Generator[Tuple[Target, Request], AnyReply, Result]
#: an entry of ``transaction([...])``: SQL, or (SQL, parameters)
Statement = Union[str, Tuple[str, Any]]

_SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")
#: where the writer runs: in a process of its own, or in this process
WRITER_MODES = ("thread", "process")
#: without group commit: how long a thread naps for the busy writer before
#: it queues (see :class:`~tornpool.dbapi._sqlite_slots.WorkerSlots`)
WRITER_PATIENCE = 0.05


class WorkerInfo(NamedTuple):
    """One worker, as :meth:`SQLiteProxy.workers` reports it."""

    role: str
    number: int
    pid: Optional[int]
    restarts: int


class _TxOwner(Protocol):
    @property
    def active(self) -> bool: ...


def split_statement(stmt: Statement) -> Tuple[str, Any]:
    """``"sql"`` -> ``("sql", ())``; ``("sql", params)`` unchanged.

    :raises ProxyConfigError: anything else.
    """
    if isinstance(stmt, str):
        return stmt, ()
    if isinstance(stmt, tuple) and len(stmt) == 2 and isinstance(stmt[0], str):
        return stmt[0], stmt[1]
    raise ProxyConfigError("a transaction statement is SQL or (SQL, parameters), not %r"
                           % (stmt,))


TX_MODES = ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")


def check_mode(mode: str) -> str:
    """:raises ProxyConfigError: ``mode`` is not a BEGIN mode."""
    upper = str(mode).upper()
    if upper not in TX_MODES:
        raise ProxyConfigError("transaction mode must be one of %s, not %r"
                               % (", ".join(TX_MODES), mode))
    return upper


def lost_transaction() -> WorkerCrashed:
    """The error for a transaction whose writer was restarted under it."""
    return WorkerCrashed("the writer was restarted during this transaction; SQLite rolled "
                         "the transaction back and nothing of it was committed")


def make_core(path: Union[str, "os.PathLike[str]"], readers: int, **options: Any) -> ProxyCore:
    """A :class:`ProxyCore` with the proxies' defaults (see :class:`SQLiteProxy`)."""
    defaults: dict[str, Any] = dict(create=True, timeout=30.0, busy_timeout=5.0,
                                    synchronous="FULL", init_sql=(), initializer=None,
                                    executable=None, cached_statements=256, writer="process",
                                    group_commit=None)
    unknown = set(options) - set(defaults)
    if unknown:
        raise ProxyConfigError("unknown SQLiteProxy option(s): %s" % ", ".join(sorted(unknown)))
    defaults.update(options)
    return ProxyCore(path, readers, **defaults)


class ProxyCore:
    """Configuration and workers of one proxy; see :class:`SQLiteProxy` for
    the parameters.  Starting (:meth:`start`) blocks; the constructor does
    not start anything."""

    def __init__(self, path: Union[str, "os.PathLike[str]"], readers: int, *, create: bool,
                 timeout: Optional[float], busy_timeout: float, synchronous: str,
                 init_sql: Sequence[str], initializer: Optional[Callable[[Any], None]],
                 executable: Optional[str], cached_statements: int, writer: str,
                 group_commit: Optional[bool]) -> None:
        raw = os.fspath(path)
        if not isinstance(raw, str) or not raw or raw == ":memory:" or raw.startswith("file:"):
            raise ProxyConfigError("the SQLite proxy needs the path of a database file (each "
                                   "worker opens it), not %r" % (raw,))
        if not isinstance(readers, int) or readers < 0:
            raise ProxyConfigError("readers must be an int >= 0, not %r" % (readers,))
        sync = str(synchronous).upper()
        if sync not in _SYNCHRONOUS:
            raise ProxyConfigError("synchronous must be one of %s, not %r"
                                   % (", ".join(_SYNCHRONOUS), synchronous))
        if timeout is not None and timeout < 0:
            raise ProxyConfigError("timeout must be >= 0 or None, not %r" % (timeout,))
        if writer not in WRITER_MODES:
            raise ProxyConfigError("writer must be one of %s, not %r"
                                   % (", ".join(WRITER_MODES), writer))
        if group_commit not in (None, True, False):
            raise ProxyConfigError("group_commit must be True, False or None (automatic), not %r"
                                   % (group_commit,))
        self.path = os.path.abspath(raw)
        self.create = create
        #: seconds a call waits for a free worker (None: forever)
        self.timeout = timeout
        spec = WorkerSpec(self.path, "writer", create, float(busy_timeout), sync,
                          tuple(init_sql), initializer, int(cached_statements))
        #: "thread" (the writer's connection in this process) or "process"
        self.writer_mode = writer
        handle: Handle = (ThreadWriter(spec) if writer == "thread"
                          else WorkerHandle(spec, 0, executable))
        #: DML through the batcher (one COMMIT for the writes that queued
        #: together), or each write alone on the writer
        self.group_commit = ((writer == "process" or sync != "NORMAL") if group_commit is None
                             else group_commit)
        self.writer = WorkerSlots([handle], "writer",
                                  patience=0.0 if self.group_commit else WRITER_PATIENCE)
        rspec = spec._replace(role="reader", create=False)
        self.readers: Optional[WorkerSlots] = (
            WorkerSlots([WorkerHandle(rspec, i, executable) for i in range(readers)], "reader")
            if readers else None)
        self.batcher = WriteBatcher(self.writer, lambda: self.timeout)
        self.routes = RouteCache()
        #: the transaction the current thread / task is inside, if any
        self.tx_owner: contextvars.ContextVar[Optional[_TxOwner]] = contextvars.ContextVar(
            "tornpool_sqlite_tx", default=None)
        self._lock = threading.Lock()
        self.started = False
        self.closed = False

    def _handles(self) -> List[Handle]:
        readers = list(self.readers.handles) if self.readers is not None else []
        return readers + list(self.writer.handles)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start every worker and wait until each has opened the database
        (all at once; the writer first if it has to create the file).
        Idempotent and thread-safe.

        :raises DatabaseNotFound: no such directory, or no file and
            ``create=False``.
        :raises ProxyClosed: the proxy was closed.
        :raises SQLiteError: a worker could not open or configure the file.
        """
        with self._lock:
            if self.closed:
                raise ProxyClosed("the SQLite proxy is closed")
            if self.started:
                return
            directory = os.path.dirname(self.path)
            if not os.path.isdir(directory):
                raise DatabaseNotFound("no such directory: %s" % directory)
            if not self.create and not os.path.exists(self.path):
                raise DatabaseNotFound("no such database file: %s (create=False)" % self.path)
            writer = self.writer.handles[0]
            readers = self.readers.handles if self.readers is not None else ()
            try:
                writer.start()
                if not os.path.exists(self.path):
                    writer.wait_ready()  # it creates the file the readers open
                for handle in readers:
                    handle.start()
                for handle in (writer,) + readers:
                    handle.wait_ready()
            except BaseException:
                for handle in self._handles():
                    handle.discard()
                raise
            self.started = True

    def close(self, timeout: float) -> None:
        """Refuse new calls, let running ones finish for up to ``timeout``
        seconds, then stop every worker (calls still running get
        :class:`ProxyClosed`).  Idempotent; blocks."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        deadline = time.monotonic() + timeout
        groups = [s for s in (self.readers, self.writer) if s is not None]
        for slots in groups:
            slots.close()
        self.batcher.close()
        for slots in groups:  # readers first: the writer closes last and checkpoints
            idle, busy = slots.drain(deadline)
            for handle in busy:
                handle.closing = True
                handle.kill()
            for handle in idle:
                handle.closing = True
                handle.stop(max(deadline - time.monotonic(), 1.0))

    # -- calls -------------------------------------------------------------------------

    def check_no_tx(self) -> None:
        """:raises WouldDeadlock: the caller is inside its own transaction,
        which holds the writer it would wait for."""
        owner = self.tx_owner.get()
        if owner is not None and owner.active:
            raise WouldDeadlock("this caller is inside a transaction() of this proxy, which "
                                "holds the writer: use the transaction handle (tx.execute) "
                                "instead of the proxy")

    def write_target(self, batch: bool) -> Target:
        """Where a request for the writer goes: the batcher (``batch``: a
        DML statement, and group commit is on) or the writer itself.

        :raises WouldDeadlock: see :meth:`check_no_tx`.
        """
        self.check_no_tx()
        return self.batcher if batch and self.group_commit else self.writer

    def call(self, target: Target, request: Request) -> AnyReply:
        """One blocking round trip on a worker of ``target`` (or through the
        batcher).  The reply's body is unpickled by the caller, after the
        worker went to the next one.

        :raises UnpicklableParameters: a worker process cannot be sent it.
        :raises ProxyTimeout: no worker became free within :attr:`timeout`.
        :raises WorkerCrashed: the worker died during the call.
        :raises ProxyClosed: the proxy is (or got) closed.
        """
        if isinstance(target, WriteBatcher):
            if self.closed:
                raise ProxyClosed("the SQLite proxy is closed")
            return target.submit(request)
        slots = target
        data = slots.prepare(request)
        handle = slots.acquire(self.timeout)
        try:
            return handle.call(data)
        except BaseException:
            if handle.awaiting_reply:
                # interrupted (KeyboardInterrupt) with the reply still to
                # come: a fresh worker is the only one we can vouch for
                handle.restart()
            raise
        finally:
            slots.release(handle)

    def workers(self) -> List[WorkerInfo]:
        """The workers: role, index, current pid (None for the in-process
        writer), restarts so far."""
        return [WorkerInfo(h.spec.role, h.index, h.pid, h.restarts) for h in self._handles()]


def execute_plan(core: ProxyCore, sql: str, params: Any) -> Plan:
    """``execute`` outside a transaction: a read candidate goes to a reader;
    if the reader bounces it (not a pure read), to the writer; DML through
    the batcher."""
    route = core.routes.route(sql, False)
    request = (OP_EXEC, sql, params, False)
    if route == READ and core.readers is not None:
        reply = yield core.readers, request
        if reply[0] != ST_BOUNCE:
            return result_from_reply(reply)
        route = core.routes.learned_write(sql)
    return (yield from writer_plan(core, request, batch=route == DML))


def writer_plan(core: ProxyCore, request: Request, batch: bool) -> Plan:
    """One request on the writer: through the batcher (DML, with group
    commit), or alone."""
    return result_from_reply((yield core.write_target(batch), request))


def run_write(core: ProxyCore, request: Request, batch: bool) -> Result:
    """:func:`writer_plan`, blocking: the same round trip without a
    generator to drive (the cheapest path for a write)."""
    return result_from_reply(core.call(core.write_target(batch), request))


def run_plan(core: ProxyCore, plan: Plan) -> Result:
    """Drive ``plan`` with blocking round trips."""
    try:
        step = next(plan)
        while True:
            step = plan.send(core.call(*step))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
