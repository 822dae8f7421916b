"""The server a benchmark talks to, and where it and the clients run.

Two placements of a throwaway ``mariadbd`` (``tornpool.testing``):

* ``pinned``: mariadbd on the first CPU, this process and every client it
  spawns on the last, as with a database on its own host.  Each query then
  wakes the server's vCPU and the client's, which adds a fixed cost to every
  round trip and hides part of the client's own;
* ``unpinned``: no affinity for either; the scheduler places them and the
  server sometimes runs on the client's core, preempting it.

With ``--dsn`` the server is someone else's: no affinity is set and the
placement is recorded as ``external``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

PLACEMENTS = ("pinned", "unpinned")
EXTERNAL = "external"


def connect_params(dsn: str) -> dict[str, Any]:
    """``dsn`` as keyword arguments, with the peers' usual defaults filled in."""
    from tornpool.dsn import parse_dsn

    params: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "",
                              "database": "test"}
    params.update(parse_dsn(dsn))
    return params


def peer_params(dsn: str, db_key: str = "db", password_key: str = "password",
                **extra: Any) -> dict[str, Any]:
    """``dsn`` as a peer driver's keyword arguments: the database and password
    under that driver's names, ``charset='utf8mb4'`` (tornpool's default), and
    ``extra``."""
    p = connect_params(dsn)
    p[db_key] = p.pop("database")
    p[password_key] = p.pop("password")
    p["charset"] = "utf8mb4"
    p.update(extra)
    return p


def _cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def resolve_placements(choice: str, dsn: str | None) -> list[str]:
    """The placements to run for ``--placement choice``.

    :raises SystemExit: ``pinned`` was asked for on a machine with one CPU.
    """
    if dsn:
        if choice != "both":
            print(f"# --dsn given: the server is not ours to place; --placement {choice} ignored",
                  file=sys.stderr)
        return [EXTERNAL]
    wanted = list(PLACEMENTS) if choice == "both" else [choice]
    if "pinned" in wanted and len(_cpus()) < 2:
        if choice == "pinned":
            raise SystemExit("--placement pinned needs two CPUs; this machine has one")
        print("# one CPU: running unpinned only", file=sys.stderr)
        wanted.remove("pinned")
    return wanted


@dataclass
class Placed:
    """A running server and where things run: ``server_cpus``/``client_cpus``
    are the CPUs each may use (``None``: not ours to know)."""

    dsn: str
    placement: str
    server_cpus: list[int] | None = None
    client_cpus: list[int] | None = None
    server_pid: int | None = field(default=None)


@contextlib.contextmanager
def bench_server(dsn: str | None, placement: str) -> Iterator[Placed]:
    """Yield a :class:`Placed`: ``dsn`` itself (placement ``external``) or a
    throwaway server placed as ``placement`` says; this process's affinity is
    restored on exit."""
    if dsn:
        yield Placed(dsn, EXTERNAL)
        return
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, not {placement!r}")
    from tornpool.testing import MariaDBServer

    has_affinity = hasattr(os, "sched_setaffinity")
    every = set(_cpus())  # "unpinned" = whatever this process may use (all CPUs, or taskset's)
    try:
        if has_affinity:
            # the server inherits this process's affinity when it is spawned
            os.sched_setaffinity(0, {min(every)} if placement == "pinned" else every)
        with MariaDBServer() as server:
            if placement == "pinned":
                client = {max(every)}
                os.sched_setaffinity(0, client)
                print(f"# pinned: mariadbd on CPU {min(every)}, clients on CPU {max(every)}",
                      file=sys.stderr)
                placed = Placed(server.dsn, placement, [min(every)], sorted(client), server.pid)
            else:
                print("# unpinned: mariadbd and clients on any CPU", file=sys.stderr)
                placed = Placed(server.dsn, placement, sorted(every), sorted(every), server.pid)
            yield placed
    finally:
        if has_affinity:
            os.sched_setaffinity(0, every)
