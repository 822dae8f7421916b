"""The backend's pool: one per database alias per process, one cap for all.

Settings, in the shape of Django's PostgreSQL pool::

    "OPTIONS": {"pool": True}                     # the defaults below
    "OPTIONS": {"pool": {"min_size": 2, "max_size": 10, "timeout": 10}}
    "OPTIONS": {"pool": False}                    # no pool: a connection per connect()

``min_size``, ``max_size``, ``timeout`` (seconds a connect() may wait for a
connection), ``keep_alive`` (ping a connection idle longer than this before
lending it; 0: never) and the other options of
:class:`~tornpool.pool.PoolEngine` (``max_lifetime``, ``max_idle``,
``max_uses``, ``max_waiting``, ``leak_threshold``, ``check_timeout``,
``reconnect_interval``, ``reconnect_timeout``, ``name``).  greentor's
``MAX_SIZE`` and ``KEEP_ALIVE`` are read too, from the alias's settings or
its ``OPTIONS``, when the ``pool`` mapping does not give them.  Leaving
``pool`` out means ``True``.

**Faces.**  A connection on the bridge does its I/O on one event loop.  An
:class:`AliasPool` therefore keeps one greenlet-blocking pool
(:class:`BudgetedPool`, a :class:`greentor_compat.mysql.ConnectionPool`) per
loop it is used on: greenlets get connections of their own loop's pool,
plain threads those of the private loop in :mod:`greentor_compat.django.threads`.
All of an alias's pools draw on one :class:`Budget` of ``max_size`` server
connections, so the cap holds across greenlets and threads; an idle
connection of one face is not lent to the other (set ``max_idle`` when one
process serves both ways).

**Giving back** follows :class:`~greentor_compat.mysql.ConnectionPool`'s
contract: an open transaction (or any without autocommit) is rolled back, a
connection given back mid-query or with an unread result is closed.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pymysql
from tornpool.errors import ForeignConnection, GreenletRequired

from greentor_compat import mysql as gmysql
from greentor_compat.green import can_wait, sleep
from greentor_compat.django.threads import ThreadConnection, private_loop

__all__ = [
    "PoolSettings",
    "pool_settings",
    "Budget",
    "BudgetedPool",
    "AliasPool",
    "pool_for",
    "pools",
    "close_pools",
    "connect_unpooled",
    "POOL_OPTION_KEYS",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_KEEP_ALIVE",
]

DEFAULT_MAX_SIZE = 10
DEFAULT_TIMEOUT = 8.0
DEFAULT_KEEP_ALIVE = 7200.0

#: Keys of OPTIONS that are the pool's, not PyMySQL's.
POOL_OPTION_KEYS = ("pool", "MAX_SIZE", "KEEP_ALIVE")

#: PoolEngine options a ``pool`` mapping may pass through.
ENGINE_OPTIONS = frozenset({
    "max_lifetime", "lifetime_jitter", "max_idle", "max_uses", "max_waiting", "leak_threshold",
    "check_timeout", "reconnect_interval", "reconnect_max_interval", "reconnect_timeout", "name",
    "capture_sites",
})


class ImproperPool(ValueError):
    """A ``pool`` setting that cannot be used (the backend re-raises it as
    Django's ``ImproperlyConfigured``)."""


@dataclass(frozen=True)
class PoolSettings:
    """What an alias's settings say about its pool."""

    enabled: bool
    min_size: int = 0
    max_size: int = DEFAULT_MAX_SIZE
    timeout: float | None = DEFAULT_TIMEOUT
    keep_alive: float | None = DEFAULT_KEEP_ALIVE
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)


def _number(name: str, value: Any, integer: bool) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        raise ImproperPool("pool option %r must be a %s >= 0, not %r"
                           % (name, "whole number" if integer else "number", value))
    return value


def pool_settings(settings_dict: Mapping[str, Any]) -> PoolSettings:
    """Read an alias's settings (``DATABASES[alias]``) into :class:`PoolSettings`.

    :raises ImproperPool: an unknown option, or a value out of range.
    """
    options = settings_dict.get("OPTIONS") or {}
    pool = options.get("pool", True)
    if pool is False or pool is None:
        return PoolSettings(enabled=False)
    if pool is True:
        given: dict[str, Any] = {}
    elif isinstance(pool, Mapping):
        given = dict(pool)
    else:
        raise ImproperPool("OPTIONS['pool'] must be True, False or a mapping of pool options, not %r"
                           % (pool,))
    greentor_max = settings_dict.get("MAX_SIZE", options.get("MAX_SIZE"))
    greentor_keep = settings_dict.get("KEEP_ALIVE", options.get("KEEP_ALIVE"))
    min_size = _number("min_size", given.pop("min_size", 0), True)
    max_size = _number("max_size", given.pop("max_size", greentor_max or DEFAULT_MAX_SIZE), True)
    if max_size < 1 or min_size > max_size:
        raise ImproperPool("pool needs 0 <= min_size <= max_size and max_size >= 1 (got %d, %d)"
                           % (min_size, max_size))
    timeout = given.pop("timeout", DEFAULT_TIMEOUT)
    if timeout is not None:
        timeout = _number("timeout", timeout, False)
    keep_alive = given.pop("keep_alive", DEFAULT_KEEP_ALIVE if greentor_keep is None else greentor_keep)
    if keep_alive is not None:
        keep_alive = _number("keep_alive", keep_alive, False)
    unknown = sorted(set(given) - ENGINE_OPTIONS)
    if unknown:
        raise ImproperPool("unknown pool option(s) %s; known: min_size, max_size, timeout, keep_alive, %s"
                           % (", ".join(unknown), ", ".join(sorted(ENGINE_OPTIONS))))
    return PoolSettings(True, min_size, max_size, timeout, keep_alive or None,
                        tuple(sorted(given.items())))


class Budget:
    """A thread-safe count of an alias's server connections, capped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def try_take(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def give(self) -> None:
        with self._lock:
            self.used = max(0, self.used - 1)

    def take(self, timeout: float | None) -> None:
        """Take one, waiting (in the calling greenlet) while another face
        holds them all.

        :raises pymysql.err.OperationalError: none within ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.002
        while not self.try_take():
            if deadline is not None and time.monotonic() >= deadline:
                raise pymysql.err.OperationalError(
                    1040, "greentor_compat.django: all %d connections of this alias are in use "
                          "(by greenlets and threads together)" % self.limit)
            sleep(pause)
            pause = min(pause * 2, 0.05)


class BudgetedPool(gmysql.ConnectionPool):
    """A :class:`~greentor_compat.mysql.ConnectionPool` whose connections
    count against a shared :class:`Budget`, from before they connect until
    they are closed (or collected)."""

    def __init__(self, budget: Budget, settings: PoolSettings, params: Mapping[str, Any]) -> None:
        super().__init__(max_size=settings.max_size, keep_alive=settings.keep_alive,
                         mysql_params=params, wait_timeout=settings.timeout,
                         min_size=settings.min_size, **dict(settings.options))
        self.budget = budget
        self._counted: dict[int, weakref.finalize[Any, Any]] = {}

    def create_raw_conn(self) -> Any:
        self.budget.take(self.wait_timeout)
        try:
            conn = super().create_raw_conn()
        except BaseException:
            self.budget.give()
            raise
        self._counted[id(conn)] = weakref.finalize(conn, self.budget.give)
        return conn

    def uncount(self, conn: Any) -> None:
        """``conn`` is gone: its share of the budget is free again (once)."""
        counted = self._counted.pop(id(conn), None)
        if counted is not None:
            counted()

    def uncount_all(self) -> None:
        for counted in list(self._counted.values()):
            counted()
        self._counted.clear()

    def close_conn(self, conn: Any) -> None:
        try:
            super().close_conn(conn)
        finally:
            self.uncount(conn)

    def terminate_conn(self, conn: Any) -> None:
        try:
            super().terminate_conn(conn)
        finally:
            self.uncount(conn)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class AliasPool:
    """The pool of one alias (see the module docstring)."""

    def __init__(self, alias: str, settings: PoolSettings, params: Mapping[str, Any],
                 key: str = "") -> None:
        self.alias = alias
        self.settings = settings
        self.params = dict(params)
        self.key = key
        self.budget = Budget(settings.max_size)
        self.server_data: dict[str, Any] | None = None
        self._faces: dict[asyncio.AbstractEventLoop, BudgetedPool] = {}
        self._lent: weakref.WeakKeyDictionary[Any, BudgetedPool] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.closed = False

    def face(self, loop: asyncio.AbstractEventLoop) -> BudgetedPool:
        """The pool for ``loop`` (made on first use).  Pools of loops that
        were closed are dropped, their budget freed."""
        with self._lock:
            for old, face in list(self._faces.items()):
                if old.is_closed():
                    del self._faces[old]
                    face.uncount_all()
            known = self._faces.get(loop)
            if known is not None and not known.closed:
                return known
            settings = self.settings
            if not any(k == "name" for k, _ in settings.options):
                name = "django-%s-%x" % (self.alias, id(loop))
                settings = PoolSettings(True, settings.min_size, settings.max_size, settings.timeout,
                                        settings.keep_alive, settings.options + (("name", name),))
            face = self._faces[loop] = BudgetedPool(self.budget, settings, self.params)
            return face

    def faces(self) -> dict[asyncio.AbstractEventLoop, BudgetedPool]:
        with self._lock:
            return dict(self._faces)

    def lend(self) -> Any:
        """A connection for the caller: in a greenlet that may wait, a PyMySQL
        connection of its loop's pool; in a thread with no running loop, a
        :class:`~greentor_compat.django.threads.ThreadConnection`.

        :raises GreenletRequired: called on a running loop outside such a
            greenlet (it would block the loop).
        :raises tornpool.errors.PoolTimeout: none within ``timeout``.
        """
        if self.closed:
            raise pymysql.err.InterfaceError(0, "the pool of alias %r was closed" % self.alias)
        if can_wait():
            loop = asyncio.get_running_loop()
            face = self.face(loop)
            conn = face.get_conn()
            self._lent[conn] = face
            return conn
        if _running_loop() is not None:
            raise GreenletRequired(0, "a Django connection on a running event loop needs a green task "
                                      "(greentor_compat.green.spawn, GreenRequestHandler)")
        runner = private_loop()
        face = self.face(runner.loop)
        raw = runner.call(face.get_conn)
        return ThreadConnection(raw, runner, face)

    def discard(self, conn: Any) -> None:
        """Give back what :meth:`lend` gave as broken: the pool closes it
        instead of lending it again (Django found it unusable)."""
        self._hand_back(conn, lambda face, raw: _drop(face, raw), wait=True)

    def give_back(self, conn: Any, *, wait: bool = True) -> None:
        """Return what :meth:`lend` gave (see the module docstring for what
        happens to it).  A thread's connection is given back on the private
        loop, the thread waiting for it unless ``wait`` is false."""
        self._hand_back(conn, _release, wait=wait)

    def _hand_back(self, conn: Any, action: Callable[[BudgetedPool, Any], None], *, wait: bool) -> None:
        """Run ``action(face, raw)`` on the loop of the face that lent
        ``conn`` (only uncount it if that loop is gone)."""
        if isinstance(conn, ThreadConnection):
            face, raw = conn.owner, conn.raw
        else:
            face, raw = self._lent.pop(conn, None), conn
            if face is None:
                raise pymysql.err.InterfaceError(0, "this connection was not lent by the pool of %r" % self.alias)
        loop = face.engine.loop
        here = _running_loop()
        if loop is None or loop.is_closed():
            face.uncount(raw)
        elif here is loop:
            action(face, raw)
        elif isinstance(conn, ThreadConnection) and wait and here is None:
            conn.runner.call(action, face, raw)
        else:
            loop.call_soon_threadsafe(action, face, raw)

    def server_connections(self) -> int:
        """Connections counted against the cap now (all faces)."""
        return self.budget.used

    def stats(self) -> dict[str, Any]:
        return {"alias": self.alias, "max_size": self.settings.max_size, "used": self.budget.used,
                "faces": [face.stats() for face in self.faces().values() if not face.closed]}

    def close(self) -> None:
        """Close every face: idle connections now, lent ones when given back.
        Waits for the faces of the caller's own loop when called in a green
        task; others are closed on their loops without waiting."""
        self.closed = True
        here = _running_loop()
        for loop, face in self.faces().items():
            if loop.is_closed():
                face.uncount_all()
                continue
            if loop is here:
                face.quit()  # waits in a green task; else the loop finishes it
            else:
                asyncio.run_coroutine_threadsafe(_quit(face), loop)
        with self._lock:
            self._faces.clear()

    def __repr__(self) -> str:
        return "<AliasPool %s used=%d/%d>" % (self.alias, self.budget.used, self.settings.max_size)


def _release(face: BudgetedPool, raw: Any) -> None:
    """Give ``raw`` back to ``face``; if the face was closed and forgot it
    meanwhile, close it."""
    try:
        face.release(raw)
    except ForeignConnection:
        face.terminate_conn(raw)


def _drop(face: BudgetedPool, raw: Any) -> None:
    """Close ``raw`` at once and give it back: the pool sees it closed and
    forgets it."""
    face.terminate_conn(raw)
    face.release(raw)


async def _quit(face: BudgetedPool) -> None:
    closing = face.quit()
    if closing is not None:
        await closing


_pools: dict[str, AliasPool] = {}
_pools_lock = threading.Lock()


def _params_key(settings: PoolSettings, params: Mapping[str, Any]) -> str:
    return repr((settings, sorted((k, v) for k, v in params.items() if k != "conv")))


def pool_for(alias: str, params: Mapping[str, Any], settings: PoolSettings) -> AliasPool:
    """The process's pool for ``alias``; a new one (the old one closed) if
    the connection parameters or pool settings changed."""
    key = _params_key(settings, params)
    with _pools_lock:
        pool = _pools.get(alias)
        if pool is not None and pool.key == key and not pool.closed:
            return pool
        old = pool
        pool = _pools[alias] = AliasPool(alias, settings, params, key)
    if old is not None and not old.closed:
        old.close()
    return pool


def pools() -> dict[str, AliasPool]:
    """The pools made so far, by alias."""
    with _pools_lock:
        return dict(_pools)


def close_pools(alias: str | None = None) -> None:
    """Close the pool of ``alias`` (all of them by default); the next
    connect() makes a new one."""
    with _pools_lock:
        chosen = [p for a, p in _pools.items() if alias is None or a == alias]
        for pool in chosen:
            del _pools[pool.alias]
    for pool in chosen:
        pool.close()


def connect_unpooled(params: Mapping[str, Any]) -> Any:
    """A PyMySQL connection of its own (``"pool": False``): on the bridge in
    a greenlet that may wait, a blocking one in a thread."""
    return gmysql.connect(**params)
