"""TorMySQL's ``set_log``: where the facade's own messages go.

By default the logger ``tornpool.tormysql`` (silent unless the application
configures logging).  ``tormysql.set_log(obj)`` sends them to any object with
``warning``/``error`` methods, as TorMySQL allowed.  The pool's own messages
(leaks, connections returned inside a transaction) stay on ``tornpool.pool``.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["get_log", "set_log"]

_log: Any = logging.getLogger("tornpool.tormysql")


def get_log() -> Any:
    """The object the facade logs to."""
    return _log


def set_log(log: Any) -> None:
    """Log the facade's messages to ``log`` (a :class:`logging.Logger` or
    anything with ``warning`` and ``error`` methods)."""
    global _log
    _log = log
