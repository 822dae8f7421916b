"""The greenlet bridge: blocking-style code over Tornado's IOStream.

This is the only module in tornpool that imports :mod:`greenlet`.

PyMySQL is written against a blocking socket.  We run it, unchanged, inside a
*worker greenlet*: one persistent greenlet per connection, reused for every
command (no greenlet is spawned per call).  The coroutine that issues a command
is the worker's *driver*: it switches into the worker, and the worker switches
back only when it must wait for the network, handing the driver a Future to
await.  When the Future resolves the driver switches back in with its result.
So a query that finds its reply already in the buffer costs no switch at all,
and a typical small query costs one round trip out of the worker and back.

:class:`GreenSocket` is the socket PyMySQL sees.  Writes go straight to
:meth:`IOStream.write` and never switch (the stream buffers what the kernel
does not take at once).  Reads are served from the socket's own buffer; only
when the buffer does not hold enough bytes does the worker wait on
:meth:`IOStream.read_into` with ``partial=True``, reading directly into the
free tail of that buffer.

Everything here uses Tornado's public API only, and works on any asyncio event
loop (Tornado's IOStream wraps whichever loop is running).

The module also offers :func:`spawn` and :func:`await_` for compat layers
(greentor-style code): run a function in a greenlet from a coroutine, and,
from inside it, wait for any awaitable as if it were a blocking call.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import greenlet
from tornado.iostream import IOStream, StreamClosedError

from tornpool.errors import GreenletRequired

__all__ = ["GreenWorker", "GreenSocket", "spawn", "await_"]

T = TypeVar("T")

#: Initial size of a connection's receive buffer.  It grows for packets that do
#: not fit and shrinks back once they are consumed.
BUFFER_SIZE = 256 * 1024

#: Awaitable stand-in a worker passes to ``wait()`` to give the loop one turn.
YIELD: Any = object()

# Messages from the worker to its driver: (kind, payload).
_DONE = 0  # payload: the function's return value
_FAIL = 1  # payload: the exception it raised
_WAIT = 2  # payload: an awaitable the driver must await on the worker's behalf


class GreenWorker(Generic[T]):
    """A persistent greenlet that runs blocking-style functions for one owner.

    :meth:`run` is a coroutine: it switches into the worker, runs ``fn(*args)``
    there, awaits on the worker's behalf every awaitable the worker hands out
    through :meth:`wait`, and resolves to ``fn``'s return value (or raises
    what ``fn`` raised).  One :meth:`run` at a time; the owner enforces that.

    ``on_cancel`` is called (from the loop's side) when the driving coroutine
    is cancelled or fails while the worker is mid-function; the owner uses it
    to close the transport so that the worker's pending wait fails and the
    function unwinds.  The worker then receives the exception from
    :meth:`wait` and the cancellation is re-raised to the caller.
    """

    __slots__ = ("_glet", "_driver", "_reply", "_running", "on_cancel", "__weakref__")

    def __init__(self, on_cancel: Callable[[], None] | None = None) -> None:
        self._glet: greenlet.greenlet | None = None
        self._driver: greenlet.greenlet | None = None
        self._reply: tuple[int, Any] | None = None
        self._running = False
        self.on_cancel = on_cancel

    # -- worker side ---------------------------------------------------------

    def _main(self, job: tuple[Callable[..., Any], tuple[Any, ...]] | None) -> None:
        # The idle worker's frame must hold nothing of the last job: greenlet
        # cannot collect cycles through a suspended greenlet's frames, and a
        # result parked here would live until the next command.  So the reply
        # travels through self._reply, not as a switch() argument (which the
        # suspended frame would keep on its stack).
        while job is not None:
            fn, args = job
            del job
            try:
                self._reply = (_DONE, fn(*args))
            except greenlet.GreenletExit:
                raise
            except BaseException as exc:  # handed to the driver, which re-raises
                self._reply = (_FAIL, exc)
                del exc
            del fn, args
            assert self._driver is not None
            job = self._driver.switch()

    def wait(self, awaitable: Awaitable[Any]) -> Any:
        """From inside the worker: wait for ``awaitable`` and return its result
        (or raise its exception).  The worker is suspended meanwhile and the
        event loop runs other work."""
        assert self._driver is not None and greenlet.getcurrent() is self._glet
        ok, value = self._driver.switch((_WAIT, awaitable))
        if ok:
            return value
        raise value

    # -- driver side ---------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the worker greenlet.

        :returns: what ``fn`` returns.
        :raises: whatever ``fn`` raises; :class:`asyncio.CancelledError` if the
            calling task is cancelled meanwhile (``fn`` is unwound first).
        """
        glet = self._glet
        if glet is None or glet.dead:
            glet = self._glet = greenlet.greenlet(self._main)
        self._driver = greenlet.getcurrent()
        self._running = True
        kind, value = glet.switch((fn, args)) or self._take_reply()
        cancelled: BaseException | None = None
        while kind == _WAIT:
            try:
                if value is YIELD:
                    await asyncio.sleep(0)
                    result = None
                else:
                    result = await value
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    # The protocol state is unknown now: let the owner close the
                    # transport so the worker's function unwinds, then re-raise.
                    cancelled = exc
                    if self.on_cancel is not None:
                        self.on_cancel()
                self._driver = greenlet.getcurrent()
                kind, value = glet.switch((False, exc)) or self._take_reply()
            else:
                self._driver = greenlet.getcurrent()
                kind, value = glet.switch((True, result)) or self._take_reply()
        self._running = False  # the worker is idle again: close() may end it
        if cancelled is not None:
            raise cancelled
        if kind == _FAIL:
            try:
                raise value
            finally:
                del value
        return value  # type: ignore[no-any-return]

    def _take_reply(self) -> tuple[int, Any]:
        reply = self._reply
        self._reply = None
        assert reply is not None
        return reply

    def close(self) -> None:
        """End the worker greenlet if it is idle (a no-op while it runs a
        function: the owner calls this again once that function returns)."""
        if self._running:
            return
        glet = self._glet
        self._glet = None
        if glet:  # started and not dead: idle, suspended in _main's switch
            try:
                glet.parent = greenlet.getcurrent()
                self._driver = greenlet.getcurrent()
                glet.switch(None)
            except greenlet.error:
                pass


class GreenSocket:
    """The socket object PyMySQL sees, backed by an :class:`IOStream`.

    Implements the parts of the socket and file API that PyMySQL uses
    (``sendall``, ``settimeout``, ``makefile`` -> an object with ``read``,
    ``close``) plus a public receive buffer (:attr:`buf`, :attr:`pos`,
    :attr:`end`) that tornpool's packet reader and codec consume in place.
    Timeouts are not enforced here: the connection arms one deadline per
    command and closes the stream when it passes.
    """

    __slots__ = ("stream", "worker", "buf", "view", "pos", "end", "timeout", "writes", "direct", "yield_first")

    def __init__(self, stream: IOStream, worker: GreenWorker[Any]) -> None:
        self.stream = stream
        self.worker = worker
        self.buf = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.buf)
        #: Unconsumed data is ``buf[pos:end]``.
        self.pos = 0
        self.end = 0
        self.timeout: float | None = None
        #: Number of writes so far: tells whether a failed command reached the wire.
        self.writes = 0
        #: Send on the socket directly when nothing is queued (plain TCP/unix only).
        self.direct = type(stream) is IOStream
        #: Yield one loop turn before the first read of a reply (see fill());
        #: the connection sets it per command.
        self.yield_first = False

    # -- socket API used by PyMySQL ------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        """Record PyMySQL's timeout; deadlines are enforced by the connection."""
        self.timeout = timeout

    def makefile(self, mode: str = "rb") -> GreenSocket:
        return self

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``; never switches.

        When the stream has nothing queued (``IOStream.writing()`` is false) and
        is not TLS, the bytes go straight to ``IOStream.socket`` -- one
        ``send()`` call, which saves IOStream's write bookkeeping (a Future and
        a buffer round, ~8 us here).  Whatever the kernel does not take at once
        is queued with :meth:`IOStream.write`, which keeps the order.

        :raises StreamClosedError: (an :class:`OSError`) if the stream is closed.
        :raises OSError: the socket failed (PyMySQL turns it into error 2006).
        """
        self.writes += 1
        stream = self.stream
        if self.direct and not stream.writing() and not stream.closed():
            try:
                sent = stream.socket.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        stream.write(data if not isinstance(data, bytearray) else bytes(data))

    def read(self, n: int) -> bytes:
        """Return exactly ``n`` bytes, waiting for the network as needed.

        Returns fewer bytes only if the stream reached EOF.
        """
        if self.end - self.pos < n:
            try:
                self.fill(n)
            except StreamClosedError:
                n = self.end - self.pos
        start = self.pos
        self.pos = start + n
        return bytes(self.view[start : start + n])

    def close(self) -> None:
        stream = self.stream
        # A stream whose start_tls() failed has handed its socket over and can
        # no longer close itself; the TLS stream that owned it is closed already.
        if stream.socket is not None or stream.closed():
            stream.close()

    # -- buffer management ---------------------------------------------------

    def fill(self, need: int) -> None:
        """Wait until at least ``need`` unconsumed bytes are buffered.

        Compacts the buffer, or grows it when ``need`` exceeds its size.
        Runs in the worker greenlet; switches out only to wait.

        :raises StreamClosedError: the stream closed first (an OSError).
        """
        first = True
        while self.end - self.pos < need:
            self._make_room(need)
            if first and self.yield_first:
                # A reply to what we just sent is typically in flight: give the
                # loop one turn first, so read_into usually finds it inline --
                # one loop iteration instead of two, and no empty recv().
                self.worker.wait(YIELD)
                first = False
            # read_into accepts any writable buffer; its annotation says bytearray.
            fut = self.stream.read_into(self.view[self.end :], partial=True)  # type: ignore[arg-type]
            assert isinstance(fut, asyncio.Future)
            got: int = fut.result() if fut.done() else self.worker.wait(fut)
            self.end += got

    def _make_room(self, need: int) -> None:
        pos, end = self.pos, self.end
        size = len(self.buf)
        if pos == end:
            self.pos = self.end = 0
            if size > BUFFER_SIZE and need <= BUFFER_SIZE:
                self._resize(BUFFER_SIZE, b"")
            elif need > size:
                self._resize(need, b"")
            return
        if need <= size - pos and end < size:
            return  # room left after end, and the packet fits from pos
        pending = bytes(self.view[pos:end])
        if need > size:
            self._resize(max(need, size * 2), pending)
        else:
            self.buf[: end - pos] = pending
        self.pos, self.end = 0, end - pos

    def _resize(self, size: int, pending: bytes) -> None:
        self.view.release()
        self.buf = bytearray(size)
        self.buf[: len(pending)] = pending
        self.view = memoryview(self.buf)

    # -- TLS -------------------------------------------------------------------

    def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> GreenSocket:
        """Upgrade the stream to TLS (worker side).  Returns ``self``."""
        assert self.pos == self.end, "TLS requested with unread data"
        upgrade = self.stream.start_tls(False, ssl_options=context, server_hostname=server_hostname)
        self.direct = False
        self.stream = self.worker.wait(upgrade)
        return self


class TLSContextProxy:
    """Stands in for PyMySQL's ``SSLContext`` so that its ``wrap_socket`` call
    upgrades the IOStream (:meth:`GreenSocket.start_tls`) instead of wrapping a
    blocking socket."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    def wrap_socket(self, sock: GreenSocket, server_hostname: str | None = None) -> GreenSocket:
        return sock.start_tls(self.context, server_hostname)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.context, name)


# -- helpers for compat layers ------------------------------------------------


_current_worker: dict[greenlet.greenlet, GreenWorker[Any]] = {}


async def spawn(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a fresh greenlet in which :func:`await_` may be used.

    This is for compat layers whose user code is written in blocking style
    (greentor's API).  It is a coroutine; the greenlet lives for one call.

    :returns: ``fn``'s return value.
    :raises: whatever ``fn`` raises.
    """
    worker: GreenWorker[T] = GreenWorker()
    glet = worker._glet = greenlet.greenlet(worker._main)
    _current_worker[glet] = worker
    try:
        return await worker.run(fn, *args)
    finally:
        _current_worker.pop(glet, None)
        worker.close()


def await_(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` from inside a greenlet started by :func:`spawn`.

    The greenlet is suspended and the event loop keeps running; this returns the
    awaitable's result or raises its exception.

    :raises GreenletRequired: when called outside such a greenlet (for example
        from a coroutine on the event loop's own greenlet), where waiting would
        block the loop.
    """
    worker = _current_worker.get(greenlet.getcurrent())
    if worker is None:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # avoid a "never awaited" warning
        raise GreenletRequired(
            "await_() must run inside a greenlet started by tornpool.green.spawn(); "
            "on the event loop's own greenlet it would block the loop"
        )
    return worker.wait(awaitable)  # type: ignore[no-any-return]
