"""One asynchronous MySQL/MariaDB connection.

:func:`connect` opens a :class:`Connection`: a TCP (or unix socket) transport
owned by a :class:`~tornpool.wire.Wire`, upgraded to TLS when asked, with
PyMySQL's handshake running in the connection's worker greenlet.  Afterwards
the common statements take the *fast path* (:mod:`tornpool.fastpath`): the
command is written straight to the socket and the reply parsed by the codec
as it arrives, with no PyMySQL object and no greenlet switch.  The *greenlet
path* (:mod:`tornpool.green_path`) runs the rest in PyMySQL:
``executemany``, ``callproc``, streaming cursors, ``LOAD DATA LOCAL``.

Every method that talks to the server returns an awaitable (a Future or a
coroutine), so it works with ``await`` and with ``yield`` under
``@tornado.gen.coroutine``, on Tornado's IOLoop or on a plain ``asyncio``
loop.  A connection belongs to the loop that opened it: using it from
another raises :class:`~tornpool.errors.WrongEventLoop` at once.

One command runs at a time per connection; a second one issued meanwhile
fails with :class:`~tornpool.errors.ConnectionBusy`.  A command that outlives
its ``timeout``, or whose caller is cancelled mid-flight, leaves the server
busy with a statement whose outcome nobody reads, so the connection closes
itself (a pool then replaces it and has the server drop the old one).  The
same happens after any error that means the link is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from pymysql import err
from pymysql.constants import CR, SERVER_STATUS

from tornpool import _pymysql, codec
from tornpool.commands import (
    COM_INIT_DB,
    COM_PING,
    COM_QUERY,
    Command,
    CommandFuture,
    FutureStatement,
    Reply,
    Statement,
)
from tornpool.cursors import Cursor, SSCursor, cursor_class_for
from tornpool.dsn import parse_dsn
from tornpool.errors import (
    ConnectionBusy,
    ConnectionClosed,
    ConnectionLost,
    ConnectTimeout,
    DSNError,
    WrongEventLoop,
    command_timeout,
)
from tornpool.fastpath import FastPath
from tornpool.green import GreenSocket, GreenWorker
from tornpool.green_path import GreenPath
from tornpool.session import TRACKING_ON, SessionKeeper
from tornpool.wire import Wire

__all__ = ["Connection", "connect"]

AnyCursor = Cursor | SSCursor
COM_QUIT = 0x01
_build_command = codec.build_command
_get_ident = threading.get_ident


async def connect(dsn: str | None = None, **kwargs: Any) -> Connection:
    """Open a connection.

    :param dsn: ``mysql://user:password@host:port/database?param=value``
        (see :mod:`tornpool.dsn`); optional.
    :param kwargs: PyMySQL's connection arguments (``host``, ``port``,
        ``user``, ``password``, ``database``, ``unix_socket``, ``charset``,
        ``ssl_ca``, ``ssl_verify_cert``, ``connect_timeout``, ``autocommit``,
        ``init_command``, ...); they override the DSN's.  ``read_timeout``
        becomes the default ``timeout`` of every command.  ``cursorclass`` may
        be a tornpool or PyMySQL cursor class.  ``session_track=False`` does
        not ask the server to flag session-state changes.
    :returns: (resolves to) an open :class:`Connection`.
    :raises DSNError: malformed DSN or unknown argument.
    :raises OperationalError: the server is unreachable (2003/2002), refused
        the credentials (1045) or the database (1049).
    :raises ConnectTimeout: TCP, TLS and authentication together took longer
        than ``connect_timeout`` (default 10 s).
    """
    conn = Connection(dsn, **kwargs)
    await conn.open()
    return conn


def _weak(method: Callable[..., Any]) -> Callable[..., Any]:
    """A callback that calls ``method`` while its object lives (the wire, the
    fast path and the greenlet path must not keep their connection alive, so
    that a dropped connection is collected and closed)."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> Any:
        bound = ref()
        return None if bound is None else bound(*args)

    return call


class Connection:
    """An open connection; create it with :func:`connect`.

    Attributes that need no I/O are plain properties (:attr:`closed`,
    :attr:`busy`, :attr:`in_transaction`, :attr:`server_version`, ...).
    """

    def __init__(self, dsn: str | None = None, **kwargs: Any) -> None:
        # Build everything that needs no event loop; open() does the I/O.
        params = parse_dsn(dsn) if dsn is not None else {}
        params.update(kwargs)
        try:
            self._cursor_class: type[AnyCursor] = cursor_class_for(params.pop("cursorclass", None))
        except err.InterfaceError as exc:
            raise DSNError(str(exc)) from None
        command_timeout: float | None = params.pop("read_timeout", None)
        params.pop("write_timeout", None)
        self._tracking_asked = bool(params.pop("session_track", True))
        if self._tracking_asked:
            params["client_flag"] = params.get("client_flag", 0) | _pymysql.CLIENT_SESSION_TRACK
        try:
            self._raw = _pymysql.GreenConnection(**params)
        except TypeError as exc:
            raise DSNError(f"bad connection argument: {exc}") from None
        except ValueError as exc:
            raise DSNError(str(exc)) from None
        raw = self._raw
        self._command_timeout = command_timeout
        self._wire = wire = Wire()
        self._worker: GreenWorker[Any] = GreenWorker(on_cancel=_weak(self.terminate))
        self._gsock = GreenSocket(wire, self._worker)
        self._fp = fp = FastPath(wire, raw, _weak(self._fatal), _weak(self._handoff))
        self._green = GreenPath(raw, wire, fp, self._worker, _weak(self._problem),
                                _weak(self.terminate), _weak(self._abandon), command_timeout)
        self._mogrifier = raw.cursor()
        self._encoding: str = raw.encoding
        #: The session as a pool sees it (changed? restore it).
        self.session = SessionKeeper(fp, _weak(self._writable), _weak(self._fatal))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._opened = False
        self._closed_by_user = False
        self._timed_out: float | None = None
        #: Closed with a command in flight: the server may still be running
        #: it (a pool has such connections reaped before it stops counting them).
        self.abandoned = False

    # -- opening ---------------------------------------------------------------

    async def open(self) -> None:
        """Open the transport, authenticate, prepare the session.  Called by
        :func:`connect`.

        :raises OperationalError, ConnectTimeout: see :func:`connect`.
        :raises InterfaceError: opened already.
        """
        if self._loop is not None:
            raise err.InterfaceError(0, "this connection was opened already")
        raw = self._raw
        self._loop = asyncio.get_running_loop()
        self._thread = _get_ident()
        timeout = raw.connect_timeout
        try:
            if timeout:
                await asyncio.wait_for(self._open_and_handshake(), timeout)
            else:
                await self._open_and_handshake()
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

    async def _open_and_handshake(self) -> None:
        raw, wire, fp = self._raw, self._wire, self._fp
        await self._open_transport()
        await self._worker.run(raw.connect, self._gsock)
        self._opened = True
        wire.consumer = fp.on_data
        wire.on_lost = _weak(self._lost)
        fp.note_status(raw.server_status)
        tracking = self._tracking_asked and bool(
            raw.server_capabilities & _pymysql.CLIENT_SESSION_TRACK
        )
        if tracking:
            try:
                await self._simple(COM_QUERY, TRACKING_ON.encode(), None)
            except err.MySQLError:
                tracking = False  # a server without the tracker variable
        self.session.opened(raw, tracking)
        await self.mark_baseline()

    async def _open_transport(self) -> None:
        raw = self._raw
        path = raw.unix_socket
        try:
            await self._wire.open(raw.host, raw.port, path,
                                  (raw.bind_address, 0) if raw.bind_address else None)
        except OSError as exc:
            if path:
                raise err.OperationalError(
                    2002, f"Can't connect to local MySQL server through socket {path!r} ({exc})"
                ) from None
            raise err.OperationalError(
                CR.CR_CONN_HOST_ERROR, f"Can't connect to MySQL server on {raw.host!r} ({exc})"
            ) from None

    async def setup_session(self, statements: Sequence[str | tuple[str, Any]]) -> None:
        """Run ``statements`` (strings, or ``(sql, args)`` pairs) and make them
        part of the session baseline that a session reset restores.
        Resolves to None.

        :raises MySQLError: a statement failed (the baseline is unchanged).
        """
        sqls = []
        for stmt in statements:
            sql = stmt if isinstance(stmt, str) else self.mogrify(stmt[0], stmt[1])
            await self.execute(sql)
            sqls.append(sql)
        self.session.add(sqls)
        await self.mark_baseline()

    async def mark_baseline(self) -> None:
        """Declare the current session state the baseline: a ``COM_PING``
        (which also clears the server's stale state-change flag), after which
        the connection counts as clean.  Resolves to None."""
        await self._simple(COM_PING, b"", None)
        self._fp.mark_clean()

    # -- rules for a new command ---------------------------------------------------------

    def _home(self) -> asyncio.AbstractEventLoop:
        """The connection's loop, if the caller runs on it.

        A thread runs one loop at a time, so "our loop is running, in the
        thread that opened us" proves the caller is on it -- without
        ``asyncio.get_running_loop()``, which costs a ``getpid()`` system call.

        :raises WrongEventLoop: called from another loop or thread.
        :raises ConnectionClosed: never opened.
        """
        loop = self._loop
        if loop is not None and self._thread == _get_ident() and loop.is_running():
            return loop
        if loop is None:
            raise ConnectionClosed(0, "connection is not open (use tornpool.connect())")
        raise WrongEventLoop(0, "this connection belongs to another event loop")

    def _problem(self, continuation: bool = False) -> BaseException | None:
        """Why a new command cannot start now, or None.  A continuation of a
        stream may run while the stream keeps the connection busy."""
        try:
            self._home()
        except (WrongEventLoop, ConnectionClosed) as exc:
            return exc
        if (self._green.busy or self._fp.user_busy) and not continuation:
            return ConnectionBusy(
                0, "another command is running on this connection; one at a time (use a Pool)"
            )
        if self.closed:
            if self._closed_by_user or not self._opened:
                return ConnectionClosed(0, "connection is closed")
            return ConnectionLost(
                CR.CR_SERVER_GONE_ERROR, "MySQL server has gone away (connection closed while idle)"
            )
        return None

    # -- the fast path ----------------------------------------------------------

    def statement_packet(self, query: str | bytes, args: Any) -> tuple[bytes, int]:
        """Low-level: the ``COM_QUERY`` packet for ``query`` formatted with
        ``args`` as PyMySQL formats them, and its reply's sequence id.

        :raises ProgrammingError: ``args`` do not fit the placeholders.
        """
        if args is not None:
            query = self._mogrifier.mogrify(query, args)
        if isinstance(query, str):
            # as PyMySQL's Connection.query: escaped bytes arguments come back
            # as surrogates
            query = query.encode(self._encoding, "surrogateescape")
        return codec.build_command(COM_QUERY, query)

    def run_statement(self, cmd: Statement, timeout: float | None = None) -> None:
        """Low-level (for pools): send a :class:`~tornpool.commands.Statement`
        whose packet :meth:`statement_packet` built.  Its outcome -- a busy or
        closed connection included -- arrives through the command's
        ``resolve``, synchronously from the event loop's read callback."""
        fp = self._fp
        if (fp.current is None and not fp.queue and fp.more_seq is None and timeout is None
                and self._command_timeout is None and not self._green.busy
                and not self._green.streaming and not self._wire.dead and self._opened
                and self._thread == _get_ident()):
            fp.submit(cmd)  # the usual case, checked in one go: idle, open, no deadline
            return
        problem = self._problem()
        if problem is not None:
            cmd.resolve(None, problem)
        else:
            self._send(cmd, timeout)

    def cancel_command(self, cmd: Command) -> None:
        """Low-level: the caller of ``cmd`` gave up.  Not yet written: it is
        dropped.  In flight: the connection closes (the server is still on
        it; a pool then has it reaped)."""
        self._fp.cancel(cmd)

    def _send(self, cmd: Command, timeout: float | None) -> None:
        if timeout is None:
            timeout = self._command_timeout
        if timeout is not None:
            cmd.timer = self._loop.call_later(  # type: ignore[union-attr]
                timeout, _weak(self._expire), cmd, timeout)
        if self._green.streaming:
            # a stream left unfinished is read to its end first
            asyncio.ensure_future(self._green.finish_stream_then(
                lambda: self._fp.submit(cmd), lambda exc: cmd.fail(exc, False)))
        else:
            self._fp.submit(cmd)

    def _start(self, cmd: FutureStatement, timeout: float | None) -> CommandFuture[Any]:
        fut = cmd.future
        problem = self._problem()
        if problem is not None:
            fut.set_exception(problem)
        else:
            fut.attach(self, cmd)
            self._send(cmd, timeout)
        return fut

    def execute(
        self,
        query: str | bytes,
        args: Any = None,
        *,
        timeout: float | None = None,
        cursor: type[Any] | None = None,
    ) -> asyncio.Future[Any]:
        """Run one statement (``%s`` / ``%(name)s`` placeholders, as PyMySQL).

        :param timeout: seconds; on expiry the connection is closed and
            :class:`CommandTimeout` raised.  Defaults to ``read_timeout``.
        :param cursor: cursor class (default: the connection's cursorclass,
            :class:`~tornpool.cursors.Cursor`); tornpool's or PyMySQL's.
        :returns: (resolves to) the cursor; buffered cursors hold every row.
        :raises ProgrammingError, IntegrityError, ...: the server's error.
        :raises ConnectionBusy: another command is running.
        :raises ConnectionLost: the link broke (the connection is closed).
        :raises WrongEventLoop: called from another event loop (at once).
        """
        return self.execute_on(query, args, timeout, cursor, self)

    def execute_on(self, query: str | bytes, args: Any, timeout: float | None,
                   cursor: type[Any] | None, handle: Any) -> asyncio.Future[Any]:
        """:meth:`execute` with the cursor's handle given: a pool lease passes
        itself, so that its cursors die with the lease."""
        loop = self._loop
        if loop is None or self._thread != _get_ident() or not loop.is_running():
            loop = self._home()  # raises
        fut: CommandFuture[Any] = CommandFuture(loop=loop)
        try:
            cls = self._cursor_class if cursor is None else cursor_class_for(cursor)
            if cls.streaming:
                return asyncio.ensure_future(
                    self._green.execute_streaming(query, args, timeout, cls, handle))
            if args is not None:
                query = self._mogrifier.mogrify(query, args)
            if isinstance(query, str):
                query = query.encode(self._encoding, "surrogateescape")
            packet, seq = _build_command(COM_QUERY, query)
        except Exception as exc:
            fut.set_exception(exc)
            return fut
        cmd = FutureStatement(packet, seq, cls, handle, fut)
        fp = self._fp
        if (fp.current is None and not fp.queue and fp.more_seq is None and timeout is None
                and self._command_timeout is None and not self._green.busy
                and not self._green.streaming and not self._wire.dead and self._opened):
            # The usual case, checked in one go: idle, open, no deadline.
            fut._canceller = self
            fut._cmd = cmd
            fp.submit(cmd)
            return fut
        return self._start(cmd, timeout)

    def _simple(self, command: int, payload: bytes, timeout: float | None) -> asyncio.Future[None]:
        """A command whose reply is an OK packet; resolves to None."""
        fut: CommandFuture[None] = CommandFuture(loop=self._home())
        packet, seq = codec.build_command(command, payload)
        return self._start(FutureStatement(packet, seq, None, self, fut), timeout)

    def next_result(self, owner: object) -> asyncio.Future[Reply | None]:
        """Read the next result set of the statement that made the cursor
        ``owner``, if it announced one and nothing ran since.  Resolves to its
        :class:`~tornpool.commands.Reply`, or None.

        :raises MySQLError: that result set is the error of a later statement.
        """
        fut: CommandFuture[Reply | None] = CommandFuture(loop=self._home())
        fp = self._fp
        if fp.more_seq is None or fp.more_owner is not owner:
            fut.set_result(None)
            return fut
        problem = self._problem()
        if problem is not None:
            fut.set_exception(problem)
            return fut
        cmd = FutureStatement(b"", 0, Reply, owner, fut)
        fut.attach(self, cmd)
        fp.read_more(cmd)
        return fut

    def ping(self, *, timeout: float | None = None) -> asyncio.Future[None]:
        """Round trip to the server (``COM_PING``); resolves to None.

        :raises ConnectionLost: the server did not answer (connection closed).
        """
        return self._simple(COM_PING, b"", timeout)

    def begin(self, *, timeout: float | None = None) -> asyncio.Future[None]:
        """Start a transaction; resolves to None."""
        return self._simple(COM_QUERY, b"BEGIN", timeout)

    def commit(self, *, timeout: float | None = None) -> asyncio.Future[None]:
        """Commit the current transaction; resolves to None."""
        return self._simple(COM_QUERY, b"COMMIT", timeout)

    def rollback(self, *, timeout: float | None = None) -> asyncio.Future[None]:
        """Roll back the current transaction; resolves to None."""
        return self._simple(COM_QUERY, b"ROLLBACK", timeout)

    def autocommit(self, value: bool, *, timeout: float | None = None) -> asyncio.Future[None]:
        """Turn autocommit on or off (as PyMySQL: only if it differs from the
        server's current mode); resolves to None."""
        value = bool(value)
        current = bool(self._fp.status & SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT)
        if value == current and self._problem() is None:
            fut: asyncio.Future[None] = CommandFuture(loop=self._home())
            fut.set_result(None)
            return fut
        return self._simple(COM_QUERY, b"SET AUTOCOMMIT = %d" % int(value), timeout)

    def select_db(self, database: str, *, timeout: float | None = None) -> asyncio.Future[None]:
        """Change the default database (``COM_INIT_DB``); resolves to None."""
        return self._simple(COM_INIT_DB, database.encode(self._encoding), timeout)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """``async with conn.transaction():`` -- BEGIN, then COMMIT if the
        block succeeds or ROLLBACK if it raises (the exception propagates);
        see :mod:`tornpool.scope`."""
        from tornpool.scope import transaction_scope

        async with transaction_scope(self):
            yield self

    def cursor(self, cursorclass: Any = None) -> Any:
        """A DB-API cursor (``await cur.execute(...)``, ``await cur.fetchall()``,
        ``async with conn.cursor() as cur``); see :mod:`tornpool.async_cursor`."""
        from tornpool.async_cursor import AsyncCursor

        return AsyncCursor(self, self._cursor_class if cursorclass is None else cursorclass)

    # -- the greenlet path ---------------------------------------------------------------

    async def executemany(
        self,
        query: str,
        seq_of_args: Iterable[Any],
        *,
        timeout: float | None = None,
        cursor: type[Any] | None = None,
        handle: Any = None,
    ) -> Cursor:
        """Run ``query`` once per parameter set (PyMySQL batches ``INSERT ...
        VALUES`` into multi-row statements).

        :returns: (resolves to) a buffered cursor; ``rowcount`` is the total.
        """
        cls = self._cursor_class if cursor is None else cursor_class_for(cursor)
        return await self._green.executemany(query, seq_of_args, timeout, cls, handle or self)

    async def callproc(
        self,
        procname: str,
        args: Sequence[Any] = (),
        *,
        timeout: float | None = None,
        cursor: type[Any] | None = None,
        handle: Any = None,
    ) -> Cursor:
        """Call a stored procedure (PyMySQL semantics: parameters are in
        ``@_procname_n`` server variables; later result sets via ``nextset``).

        :returns: (resolves to) a buffered cursor on the first result set.
        """
        cls = self._cursor_class if cursor is None else cursor_class_for(cursor)
        return await self._green.callproc(procname, args, timeout, cls, handle or self)

    def stream_call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """Low-level, for streaming cursors: run the PyMySQL cursor method
        ``fn(*args)`` as a continuation of the stream.  Resolves to its result."""
        return self._green.stream_call(fn, args)

    def _handoff(self, cmd: Command) -> None:
        self._green.local_infile(cmd)

    # -- failures ------------------------------------------------------------------

    def _abandon(self) -> None:
        self.abandoned = True

    def _expire(self, cmd: Command, timeout: float) -> None:
        cmd.timer = None
        fp = self._fp
        if fp.current is cmd:
            self._timed_out = timeout
            self.abandoned = True
            self._fatal(command_timeout(timeout))
        elif cmd in fp.queue:
            fp.queue.remove(cmd)
            cmd.fail(command_timeout(timeout, sent=False), False)

    def _fatal(self, exc: BaseException) -> None:
        """The fast path cannot go on: close, fail what is in flight."""
        cur = self._fp.current
        if cur is not None and cur.user:
            self.abandoned = True
        self._close_transport()
        self._fp.fail_all(ConnectionLost(CR.CR_SERVER_LOST, str(exc)), exc)

    def _lost(self, exc: BaseException | None) -> None:
        """The transport closed under us (server gone, reset, our own close)."""
        fp = self._fp
        if fp.current is None and not fp.queue:
            return
        why = f" ({exc})" if exc is not None else ""
        fp.fail_all(ConnectionLost(CR.CR_SERVER_LOST, "Lost connection to MySQL server during query" + why))

    # -- state -----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once closed by :meth:`close`/:meth:`terminate`, a timeout, a
        cancellation mid-command, a fatal error, or by the server."""
        return self._wire.closed or self._closed_by_user or not self._opened

    @property
    def busy(self) -> bool:
        """True while a command is running (or queued)."""
        return self._green.busy or self._fp.user_busy

    @property
    def in_transaction(self) -> bool:
        """True if the server reported an open transaction."""
        return bool(self._fp.status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)

    @property
    def session_dirty(self) -> bool:
        """True if a statement changed session state since the baseline (or
        if the server cannot tell: no session tracking)."""
        return self.session.dirty

    @property
    def can_reset(self) -> bool:
        """True if the server supports ``COM_RESET_CONNECTION``."""
        return self.session.resettable

    @property
    def has_unread_result(self) -> bool:
        """True if a streaming result is unfinished or result sets are pending."""
        return self._green.streaming or self._fp.more_seq is not None

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
    def raw(self) -> Any:
        """The underlying PyMySQL connection (for inspection; do not run
        commands on it directly)."""
        return self._raw

    @property
    def connection(self) -> Connection:
        """The connection itself (cursors reach their connection through a
        handle: a connection or a pool lease)."""
        return self

    @property
    def cursor_class(self) -> Any:
        """The cursor class ``execute`` and ``cursor()`` use by default."""
        return self._cursor_class

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop this connection belongs to."""
        return self._loop

    def escape(self, value: Any) -> str:
        """Escape ``value`` as an SQL literal (no I/O)."""
        return self._raw.escape(value)  # type: ignore[no-any-return]

    def mogrify(self, query: str, args: Any = None) -> str:
        """The statement :meth:`execute` would send for ``query`` and ``args``."""
        return self._mogrifier.mogrify(query, args)  # type: ignore[no-any-return]

    def _writable(self, idle: bool) -> bool:
        """Whether commands may be written now (see :class:`SessionKeeper`)."""
        if self.closed or self._green.streaming:
            return False
        return not (idle and self.busy)

    # -- closing ---------------------------------------------------------------

    async def close(self) -> None:
        """Close gracefully (``COM_QUIT`` when idle) and resolve once the
        socket is released; a no-op if already closed.  A command still
        running is aborted (its caller gets ConnectionLost)."""
        if self._closed_by_user:
            return
        self._closed_by_user = True
        wire = self._wire
        if self.busy or not self._opened:
            self.terminate()
        elif not wire.lost:
            with contextlib.suppress(OSError):
                wire.write(codec.build_command(COM_QUIT, b"")[0])
            wire.close_gracefully()
            self._fp.fail_all(ConnectionClosed(0, "connection is closed"))
            self._raw.drop()
            self._worker.close()
        await wire.wait_closed()

    def terminate(self) -> None:
        """Close at once, without ``COM_QUIT``.  Safe to call at any time."""
        cur = self._fp.current
        if cur is not None and cur.user:
            self.abandoned = True
        self._close_transport()
        self._fp.fail_all(ConnectionLost(CR.CR_SERVER_LOST, "connection was closed"))

    def _close_transport(self) -> None:
        self._wire.close()
        self._raw.drop()
        if not self._worker.running:
            self._worker.close()

    def __del__(self) -> None:
        # A connection dropped without close(): release the socket and end the
        # worker greenlet (possible because nothing holds us strongly).
        try:
            self._close_transport()
        except Exception:  # noqa: BLE001 - nothing useful to do at collection time
            pass

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("busy" if self.busy else "idle")
        raw = self._raw
        where = raw.unix_socket or f"{raw.host}:{raw.port}"
        return f"<tornpool.Connection {where} {state}>"
