"""One asynchronous MySQL/MariaDB connection.

:func:`connect` opens a :class:`Connection`: a TCP (or unix socket) IOStream,
upgraded to TLS when asked, with PyMySQL's protocol code running in the
connection's own worker greenlet (:mod:`tornpool.green`).  Every method that
talks to the server is a coroutine, so it works with ``await`` and with
``yield`` under ``@tornado.gen.coroutine``, on Tornado's IOLoop or on a plain
``asyncio`` loop.

One command runs at a time per connection; a second one issued meanwhile
raises :class:`~tornpool.errors.ConnectionBusy` at once.  A command that
outlives its ``timeout``, or whose caller is cancelled mid-flight, leaves the
protocol in an unknown state, so the connection closes itself (a pool then
replaces it).  The same happens after any error that means the link is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, NoReturn, TypeVar, overload

import pymysql
from pymysql import err
from pymysql.constants import CR, SERVER_STATUS
from tornado.iostream import IOStream, StreamClosedError
from tornado.tcpclient import TCPClient

from tornpool import _pymysql
from tornpool.cursors import Cursor, DictCursor, SSCursor, SSDictCursor, _BaseCursor
from tornpool.dsn import parse_dsn
from tornpool.errors import (
    CommandTimeout,
    ConnectionBusy,
    ConnectionClosed,
    ConnectionLost,
    ConnectTimeout,
    DSNError,
    WrongEventLoop,
)
from tornpool.green import GreenSocket, GreenWorker

__all__ = ["Connection", "connect"]

C = TypeVar("C", bound=_BaseCursor)
T = TypeVar("T")

_CURSOR_CLASSES: dict[Any, type[_BaseCursor]] = {
    None: Cursor,
    pymysql.cursors.Cursor: Cursor,
    pymysql.cursors.DictCursor: DictCursor,
    pymysql.cursors.SSCursor: SSCursor,
    pymysql.cursors.SSDictCursor: SSDictCursor,
}


#: Commands running right now (all connections of the process); a scheduling hint.
_in_flight = 0


def _stream_closed() -> None:
    """IOStream close callback; its presence alone makes the stream notice EOF."""


def _terminate_ref(ref: weakref.ref[Connection]) -> None:
    conn = ref()
    if conn is not None:
        conn.terminate()


async def connect(dsn: str | None = None, **kwargs: Any) -> Connection:
    """Open a connection.

    :param dsn: ``mysql://user:password@host:port/database?param=value``
        (see :mod:`tornpool.dsn`); optional.
    :param kwargs: PyMySQL's connection arguments (``host``, ``port``,
        ``user``, ``password``, ``database``, ``unix_socket``, ``charset``,
        ``ssl_ca``, ``ssl_verify_cert``, ``connect_timeout``, ``autocommit``,
        ``init_command``, ...); they override the DSN's.  ``read_timeout``
        becomes the default ``timeout`` of every command.  ``cursorclass`` may
        be a tornpool or PyMySQL cursor class.
    :returns: (resolves to) an open :class:`Connection`.
    :raises DSNError: malformed DSN or unknown argument.
    :raises OperationalError: the server is unreachable (2003/2002), refused
        the credentials (1045) or the database (1049).
    :raises ConnectTimeout: TCP, TLS and authentication together took longer
        than ``connect_timeout`` (default 10 s).
    """
    conn = Connection(dsn, **kwargs)
    await conn._open()
    return conn


class Connection:
    """An open connection; create it with :func:`connect`.

    Attributes that need no I/O are plain properties (:attr:`closed`,
    :attr:`busy`, :attr:`in_transaction`, :attr:`server_version`, ...).
    """

    def __init__(self, dsn: str | None = None, **kwargs: Any) -> None:
        # Build everything that needs no event loop; _open() does the I/O.
        params = parse_dsn(dsn) if dsn is not None else {}
        params.update(kwargs)
        cursorclass = params.pop("cursorclass", None)
        try:
            self._cursor_class: type[_BaseCursor] = (
                cursorclass
                if isinstance(cursorclass, type) and issubclass(cursorclass, _BaseCursor)
                else _CURSOR_CLASSES[cursorclass]
            )
        except (KeyError, TypeError):
            raise DSNError(f"unsupported cursorclass {cursorclass!r}") from None
        self._command_timeout: float | None = params.pop("read_timeout", None)
        params.pop("write_timeout", None)
        try:
            self._raw = _pymysql.GreenConnection(**params)
        except TypeError as exc:
            raise DSNError(f"bad connection argument: {exc}") from None
        except ValueError as exc:
            raise DSNError(str(exc)) from None
        # The worker must not keep its connection alive (see _drop_worker).
        this = weakref.ref(self)
        self._worker: GreenWorker[Any] = GreenWorker(on_cancel=lambda: _terminate_ref(this))
        self._gsock: GreenSocket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = False
        self._timed_out: float | None = None
        self._closed_by_user = False

    # -- opening ---------------------------------------------------------------

    async def _open(self) -> None:
        raw = self._raw
        self._loop = asyncio.get_running_loop()
        timeout = raw.connect_timeout
        try:
            if timeout:
                await asyncio.wait_for(self._open_transport_and_handshake(), timeout)
            else:
                await self._open_transport_and_handshake()
        except asyncio.TimeoutError:
            self.terminate()
            where = raw.unix_socket or f"{raw.host}:{raw.port}"
            raise ConnectTimeout(
                CR.CR_CONN_HOST_ERROR,
                f"Can't connect to MySQL server on {where!r} (timed out after {timeout}s)",
            ) from None
        except BaseException:
            self.terminate()
            raise

    async def _open_transport_and_handshake(self) -> None:
        raw = self._raw
        stream = await self._open_stream()
        # A close callback makes IOStream watch the idle socket, so a server
        # that hangs up is noticed (``closed`` turns true) before the next
        # command.  It must not reference us: the loop keeps it alive.
        stream.set_close_callback(_stream_closed)
        self._gsock = GreenSocket(stream, self._worker)
        await self._worker.run(raw.connect, self._gsock)

    async def _open_stream(self) -> IOStream:
        raw = self._raw
        if raw.unix_socket:
            path = raw.unix_socket
            stream = IOStream(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            try:
                await stream.connect(path)
            except (OSError, StreamClosedError) as exc:
                stream.close()
                cause = getattr(exc, "real_error", None) or exc
                raise err.OperationalError(
                    2002, f"Can't connect to local MySQL server through socket {path!r} ({cause})"
                ) from None
            return stream
        host, port = raw.host, raw.port
        try:
            try:
                family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
            except ValueError:
                # A name: let Tornado resolve it (off the loop) and try each address.
                stream = await TCPClient().connect(host, port, source_ip=raw.bind_address)
            else:
                stream = IOStream(socket.socket(family, socket.SOCK_STREAM))
                if raw.bind_address:
                    stream.socket.bind((raw.bind_address, 0))
                try:
                    await stream.connect((host, port))
                except BaseException:
                    stream.close()
                    raise
        except (OSError, StreamClosedError) as exc:
            cause = getattr(exc, "real_error", None) or exc
            raise err.OperationalError(
                CR.CR_CONN_HOST_ERROR, f"Can't connect to MySQL server on {host!r} ({cause})"
            ) from None
        stream.set_nodelay(True)
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return stream

    # -- running commands -------------------------------------------------------

    async def _run(self, fn: Callable[..., T], args: tuple[Any, ...], timeout: float | None) -> T:
        """Run ``fn(*args)`` in the worker greenlet under the command rules."""
        if self._busy:
            raise ConnectionBusy(
                0, "another command is running on this connection; one at a time (use a Pool)"
            )
        if self.closed:
            self._raise_closed()
        gsock = self._gsock
        assert gsock is not None
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            raise WrongEventLoop(0, "this connection belongs to another event loop")
        if timeout is None:
            timeout = self._command_timeout
        self._busy = True
        handle = loop.call_later(timeout, self._on_timeout, timeout) if timeout is not None else None
        writes = gsock.writes
        # Yielding a loop turn before reading the reply pays when this is the
        # only command in flight (one loop iteration saved per query); with
        # others in flight the turn is shared anyway and the read handler then
        # runs for nothing, so go straight to read_into.
        global _in_flight
        gsock.yield_first = _in_flight == 0
        _in_flight += 1
        try:
            result: T = await self._worker.run(fn, *args)
            return result
        except err.MySQLError as exc:
            if self._timed_out is not None:
                raise CommandTimeout(
                    CR.CR_SERVER_LOST,
                    f"command timed out after {self._timed_out}s; the connection was closed",
                ) from exc
            if _pymysql.is_fatal(exc):
                self.terminate()
                if isinstance(exc, err.OperationalError) and not isinstance(exc, ConnectionLost):
                    raise ConnectionLost(*exc.args) from exc
            raise
        except BaseException as exc:
            # Not a server error: a converter or the protocol code failed, or the
            # caller was cancelled.  If the command reached the server, its reply
            # may be half read: the connection cannot be trusted any more.
            if self._timed_out is not None:
                raise CommandTimeout(
                    CR.CR_SERVER_LOST,
                    f"command timed out after {self._timed_out}s; the connection was closed",
                ) from exc
            if gsock.writes != writes or isinstance(exc, asyncio.CancelledError):
                self.terminate()
            raise
        finally:
            _in_flight -= 1
            self._busy = False
            if handle is not None:
                handle.cancel()
            if not self._raw.link_open:
                # Closed during the command: end the (now idle) worker greenlet,
                # whose frames the garbage collector could not reclaim.
                self._worker.close()

    def _on_timeout(self, timeout: float) -> None:
        self._timed_out = timeout
        self.terminate()

    def _raise_closed(self) -> NoReturn:
        if self._closed_by_user or self._gsock is None:
            raise ConnectionClosed(0, "connection is closed")
        self.terminate()
        raise ConnectionLost(
            CR.CR_SERVER_GONE_ERROR, "MySQL server has gone away (connection closed while idle)"
        )

    @overload
    async def execute(
        self, query: str, args: Any = ..., *, timeout: float | None = ..., cursor: None = ...
    ) -> Cursor: ...

    @overload
    async def execute(
        self, query: str, args: Any = ..., *, timeout: float | None = ..., cursor: type[C]
    ) -> C: ...

    async def execute(
        self,
        query: str,
        args: Any = None,
        *,
        timeout: float | None = None,
        cursor: type[_BaseCursor] | None = None,
    ) -> _BaseCursor:
        """Run one statement (``%s`` / ``%(name)s`` placeholders, as PyMySQL).

        :param timeout: seconds; on expiry the connection is closed and
            :class:`CommandTimeout` raised.  Defaults to ``read_timeout``.
        :param cursor: cursor class (default: the connection's cursorclass,
            :class:`~tornpool.cursors.Cursor`).
        :returns: (resolves to) the cursor; buffered cursors hold every row.
        :raises ProgrammingError, IntegrityError, ...: the server's error.
        :raises ConnectionBusy: another command is running.
        :raises ConnectionLost: the link broke (the connection is closed).
        """
        cls = cursor or self._cursor_class
        raw = self._raw.cursor(cls._raw_class)
        await self._run(raw.execute, (query, args), timeout)
        return cls(self, raw)

    async def executemany(
        self,
        query: str,
        seq_of_args: Iterable[Any],
        *,
        timeout: float | None = None,
        cursor: type[_BaseCursor] | None = None,
    ) -> _BaseCursor:
        """Run ``query`` once per parameter set (PyMySQL batches ``INSERT ...
        VALUES`` into multi-row statements).

        :returns: (resolves to) the cursor; ``rowcount`` is the total.
        """
        cls = cursor or self._cursor_class
        raw = self._raw.cursor(cls._raw_class)
        await self._run(raw.executemany, (query, list(seq_of_args)), timeout)
        return cls(self, raw)

    async def callproc(
        self,
        procname: str,
        args: Sequence[Any] = (),
        *,
        timeout: float | None = None,
        cursor: type[_BaseCursor] | None = None,
    ) -> _BaseCursor:
        """Call a stored procedure (PyMySQL semantics: parameters are in
        ``@_procname_n`` server variables; result sets via ``nextset``).

        :returns: (resolves to) the cursor positioned on the first result set.
        """
        cls = cursor or self._cursor_class
        raw = self._raw.cursor(cls._raw_class)
        await self._run(raw.callproc, (procname, tuple(args)), timeout)
        return cls(self, raw)

    async def ping(self, *, timeout: float | None = None) -> None:
        """Round trip to the server (COM_PING).

        :raises ConnectionLost: the server did not answer (connection closed).
        """
        await self._run(self._raw.ping, (False,), timeout)

    async def begin(self, *, timeout: float | None = None) -> None:
        """Start a transaction."""
        await self._run(self._raw.begin, (), timeout)

    async def commit(self, *, timeout: float | None = None) -> None:
        """Commit the current transaction."""
        await self._run(self._raw.commit, (), timeout)

    async def rollback(self, *, timeout: float | None = None) -> None:
        """Roll back the current transaction."""
        await self._run(self._raw.rollback, (), timeout)

    async def autocommit(self, value: bool, *, timeout: float | None = None) -> None:
        """Turn autocommit on or off."""
        await self._run(self._raw.autocommit, (value,), timeout)

    async def select_db(self, database: str, *, timeout: float | None = None) -> None:
        """Change the default database."""
        await self._run(self._raw.select_db, (database,), timeout)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """``async with conn.transaction():`` -- BEGIN, then COMMIT if the
        block succeeds or ROLLBACK if it raises (the exception propagates).
        If the connection is lost the rollback is skipped: the server rolls
        back a transaction whose connection drops."""
        await self.begin()
        try:
            yield self
        except BaseException:
            if not self.closed:
                try:
                    await self.rollback()
                except Exception:
                    self.terminate()
            raise
        await self.commit()

    def escape(self, value: Any) -> str:
        """Escape ``value`` as an SQL literal (no I/O)."""
        return self._raw.escape(value)  # type: ignore[no-any-return]

    def mogrify(self, query: str, args: Any = None) -> str:
        """The statement :meth:`execute` would send for ``query`` and ``args``."""
        return self._raw.cursor().mogrify(query, args)  # type: ignore[no-any-return]

    # -- state -----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once closed by :meth:`close`/:meth:`terminate`, a timeout, a
        cancellation mid-command, a fatal error, or by the server."""
        gsock = self._gsock
        return gsock is None or not self._raw.link_open or gsock.stream.closed()


    @property
    def busy(self) -> bool:
        """True while a command is running."""
        return self._busy

    @property
    def in_transaction(self) -> bool:
        """True if the server reported an open transaction."""
        return bool(self._raw.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)

    @property
    def has_unread_result(self) -> bool:
        """True if a streaming result is unfinished or result sets are pending."""
        return self._raw.unread_result

    @property
    def server_version(self) -> str:
        """The server's version string, e.g. ``10.11.6-MariaDB``."""
        return self._raw.server_version  # type: ignore[no-any-return]

    @property
    def thread_id(self) -> int:
        """The server's id for this connection (``CONNECTION_ID()``)."""
        thread_id: int = self._raw.thread_id()
        return thread_id

    @property
    def raw(self) -> pymysql.connections.Connection:
        """The underlying PyMySQL connection (for inspection; do not run
        commands on it directly)."""
        return self._raw

    # -- closing ---------------------------------------------------------------

    async def close(self) -> None:
        """Close gracefully (COM_QUIT when idle); a no-op if already closed.
        A command still running is aborted (its caller gets ConnectionLost)."""
        self._closed_by_user = True
        if self._busy:
            self.terminate()
            return
        if not self.closed:
            with contextlib.suppress(Exception):
                self._raw.close()  # writes COM_QUIT without waiting, then closes
        self.terminate()

    def terminate(self) -> None:
        """Close at once, without COM_QUIT.  Safe to call at any time."""
        self._raw.drop()
        if self._gsock is not None:
            self._gsock.close()
        if not self._busy:
            self._worker.close()

    def __del__(self) -> None:
        # A connection dropped without close(): release the socket and end the
        # worker greenlet (possible here because the worker holds only a weak
        # reference to us).
        try:
            self.terminate()  # idempotent; also ends the worker of a closed one
        except Exception:  # noqa: BLE001 - nothing useful to do at collection time
            pass

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("busy" if self._busy else "idle")
        raw = self._raw
        where = raw.unix_socket or f"{raw.host}:{raw.port}"
        return f"<tornpool.Connection {where} {state}>"
