"""python -m demos.django_demo: started by one command, it answers through
the ORM and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from demos.launch import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()  # type: ignore[no-any-return]


def test_the_demo_serves_notes_through_the_orm(mariadb_dsn: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen([sys.executable, "-m", "demos.django_demo", "--dsn", mariadb_dsn,
                                  "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                 text=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert child.poll() is None, log.seek(0) or log.read()
                try:
                    assert get(base + "/ping") == b"pong"
                    break
                except (urllib.error.URLError, ConnectionError):
                    assert time.monotonic() < deadline, "the demo did not serve within 60 s"
                    time.sleep(0.1)
            tag = uuid.uuid4().hex[:10]
            body = urllib.parse.urlencode({"name": "tester", "message": tag}).encode()
            created = json.loads(urllib.request.urlopen(base + "/api/notes", data=body, timeout=10).read())
            assert created["on_commit"] == [created["id"]]
            notes = json.loads(get(base + "/api/notes"))["notes"]
            assert any(n["message"] == tag for n in notes)
            page = get(base + "/").decode()
            assert tag in page and "MariaDB" in page
            slow = json.loads(get(base + "/api/slow?s=0.1"))
            assert slow["slept"] and slow["same_connection"]
            pool = json.loads(get(base + "/api/pool"))
            assert pool["default"]["used"] >= 1
        finally:
            child.send_signal(signal.SIGTERM)
            code = child.wait(30)
        log.seek(0)
        assert code == 0, log.read()
