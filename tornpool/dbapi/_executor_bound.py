"""One DB-API connection bound to its thread: :class:`BoundConnection`, the
object the pool engine lends (it has :class:`~tornpool.pool.Poolable`'s
interface), and :class:`CallFuture`, what a call on it resolves through.

The rule this module keeps: **a connection whose thread is still running
is never handed to anyone else.**  A call whose caller gave up -- its
``timeout`` passed or its task was cancelled -- resolves at once for that
caller (:class:`~tornpool.errors.CommandTimeout` or ``CancelledError``), and
the statement is asked to stop where the driver allows it (sqlite3's
``interrupt()``, psycopg's ``cancel()``, MySQL's ``KILL QUERY``); but the
connection stays *busy* and counted until its thread returns.  It is then
closed -- its state (a transaction half done, an interrupted statement) is
not known to be good -- and the pool opens a replacement.  Every thread the
pool starts is counted by a :class:`ThreadBudget` from its start to the
moment its connection is closed, so even a connection the pool has given up
on (a ping that hung, ``close()`` cutting connections off) keeps its place
under ``max_size`` until its thread is done with it.

**Pipelining.**  The pool's one-shot calls may queue one call behind the
running one on the same thread (:meth:`BoundConnection.call_next`), so a
thread that finishes a call starts the next without waiting for the loop to
hand it over.  Whether that queued call runs is decided once, under the
connection's lock, by whichever side gets there first -- the thread when it
reaches the call, the loop when it learns the previous call returned, or
the loop when the waiting caller gives up -- and recorded in its
:class:`Claim`.  It runs only if the previous call left the connection as
the pool would hand it out (no transaction open, not broken, nobody gave up
on it); otherwise it is *bounced* and its caller queues again, first in
line.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from tornpool.errors import CommandTimeout, ConnectionBusy, ConnectionClosed

from . import _executor_calls as calls
from ._executor_driver import Driver, first_keyword
from ._executor_thread import ConnectionThread, Inbox, Job

__all__ = ["Binding", "BoundConnection", "CallFuture", "Claim", "ThreadBudget",
           "QUEUED", "CLAIMED", "BOUNCED", "WITHDRAWN"]

log = logging.getLogger("tornpool.dbapi")

Raw = Any
Done = Callable[[Any, "BaseException | None"], None]

_OPENING = frozenset(("BEGIN", "START"))
_ENDING = frozenset(("COMMIT", "ROLLBACK", "END", "ABORT"))


class ThreadBudget:
    """Counts connection threads against a cap; :meth:`reserve` waits (FIFO)
    for a free place.  Loop only."""

    __slots__ = ("cap", "alive", "_waiting", "_empty")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.alive = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._empty: list[asyncio.Future[None]] = []

    def try_reserve(self) -> bool:
        """Take a place if one is free now (nobody waiting)."""
        if self.alive < self.cap and not self._waiting:
            self.alive += 1
            return True
        return False

    async def reserve(self) -> None:
        if self.alive < self.cap and not self._waiting:
            self.alive += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.free()  # granted and cancelled in the same turn
            raise

    def free(self) -> None:
        self.alive -= 1
        self.wake()
        if self.alive == 0:
            empty, self._empty = self._empty, []
            for fut in empty:
                if not fut.done():
                    fut.set_result(None)

    async def drained(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no thread is alive; returns
        whether none is."""
        if self.alive == 0:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._empty.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def wake(self) -> None:
        """Grant places to waiters while there are some (after a resize too)."""
        waiting = self._waiting
        while waiting and self.alive < self.cap:
            fut = waiting.popleft()
            if not fut.done():
                self.alive += 1
                fut.set_result(None)


class Binding:
    """What every connection of one pool shares: the driver, how to connect,
    the baseline session, the loop's inbox, the thread budget, counters."""

    def __init__(self, name: str, driver: Driver, opener: Callable[[], Raw], autocommit: bool,
                 init_sql: Iterable[str], initializer: Callable[[Raw], Any] | None,
                 begin_sql: str, cap: int) -> None:
        self.name = name
        self.begin_sql = begin_sql
        self.driver = driver
        self.opener = opener
        self.autocommit = autocommit
        self.init_sql = tuple(init_sql)
        self.initializer = initializer
        self.budget = ThreadBudget(cap)
        #: Set when the pool binds to its loop.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.inbox: Inbox | None = None
        self.numbers = itertools.count(1)
        #: ``(conn)``: have the server stop ``conn``'s statement from another
        #: connection (the driver's ``kill_sql``); set by the pool.
        self.kill: Callable[[BoundConnection], None] | None = None
        #: Calls whose caller gave up while their thread ran.
        self.abandoned_calls = 0
        #: Threads still running such a call.
        self.abandoned_running = 0


#: A queued call's fate (:attr:`Claim.state`): not decided yet; runs; will
#: not run because the previous call left the connection unfit (its caller
#: queues again); will not run because its caller gave up (or it moved).
QUEUED, CLAIMED, BOUNCED, WITHDRAWN = "queued", "claimed", "bounced", "withdrawn"

#: What the thread returns for a queued call it did not run.
_SKIPPED: Any = object()


class Claim:
    """The fate of one call queued behind another (see the module
    docstring); every change of :attr:`state` away from :data:`QUEUED`
    happens under the connection's lock, once."""

    __slots__ = ("conn", "state", "job", "on_done")

    def __init__(self, conn: BoundConnection, on_done: Done) -> None:
        self.conn = conn
        self.state = QUEUED
        self.job: Job | None = None
        self.on_done = on_done

    def take_back(self) -> bool:
        """(loop) Withdraw the call if it is still undecided; True if this
        did it (the thread will not run it)."""
        with self.conn.claims:
            if self.state is QUEUED:
                self.state = WITHDRAWN
                return True
            return False

    def give_up(self) -> None:
        """(loop) The caller stopped waiting: withdraw the call, or, if the
        thread took it already, abandon it like any running call."""
        if not self.take_back() and self.state is CLAIMED:
            self.conn.abandon_next(self)


class CallFuture(asyncio.Future[Any]):
    """The Future of one call on a bound connection.  Cancelling it, or its
    deadline passing, abandons the call (see the module docstring)."""

    # (class defaults, not an __init__: one is made per call)
    conn: BoundConnection | None = None
    timer: asyncio.TimerHandle | None = None
    #: set while the call is queued behind another (not started)
    claim: Claim | None = None

    def start(self, conn: BoundConnection, timeout: float | None) -> None:
        """The call runs on ``conn`` now; give up after ``timeout`` seconds."""
        self.claim = None
        if self.done():
            return  # gave up while queued behind another call; see Claim.give_up
        self.conn = conn
        if timeout is not None:
            self.timer = self.get_loop().call_later(max(timeout, 0.0), self._expire, timeout)

    def settle(self, value: Any, exc: BaseException | None) -> None:
        """The thread returned: resolve (unless the caller gave up)."""
        self.conn = None
        timer = self.timer
        if timer is not None:
            timer.cancel()
            self.timer = None
        if self.done():
            return
        if exc is None:
            self.set_result(value)
        else:
            self.set_exception(exc)

    def cancel(self, msg: Any = None) -> bool:
        if not super().cancel(msg):
            return False
        self._give_up()
        return True

    def _expire(self, timeout: float) -> None:
        self.timer = None
        if self.done():
            return
        self.set_exception(CommandTimeout(0, "the call did not finish within %.3g s; its connection "
                                             "is closed once its thread returns" % timeout))
        self._give_up()

    def _give_up(self) -> None:
        conn, self.conn = self.conn, None
        timer = self.timer
        if timer is not None:
            timer.cancel()
            self.timer = None
        if conn is not None:
            conn.abandon()
        claim, self.claim = self.claim, None
        if claim is not None:
            claim.give_up()


class BoundConnection:
    """A DB-API connection and the one thread that uses it; see the module
    docstring.  Open it with :meth:`open`.  Loop only, except where said."""

    #: (Poolable) never reaped by the engine: the thread budget counts it.
    abandoned = False

    def __init__(self, binding: Binding, thread: ConnectionThread, number: int) -> None:
        self.binding = binding
        self.driver = binding.driver
        self.thread = thread
        self.number = number
        self.raw: Raw = None
        self.server_id: Any = None
        self._job: Job | None = None
        self._on_done: Done | None = None
        self._closed = False
        self._close_started = False
        self._close_done: asyncio.Future[None] | None = None
        self._poisoned = False
        self._broken = False
        self._in_tx = False
        self._guess_tx = False  # thread side: transactions tracked from statements
        self._on_idle: list[Callable[[], None]] = []
        #: the call queued behind the running one, if any (loop side)
        self._next: Claim | None = None
        #: guards every :class:`Claim` decision on this connection
        self.claims = threading.Lock()
        #: (thread side) the last call left the connection fit to hand out
        self._fit = True
        #: the job running when a caller gave up (counted in abandoned_running)
        self._abandoned: Job | None = None

    # -- opening -------------------------------------------------------------------------

    @classmethod
    async def open(cls, binding: Binding) -> BoundConnection:
        """Start a thread and connect in it.

        :returns: (resolves to) the connection, set up as the pool says.
        :raises: the driver's connect error, or the set-up's.
        """
        await binding.budget.reserve()
        inbox = binding.inbox
        assert inbox is not None
        number = next(binding.numbers)
        thread = ConnectionThread("%s-conn-%d" % (binding.name, number), inbox)
        conn = cls(binding, thread, number)
        try:
            thread.start()
        except BaseException:
            binding.budget.free()
            raise
        fut: asyncio.Future[BoundConnection] = asyncio.get_running_loop().create_future()

        def connected(value: Any, exc: BaseException | None) -> None:
            conn._job = None
            if exc is not None:
                conn._closed = conn._close_started = True
                thread.stop()
                binding.budget.free()
                if not fut.done():
                    fut.set_exception(exc)
                return
            conn.raw, conn.server_id = value
            if fut.done():  # the pool stopped waiting (closing)
                conn.terminate()
            else:
                fut.set_result(conn)

        conn._job = Job(calls.open_raw, (binding.opener, binding.driver, binding.autocommit,
                                         binding.init_sql, binding.initializer), connected)
        thread.submit(conn._job)
        return await fut

    # -- Poolable ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once closing began (no more calls are accepted)."""
        return self._closed

    @property
    def busy(self) -> bool:
        """True while the thread runs a call."""
        return self._job is not None

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction was open when the last call returned."""
        return self._in_tx

    @property
    def has_unread_result(self) -> bool:
        return False  # results are read whole in the thread

    @property
    def unusable(self) -> bool:
        """Broken (the driver says so) or poisoned (a call was abandoned):
        closed when given back, never handed out again."""
        return self._broken or self._poisoned

    def ping(self, *, timeout: float | None = None) -> asyncio.Future[Any]:
        """Check the connection with the driver's ping (nothing for an
        in-process database); resolves to None."""
        fut = CallFuture(loop=asyncio.get_running_loop())
        ping = self.driver.ping
        if ping is None:
            fut.set_result(None)
            return fut
        self.run(fut, ping, (), timeout)
        return fut

    async def close(self) -> None:
        """Close the DB-API connection in its thread and end the thread;
        resolves once both are done (after the call in flight, if any)."""
        self.terminate()
        done = self._close_done
        if done is not None:
            await asyncio.shield(done)

    def terminate(self) -> None:
        """Stop accepting calls; close the connection in its thread as soon
        as it is idle (asking a running call to stop), without waiting."""
        if self._closed:
            return
        self._closed = True
        if self._job is not None:
            self.abandon()
            return  # closed by _finished
        self._start_close()

    # -- calls -----------------------------------------------------------------------------

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], on_done: Done,
             owner: Any = None, sql: Any = None) -> None:
        """Run ``fn(raw, *args)`` in the thread; ``on_done(value, exc)`` on the
        loop when it returns.  ``sql``: the statement, for drivers whose
        transaction state is tracked from statements.

        :raises ConnectionClosed: closing, broken, or a call was abandoned.
        :raises ConnectionBusy: a call is running.
        """
        if self._closed or self._poisoned:
            raise ConnectionClosed(0, "this connection is closed (%s)" % (
                "a call on it was cancelled or timed out" if self._poisoned else "closing"))
        if self._job is not None:
            raise ConnectionBusy(0, "a call is already running on this connection; one connection "
                                    "runs one call at a time")
        self._on_done = on_done
        job = self._job = Job(self._in_thread, (fn, args, sql), self._finished, owner)
        self.thread.submit(job)

    def run(self, fut: CallFuture, fn: Callable[..., Any], args: tuple[Any, ...],
            timeout: float | None, owner: Any = None, sql: Any = None) -> None:
        """:meth:`call` resolving ``fut`` (errors too), with a deadline."""
        try:
            self.call(fn, args, fut.settle, owner, sql)
        except Exception as exc:
            fut.set_exception(exc)
            return
        fut.start(self, timeout)

    def call_next(self, fn: Callable[..., Any], args: tuple[Any, ...], on_done: Done,
                  owner: Any = None, sql: Any = None) -> Claim | None:
        """Queue ``fn(raw, *args)`` behind the running call (see the module
        docstring); ``on_done(value, exc)`` on the loop once it ran.

        :returns: its :class:`Claim`, or None if nothing can be queued here
            now (no call running, one queued already, closing, poisoned).
        """
        if self._job is None or self._next is not None or self._closed or self._poisoned:
            return None
        claim = Claim(self, on_done)
        claim.job = Job(self._in_thread_next, (claim, fn, args, sql), self._next_finished, owner)
        self._next = claim
        self.thread.submit(claim.job)
        return claim

    def when_idle(self, callback: Callable[[], None]) -> None:
        """``callback()`` once the call in flight returned (now if none)."""
        if self._job is None:
            callback()
        else:
            self._on_idle.append(callback)

    def abandon(self) -> None:
        """The caller gave up on the running call: ask it to stop (in a
        helper thread) and close the connection once it returned.  A call
        queued behind it is bounced; if the thread has moved on to that
        call already, the one given up on is over and nothing is stopped."""
        if self._job is None or self._poisoned:
            return
        nxt = self._next
        if nxt is not None:
            with self.claims:
                if nxt.state is QUEUED:
                    nxt.state = BOUNCED
                moved_on = nxt.state is CLAIMED
            if moved_on:
                self.binding.abandoned_calls += 1
                return
        self._poison(self._job)

    def abandon_next(self, claim: Claim) -> None:
        """The caller of a queued call gave up after the thread took it but
        before the loop heard the call ahead of it return: stop it like any
        running call.  (Once the loop has heard, the call is started on its
        Future, whose own abandon applies.)"""
        if self._next is claim and not self._poisoned:
            self._poison(claim.job)

    def _poison(self, job: Job | None) -> None:
        self._poisoned = True
        self._abandoned = job
        binding = self.binding
        binding.abandoned_calls += 1
        binding.abandoned_running += 1
        interrupt = self.driver.interrupt
        if self.raw is None:
            return
        if interrupt is not None:
            threading.Thread(target=self._interrupt, args=(interrupt,), daemon=True,
                             name="%s-interrupt-%d" % (binding.name, self.number)).start()
        elif self.driver.kill_sql is not None and self.server_id is not None and binding.kill:
            binding.kill(self)

    def _interrupt(self, interrupt: Callable[[Raw], None]) -> None:
        try:
            interrupt(self.raw)
        except Exception as exc:  # noqa: BLE001 - best effort; the thread returns by itself
            log.debug("%s: interrupting connection %d failed: %r", self.binding.name, self.number, exc)

    def _in_thread(self, fn: Callable[..., Any], args: tuple[Any, ...],
                   sql: Any) -> tuple[Any, BaseException | None, bool, bool]:
        """(thread) Run the call, then read the connection's state."""
        raw = self.raw
        value: Any = None
        exc: BaseException | None = None
        self._fit = False  # until this call is known to have left it fit
        try:
            value = fn(raw, *args)
        except Exception as err:
            exc = err
        driver = self.driver
        try:
            in_tx = driver.in_transaction(raw)
            if in_tx is None:
                in_tx = self._guess(sql, exc)
            broken = driver.broken(raw, exc)
        except Exception:  # noqa: BLE001 - a connection that cannot say is not trusted
            in_tx, broken = True, True
        self._fit = not (in_tx or broken)
        return value, exc, in_tx, broken

    def _in_thread_next(self, claim: Claim, fn: Callable[..., Any], args: tuple[Any, ...],
                        sql: Any) -> Any:
        """(thread) A queued call: run it if the previous one left the
        connection fit and the loop has not decided otherwise."""
        with self.claims:
            if claim.state is QUEUED:
                claim.state = CLAIMED if self._fit and not self._poisoned else BOUNCED
            if claim.state is not CLAIMED:
                return _SKIPPED
        return self._in_thread(fn, args, sql)

    def _guess(self, sql: Any, exc: BaseException | None) -> bool:
        """(thread) Transaction state from the statements, for drivers that
        cannot tell; with autocommit off any statement may open one."""
        if sql is not None and exc is None:
            word = first_keyword(sql)
            if word in _OPENING:
                self._guess_tx = True
            elif word in _ENDING and " TO " not in str(sql).upper():
                self._guess_tx = False
            elif not self.binding.autocommit:
                self._guess_tx = True
        return self._guess_tx

    def _finished(self, outcome: Any, err: BaseException | None) -> None:
        finishing, self._job = self._job, None
        on_done, self._on_done = self._on_done, None
        if err is None:
            value, exc, self._in_tx, broken = outcome
        else:  # _in_thread itself failed: nothing about the connection is known
            value, exc, broken = None, err, True
        if broken:
            self._broken = True
        if finishing is not None and finishing is self._abandoned:
            self._abandoned = None
            self.binding.abandoned_running -= 1
        nxt = self._next
        if nxt is not None:
            self._next = None
            fit = not (self._in_tx or self._broken or self._poisoned or self._closed)
            with self.claims:
                if nxt.state is QUEUED:
                    nxt.state = CLAIMED if fit else BOUNCED
            if nxt.state is CLAIMED:  # the thread runs it now, or will
                self._job, self._on_done = nxt.job, nxt.on_done
            nxt.job = None  # (the job refers to its claim: no cycle left for the GC)
        if on_done is not None:
            on_done(value, exc)
        if self._on_idle and self._job is None:
            callbacks, self._on_idle = self._on_idle, []
            for callback in callbacks:
                callback()
        if self._closed and self._job is None:
            self._start_close()

    def _next_finished(self, outcome: Any, err: BaseException | None) -> None:
        if outcome is _SKIPPED and err is None:
            return  # bounced or withdrawn: its caller was told already
        self._finished(outcome, err)

    # -- closing -------------------------------------------------------------------------

    def _start_close(self) -> None:
        if self._close_started:
            return
        self._close_started = True
        loop = self.binding.loop
        assert loop is not None
        self._close_done = loop.create_future()
        raw, self.raw = self.raw, None
        self.thread.submit(Job(calls.close_raw, (raw,), self._closed_now))
        self.thread.stop()

    def _closed_now(self, value: Any, exc: BaseException | None) -> None:
        self.binding.budget.free()
        done = self._close_done
        if done is not None and not done.done():
            done.set_result(None)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "busy" if self._job is not None else "idle"
        return "<BoundConnection %s#%d %s>" % (self.binding.name, self.number, state)
