"""Django's async-safety guard: ORM code in a tornpool greenlet passes it;
coroutine code on the loop, and a greenlet that cannot wait, still get
SynchronousOnlyOperation -- without DJANGO_ALLOW_ASYNC_UNSAFE either way."""

from __future__ import annotations

import asyncio
import os

import greenlet
import pytest
from tornpool import green as tgreen

from greentor_compat import green


def count_notes() -> int:
    from demos.django_demo.models import Note

    return int(Note.objects.count())


def close_connections() -> None:
    from django.db import connections

    connections.close_all()


@pytest.mark.gen_test(timeout=30)
async def test_orm_in_a_greenlet_passes_and_a_coroutine_is_refused(django_env: str) -> None:
    from django.core.exceptions import SynchronousOnlyOperation
    from django.db import connection

    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in os.environ
    assert await tgreen.spawn(count_notes) >= 0  # tornpool.green.spawn greenlet
    assert await green.spawn(count_notes) >= 0   # greentor_compat green task
    with pytest.raises(SynchronousOnlyOperation):
        count_notes()                            # this coroutine, on the loop
    with pytest.raises(SynchronousOnlyOperation):
        connection.cursor()
    await tgreen.spawn(close_connections)


@pytest.mark.gen_test(timeout=30)
async def test_a_plain_greenlet_on_the_loop_is_refused(django_env: str) -> None:
    """A greenlet that cannot wait would block the loop: the guard stays."""
    from django.core.exceptions import SynchronousOnlyOperation

    with pytest.raises(SynchronousOnlyOperation):
        greenlet.greenlet(count_notes).switch()


def test_in_a_plain_thread_nothing_guards_and_nothing_is_needed(django_env: str) -> None:
    assert count_notes() >= 0
    close_connections()


def test_the_guard_is_answered_per_call_on_every_guarded_method() -> None:
    from django.db.backends.mysql.base import DatabaseWrapper as Stock

    from greentor_compat.django import guard
    from greentor_compat.django.mysql.base import DatabaseWrapper

    stock = set(guard.guarded_names(Stock))
    assert {"connect", "cursor", "commit", "rollback", "close", "ensure_connection"} <= stock
    assert guard.guarded_names(DatabaseWrapper) == []  # each one rewritten
    for name in stock:
        assert getattr(DatabaseWrapper, name).__wrapped__ is not None


@pytest.mark.gen_test(timeout=30)
async def test_coroutines_use_djangos_async_api_which_runs_the_orm_in_a_thread(django_env: str) -> None:
    """Where the guard keeps refusing, Django's own async API is the way:
    ``acount()`` runs the query in asgiref's worker thread, on the pool's
    blocking face."""
    from demos.django_demo.models import Note

    from greentor_compat.django import pooling

    assert await Note.objects.acount() >= 0
    faces = pooling.pools()["default"].faces()
    assert any(loop is not asyncio.get_running_loop() for loop in faces)  # the threads' face
