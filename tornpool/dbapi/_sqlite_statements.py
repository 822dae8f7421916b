"""Where a statement runs: on a reader, on the writer, or nowhere.

The proxy looks at the statement's first keyword (after blanks and
comments).  ``SELECT``, ``VALUES``, ``WITH``, ``EXPLAIN`` and ``PRAGMA`` are
*read candidates*: they go to a reader, which refuses anything that would
write (``WITH ... INSERT``, ``PRAGMA x = y``) while preparing it -- before
it ran -- and the proxy then sends it to the writer and remembers that for
this exact SQL text.  Everything else goes to the writer: ``INSERT``,
``UPDATE``, ``DELETE``, ``REPLACE`` (and a ``WITH`` that turned out to be one
of them) are *DML*, which the writer may group-commit with other callers'
(:mod:`tornpool.dbapi._sqlite_batch`); the rest (DDL, PRAGMA settings,
VACUUM, ATTACH, ...) take the writer for themselves, outside any transaction.

Transaction control (``BEGIN``, ``COMMIT``, ``END``, ``ROLLBACK``) is never a
statement of its own: the writer is shared by every caller, so transactions
belong to ``proxy.transaction()``.  ``SAVEPOINT``, ``RELEASE`` and
``ROLLBACK TO`` are allowed inside one.
"""

from __future__ import annotations

import threading
from typing import Dict, List

from ._sqlite_errors import TransactionControlError

__all__ = ["READ", "DML", "WRITE", "SAVEPOINT", "TX_CONTROL", "classify", "RouteCache"]

READ, DML, WRITE, SAVEPOINT, TX_CONTROL = range(5)

_READ_KEYWORDS = frozenset(("SELECT", "VALUES", "WITH", "EXPLAIN", "PRAGMA"))
_TX_KEYWORDS = frozenset(("BEGIN", "COMMIT", "END"))
_SAVEPOINT_KEYWORDS = frozenset(("SAVEPOINT", "RELEASE"))
_DML_KEYWORDS = frozenset(("INSERT", "UPDATE", "DELETE", "REPLACE"))


def leading_keywords(sql: str, limit: int = 3) -> List[str]:
    """The first ``limit`` words of ``sql``, upper-cased, skipping blanks,
    ``-- line`` and ``/* block */`` comments (a word ends at any character
    that is not a letter)."""
    words: List[str] = []
    i, n = 0, len(sql)
    while i < n and len(words) < limit:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c.isalpha():
            j = i + 1
            while j < n and (sql[j].isalpha() or sql[j] == "_"):
                j += 1
            words.append(sql[i:j].upper())
            i = j
        else:
            break
    return words


def classify(sql: str) -> int:
    """``READ`` (a candidate), ``DML``, ``WRITE``, ``SAVEPOINT`` or ``TX_CONTROL``."""
    words = leading_keywords(sql)
    if not words:
        return WRITE  # empty or odd: let SQLite say what is wrong, on the writer
    first = words[0]
    if first in _READ_KEYWORDS:
        return READ
    if first in _DML_KEYWORDS:
        return DML
    if first in _TX_KEYWORDS:
        return TX_CONTROL
    if first in _SAVEPOINT_KEYWORDS:
        return SAVEPOINT
    if first == "ROLLBACK":
        rest = words[1:]
        if rest[:1] == ["TRANSACTION"]:
            rest = rest[1:]
        return SAVEPOINT if rest[:1] == ["TO"] else TX_CONTROL
    return WRITE


class RouteCache:
    """``classify`` with a memory: SQL text -> route, bounded, thread-safe.

    :param size: entries kept before the cache starts afresh.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._routes: Dict[str, int] = {}
        self._lock = threading.Lock()

    def route(self, sql: str, in_transaction: bool) -> int:
        """Where ``sql`` runs.

        :raises TransactionControlError: a transaction-control statement
            (always), or a savepoint statement outside a transaction.
        """
        route = self._routes.get(sql)
        if route is None:
            route = classify(sql)
            self._remember(sql, route)
        if route == TX_CONTROL or (route == SAVEPOINT and not in_transaction):
            raise TransactionControlError(
                "transactions belong to proxy.transaction() (the writer is shared by every "
                "caller): %r" % (sql[:80],))
        return route

    def learned_write(self, sql: str) -> int:
        """A reader refused ``sql``: send it straight to the writer from now on.

        :returns: its route: ``DML`` for a ``WITH ... INSERT/UPDATE/DELETE``,
            else ``WRITE``.
        """
        route = DML if leading_keywords(sql, 1) == ["WITH"] else WRITE
        self._remember(sql, route)
        return route

    def _remember(self, sql: str, route: int) -> None:
        with self._lock:
            if len(self._routes) >= self.size:
                self._routes.clear()
            self._routes[sql] = route
