"""One exception tree for tornpool, typed by blame.

PyMySQL's DB-API exceptions are re-exported unchanged, so ``except
tornpool.errors.ProgrammingError`` catches a syntax error exactly as it would
with PyMySQL.  tornpool's own errors subclass them according to who is to blame:

* **misuse** (the caller did something the API forbids) ->
  :class:`InterfaceError` subclasses: :class:`ConnectionBusy`,
  :class:`ConnectionClosed`, :class:`ConnectionReleased`,
  :class:`WrongEventLoop`, :class:`GreenletRequired`;
* **server error** (the server refused the statement) -> PyMySQL's
  :class:`ProgrammingError`, :class:`IntegrityError`, ... as raised by PyMySQL;
* **lost connection** (the network or the server went away) ->
  :class:`OperationalError`, including our :class:`ConnectionLost` and
  :class:`CommandTimeout`;
* **pool state** (the pool could not give a connection) ->
  :class:`PoolError` subclasses.

Every class here derives from :class:`pymysql.err.MySQLError`, so one
``except tornpool.errors.MySQLError`` catches anything tornpool raises on
purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymysql.err import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    MySQLError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)

__all__ = [
    "MySQLError",
    "Warning",
    "Error",
    "InterfaceError",
    "DatabaseError",
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
    "ConnectionBusy",
    "ConnectionClosed",
    "ConnectionReleased",
    "WrongEventLoop",
    "GreenletRequired",
    "ConnectionLost",
    "CommandTimeout",
    "ConnectTimeout",
    "PoolError",
    "PoolTimeout",
    "PoolClosed",
    "PoolTooManyWaiters",
    "PoolUnavailable",
    "ForeignConnection",
    "NoSuitableServer",
    "DSNError",
]

# Client error numbers (pymysql.constants.CR) used by our own errors.
CR_SERVER_GONE_ERROR = 2006
CR_SERVER_LOST = 2013


# --- misuse -----------------------------------------------------------------


class DSNError(InterfaceError, ValueError):
    """The DSN or connection arguments cannot be understood."""


class ConnectionBusy(InterfaceError):
    """A command was issued while another one is still running on the same
    connection.  One connection runs one command at a time; use a pool for
    concurrency."""


class ConnectionClosed(InterfaceError):
    """The connection was closed (by :meth:`close`, a timeout or a fatal
    error) and cannot be used any more."""


class ConnectionReleased(InterfaceError):
    """The connection was given back to its pool; this handle is dead."""


class WrongEventLoop(InterfaceError):
    """A connection or pool bound to one event loop was used from another."""


class GreenletRequired(InterfaceError):
    """A blocking-style helper was called from the event loop's own greenlet,
    where waiting would block the loop.  Run the code inside a greenlet (for
    example through :func:`tornpool.green.spawn`)."""


# --- lost connection ----------------------------------------------------------


class ConnectionLost(OperationalError):
    """The connection to the server was lost; it has been closed."""


class CommandTimeout(OperationalError, TimeoutError):
    """A command did not finish within its ``timeout``; the connection was
    closed because its protocol state is unknown."""


def command_timeout(timeout: float, sent: bool = True) -> CommandTimeout:
    """The error of a command that outlived its ``timeout`` seconds: 2013
    (the connection was closed under it), or 2006 if it was never written
    (safe to retry elsewhere)."""
    if sent:
        return CommandTimeout(
            CR_SERVER_LOST, f"command timed out after {timeout}s; the connection was closed"
        )
    return CommandTimeout(
        CR_SERVER_GONE_ERROR, f"command timed out after {timeout}s before it could be sent"
    )


class ConnectTimeout(OperationalError, TimeoutError):
    """Connecting (TCP, TLS and authentication) took longer than
    ``connect_timeout``."""


class NoSuitableServer(OperationalError):
    """No host of a multi-host list accepted a connection in the wanted
    role (``target_session_attrs``).  ``errno`` 2003 (cannot connect);
    :attr:`attempts` says what each host answered, and the last connect
    error, if any, is chained."""

    def __init__(self, target: str, attempts: Sequence[tuple[Any, str]]) -> None:
        tried = "; ".join(f"{host}: {what}" for host, what in attempts) or "no host to try"
        super().__init__(2003, f"no server for target_session_attrs={target!r} ({tried})")
        self.target = target
        #: ``(host, what happened)`` per host tried, in order.
        self.attempts = tuple(attempts)


# --- pool state ---------------------------------------------------------------


class PoolError(Error):
    """Base class of the errors that describe the pool's state."""


class PoolTimeout(PoolError, TimeoutError):
    """No connection could be handed out before the acquire deadline."""


class PoolClosed(PoolError):
    """The pool is closed (or closing) and hands out no connections."""


class PoolUnavailable(PoolError, OperationalError):
    """The pool has no live connection and cannot open one (the server is down
    or unreachable) and it is configured to fail fast (``fail_fast=True``,
    Momoko's behaviour).  The last connect error is chained as ``__cause__``."""


class PoolTooManyWaiters(PoolError):
    """``max_waiting`` requests are already queued; this one was refused."""


class ForeignConnection(PoolError, ValueError):
    """``putconn`` was given a connection that this pool did not hand out."""
