"""Throwaway PostgreSQL servers for tests: :class:`PostgresServer`.

Like :class:`~tornpool.testing.MariaDBServer`: a private ``postgres`` in a
temp directory, listening on ``127.0.0.1:<free port>`` and on its own unix
socket directory, superuser ``postgres`` with ``trust`` authentication,
database ``test``, fsync off.  The binaries are Debian's
(``/usr/lib/postgresql/<version>/bin``), or ``$TORNPOOL_PG_BINDIR``, or the
ones on ``PATH``.  ``initdb`` runs once per process into a cached template
that every server copies.

PostgreSQL refuses to run as root: when this process is root, the server
(and ``initdb``) run as the ``postgres`` system user that Debian's package
creates, and the temp directories are handed to it.

Part of :mod:`tornpool.testing`; import from there.  Importing this module
starts nothing.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from types import TracebackType
from typing import Any, Optional

__all__ = ["PostgresServer", "PostgresNotFound", "PostgresStartError", "find_pg_bindir",
           "postgres_test_dsn", "PG_BINDIR_ENV", "PG_TEST_DSN_ENV", "PG_INSTALL_HINT"]

#: Environment variable naming the directory of ``initdb`` and ``postgres``.
PG_BINDIR_ENV = "TORNPOOL_PG_BINDIR"
#: The system user the server runs as when this process is root.
PG_OS_USER = "postgres"

PG_INSTALL_HINT = (
    "install PostgreSQL's server binaries (Debian/Ubuntu, as root: "
    "`apt-get install -y postgresql`) or point TORNPOOL_PG_BINDIR at the directory "
    "holding initdb and postgres"
)


class PostgresNotFound(RuntimeError):
    """No ``initdb`` / ``postgres`` binaries could be found."""


class PostgresStartError(RuntimeError):
    """``initdb`` or ``postgres`` failed, or the server did not become
    ready; the message holds the log's tail."""


def find_pg_bindir() -> Optional[str]:
    """The directory holding ``initdb``, ``postgres`` and ``pg_isready``, or None.

    Looks at ``$TORNPOOL_PG_BINDIR``, then Debian's
    ``/usr/lib/postgresql/*/bin`` (newest version first), then ``PATH``.
    """
    names = ("initdb", "postgres", "pg_isready")

    def complete(d: str) -> bool:
        return all(os.access(os.path.join(d, n), os.X_OK) for n in names)

    env = os.environ.get(PG_BINDIR_ENV)
    if env:
        return env if complete(env) else None
    def version(d: str) -> float:
        try:
            return float(d.split(os.sep)[-2])
        except ValueError:
            return 0.0

    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if complete(d):
            return d
    found = shutil.which("postgres")
    if found:
        d = os.path.dirname(os.path.realpath(found))
        if complete(d):
            return d
    return None


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _os_user() -> Optional[pwd.struct_passwd]:
    """The account to run PostgreSQL as (None: this process's own)."""
    if not _as_root():
        return None
    try:
        return pwd.getpwnam(PG_OS_USER)
    except KeyError as exc:
        raise PostgresNotFound(f"running as root, and there is no '{PG_OS_USER}' user to run "
                               f"PostgreSQL as; {PG_INSTALL_HINT}") from exc


def _give(path: str, user: Optional[pwd.struct_passwd]) -> None:
    if user is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, user.pw_uid, user.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)


def _run(cmd: list[str], user: Optional[pwd.struct_passwd], timeout: float = 120) -> None:
    kw: dict[str, Any] = {}
    if user is not None:
        kw.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, cwd="/", **kw)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise PostgresStartError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")


_template_lock = threading.Lock()
_template: dict[str, str] = {}  # bindir -> template datadir


def _template_datadir(bindir: str, user: Optional[pwd.struct_passwd]) -> str:
    with _template_lock:
        cached = _template.get(bindir)
        if cached is not None:
            return cached
        root = tempfile.mkdtemp(prefix="tornpool-pg-template-")
        atexit.register(shutil.rmtree, root, True)
        os.chmod(root, 0o755)
        datadir = os.path.join(root, "data")
        os.mkdir(datadir, 0o700)
        _give(root, user)
        _run([os.path.join(bindir, "initdb"), "-D", datadir, "-U", "postgres", "--auth=trust",
              "--encoding=UTF8", "--locale=C", "--no-sync"], user, timeout=300)
        _template[bindir] = datadir
        return datadir


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_live: "set[PostgresServer]" = set()
_live_lock = threading.Lock()


def _cleanup() -> None:
    with _live_lock:
        servers = list(_live)
    for srv in servers:
        try:
            srv.stop(timeout=5)
        except Exception:  # pragma: no cover - best effort at exit
            pass


atexit.register(_cleanup)


class PostgresServer:
    """A private, throwaway PostgreSQL server; see the module docstring.

    Use it as a context manager, or :meth:`start` and :meth:`stop`.  Servers
    still running at interpreter exit are stopped and their directories
    removed.

    :param bindir: where ``initdb`` and ``postgres`` are (default
        :func:`find_pg_bindir`).
    :param extra_args: more server settings, e.g. ``["-c", "max_connections=20"]``.
    :param startup_timeout: seconds :meth:`start` waits for readiness.
    """

    host = "127.0.0.1"
    user = "postgres"
    database = "test"

    def __init__(self, *, bindir: Optional[str] = None, extra_args: Optional[list[str]] = None,
                 startup_timeout: float = 60.0) -> None:
        self._bindir = bindir
        self.extra_args = list(extra_args or [])
        self.startup_timeout = startup_timeout
        self._base: Optional[str] = None
        self._port: Optional[int] = None
        self._proc: Optional["subprocess.Popen[bytes]"] = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("PostgresServer not started")
        return self._port

    @property
    def socket_dir(self) -> str:
        """The directory of the server's unix socket."""
        if self._base is None:
            raise RuntimeError("PostgresServer not started")
        return os.path.join(self._base, "sock")

    @property
    def datadir(self) -> str:
        if self._base is None:
            raise RuntimeError("PostgresServer not started")
        return os.path.join(self._base, "data")

    @property
    def log_path(self) -> str:
        if self._base is None:
            raise RuntimeError("PostgresServer not started")
        return os.path.join(self._base, "postgres.log")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def dsn(self) -> str:
        """A libpq connection string over TCP: ``host=127.0.0.1 port=N user=postgres dbname=test``."""
        return f"host={self.host} port={self.port} user={self.user} dbname={self.database}"

    @property
    def url(self) -> str:
        """The same as a URL: ``postgresql://postgres@127.0.0.1:N/test``."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def start(self) -> "PostgresServer":
        """Copy the template, start ``postgres``, wait until it accepts
        connections, create database ``test``.

        :returns: ``self``.
        :raises PostgresNotFound: no binaries (or no ``postgres`` user as root).
        :raises PostgresStartError: the server failed or was not ready in time.
        """
        if self.running:
            return self
        bindir = self._bindir or find_pg_bindir()
        if bindir is None:
            raise PostgresNotFound("no PostgreSQL binaries found; " + PG_INSTALL_HINT)
        self._bindir = bindir
        user = _os_user()
        template = _template_datadir(bindir, user)
        base = tempfile.mkdtemp(prefix="tpg-", dir="/tmp" if os.path.isdir("/tmp") else None)
        os.chmod(base, 0o755)
        self._base = base
        with _live_lock:
            _live.add(self)
        try:
            shutil.copytree(template, self.datadir, symlinks=True)
            os.chmod(self.datadir, 0o700)
            os.mkdir(self.socket_dir)
            _give(base, user)
            self._port = _free_port()
            self._spawn(bindir, user)
            self._wait_ready(bindir, user)
            _run([os.path.join(bindir, "createdb"), "-h", self.socket_dir, "-p", str(self.port),
                  "-U", self.user, self.database], user)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, bindir: str, user: Optional[pwd.struct_passwd]) -> None:
        args = [os.path.join(bindir, "postgres"), "-D", self.datadir,
                "-p", str(self.port), "-k", self.socket_dir, "-h", self.host,
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=200", "-c", "shared_buffers=16MB",
                "-c", "logging_collector=off", *self.extra_args]
        kw: dict[str, Any] = {}
        if user is not None:
            kw.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          close_fds=True, cwd="/", **kw)

    def _wait_ready(self, bindir: str, user: Optional[pwd.struct_passwd]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        isready = [os.path.join(bindir, "pg_isready"), "-q", "-h", self.socket_dir,
                   "-p", str(self.port), "-U", self.user]
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                raise PostgresStartError("postgres exited before becoming ready; log tail:\n"
                                         + self._log_tail())
            if subprocess.run(isready, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0:
                return
            if time.monotonic() >= deadline:
                raise PostgresStartError(f"postgres not ready after {self.startup_timeout:.0f} s; "
                                         "log tail:\n" + self._log_tail())
            time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "\n".join(f.read().strip().splitlines()[-30:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT), then SIGKILL to the process group after
        ``timeout`` seconds; removes the directories.  Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown: disconnects clients
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    proc.kill()
                proc.wait(30)
        base, self._base = self._base, None
        with _live_lock:
            _live.discard(self)
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, et: Optional[type], e: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self._port}" if self.running else "stopped"
        return f"<PostgresServer {state}>"


#: Environment variable naming an existing PostgreSQL server to test against
#: (a libpq connection string).
PG_TEST_DSN_ENV = "TORNPOOL_TEST_PG_DSN"

_session_lock = threading.Lock()
_session_server: Optional[PostgresServer] = None


def postgres_test_dsn() -> str:
    """The libpq connection string tests should use: ``$TORNPOOL_TEST_PG_DSN``
    when set, else a throwaway :class:`PostgresServer` started on first call
    and shared by the whole process (stopped at exit).  Never stop it in a
    test; take a server of your own for that."""
    env = os.environ.get(PG_TEST_DSN_ENV)
    if env:
        return env
    global _session_server
    with _session_lock:
        if _session_server is None or not _session_server.running:
            _session_server = PostgresServer().start()
        return _session_server.dsn


postgres_test_dsn.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
