"""greentor_compat.green: green tasks, waiting, timeouts, Waiter, debug tracing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from typing import Any

import greenlet
import pytest
from tornado import gen

import tornpool.green
from greentor_compat import green
from tornpool.errors import GreenletRequired


@pytest.mark.gen_test
async def test_a_task_runs_synchronously_until_it_first_waits() -> None:
    steps: list[str] = []

    def body(a: int, b: int, *, c: int) -> int:
        steps.append("started")
        green.sleep(0.01)
        steps.append("resumed")
        return a + b + c

    task = green.GreenTask.spawn(body, 1, 2, c=3)
    assert steps == ["started"]  # start() ran it up to the sleep
    assert task.args == (1, 2) and task.kwargs == {"c": 3}
    assert await task.wait() == 6
    assert steps == ["started", "resumed"]
    assert task.dead


@pytest.mark.gen_test
async def test_spawn_and_green_return_futures_of_the_result() -> None:
    @green.green
    def doubled(x: int) -> int:
        green.sleep(0)
        return 2 * x

    fut = doubled(21)
    assert isinstance(fut, asyncio.Future)
    assert await fut == 42
    assert await green.spawn(lambda: "plain") == "plain"


@pytest.mark.gen_test
async def test_an_exception_in_a_task_is_its_futures_exception() -> None:
    def boom() -> None:
        green.sleep(0)
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        await green.spawn(boom)


@pytest.mark.gen_test
async def test_tasks_interleave_on_the_loop() -> None:
    order: list[str] = []

    def worker(name: str, delay: float) -> str:
        order.append(name + ">")
        green.sleep(delay)
        order.append("<" + name)
        return name

    start = time.monotonic()
    results = await asyncio.gather(green.spawn(worker, "slow", 0.2), green.spawn(worker, "fast", 0.05))
    assert results == ["slow", "fast"]
    assert order == ["slow>", "fast>", "<fast", "<slow"]
    assert time.monotonic() - start < 0.6  # the sleeps overlapped


@pytest.mark.gen_test
async def test_the_reserved_timeout_kwarg_raises_inside_the_task() -> None:
    reached: list[str] = []

    def slow(**kwargs: Any) -> None:
        reached.append("kwargs=%r" % kwargs)
        green.sleep(5)
        reached.append("not here")

    task = green.GreenTask.spawn(slow, timeout=0.05, other=1)
    assert task.kwargs == {"other": 1}  # taken out when the task started, as in greentor
    start = time.monotonic()
    with pytest.raises(green.TimeoutException):
        await task.wait()
    assert time.monotonic() - start < 1.0
    assert reached == ["kwargs={'other': 1}"]


@pytest.mark.gen_test
async def test_a_timeout_that_does_not_expire_is_cancelled() -> None:
    assert await green.spawn(lambda: green.sleep(0.01) or "fine", timeout=1) == "fine"
    await asyncio.sleep(0)  # nothing fires later: the timer was cancelled with the task


@pytest.mark.gen_test
async def test_synclize_waits_for_a_coroutine_from_a_task() -> None:
    @green.synclize
    async def fetch(x: int) -> int:
        await asyncio.sleep(0.01)
        return x + 1

    @green.synclize
    @gen.coroutine
    def legacy(x: int) -> Any:
        yield gen.sleep(0.01)
        return x * 10

    @green.synclize
    async def failing() -> None:
        raise ValueError("from the coroutine")

    def body() -> tuple[int, int]:
        with pytest.raises(ValueError, match="from the coroutine"):
            failing()
        return fetch(1), legacy(2)

    assert await green.spawn(body) == (2, 20)


@pytest.mark.gen_test
async def test_blocking_helpers_refuse_the_loops_own_greenlet() -> None:
    @green.synclize
    async def fetch() -> int:
        return 1

    with pytest.raises(GreenletRequired):
        fetch()
    with pytest.raises(GreenletRequired):
        green.sleep(0.01)
    with pytest.raises(GreenletRequired):
        green.await_(asyncio.sleep(0))


def test_blocking_helpers_refuse_a_thread_without_a_loop() -> None:
    with pytest.raises(GreenletRequired):
        green.sleep(0)
    task = green.GreenTask(green.sleep, 0)
    task.start()  # no loop: the wait inside fails cleanly
    fut = task.wait()
    assert isinstance(fut, concurrent.futures.Future)
    assert isinstance(fut.exception(), GreenletRequired)


@pytest.mark.gen_test
async def test_await_accepts_what_tornado_yield_accepts() -> None:
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        def body() -> Any:
            done = loop.create_future()
            done.set_result("ready")
            return (
                green.await_(done),  # a done Future: no switch
                green.await_(asyncio.sleep(0.01, "coro")),
                green.await_([asyncio.sleep(0, 1), asyncio.sleep(0, 2)]),
                green.await_(pool.submit(lambda: "thread")),
                green.await_(gen.moment),
            )

        assert await green.spawn(body) == ("ready", "coro", [1, 2], "thread", None)


@pytest.mark.gen_test
async def test_nested_tasks_each_come_back_to_their_own_waiter() -> None:
    log: list[str] = []

    def inner(n: int) -> int:
        log.append("inner%d>" % n)
        green.sleep(0.02 * n)
        log.append("<inner%d" % n)
        return n

    def outer() -> int:
        futures = [green.spawn(inner, n) for n in (2, 1)]
        log.append("outer waits")
        got = [green.await_(f) for f in futures]
        green.sleep(0.01)
        return sum(got)

    assert await green.spawn(outer) == 3
    assert log == ["inner2>", "inner1>", "outer waits", "<inner1", "<inner2"]


@pytest.mark.gen_test
async def test_tasks_started_from_tornpool_spawn_greenlets() -> None:
    def in_tornpool_greenlet() -> int:
        fut = green.spawn(lambda: green.sleep(0.01) or 5)
        green.sleep(0.01)  # green helpers also work here
        return tornpool.green.await_(fut) + 1

    assert await tornpool.green.spawn(in_tornpool_greenlet) == 6


@pytest.mark.gen_test
async def test_waiter_switch_and_throw_wake_the_waiting_greenlet() -> None:
    loop = asyncio.get_running_loop()

    def wait_for_value() -> Any:
        waiter = green.Waiter()
        assert waiter.greenlet is greenlet.getcurrent()
        loop.call_later(0.01, waiter.switch, "hello")
        return waiter.get()

    def wait_for_error() -> None:
        waiter = green.Waiter()
        loop.call_later(0.01, waiter.throw, KeyError, KeyError("thrown"), None)
        waiter.get()

    def value_before_get() -> Any:
        waiter = green.Waiter()
        waiter.switch("early")  # greentor lost this one; it is kept for get()
        first = waiter.get()
        waiter.switch("dropped")
        waiter.clear()
        loop.call_later(0.01, waiter.switch, "late")
        return first, waiter.get()

    assert await green.spawn(wait_for_value) == "hello"
    with pytest.raises(KeyError, match="thrown"):
        await green.spawn(wait_for_error)
    assert await green.spawn(value_before_get) == ("early", "late")


@pytest.mark.gen_test
async def test_waiter_get_from_another_greenlet_is_refused() -> None:
    waiter = green.Waiter()  # belongs to the loop's greenlet
    with pytest.raises(GreenletRequired):
        await green.spawn(waiter.get)


@pytest.mark.gen_test
async def test_timeout_throws_into_the_greenlet_that_made_it() -> None:
    class Custom(Exception):
        pass

    def body() -> str:
        timer = green.Timeout(0.05, Custom)
        timer.start()
        try:
            green.sleep(2)
        except Custom as exc:
            return str(exc)
        finally:
            timer.cancel()  # after firing: harmless
        return "not interrupted"

    message = await green.spawn(body)
    assert message.startswith("<greenlet body of test_greentor_green")
    assert message.endswith("timeout, deadline is 0.05 seconds")


@pytest.mark.gen_test
async def test_timeout_with_a_callback_calls_it_instead() -> None:
    got: list[BaseException] = []
    fired = asyncio.Event()

    def on_timeout(exc: BaseException) -> None:
        got.append(exc)
        fired.set()

    def body() -> str:
        green.Timeout(0.01).start(on_timeout)
        green.sleep(0.05)
        return "not interrupted"

    assert await green.spawn(body) == "not interrupted"
    await fired.wait()
    assert isinstance(got[0], green.TimeoutException)


@pytest.mark.gen_test
async def test_timeout_cancel_before_start_is_an_error() -> None:
    timer = green.Timeout(1)
    with pytest.raises(RuntimeError, match="before start"):
        timer.cancel()
    with green.Timeout(5) as scoped:
        assert scoped.pending
    assert not scoped.pending


@pytest.mark.gen_test
async def test_timeout_reaches_a_tornpool_spawn_greenlet() -> None:
    def body() -> str:
        with green.Timeout(0.05):
            try:
                green.await_(asyncio.sleep(2))
            except green.TimeoutException:
                return "interrupted"
        return "not interrupted"

    start = time.monotonic()
    assert await tornpool.green.spawn(body) == "interrupted"
    assert time.monotonic() - start < 1.0


@pytest.mark.gen_test
async def test_an_interrupted_wait_cancels_the_coroutine_it_waited_for() -> None:
    cancelled = asyncio.Event()

    async def long() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def body() -> None:
        green.await_(long())

    with pytest.raises(green.TimeoutException):
        await green.spawn(body, timeout=0.05)
    await asyncio.wait_for(cancelled.wait(), 1)


@pytest.mark.gen_test
async def test_enable_debug_logs_switches(caplog: pytest.LogCaptureFixture) -> None:
    assert isinstance(green.IS_PYPY, bool)
    with caplog.at_level(logging.DEBUG, logger="greentor_compat.green"):
        green.enable_debug()
        try:
            await green.spawn(lambda: green.sleep(0))
        finally:
            green.disable_debug()
    switches = [r.getMessage() for r in caplog.records if "greenlet switch" in r.getMessage()]
    assert any("<lambda> of test_greentor_green" in m for m in switches), switches
    caplog.clear()
    await green.spawn(lambda: green.sleep(0))
    assert not [r for r in caplog.records if "greenlet switch" in r.getMessage()]
