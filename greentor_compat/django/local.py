"""One Django ``DatabaseWrapper`` per greenlet.

Django keeps its connections (``django.db.connections``) in an
``asgiref.local.Local`` that is thread-critical: one wrapper per alias per
*thread*.  Under Tornado every request runs on the loop's thread, so
concurrent requests would share one wrapper and one server connection, and
their commands would interleave on it.  :func:`install` gives the handler a
:class:`GreenletLocal` instead: each greenlet sees wrappers of its own (each
thread's main greenlet is a greenlet too, so threads stay apart as before).

A group of greenlets that run one after another for the same unit of work --
``prepare()`` and ``get()`` of one Tornado request, say -- can share one
namespace with :func:`scope`; :func:`scope_connections` lists the wrappers
such a namespace holds, so that whoever ends the unit of work can close them.

The handler's storage is an attribute Django does not document
(``ConnectionHandler._connections``); :func:`install` is the one place that
sets it, and it checks the attribute exists first.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import greenlet

__all__ = ["GreenletLocal", "Discard", "install", "installed", "scope", "scope_connections", "current_owner"]

_scopes: weakref.WeakKeyDictionary[greenlet.greenlet, Any] = weakref.WeakKeyDictionary()


def current_owner() -> Any:
    """What namespaces are keyed by for the caller: its scope, else its greenlet."""
    current = greenlet.getcurrent()
    owner = _scopes.get(current)
    return current if owner is None else owner


@contextlib.contextmanager
def scope(owner: Any) -> Iterator[None]:
    """``with scope(obj):`` -- the calling greenlet uses ``obj``'s namespace
    (``obj`` must be weak-referenceable) until the block ends."""
    current = greenlet.getcurrent()
    previous = _scopes.get(current)
    _scopes[current] = owner
    try:
        yield
    finally:
        if previous is None:
            _scopes.pop(current, None)
        else:
            _scopes[current] = previous


Discard = Callable[[dict[str, Any]], None]


class GreenletLocal:
    """Attributes per owner (see :func:`current_owner`), like
    ``threading.local`` per thread.  A namespace goes when its owner does;
    ``on_discard(namespace)`` is called then (from whichever greenlet the
    owner is collected in), so that what it held can be cleaned up."""

    def __init__(self, on_discard: Discard | None = None) -> None:
        object.__setattr__(self, "_spaces", weakref.WeakKeyDictionary())
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_on_discard", on_discard)

    def _space(self, create: bool) -> dict[str, Any] | None:
        spaces: weakref.WeakKeyDictionary[Any, dict[str, Any]] = object.__getattribute__(self, "_spaces")
        owner = current_owner()
        space = spaces.get(owner)
        if space is None and create:
            with object.__getattribute__(self, "_lock"):
                space = spaces.get(owner)
                if space is None:
                    space = spaces[owner] = {}
                    on_discard = object.__getattribute__(self, "_on_discard")
                    if on_discard is not None:
                        weakref.finalize(owner, on_discard, space).atexit = False
        return space

    def space_of(self, owner: Any) -> dict[str, Any]:
        """A copy of ``owner``'s namespace (empty if it has none)."""
        spaces: weakref.WeakKeyDictionary[Any, dict[str, Any]] = object.__getattribute__(self, "_spaces")
        return dict(spaces.get(owner) or {})

    def __getattr__(self, name: str) -> Any:
        space = self._space(False)
        if space is None or name not in space:
            raise AttributeError(name)
        return space[name]

    def __setattr__(self, name: str, value: Any) -> None:
        space = self._space(True)
        assert space is not None
        space[name] = value

    def __delattr__(self, name: str) -> None:
        space = self._space(False)
        if space is None or name not in space:
            raise AttributeError(name)
        del space[name]


def installed() -> GreenletLocal | None:
    """The :class:`GreenletLocal` behind ``django.db.connections``, if installed."""
    from django.db import connections

    storage = getattr(connections, "_connections", None)
    return storage if isinstance(storage, GreenletLocal) else None


def install(on_discard: Discard | None = None) -> GreenletLocal:
    """Make ``django.db.connections`` greenlet-local (idempotent).  Wrappers
    the calling thread made already move into its namespace; those of other
    threads stay with the old storage and are not seen again (the backend
    makes its first wrapper, normally before any other exists).
    ``on_discard`` is given to the :class:`GreenletLocal` (only when this call
    installs it): the backend gives back the connections of wrappers whose
    greenlet ended without closing them.

    :raises RuntimeError: this Django's handler keeps its connections elsewhere.
    """
    from django.db import connections

    storage = installed()
    if storage is not None:
        return storage
    old = getattr(connections, "_connections", None)
    if old is None:
        raise RuntimeError("django.db.connections has no _connections storage: "
                           "greentor_compat.django does not support this Django version")
    storage = GreenletLocal(on_discard)
    for alias in connections.settings:
        wrapper = getattr(old, alias, None)
        if wrapper is not None:
            setattr(storage, alias, wrapper)
    connections._connections = storage
    return storage


def scope_connections(owner: Any) -> list[Any]:
    """The wrappers (``DatabaseWrapper`` objects) ``owner``'s namespace holds."""
    storage = installed()
    return [] if storage is None else list(storage.space_of(owner).values())
