"""The one transaction scope: BEGIN on entry, COMMIT if the block succeeds,
ROLLBACK if it raises.

Used by :meth:`tornpool.Connection.transaction`,
:meth:`tornpool.PoolConnection.transaction`, :meth:`tornpool.Pool.transaction`
(both forms) and the pool's blocking face, so they all behave alike:

* the block's exception always propagates;
* when the block raises, ROLLBACK is skipped if the connection is already
  closed (the server rolls back a transaction whose connection drops) or
  still busy (a command was cut off); if ROLLBACK itself fails, the
  connection is terminated -- never handed on with a transaction open -- and
  the block's exception still propagates;
* when COMMIT fails, its error propagates and the connection is terminated
  if its state is unknown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol, TypeVar

from pymysql import err

__all__ = ["Transactional", "transaction_scope", "rollback_quietly"]


class Transactional(Protocol):
    """What a transaction scope needs from a connection or a lease."""

    @property
    def closed(self) -> bool: ...

    @property
    def busy(self) -> bool: ...

    def begin(self, *, timeout: float | None = None) -> Any: ...

    def commit(self, *, timeout: float | None = None) -> Any: ...

    def rollback(self, *, timeout: float | None = None) -> Any: ...

    def terminate(self) -> None: ...


T = TypeVar("T", bound=Transactional)


async def rollback_quietly(target: Transactional) -> None:
    """ROLLBACK if the connection can take it; terminate it if ROLLBACK
    fails.  Never raises (except cancellation)."""
    if target.closed or target.busy:
        return
    try:
        await target.rollback()
    except Exception:
        target.terminate()


@contextlib.asynccontextmanager
async def transaction_scope(target: T) -> AsyncIterator[T]:
    """``async with transaction_scope(conn) as conn:`` -- see the module
    docstring.  Resolves nothing; raises the block's error, BEGIN's error, or
    COMMIT's."""
    await target.begin()
    try:
        yield target
    except BaseException:
        await rollback_quietly(target)
        raise
    try:
        await target.commit()
    except err.MySQLError:
        if not target.closed and not target.busy:
            await rollback_quietly(target)
        raise
