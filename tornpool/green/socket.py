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

Timeouts are not enforced here: the connection arms one deadline per command
and closes the transport when it passes, which fails the pending wait.
"""

from __future__ import annotations

import ssl
from typing import Any

from tornpool.green.worker import GreenWorker
from tornpool.wire import Wire

__all__ = ["GreenSocket", "TLSContextProxy"]


class GreenSocket:
    """Blocking-style socket API over a :class:`Wire`, for the worker greenlet."""

    __slots__ = ("wire", "worker", "timeout")

    def __init__(self, wire: Wire, worker: GreenWorker[Any]) -> None:
        self.wire = wire
        self.worker = worker
        self.timeout: float | None = None

    # -- socket API used by PyMySQL ------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        """Record PyMySQL's timeout; deadlines are enforced by the connection."""
        self.timeout = timeout

    def makefile(self, mode: str = "rb") -> GreenSocket:
        return self

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``; never switches.

        :raises OSError: the connection is gone (PyMySQL turns it into 2006).
        """
        self.wire.write(bytes(data) if isinstance(data, bytearray) else data)

    def read(self, n: int) -> bytes:
        """Return exactly ``n`` bytes, waiting for the network as needed;
        fewer only if the connection closed first."""
        wire = self.wire
        if wire.end - wire.pos < n:
            try:
                self.fill(n)
            except OSError:
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
        """
        wire = self.wire
        if wire.end - wire.pos < need:
            self.worker.wait(wire.wait(need))

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
