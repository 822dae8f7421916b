"""The wire format between the SQLite proxy and its worker processes.

One request, one reply, each one pickled message on the worker's socket
(framed by :class:`~tornpool.dbapi._sqlite_channel.Channel`).  Requests
are tuples whose first item is an ``OP_*`` code; replies are tuples whose
first item is an ``ST_*`` status:

=================  ===========================================  ==================================
request            fields                                        reply
=================  ===========================================  ==================================
``OP_EXEC``        sql, params, in_tx                            ``ST_OK`` / ``ST_ERR`` / ``ST_BOUNCE``
``OP_MANY``        sql, list of params, in_tx                    ``ST_OK`` / ``ST_ERR``
``OP_SCRIPT``      script                                        ``ST_OK`` / ``ST_ERR``
``OP_BEGIN``       mode (DEFERRED, IMMEDIATE, EXCLUSIVE)         ``ST_OK`` / ``ST_ERR``
``OP_COMMIT``      --                                            ``ST_OK`` / ``ST_ERR``
``OP_ROLLBACK``    --                                            ``ST_OK`` / ``ST_ERR``
``OP_CLOSE``       --                                            none: the worker exits
``OP_BATCH``       list of pickled OP_EXEC / OP_MANY requests    ``ST_OK``: list of framed replies
=================  ===========================================  ==================================

A reply is one status byte followed by a pickled body, so the proxy knows
what it got -- and can hand the worker to the next caller -- before it spends
time unpickling rows.  ``ST_OK``'s body is ``(rows, description, rowcount,
lastrowid)``; ``ST_ERR``'s an
:data:`~tornpool.dbapi._sqlite_errors.ErrorPayload`; ``ST_BOUNCE`` (readers
only, body None) says the statement is not a pure read and must go to the writer --
the reader refused it while preparing it, so nothing ran.  A worker sends
one unsolicited message when it starts: ``ST_READY`` with its pid, or
``ST_BOOT_ERR`` with an error payload (and then exits).  Before that the
proxy sends it one message too: its pickled :class:`WorkerSpec`.

The in-process writer (``writer="thread"``) runs the same requests without
any of this: it takes the request tuple as it is and answers with the reply
``(status, body)`` as the session built it.  So a reply the proxy reads has
either a pickled body (a ``memoryview``: it came from a process) or the
object itself; :func:`decode_body` and :func:`batch_members` accept both.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any, Callable, List, NamedTuple, Optional, Tuple, Union

from ._sqlite_errors import UnpicklableParameters

if TYPE_CHECKING:  # pragma: no cover - the worker processes import this module: no asyncio there
    import asyncio

__all__ = ["WorkerSpec", "Request", "Reply", "RawReply", "AnyReply", "encode_request", "encode_reply",
           "split_reply", "decode", "decode_body", "batch_members", "settle_reply"]

OP_EXEC, OP_MANY, OP_SCRIPT, OP_BEGIN, OP_COMMIT, OP_ROLLBACK, OP_CLOSE, OP_BATCH = range(8)
ST_OK, ST_ERR, ST_BOUNCE, ST_READY, ST_BOOT_ERR = range(5)

#: pickle protocol of every message (5: out-of-band capable, fastest for bytes)
PROTOCOL = 5

#: a request: (OP_*, fields...)
Request = Tuple[Any, ...]
#: a reply as the session builds it: (status, body)
Reply = Tuple[int, Any]
#: a reply as the proxy reads it from a worker process: (status, pickled body)
RawReply = Tuple[int, memoryview]
#: a reply from either kind of writer: a :data:`RawReply` or a :data:`Reply`
AnyReply = Tuple[int, Any]


class WorkerSpec(NamedTuple):
    """Everything a worker process needs to open its connection (pickled to it)."""

    #: absolute path of the database file
    path: str
    #: "writer" (runs every write and every transaction) or "reader"
    role: str
    #: may the writer create the file if it is missing
    create: bool
    #: sqlite3's ``timeout``: how long a statement waits on a lock held by
    #: another process before "database is locked"
    busy_timeout: float
    #: ``PRAGMA synchronous`` of the writer: "FULL" or "NORMAL"
    synchronous: str
    #: statements run on each new connection (per-connection PRAGMAs)
    init_sql: Tuple[str, ...]
    #: a picklable ``callable(sqlite3.Connection)`` run on each new
    #: connection (to register functions, collations, adapters), or None
    initializer: Optional[Callable[[Any], None]]
    #: size of sqlite3's prepared-statement cache
    cached_statements: int


def encode_request(request: Request) -> bytes:
    """Pickle one request (for a worker process).

    :raises UnpicklableParameters: something in it does not pickle.
    """
    try:
        return pickle.dumps(request, PROTOCOL)
    except Exception as exc:  # pickle raises TypeError, PicklingError, AttributeError, ...
        raise UnpicklableParameters(
            "the parameters cannot be sent to a worker process: %s" % (exc,)) from exc


def encode_reply(status: int, body: Any) -> bytes:
    """Frame one reply: the status byte, then the pickled body (worker side)."""
    return bytes((status,)) + pickle.dumps(body, PROTOCOL)


def split_reply(data: Union[bytes, bytearray]) -> RawReply:
    """(status, pickled body) of a framed reply (proxy side)."""
    return data[0], memoryview(data)[1:]


def decode(data: Union[bytes, bytearray, memoryview]) -> Any:
    """Unpickle one request, or one reply's body."""
    return pickle.loads(data)


def decode_body(body: Any) -> Any:
    """A reply's body as an object: unpickled if it came from a worker
    process (a ``memoryview``), else as it is (the in-process writer's)."""
    return decode(body) if isinstance(body, memoryview) else body


def batch_members(body: Any) -> List[AnyReply]:
    """The replies of the members of an ``OP_BATCH`` reply's body, in order:
    framed ones (from a worker process) split, in-process ones as they are."""
    return [m if isinstance(m, tuple) else split_reply(m) for m in decode_body(body)]


def settle_reply(fut: "asyncio.Future[Any]", reply: Any, error: Optional[BaseException]) -> None:
    """(on ``fut``'s loop) Resolve an awaiting caller with its reply, or its
    error -- unless it stopped waiting (cancelled)."""
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        assert reply is not None
        fut.set_result(reply)
