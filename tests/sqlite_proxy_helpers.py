"""What the SQLite proxy tests share: holding the writer from a thread."""

from __future__ import annotations

import threading

from tornpool.dbapi import SQLiteProxy


class HeldWriter:
    """Hold the writer with a transaction in a thread until ``release()``,
    so that writes wait for it (queue up for one batch, or nap)."""

    def __init__(self, proxy: SQLiteProxy) -> None:
        self.go = threading.Event()
        self.entered = threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(proxy,))
        self.thread.start()
        assert self.entered.wait(10)

    def _hold(self, proxy: SQLiteProxy) -> None:
        with proxy.transaction():
            self.entered.set()
            self.go.wait(10)

    def release(self) -> None:
        self.go.set()
        self.thread.join(10)
