"""A message channel over one end of a Unix socket pair.

Each message is an 8-byte big-endian length and the payload.  Small
messages go out in one ``send`` (so a reader that wakes up finds the whole
message); reads take exactly one message, never a byte of the next.
Both the proxy and its workers use it; it knows nothing about SQLite.
"""

from __future__ import annotations

import socket
import struct

__all__ = ["Channel"]

_HEADER = struct.Struct("!Q")
#: payloads up to this size are sent together with their header
_COALESCE = 1 << 16


class Channel:
    """Blocking, message-framed I/O on ``sock`` (owned: :meth:`close` closes it).

    :raises EOFError: (from :meth:`recv`) the peer closed its end.
    :raises OSError: (from :meth:`send`) the peer is gone (``BrokenPipeError``).
    """

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes) -> None:
        """Write one message (blocks until the kernel took all of it)."""
        header = _HEADER.pack(len(data))
        if len(data) <= _COALESCE:
            self.sock.sendall(header + data)
        else:
            self.sock.sendall(header)
            self.sock.sendall(data)

    def recv(self) -> bytearray:
        """Read one whole message (blocks until it is complete)."""
        (size,) = _HEADER.unpack(self._exactly(_HEADER.size))
        return self._exactly(size)

    def _exactly(self, size: int) -> bytearray:
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = self.sock.recv_into(view[got:], size - got, socket.MSG_WAITALL)
            if n == 0:
                raise EOFError("the peer closed the channel")
            got += n
        return buf

    def close(self) -> None:
        self.sock.close()
