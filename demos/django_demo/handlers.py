"""The demo's Tornado handlers: blocking-style Django ORM code in greenlets.

* ``/``            -- the latest notes and a form (HTML);
* ``/api/notes``   -- GET: the latest notes; POST ``name``, ``message`` (and
  ``fail=1`` to roll back): a note and a counter bump in one ``atomic()``
  block, the counter row locked with ``select_for_update`` first (the block
  runs again if InnoDB picks it as a deadlock's victim, as the server asks);
* ``/api/slow``    -- ``SELECT SLEEP(s)`` on the request's connection
  (``?s=0.2``), with the connection's id and the server's clock before and
  after; several at once overlap;
* ``/api/pool``    -- the pool's figures;
* ``/ping``        -- no database: it answers while the others wait.
"""

from __future__ import annotations

import html
from typing import Any

from django.db import OperationalError, connection, transaction
from tornado import web

from demos.django_demo.models import Counter, Note
from greentor_compat.django import pooling
from greentor_compat.django.tornado import GreenRequestHandler

__all__ = ["make_app"]

#: MySQL's ER_LOCK_DEADLOCK, and how often a note's transaction is run again after it
_ER_LOCK_DEADLOCK = 1213
_DEADLOCK_RETRIES = 3


class Home(GreenRequestHandler):
    def get(self) -> None:
        notes = list(Note.objects.all()[:20])
        total = Counter.objects.filter(name="notes").values_list("value", flat=True).first() or 0
        items = "".join("<li><b>%s</b>: %s</li>" % (html.escape(n.name), html.escape(n.message))
                        for n in notes)
        self.finish("<!doctype html><meta charset=utf-8><title>Django on tornpool</title>"
                    "<h1>Django on tornpool</h1><p>%d notes, on %s %s</p><ul>%s</ul>"
                    "<form method=post action=/api/notes><input name=name placeholder=name required> "
                    "<input name=message placeholder=message required><button>Add</button></form>"
                    % (total, connection.display_name, html.escape(connection.mysql_server_info), items))


class Notes(GreenRequestHandler):
    def get(self) -> None:
        self.finish({"notes": [n.as_dict() for n in Note.objects.all()[:20]]})

    def post(self) -> None:
        name = self.get_body_argument("name")[:60]
        message = self.get_body_argument("message")[:500]
        fail = self.get_body_argument("fail", "") == "1"
        committed: list[int] = []
        for attempt in range(_DEADLOCK_RETRIES + 1):
            try:
                with transaction.atomic():
                    # the counter first: every request locks the same row before it
                    # writes anything else, so concurrent ones queue on it
                    counter, _ = Counter.objects.select_for_update().get_or_create(name="notes")
                    note = Note.objects.create(name=name, message=message)
                    counter.value += 1
                    counter.save(update_fields=["value"])
                    transaction.on_commit(lambda: committed.append(note.id))
                    if fail:
                        raise RuntimeError("asked to fail")
                break
            except RuntimeError:
                self.set_status(409)
                self.finish({"rolled_back": True})
                return
            except OperationalError as exc:
                # InnoDB chose this transaction as a deadlock's victim (two first
                # requests creating the counter row at once): it was rolled back
                # whole, and the server's advice is to run it again
                if exc.args[:1] != (_ER_LOCK_DEADLOCK,) or attempt == _DEADLOCK_RETRIES:
                    raise
        if self.request.headers.get("Accept", "").startswith("text/html"):
            self.redirect("/")
            return
        self.finish({"id": note.id, "count": counter.value, "on_commit": committed})


class Slow(GreenRequestHandler):
    def get(self) -> None:
        seconds = min(float(self.get_query_argument("s", "0.2")), 5.0)
        with connection.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID(), UNIX_TIMESTAMP(SYSDATE(6))")
            before, started = cursor.fetchone()
            cursor.execute("SELECT SLEEP(%s), CONNECTION_ID(), UNIX_TIMESTAMP(SYSDATE(6))", [seconds])
            slept, after, ended = cursor.fetchone()
        self.finish({"connection_id": after, "same_connection": before == after, "slept": slept == 0,
                     "started": float(started), "ended": float(ended)})


class PoolStats(web.RequestHandler):
    def get(self) -> None:
        self.finish({alias: pool.stats() for alias, pool in pooling.pools().items()})


class Ping(web.RequestHandler):
    def get(self) -> None:
        self.finish("pong")


def make_app(**settings: Any) -> web.Application:
    return web.Application([
        (r"/", Home), (r"/api/notes", Notes), (r"/api/slow", Slow),
        (r"/api/pool", PoolStats), (r"/ping", Ping),
    ], **settings)
