"""What the executor-pool tests over sqlite3 share: user functions that run
in the connection's thread, and a pool over a file in the test's directory.

``nap(s)`` sleeps ``s`` seconds (a statement no interrupt can stop),
``tid()`` is the thread running the statement, ``cid()`` numbers the
connection (threads' ids are reused), ``clock()`` is ``time.monotonic()``.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from tornpool.dbapi import ExecutorPool

_CONNECTIONS = itertools.count(1)


def functions(conn: sqlite3.Connection) -> None:
    """(an ``initializer``) Add ``cid``, ``tid``, ``nap`` and ``clock``."""
    number = next(_CONNECTIONS)
    conn.create_function("cid", 0, lambda: number)
    conn.create_function("tid", 0, threading.get_ident)
    conn.create_function("nap", 1, lambda s: time.sleep(s) or 1)
    conn.create_function("clock", 0, time.monotonic)


def make_pool(tmp_path: Path, **kw: Any) -> ExecutorPool:
    """An executor pool over ``tmp_path/t.db`` with :func:`functions` (unless
    another ``initializer`` is given) and a 5 s busy timeout."""
    kw.setdefault("initializer", functions)
    return ExecutorPool(sqlite3, str(tmp_path / "t.db"), kwargs={"timeout": 5}, **kw)
