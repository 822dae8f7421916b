"""What runs in a connection's thread: plain blocking DB-API code.

Each function takes the raw DB-API connection first and returns what the
awaiting caller gets (a :class:`~tornpool.dbapi.Result`, usually).  Nothing
here touches the event loop or the pool; :mod:`._executor_bound` runs these
functions in the right thread and carries their outcome back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._executor_driver import Driver, run_sql
from ._sqlite_result import Result

__all__ = ["open_raw", "statement", "many", "run_sql", "set_up", "end_transaction", "recycle_raw",
           "close_raw"]

Raw = Any


def _result(cur: Any) -> Result:
    desc = cur.description
    if desc is None:
        return Result([], None, cur.rowcount, getattr(cur, "lastrowid", None))
    rows = cur.fetchall()
    if type(rows) is not list:
        rows = list(rows)
    return Result(rows, tuple(desc), len(rows), getattr(cur, "lastrowid", None))


def statement(conn: Raw, sql: Any, params: Any, commit: bool) -> Result:
    """Run one statement and read its whole result; commit afterwards when
    ``commit`` (a pool-level call in a pool without autocommit), rolling
    back if the statement or the commit fails."""
    cur = conn.cursor()
    try:
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, params)
        result = _result(cur)
        if commit:
            conn.commit()
    except BaseException:
        if commit:
            _rollback_quietly(conn)
        raise
    finally:
        cur.close()
    return result


def many(conn: Raw, sql: Any, seq: Sequence[Any], begin: str | None, commit: bool) -> Result:
    """``executemany``; with ``begin`` (autocommit on) or ``commit``
    (autocommit off) it is one transaction: every row or none."""
    cur = conn.cursor()
    try:
        if begin is not None:
            cur.execute(begin)
        cur.executemany(sql, seq)
        result = Result([], None, cur.rowcount, getattr(cur, "lastrowid", None))
        if begin is not None:
            cur.execute("COMMIT")
        elif commit:
            conn.commit()
    except BaseException:
        if begin is not None or commit:
            _rollback_quietly(conn, begin is not None)
        raise
    finally:
        cur.close()
    return result


def end_transaction(conn: Raw, word: str, autocommit: bool) -> None:
    """COMMIT or ROLLBACK: as a statement in autocommit mode (some drivers'
    ``commit()`` does nothing there), else the driver's own method."""
    if autocommit:
        run_sql(conn, word)
    elif word == "COMMIT":
        conn.commit()
    else:
        conn.rollback()


def _rollback_quietly(conn: Raw, as_sql: bool = False) -> None:
    try:
        if as_sql:
            run_sql(conn, "ROLLBACK")
        else:
            conn.rollback()
    except Exception:  # noqa: BLE001 - the statement's own error is the one to see
        pass


def set_up(conn: Raw, driver: Driver, autocommit: bool, init_sql: Iterable[str],
           initializer: Callable[[Raw], Any] | None) -> None:
    """Put a connection in the pool's baseline session: autocommit as asked,
    ``init_sql``, ``initializer(conn)`` (committed when autocommit is off)."""
    driver.set_autocommit(conn, autocommit)
    for sql in init_sql:
        run_sql(conn, sql)
    if initializer is not None:
        initializer(conn)
    if not autocommit and driver.in_transaction(conn) is not False:
        conn.commit()


def open_raw(opener: Callable[[], Raw], driver: Driver, autocommit: bool, init_sql: Iterable[str],
             initializer: Callable[[Raw], Any] | None) -> tuple[Raw, Any]:
    """Connect and set the session up; returns ``(conn, server_id)``.  A
    connection that fails its set-up is closed."""
    conn = opener()
    try:
        set_up(conn, driver, autocommit, init_sql, initializer)
        server_id = driver.server_id(conn)
    except BaseException:
        close_raw(conn)
        raise
    return conn, server_id


def recycle_raw(conn: Raw, driver: Driver, autocommit: bool, rollback: bool, reset: bool,
                init_sql: Iterable[str], initializer: Callable[[Raw], Any] | None,
                hook: Callable[[Raw], Any] | None) -> None:
    """Make a returned connection ready for the next caller: roll back an
    open transaction, reset the session (and set it up again), run the
    pool's ``reset`` hook."""
    if rollback:
        end_transaction(conn, "ROLLBACK", autocommit)
    if reset:
        assert driver.reset is not None
        driver.reset(conn)
        set_up(conn, driver, autocommit, init_sql, initializer)
    if hook is not None:
        hook(conn)


def close_raw(conn: Raw) -> None:
    """Close, never raising (a broken connection may refuse)."""
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing is best effort
        pass
