"""Real MariaDB replication on loopback: one primary and N read-only replicas,
each a throwaway :class:`~tornpool.testing.server.MariaDBServer`, replicating
by GTID over 127.0.0.1.

Part of :mod:`tornpool.testing`; import from there.  Importing this module
starts nothing and touches no event loop.  Every method blocks (each opens
its own short admin connection over the server's unix socket); call them one
at a time, from the test's thread or from a worker thread (e.g.
``await asyncio.to_thread(cluster.promote, replica)``) while a pool keeps
running on the loop.
"""

from __future__ import annotations

import functools
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional

import pymysql

from .replica_status import (
    ReplicaStatus,
    ReplicationError,
    ReplicationTimeout,
    parse_gtid_pos,
    read_replica_status,
    wait_applied,
    wait_streaming,
)
from .server import MariaDBServer

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

__all__ = ["ReplicationCluster", "ADMIN_USER", "REPLICATION_USER"]

#: Account the cluster administers its servers with: ``'tornpool_admin'@'localhost'``,
#: no password, all privileges (including ``READ_ONLY ADMIN``), unix socket only.
ADMIN_USER = "tornpool_admin"
#: Account the replicas' I/O threads log in with: ``'tornpool_repl'@'127.0.0.1'``,
#: no password, ``REPLICATION SLAVE`` only.
REPLICATION_USER = "tornpool_repl"

#: ``mariadbd`` options of every member (``--server-id`` is added per server).
#: Every server writes a binary log that includes what it replicated
#: (``--log-slave-updates``), so any of them can be promoted and every binary
#: log holds the cluster's whole history since the template datadir.
_REPLICATION_OPTIONS = (
    "--log-bin=mariadb-bin",
    "--relay-log=relay-bin",
    "--log-slave-updates",
    "--binlog-format=ROW",
    "--gtid-strict-mode=ON",
)
_READ_ONLY_OPTION = "--read-only=ON"

# Root keeps every privilege except READ_ONLY ADMIN, so a read-only server
# refuses root's writes (MariaDB >= 10.11; before 10.5.2 the privilege does
# not exist, and before 10.11 SUPER also bypasses read_only).
_ROOT_ACCOUNTS = ("'root'@'127.0.0.1'", "'root'@'::1'", "'root'@'localhost'")


def _run_parallel(calls: List[Callable[[], Any]]) -> None:
    """Run *calls* in threads; re-raise the first exception once all have ended."""
    errors: List[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            call()
        except BaseException as exc:  # noqa: B036 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


class ReplicationCluster:
    """A primary and *replicas* read-only replicas, real MariaDB replication
    over loopback.

    Each member is a throwaway :class:`MariaDBServer` (template datadir, free
    port, database ``test``, ``root`` without a password) with a unique
    ``server_id``, a binary log, ``log_slave_updates`` and
    ``gtid_strict_mode``; replicas run ``CHANGE MASTER TO ...
    MASTER_USE_GTID=slave_pos`` against the primary and start with
    ``--read-only``.  ``root`` lacks ``READ_ONLY ADMIN`` on every member, so
    a read-only server refuses root's writes with error 1290
    (``ER_OPTION_PREVENTS_STATEMENT``); the cluster does its own work as
    :data:`ADMIN_USER` over the unix socket.

    Use it as a context manager, or call :meth:`start` and :meth:`close`.

    :param replicas: number of replicas (at least 1).
    :param mariadbd: path of the server binary (default: :func:`find_mariadbd`).
    :param extra_args: more ``mariadbd`` options for every member; they come
        last on the command line, so they override the cluster's own.
    :param startup_timeout: seconds to wait for each server and for
        replication to start.
    :raises ValueError: *replicas* is below 1.
    """

    def __init__(
        self,
        replicas: int = 1,
        *,
        mariadbd: Optional[str] = None,
        extra_args: Optional[List[str]] = None,
        startup_timeout: float = 60.0,
    ) -> None:
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
            raise ValueError(f"replicas must be an int >= 1, not {replicas!r}")
        self._n_replicas = replicas
        self._mariadbd = mariadbd
        self._extra_args = list(extra_args or [])
        self.startup_timeout = startup_timeout
        self._servers: List[MariaDBServer] = []
        self._primary: Optional[MariaDBServer] = None
        self._replicas: List[MariaDBServer] = []
        self._server_ids: Dict[MariaDBServer, int] = {}
        self.start_seconds: Optional[float] = None
        """Seconds the last :meth:`start` took until every replica streamed."""

    # -- roles -----------------------------------------------------------

    @property
    def servers(self) -> List[MariaDBServer]:
        """Every member in creation order (index 0 was the first primary),
        including servers that are neither primary nor replica after a
        :meth:`promote`."""
        return list(self._servers)

    @property
    def primary(self) -> MariaDBServer:
        """The current primary (after :meth:`kill_primary` still the killed
        server, until :meth:`promote`)."""
        if self._primary is None:
            raise RuntimeError("ReplicationCluster not started")
        return self._primary

    @property
    def replicas(self) -> List[MariaDBServer]:
        """The servers replicating from :attr:`primary`, in creation order."""
        return [s for s in self._servers if s in self._replicas]

    @property
    def dsn_list(self) -> List[str]:
        """DSNs of the primary, then of each replica (a snapshot of the current roles)."""
        return [self.primary.dsn] + [r.dsn for r in self.replicas]

    def multi_host_dsn(self) -> str:
        """One DSN naming the primary then every replica:
        ``mysql://root@127.0.0.1:P1,127.0.0.1:P2/test``."""
        p = self.primary
        hosts = ",".join(f"{s.host}:{s.port}" for s in [p, *self.replicas])
        return f"mysql://{p.user}@{hosts}/{p.database}"

    def admin_kwargs(self, server: MariaDBServer, **overrides: Any) -> Dict[str, Any]:
        """:func:`pymysql.connect` arguments for :data:`ADMIN_USER` over
        *server*'s unix socket (the account that may change ``read_only`` and
        write on a read-only server)."""
        kw = server.connect_kwargs(unix_socket=True, user=ADMIN_USER, password="")
        kw.setdefault("autocommit", True)
        kw.update(overrides)
        return kw

    # -- lifecycle -------------------------------------------------------

    def start(self) -> "ReplicationCluster":
        """Start every server (in parallel), set up the accounts, point each
        replica at the primary and wait until each one receives the primary's
        binary log.  On any failure everything started is stopped and removed.

        :returns: ``self``.
        :raises MariaDBNotFound: no ``mariadbd`` binary.
        :raises ServerStartError: a server did not start.
        :raises ReplicationError: a replica could not start replicating.
        """
        if self._primary is not None:
            return self
        t0 = time.monotonic()
        self._servers = [
            MariaDBServer(mariadbd=self._mariadbd, startup_timeout=self.startup_timeout)
            for _ in range(self._n_replicas + 1)
        ]
        self._server_ids = {}
        for i, server in enumerate(self._servers):
            self._server_ids[server] = i + 1
            self._set_args(server, read_only=i > 0)
        try:
            _run_parallel([s.start for s in self._servers])
            _run_parallel([functools.partial(self._prepare, s) for s in self._servers])
            self._primary = self._servers[0]
            for replica in self._servers[1:]:
                self._replicate(replica, self._servers[0], reset_position=True)
                self._replicas.append(replica)
            deadline = time.monotonic() + self.startup_timeout
            for replica in self._replicas:
                self._wait_streaming(replica, deadline)
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def close(self) -> None:
        """Stop every server (in parallel) and remove its directory, whatever
        state the cluster is in.  Safe to call more than once.

        :raises Exception: the first error a server's ``stop()`` raised, after
            every server was tried.
        """
        servers, self._servers = self._servers, []
        self._primary = None
        self._replicas = []
        self._server_ids = {}
        _run_parallel([s.stop for s in servers])

    def __enter__(self) -> "ReplicationCluster":
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        tb: "Optional[TracebackType]",
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._primary is None:
            return f"<ReplicationCluster replicas={self._n_replicas} stopped>"
        ports = ",".join(str(r.port) for r in self.replicas)
        return f"<ReplicationCluster primary={self._primary.port} replicas={ports}>"

    # -- status ----------------------------------------------------------

    def status(self, replica: MariaDBServer) -> ReplicaStatus:
        """What *replica* reports about its replication.

        :raises ValueError: *replica* is not one of :attr:`replicas`.
        :raises ReplicationError: the server reports no replication at all.
        """
        self._require_replica(replica)
        with self._admin(replica) as cur:
            return read_replica_status(cur, replica)

    def lag(self, replica: MariaDBServer) -> Optional[int]:
        """``Seconds_Behind_Master`` as *replica* reports it: ``0`` when it has
        applied all it received, ``None`` while its SQL thread is stopped or
        its I/O thread is not connected (the server shows ``NULL``).  For a
        number above 0 use :meth:`set_delay`; for a count of transactions
        not yet applied use :meth:`transactions_behind`.

        :raises ValueError: *replica* is not one of :attr:`replicas`.
        """
        return self.status(replica).seconds_behind_master

    def transactions_behind(self, replica: MariaDBServer) -> int:
        """How many transactions the primary has in its binary log that
        *replica* has not applied yet (GTID sequence numbers, summed over the
        replication domains).  Unlike :meth:`lag` it is a number while the SQL
        thread is stopped.

        :raises ValueError: *replica* is not one of :attr:`replicas`.
        :raises ReplicationError: the primary is not running.
        """
        self._require_replica(replica)
        target = parse_gtid_pos(self._primary_pos())
        with self._admin(replica) as cur:
            cur.execute("SELECT @@gtid_slave_pos")
            applied = parse_gtid_pos(cur.fetchone()[0])
        return sum(max(0, seq - applied.get(dom, 0)) for dom, seq in target.items())

    def wait_caught_up(
        self, timeout: float = 10.0, replicas: Optional[Iterable[MariaDBServer]] = None
    ) -> None:
        """Block until every replica (or those in *replicas*) has applied the
        primary's current GTID position (``@@gtid_binlog_pos``).

        :raises ValueError: a server in *replicas* is not a replica.
        :raises ReplicationError: the primary is not running, or a replica's
            replication stopped on an error.
        :raises ReplicationTimeout: not caught up within *timeout* seconds
            (e.g. its SQL thread is stopped).
        """
        chosen = self.replicas if replicas is None else list(replicas)
        for r in chosen:
            self._require_replica(r)
        target = self._primary_pos()
        deadline = time.monotonic() + timeout
        for r in chosen:
            self._wait_applied(r, target, deadline)

    # -- creating lag ----------------------------------------------------

    def stop_sql_thread(self, replica: MariaDBServer) -> None:
        """``STOP SLAVE SQL_THREAD``: *replica* keeps receiving the primary's
        binary log but applies nothing, so new rows do not appear on it and
        :meth:`lag` is ``None``.

        :raises ValueError: *replica* is not one of :attr:`replicas`.
        """
        self._require_replica(replica)
        with self._admin(replica) as cur:
            cur.execute("STOP SLAVE SQL_THREAD")

    def start_sql_thread(self, replica: MariaDBServer) -> None:
        """``START SLAVE SQL_THREAD``: *replica* applies what it received (use
        :meth:`wait_caught_up` to wait for it).

        :raises ValueError: *replica* is not one of :attr:`replicas`.
        """
        self._require_replica(replica)
        with self._admin(replica) as cur:
            cur.execute("START SLAVE SQL_THREAD")

    def set_delay(self, replica: MariaDBServer, seconds: int) -> None:
        """Delayed replication (``CHANGE MASTER TO MASTER_DELAY=seconds``):
        *replica* applies each transaction *seconds* after the primary
        committed it, and meanwhile reports ``Seconds_Behind_Master`` growing
        towards *seconds*.  ``0`` turns the delay off.  Restarts both
        replication threads.

        :raises ValueError: *replica* is not one of :attr:`replicas`, or
            *seconds* is not an int >= 0.
        """
        self._require_replica(replica)
        if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError(f"seconds must be an int >= 0, not {seconds!r}")
        with self._admin(replica) as cur:
            cur.execute("STOP SLAVE")
            cur.execute(f"CHANGE MASTER TO MASTER_DELAY={seconds}")
            cur.execute("START SLAVE")

    # -- failover --------------------------------------------------------

    def kill_primary(self) -> MariaDBServer:
        """SIGKILL the primary (its datadir stays; :meth:`restart` brings it back).

        :returns: the killed server (still :attr:`primary` until :meth:`promote`).
        """
        primary = self.primary
        primary.kill()
        return primary

    def promote(
        self, replica: MariaDBServer, *, drain: bool = True, drain_timeout: float = 10.0
    ) -> MariaDBServer:
        """Make *replica* the primary: apply what it already received (unless
        *drain* is false; this starts its SQL thread if stopped), then
        ``STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0``.  The old
        primary leaves the cluster's roles and, if it still runs, stays
        writable (:meth:`switchover` is the planned swap; :meth:`demote` brings
        it back); every other replica is pointed at the new primary.

        :returns: *replica*, now :attr:`primary`.
        :raises ValueError: *replica* is not one of :attr:`replicas`.
        :raises ReplicationTimeout: draining took longer than *drain_timeout*.
        :raises ReplicationError: another replica could not follow the new
            primary (it received transactions the new primary never did); it
            is left out of :attr:`replicas`: ``demote(it, new, rebuild=True)``.
        """
        self._require_replica(replica)
        if drain:
            with self._admin(replica) as cur:
                cur.execute("START SLAVE SQL_THREAD")
                received = read_replica_status(cur, replica).gtid_io_pos
            self._wait_applied(replica, received, time.monotonic() + drain_timeout)
        with self._admin(replica) as cur:
            cur.execute("STOP SLAVE")
            cur.execute("RESET SLAVE ALL")
            cur.execute("SET GLOBAL read_only=0")
        self._set_args(replica, read_only=False)
        others = [r for r in self.replicas if r is not replica]
        self._primary = replica
        self._replicas = []
        failed: List[str] = []
        for other in others:
            try:
                self.demote(other, replica)
            except ReplicationError as exc:
                failed.append(f"{other!r}: {exc}")
        if failed:
            raise ReplicationError(
                "promoted, but these servers cannot follow the new primary "
                "(use demote(server, new_primary, rebuild=True)):\n" + "\n".join(failed)
            )
        return replica

    def demote(
        self,
        server: MariaDBServer,
        new_primary: MariaDBServer,
        *,
        rebuild: bool = False,
        timeout: float = 10.0,
    ) -> None:
        """Make *server* a read-only replica of *new_primary* (the current
        :attr:`primary`) and wait until it has caught up.

        A stopped (e.g. killed) *server* is started read-only first.  It
        continues from its own GTID position, which fails if it holds
        transactions *new_primary* never received (an old primary killed
        before its last commits reached the replica): then pass
        ``rebuild=True`` to replace its datadir with a fresh template copy
        that replays *new_primary*'s whole binary log.

        :raises ValueError: *new_primary* is not :attr:`primary`, *server*
            is *new_primary*, or either is not a member.
        :raises ReplicationError: replication stopped on an error (the
            message holds the server's).
        :raises ReplicationTimeout: not caught up within *timeout* seconds.
        """
        self._require_member(server)
        if new_primary is not self._primary:
            raise ValueError(f"{new_primary!r} is not the primary; promote() it first")
        if server is new_primary:
            raise ValueError("a server cannot replicate from itself")
        if server in self._replicas:
            self._replicas.remove(server)
        fresh = rebuild or not _has_datadir(server)
        if fresh:
            # A replica skips events carrying its own server_id, and a fresh
            # datadir must replay the old ones, its own included: a new id.
            self._server_ids[server] = max(self._server_ids.values()) + 1
        self._set_args(server, read_only=True)
        if fresh:
            server.stop()
            server.start()
            self._prepare(server)
        elif not server.running:
            server.start()
        else:
            with self._admin(server) as cur:
                cur.execute("SET GLOBAL read_only=1")
        self._replicate(server, new_primary, reset_position=fresh)
        deadline = time.monotonic() + timeout
        self._wait_streaming(server, deadline)
        self._wait_applied(server, self._primary_pos(), deadline)
        self._replicas.append(server)

    def switchover(self, replica: MariaDBServer, timeout: float = 10.0) -> MariaDBServer:
        """Planned role swap with the primary running: make the primary
        read-only, wait until *replica* has applied everything,
        :meth:`promote` it and :meth:`demote` the old primary to its replica.

        :returns: *replica*, now :attr:`primary`.
        :raises ValueError: *replica* is not one of :attr:`replicas`.
        :raises ReplicationError: the primary is not running, or replication broke.
        :raises ReplicationTimeout: a step took longer than *timeout* seconds.
        """
        self._require_replica(replica)
        old = self.primary
        if not old.running:
            raise ReplicationError(f"{old!r} is not running; use promote()")
        self._set_args(old, read_only=True)
        with self._admin(old) as cur:
            cur.execute("SET GLOBAL read_only=1")
        self.wait_caught_up(timeout, [replica])
        self.promote(replica, drain_timeout=timeout)
        self.demote(old, replica, timeout=timeout)
        return replica

    def restart(self, server: MariaDBServer, timeout: float = 30.0) -> MariaDBServer:
        """Restart *server* (gracefully if running; after a kill from its
        datadir) on the same port, in its current role: a replica comes back
        read-only and, when its primary runs, this waits until it streams
        again; after the primary's restart its replicas are told to reconnect
        at once (rather than at their next 1 s retry).  A restarted old
        primary that :meth:`promote` left out comes back writable:
        :meth:`demote` it.

        :returns: *server*.
        :raises ValueError: *server* is not a member, or its datadir was
            removed (``server.stop()``): ``demote(server, primary, rebuild=True)``
            brings such a server back.
        :raises ServerStartError: it did not start.
        :raises ReplicationError: its replication broke on restart.
        """
        self._require_member(server)
        if not _has_datadir(server):
            raise ValueError(f"{server!r} has no datadir left; use demote(..., rebuild=True)")
        server.restart(timeout)
        if server in self._replicas and self.primary.running:
            self._wait_streaming(server, time.monotonic() + timeout)
        elif server is self._primary:
            for replica in self.replicas:
                if replica.running:
                    with self._admin(replica) as cur:
                        cur.execute("STOP SLAVE IO_THREAD")
                        cur.execute("START SLAVE IO_THREAD")
        return server

    # -- internals -------------------------------------------------------

    def _require_member(self, server: MariaDBServer) -> None:
        if not any(server is s for s in self._servers):
            raise ValueError(f"{server!r} is not a member of this cluster")

    def _require_replica(self, server: MariaDBServer) -> None:
        self._require_member(server)
        if server not in self._replicas:
            raise ValueError(f"{server!r} is not a replica of the current primary")

    def _set_args(self, server: MariaDBServer, read_only: bool) -> None:
        # The role lives on the server's command line, so restart() keeps it.
        args = [f"--server-id={self._server_ids[server]}", *_REPLICATION_OPTIONS]
        if read_only:
            args.append(_READ_ONLY_OPTION)
        server.extra_args = args + self._extra_args

    @contextmanager
    def _admin(self, server: MariaDBServer, user: str = ADMIN_USER) -> Iterator[Any]:
        conn = pymysql.connect(**self.admin_kwargs(server, user=user, connect_timeout=5))
        try:
            with conn.cursor() as cur:
                yield cur
        finally:
            conn.close()

    def _prepare(self, server: MariaDBServer) -> None:
        """Accounts on a fresh datadir, kept out of the binary log."""
        with self._admin(server, user="root") as cur:
            cur.execute("SET SESSION sql_log_bin=0")
            cur.execute(f"CREATE USER '{ADMIN_USER}'@'localhost'")
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'localhost' WITH GRANT OPTION")
            cur.execute(f"CREATE USER '{REPLICATION_USER}'@'127.0.0.1'")
            cur.execute(f"GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'127.0.0.1'")
        with self._admin(server) as cur:
            cur.execute("SET SESSION sql_log_bin=0")
            for account in _ROOT_ACCOUNTS:
                try:
                    cur.execute(f"REVOKE READ_ONLY ADMIN ON *.* FROM {account}")
                except pymysql.err.ProgrammingError:  # pragma: no cover - MariaDB < 10.5.2
                    break

    def _replicate(self, replica: MariaDBServer, source: MariaDBServer, reset_position: bool) -> None:
        with self._admin(replica) as cur:
            cur.execute("STOP SLAVE")
            cur.execute("RESET SLAVE ALL")
            # slave_pos = what this server applied: empty on a fresh datadir,
            # else its binary log's position (log_slave_updates keeps them equal).
            if reset_position:
                cur.execute("SET GLOBAL gtid_slave_pos=''")
            else:
                cur.execute("SET GLOBAL gtid_slave_pos=@@gtid_binlog_pos")
            cur.execute(
                "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, "
                "MASTER_PASSWORD='', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos",
                (source.host, source.port, REPLICATION_USER),
            )
            cur.execute("START SLAVE")

    def _primary_pos(self) -> str:
        primary = self.primary
        if not primary.running:
            raise ReplicationError(f"the primary {primary!r} is not running")
        with self._admin(primary) as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            pos: str = cur.fetchone()[0]
            return pos

    def _wait_streaming(self, replica: MariaDBServer, deadline: float) -> None:
        with self._admin(replica) as cur:
            wait_streaming(cur, replica, deadline)

    def _wait_applied(self, replica: MariaDBServer, pos: str, deadline: float) -> None:
        with self._admin(replica) as cur:
            wait_applied(cur, replica, pos, deadline)


def _has_datadir(server: MariaDBServer) -> bool:
    try:
        server.datadir
    except RuntimeError:  # stopped and removed: a start() would begin from the template
        return False
    return True
