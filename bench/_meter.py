"""Client CPU and wall time around a measured loop, per unit of work."""

from __future__ import annotations

import resource
import time


class Meter:
    """CPU (``time.process_time()``: every thread of this process, none of the
    server's), its user/system split (as ``getrusage`` apportions it) and wall
    time between :meth:`start` and :meth:`stop`, per unit of work."""

    def start(self) -> None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        self._u, self._s = r.ru_utime, r.ru_stime
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def stop(self, units: int) -> dict[str, float]:
        """Figures in microseconds per unit since :meth:`start`."""
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        r = resource.getrusage(resource.RUSAGE_SELF)
        user, system = r.ru_utime - self._u, r.ru_stime - self._s
        share = user / (user + system) if user + system > 0 else 1.0
        units = max(units, 1)
        return {"cpu_us": cpu / units * 1e6, "user_us": cpu * share / units * 1e6,
                "sys_us": cpu * (1 - share) / units * 1e6, "wall_us": wall / units * 1e6,
                "units": units}
