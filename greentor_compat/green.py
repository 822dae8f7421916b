"""greentor's ``green`` module on tornpool's bridge (Python 3.10+, Tornado 6).

Green tasks run blocking-style code -- PyMySQL after
:func:`greentor_compat.mysql.patch_pymysql`, a Django ORM call -- in
greenlets on the event loop, so that no call blocks the loop:

* :class:`GreenTask`, :func:`spawn`, :func:`green`, :func:`synclize`,
  :func:`sleep`, :class:`Waiter` -- running and waiting
  (:mod:`greentor_compat._task`);
* :class:`Timeout`, :class:`TimeoutException` -- deadlines
  (:mod:`greentor_compat._timeout`);
* :class:`Event`, and (new) :class:`Lock`, :class:`Semaphore`, :class:`Queue`
  (:mod:`greentor_compat._locks`);
* :class:`Pool` -- greenlet-blocking pool on tornpool's pool engine
  (:mod:`greentor_compat._pool`);
* :class:`AsyncSocket` -- the socket look-alike PyMySQL uses
  (:mod:`greentor_compat._socket`);
* :func:`await_` (new) -- wait for any awaitable from a green task;
  :func:`enable_debug`, :data:`IS_PYPY`.

What differs from greentor is listed in ``docs/greentor.md``.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Awaitable
from typing import Any, TypeVar

import greenlet

from greentor_compat._locks import Event, Lock, Queue, Semaphore
from greentor_compat._pool import Pool
from greentor_compat._socket import AsyncSocket
from greentor_compat._task import GreenTask, Waiter, green, sleep, spawn, synclize
from greentor_compat._timeout import Timeout, TimeoutException
from greentor_compat._waiting import can_wait, wait

__all__ = [
    "GreenTask",
    "spawn",
    "green",
    "synclize",
    "sleep",
    "Waiter",
    "Timeout",
    "TimeoutException",
    "Event",
    "Lock",
    "Semaphore",
    "Queue",
    "Pool",
    "AsyncSocket",
    "await_",
    "can_wait",
    "enable_debug",
    "disable_debug",
    "IS_PYPY",
]

T = TypeVar("T")

#: True on PyPy.
IS_PYPY = platform.python_implementation() == "PyPy"

log = logging.getLogger("greentor_compat.green")


def await_(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` (a coroutine, a Future, anything Tornado's
    ``yield`` takes) from a green task or a :func:`tornpool.green.spawn`
    greenlet; the loop runs other work meanwhile.

    :returns: its result.
    :raises: its exception.
    :raises GreenletRequired: called where waiting would block the loop.
    """
    return wait(awaitable)


def _trace(event: str, args: Any) -> None:
    if event in ("switch", "throw"):
        origin, target = args
        log.debug("greenlet %s: %r -> %r", event, origin, target)


_previous_trace: Any = None


def enable_debug() -> None:
    """Log every greenlet switch (logger ``greentor_compat.green``, DEBUG).
    Not available on PyPy (greenlet has no trace hook there)."""
    global _previous_trace
    if IS_PYPY:
        log.warning("greenlet switch tracing is not supported on PyPy")
        return
    previous = greenlet.settrace(_trace)
    if previous is not _trace:
        _previous_trace = previous


def disable_debug() -> None:
    """Stop what :func:`enable_debug` started."""
    global _previous_trace
    if not IS_PYPY:
        greenlet.settrace(_previous_trace)
    _previous_trace = None
