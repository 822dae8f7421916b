"""The connection's end of the socket: an asyncio ``BufferedProtocol`` that owns
the receive buffer.

Every connection has one :class:`Wire`.  The event loop reads straight into
the free tail of :attr:`Wire.buf` (``recv_into``, no intermediate ``bytes``)
and then calls :meth:`Wire.buffer_updated`, which hands control to whoever
consumes replies right now -- the connection's response reader on the fast
path, or a waiting worker greenlet (:mod:`tornpool.green`) while PyMySQL runs a
command.  Unconsumed bytes are ``buf[pos:end]``; consumers advance ``pos``.

Why not Tornado's ``IOStream``: every ``read_into`` creates a Future, runs
several layers of Python and may re-register the socket with the loop; with a
protocol the socket stays registered and a reply costs one ``recv_into`` and
one call.  Measured on this project's 2-vCPU VM, a ``SELECT 1`` round trip
with no driver code at all costs ~29 us of client CPU through this protocol
and ~37 us through ``IOStream.read_into`` (``python -m bench floor``).  The
protocol runs on any asyncio loop, and so on Tornado's ``IOLoop``, which has
been an asyncio loop since Tornado 5; only public asyncio API is used.

No parsing happens here and nothing here knows about MySQL.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import Any

__all__ = ["Wire", "BUFFER_SIZE", "HIGH_WATER"]

#: Initial (and resting) size of a connection's receive buffer.
BUFFER_SIZE = 256 * 1024
#: Free space the loop is always offered to read into.
MIN_FREE = 16 * 1024
#: Unconsumed bytes beyond which reading pauses until a consumer asks for more
#: (a streaming cursor whose caller is slow must not buffer the whole result).
HIGH_WATER = 4 * 1024 * 1024


def _no_consumer() -> None:
    """Default consumer: data is left in the buffer for the next reader."""


class Wire(asyncio.BufferedProtocol):
    """Receive buffer and writer of one connection.

    :attr:`consumer` is called (with no arguments) after new bytes landed in
    the buffer; it must not raise.  :attr:`on_lost` is called once when the
    transport closes, with the exception that closed it (or None for a clean
    EOF).
    """

    def __init__(self) -> None:
        self.buf = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.buf)
        #: Unconsumed data is ``buf[pos:end]``.
        self.pos = 0
        self.end = 0
        self.transport: asyncio.Transport | None = None
        self.consumer: Callable[[], None] = _no_consumer
        self.on_lost: Callable[[BaseException | None], None] | None = None
        #: True once the transport is gone (EOF, reset).
        self.lost = False
        #: True once the transport is gone or we closed it.
        self.dead = False
        self.lost_exc: BaseException | None = None
        #: Writes so far: tells whether a failed command reached the wire.
        self.written = 0
        self._paused = False
        self.want_bytes = 0  # bytes a consumer needs from pos (grows the buffer)
        self._waiter: asyncio.Future[None] | None = None
        self._wait_need = 0
        self._closed_waiters: list[asyncio.Future[None]] = []

    # -- asyncio protocol callbacks ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        if len(self.buf) - self.end < MIN_FREE or self.want_bytes > len(self.buf) - self.pos:
            self._make_room()
        return self.view[self.end :]

    def buffer_updated(self, nbytes: int) -> None:
        self.end += nbytes
        waiter = self._waiter
        if waiter is not None:
            if self.end - self.pos >= self._wait_need:
                self._waiter = None
                if not waiter.done():
                    waiter.set_result(None)
        else:
            self.consumer()
        # What nobody consumed stays buffered; past HIGH_WATER, and more than
        # any consumer asked for, stop reading until one asks for more
        # (want() and wait() resume).
        held = self.end - self.pos
        if (held >= HIGH_WATER and held >= self.want_bytes and self._waiter is None
                and not self._paused and self.transport is not None):
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        # The server hung up: nothing written from now on can reach it.
        self.dead = True
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost:
            return
        self.lost = True
        self.dead = True
        self.lost_exc = exc
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("connection lost") if exc is None else exc)
        if self.on_lost is not None:
            self.on_lost(exc)
        for fut in self._closed_waiters:
            if not fut.done():
                fut.set_result(None)
        self._closed_waiters.clear()

    # -- used by consumers ---------------------------------------------------------------

    def consumed_all(self) -> None:
        """Forget the consumed bytes when nothing is left unread (cheap, keeps
        the free tail large)."""
        if self.pos == self.end:
            self.pos = self.end = 0
            self.want_bytes = 0

    def want(self, need: int) -> None:
        """Declare that the next step needs ``need`` bytes from :attr:`pos`:
        grow the buffer if it cannot hold them and resume reading if paused."""
        self.want_bytes = need
        if need > len(self.buf) - self.pos:
            self._make_room()
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def wait(self, need: int) -> asyncio.Future[None]:
        """A Future that resolves once ``need`` bytes are buffered from
        :attr:`pos` (for a worker greenlet; the fast path uses
        :attr:`consumer`).  It fails with the transport's error when the
        connection is lost first.  While it is pending, new data resolves it
        instead of calling :attr:`consumer`."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if self.end - self.pos >= need:
            fut.set_result(None)
            return fut
        if self.lost:
            exc = self.lost_exc
            fut.set_exception(ConnectionResetError("connection lost") if exc is None else exc)
            return fut
        self.want(need)
        self._waiter = fut
        self._wait_need = need
        return fut

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` (the transport buffers what the kernel does not take).

        :raises ConnectionResetError: the transport is gone.
        """
        transport = self.transport
        if not self.dead and transport is not None and not transport.is_closing():
            self.written += 1
            transport.write(data)
            if not transport.is_closing():
                return
            # The kernel refused the bytes (the peer had reset the link):
            # asyncio closes the transport instead of raising.
        self.dead = True
        raise ConnectionResetError("connection lost")

    @property
    def closed(self) -> bool:
        """True once the transport is gone or closing (our close included)."""
        return self.dead or self.transport is None

    def close(self) -> None:
        """Close the transport at once (pending writes are dropped).  Safe
        after the event loop itself was closed."""
        self.dead = True
        transport = self.transport
        if transport is not None and not transport.is_closing():
            try:
                transport.abort()
            except RuntimeError:
                # The event loop was closed under us: the transport cannot
                # close any more (asyncio warns when it is collected); at
                # least hang up so the server lets go at once.
                self.lost = True
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    async def wait_closed(self, timeout: float = 1.0) -> None:
        """Resolve once the transport is fully closed (its socket released),
        or after ``timeout`` seconds."""
        if self.lost or self.transport is None:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass

    def close_gracefully(self) -> None:
        """Close after pending writes are flushed (used after COM_QUIT)."""
        self.dead = True
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """Upgrade the transport to TLS in place (nothing may be unread)."""
        assert self.pos == self.end, "TLS requested with unread data"
        transport = self.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        new = await loop.start_tls(transport, self, context, server_hostname=server_hostname)
        assert isinstance(new, asyncio.Transport)
        self.transport = new

    @property
    def secure(self) -> bool:
        """True once the transport speaks TLS."""
        transport = self.transport
        return transport is not None and transport.get_extra_info("sslcontext") is not None

    async def open(self, host: str, port: int, unix_socket: str | None = None,
                   local_addr: tuple[str, int] | None = None) -> None:
        """Connect this wire's transport: to ``unix_socket`` if given, else
        over TCP to ``host:port`` (from ``local_addr``) with keepalive on.

        :raises OSError: the connection was refused or failed.
        """
        loop = asyncio.get_running_loop()
        if unix_socket:
            await loop.create_unix_connection(lambda: self, unix_socket)
            return
        await loop.create_connection(lambda: self, host, port, local_addr=local_addr)
        sock = self.socket_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def socket_info(self, name: str) -> Any:
        """``transport.get_extra_info(name)`` (``"peername"``, ``"socket"``...)."""
        return None if self.transport is None else self.transport.get_extra_info(name)

    # -- buffer management ---------------------------------------------------------

    def _make_room(self) -> None:
        pos, end = self.pos, self.end
        size = len(self.buf)
        pending = end - pos
        need = max(self.want_bytes, pending + MIN_FREE)
        if pending == 0 and size > BUFFER_SIZE and need <= BUFFER_SIZE:
            self._resize(BUFFER_SIZE)
            return
        if need > size:
            self._resize(max(need, size * 2))
            return
        if pos:
            # Slice assignment of equal length never resizes, so it is allowed
            # while our own memoryview export exists.
            self.buf[:pending] = self.view[pos:end]
            self.pos, self.end = 0, pending

    def _resize(self, size: int) -> None:
        pos, end = self.pos, self.end
        new = bytearray(size)
        new[: end - pos] = self.view[pos:end]
        self.view.release()
        self.buf = new
        self.view = memoryview(new)
        self.pos, self.end = 0, end - pos
