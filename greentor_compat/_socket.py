"""greentor's ``AsyncSocket``: a blocking-style socket over tornpool's bridge.

An :class:`AsyncSocket` is what a PyMySQL connection gets as its socket once
:func:`greentor_compat.mysql.patch_pymysql` is active: a
:class:`tornpool.green.GreenSocket` over a :class:`tornpool.wire.Wire`, the
receive buffer the event loop reads into.  Reads and the TLS upgrade suspend
the calling greenlet -- whichever greenlet uses the connection at that
moment -- and never block the loop; writes go to the transport at once.
PyMySQL's ``read_timeout`` / ``write_timeout`` behave as on a blocking socket
(``GreenSocket`` enforces them when set).

Used outside a greenlet that may wait, on a thread whose event loop is *not*
running (a script after ``IOLoop.run_sync`` returned, a finalizer), a read
runs that loop until the bytes are there, so the connection keeps working as
a blocking one would.  On the running loop's own greenlet it raises
:class:`~tornpool.errors.GreenletRequired` instead of blocking.

Two guards a pool uses: a socket marked :attr:`AsyncSocket.released` (its
connection was given back to a pool) refuses every read and write with
:class:`~tornpool.errors.ConnectionReleased`, before anything reaches the
wire; and a second greenlet writing while another one waits for the reply
gets :class:`~tornpool.errors.ConnectionBusy`.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable
from typing import Any

import greenlet
from tornpool.errors import ConnectionBusy, ConnectionReleased, GreenletRequired
from tornpool.green import GreenSocket
from tornpool.wire import Wire

from greentor_compat import _waiting

__all__ = ["AsyncSocket"]

class _Waits:
    """How an :class:`AsyncSocket` waits: in the calling greenlet when it may,
    else by running the socket's stopped loop."""

    __slots__ = ("sock",)

    def __init__(self, sock: AsyncSocket) -> None:
        self.sock = sock

    def wait(self, awaitable: Awaitable[Any]) -> Any:
        if _waiting.can_wait():
            return _waiting.wait(awaitable)
        loop = self.sock.stopped_loop()
        if loop is None or not asyncio.iscoroutine(awaitable):
            _waiting.close_awaitable(awaitable)
            raise GreenletRequired(
                0, "this connection reads through the event loop: use it inside a green task "
                "(greentor_compat.green.spawn / green) or tornpool.green.spawn")
        return loop.run_until_complete(awaitable)


class AsyncSocket(GreenSocket):
    """A socket look-alike for PyMySQL over the event loop.

    ``AsyncSocket()`` (or ``AsyncSocket(sock)`` with an unconnected
    :class:`socket.socket` to use) is not connected yet: :meth:`connect`
    connects it from a green task.  :meth:`open` does both.
    """

    __slots__ = ("loop", "released", "interrupted", "_reader", "_sock", "_connect_timeout")

    def __init__(self, sock: socket.socket | None = None) -> None:
        super().__init__(Wire(), _Waits(self))
        #: The event loop the transport runs on (None until connected).
        self.loop: asyncio.AbstractEventLoop | None = None
        #: Refuse all I/O: the connection was given back to its pool.
        self.released = False
        #: A wait was cut short (timeout, cancellation, an exception thrown
        #: into the greenlet): the server may still be running the statement.
        self.interrupted = False
        self._reader: greenlet.greenlet | None = None
        self._sock = sock
        self._connect_timeout: float | None = None

    # -- opening -----------------------------------------------------------------

    @classmethod
    def open(cls, host: str | None = None, port: int = 3306, *, unix_socket: str | None = None,
             timeout: float | None = None, bind_address: str | None = None) -> AsyncSocket:
        """Connect a new socket to ``host:port`` (or ``unix_socket``), waiting
        in the calling green task.

        :raises OSError: the connect failed (``socket.timeout`` after ``timeout`` s).
        :raises GreenletRequired: not called from a green task.
        """
        sock = cls()
        sock.set_connecttimeout(timeout)
        if unix_socket is not None:
            sock.connect(unix_socket)
        else:
            sock.connect((host or "localhost", port), bind_address=bind_address)
        return sock

    def set_connecttimeout(self, timeout: float | None) -> None:
        """Seconds :meth:`connect` may take (0 or None: no limit)."""
        self._connect_timeout = timeout or None

    def set_readtimeout(self, timeout: float | None) -> None:
        """greentor's name for :meth:`settimeout` (0: none)."""
        self.settimeout(timeout or None)

    def connect(self, address: Any, *, bind_address: str | None = None) -> None:
        """Connect to ``address`` -- ``(host, port)``, or a unix socket path --
        waiting in the calling green task.

        :raises OSError: the connect failed (``socket.timeout`` after the
            connect timeout).
        :raises GreenletRequired: not called from a green task.
        """
        if not _waiting.can_wait():
            raise GreenletRequired(0, "AsyncSocket.connect() waits: call it from a green task")
        self.loop = asyncio.get_running_loop()
        opening = self._open_transport(address, bind_address)
        if self._connect_timeout is not None:
            opening = asyncio.wait_for(opening, self._connect_timeout)
        try:
            _waiting.wait(opening)
        except asyncio.TimeoutError:
            self.wire.close()
            raise socket.timeout("timed out") from None
        except BaseException:
            self.wire.close()
            raise

    async def _open_transport(self, address: Any, bind_address: str | None) -> None:
        loop = asyncio.get_running_loop()
        wire = self.wire
        sock = self._sock
        if isinstance(address, (str, bytes, os.PathLike)):
            path = os.fspath(address)
            if sock is not None:
                sock.setblocking(False)
                await loop.sock_connect(sock, path)
                await loop.create_unix_connection(lambda: wire, sock=sock)
            else:
                await loop.create_unix_connection(lambda: wire, path)  # type: ignore[arg-type]
            return
        host, port = address
        if sock is not None:
            sock.setblocking(False)
            await loop.sock_connect(sock, (host, port))
            await loop.create_connection(lambda: wire, sock=sock)
        else:
            local = (bind_address, 0) if bind_address else None
            await loop.create_connection(lambda: wire, host, port, local_addr=local)
        raw = wire.socket_info("socket")
        if raw is not None:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def stopped_loop(self) -> asyncio.AbstractEventLoop | None:
        """This socket's loop if it may be run from here to finish a read:
        not running, not closed, and no other loop running in this thread."""
        loop = self.loop
        if loop is None or loop.is_running() or loop.is_closed():
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return loop
        return None

    # -- reading and writing -----------------------------------------------------------

    def fill(self, need: int) -> None:
        """Wait until ``need`` unconsumed bytes are buffered.

        :raises ConnectionReleased: the socket is marked :attr:`released`.
        :raises ConnectionBusy: another greenlet is waiting on this socket.
        :raises OSError: the connection closed first; ``socket.timeout``
            after the timeout set with :meth:`settimeout`.
        """
        wire = self.wire
        if wire.end - wire.pos >= need:
            return
        if self.released:
            raise ConnectionReleased(0, "this connection was given back to its pool")
        if self._reader is not None:
            raise ConnectionBusy(0, "another greenlet is waiting for a reply on this connection")
        self._reader = greenlet.getcurrent()
        try:
            if _waiting.can_wait():
                super().fill(need)
            else:
                self.worker.wait(self._fill_async(need))
        except TimeoutError:
            self.interrupted = True
            raise
        except OSError:
            raise
        except BaseException:
            self.interrupted = True
            raise
        finally:
            self._reader = None

    async def _fill_async(self, need: int) -> None:
        fut = self.wire.wait(need)
        if self.timeout is None:
            await fut
            return
        try:
            await asyncio.wait_for(fut, self.timeout)
        except asyncio.TimeoutError:
            raise socket.timeout("timed out") from None

    @property
    def reading(self) -> bool:
        """True while a greenlet waits for bytes on this socket."""
        return self._reader is not None

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` (see :meth:`tornpool.green.GreenSocket.sendall`).

        :raises ConnectionReleased: the socket is marked :attr:`released`.
        :raises ConnectionBusy: another greenlet waits for a reply here.
        :raises OSError: the connection is gone.
        """
        if self.released:
            raise ConnectionReleased(0, "this connection was given back to its pool")
        reader = self._reader
        if reader is not None and reader is not greenlet.getcurrent():
            raise ConnectionBusy(0, "another greenlet is waiting for a reply on this connection")
        super().sendall(data)

    send = sendall

    def recv(self, n: int) -> bytes:
        """Up to ``n`` bytes, waiting for at least one; ``b""`` at EOF."""
        wire = self.wire
        if wire.end == wire.pos:
            try:
                self.fill(1)
            except OSError as exc:
                if self.timeout is not None and isinstance(exc, TimeoutError):
                    raise
                return b""
        return self.read(min(n, wire.end - wire.pos))

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        """Like :meth:`recv`, into ``buffer``; returns the byte count."""
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Close the transport at once.  On a stopped loop (see
        :meth:`stopped_loop`) the loop is given the one iteration asyncio
        needs to release the socket."""
        wire = self.wire
        if wire.closed and wire.lost:
            return
        wire.close()
        loop = self.stopped_loop()
        if loop is not None and not wire.lost:
            try:
                loop.run_until_complete(asyncio.sleep(0))
            except RuntimeError:  # the loop is being closed or run elsewhere
                pass

    # -- the rest of the socket API PyMySQL or greentor code may touch ----------------

    def fileno(self) -> int:
        """The transport's file descriptor; -1 once closed (as a closed socket's)."""
        raw = self.wire.socket_info("socket")
        return -1 if raw is None or self.wire.closed else int(raw.fileno())

    def set_nodelay(self, flag: bool) -> None:
        raw = self.wire.socket_info("socket")
        if raw is not None and raw.family in (socket.AF_INET, socket.AF_INET6):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if flag else 0)

    def shutdown(self, how: int) -> None:
        """``SHUT_WR`` sends EOF; ``SHUT_RD`` / ``SHUT_RDWR`` close the socket."""
        transport = self.wire.transport
        if how == socket.SHUT_WR and transport is not None and transport.can_write_eof():
            transport.write_eof()
        else:
            self.close()

    def getpeername(self) -> Any:
        return self.wire.socket_info("peername")

    def getsockname(self) -> Any:
        return self.wire.socket_info("sockname")

    @property
    def closed(self) -> bool:
        """True once the transport is gone or closing (also what a closed
        ``makefile()`` object says: PyMySQL's ``_rfile`` is this socket)."""
        return self.wire.closed

    @property
    def _closed(self) -> bool:
        # socket.socket's own flag, which code that checks a socket was
        # closed (PyMySQL's test suite among it) reads.
        return self.wire.closed

    def __repr__(self) -> str:
        state = "closed" if self.wire.closed else ("open" if self.loop is not None else "new")
        return "<AsyncSocket %s %r>" % (state, self.getpeername())
