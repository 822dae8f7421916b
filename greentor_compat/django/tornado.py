"""A Tornado ``RequestHandler`` whose methods run Django ORM code in a greenlet.

::

    class Notes(GreenRequestHandler):
        def get(self):                      # plain blocking-style code
            notes = list(Note.objects.order_by("-id")[:20])
            self.render("notes.html", notes=notes)

Each HTTP method a subclass defines (``get``, ``post``, ...), and
``prepare``, unless written as ``async def``, runs in a greenlet of its own
(:func:`tornpool.green.spawn`), so ORM calls wait for the server without
blocking the loop and pass Django's async-safety guard
(:mod:`greentor_compat.django.guard`).  The greenlets of one request share
one namespace of Django connections (:func:`greentor_compat.django.local.scope`
keyed by the handler), distinct from every other request's; ``on_finish``
closes them, which gives their server connections back to the pool --
whatever ``CONN_MAX_AGE`` says, since the namespace ends with the request.
QuerySets are evaluated where they are iterated: do that in the handler
method (or in a template rendered from it), not in a coroutine.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from tornado import web
from tornpool import green as tgreen

from greentor_compat.django import local
from greentor_compat.green import spawn as green_spawn

__all__ = ["GreenRequestHandler", "in_request_greenlet", "close_scope"]

log = logging.getLogger("greentor_compat.django")


def close_scope(owner: Any) -> None:
    """Close the Django connections of ``owner``'s namespace (call it in a
    greenlet that may wait); errors are logged, not raised."""
    with local.scope(owner):
        for wrapper in local.scope_connections(owner):
            try:
                wrapper.close()
            except Exception:  # noqa: BLE001 - the request is over; keep closing the rest
                log.exception("closing Django connection %r after the request", wrapper.alias)


def _in_scope(owner: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    with local.scope(owner):
        return fn(owner, *args, **kwargs)


def in_request_greenlet(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for a handler method: run it in a greenlet, in the handler's
    namespace of Django connections (what :class:`GreenRequestHandler` does
    to its subclasses' methods)."""

    @functools.wraps(fn)
    async def method(self: web.RequestHandler, *args: Any, **kwargs: Any) -> Any:
        return await tgreen.spawn(_in_scope, self, fn, args, kwargs)

    method.__greenlet_method__ = True  # type: ignore[attr-defined]
    return method


class GreenRequestHandler(web.RequestHandler):
    """See the module docstring."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = ["prepare", *(m.lower() for m in cls.SUPPORTED_METHODS)]
        for name in names:
            fn = cls.__dict__.get(name)
            if fn is None or not callable(fn) or inspect.iscoroutinefunction(fn):
                continue
            if getattr(fn, "__greenlet_method__", False):
                continue
            setattr(cls, name, in_request_greenlet(fn))

    def on_finish(self) -> None:
        """Give the request's connections back (in a green task: it runs at
        once, since giving back does not wait)."""
        if local.scope_connections(self):
            done = green_spawn(close_scope, self)
            done.add_done_callback(_log_failure)
        super().on_finish()


def _log_failure(fut: Any) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("closing a request's Django connections failed", exc_info=fut.exception())
