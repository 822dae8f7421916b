"""The one module that touches PyMySQL internals.

tornpool runs PyMySQL's protocol code unchanged for what the fast path does
not cover (connect, authentication, TLS, ``LOAD DATA LOCAL``,
``executemany``, stored procedures, streaming cursors).  This module
subclasses PyMySQL's ``Connection`` and ``MySQLResult`` only where the
transport or the hot path needs it, and offers the few PyMySQL-derived
pieces the fast path needs (column metadata, query formatting, server
errors), so that nothing else in tornpool depends on PyMySQL's private names.

* :meth:`GreenConnection.connect` runs the handshake over a
  :class:`~tornpool.green.GreenSocket` and swaps PyMySQL's ``SSLContext`` for
  a proxy that upgrades the transport in place.
* :meth:`GreenConnection._read_packet` slices complete packets straight out of
  the wire's receive buffer (one call per packet instead of two reads).
* :class:`GreenResult` decodes every complete row packet in the buffer with one
  codec call, caches column metadata keyed by its raw bytes, and never does I/O
  from ``__del__`` (PyMySQL's does, which must not happen outside the worker).
* :class:`Shape` is what a result's column block decodes to (fields,
  description, converters, codec plan, dict keys), shared by both paths.

PyMySQL's private names used here, all in the tested range (see setup.py):
``Connection._read_packet``, ``_read_bytes``, ``_force_close``,
``_read_query_result``, ``_next_seq_id``, ``_result``, ``_sock``,
``_secure``, ``_current_timeout`` (1.2.1+), ``ctx``; ``MySQLResult``'s
``_get_descriptions``, ``_read_rowdata_packet``, ``_read_row_from_packet``,
``_check_packet_is_eof``, ``converters``, ``fields``, ``unbuffered_active``;
``Cursor._do_get_result``, ``_rows``.
"""

from __future__ import annotations

import ssl
import struct
from typing import Any

from pymysql import connections as _conns
from pymysql import converters as _converters
from pymysql import cursors as _cursors
from pymysql import err
from pymysql.constants import CLIENT, CR, FIELD_TYPE, SERVER_STATUS
from pymysql.protocol import FieldDescriptorPacket, MysqlPacket

from tornpool import codec as _codec
from tornpool.green import GreenSocket, TLSContextProxy
from tornpool.wire import Wire

MAX_PACKET_LEN = _conns.MAX_PACKET_LEN
TEXT_TYPES = _conns.TEXT_TYPES
#: Client capability asking the server to flag session-state changes.
CLIENT_SESSION_TRACK = CLIENT.SESSION_TRACK

#: Server and client error numbers after which a connection is unusable.
FATAL_ERRNOS = frozenset(
    {
        CR.CR_SERVER_GONE_ERROR,  # 2006
        CR.CR_SERVER_LOST,  # 2013
        2055,  # CR_SERVER_LOST_EXTENDED
        CR.CR_CONN_HOST_ERROR,  # 2003
        1053,  # ER_SERVER_SHUTDOWN
        1927,  # ER_CONNECTION_KILLED (MariaDB)
        4031,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
    }
)

# warning count and server status of an EOF packet, as PyMySQL reads them
_EOF_BODY = struct.Struct("<hh")

_PREFERRED_TLS_CONTEXT: ssl.SSLContext | None = None

#: Column metadata cache size per connection (entries: one per distinct
#: result shape).
METADATA_CACHE_SIZE = 256


class GreenConnection(_conns.Connection):
    """A PyMySQL connection whose socket is a :class:`GreenSocket`."""

    _gsock: GreenSocket | None = None
    _wire: Wire | None = None
    _next_seq_id: int
    _result: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["defer_connect"] = True
        super().__init__(*args, **kwargs)
        self._meta_cache: dict[bytes, Shape] = {}
        self._plan_cache: dict[tuple[Any, ...], Any] = {}

    def _create_ssl_ctx(self, sslp: Any) -> Any:
        # PyMySQL 1.2 builds a context for its "preferred TLS" mode on every
        # connection, loading the system CA store each time (~36 ms here,
        # which slowed pool growth and reconnects).  That default context has
        # no files of its own, so one shared instance serves every connection;
        # contexts with explicit certificates are still built per connection,
        # so rotated files are picked up.
        global _PREFERRED_TLS_CONTEXT
        if isinstance(sslp, dict) and not sslp:
            if _PREFERRED_TLS_CONTEXT is None:
                _PREFERRED_TLS_CONTEXT = super()._create_ssl_ctx(sslp)
            return _PREFERRED_TLS_CONTEXT
        return super()._create_ssl_ctx(sslp)

    def connect(self, sock: GreenSocket | None = None) -> None:
        """Run the handshake over ``sock`` (in the worker greenlet)."""
        if sock is None:
            raise err.InterfaceError(0, "tornpool.connect() opens the transport; use it")
        self._gsock = sock
        self._wire = sock.wire
        ctx = getattr(self, "ctx", None)
        if isinstance(ctx, ssl.SSLContext):
            self.ctx = TLSContextProxy(ctx)
        if self.unix_socket:
            # As PyMySQL does for its own unix sockets: the channel is local, so
            # auth plugins may send the password in clear.
            self._secure = True
            self.host_info = "Localhost via UNIX socket"
        else:
            self.host_info = "socket %s:%d" % (self.host, self.port)
        # PyMySQL 1.2.1+ tracks the socket's timeout; keep it coherent.
        self._current_timeout = self._read_timeout
        super().connect(sock)

    # -- packets ---------------------------------------------------------------

    def _fill(self, need: int) -> None:
        """Buffer ``need`` bytes or fail exactly as PyMySQL's ``_read_bytes``."""
        sock = self._gsock
        try:
            assert sock is not None
            sock.fill(need)
        except OSError as exc:
            self._force_close()
            raise err.OperationalError(
                CR.CR_SERVER_LOST, f"Lost connection to MySQL server during query ({exc})"
            ) from None
        except BaseException:
            self._force_close()
            raise

    def _take_payload(self) -> bytes | None:
        """Slice the next packet's payload out of the buffer if it is complete,
        in sequence and a single packet (< 16 MiB); None otherwise."""
        wire = self._wire
        if wire is None:
            return None
        pos = wire.pos
        avail = wire.end - pos
        if avail < 4:
            return None
        buf = wire.buf
        size = buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16)
        if size >= MAX_PACKET_LEN or avail < size + 4 or buf[pos + 3] != self._next_seq_id:
            return None
        start = pos + 4
        wire.pos = start + size
        self._next_seq_id = (self._next_seq_id + 1) & 0xFF
        data = bytes(wire.view[start : start + size])
        wire.consumed_all()
        return data

    def _fill_next_packet(self) -> bool:
        """Wait until the next packet is wholly buffered, when it is an
        ordinary in-sequence one cut by the end of the buffer.

        :returns: True if it had to wait for bytes (the caller retries).
        """
        wire = self._wire
        assert wire is not None
        waited = False
        if wire.end - wire.pos < 4:
            self._fill(4)
            waited = True
        pos = wire.pos
        buf = wire.buf
        size = buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16)
        if size < MAX_PACKET_LEN and buf[pos + 3] == self._next_seq_id and wire.end - pos < size + 4:
            self._fill(size + 4)
            waited = True
        return waited

    def _read_packet(self, packet_type: type[MysqlPacket] = MysqlPacket) -> MysqlPacket:
        """Read one packet; complete packets are sliced from the buffer directly."""
        if self._wire is None or self._sock is None:
            return super()._read_packet(packet_type)
        data = self._take_payload()
        if data is None and self._fill_next_packet():
            data = self._take_payload()
        if data is None:
            # multi-packet or out of sequence: PyMySQL's own path (it reads
            # through GreenSocket.read, from the same buffer)
            return super()._read_packet(packet_type)
        packet = packet_type(data, self.encoding)
        if packet.is_error_packet():
            result = self._result
            if result is not None and result.unbuffered_active is True:
                result.unbuffered_active = False
            packet.raise_for_error()
        return packet

    def _read_payload(self) -> bytes:
        """One packet's payload as bytes, for packets that cannot be errors
        (column definitions, EOF after them)."""
        data = self._take_payload()
        if data is None:
            data = self._read_packet().get_all_data()
        return data

    # -- what tornpool.connection needs to know, without private names -------

    @property
    def link_open(self) -> bool:
        """False once PyMySQL has dropped its socket (closed or broken)."""
        return self._sock is not None

    @property
    def unread_result(self) -> bool:
        """A streaming result is unfinished or further result sets are pending."""
        result = self._result
        return result is not None and bool(result.unbuffered_active or result.has_next)

    @property
    def streaming(self) -> bool:
        """A streaming (unbuffered) result is being read."""
        result = self._result
        return result is not None and bool(result.unbuffered_active)

    @property
    def more_results(self) -> bool:
        """The last (finished) result announced further result sets."""
        result = self._result
        return result is not None and not result.unbuffered_active and bool(result.has_next)

    @property
    def next_seq(self) -> int:
        """Sequence id of the next packet PyMySQL expects."""
        return self._next_seq_id

    def forget_result(self) -> None:
        """Drop PyMySQL's reference to its last result (the connection takes
        over whatever it left on the wire)."""
        self._result = None

    def finish_streaming(self) -> None:
        """Read and drop the rest of an unfinished streaming result and any
        result sets after it (worker only)."""
        result = self._result
        if result is not None and result.unbuffered_active:
            result._finish_unbuffered_query()
        while self._result is not None and self._result.has_next:
            self.next_result()

    def drop(self) -> None:
        """Close the socket at once, without COM_QUIT."""
        if self._sock is not None:
            self._force_close()

    def _read_query_result(self, unbuffered: bool = False) -> int:
        self._result = None
        result = GreenResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        affected: int = result.affected_rows
        return affected

    def finish_local_infile(self, seq: int, cursor: Any) -> None:
        """Continue a ``COM_QUERY`` the fast path sent whose reply is a
        ``LOAD DATA LOCAL INFILE`` request: answer it with the file and read
        the final result into ``cursor`` (a PyMySQL cursor).  Worker only."""
        self._next_seq_id = seq
        self._result = None
        self._read_query_result()
        cursor._do_get_result()

    def plan_for(self, converters: list[tuple[str | None, Any]]) -> Any:
        """The codec plan for these converters (cached per connection)."""
        key = tuple(converters)
        plan = self._plan_cache.get(key)
        if plan is None:
            if len(self._plan_cache) >= METADATA_CACHE_SIZE:
                self._plan_cache.clear()
            plan = self._plan_cache[key] = _codec.make_plan(converters)
        return plan

    def shape_for(self, block: bytes, field_count: int) -> Shape:
        """The :class:`Shape` of a column block given as raw packets
        (headers included), for the fast path's metadata cache."""
        payloads = []
        p = 0
        for _ in range(field_count + 1):
            size = block[p] | (block[p + 1] << 8) | (block[p + 2] << 16)
            payloads.append(block[p + 4 : p + 4 + size])
            p += size + 4
        return Shape(self, payloads)


class GreenResult(_conns.MySQLResult):
    """``MySQLResult`` with the buffered row path on the codec."""

    connection: Any
    affected_rows: Any

    def __del__(self) -> None:
        # PyMySQL drains an unfinished unbuffered result here, which would do
        # network I/O from the garbage collector.  tornpool closes a
        # connection whose result was abandoned instead.
        pass

    _plan: Any = None

    def read(self) -> None:
        """PyMySQL's ``read`` with the usual result-set header (a one-byte
        column count) taken straight from the buffer."""
        conn: GreenConnection = self.connection
        wire = conn._wire
        if wire is not None:
            if wire.end - wire.pos < 5:
                # Every first packet of a reply (OK, error, result header,
                # LOCAL INFILE request) takes at least 5 bytes.
                conn._fill(5)
            pos = wire.pos
            buf = wire.buf
            if (
                wire.end - pos >= 5
                and buf[pos] == 1
                and buf[pos + 1] == 0
                and buf[pos + 2] == 0
                and buf[pos + 3] == conn._next_seq_id
                and 1 <= buf[pos + 4] <= 250
            ):
                self.field_count = buf[pos + 4]
                wire.pos = pos + 5
                conn._next_seq_id = (conn._next_seq_id + 1) & 0xFF
                try:
                    self._get_descriptions()
                    self._read_rowdata_packet()
                finally:
                    self.connection = None
                return
        super().read()

    def _get_descriptions(self) -> None:
        conn: GreenConnection = self.connection
        wire = conn._wire
        shape = None
        if wire is not None:
            # The column definitions and their EOF, when all in the buffer, are
            # one slice: the cache key for everything derived from them.
            buf = wire.buf
            pos = p = wire.pos
            end = wire.end
            seq = conn._next_seq_id
            for _ in range(self.field_count + 1):
                if end - p < 4:
                    break
                size = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16)
                if size >= MAX_PACKET_LEN or buf[p + 3] != seq or end - p < size + 4:
                    break
                p += size + 4
                seq = (seq + 1) & 0xFF
            else:
                key = bytes(wire.view[pos:p])
                shape = conn._meta_cache.get(key)
                if shape is None or not shape.fits(conn):
                    shape = Shape(conn, [conn._read_payload() for _ in range(self.field_count + 1)])
                    if shape.eof_ok:
                        if len(conn._meta_cache) >= METADATA_CACHE_SIZE:
                            conn._meta_cache.clear()
                        conn._meta_cache[key] = shape
                else:
                    wire.pos = p
                    conn._next_seq_id = seq
        if shape is None:
            shape = Shape(conn, [conn._read_payload() for _ in range(self.field_count + 1)])
        assert shape.eof_ok, "Protocol error, expecting EOF"
        self.fields = shape.fields
        self.description = shape.description
        self.converters = shape.converters
        self._plan = shape.plan

    def _read_rowdata_packet(self) -> None:
        conn: GreenConnection = self.connection
        wire = conn._wire
        rows: list[tuple[Any, ...]] = []
        plan = self._plan  # set by _get_descriptions with the converters
        decode = _codec.decode_rows
        while True:
            if wire is not None:
                got, pos, seq = decode(wire.buf, wire.pos, wire.end, conn._next_seq_id, plan)
                if got:
                    rows.extend(got)
                    wire.pos = pos
                    conn._next_seq_id = seq
                # The common stop: a complete 5-byte EOF packet ends the result.
                pos = wire.pos
                buf = wire.buf
                if (
                    wire.end - pos >= 9
                    and buf[pos + 4] == 0xFE
                    and buf[pos] == 5
                    and buf[pos + 1] == 0
                    and buf[pos + 2] == 0
                    and buf[pos + 3] == conn._next_seq_id
                ):
                    self.warning_count, server_status = _EOF_BODY.unpack_from(buf, pos + 5)
                    self.server_status = server_status
                    self.has_next = server_status & SERVER_STATUS.SERVER_MORE_RESULTS_EXISTS
                    wire.pos = pos + 9
                    wire.consumed_all()
                    conn._next_seq_id = (conn._next_seq_id + 1) & 0xFF
                    self.connection = None
                    break
                # A row cut by the end of the buffer: wait for the rest of it
                # and go on decoding in C rather than in PyMySQL's row code.
                if conn._fill_next_packet():
                    continue
            # Something the decoder leaves to PyMySQL: an unusual packet, or
            # the end of the result in another form.
            packet = conn._read_packet()
            if self._check_packet_is_eof(packet):
                self.connection = None
                break
            rows.append(self._read_row_from_packet(packet))
        self.affected_rows = len(rows)
        self.rows = tuple(rows)


class Shape:
    """What a result's column definitions decode to, cached per connection by
    their raw bytes: fields, description, converters, codec plan, and the
    keys a dict cursor uses.

    Converters come from ``conn.decoders`` when a shape is first seen; the
    entry is reused only while the connection's ``decoders`` object,
    ``use_unicode`` and ``encoding`` are the same ones (:meth:`fits`).
    """

    __slots__ = (
        "fields", "description", "converters", "plan", "eof_ok", "dict_keys",
        "_decoders", "_unicode", "_encoding",
    )

    def __init__(self, conn: GreenConnection, payloads: list[bytes]) -> None:
        encoding = conn.encoding
        self.fields = [FieldDescriptorPacket(p, encoding) for p in payloads[:-1]]
        self.description = tuple(f.description() for f in self.fields)
        eof = payloads[-1]
        self.eof_ok = eof[:1] == b"\xfe" and len(eof) < 9
        self._decoders = conn.decoders
        self._unicode = conn.use_unicode
        self._encoding = encoding
        self.converters = _converters_for(self.fields, conn)
        self.plan = conn.plan_for(self.converters)
        # PyMySQL's DictCursor keys: a repeated column name gets its table's
        # name in front.
        keys: list[str] = []
        for f in self.fields:
            name = f.name
            if name in keys:
                name = f.table_name + "." + name
            keys.append(name)
        self.dict_keys = tuple(keys)

    def fits(self, conn: GreenConnection) -> bool:
        return (
            conn.decoders is self._decoders
            and conn.use_unicode == self._unicode
            and conn.encoding == self._encoding
        )


def _converters_for(fields: list[Any], conn: GreenConnection) -> list[tuple[str | None, Any]]:
    """PyMySQL's ``(encoding, converter)`` per column, as in its ``_get_descriptions``."""
    use_unicode = conn.use_unicode
    conn_encoding = conn.encoding
    decoders = conn.decoders
    through = _converters.through
    convs: list[tuple[str | None, Any]] = []
    for field in fields:
        field_type = field.type_code
        encoding: str | None
        if use_unicode:
            if field_type == FIELD_TYPE.JSON:
                encoding = conn_encoding
            elif field_type in TEXT_TYPES:
                encoding = None if field.charsetnr == 63 else conn_encoding
            else:
                encoding = "ascii"
        else:
            encoding = None
        converter = decoders.get(field_type)
        if converter is through:
            converter = None
        convs.append((encoding, converter))
    return convs


class GreenSSCursor(_cursors.SSCursor):
    """PyMySQL's unbuffered cursor without its ``__del__ = close``, which
    would read the rest of the result from the garbage collector (network I/O
    outside the worker).  tornpool's SSCursor drains or closes explicitly."""

    def __del__(self) -> None:
        pass


class GreenSSDictCursor(_cursors.SSDictCursor):
    """Unbuffered dict cursor without the I/O-doing finalizer (see GreenSSCursor)."""

    def __del__(self) -> None:
        pass


def discard_rows(cursor: Any) -> None:
    """Let a buffered PyMySQL cursor forget its rows, without the I/O of its
    ``close()`` (which drains pending result sets)."""
    cursor._rows = None


def cursor_rows(cursor: Any) -> Any:
    """A PyMySQL buffered cursor's rows (tuple, list of dicts, or None)."""
    return cursor._rows


def raise_server_error(payload: bytes) -> None:
    """Raise the PyMySQL exception for an ERR packet's payload, exactly as
    PyMySQL would for the same packet."""
    err.raise_mysql_exception(payload)


def is_fatal(exc: BaseException) -> bool:
    """True if ``exc`` means the connection it came from is unusable."""
    if isinstance(exc, err.OperationalError) and exc.args:
        return exc.args[0] in FATAL_ERRNOS
    return isinstance(exc, (OSError, err.InternalError))
