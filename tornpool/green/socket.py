"""The socket PyMySQL sees: blocking-style reads and writes over a :class:`Wire`.

PyMySQL calls ``sendall``, ``makefile().read(n)``, ``settimeout`` and
``close`` on its socket.  :class:`GreenSocket` implements exactly those on
top of the connection's :class:`~tornpool.wire.Wire`, from inside the
connection's worker greenlet:

* writes go to the transport and never switch (it buffers what the kernel
  does not take at once);
* reads are served from the wire's receive buffer; only when it holds fewer
  bytes than asked does the worker wait -- one switch out to the loop and one
  back, however many ``recv_into`` calls the loop needs meanwhile;
* TLS: PyMySQL's ``ctx.wrap_socket(sock)`` is routed by
  :class:`TLSContextProxy` to an in-place upgrade of the transport.

Timeouts: tornpool's connection never sets one on its socket -- it arms one
deadline per command and closes the transport when it passes, which fails the
pending wait -- so its reads and writes take none of the paths below.  A
socket given a timeout with :meth:`GreenSocket.settimeout` (a PyMySQL
connection that ``greentor_compat.mysql.patch_pymysql()`` put on the bridge,
with ``read_timeout`` / ``write_timeout``) behaves as a blocking socket with
that timeout: a read that waits longer raises :class:`socket.timeout`, and so
does a write whose bytes the kernel has not taken within it (PyMySQL turns
both into its ``OperationalError(2013)``).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable
from typing import Any, Protocol

from tornpool.wire import Wire

__all__ = ["GreenSocket", "TLSContextProxy", "Waits"]

#: Seconds between checks of the transport's write buffer while a write with a
#: timeout waits for the kernel to take its bytes.
DRAIN_POLL = 0.005


class Waits(Protocol):
    """What a :class:`GreenSocket` waits through: the connection's
    :class:`~tornpool.green.GreenWorker`, or any object whose ``wait`` suspends
    the calling greenlet until the awaitable resolves (compat layers)."""

    def wait(self, awaitable: Awaitable[Any]) -> Any: ...


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(socket.timeout("timed out"))


class GreenSocket:
    """Blocking-style socket API over a :class:`Wire`, for the worker greenlet."""

    __slots__ = ("wire", "worker", "timeout")

    def __init__(self, wire: Wire, worker: Waits) -> None:
        self.wire = wire
        self.worker = worker
        self.timeout: float | None = None

    # -- socket API used by PyMySQL ------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        """Set the timeout of each later read and write, as on a blocking
        socket (None: wait as long as it takes; tornpool's connection keeps
        None and arms its own deadline)."""
        self.timeout = timeout

    def makefile(self, mode: str = "rb") -> GreenSocket:
        return self

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``.  Without a timeout this never switches (the
        transport buffers what the kernel does not take at once).  With one,
        it waits -- as a blocking ``sendall`` would -- until the kernel took
        every byte.

        :raises OSError: the connection is gone (PyMySQL turns it into 2006).
        :raises socket.timeout: a timeout is set and the bytes were not
            taken within it.
        """
        self.wire.write(bytes(data) if isinstance(data, bytearray) else data)
        if self.timeout is not None:
            self._drain(self.timeout)

    def read(self, n: int) -> bytes:
        """Return exactly ``n`` bytes, waiting for the network as needed;
        fewer only if the connection closed first."""
        wire = self.wire
        if wire.end - wire.pos < n:
            try:
                self.fill(n)
            except OSError as exc:
                if self.timeout is not None and isinstance(exc, TimeoutError):
                    raise  # as a blocking socket's read raises it
                n = wire.end - wire.pos
        start = wire.pos
        wire.pos = start + n
        data = bytes(wire.view[start : start + n])
        wire.consumed_all()
        return data

    def close(self) -> None:
        self.wire.close()

    # -- buffer ----------------------------------------------------------------

    def fill(self, need: int) -> None:
        """Wait (in the worker) until ``need`` unconsumed bytes are buffered.

        :raises OSError: the connection closed first.
        :raises socket.timeout: a timeout is set and passed first.
        """
        wire = self.wire
        if wire.end - wire.pos < need:
            if self.timeout is None:
                self.worker.wait(wire.wait(need))
            else:
                self._wait_timed(need, self.timeout)

    def _wait_timed(self, need: int, timeout: float) -> None:
        fut = self.wire.wait(need)
        if fut.done():
            fut.result()
            return
        handle = fut.get_loop().call_later(timeout, _expire, fut)
        try:
            self.worker.wait(fut)
        finally:
            handle.cancel()

    def _drain(self, timeout: float) -> None:
        """Wait until the transport's write buffer is empty, for at most
        ``timeout`` seconds (only called with a timeout set)."""
        transport = self.wire.transport
        if transport is None or not transport.get_write_buffer_size():
            return
        deadline = time.monotonic() + timeout
        while transport.get_write_buffer_size() and not transport.is_closing():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out")
            self.worker.wait(asyncio.sleep(min(DRAIN_POLL, remaining)))

    # -- TLS -------------------------------------------------------------------

    def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> GreenSocket:
        """Upgrade the transport to TLS (worker side).  Returns ``self``."""
        self.worker.wait(self.wire.start_tls(context, server_hostname))
        return self


class TLSContextProxy:
    """Stands in for PyMySQL's ``SSLContext`` so that its ``wrap_socket`` call
    upgrades the transport (:meth:`GreenSocket.start_tls`) instead of
    wrapping a blocking socket."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    def wrap_socket(self, sock: GreenSocket, server_hostname: str | None = None) -> GreenSocket:
        return sock.start_tls(self.context, server_hostname)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.context, name)
