"""Greenlet-local storage: ``local()`` is to greenlets what ``threading.local()``
is to threads.

Attributes set on a :class:`local` are seen only by the greenlet that set them:
each green task (and the event loop's own greenlet) has its own namespace,
and a task started by another one starts empty.

**greentor's quirk, and what we chose.**  In greentor every ``local()``
instance shared *one* namespace per greenlet: ``a = local(); b = local();
a.x = 1`` made ``b.x == 1`` too, so two libraries each keeping "its"
connection in a local under the same attribute name overwrote each other.
Here each instance has its own namespace per greenlet, as
``threading.local`` has per thread (and a subclass's ``__init__`` runs again,
with the same arguments, the first time each greenlet touches the instance).
Code that relied on the sharing should use one module-level instance.  What
greentor did and we keep: child greenlets start empty.
"""

from __future__ import annotations

import weakref
from typing import Any

import greenlet

__all__ = ("local",)

_MISSING: Any = object()
_OWN = frozenset({"_glocal_dicts", "_glocal_init", "__class__"})


def _class_attr(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        found = klass.__dict__.get(name, _MISSING)
        if found is not _MISSING:
            return found
    return _MISSING


def _is_data_descriptor(attr: Any) -> bool:
    kind = type(attr)
    return hasattr(kind, "__set__") or hasattr(kind, "__delete__")


class local:
    """A namespace per greenlet; see the module docstring."""

    __slots__ = ("_glocal_dicts", "_glocal_init", "__weakref__")

    def __new__(cls, *args: Any, **kwargs: Any) -> local:
        if (args or kwargs) and cls.__init__ is object.__init__:
            raise TypeError("local() takes no arguments unless a subclass defines __init__")
        self = object.__new__(cls)
        dicts: weakref.WeakKeyDictionary[greenlet.greenlet, dict[str, Any]] = weakref.WeakKeyDictionary()
        # Python calls __init__ right after __new__, in this greenlet: its
        # namespace exists already so that it is not initialised twice.
        dicts[greenlet.getcurrent()] = {}
        object.__setattr__(self, "_glocal_dicts", dicts)
        object.__setattr__(self, "_glocal_init", (args, kwargs))
        return self

    def _glocal_ns(self) -> dict[str, Any]:
        dicts = object.__getattribute__(self, "_glocal_dicts")
        current = greenlet.getcurrent()
        ns: dict[str, Any] | None = dicts.get(current)
        if ns is None:
            ns = dicts[current] = {}
            cls = type(self)
            if cls.__init__ is not object.__init__:
                args, kwargs = object.__getattribute__(self, "_glocal_init")
                cls.__init__(self, *args, **kwargs)
        return ns

    def __getattribute__(self, name: str) -> Any:
        if name in _OWN:
            return object.__getattribute__(self, name)
        ns = local._glocal_ns(self)
        if name == "__dict__":
            return ns
        cls = type(self)
        attr = _class_attr(cls, name)
        if attr is not _MISSING and _is_data_descriptor(attr):
            return attr.__get__(self, cls)
        try:
            return ns[name]
        except KeyError:
            pass
        if attr is not _MISSING:
            getter = getattr(type(attr), "__get__", None)
            return attr if getter is None else getter(attr, self, cls)
        raise AttributeError("%r object has no attribute %r" % (cls.__name__, name))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN or name == "__dict__":
            raise AttributeError("%r object attribute %r is read-only" % (type(self).__name__, name))
        attr = _class_attr(type(self), name)
        if attr is not _MISSING and hasattr(type(attr), "__set__"):
            attr.__set__(self, value)
            return
        local._glocal_ns(self)[name] = value

    def __delattr__(self, name: str) -> None:
        attr = _class_attr(type(self), name)
        if attr is not _MISSING and hasattr(type(attr), "__delete__"):
            attr.__delete__(self)
            return
        ns = local._glocal_ns(self)
        try:
            del ns[name]
        except KeyError:
            raise AttributeError(name) from None
