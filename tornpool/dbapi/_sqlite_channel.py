"""A message channel over one end of a Unix socket pair.

Each message is an 8-byte big-endian length and the payload.  Small
messages go out in one ``send`` (so a reader that wakes up finds the whole
message).
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

    Reads go through a small buffer: one ``recv`` usually brings a whole
    reply (one system call instead of two); bytes of a following message
    stay buffered for the next :meth:`recv` -- :meth:`buffered` says whether
    a whole one is there, since the socket will not signal it again.

    :raises EOFError: (from :meth:`recv`) the peer closed its end.
    :raises OSError: (from :meth:`send`) the peer is gone (``BrokenPipeError``).
    """

    __slots__ = ("sock", "_buf")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self.sock = sock
        self._buf = bytearray()

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

    def buffered(self) -> bool:
        """True if a whole message is already buffered."""
        buf = self._buf
        return len(buf) >= _HEADER.size and len(buf) >= _HEADER.size + _HEADER.unpack_from(buf)[0]

    def recv(self) -> bytearray:
        """Read one whole message (blocks until it is complete)."""
        buf = self._buf
        head = _HEADER.size
        while True:
            if len(buf) >= head:
                (size,) = _HEADER.unpack_from(buf)
                end = head + size
                if len(buf) >= end:
                    msg = buf[head:end]
                    del buf[:end]
                    return msg
                if size > _COALESCE:  # large: read the rest straight into place
                    return self._rest(size)
            chunk = self.sock.recv(_COALESCE)
            if not chunk:
                raise EOFError("the peer closed the channel")
            buf += chunk

    def _rest(self, size: int) -> bytearray:
        buf = self._buf
        msg = bytearray(size)
        got = len(buf) - _HEADER.size
        msg[:got] = buf[_HEADER.size:]
        buf.clear()
        view = memoryview(msg)
        while got < size:
            n = self.sock.recv_into(view[got:], size - got, socket.MSG_WAITALL)
            if n == 0:
                raise EOFError("the peer closed the channel")
            got += n
        return msg

    def close(self) -> None:
        self.sock.close()
