"""greentor_compat.green's Event, and the Lock, Semaphore and Queue it adds."""

from __future__ import annotations

import asyncio
import queue
import time

import pytest

from greentor_compat import green
from tornpool.errors import GreenletRequired


@pytest.mark.gen_test
async def test_event_set_wakes_every_waiter_on_the_next_iteration() -> None:
    event = green.Event()
    woke: list[int] = []

    def waiter(n: int) -> int:
        event.wait()
        woke.append(n)
        return n

    tasks = [green.spawn(waiter, n) for n in range(3)]
    await asyncio.sleep(0.01)
    assert woke == []
    event.set()
    assert woke == []  # not inside set(): on the next loop iteration
    assert await asyncio.gather(*tasks) == [0, 1, 2]
    assert woke == [0, 1, 2]


@pytest.mark.gen_test
async def test_event_stays_set_until_cleared() -> None:
    event = green.Event()
    event.set()  # before anyone waits: greentor lost this one
    assert await green.spawn(event.wait) is True
    event.clear()
    assert not event.is_set()
    start = time.monotonic()
    with pytest.raises(green.TimeoutException):
        await green.spawn(event.wait, 0.05)
    assert 0.04 < time.monotonic() - start < 1.0


@pytest.mark.gen_test
async def test_lock_is_handed_to_waiters_in_arrival_order() -> None:
    lock = green.Lock()
    order: list[str] = []

    def holder(name: str) -> None:
        with lock:
            order.append(name + ">")
            green.sleep(0.01)
            order.append("<" + name)

    await asyncio.gather(*[green.spawn(holder, n) for n in "abc"])
    assert order == ["a>", "<a", "b>", "<b", "c>", "<c"]
    assert not lock.locked()


@pytest.mark.gen_test
async def test_lock_timeouts_and_non_blocking_acquire() -> None:
    lock = green.Lock()
    assert lock.acquire()
    assert lock.acquire(blocking=False) is False
    start = time.monotonic()
    assert await green.spawn(lock.acquire, True, 0.05) is False
    assert 0.04 < time.monotonic() - start < 1.0
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
    with pytest.raises(GreenletRequired):  # would block the loop
        lock.acquire()
        lock.acquire()


@pytest.mark.gen_test
async def test_an_interrupted_lock_waiter_does_not_swallow_the_lock() -> None:
    lock = green.Lock()
    lock.acquire()

    def impatient() -> None:
        lock.acquire()

    doomed = green.spawn(impatient, timeout=0.02)
    patient = green.spawn(lambda: lock.acquire(True, 2))
    with pytest.raises(green.TimeoutException):
        await doomed
    lock.release()  # goes past the interrupted waiter to the next one
    assert await patient is True
    assert lock.locked()


@pytest.mark.gen_test
async def test_semaphore_bounds_concurrency() -> None:
    sem = green.Semaphore(2)
    inside = 0
    peak = 0

    def work() -> None:
        nonlocal inside, peak
        with sem:
            inside += 1
            peak = max(peak, inside)
            green.sleep(0.02)
            inside -= 1

    await asyncio.gather(*[green.spawn(work) for _ in range(6)])
    assert peak == 2
    assert sem.value == 2
    assert sem.acquire(blocking=False) and sem.acquire(blocking=False)
    assert sem.acquire(blocking=False) is False
    with pytest.raises(ValueError):
        green.Semaphore(-1)


@pytest.mark.gen_test
async def test_queue_between_producer_and_consumers() -> None:
    q: green.Queue[int] = green.Queue(maxsize=2)
    got: list[int] = []

    def producer() -> None:
        for i in range(6):
            q.put(i)  # blocks while two are queued
        q.join()

    def consumer() -> None:
        while True:
            item = q.get()
            if item < 0:
                q.task_done()
                return
            got.append(item)
            green.sleep(0.005)
            q.task_done()

    consumers = [green.spawn(consumer) for _ in range(2)]
    await green.spawn(producer)
    assert sorted(got) == list(range(6))
    q.put_nowait(-1)
    q.put_nowait(-1)
    await asyncio.gather(*consumers)
    assert q.empty()


@pytest.mark.gen_test
async def test_queue_empty_full_and_timeouts() -> None:
    q: green.Queue[str] = green.Queue(maxsize=1)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    q.put_nowait("x")
    assert q.full() and q.qsize() == 1
    with pytest.raises(queue.Full):
        q.put_nowait("y")
    with pytest.raises(queue.Full):
        await green.spawn(q.put, "y", True, 0.02)
    assert q.get_nowait() == "x"
    with pytest.raises(queue.Empty):
        await green.spawn(q.get, True, 0.02)
    with pytest.raises(ValueError):
        q.task_done()
        q.task_done()
