"""The objects :meth:`tornpool.Pool.acquire` and :meth:`tornpool.Pool.transaction`
return: each is awaitable (so ``yield`` works under ``@gen.coroutine``) and
an async context manager.

* ``async with pool.acquire() as conn:`` -- a lease for the block.
* ``conn = await pool.acquire()`` / ``conn = yield pool.acquire()`` -- the
  lease itself, which is a context manager: ``with (yield pool.acquire()) as
  conn:`` releases it on exit.
* ``async with pool.transaction() as conn:`` -- a lease in a transaction:
  COMMIT on success, ROLLBACK on error, release (see :mod:`tornpool.scope`).
* ``tx = yield pool.transaction()`` -- a lease with BEGIN done, for generator
  coroutines: ``yield tx.commit()`` commits; leaving ``with tx:`` without a
  commit rolls back -- quietly when an exception is on its way, with the
  pool's "returned inside a transaction" warning otherwise.

The same two objects serve every pool on the engine (``tornpool.Pool``,
``tornpool.dbapi.ExecutorPool``), typed by the lease class the pool hands out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from tornpool.pool.lease import Lease
from tornpool.scope import Transactional, transaction_scope

if TYPE_CHECKING:  # pragma: no cover
    from tornpool.pool.engine import PoolEngine

__all__ = ["AcquireScope", "TransactionScope"]

#: The lease class a pool hands out (its engine's ``lease_factory``).
L = TypeVar("L", bound=Lease[Any])


class TransactionalLease(Transactional, Protocol):
    """A lease a transaction scope can drive: BEGIN / COMMIT / ROLLBACK and
    give it back."""

    def release(self, quiet: bool = False) -> None: ...


TL = TypeVar("TL", bound=TransactionalLease)


class AcquireScope(Generic[L]):
    """Result of ``pool.acquire()``: await it, or ``async with`` it."""

    __slots__ = ("_engine", "_timeout", "_lease")

    def __init__(self, engine: PoolEngine[Any], timeout: float | None) -> None:
        self._engine = engine
        self._timeout = timeout
        self._lease: Lease[Any] | None = None

    def __await__(self) -> Generator[Any, None, L]:
        lease = yield from self._engine.acquire(self._timeout).__await__()
        return cast(L, lease)

    async def __aenter__(self) -> L:
        lease = self._lease = await self._engine.acquire(self._timeout)
        return cast(L, lease)

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release(quiet=et is not None)


class TransactionScope(Generic[TL]):
    """Result of ``pool.transaction()`` without statements."""

    __slots__ = ("_get", "_stack")

    def __init__(self, get: Callable[[], Awaitable[TL]]) -> None:
        self._get = get
        self._stack: contextlib.AsyncExitStack | None = None

    async def _begin(self) -> TL:
        lease = await self._get()
        try:
            await lease.begin()
        except BaseException:
            lease.release(quiet=True)
            raise
        return lease

    def __await__(self) -> Generator[Any, None, TL]:
        return self._begin().__await__()

    async def __aenter__(self) -> TL:
        lease = await self._get()
        stack = contextlib.AsyncExitStack()
        # released last, quietly when an exception is on its way
        stack.push(lambda et, e, tb: lease.release(quiet=et is not None))
        try:
            await stack.enter_async_context(transaction_scope(lease))
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return lease

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        return await stack.__aexit__(et, e, tb)
