"""Run ``python -m demos.app`` in a child process on a free port, for the
browser test and the screenshot script: wait until it serves, stop it with
SIGTERM (its clean shutdown) when done."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

__all__ = ["free_port", "demo_process", "get_json", "post_json"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def post_json(url: str, body: dict[str, Any], timeout: float = 5.0) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.load(resp)


@contextlib.contextmanager
def demo_process(dsn: str | None = None, *, start_timeout: float = 60.0,
                 extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """The demo serving on a free loopback port; yields its base URL.
    Without ``dsn`` the demo starts its own throwaway MariaDB.

    :raises RuntimeError: it exited or did not serve within ``start_timeout``,
        or did not exit cleanly on SIGTERM (the message has its output).
    """
    port = free_port()
    args = [sys.executable, "-m", "demos.app", "--port", str(port), *extra_args]
    if dsn:
        args += ["--dsn", dsn]
    env = dict(os.environ)
    if not dsn:
        env.pop("TORNPOOL_TEST_DSN", None)
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                if child.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"the demo exited with {child.returncode}:\n{log.read()}")
                try:
                    get_json(base + "/api/pool", timeout=2)
                    break
                except (urllib.error.URLError, ConnectionError):
                    if time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"the demo did not serve within {start_timeout} s:\n"
                                           f"{log.read()}") from None
                    time.sleep(0.1)
            yield base
            code = _stop(child)
            if code != 0:
                log.seek(0)
                raise RuntimeError(f"the demo exited with {code} on SIGTERM:\n{log.read()}")
        finally:
            _stop(child)


def _stop(child: subprocess.Popen[str]) -> int:
    """SIGTERM, then SIGKILL after 30 s; the exit code."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode
