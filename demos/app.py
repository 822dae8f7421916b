"""The tornpool demo: a small shop on a pool, with a live dashboard of the pool.

    python -m demos.app [--dsn mysql://...] [--port 8888] [--address 127.0.0.1]
    bash scripts/dev.sh demo [--port N] [--dsn DSN]

Without ``--dsn`` (or ``TORNPOOL_TEST_DSN``) it starts a throwaway MariaDB of its
own (``tornpool.testing.MariaDBServer``) and removes it on exit.  With a DSN it
creates its three tables there if missing (``product``, ``customer_order``,
``order_item``).

Pages: ``/`` the shop, ``/orders``, ``/dashboard`` the live pool dashboard,
``/stats`` Prometheus text; the JSON API is under ``/api/`` (see
``demos/shop/api.py`` and ``docs/demo.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Iterator

import tornpool
from tornpool import Pool
from tornpool.testing import MariaDBNotFound, MariaDBServer, ServerStartError

from demos.shop import Shop, make_app

__all__ = ["main", "serve", "database", "port_taken", "make_app", "Shop"]

#: The demo pool: small at rest, room to grow under a burst.
POOL_SIZE = 4
POOL_MAX = 10


async def serve(dsn: str, port: int, address: str, *, size: int = POOL_SIZE,
                max_size: int = POOL_MAX) -> None:
    """Serve the shop until SIGINT or SIGTERM."""
    async with Pool(dsn, size=size, max_size=max_size, timeout=10, name="shop") as pool, \
            Pool(dsn, size=1, max_size=1, name="admin") as admin, \
            Shop(pool, admin) as shop:
        server = make_app(shop).listen(port, address)
        print(f"tornpool demo: http://{address}:{port}/  dashboard: http://{address}:{port}/dashboard"
              "  (Ctrl-C to stop)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()
        await shop.stop()  # ends the dashboards' event streams
        await server.close_all_connections()


@contextlib.contextmanager
def database(dsn: str | None) -> Iterator[str]:
    """``dsn``, or that of a throwaway MariaDB for the duration."""
    if dsn:
        yield dsn
        return
    print("tornpool demo: starting a throwaway MariaDB ...", flush=True)
    with MariaDBServer() as server:
        yield server.dsn


def port_taken(address: str, port: int) -> str | None:
    """Why the demo cannot listen on ``address:port``, or None."""
    probe = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((address, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        probe.close()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("TORNPOOL_TEST_DSN"))
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--size", type=int, default=POOL_SIZE, help="connections kept open")
    parser.add_argument("--max-size", type=int, default=POOL_MAX, help="cap on connections")
    args = parser.parse_args()
    if not 0 <= args.size <= args.max_size or args.max_size < 1:
        parser.error("need 0 <= --size <= --max-size and --max-size >= 1")
    why = port_taken(args.address, args.port)
    if why is not None:
        sys.exit(f"tornpool demo: cannot listen on {args.address}:{args.port} ({why}); "
                 f"pick another port with --port, e.g. `bash scripts/dev.sh demo --port {args.port + 1}`")
    try:
        with database(args.dsn) as dsn:
            asyncio.run(serve(dsn, args.port, args.address, size=args.size, max_size=args.max_size))
    except (tornpool.OperationalError, tornpool.DSNError, MariaDBNotFound, ServerStartError) as exc:
        # a server that cannot be reached or started: say so in one line
        sys.exit(f"tornpool demo: cannot start: {exc}")


if __name__ == "__main__":
    main()
