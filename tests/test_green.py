"""The greenlet helpers for compat layers: spawn() and await_()."""

from __future__ import annotations

import asyncio

import pytest

import tornpool
from tornpool import errors
from tornpool.green import await_, spawn


@pytest.mark.gen_test
async def test_spawn_runs_blocking_style_code_over_awaitables(dsn: str) -> None:
    conn = await tornpool.connect(dsn)

    def blocking_style() -> tuple[object, ...]:
        await_(asyncio.sleep(0.01))
        cur = await_(conn.execute("SELECT 6 * 7"))
        return cur.fetchone()  # type: ignore[no-any-return]

    try:
        assert await spawn(blocking_style) == (42,)
    finally:
        await conn.close()


@pytest.mark.gen_test
async def test_spawned_greenlets_interleave() -> None:
    order: list[str] = []

    def worker(name: str, delay: float) -> str:
        order.append(name + "-start")
        await_(asyncio.sleep(delay))
        order.append(name + "-end")
        return name

    results = await asyncio.gather(spawn(worker, "slow", 0.1), spawn(worker, "fast", 0.01))
    assert results == ["slow", "fast"]
    assert order == ["slow-start", "fast-start", "fast-end", "slow-end"]


@pytest.mark.gen_test
async def test_exceptions_cross_the_bridge() -> None:
    async def boom() -> None:
        raise KeyError("inner")

    def body() -> None:
        try:
            await_(boom())
        except KeyError:
            raise ValueError("outer") from None

    with pytest.raises(ValueError, match="outer"):
        await spawn(body)


@pytest.mark.gen_test
async def test_await_outside_a_spawned_greenlet_is_typed_error() -> None:
    with pytest.raises(errors.GreenletRequired):
        await_(asyncio.sleep(0))


@pytest.mark.gen_test
async def test_client_side_error_keeps_connection(dsn: str) -> None:
    async with await tornpool.connect(dsn) as conn:
        # exactly what PyMySQL raises for it (ProgrammingError on 1.2, TypeError on 1.1)
        try:
            conn.raw.cursor().mogrify("SELECT %s, %s", (1,))
        except Exception as exc:
            expected = type(exc)
        else:
            pytest.fail("PyMySQL formatted a statement with a missing argument")
        with pytest.raises(expected, match="not enough arguments"):
            await conn.execute("SELECT %s, %s", (1,))
        assert not conn.closed
        assert (await conn.execute("SELECT 1")).fetchone() == (1,)
