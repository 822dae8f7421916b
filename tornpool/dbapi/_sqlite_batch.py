"""Group commit: many callers' writes in one round trip and one COMMIT.

SQLite has one writer, so writes queue.  Sending them one round trip each
leaves the writer idle while each caller's thread wakes up, and costs one
``COMMIT`` (one fsync with ``synchronous=FULL``) per statement.  The
:class:`WriteBatcher` lets single DML statements (INSERT / UPDATE / DELETE
/ REPLACE, and ``executemany``) that arrive while the writer is busy wait
together; the next round trip carries all of them (``OP_BATCH``) and the
writer runs them in one transaction, one savepoint each
(:meth:`tornpool.dbapi._sqlite_session.Session.batch`).  Each caller still
gets its own result or its own error, and its write is committed when its
call returns.  A crash during a batch fails every call of the batch with
``WorkerCrashed``, and none of them was committed.

One caller at a time *leads*: it takes the writer from the slots, sends
what is queued, hands out the replies, and repeats until its own request
has been answered; then it passes the lead to the oldest caller still
waiting -- a thread (preferred: a thread can always run) or, if only
coroutines wait, a task on that coroutine's loop -- so no caller serves the
others for long.  A coroutine never leads in its own task (a cancelled
caller must not strand the others): its lead runs in a task of its own.

The proxy uses the batcher only with ``group_commit`` on (the default but
for the in-process writer with ``synchronous=NORMAL``, where a commit is
cheap and a write rather runs alone on the writer in its caller's thread:
see :class:`~tornpool.dbapi._sqlite_slots.WorkerSlots`' patience).

Each caller prepares its own request before it queues
(:meth:`~tornpool.dbapi._sqlite_slots.WorkerSlots.prepare`): for a writer
process it is pickled in the caller's thread, so parameters that do not
pickle fail that caller alone; the in-process writer takes it as it is.
With the in-process writer a thread leader runs the batch in its own
thread, a task leader on the writer's thread.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import deque
from typing import Any, Callable, Deque, List, Optional

from ._sqlite_errors import ProxyClosed, WorkerCrashed, WouldDeadlock, error_from_payload
from ._sqlite_protocol import (
    OP_BATCH, ST_OK, AnyReply, Request, batch_members, decode_body, settle_reply,
)
from ._sqlite_slots import WorkerSlots

__all__ = ["WriteBatcher"]


class _Ticket:
    """One queued write: its request, and where its reply goes."""

    __slots__ = ("data", "ident", "lock", "fut", "reply", "error", "lead")

    def __init__(self, data: Any, fut: Optional["asyncio.Future[AnyReply]"]) -> None:
        self.data = data
        self.ident = threading.get_ident()
        self.fut = fut
        self.lock: Optional[threading.Lock] = None
        if fut is None:
            self.lock = threading.Lock()
            self.lock.acquire()
        self.reply: Optional[AnyReply] = None
        self.error: Optional[BaseException] = None
        #: set when this (thread) ticket is handed the lead
        self.lead = False

    def gone(self) -> bool:
        """A coroutine that stopped waiting (cancelled)."""
        return self.fut is not None and self.fut.done()

    def resolve(self, reply: Optional[AnyReply], error: Optional[BaseException]) -> None:
        fut = self.fut
        if fut is None:
            self.reply, self.error = reply, error
            assert self.lock is not None
            self.lock.release()
            return
        try:
            if self.ident == threading.get_ident():
                settle_reply(fut, reply, error)
            else:
                fut.get_loop().call_soon_threadsafe(settle_reply, fut, reply, error)
        except RuntimeError:  # its loop is closed: nobody to tell
            pass


class WriteBatcher:
    """Queues single DML writes and sends them to the writer in batches.

    :param slots: the writer's slots (shared with transactions and
        non-batchable writes, which take the writer for themselves); they
        also prepare each caller's request.
    :param timeout: how long a leader waits for the writer.
    :param max_batch: requests per round trip at most.
    """

    def __init__(self, slots: WorkerSlots, timeout: Callable[[], Optional[float]],
                 max_batch: int = 64) -> None:
        self.slots = slots
        self.timeout = timeout
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: Deque[_Ticket] = deque()
        #: thread ident of the current leader (of its loop, for a task); None: nobody leads
        self._leader: Optional[int] = None
        self._tasks: set["asyncio.Task[None]"] = set()
        #: batches sent and requests they carried (for the docs' figures and tests)
        self.batches = 0
        self.requests = 0

    # -- callers ------------------------------------------------------------------------------

    def submit(self, request: Request) -> AnyReply:
        """Run one write request, blocking the calling thread.

        :raises WouldDeadlock: called on the thread of an event loop whose
            task leads now (it could never run).
        :raises: whatever the write raises (its own error), ProxyTimeout,
            ProxyClosed, WorkerCrashed.
        """
        ticket = _Ticket(self.slots.prepare(request), None)
        ident = ticket.ident
        with self._lock:
            if self._leader is not None and self._leader == ident:
                raise WouldDeadlock("a task of this thread's event loop leads the writes "
                                    "queued before this one; a blocking write here would "
                                    "wait for it forever")
            self._pending.append(ticket)
            lead = self._leader is None
            if lead:
                self._leader = ident
        assert ticket.lock is not None
        if lead:
            self._lead(ticket)
        ticket.lock.acquire()
        while ticket.lead:  # handed the lead while waiting
            ticket.lead = False
            self._lead(ticket)
            ticket.lock.acquire()
        if ticket.error is not None:
            raise ticket.error
        assert ticket.reply is not None
        return ticket.reply

    async def submit_async(self, request: Request) -> AnyReply:
        """Run one write request without blocking the loop.

        :returns: resolves to the raw reply.
        :raises: as :meth:`submit`.
        """
        loop = asyncio.get_running_loop()
        ticket = _Ticket(self.slots.prepare(request), loop.create_future())
        with self._lock:
            self._pending.append(ticket)
            lead = self._leader is None
            if lead:
                self._leader = ticket.ident
        if lead:
            self._start_task(loop, ticket)
        assert ticket.fut is not None
        return await ticket.fut

    # -- leading ----------------------------------------------------------------------------------

    def _take(self) -> List[_Ticket]:
        with self._lock:
            batch: List[_Ticket] = []
            while self._pending and len(batch) < self.max_batch:
                ticket = self._pending.popleft()
                if not ticket.gone():
                    batch.append(ticket)
            return batch

    def _pass_lead(self) -> None:
        """Hand the lead to the oldest waiting thread, else to a task on the
        loop of the oldest waiting coroutine, else to nobody."""
        with self._lock:
            while self._pending and self._pending[0].gone():
                self._pending.popleft()
            nxt = next((t for t in self._pending if t.fut is None), None)
            if nxt is None and self._pending:
                nxt = self._pending[0]
            self._leader = None if nxt is None else nxt.ident
        if nxt is None:
            return
        if nxt.fut is None:
            nxt.lead = True
            assert nxt.lock is not None
            nxt.lock.release()
            return
        loop = nxt.fut.get_loop()
        try:
            loop.call_soon_threadsafe(self._start_task, loop, nxt)
        except RuntimeError:  # that loop is closed
            with self._lock:
                try:
                    self._pending.remove(nxt)
                except ValueError:
                    pass
            self._pass_lead()

    def _start_task(self, loop: asyncio.AbstractEventLoop, ticket: _Ticket) -> None:
        task = loop.create_task(self._lead_async(ticket))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fail_pending(self, error: BaseException) -> None:
        with self._lock:
            waiting = list(self._pending)
            self._pending.clear()
            self._leader = None
        for ticket in waiting:
            ticket.resolve(None, error)

    def _lead(self, mine: _Ticket) -> None:
        """Lead from this thread until ``mine`` is answered."""
        try:
            handle = self.slots.acquire(self.timeout())
        except Exception as exc:
            self._fail_pending(exc)
            return
        try:
            while not _answered(mine):
                batch = self._take()
                if not batch:
                    break
                try:
                    reply = handle.call(handle.prepare(self._request(batch)))
                except Exception as exc:
                    self._failed(batch, exc)
                    continue
                except BaseException as exc:  # KeyboardInterrupt: nobody reads the reply
                    if handle.awaiting_reply and not handle.closing:
                        handle.restart()
                    self._failed(batch, _interrupted(exc))
                    raise
                self._distribute(batch, reply)
        finally:
            self.slots.release(handle)
            self._pass_lead()

    async def _lead_async(self, mine: _Ticket) -> None:
        """Lead from a task of this loop until ``mine`` is answered (or gone).
        Replies are handed out by a callback of the round trip, so they reach
        their callers even if this task is cancelled (the loop is closing)."""
        from ._sqlite_async import acquire

        try:
            handle = await acquire(self.slots, self.timeout())
        except Exception as exc:
            self._fail_pending(exc)
            return
        drained: Optional[asyncio.Future[None]] = None
        try:
            while not _answered(mine):
                batch = self._take()
                if not batch:
                    break
                done = drained = asyncio.get_running_loop().create_future()
                try:
                    fut = handle.roundtrip(handle.prepare(self._request(batch)),
                                           lambda: None if done.done() else done.set_result(None))
                except Exception as exc:
                    done.set_result(None)
                    self._failed(batch, exc)
                    continue
                fut.add_done_callback(functools.partial(self._settled, batch))
                await asyncio.shield(done)
        finally:
            if drained is None or drained.done():
                self.slots.release(handle)
            else:  # cancelled with the reply in flight: release once it is read
                drained.add_done_callback(lambda _: self.slots.release(handle))
            self._pass_lead()

    def _settled(self, batch: List[_Ticket], fut: "asyncio.Future[AnyReply]") -> None:
        exc = fut.exception()
        if exc is not None:
            self._failed(batch, exc)
        else:
            self._distribute(batch, fut.result())

    def _request(self, batch: List[_Ticket]) -> Request:
        self.batches += 1
        self.requests += len(batch)
        return (OP_BATCH, [t.data for t in batch])

    @staticmethod
    def _failed(batch: List[_Ticket], exc: BaseException) -> None:
        """The batch's round trip failed: every ticket of it gets the error."""
        for ticket in batch:
            ticket.resolve(None, exc)

    def _distribute(self, batch: List[_Ticket], reply: AnyReply) -> None:
        status, body = reply
        if status != ST_OK:  # the batch as a whole failed (BEGIN: database is locked, ...)
            error = error_from_payload(decode_body(body))
            for ticket in batch:
                ticket.resolve(None, error)
            return
        for ticket, one in zip(batch, batch_members(body)):
            ticket.resolve(one, None)

    def queued(self) -> int:
        """Writes waiting for the next batch."""
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Fail the writes still queued (the proxy is closing)."""
        self._fail_pending(ProxyClosed("the SQLite proxy closed while this write waited"))


def _answered(ticket: _Ticket) -> bool:
    if ticket.fut is not None:
        return ticket.fut.done()
    return ticket.reply is not None or ticket.error is not None


def _interrupted(exc: BaseException) -> WorkerCrashed:
    return WorkerCrashed("the write batch was interrupted (%r); each of its writes was "
                         "committed entirely or not at all" % (exc,))
