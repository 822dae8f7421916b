"""greentor_compat.glocal.local: one namespace per greenlet and per instance."""

from __future__ import annotations

import asyncio
from typing import Any

import greenlet
import pytest

from greentor_compat import green
from greentor_compat.glocal import local


@pytest.mark.gen_test
async def test_each_green_task_sees_only_its_own_attributes() -> None:
    store = local()
    store.who = "loop"

    def task(name: str) -> tuple[str, str]:
        before = getattr(store, "who", "empty")
        store.who = name
        green.sleep(0.01)  # the other task runs and sets its own value meanwhile
        return before, store.who

    results = await asyncio.gather(green.spawn(task, "a"), green.spawn(task, "b"))
    assert results == [("empty", "a"), ("empty", "b")]
    assert store.who == "loop"


@pytest.mark.gen_test
async def test_child_greenlets_start_empty() -> None:
    store = local()

    def child() -> bool:
        return hasattr(store, "x")

    def parent() -> tuple[bool, bool]:
        store.x = 1
        return hasattr(store, "x"), green.await_(green.spawn(child))

    assert await green.spawn(parent) == (True, False)


def test_instances_do_not_share_a_namespace() -> None:
    # greentor's quirk was that they did: a.x = 1 made b.x == 1
    a, b = local(), local()
    a.x = 1
    assert not hasattr(b, "x")
    b.x = 2
    assert (a.x, b.x) == (1, 2)
    assert a.__dict__ == {"x": 1}


def test_plain_greenlets_get_their_own_namespace_too() -> None:
    store = local()
    store.x = "main"
    seen = greenlet.greenlet(lambda: (getattr(store, "x", None), setattr(store, "x", "child"), store.x)).switch()
    assert seen == (None, None, "child")
    assert store.x == "main"


def test_subclass_init_runs_once_per_greenlet_with_the_same_arguments() -> None:
    calls: list[Any] = []

    class Config(local):
        def __init__(self, default: int) -> None:
            calls.append(default)
            self.value = default

        @property
        def doubled(self) -> int:
            return self.value * 2

    cfg = Config(7)
    cfg.value = 8
    assert cfg.doubled == 16
    other = greenlet.greenlet(lambda: (cfg.value, cfg.doubled)).switch()
    assert other == (7, 14)
    assert calls == [7, 7]
    with pytest.raises(TypeError):
        local(1)


def test_missing_and_deleted_attributes_raise_attribute_error() -> None:
    store = local()
    store.x = 1
    del store.x
    with pytest.raises(AttributeError):
        store.x
    with pytest.raises(AttributeError):
        del store.x
