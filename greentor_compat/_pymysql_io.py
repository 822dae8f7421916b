"""The one module of greentor_compat that touches PyMySQL internals.

:func:`bridge_connect` replaces ``pymysql.connections.Connection.connect``
while :func:`greentor_compat.mysql.patch_pymysql` is active.  Called inside a
greenlet that may wait, with no socket of the caller's, it opens an
:class:`~greentor_compat._socket.AsyncSocket` through the event loop and runs
PyMySQL's own ``connect(sock)`` over it -- the handshake, authentication, TLS
(through :class:`tornpool.green.TLSContextProxy`), ``SET NAMES``,
``init_command`` and ``autocommit`` all unchanged.  Anywhere else (no
greenlet, a plain greenlet, a socket the caller made) it is PyMySQL's own
``connect``.

PyMySQL's private names used here, all in the tested range (setup.py pins
``PyMySQL>=1.1.1,<1.3``): ``Connection._secure``, ``_sock``, ``_result``
(and its ``unbuffered_active``), ``_force_close``, ``_read_timeout``,
``_current_timeout`` (1.2.1+); public attributes set as PyMySQL's own
``connect`` sets them: ``host_info``, ``ctx``.
"""

from __future__ import annotations

import ssl
import traceback
from typing import Any

from pymysql import connections as _conns
from pymysql import err
from pymysql.constants import CR, SERVER_STATUS
from tornpool.green import TLSContextProxy

from greentor_compat import _waiting
from greentor_compat._socket import AsyncSocket

__all__ = [
    "ORIGINAL_CONNECT",
    "bridge_connect",
    "connect_over_bridge",
    "bridged_socket",
    "has_unread_result",
    "in_transaction",
    "force_close",
    "ping",
    "server_thread_id",
]

#: PyMySQL's own ``Connection.connect``, captured before any patch.
ORIGINAL_CONNECT = _conns.Connection.connect


def bridge_connect(conn: Any, sock: Any = None) -> None:
    """``Connection.connect`` while patched: over the bridge inside a greenlet
    that may wait, PyMySQL's own connect anywhere else."""
    if sock is None and _waiting.can_wait():
        connect_over_bridge(conn)
    else:
        ORIGINAL_CONNECT(conn, sock)


def connect_over_bridge(conn: Any) -> None:
    """Open ``conn`` (a PyMySQL connection made with ``defer_connect`` or
    closed) through the event loop; waits in the calling greenlet.

    :raises OperationalError: 2003, as PyMySQL raises it, when the socket
        cannot be opened; else whatever PyMySQL's handshake raises.
    """
    try:
        if conn.unix_socket:
            sock = AsyncSocket.open(unix_socket=conn.unix_socket, timeout=conn.connect_timeout)
        else:
            sock = AsyncSocket.open(conn.host, conn.port, timeout=conn.connect_timeout,
                                    bind_address=conn.bind_address)
    except OSError as exc:
        error = err.OperationalError(
            CR.CR_CONN_HOST_ERROR, f"Can't connect to MySQL server on {conn.host!r} ({exc})")
        # as PyMySQL keeps them, for investigation
        error.original_exception = exc
        error.traceback = traceback.format_exc()
        raise error from None
    if conn.unix_socket:
        conn.host_info = "Localhost via UNIX socket"
        conn._secure = True  # a local channel, as PyMySQL treats its own unix sockets
    else:
        conn.host_info = "socket %s:%d" % (conn.host, conn.port)
    sock.settimeout(conn._read_timeout)
    conn._current_timeout = conn._read_timeout  # PyMySQL 1.2.1+ tracks the socket's timeout
    ctx = getattr(conn, "ctx", None)
    if isinstance(ctx, ssl.SSLContext):
        conn.ctx = TLSContextProxy(ctx)  # wrap_socket() upgrades the transport in place
        try:
            ORIGINAL_CONNECT(conn, sock)
        finally:
            conn.ctx = ctx
    else:
        ORIGINAL_CONNECT(conn, sock)


def bridged_socket(conn: Any) -> AsyncSocket | None:
    """The :class:`AsyncSocket` under ``conn``, if it is on the bridge."""
    sock = getattr(conn, "_sock", None)
    return sock if isinstance(sock, AsyncSocket) else None


def has_unread_result(conn: Any) -> bool:
    """A streaming (``SSCursor``) result is not read to its end."""
    result = getattr(conn, "_result", None)
    return result is not None and bool(result.unbuffered_active)


def in_transaction(conn: Any) -> bool:
    """The server said, in its last reply, that a transaction is open."""
    return bool(conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)


def force_close(conn: Any) -> None:
    """Drop ``conn``'s socket at once, without ``COM_QUIT``.  A streaming
    result it was reading is marked finished first, so that the cursor's and
    the result's finalizers (PyMySQL reads the rest of the result there) do
    no I/O on the dropped socket: their stream just ends."""
    result = getattr(conn, "_result", None)
    if result is not None:
        result.unbuffered_active = False
        result.has_next = False
    if conn._sock is not None:
        conn._force_close()


def ping(conn: Any) -> None:
    """``COM_PING`` without reconnecting, on every PyMySQL in the range
    (1.1's ``ping()`` reconnects by default, 1.2 deprecates the argument).

    :raises pymysql.err.Error: the connection is closed or broken.
    """
    conn.ping(False)


def server_thread_id(conn: Any) -> int | None:
    """The server's id for ``conn`` (``CONNECTION_ID()``), once connected."""
    ids = getattr(conn, "server_thread_id", None)
    return int(ids[0]) if ids else None
