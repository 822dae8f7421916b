"""Run a benchmark suite: ``python -m bench [core|codec|pool] [options]``.

* ``core``  (default): tornpool vs PyMySQL, mysqlclient, aiomysql, asyncmy --
  sequential SELECT 1 and a 10k-row mixed fetch (bench/core_bench.py);
* ``codec``: row decoding alone, C vs pure twin vs PyMySQL (bench/codec_bench.py);
* ``pool``: pools under 100 coroutines / 10 connections (bench/pool_bench.py);
* ``floor``: a SELECT 1 round trip layer by layer, from a blocking socket to
  tornpool's pool (bench/floor.py).
"""

from __future__ import annotations

import importlib
import sys

SUITES = {"core": "bench.core_bench", "codec": "bench.codec_bench", "pool": "bench.pool_bench",
          "floor": "bench.floor"}


def main() -> None:
    argv = sys.argv[1:]
    suite = "core"
    if argv and argv[0] in SUITES:
        suite = argv.pop(0)
    elif argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    module = importlib.import_module(SUITES[suite])
    sys.argv = [f"bench {suite}"] + argv
    module.main()


if __name__ == "__main__":
    main()
