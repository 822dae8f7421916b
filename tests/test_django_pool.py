"""greentor_compat.django's pool: close() gives back, an open transaction is
rolled back, the cap holds for greenlets, for threads and for both together,
and atomic/savepoints/select_for_update/on_commit work in concurrent greenlets."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from tornpool import green as tgreen

from greentor_compat.django import pooling


def marker() -> str:
    return uuid.uuid4().hex[:12]


def connection_id(alias: str = "default") -> int:
    from django.db import connections

    with connections[alias].cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        return int(cur.fetchone()[0])


def close(alias: str = "default") -> None:
    from django.db import connections

    connections[alias].close()


def notes_named(name: str) -> int:
    from demos.django_demo.models import Note

    return int(Note.objects.filter(name=name).count())


@pytest.mark.gen_test(timeout=30)
async def test_close_gives_the_connection_back_to_the_pool(django_env: str) -> None:
    def twice() -> tuple[int, int, dict[str, Any]]:
        first = connection_id("small")
        close("small")
        stats = pooling.pools()["small"].stats()
        second = connection_id("small")
        close("small")
        return first, second, stats

    first, second, stats = await tgreen.spawn(twice)
    assert first == second  # the same server connection, lent again
    face = stats["faces"][0]
    assert face["pool_size"] == 1 and face["pool_available"] == 1
    assert stats["used"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_an_open_transaction_is_rolled_back_when_django_closes(django_env: str) -> None:
    from django.db import transaction

    from demos.django_demo.models import Note

    name = marker()

    def leave_it_open() -> None:
        transaction.set_autocommit(False)
        Note.objects.create(name=name, message="never committed")
        assert notes_named(name) == 1  # seen inside the transaction
        close()                        # Django closes: the pool rolls back

    await tgreen.spawn(leave_it_open)
    assert await tgreen.spawn(notes_named, name) == 0
    await tgreen.spawn(close)


@pytest.mark.gen_test(timeout=30)
async def test_many_greenlets_share_the_cap(django_env: str, server_connections: Any) -> None:
    def nap() -> int:
        from django.db import connections

        with connections["small"].cursor() as cur:
            cur.execute("SELECT SLEEP(0.05), CONNECTION_ID()")
            ident = int(cur.fetchone()[1])
        connections["small"].close()
        return ident

    with server_connections as sampler:
        ids = await asyncio.gather(*[tgreen.spawn(nap) for _ in range(30)])
    assert len(set(ids)) <= 3
    assert sampler.samples > 0 and sampler.peak <= 3
    assert pooling.pools()["small"].budget.used <= 3


@pytest.mark.gen_test(timeout=60)
async def test_the_cap_holds_across_greenlets_and_threads(django_env: str, server_connections: Any) -> None:
    """Greenlets on the loop and plain threads draw on one budget."""
    def hold(seconds: float) -> int:
        from django.db import connections

        with connections["small"].cursor() as cur:
            cur.execute("SELECT SLEEP(%s), CONNECTION_ID()", [seconds])
            ident = int(cur.fetchone()[1])
        connections["small"].close()
        return ident

    loop = asyncio.get_running_loop()
    with server_connections as sampler:
        greens = [tgreen.spawn(hold, 0.3) for _ in range(2)]
        threads = [loop.run_in_executor(None, hold, 0.05) for _ in range(6)]
        done = await asyncio.gather(*greens, *threads)
    assert all(isinstance(i, int) for i in done)
    assert sampler.peak <= 3
    pool = pooling.pools()["small"]
    assert pool.budget.used <= 3
    assert len(pool.faces()) == 2  # this loop's, and the threads' private loop's


@pytest.mark.gen_test(timeout=30)
async def test_select_for_update_in_concurrent_atomic_blocks_loses_no_update(django_env: str) -> None:
    from django.db import connection, transaction

    from demos.django_demo.models import Counter

    name = marker()
    await tgreen.spawn(lambda: Counter.objects.create(name=name))

    def bump() -> None:
        with transaction.atomic():
            counter = Counter.objects.select_for_update().get(name=name)
            with connection.cursor() as cur:
                cur.execute("DO SLEEP(0.01)")  # widen the race a lost update would need
            counter.value += 1
            counter.save(update_fields=["value"])
        connection.close()

    await asyncio.gather(*[tgreen.spawn(bump) for _ in range(10)])
    value = await tgreen.spawn(lambda: Counter.objects.get(name=name).value)
    assert value == 10
    await tgreen.spawn(close)


@pytest.mark.gen_test(timeout=30)
async def test_savepoints_and_on_commit_in_concurrent_greenlets(django_env: str) -> None:
    from django.db import connection, transaction

    from demos.django_demo.models import Note

    def work(name: str, fail_outer: bool) -> list[str]:
        ran: list[str] = []
        try:
            with transaction.atomic():
                Note.objects.create(name=name, message="outer")
                transaction.on_commit(lambda: ran.append("outer"))
                try:
                    with transaction.atomic():  # a savepoint
                        Note.objects.create(name=name, message="inner")
                        transaction.on_commit(lambda: ran.append("inner"))
                        raise ValueError("roll the savepoint back")
                except ValueError:
                    pass
                with connection.cursor() as cur:
                    cur.execute("DO SLEEP(0.05)")
                if fail_outer:
                    raise KeyError("roll everything back")
        except KeyError:
            pass
        connection.close()
        return ran

    names = [marker() for _ in range(8)]
    ran = await asyncio.gather(*[tgreen.spawn(work, n, i % 2 == 1) for i, n in enumerate(names)])
    for i, name in enumerate(names):
        kept = await tgreen.spawn(lambda n=name: sorted(Note.objects.filter(name=n).values_list("message", flat=True)))
        if i % 2:
            assert kept == [] and ran[i] == []
        else:
            assert kept == ["outer"] and ran[i] == ["outer"]
    await tgreen.spawn(close)


@pytest.mark.gen_test(timeout=30)
async def test_unpooled_alias_opens_and_closes_its_own(django_env: str, server_connections: Any) -> None:
    def two_ids() -> tuple[int, int]:
        first = connection_id("unpooled")
        close("unpooled")
        second = connection_id("unpooled")
        close("unpooled")
        return first, second

    first, second = await tgreen.spawn(two_ids)
    assert first != second
    assert "unpooled" not in pooling.pools()
    deadline = time.monotonic() + 5
    while await asyncio.get_running_loop().run_in_executor(None, server_connections.count) > 0:
        assert time.monotonic() < deadline, "the unpooled connections did not close"
        await asyncio.sleep(0.05)


@pytest.mark.gen_test(timeout=30)
async def test_a_greenlet_that_ends_without_closing_gives_its_connection_back(django_env: str) -> None:
    from django.db import transaction

    from demos.django_demo.models import Note

    name = marker()

    def forget_to_close() -> int:
        transaction.set_autocommit(False)
        Note.objects.create(name=name, message="left open")
        return connection_id("small")  # the greenlet ends: its wrapper goes

    await tgreen.spawn(forget_to_close)
    face = next(iter(pooling.pools()["small"].faces().values()))
    deadline = time.monotonic() + 5
    while face.stats()["pool_available"] != face.stats()["pool_size"]:
        assert time.monotonic() < deadline, face.stats()
        await asyncio.sleep(0.02)
    assert await tgreen.spawn(notes_named, name) == 0  # ...and was rolled back
    await tgreen.spawn(close)


@pytest.mark.gen_test(timeout=30)
async def test_conn_max_age_keeps_the_lease_between_requests_until_close(django_env: str) -> None:
    from django.db import connections

    from greentor_compat.django.mysql.base import DatabaseWrapper

    def aged() -> tuple[bool, bool, dict[str, Any]]:
        wrapper = DatabaseWrapper(dict(connections["small"].settings_dict, CONN_MAX_AGE=60), alias="aged")
        wrapper.ensure_connection()
        wrapper.close_if_unusable_or_obsolete()  # what Django does at a request's end
        kept = wrapper.connection is not None
        wrapper.close()
        stats = pooling.pools()["aged"].stats()
        return kept, wrapper.connection is None, stats

    kept, closed, stats = await tgreen.spawn(aged)
    assert kept and closed
    assert stats["faces"][0]["pool_available"] == stats["faces"][0]["pool_size"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_a_shared_wrapper_outlives_its_thread_and_an_unshared_one_gives_back(django_env: str) -> None:
    import threading

    from django.db import connections

    kept: dict[str, Any] = {}

    def in_thread(share: bool) -> None:
        wrapper = connections["small"]
        if share:
            wrapper.inc_thread_sharing()
        connection_id("small")
        kept["shared" if share else "own"] = wrapper

    for share in (True, False):
        thread = threading.Thread(target=in_thread, args=(share,))
        thread.start()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
    assert kept["shared"].connection is not None  # still usable by whoever shares it
    deadline = time.monotonic() + 5
    while kept["own"].connection is not None:  # its thread ended: given back
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)

    def close_shared() -> None:
        kept["shared"].close()
        kept["shared"].dec_thread_sharing()

    await tgreen.spawn(close_shared)


@pytest.mark.gen_test(timeout=30)
async def test_a_connection_django_finds_unusable_is_not_lent_again(django_env: str) -> None:
    from django.db import connections

    def health_check_fails() -> tuple[int, int, int]:
        wrapper = connections["small"]
        wrapper.settings_dict["CONN_HEALTH_CHECKS"] = True
        try:
            first = connection_id("small")
            wrapper.close()
            wrapper.ensure_connection()  # the same connection, from the pool
            wrapper.health_check_done = False
            with wrapper.cursor() as cur:
                cur.execute("SELECT CONNECTION_ID()")
                second = int(cur.fetchone()[0])
            original = wrapper.is_usable
            wrapper.is_usable = lambda: False  # Django's check says: broken
            try:
                wrapper.health_check_done = False
                third = connection_id("small")  # Django closes it and connects again
            finally:
                wrapper.is_usable = original
            wrapper.close()
            return first, second, third
        finally:
            wrapper.settings_dict["CONN_HEALTH_CHECKS"] = False

    first, second, third = await tgreen.spawn(health_check_fails)
    assert first == second  # a healthy connection is reused
    assert third != second  # the one Django found unusable was closed, not pooled
