"""Django behind a threaded WSGI server: 200 requests, each served in a new
thread, reuse the pool's connections through its blocking face -- the
server never sees more than max_size of them."""

from __future__ import annotations

import json
import socketserver
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from greentor_compat.django import pooling


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """A new thread per request (counted in :attr:`threads_started`)."""

    daemon_threads = True
    threads_started = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        self.threads_started += 1
        super().process_request(request, client_address)


class Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_two_hundred_requests_in_new_threads_stay_within_max_size(
        django_env: str, server_connections: Any) -> None:
    from demos.django_demo.wsgi import application

    server = make_server("127.0.0.1", 0, application(), server_class=ThreadingWSGIServer,
                         handler_class=Quiet)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    url = f"http://127.0.0.1:{server.server_port}/api/slow?s=0.02"

    def fetch(_: int) -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.load(resp)  # type: ignore[no-any-return]

    try:
        with server_connections as sampler, ThreadPoolExecutor(max_workers=25) as clients:
            answers = list(clients.map(fetch, range(200)))
    finally:
        server.shutdown()
        server.server_close()
    assert len(answers) == 200 and all(a["slept"] for a in answers)
    assert len({a["connection_id"] for a in answers}) <= 10
    assert sampler.samples > 0 and sampler.peak <= 10, sampler.peak
    assert pooling.pools()["default"].budget.used <= 10
    assert server.threads_started == 200
    print(f"threaded WSGI: 200 requests, peak server connections {sampler.peak}, "
          f"{len({a['connection_id'] for a in answers})} distinct")
