"""Serve the Django demo on Tornado.

    python -m demos.django_demo [--dsn mysql://...] [--port 8890] [--max-size 10]
    bash scripts/dev.sh django-demo [--port N] [--dsn DSN]

Without ``--dsn`` (or ``TORNPOOL_TEST_DSN``) it starts a throwaway MariaDB of
its own and removes it on exit; it creates its two tables if missing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from demos.app import database, port_taken
from demos.django_demo.config import configure, create_tables, database_settings
from greentor_compat.green import spawn


async def serve(port: int, address: str) -> None:
    from demos.django_demo.handlers import make_app
    from greentor_compat.django import pooling

    await spawn(create_tables)
    server = make_app().listen(port, address)
    print(f"Django demo on tornpool: http://{address}:{port}/  (Ctrl-C to stop)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    await server.close_all_connections()
    await spawn(pooling.close_pools)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default=os.environ.get("TORNPOOL_TEST_DSN"))
    parser.add_argument("--port", type=int, default=8890)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--max-size", type=int, default=10, help="cap on server connections")
    args = parser.parse_args()
    why = port_taken(args.address, args.port)
    if why is not None:
        sys.exit(f"Django demo: cannot listen on {args.address}:{args.port} ({why}); pick another --port")
    with database(args.dsn) as dsn:
        configure({"default": database_settings(dsn, pool={"max_size": args.max_size, "timeout": 10})})
        asyncio.run(serve(args.port, args.address))


if __name__ == "__main__":
    main()
