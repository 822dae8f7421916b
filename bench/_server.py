"""The server a benchmark talks to: ``--dsn`` if given, else a throwaway
mariadbd pinned to one CPU while this process moves to another."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any


def connect_params(dsn: str) -> dict[str, Any]:
    """``dsn`` as keyword arguments, with the peers' usual defaults filled in."""
    from tornpool.dsn import parse_dsn

    params: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "",
                              "database": "test"}
    params.update(parse_dsn(dsn))
    return params


@contextlib.contextmanager
def bench_server(dsn: str | None, pin: bool = True) -> Iterator[str]:
    """Yield a DSN: ``dsn`` itself, or that of a throwaway server.

    With ``pin`` and two or more CPUs, mariadbd runs on the first CPU and this
    process (and the clients it spawns) on the last, as with a database on its
    own host: otherwise the scheduler parks mariadbd on the client's core now
    and then, which preempts the client and skews CPU figures run to run.
    """
    if dsn:
        yield dsn
        return
    from tornpool.testing import MariaDBServer

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = pin and len(cpus) >= 2
    if pin:
        os.sched_setaffinity(0, {cpus[0]})  # the server inherits this
    with MariaDBServer() as server:
        if pin:
            os.sched_setaffinity(0, {cpus[-1]})
            print(f"# pinned: mariadbd on CPU {cpus[0]}, clients on CPU {cpus[-1]}", file=sys.stderr)
        yield server.dsn
