"""Django's async-safety guard, and why ORM code in a tornpool greenlet passes it.

Django decorates the methods of a database connection that block
(``connect``, ``cursor``, ``commit``, ``close``, ...) with
``django.utils.asyncio.async_unsafe``: called while an event loop runs in
the thread, they raise ``SynchronousOnlyOperation`` -- blocking there would
stall every coroutine on the loop -- unless ``DJANGO_ALLOW_ASYNC_UNSAFE`` is
set, which switches the guard off for the whole process.

Inside a greenlet that may wait (a green task, a :func:`tornpool.green.spawn`
greenlet; :func:`greentor_compat.green.can_wait` says so) that premise does
not hold: a "blocking" call there suspends the greenlet and the loop goes on
serving.  So the guard's question is answered per call, not per process:
:func:`greenlet_safe` rewrites a backend class so that each of its guarded
methods, called from such a greenlet, runs the undecorated function
(``functools.wraps`` keeps it as ``__wrapped__``), and, called from anywhere
else -- a coroutine on the loop above all -- runs Django's guarded one and
raises as before.  Nothing outside the backend class changes, and the
environment variable keeps its meaning.

A guarded method is recognised by its code object: every function
``async_unsafe`` returns shares the code of its inner wrapper.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.utils.asyncio import async_unsafe

from greentor_compat.green import can_wait

__all__ = ["greenlet_safe", "is_guarded", "guarded_names", "guarded"]

C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])


def _probe() -> None:
    """Never called: wrapped once to learn the guard's code object."""


_GUARD_CODE = async_unsafe("probe")(_probe).__code__


def is_guarded(fn: Any) -> bool:
    """True if ``fn`` is a function returned by Django's ``async_unsafe``."""
    return getattr(fn, "__code__", None) is _GUARD_CODE and hasattr(fn, "__wrapped__")


def guarded_names(cls: type) -> list[str]:
    """Names of ``cls``'s methods (inherited ones too) that Django guards."""
    names = []
    for name in dir(cls):
        attr = getattr(cls, name, None)
        if is_guarded(attr):
            names.append(name)
    return names


def _per_call(guarded: Callable[..., Any]) -> Callable[..., Any]:
    plain = guarded.__wrapped__  # type: ignore[attr-defined]

    @functools.wraps(plain)
    def method(*args: Any, **kwargs: Any) -> Any:
        if can_wait():
            return plain(*args, **kwargs)
        return guarded(*args, **kwargs)

    return method


def greenlet_safe(cls: C) -> C:
    """Class decorator: ``cls``'s guarded methods pass inside greenlets that
    may wait and keep Django's guard everywhere else (see the module
    docstring).  Returns ``cls``, changed in place."""
    for name in guarded_names(cls):
        setattr(cls, name, _per_call(getattr(cls, name)))
    return cls


def guarded(fn: F) -> F:
    """Django's ``async_unsafe`` with its default message, typed (for
    methods a backend adds or overrides, so that the guard covers them too)."""
    return cast(F, async_unsafe(fn))
