"""The executor pool's one-shot calls (:meth:`ExecutorPool.execute`,
``executemany``, ``run``): :class:`PooledCall` is the engine's waiter and
then the call; :class:`Pipeline` queues the oldest waiting call behind a
running one, in the same thread, so the thread starts it the moment the
first returns.

Why: with more callers than connections, a thread that finished a call
would otherwise sit idle until the loop has woken up, run the completion
and handed it the next caller's call -- on a busy loop, with the GIL going
round a dozen threads, a good part of each call's time.  A bare
``ThreadPoolExecutor`` has no such gap (its threads take the next item off a
shared queue); a pipeline one call deep closes it here.

What the pipeline keeps:

* **FIFO, up to one call.**  The call queued is the engine's oldest
  waiter, and only when the running call's connection, given back, would go
  straight to it (:meth:`~tornpool.pool.PoolEngine.take_next`).  It then
  starts when that call returns, even if another connection frees up a
  moment earlier and takes a younger caller: no call waits behind more than
  one other.
* **A clean connection for every call.**  The queued call runs only if the
  one before it left the connection fit to hand out -- no transaction open,
  not broken, nobody gave up on it (the :class:`~._executor_bound.Claim`
  rules).  Otherwise it is *bounced*: it queues again, first in line, with
  its original deadline.  Pools that clean every returned connection
  (``session_reset="always"``, a ``reset`` hook) do not pipeline.
* **Deadlines and cancellation.**  While queued a call is still waiting
  for a connection: at its deadline it fails with
  :class:`~tornpool.errors.PoolTimeout`, and cancelling it withdraws it --
  unless the thread has started it, in which case it is a running call
  like any other (its call deadline applies, cancelling abandons it).
* **Nobody waits behind a slow call while a connection idles.**  A
  connection given back with no waiter in the engine's queue takes the
  oldest queued call away from the connection it waits on (the engine's
  ``spare`` hook).
* **Close.**  Queued calls the threads have not started fail with
  :class:`~tornpool.errors.PoolClosed`, like every other waiter.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from tornpool.pool import PoolEngine, Slot

from ._executor_bound import BOUNCED, CLAIMED, BoundConnection, CallFuture, Claim

__all__ = ["PooledCall", "Pipeline"]


class PooledCall:
    """One one-shot call: the engine's waiter, then the connection's call."""

    __slots__ = ("pipeline", "future", "fn", "args", "sql", "timeout", "deadline", "slot",
                 "queued_at", "claim", "next")

    def __init__(self, pipeline: Pipeline, future: CallFuture, fn: Callable[..., Any],
                 args: tuple[Any, ...], sql: Any, timeout: float | None, deadline: float) -> None:
        self.pipeline = pipeline
        self.future = future
        self.fn = fn
        self.args = args
        self.sql = sql
        self.timeout = timeout
        self.deadline = deadline
        self.slot: Slot[BoundConnection] | None = None
        self.queued_at = 0.0
        #: set while queued behind another call, until the claim is settled
        self.claim: Claim | None = None
        #: the call queued behind this one
        self.next: PooledCall | None = None

    @property
    def done(self) -> bool:
        """No longer waiting: served (its call runs) or finished.  A call
        queued behind another is still waiting."""
        return self.slot is not None or self.future.done()

    def deliver(self, slot: Slot[BoundConnection]) -> None:
        self.slot = slot
        conn = slot.conn
        try:
            conn.call(self.fn, self.args, self.finished, None, self.sql)
        except Exception as exc:
            self.finished(None, exc)
            return
        self.started(conn)

    def started(self, conn: BoundConnection) -> None:
        """The call runs on ``conn``: arm its deadline, queue the next."""
        timeout = self.timeout
        if timeout is not None:
            timeout = self.deadline - self.future.get_loop().time()
        self.future.start(conn, timeout)
        pipeline = self.pipeline
        if pipeline.enabled:
            pipeline.queue_behind(self)

    def fail(self, exc: BaseException) -> None:
        claim = self.claim
        if claim is not None:  # queued behind another call
            if not claim.take_back():
                return  # the thread took it (it runs), or it will queue again
            self.claim = self.future.claim = None
        if not self.future.done():
            self.future.set_exception(exc)

    def finished(self, value: Any, exc: BaseException | None) -> None:
        """The thread returned: hand the connection on, then resolve."""
        slot, self.slot = self.slot, None
        nxt, self.next = self.next, None
        pipeline = self.pipeline
        engine = pipeline.engine
        if slot is not None:
            if nxt is not None:
                pipeline.hand_over(slot, nxt)
            else:
                engine.release(slot)
        if exc is not None:
            engine.stats.error(exc)
            if engine.events:
                engine.events.emit("error", None, "%s: %s" % (type(exc).__name__, exc))
        self.future.settle(value, exc)


class Pipeline:
    """Queues calls behind running ones; see the module docstring.

    :param engine: the pool's engine.
    :param enabled: pipeline at all (False: every call waits for the loop).
    """

    __slots__ = ("engine", "enabled", "_queued", "_wanted")

    def __init__(self, engine: PoolEngine[BoundConnection], enabled: bool) -> None:
        self.engine = engine
        self.enabled = enabled
        #: calls queued behind another, oldest first (some settled already)
        self._queued: collections.deque[PooledCall] = collections.deque()
        self._wanted = self._mine

    def _mine(self, waiter: Any) -> bool:
        return type(waiter) is PooledCall and waiter.pipeline is self

    def queue_behind(self, call: PooledCall) -> None:
        """Queue the engine's oldest waiter behind ``call`` if it is one of
        this pool's calls and ``call``'s connection would go to it."""
        slot = call.slot
        assert slot is not None
        conn = slot.conn
        if conn.unusable or conn.closed:
            return  # closed after this call: the next one goes elsewhere
        nxt = self.engine.take_next(slot, self._wanted)
        if nxt is None:
            return
        claim = conn.call_next(nxt.fn, nxt.args, nxt.finished, None, nxt.sql)
        if claim is None:
            self.engine.resubmit(nxt, nxt.deadline)
            return
        nxt.claim = nxt.future.claim = claim
        call.next = nxt
        queued = self._queued
        while queued and queued[0].claim is None:
            queued.popleft()
        queued.append(nxt)

    def hand_over(self, slot: Slot[BoundConnection], nxt: PooledCall) -> None:
        """The call before ``nxt`` returned (its connection settled ``nxt``'s
        claim): pass the connection on if the thread runs ``nxt``, else give
        it back and queue ``nxt`` again if it was bounced."""
        claim, nxt.claim = nxt.claim, None
        engine = self.engine
        if claim is not None and claim.state is CLAIMED:
            engine.pass_on(slot, nxt)
            nxt.slot = slot
            nxt.started(slot.conn)
            return
        nxt.future.claim = None
        if claim is not None and claim.state is BOUNCED and not nxt.future.done():
            engine.resubmit(nxt, nxt.deadline)
        engine.release(slot)

    def spare(self) -> PooledCall | None:
        """(the engine's hook) The oldest queued call the threads have not
        started, taken back to run on a connection that would idle."""
        queued = self._queued
        while queued:
            call = queued.popleft()
            claim = call.claim
            if claim is not None and not call.future.done() and claim.take_back():
                call.claim = call.future.claim = None
                return call
        return None

    def close(self, exc: BaseException) -> None:
        """Fail every queued call the threads have not started."""
        queued, self._queued = self._queued, collections.deque()
        for call in queued:
            call.fail(exc)
