"""The pool's bookkeeping for one connection (:class:`Slot`) and the handle a
caller gets for one acquisition (:class:`Lease`).

A lease is the only way a caller reaches a pooled connection.  After
:meth:`Lease.release` it is detached for good: :attr:`Lease.connection`
raises :class:`~tornpool.errors.ConnectionReleased`, and so does every cursor
made through it that would need the connection again.

A lease that is dropped without being released is *leaked*: when the garbage
collector finds it, the pool gets the connection back and a
:class:`ResourceWarning` plus a log line name where it was acquired.  A lease
is also a context manager both ways: ``with (yield pool.acquire()) as
conn:`` under ``@gen.coroutine`` and ``async with lease:`` release it on exit
(a transaction left open is rolled back; quietly if the block raised).
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
import weakref
from types import CodeType, FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import tornado

from tornpool.errors import ConnectionReleased

if TYPE_CHECKING:  # pragma: no cover
    from tornpool.pool.engine import PoolEngine

__all__ = ["Poolable", "Slot", "Lease", "where_acquired", "capture_site"]


class Poolable(Protocol):
    """What the pool engine needs from a connection (any driver)."""

    @property
    def closed(self) -> bool: ...

    @property
    def busy(self) -> bool: ...

    @property
    def in_transaction(self) -> bool: ...

    @property
    def has_unread_result(self) -> bool: ...

    #: Closed with a command in flight: the server may still be running it.
    abandoned: bool

    def ping(self, *, timeout: float | None = None) -> Any: ...

    async def close(self) -> None: ...

    def terminate(self) -> None: ...


C = TypeVar("C", bound=Poolable)

#: Frames kept of the code that acquired a lease (for leak and transaction
#: warnings); innermost first, tornpool's own frames skipped.
SITE_DEPTH = 3
_OWN = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # .../tornpool/
#: Where the caller's stack meets the event loop's machinery: the frames from
#: here up (``Handle._run``, ``run_forever``, tornado's coroutine runner) say
#: nothing about the caller, and walking them is most of the cost.
_LOOP = (os.path.dirname(asyncio.__file__) + os.sep, os.path.dirname(tornado.__file__) + os.sep)

Site = tuple[tuple[CodeType, int], ...]


def capture_site(depth: int = SITE_DEPTH) -> Site:
    """Where the caller is: ``(code, line)`` of up to ``depth`` frames outside
    tornpool, innermost first, stopping where the event loop's own frames
    begin.  Cheap (a few frames walked, nothing formatted until the site is
    shown)."""
    frame: FrameType | None = sys._getframe(1)
    out: list[tuple[CodeType, int]] = []
    own = _OWN
    loop = _LOOP
    while frame is not None:
        code = frame.f_code
        name = code.co_filename
        if not name.startswith(own):
            if name.startswith(loop):
                break
            out.append((code, frame.f_lineno))
            if len(out) == depth:
                break
        frame = frame.f_back
    return tuple(out)


def where_acquired(site: Site | None) -> str:
    """A captured site as text, outermost call first (like a traceback)."""
    if not site:
        return "  (unknown)"
    return "\n".join('  File "%s", line %d, in %s' % (code.co_filename, line, code.co_name)
                     for code, line in reversed(site))


class Slot(Generic[C]):
    """Bookkeeping for one connection owned by the pool."""

    __slots__ = (
        "conn", "created", "expires", "last_used", "uses", "generation", "lease_ref",
        "in_use", "acquired_at", "site", "leak_reported", "reaping", "closing", "__weakref__",
    )

    def __init__(self, conn: C, now: float, expires: float, generation: int) -> None:
        self.conn = conn
        self.created = now
        self.expires = expires
        self.last_used = now
        self.uses = 0
        self.generation = generation
        #: The lease that holds the connection now (weakly: a dropped lease
        #: must be collectable so that the pool gets the connection back).
        self.lease_ref: weakref.ref[Lease[C]] | None = None
        #: Handed out (to a lease or to one of the pool's own statements).
        self.in_use = False
        self.acquired_at = 0.0
        self.site: Site | None = None
        self.leak_reported = False
        #: Being reaped (abandoned mid-command; counted until the server let go).
        self.reaping = False
        #: Being closed gracefully (counted until closed).
        self.closing = False

    @property
    def lease(self) -> Lease[C] | None:
        ref = self.lease_ref
        return None if ref is None else ref()


class Lease(Generic[C]):
    """One acquisition of a pooled connection.

    Subclasses add the driver's methods and reach the connection through
    :attr:`connection`, which raises
    :class:`~tornpool.errors.ConnectionReleased` once the lease is given back.
    """

    __slots__ = ("_slot", "_engine", "__weakref__")

    def __init__(self, engine: PoolEngine[C], slot: Slot[C]) -> None:
        self._engine: PoolEngine[C] | None = engine
        self._slot: Slot[C] | None = slot

    @property
    def connection(self) -> C:
        """The underlying connection.

        :raises ConnectionReleased: the lease was given back to the pool.
        """
        slot = self._slot
        if slot is None:
            raise ConnectionReleased(0, "this connection was released to its pool")
        return slot.conn

    @property
    def released(self) -> bool:
        """True once the lease was given back to the pool."""
        return self._slot is None

    @property
    def pool_engine(self) -> PoolEngine[C] | None:
        """The engine that handed this lease out (None once released)."""
        return self._engine

    def release(self, quiet: bool = False) -> None:
        """Give the connection back to the pool.  Idempotent and synchronous,
        so cancellation cannot interrupt it.  A transaction still open is
        rolled back, with a warning unless ``quiet`` (the block that held
        the lease raised, so the rollback is expected)."""
        slot, engine = self._slot, self._engine
        if slot is None or engine is None:
            return
        self._slot = self._engine = None
        engine.release(slot, quiet=quiet)

    def detach(self) -> None:
        """Forget the connection without giving it back (the pool closed it)."""
        self._slot = self._engine = None

    def __enter__(self) -> Lease[C]:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release(quiet=et is not None)

    async def __aenter__(self) -> Lease[C]:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(et, e, tb)

    def __del__(self) -> None:
        slot = getattr(self, "_slot", None)
        engine = getattr(self, "_engine", None)
        if slot is None or engine is None:
            return
        self._slot = self._engine = None
        try:
            warnings.warn(
                "a pooled connection was never released; acquired at:\n" + where_acquired(slot.site),
                ResourceWarning,
                stacklevel=2,
            )
        except Exception:  # noqa: BLE001 - a warning filter may raise; still reclaim
            pass
        engine.reclaim(slot)

    def __repr__(self) -> str:
        slot = self._slot
        if slot is None:
            return "<%s released>" % type(self).__name__
        return "<%s %r>" % (type(self).__name__, slot.conn)
