"""The greenlet bridge: PyMySQL's blocking-style code over the event loop.

* :mod:`tornpool.green.worker` -- the worker greenlet a coroutine drives, and
  :func:`spawn` / :func:`await_` for blocking-style code in compat layers;
* :mod:`tornpool.green.socket` -- the socket PyMySQL sees, over the
  connection's :class:`~tornpool.wire.Wire`.

This package is the only place in tornpool that imports :mod:`greenlet`.
"""

from tornpool.green.socket import GreenSocket, TLSContextProxy, Waits
from tornpool.green.worker import GreenWorker, await_, current_worker, in_greenlet, spawn

__all__ = [
    "GreenWorker",
    "GreenSocket",
    "TLSContextProxy",
    "Waits",
    "spawn",
    "await_",
    "in_greenlet",
    "current_worker",
]
