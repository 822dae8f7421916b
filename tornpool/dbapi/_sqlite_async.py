"""The awaitable face of the SQLite proxy: :class:`AsyncSQLiteProxy`.

Same workers, same routing, same FIFO queue as the blocking face; a call
never blocks the event loop while a worker runs it.  For a worker process
the request is written to the worker's socket (a short write into a socket
buffer) and the loop watches the socket with ``loop.add_reader``; the reply
is read when it arrives.  The in-process writer runs the request on a
thread of its own and resolves the loop's future from there (see
:meth:`~tornpool.dbapi._sqlite_handles.Handle.roundtrip`).  Measured
against running the blocking call in a thread
(``run_in_executor``): about two thirds of the CPU per call when calls come
one at a time, about the same when they overlap, and no threads
(``bench/sqlite_bench.py`` prints both).  It needs a loop with
``add_reader`` (every selector loop, uvloop, Tornado's; not Windows'
proactor loop).

A cancelled call stops waiting at once; its worker finishes the statement
and is handed to the next caller only after its reply was read, so no
caller ever gets another caller's reply.  A cancelled transaction block
waits for its statement's reply, then rolls back.

Every method is a coroutine (or, for ``transaction()``, an object with
``__aenter__``/``__aexit__``), so it also works with ``yield`` inside
``@tornado.gen.coroutine``.
"""

from __future__ import annotations

import asyncio
import os
from types import TracebackType
from typing import (
    TYPE_CHECKING, Any, Awaitable, Iterable, List, Optional, Sequence, Type, TypeVar, Union,
    overload,
)

from ._sqlite_batch import WriteBatcher
from ._sqlite_core import (
    Plan, ProxyCore, Target, Statement, WorkerInfo, check_mode, execute_plan, lost_transaction, make_core,
    split_statement, writer_plan,
)
from ._sqlite_errors import ProxyClosed, ProxyTimeout, TransactionClosed, WorkerCrashed
from ._sqlite_handles import Handle
from ._sqlite_protocol import OP_BEGIN, OP_COMMIT, OP_EXEC, OP_MANY, OP_ROLLBACK, OP_SCRIPT, AnyReply, Request
from ._sqlite_result import Result, result_from_reply
from ._sqlite_slots import WorkerSlots

if TYPE_CHECKING:  # pragma: no cover
    from .sqlite_proxy import SQLiteProxy

__all__ = ["AsyncSQLiteProxy", "AsyncTransaction"]

A = TypeVar("A", bound="AsyncSQLiteProxy")


def _expire(fut: "asyncio.Future[Handle]", role: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(ProxyTimeout("no SQLite %s was free within %.3g s" % (role, timeout)))


async def acquire(slots: WorkerSlots, timeout: Optional[float]) -> Handle:
    """Take a worker of ``slots`` without blocking the loop.

    :raises ProxyTimeout: none was free within ``timeout``.
    :raises ProxyClosed: the proxy closed.
    """
    got = slots.try_acquire()
    if not isinstance(got, asyncio.Future):
        return got
    timer = (asyncio.get_running_loop().call_later(timeout, _expire, got, slots.role, timeout)
             if timeout is not None else None)
    try:
        return await got
    except asyncio.CancelledError:
        # cancelled just after a worker was handed to us: give it back
        if got.done() and not got.cancelled() and got.exception() is None:
            slots.release(got.result())
        raise
    finally:
        if timer is not None:
            timer.cancel()


async def call(core: ProxyCore, target: Target, request: Request) -> AnyReply:
    """One awaiting round trip on a worker of ``target`` (or through the batcher)."""
    if isinstance(target, WriteBatcher):
        if core.closed:
            raise ProxyClosed("the SQLite proxy is closed")
        return await target.submit_async(request)
    slots = target
    data = slots.prepare(request)
    handle = await acquire(slots, core.timeout)
    try:
        fut = handle.roundtrip(data, lambda: slots.release(handle))
    except BaseException:
        if handle.awaiting_reply:  # sent, but nobody will read the reply
            handle.restart()
        slots.release(handle)
        raise
    return await fut


async def run_plan(core: ProxyCore, plan: Plan) -> Result:
    """Drive ``plan`` with awaiting round trips."""
    try:
        step = next(plan)
        while True:
            step = plan.send(await call(core, *step))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


class AsyncSQLiteProxy:
    """The awaitable face of the SQLite proxy.  Parameters as for
    :class:`~tornpool.dbapi.sqlite_proxy.SQLiteProxy`.

    Constructing it starts nothing and touches no event loop; the workers
    start on :meth:`connect` (or ``async with``, or the first call).  It is
    bound to no loop: several loops (threads) may share one proxy.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], readers: int = 2,
                 **options: Any) -> None:
        self.core = make_core(path, readers, **options)

    @classmethod
    def over(cls: Type[A], core: ProxyCore) -> A:
        """An awaitable face over the workers of ``core`` (another face's core)."""
        self = cls.__new__(cls)
        self.core = core
        return self

    async def connect(self: A) -> A:
        """Start the workers (in a thread: starting blocks) unless started.

        :returns: the proxy.
        :raises DatabaseNotFound, SQLiteError: as the blocking constructor.
        """
        if not self.core.started:
            await asyncio.get_running_loop().run_in_executor(None, self.core.start)
        return self

    async def _run(self, plan: Plan) -> Result:
        if not self.core.started:
            await self.connect()
        return await run_plan(self.core, plan)

    async def execute(self, sql: str, params: Any = ()) -> Result:
        """Run one statement (a read on a reader, anything else on the writer).

        :returns: resolves to the whole :class:`Result`.
        :raises: as :meth:`SQLiteProxy.execute`.
        """
        return await self._run(execute_plan(self.core, sql, params))

    async def executemany(self, sql: str, seq_of_params: Iterable[Any]) -> Result:
        """Run a DML statement per parameter set, as one transaction.

        :returns: resolves to a :class:`Result` without rows.
        :raises: as :meth:`SQLiteProxy.execute`.
        """
        request = (OP_MANY, sql, list(seq_of_params), False)
        return await self._run(writer_plan(self.core, request, batch=True))

    async def executescript(self, script: str) -> Result:
        """Run a ``;``-separated script on the writer.

        :returns: resolves to an empty :class:`Result`.
        :raises: as :meth:`SQLiteProxy.executescript`.
        """
        return await self._run(writer_plan(self.core, (OP_SCRIPT, script), batch=False))

    @overload
    def transaction(self, statements: None = None, *,
                    mode: str = "IMMEDIATE") -> "AsyncTransaction": ...

    @overload
    def transaction(self, statements: Sequence[Statement], *,
                    mode: str = "IMMEDIATE") -> Awaitable[List[Result]]: ...

    def transaction(self, statements: Optional[Sequence[Statement]] = None, *,
                    mode: str = "IMMEDIATE") -> Union["AsyncTransaction", Awaitable[List[Result]]]:
        """``async with proxy.transaction() as tx:`` -- BEGIN on the pinned
        writer, COMMIT when the block ends, ROLLBACK when it raises.  With a
        list of statements (SQL or ``(SQL, params)``): a coroutine that runs
        them in one transaction and resolves to their results (usable with
        ``yield`` under ``@gen.coroutine``).

        :raises WouldDeadlock: already inside a transaction of this proxy.
        """
        tx = AsyncTransaction(self, mode)
        if statements is None:
            return tx
        stmts = [split_statement(s) for s in statements]

        async def run() -> List[Result]:
            async with tx:
                return [await tx.execute(sql, params) for sql, params in stmts]

        return run()

    async def close(self, timeout: float = 10.0) -> None:
        """Stop the workers (in a thread: stopping blocks); calls running
        get ``timeout`` seconds to finish.  Resolves to None; idempotent."""
        await asyncio.get_running_loop().run_in_executor(None, self.core.close, timeout)

    @property
    def closed(self) -> bool:
        return self.core.closed

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

    def sync(self) -> "SQLiteProxy":
        """The blocking face over the same workers, for threads (starts the
        workers if needed, blocking)."""
        from .sqlite_proxy import SQLiteProxy

        self.core.start()
        return SQLiteProxy.over(self.core)

    async def __aenter__(self: A) -> A:
        return await self.connect()

    async def __aexit__(self, et: Optional[Type[BaseException]], e: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        await self.close()

    def __repr__(self) -> str:
        return "<AsyncSQLiteProxy %s writer=%s%s>" % (self.core.path, self.core.writer_mode,
                                                      " closed" if self.closed else "")


class AsyncTransaction:
    """``async with proxy.transaction() as tx``: a transaction on the pinned
    writer.  Use it from one task; its statements run one after another."""

    def __init__(self, proxy: AsyncSQLiteProxy, mode: str) -> None:
        self.proxy = proxy
        self.core = proxy.core
        self.mode = check_mode(mode)
        self._handle: Optional[Handle] = None
        self._generation = 0
        self._token: Optional[Any] = None
        #: resolves when the last statement's reply has been read
        self._idle: Optional[asyncio.Future[None]] = None

    @property
    def active(self) -> bool:
        """True inside the block."""
        return self._handle is not None

    async def _wait_idle(self) -> None:
        idle = self._idle
        while idle is not None and not idle.done():
            await asyncio.shield(idle)
            idle = self._idle

    async def _roundtrip(self, handle: Handle, request: Request, in_tx: bool = True) -> Result:
        await self._wait_idle()
        idle = self._idle = asyncio.get_running_loop().create_future()

        def drained() -> None:
            if not idle.done():
                idle.set_result(None)

        try:
            try:
                fut = handle.roundtrip(handle.prepare(request), drained, fresh_ok=not in_tx)
            except BaseException:
                drained()  # nothing was sent, or nobody will answer
                raise
            reply = await fut  # (cancelled: the reply is drained later)
        except WorkerCrashed as exc:
            if in_tx:
                raise lost_transaction() from exc
            raise
        return result_from_reply(reply)

    async def __aenter__(self) -> "AsyncTransaction":
        core = self.core
        if not core.started:
            await self.proxy.connect()
        core.check_no_tx()
        handle = await acquire(core.writer, core.timeout)
        self._generation = handle.generation
        try:
            await self._roundtrip(handle, (OP_BEGIN, self.mode), in_tx=False)
        except BaseException:
            await self._release(handle, rollback=True)
            raise
        self._handle = handle
        self._token = core.tx_owner.set(self)
        return self

    async def execute(self, sql: str, params: Any = ()) -> Result:
        """Run one statement in the transaction (SAVEPOINT / RELEASE /
        ROLLBACK TO allowed).

        :returns: resolves to the whole :class:`Result`.
        :raises TransactionClosed: the block has ended.
        :raises WorkerCrashed: the writer died; the transaction is lost.
        :raises: as :meth:`SQLiteProxy.execute`.
        """
        self.core.routes.route(sql, True)
        return await self._roundtrip(self._live(), (OP_EXEC, sql, params, True))

    async def executemany(self, sql: str, seq_of_params: Iterable[Any]) -> Result:
        """Run a DML statement per parameter set, in the transaction.

        :returns: resolves to a :class:`Result` without rows.
        """
        return await self._roundtrip(self._live(), (OP_MANY, sql, list(seq_of_params), True))

    def _live(self) -> Handle:
        handle = self._handle
        if handle is None:
            raise TransactionClosed("this transaction's block has ended")
        if handle.generation != self._generation:
            raise lost_transaction()
        return handle

    async def _release(self, handle: Handle, rollback: bool) -> None:
        """Roll back if asked (after the last reply), then give the writer back
        -- only once no reply is outstanding."""
        try:
            await self._wait_idle()
            if rollback and handle.generation == self._generation:
                try:
                    await self._roundtrip(handle, (OP_ROLLBACK,))
                except Exception:
                    pass  # the block's own error is the one to see
        finally:
            idle = self._idle
            if idle is None or idle.done():
                self.core.writer.release(handle)
            else:  # cancelled while waiting: release once the reply is in
                idle.add_done_callback(lambda _: self.core.writer.release(handle))

    async def __aexit__(self, et: Optional[Type[BaseException]], e: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        handle = self._handle
        assert handle is not None and self._token is not None
        self._handle = None
        self.core.tx_owner.reset(self._token)
        if et is None:
            try:
                if handle.generation != self._generation:
                    raise lost_transaction()
                await self._roundtrip(handle, (OP_COMMIT,))
            except BaseException:
                await self._release(handle, rollback=True)
                raise
            await self._release(handle, rollback=False)
        else:
            await self._release(handle, rollback=True)
