"""Several servers behind one DSN: host lists, ``target_session_attrs`` and
``load_balance_hosts`` (libpq's names and meanings, applied to MySQL and
MariaDB).

::

    mysql://app@db1:3306,db2:3306,db3/shop?target_session_attrs=read-write

A connection attempt goes through the hosts in order (``load_balance_hosts=
random``: shuffled, for each attempt), each with its own ``connect_timeout``,
and keeps the first server whose role -- read from the server, never assumed
(:mod:`tornpool.roles`) -- serves the target:

=================  ==========================================================
``any``            any server that accepts the connection (no query)
``read-write``     ``@@global.read_only = 0``
``read-only``      ``@@global.read_only = 1``
``primary``        replicates from nobody (no ``SHOW REPLICA STATUS`` row)
``standby``        a replica (a row)
``prefer-standby`` a replica if one answers, else any server
=================  ==========================================================

``primary`` and ``standby`` fall back to ``read_only`` when the account may
not read the replication status.  A host that could not be reached is tried
after the others for :attr:`HostList.retry_after` seconds (the order stays
as given otherwise), so a dead first host does not cost every connect its
timeout.  When no host serves the target the attempt fails with
:class:`NoSuitableServer`, which names what each host answered.

A :class:`HostList` is what a :class:`tornpool.Pool` built from such a DSN
connects through; it also remembers which server each of its connections
went to, so the pool can tell when a server it uses changed role (see
``docs/multihost.md``).  :func:`connect_target` is the one-connection form.
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pymysql.constants import CR

from tornpool.connection import Connection, connect
from tornpool.dsn import (
    LOAD_BALANCE_HOSTS,
    TARGET_SESSION_ATTRS,
    HostSpec,
    parse_hosts,
    parse_multi_host_dsn,
)
from tornpool.errors import DSNError, MySQLError, NoSuitableServer
from tornpool.roles import ServerRole, read_role

__all__ = ["HostList", "NoSuitableServer", "connect_target", "HostSpec", "Hosts"]

#: What ``hosts=`` accepts: ``"h1:3306,h2"`` or a sequence of ``"host[:port]"``
#: strings and ``(host, port)`` pairs.
Hosts = str | Sequence[str | tuple[str, int]]

_monotonic = time.monotonic


class HostList:
    """The servers one pool (or :func:`connect_target`) may use, and what it
    learnt about them.

    :param hosts: the servers, in order of preference.
    :param options: connection arguments for every host (``user``,
        ``password``, ``database``, ``connect_timeout``...; no host or port).
    :param target_session_attrs: see the module docstring.
    :param load_balance_hosts: ``"disable"`` (in order) or ``"random"``.
    :param retry_after: seconds a host that could not be reached is tried
        after the others.
    :param permanent_error: tells connect errors retrying cannot fix (bad
        credentials...): when every host gives one, it is raised as it is.
    :raises DSNError: an unknown target or balance mode, no hosts, or a
        host named in ``options`` too.
    """

    def __init__(self, hosts: Sequence[HostSpec], options: dict[str, Any], *,
                 target_session_attrs: str = "any", load_balance_hosts: str = "disable",
                 retry_after: float = 5.0,
                 permanent_error: Callable[[BaseException], bool] | None = None) -> None:
        if target_session_attrs not in TARGET_SESSION_ATTRS:
            raise DSNError(f"target_session_attrs must be one of {', '.join(TARGET_SESSION_ATTRS)}, "
                           f"not {target_session_attrs!r}")
        if load_balance_hosts not in LOAD_BALANCE_HOSTS:
            raise DSNError(f"load_balance_hosts must be one of {', '.join(LOAD_BALANCE_HOSTS)}, "
                           f"not {load_balance_hosts!r}")
        for key in ("host", "port", "unix_socket"):
            if key in options:
                raise DSNError(f"{key}= cannot be combined with a host list; name every server "
                               "in the DSN or in hosts=")
        self.hosts: tuple[HostSpec, ...] = tuple(hosts)
        if not self.hosts:
            raise DSNError("the host list is empty")
        self.options = dict(options)
        self.target = target_session_attrs
        self.load_balance = load_balance_hosts
        self.retry_after = retry_after
        self._permanent = permanent_error or (lambda exc: False)
        #: Called with a host whose role stopped matching while connections to
        #: it were open (the pool drains itself).
        self.on_role_lost: Callable[[HostSpec], None] | None = None
        self._unreachable: dict[HostSpec, float] = {}
        self._lost_role: set[HostSpec] = set()
        self._conns: weakref.WeakKeyDictionary[Connection, HostSpec] = weakref.WeakKeyDictionary()

    @classmethod
    def from_config(cls, dsn: str | None, connect_kwargs: dict[str, Any], hosts: Hosts | None = None,
                    target_session_attrs: str | None = None, load_balance_hosts: str | None = None,
                    permanent_error: Callable[[BaseException], bool] | None = None,
                    ) -> HostList | None:
        """The host list a pool with these arguments connects through, or
        None for a plain single-server pool (one host in the DSN and no host
        option anywhere), which connects exactly as before.

        ``hosts``, ``target_session_attrs`` and ``load_balance_hosts`` given
        here override the DSN's; ``connect_kwargs`` override its other
        parameters (``port`` is the port of hosts named without one).

        :raises DSNError: a malformed multi-host DSN or a bad option.
        """
        if (hosts is None and target_session_attrs is None and load_balance_hosts is None
                and not _names_host_list(dsn)):
            return None
        spec = parse_multi_host_dsn(dsn) if dsn is not None else None
        options = dict(spec.options) if spec is not None else {}
        kwargs = dict(connect_kwargs)
        port = kwargs.pop("port", None)
        if hosts is not None:
            host_specs = parse_hosts(hosts)
        elif spec is not None and spec.hosts:
            host_specs = spec.hosts
        elif "host" in kwargs or "unix_socket" in kwargs:
            sock = kwargs.pop("unix_socket", None)
            host_specs = (HostSpec(sock) if sock else HostSpec(kwargs.pop("host")),)
        else:
            host_specs = (HostSpec("localhost"),)
        if port is not None:
            host_specs = tuple(HostSpec(h.host, int(port)) if h.port is None and not h.is_socket
                               else h for h in host_specs)
        options.update(kwargs)
        target = target_session_attrs or (spec and spec.target_session_attrs) or "any"
        balance = load_balance_hosts or (spec and spec.load_balance_hosts) or "disable"
        return cls(host_specs, options, target_session_attrs=target, load_balance_hosts=balance,
                   permanent_error=permanent_error)

    # -- choosing and connecting -------------------------------------------------

    def order(self) -> list[HostSpec]:
        """The hosts for the next attempt: as given (or shuffled), those that
        could not be reached lately last."""
        hosts = list(self.hosts)
        if self.load_balance == "random":
            random.shuffle(hosts)
        now = _monotonic()
        unreachable = self._unreachable
        return sorted(hosts, key=lambda h: unreachable.get(h, 0.0) > now)

    @property
    def checks_role(self) -> bool:
        """Whether a new connection is checked (one query) before use."""
        return self.target != "any"

    async def connect(self) -> Connection:
        """Open a connection to the first host (in :meth:`order`) whose role
        serves the target.

        :returns: (resolves to) the open connection.
        :raises NoSuitableServer: no host did (each host's answer inside;
            the last connect error chained).
        :raises OperationalError: every host refused the credentials or the
            database (1045, 1049...): that error, which retrying cannot fix.
        """
        attempts: list[tuple[HostSpec, str]] = []
        errors: list[BaseException] = []
        fallback: tuple[HostSpec, Connection] | None = None
        try:
            for host in self.order():
                found = await self._try(host, attempts, errors)
                if found is None:
                    continue
                conn, role = found
                if role is None or role.matches(self.target):
                    if fallback is not None:
                        await _close(fallback[1])
                    return self._accept(host, conn)
                if self.target == "prefer-standby" and fallback is None:
                    fallback = (host, conn)  # kept open while the others are tried
                    continue
                attempts.append((host, str(role)))
                self._role_mismatch(host)
                await _close(conn)
        except BaseException:
            if fallback is not None:
                fallback[1].terminate()
            raise
        if fallback is not None:
            return self._accept(*fallback)
        if errors and len(errors) == len(attempts) and all(map(self._permanent, errors)):
            raise errors[0]
        failure = NoSuitableServer(self.target, attempts)
        failure.__cause__ = errors[-1] if errors else None
        raise failure

    async def _try(self, host: HostSpec, attempts: list[tuple[HostSpec, str]],
                   errors: list[BaseException]) -> tuple[Connection, ServerRole | None] | None:
        """Connect to ``host`` and read its role; None (and the failure noted
        in ``attempts`` and ``errors``) if either fails."""
        try:
            conn = await connect(None, **self.options, **host.connect_kwargs())
        except DSNError:
            raise  # the same for every host
        except (MySQLError, OSError) as exc:
            self._unreachable[host] = _monotonic() + self.retry_after
            attempts.append((host, f"{type(exc).__name__}: {exc}"))
            errors.append(exc)
            return None
        self._unreachable.pop(host, None)
        try:
            return conn, await self._role(conn)
        except BaseException as exc:
            conn.terminate()
            if not isinstance(exc, (MySQLError, OSError)):
                raise
            attempts.append((host, f"role check failed: {exc}"))
            errors.append(exc)
            return None

    async def _role(self, conn: Connection) -> ServerRole | None:
        if not self.checks_role:
            return None
        timeout = self.options.get("connect_timeout") or 10.0
        needs_replication = self.target in ("primary", "standby", "prefer-standby")
        return await read_role(conn, replication=needs_replication, timeout=timeout)

    def _accept(self, host: HostSpec, conn: Connection) -> Connection:
        self._lost_role.discard(host)
        self._conns[conn] = host
        return conn

    # -- what the list knows about its connections -------------------------------------

    def host_of(self, conn: Any) -> HostSpec | None:
        """The host a connection of this list went to (None: not one of ours)."""
        try:
            return self._conns.get(conn)
        except TypeError:
            return None

    def role_lost(self, conn: Any) -> bool:
        """Whether the server behind ``conn`` was seen in another role since
        ``conn`` was opened to it (the pool retires such connections)."""
        host = self.host_of(conn)
        return host is not None and host in self._lost_role

    def read_only_error(self, conn: Any) -> None:
        """A write on ``conn`` was refused because its server is read-only:
        if this list wants writable servers, that server lost its role."""
        host = self.host_of(conn)
        if host is not None and self.target == "read-write":
            self._lose_role(host)

    def _in_use(self, host: HostSpec) -> bool:
        return any(h == host and not c.closed for c, h in list(self._conns.items()))

    def _role_mismatch(self, host: HostSpec) -> None:
        if self._in_use(host):
            self._lose_role(host)

    def _lose_role(self, host: HostSpec) -> None:
        if host in self._lost_role:
            return
        self._lost_role.add(host)
        if self.on_role_lost is not None:
            self.on_role_lost(host)

    def __repr__(self) -> str:
        return "<HostList %s target=%s%s>" % (",".join(map(str, self.hosts)), self.target,
                                              " random" if self.load_balance == "random" else "")


async def connect_target(dsn: str | None = None, *, hosts: Hosts | None = None,
                         target_session_attrs: str | None = None,
                         load_balance_hosts: str | None = None, **kwargs: Any) -> Connection:
    """:func:`tornpool.connect` over a host list: one connection to the first
    server (in order, or shuffled) whose role serves
    ``target_session_attrs``.

    :param dsn: ``mysql://user@h1:3306,h2/db?target_session_attrs=...`` (or a
        single host, or None with ``hosts=``).
    :param hosts: overrides the DSN's hosts.
    :param kwargs: connection arguments, overriding the DSN's.
    :returns: (resolves to) an open :class:`~tornpool.Connection`.
    :raises NoSuitableServer: no host serves the target.
    :raises DSNError: a malformed DSN or option.
    :raises OperationalError: every host refused the credentials (1045...).
    """
    from tornpool.pool.mysql import PERMANENT_CONNECT_ERRORS  # (the pool layer imports us)

    def permanent(exc: BaseException) -> bool:
        args: tuple[Any, ...] = getattr(exc, "args", ())
        return isinstance(exc, MySQLError) and bool(args) and args[0] in PERMANENT_CONNECT_ERRORS

    host_list = HostList.from_config(dsn, kwargs, hosts, target_session_attrs,
                                     load_balance_hosts, permanent)
    if host_list is None:  # one host, no option: a list of one
        host_list = HostList.from_config(dsn, kwargs, None, "any", None, permanent)
        assert host_list is not None
    return await host_list.connect()


def _names_host_list(dsn: str | None) -> bool:
    """Whether ``dsn`` lists several hosts or sets a host-list option."""
    if dsn is None:
        return False
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return False
    if "," in parts.netloc.rpartition("@")[2]:
        return True
    keys = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    return bool(keys & {"target_session_attrs", "load_balance_hosts"})


async def _close(conn: Connection) -> None:
    """Close a connection we do not keep (COM_QUIT; a short wait at most)."""
    try:
        await asyncio.wait_for(conn.close(), 1.0)
    except (asyncio.TimeoutError, OSError, MySQLError):
        conn.terminate()
