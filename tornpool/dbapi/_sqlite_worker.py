"""The worker process of the SQLite proxy: one sqlite3 connection, one loop.

:func:`main` is what the worker's interpreter runs (see
:mod:`tornpool.dbapi._sqlite_handle`).  It reads its
:class:`~tornpool.dbapi._sqlite_protocol.WorkerSpec` from the channel,
opens the connection, sends ``ST_READY`` (or ``ST_BOOT_ERR``), then answers
one request at a time until it reads ``OP_CLOSE`` or the channel closes
(the proxy went away).  What a request does is
:class:`~tornpool.dbapi._sqlite_session.Session`'s business; this module
only moves pickled requests and replies.
"""

from __future__ import annotations

import os
import signal
import socket
from ._sqlite_channel import Channel
from ._sqlite_protocol import OP_CLOSE, ST_BOOT_ERR, ST_ERR, ST_READY, Reply, WorkerSpec, decode, encode_reply
from ._sqlite_session import Session, error_payload, open_connection

__all__ = ["main", "serve"]


def _frame(reply: Reply) -> bytes:
    """A batch member's reply, framed for the proxy (it unpickles its own)."""
    return encode_reply(*reply)


def main(fd: int) -> None:
    """Entry point of a worker process: ``fd`` is its end of the socket pair."""
    # Ctrl-C reaches the whole process group; the proxy decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = Channel(socket.socket(fileno=fd))
    try:
        try:
            spec = decode(channel.recv())
        except EOFError:
            return
        except Exception as exc:  # e.g. an initializer this process cannot import
            channel.send(encode_reply(ST_BOOT_ERR, error_payload(exc)))
            return
        serve(channel, spec)
    finally:
        channel.close()


def serve(channel: Channel, spec: WorkerSpec) -> None:
    """Open the connection ``spec`` describes and answer requests on
    ``channel`` until ``OP_CLOSE`` or end of file."""
    try:
        db, guard = open_connection(spec)
    except Exception as exc:
        channel.send(encode_reply(ST_BOOT_ERR, error_payload(exc)))
        return
    channel.send(encode_reply(ST_READY, os.getpid()))
    session = Session(db, guard, decode, _frame)
    try:
        while True:
            try:
                data = channel.recv()
            except (EOFError, OSError):
                break
            try:
                request = decode(data)
            except Exception as exc:
                reply: Reply = (ST_ERR, ("Unpicklable", "the parameters cannot be unpickled "
                                         "in the worker: %s" % (exc,), None, None))
            else:
                if request[0] == OP_CLOSE:
                    break
                reply = session.handle(request)
            try:
                out = encode_reply(*reply)
            except Exception as exc:
                out = encode_reply(ST_ERR, ("InternalError", "the result cannot be pickled: %s"
                                            % (exc,), None, None))
            channel.send(out)
    finally:
        db.close()
