"""A loopback TCP proxy for fault injection: :class:`FaultProxy`.

Part of :mod:`tornpool.testing`; import from there.  Importing this module
starts nothing (the proxy thread starts in :meth:`FaultProxy.start`) and
touches no event loop.
"""

from __future__ import annotations

import collections
import ipaddress
import selectors
import socket
import struct
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Callable, Deque, Dict, List, Optional, Tuple

from .server import MariaDBServer

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

__all__ = ["FaultProxy"]


_HOLD_LIMIT = 4 * 1024 * 1024  # bytes buffered per direction before we stop reading
_RECV_SIZE = 65536


def _rst_close(sock: socket.socket) -> None:
    """Close *sock* so that the peer sees a RST."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Direction:
    __slots__ = ("src", "dst", "queue", "out", "eof", "shut", "discard")

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src = src
        self.dst = dst
        self.queue: Deque[Tuple[float, bytes]] = collections.deque()
        self.out = bytearray()
        self.eof = False      # src sent FIN
        self.shut = False     # we shut down dst's write side
        self.discard = False  # after half_close toward the client

    def buffered(self) -> int:
        return len(self.out) + sum(len(c) for _, c in self.queue)


class _Link:
    __slots__ = ("client", "upstream", "c2s", "s2c", "budget", "closed")

    def __init__(self, client: socket.socket, upstream: socket.socket, budget: Optional[int]) -> None:
        self.client = client
        self.upstream = upstream
        self.c2s = _Direction(client, upstream)
        self.s2c = _Direction(upstream, client)
        self.budget = budget  # server->client bytes left before RST (reset_after)
        self.closed = False


class FaultProxy:
    """A loopback TCP proxy for fault injection.

    It runs its own ``selectors`` loop in a daemon thread, so it works the
    same whatever event loop (or none) the test uses.  Every method is
    thread-safe; the ones that act on current connections return once the
    proxy thread has done so.

    Modes (each replaces the previous one, applies to current and new
    connections):

    * :meth:`pass_through` - forward everything (the default);
    * :meth:`delay` - hold every forwarded chunk for *seconds*, both ways;
    * :meth:`blackhole` - accept and keep connections, forward nothing (data
      is held, and flows again after :meth:`pass_through`);
    * :meth:`reset_after` - after *n* more server->client bytes on a
      connection, reset it (RST to both ends).

    One-shot actions on the connections open right now: :meth:`reset_all`,
    :meth:`half_close`.  :meth:`refuse` / :meth:`accept_again` close and
    reopen the listening socket on the same port.

    Only ever connects to the given target, which must be a loopback address.
    """

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        if target_host != "localhost":
            try:
                addr = ipaddress.ip_address(target_host)
            except ValueError:
                raise ValueError(f"FaultProxy target must be a loopback address, got {target_host!r}") from None
            if not addr.is_loopback:
                raise ValueError(f"FaultProxy target must be a loopback address, got {target_host!r}")
        self.target_host = target_host
        self.target_port = int(target_port)
        self.host = listen_host
        self._port: Optional[int] = None
        self._mode = "pass"
        self._delay = 0.0
        self._reset_after: Optional[int] = None
        self._links: List[_Link] = []
        self._listener: Optional[socket.socket] = None
        self._sel: Optional[selectors.BaseSelector] = None
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._commands: Deque[Tuple[Callable[[], None], threading.Event, List[BaseException]]] = (
            collections.deque()
        )
        self._stopping = False
        self._masks: Dict[int, int] = {}
        self.accepted = 0
        """Total connections accepted so far."""

    @classmethod
    def for_server(cls, server: MariaDBServer) -> "FaultProxy":
        """A proxy in front of *server*'s TCP port."""
        return cls(server.host, server.port)

    # -- properties ------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FaultProxy not started")
        return self._port

    @property
    def connections(self) -> int:
        """Number of live proxied client connections."""
        return sum(1 for link in list(self._links) if not link.closed)

    @property
    def mode(self) -> str:
        return self._mode

    def dsn_for(self, dsn: str) -> str:
        """Return *dsn* (``mysql://user:pw@host:port/db?...``) with its host and
        port replaced by the proxy's."""
        parts = urllib.parse.urlsplit(dsn)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{self.host}:{self.port}"
        if userinfo:
            netloc = f"{userinfo}@{netloc}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    # -- lifecycle -------------------------------------------------------

    def start(self) -> "FaultProxy":
        if self._thread is not None:
            return self
        self._stopping = False
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._open_listener(0)
        self._thread = threading.Thread(target=self._run, name=f"FaultProxy:{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and the listener, and join the thread."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake()
        thread.join(10)
        self._thread = None

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        tb: "Optional[TracebackType]",
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"<FaultProxy {self.host}:{self._port} -> {self.target_host}:{self.target_port} "
                f"mode={self._mode} connections={self.connections}>")

    # -- modes -----------------------------------------------------------

    def pass_through(self) -> None:
        """Forward everything (held data is released at once)."""
        self._set_mode("pass")

    def delay(self, seconds: float) -> None:
        """Delay every forwarded chunk by *seconds*, in both directions."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        self._set_mode("delay", delay=float(seconds))

    def blackhole(self) -> None:
        """Accept and keep connections but forward nothing in either direction."""
        self._set_mode("blackhole")

    def reset_after(self, n_bytes: int) -> None:
        """Forward *n_bytes* more server->client bytes per connection, then reset
        the connection (e.g. to break a connection in the middle of a result)."""
        if n_bytes < 0:
            raise ValueError("n_bytes must be >= 0")
        self._set_mode("reset_after", reset_after=int(n_bytes))

    def _set_mode(self, mode: str, delay: float = 0.0, reset_after: Optional[int] = None) -> None:
        def apply() -> None:
            self._mode = mode
            self._delay = delay
            self._reset_after = reset_after
            for link in self._links:
                link.budget = reset_after
        self._submit(apply)

    # -- one-shot actions --------------------------------------------------

    def reset_all(self) -> None:
        """Reset (SO_LINGER 0 + close) every current connection, both ends."""
        def apply() -> None:
            for link in list(self._links):
                self._close_link(link, rst=True)
        self._submit(apply)

    def half_close(self) -> None:
        """Shut down the write side toward the client on every current connection;
        further server data for them is dropped."""
        def apply() -> None:
            for link in self._links:
                d = link.s2c
                d.discard = True
                d.queue.clear()
                d.out.clear()
                if not d.shut:
                    d.shut = True
                    try:
                        link.client.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
        self._submit(apply)

    def refuse(self) -> None:
        """Close the listening socket: new connects are refused.  Current
        connections are untouched."""
        def apply() -> None:
            if self._listener is not None:
                self._unregister(self._listener)
                self._listener.close()
                self._listener = None
        self._submit(apply)

    def accept_again(self) -> None:
        """Reopen the listening socket on the same port."""
        def apply() -> None:
            if self._listener is None:
                self._open_listener(self.port)
        self._submit(apply)

    # -- thread plumbing ---------------------------------------------------

    def _submit(self, fn: Callable[[], None]) -> None:
        thread = self._thread
        if thread is None or threading.current_thread() is thread:
            fn()
            return
        done = threading.Event()
        errors: List[BaseException] = []
        self._commands.append((fn, done, errors))
        self._wake()
        if not done.wait(10):
            raise RuntimeError("FaultProxy thread did not respond")
        if errors:
            raise errors[0]

    def _wake(self) -> None:
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"x")
            except (BlockingIOError, OSError):
                pass

    def _open_listener(self, port: int) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host, port))
            s.listen(128)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        self._listener = s
        self._port = s.getsockname()[1]
        assert self._sel is not None
        self._sel.register(s, selectors.EVENT_READ, "listener")

    def _unregister(self, sock: socket.socket) -> None:
        assert self._sel is not None
        fd = sock.fileno()
        if self._masks.pop(fd, None) is not None or fd in self._sel.get_map():
            try:
                self._sel.unregister(sock)
            except (KeyError, ValueError):
                pass

    def _run(self) -> None:
        sel = self._sel
        assert sel is not None
        try:
            while not self._stopping:
                self._run_commands()
                now = time.monotonic()
                for link in list(self._links):
                    self._pump(link, now)
                timeout = self._update_interest()
                for key, mask in sel.select(timeout):
                    if key.data == "wake":
                        try:
                            while self._wake_r is not None and self._wake_r.recv(4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                    elif key.data == "listener":
                        self._accept()
                    else:
                        link, direction = key.data
                        if link.closed:
                            continue
                        if mask & selectors.EVENT_READ:
                            self._read(link, direction)
        finally:
            self._shutdown()

    def _run_commands(self) -> None:
        while self._commands:
            fn, done, errors = self._commands.popleft()
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)
            done.set()

    def _shutdown(self) -> None:
        for link in list(self._links):
            self._close_link(link, rst=False)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        self._masks.clear()
        for s in (self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._wake_r = self._wake_w = None
        # Unblock anyone still waiting on a command.
        while self._commands:
            _, done, errors = self._commands.popleft()
            errors.append(RuntimeError("FaultProxy stopped"))
            done.set()

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.target_host, self.target_port), timeout=5)
            except OSError:
                _rst_close(client)
                continue
            for s in (client, upstream):
                s.setblocking(False)
                try:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            self.accepted += 1
            self._links.append(_Link(client, upstream, self._reset_after))

    def _read(self, link: _Link, direction: _Direction) -> None:
        try:
            data = direction.src.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            # The peer reset us: pass the reset on.
            self._close_link(link, rst=True)
            return
        if not data:
            direction.eof = True
            return
        if direction.discard:
            return
        due = time.monotonic() + (self._delay if self._mode == "delay" else 0.0)
        direction.queue.append((due, data))

    def _pump(self, link: _Link, now: float) -> None:
        if link.closed or self._mode == "blackhole":
            return
        for direction in (link.c2s, link.s2c):
            if link.closed:
                return
            while direction.queue and (self._mode != "delay" or direction.queue[0][0] <= now):
                direction.out += direction.queue.popleft()[1]
            if direction.out and not direction.shut:
                limit = len(direction.out)
                if direction is link.s2c and link.budget is not None:
                    if link.budget <= 0:
                        self._close_link(link, rst=True)
                        return
                    limit = min(limit, link.budget)
                try:
                    sent = direction.dst.send(direction.out[:limit])
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    self._close_link(link, rst=True)
                    return
                del direction.out[:sent]
                if direction is link.s2c and link.budget is not None:
                    link.budget -= sent
                    if link.budget <= 0:
                        self._close_link(link, rst=True)
                        return
            if direction.eof and not direction.out and not direction.queue and not direction.shut:
                direction.shut = True
                try:
                    direction.dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        if link.c2s.eof and link.s2c.eof and link.c2s.shut and link.s2c.shut:
            self._close_link(link, rst=False)

    def _update_interest(self) -> Optional[float]:
        """(Re)register every socket for what it needs; return the select timeout."""
        assert self._sel is not None
        timeout: Optional[float] = None
        now = time.monotonic()
        for link in self._links:
            if link.closed:
                continue
            wants: Dict[socket.socket, int] = {link.client: 0, link.upstream: 0}
            for direction in (link.c2s, link.s2c):
                if not direction.eof and direction.buffered() < _HOLD_LIMIT:
                    wants[direction.src] |= selectors.EVENT_READ
                if self._mode != "blackhole":
                    if direction.out and not direction.shut:
                        wants[direction.dst] |= selectors.EVENT_WRITE
                    if direction.queue:
                        if self._mode == "delay":
                            wait = max(0.0, direction.queue[0][0] - now)
                        else:
                            wait = 0.0
                        timeout = wait if timeout is None else min(timeout, wait)
            for sock, mask in wants.items():
                data = (link, link.c2s if sock is link.client else link.s2c)
                fd = sock.fileno()
                old = self._masks.get(fd)
                if mask == 0:
                    if old is not None:
                        self._sel.unregister(sock)
                        del self._masks[fd]
                elif old is None:
                    self._sel.register(sock, mask, data)
                    self._masks[fd] = mask
                elif old != mask:
                    self._sel.modify(sock, mask, data)
                    self._masks[fd] = mask
        return timeout

    def _close_link(self, link: _Link, rst: bool) -> None:
        if link.closed:
            return
        link.closed = True
        for sock in (link.client, link.upstream):
            if sock.fileno() >= 0:
                self._unregister(sock)
                if rst:
                    _rst_close(sock)
                else:
                    sock.close()
        try:
            self._links.remove(link)
        except ValueError:
            pass
