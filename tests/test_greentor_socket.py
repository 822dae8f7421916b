"""greentor_compat.green.AsyncSocket over a plain TCP peer: blocking-socket
semantics (timeouts, EOF, recv) without blocking the loop."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from greentor_compat import green
from tornpool.errors import ConnectionReleased, GreenletRequired


class Peer:
    """A loopback TCP server; ``mode`` says what it does with a client."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.port = 0
        self.server: asyncio.base_events.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        try:
            if self.mode == "echo":
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            elif self.mode == "hello-and-close":
                writer.write(b"hello")
                await writer.drain()
            else:  # "mute": neither reads nor writes until the peer is stopped
                await self.done.wait()
        except ConnectionError:
            pass
        writer.close()

    async def __aenter__(self) -> Peer:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.done.set()
        for writer in self.writers:
            writer.transport.abort()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 5)
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.gen_test(timeout=30)
async def test_echo_round_trips_and_the_loop_runs_meanwhile() -> None:
    async with Peer("echo") as peer:
        def body() -> tuple[bytes, bytes, int]:
            sock = green.AsyncSocket.open("127.0.0.1", peer.port)
            try:
                sock.sendall(b"ping" * 1000)
                whole = sock.read(4000)
                sock.send(b"abc")
                part = sock.recv(100)  # what is there, at least one byte
                buf = bytearray(10)
                sock.sendall(b"xyz")
                n = sock.recv_into(buf)
                return whole[:8], part, n
            finally:
                sock.close()

        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        tick_task = asyncio.ensure_future(ticker())
        try:
            whole, part, n = await green.spawn(body)
        finally:
            tick_task.cancel()
    assert whole == b"pingping" and part == b"abc" and n == 3
    assert ticks > 0


@pytest.mark.gen_test(timeout=30)
async def test_eof_gives_a_short_read_and_empty_recv() -> None:
    async with Peer("hello-and-close") as peer:
        def body() -> tuple[bytes, bytes]:
            sock = green.AsyncSocket.open("127.0.0.1", peer.port)
            try:
                return sock.read(100), sock.recv(10)
            finally:
                sock.close()

        assert await green.spawn(body) == (b"hello", b"")


@pytest.mark.gen_test(timeout=30)
async def test_a_read_timeout_raises_socket_timeout() -> None:
    async with Peer("mute") as mute:
        def body() -> float:
            sock = green.AsyncSocket.open("127.0.0.1", mute.port)
            sock.settimeout(0.1)
            start = time.monotonic()
            try:
                with pytest.raises(socket.timeout):
                    sock.read(1)
                with pytest.raises(socket.timeout):
                    sock.recv(1)
                return time.monotonic() - start
            finally:
                sock.close()

        assert 0.19 < await green.spawn(body) < 2.0


@pytest.mark.gen_test(timeout=60)
async def test_a_write_the_peer_never_takes_times_out() -> None:
    async with Peer("mute") as mute:
        def body() -> float:
            sock = green.AsyncSocket.open("127.0.0.1", mute.port)
            sock.settimeout(0.2)
            start = time.monotonic()
            try:
                with pytest.raises(socket.timeout):
                    sock.sendall(b"x" * (64 * 1024 * 1024))  # more than the kernel buffers
                return time.monotonic() - start
            finally:
                sock.close()

        assert 0.19 < await green.spawn(body) < 3.0


@pytest.mark.gen_test(timeout=30)
async def test_without_a_timeout_a_write_never_waits() -> None:
    async with Peer("mute") as mute:
        def body() -> float:
            sock = green.AsyncSocket.open("127.0.0.1", mute.port)
            start = time.monotonic()
            try:
                sock.sendall(b"x" * (16 * 1024 * 1024))  # the transport keeps what the kernel does not take
                return time.monotonic() - start
            finally:
                sock.close()

        assert await green.spawn(body) < 1.0


@pytest.mark.gen_test(timeout=30)
async def test_connect_from_an_unconnected_socket_and_a_refused_port() -> None:
    async with Peer("echo") as peer:
        def body() -> bytes:
            sock = green.AsyncSocket(socket.socket())
            sock.set_connecttimeout(2)
            sock.connect(("127.0.0.1", peer.port))
            try:
                sock.sendall(b"ok")
                return sock.read(2)
            finally:
                sock.close()

        assert await green.spawn(body) == b"ok"
    with pytest.raises(OSError):
        await green.spawn(green.AsyncSocket.open, "127.0.0.1", peer.port)


@pytest.mark.gen_test(timeout=30)
async def test_a_released_socket_refuses_io_and_the_loop_greenlet_cannot_read() -> None:
    async with Peer("mute") as mute:
        sock = await green.spawn(green.AsyncSocket.open, "127.0.0.1", mute.port)
        try:
            with pytest.raises(GreenletRequired):
                sock.read(1)  # on the running loop's greenlet: refused, not blocking
            sock.released = True
            with pytest.raises(ConnectionReleased):
                sock.sendall(b"x")
            with pytest.raises(ConnectionReleased):
                await green.spawn(sock.read, 1)
        finally:
            sock.close()
        await asyncio.sleep(0)
        assert sock.closed
