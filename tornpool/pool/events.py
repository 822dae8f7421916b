"""Pool lifecycle events, for dashboards and alerting.

``pool.add_listener(callback)`` registers a callable that receives a
:class:`PoolEvent` whenever a connection is opened, fails to open, is found
broken, is closed or reaped, or a request fails (its wait timed out, or one of
the pool's own statements failed).  Callbacks run synchronously on the pool's
loop and must be quick; an exception from one is logged and dropped.  With no
listener, emitting costs one truth test.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["PoolEvent", "Listeners", "EVENT_KINDS"]

log = logging.getLogger("tornpool.pool")

#: Every ``PoolEvent.kind``.
EVENT_KINDS = ("connect", "connect_failed", "lost", "closed", "reaped", "timeout", "error")


class PoolEvent(NamedTuple):
    """Something that happened to a pool."""

    #: One of :data:`EVENT_KINDS`.
    kind: str
    #: The pool's name.
    pool: str
    #: The server's id of the connection concerned, if any.
    connection_id: int | None
    #: Free text: the error, or what was closed and why.
    detail: str
    #: ``time.time()`` when it happened.
    at: float


Listener = Callable[[PoolEvent], None]


class Listeners:
    """The callbacks of one pool."""

    __slots__ = ("name", "_callbacks")

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Listener] = []

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def add(self, callback: Listener) -> None:
        self._callbacks.append(callback)

    def remove(self, callback: Listener) -> None:
        """:raises ValueError: ``callback`` was not added."""
        self._callbacks.remove(callback)

    def emit(self, kind: str, connection_id: int | None = None, detail: str = "") -> None:
        if not self._callbacks:
            return
        event = PoolEvent(kind, self.name, connection_id, detail, time.time())
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:
                log.exception("%s: a pool event listener raised", self.name)
