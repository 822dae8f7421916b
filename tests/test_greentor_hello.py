"""greentor's own demo app (``tests/hello.py`` in greentor's repository), with
only ``from greentor import`` changed to ``from greentor_compat import``.

hello.py connects to ``localhost:3306`` as root and reads ``test.app_blog``;
it also listens on port 8000.  So this test runs it, and a throwaway MariaDB
on port 3306, inside a private network namespace (``unshare -n``, as root):
the machine's own port 3306 and 8000 are never touched.  It needs the file --
``GREENTOR_HELLO=/path/to/greentor/tests/hello.py`` from a clone of
https://github.com/zhu327/greentor -- and is skipped without it (or without
root and ``unshare``), so it is not part of the default run::

    GREENTOR_HELLO=/tmp/greentor/tests/hello.py .venv/bin/python -m pytest tests/test_greentor_hello.py

What it checks: both handlers answer with the row; with the table locked
from outside, eight requests (four per handler) all reach the server and
wait there together while the loop still answers other requests; after the
unlock every one of them gets its page.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
HELLO = os.environ.get("GREENTOR_HELLO")
BLOCKED = 8


def compat_source(original: str) -> str:
    """hello.py with its greentor imports pointed at greentor_compat."""
    return re.sub(r"^from greentor import", "from greentor_compat import", original, flags=re.M)


def fetch(path: str, timeout: float = 30) -> tuple[int, str]:
    try:
        with urllib.request.urlopen("http://127.0.0.1:8000" + path, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def waiting_in_server(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.processlist "
                    "WHERE state LIKE 'Waiting for table%' AND info LIKE '%app_blog%'")
        return int(cur.fetchone()[0])


def drive(hello: str) -> dict[str, Any]:
    """Inside the private namespace: server, hello.py, requests.  Returns what happened."""
    import signal

    import pymysql

    from tornpool.testing import MariaDBServer

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit("terminated")  # so that the server and hello.py are stopped below

    signal.signal(signal.SIGTERM, stop)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    out: dict[str, Any] = {}
    with MariaDBServer(extra_args=["--port=3306"]) as srv:
        admin = pymysql.connect(unix_socket=srv.unix_socket, user="root", autocommit=True)
        with admin.cursor() as cur:
            cur.execute("CREATE TABLE test.app_blog (id INT PRIMARY KEY AUTO_INCREMENT, "
                        "title VARCHAR(100), content TEXT)")
            cur.execute("INSERT INTO test.app_blog (title, content) VALUES ('Hello', 'greentor on Python 3')")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        app = subprocess.Popen([sys.executable, hello, "--port=8000"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    out["own"] = fetch("/")
                    break
                except OSError:
                    assert time.monotonic() < deadline, "hello.py did not start"
                    time.sleep(0.1)
            out["pool"] = fetch("/pool/")
            with admin.cursor() as cur:
                cur.execute("LOCK TABLES test.app_blog WRITE")
            with concurrent.futures.ThreadPoolExecutor(BLOCKED) as clients:
                blocked = [clients.submit(fetch, path) for path in ["/", "/pool/"] * (BLOCKED // 2)]
                watcher = pymysql.connect(unix_socket=srv.unix_socket, user="root", autocommit=True)
                deadline = time.monotonic() + 15
                peak = 0
                while peak < BLOCKED and time.monotonic() < deadline:
                    peak = max(peak, waiting_in_server(watcher))
                    time.sleep(0.05)
                out["waiting_together"] = peak
                start = time.monotonic()
                out["meanwhile"] = fetch("/not-a-page", timeout=5)[0]
                out["meanwhile_s"] = time.monotonic() - start
                out["still_blocked"] = sum(not f.done() for f in blocked)
                with admin.cursor() as cur:
                    cur.execute("UNLOCK TABLES")
                out["after_unlock"] = [f.result() for f in blocked]
                watcher.close()
        finally:
            app.terminate()
            out["app_output"] = app.communicate(timeout=10)[0][-2000:]
            admin.close()
    return out


@pytest.mark.skipif(not HELLO, reason="set GREENTOR_HELLO to greentor's tests/hello.py")
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"),
                    reason="needs root, unshare and ip for a private network namespace")
def test_greentors_hello_runs_with_only_the_import_changed(tmp_path: Path) -> None:
    assert HELLO is not None
    original = Path(HELLO).read_text()
    changed = compat_source(original)
    diff = [line for line in difflib.unified_diff(original.splitlines(), changed.splitlines(), lineterm="")
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert sorted(diff) == ["+from greentor_compat import green", "+from greentor_compat import mysql",
                            "-from greentor import green", "-from greentor import mysql"]
    hello = tmp_path / "hello.py"
    hello.write_text(changed)
    code = ("import json, sys; sys.path.insert(0, %r); import test_greentor_hello as t; "
            "print('RESULT ' + json.dumps(t.drive(%r)))" % (str(Path(__file__).parent), str(hello)))
    # unshare execs the driver, so a SIGTERM on timeout reaches it and it cleans up
    proc = subprocess.Popen(["unshare", "-n", sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=30)
        pytest.fail("greentor's hello.py did not finish in 120 s:\n" + stdout[-3000:] + stderr[-3000:])
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, stdout[-3000:] + stderr[-3000:]
    got = json.loads(lines[-1][len("RESULT "):])
    assert got["own"] == [200, "<p>Hello</p><p>greentor on Python 3</p>"], got["app_output"]
    status, text = got["pool"]
    assert status == 200 and text.startswith("<p>Hello</p><p>(1, 'Hello', 'greentor on Python 3')")
    assert got["waiting_together"] == BLOCKED  # all in the server at once: the loop was free
    assert got["meanwhile"] == 404 and got["meanwhile_s"] < 1.0
    assert got["still_blocked"] == BLOCKED
    assert [s for s, _ in got["after_unlock"]] == [200] * BLOCKED
    assert all("greentor on Python 3" in t for _, t in got["after_unlock"])
