"""Throwaway MariaDB servers: find ``mariadbd``, build a template datadir once
per process, run :class:`MariaDBServer` instances, and share one of them (or
``$TORNPOOL_TEST_DSN``) through :func:`test_dsn`.

Part of :mod:`tornpool.testing`; import from there.  Importing this module
starts nothing and touches no event loop.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import pymysql

from ._tls import _write_tls_files

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

__all__ = [
    "MariaDBNotFound",
    "ServerStartError",
    "MariaDBServer",
    "find_mariadbd",
    "test_dsn",
    "TEST_DSN_ENV",
    "MARIADBD_ENV",
    "INSTALL_HINT",
]

#: Environment variable naming an existing server to test against.
TEST_DSN_ENV = "TORNPOOL_TEST_DSN"
#: Environment variable naming the ``mariadbd`` binary to use.
MARIADBD_ENV = "TORNPOOL_MARIADBD"

INSTALL_HINT = (
    "install MariaDB's server binary (Debian/Ubuntu, as root: "
    "`apt-get install -y mariadb-server`), point TORNPOOL_MARIADBD at a "
    "mariadbd binary, or set TORNPOOL_TEST_DSN=mysql://user:pass@host:port/db "
    "to test against an existing server"
)


class MariaDBNotFound(RuntimeError):
    """No ``mariadbd`` (or ``mariadb-install-db``) binary could be found."""


class ServerStartError(RuntimeError):
    """``mariadbd`` exited or did not become ready; the message holds its log tail."""


# --------------------------------------------------------------------------
# Locating binaries
# --------------------------------------------------------------------------

_SEARCH_DIRS = (
    "/usr/sbin",
    "/usr/local/sbin",
    "/usr/bin",
    "/usr/local/bin",
    "/usr/libexec",
    "/usr/local/mysql/bin",
    "/usr/local/mariadb/bin",
    "/opt/homebrew/bin",
    "/opt/homebrew/opt/mariadb/bin",
    "/usr/local/opt/mariadb/bin",
)


def _is_exe(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_mariadbd() -> Optional[str]:
    """Return the path of a ``mariadbd`` binary, or ``None``.

    Looks at ``$TORNPOOL_MARIADBD``, then ``PATH``, then the usual install
    locations (``/usr/sbin``, ``/usr/local/mysql/bin``, Homebrew, ...).  A
    binary named ``mysqld`` is accepted only when it is MariaDB's (old
    packages install MariaDB under that name).
    """
    env = os.environ.get(MARIADBD_ENV)
    if env:
        return env if _is_exe(env) else None
    for name in ("mariadbd", "mysqld"):
        candidates: List[str] = []
        found = shutil.which(name)
        if found:
            candidates.append(found)
        candidates.extend(os.path.join(d, name) for d in _SEARCH_DIRS)
        for path in candidates:
            if not _is_exe(path):
                continue
            if name == "mariadbd" or _is_mariadb(path):
                return path
    return None


def _is_mariadb(path: str) -> bool:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "mariadb" in out.lower()


def _find_install_db(mariadbd: str) -> Optional[str]:
    here = os.path.dirname(os.path.realpath(mariadbd))
    base = os.path.dirname(here)
    dirs = [here, os.path.join(base, "bin"), os.path.join(base, "scripts")]
    for name in ("mariadb-install-db", "mysql_install_db"):
        for d in dirs:
            p = os.path.join(d, name)
            if _is_exe(p):
                return p
        found = shutil.which(name)
        if found:
            return found
    return None


# --------------------------------------------------------------------------
# Template datadir (built once per process)
# --------------------------------------------------------------------------

#: Options that shape the on-disk format: used for install, bootstrap and run.
#: ``innodb_data_file_path`` must be the same at every start or InnoDB refuses
#: the datadir.
_DATADIR_OPTIONS = (
    "--innodb-log-file-size=4M",
    "--innodb-buffer-pool-size=16M",
    "--innodb-data-file-path=ibdata1:10M:autoextend",
    "--performance-schema=OFF",
    "--skip-log-bin",
)

_BOOTSTRAP_SQL = """\
CREATE DATABASE IF NOT EXISTS test;
DELETE FROM mysql.global_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1', '%');
DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1', '%', '');
"""

_template_lock = threading.Lock()
_template_root: Optional[str] = None
_template_data: Dict[str, str] = {}  # mariadbd path -> template datadir


def _root_user_args() -> List[str]:
    # mariadbd refuses to run as root unless told to.
    return ["--user=root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


def _template_datadir(mariadbd: str) -> str:
    global _template_root
    with _template_lock:
        cached = _template_data.get(mariadbd)
        if cached is not None:
            return cached
        install_db = _find_install_db(mariadbd)
        if install_db is None:
            raise MariaDBNotFound(
                f"found {mariadbd} but no mariadb-install-db next to it; {INSTALL_HINT}"
            )
        if _template_root is None:
            _template_root = tempfile.mkdtemp(prefix="tornpool-mdb-template-")
            atexit.register(shutil.rmtree, _template_root, True)
        datadir = os.path.join(_template_root, f"data{len(_template_data)}")
        # a private tmpdir: installs running at the same time (other test
        # processes) must not meet in /tmp
        tmpdir = os.path.join(_template_root, f"tmp{len(_template_data)}")
        os.makedirs(tmpdir, exist_ok=True)
        cmd = [
            install_db,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--tmpdir={tmpdir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            *_root_user_args(),
            *_DATADIR_OPTIONS,
        ]
        base = os.path.dirname(os.path.dirname(os.path.realpath(mariadbd)))
        if base not in ("/usr", "/"):
            cmd.append(f"--basedir={base}")
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
        )
        if proc.returncode != 0:
            raise ServerStartError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{_tail(proc.stdout + proc.stderr)}"
            )
        boot = subprocess.run(
            [mariadbd, "--no-defaults", f"--datadir={datadir}", f"--tmpdir={tmpdir}", "--bootstrap",
             *_root_user_args(), *_DATADIR_OPTIONS],
            input=_BOOTSTRAP_SQL, capture_output=True, text=True, timeout=300,
        )
        if boot.returncode != 0:
            raise ServerStartError(
                f"mariadbd --bootstrap failed ({boot.returncode}):\n{_tail(boot.stdout + boot.stderr)}"
            )
        _template_data[mariadbd] = datadir
        return datadir


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _port_refuses(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return False


# --------------------------------------------------------------------------
# MariaDBServer
# --------------------------------------------------------------------------

_live_servers: "set[MariaDBServer]" = set()
_live_lock = threading.Lock()


def _cleanup_live_servers() -> None:
    with _live_lock:
        servers = list(_live_servers)
    for srv in servers:
        try:
            srv._terminate(graceful=False)
            srv._remove_dirs()
        except Exception:  # pragma: no cover - best effort at exit
            pass


atexit.register(_cleanup_live_servers)


class MariaDBServer:
    """A private, throwaway ``mariadbd``.

    ``root`` has no password, database ``test`` exists, the server listens on
    ``127.0.0.1:<free port>`` and on its own unix socket, name resolution is
    off and buffers are small so it starts in well under a second;
    ``max_allowed_packet`` is 64M, so results larger than 16 MiB fit.  The
    first server of a process runs ``mariadb-install-db`` once into a cached
    template datadir; every server copies that template.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    Servers still running at interpreter exit are killed and their
    directories removed.

    :param tls: generate a CA and a server certificate for ``127.0.0.1`` /
        ``localhost`` (needs ``cryptography``) and enable TLS; the CA file is
        :attr:`ssl_ca`.
    :param mariadbd: path of the server binary (default: :func:`find_mariadbd`).
    :param extra_args: more ``mariadbd`` options, e.g. ``["--max-connections=20"]``.
    :param startup_timeout: seconds :meth:`start` waits for readiness.
    :raises MariaDBNotFound: (from :meth:`start`) when no binary is found.
    """

    host = "127.0.0.1"
    user = "root"
    password = ""
    database = "test"

    def __init__(
        self,
        tls: bool = False,
        *,
        mariadbd: Optional[str] = None,
        extra_args: Optional[List[str]] = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.tls = tls
        self._mariadbd = mariadbd
        self.extra_args = list(extra_args or [])
        self.startup_timeout = startup_timeout
        self._port: Optional[int] = None
        self._basedir: Optional[str] = None
        self._proc: Optional["subprocess.Popen[bytes]"] = None
        self.ssl_ca: Optional[str] = None
        self.ssl_cert: Optional[str] = None
        self.ssl_key: Optional[str] = None
        self.start_seconds: Optional[float] = None
        """Seconds the last :meth:`start`/:meth:`restart` took until ready."""

    # -- properties ------------------------------------------------------

    @property
    def port(self) -> int:
        """TCP port on 127.0.0.1 (fixed for the server's lifetime, across restarts)."""
        if self._port is None:
            raise RuntimeError("MariaDBServer not started")
        return self._port

    @property
    def unix_socket(self) -> str:
        """Path of the server's own unix socket."""
        return os.path.join(self._require_basedir(), "mysqld.sock")

    @property
    def datadir(self) -> str:
        return os.path.join(self._require_basedir(), "data")

    @property
    def log_path(self) -> str:
        """The server's error log."""
        return os.path.join(self._require_basedir(), "error.log")

    @property
    def pid(self) -> Optional[int]:
        """Process id while running, else ``None``."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        return None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def dsn(self) -> str:
        """``mysql://root@127.0.0.1:PORT/test``."""
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"

    def connect_kwargs(self, unix_socket: bool = False, **overrides: Any) -> Dict[str, Any]:
        """Keyword arguments for :func:`pymysql.connect`.

        TCP by default; ``unix_socket=True`` connects over the socket file.
        A TLS server adds ``ssl_ca`` and ``ssl_verify_cert=True``.  *overrides*
        are merged last.
        """
        kw: Dict[str, Any] = {
            "user": self.user,
            "password": self.password,
            "database": self.database,
        }
        if unix_socket:
            kw["unix_socket"] = self.unix_socket
        else:
            kw["host"] = self.host
            kw["port"] = self.port
            if self.tls:
                kw["ssl_ca"] = self.ssl_ca
                kw["ssl_verify_cert"] = True
        kw.update(overrides)
        return kw

    def _require_basedir(self) -> str:
        if self._basedir is None:
            raise RuntimeError("MariaDBServer not started")
        return self._basedir

    # -- lifecycle -------------------------------------------------------

    def start(self) -> "MariaDBServer":
        """Start the server and wait until it accepts connections.

        A fresh server copies the template datadir; after :meth:`kill` (or
        ``stop(keep_data=True)``) it reuses the same datadir and port.

        :returns: ``self``.
        :raises MariaDBNotFound: no ``mariadbd`` binary.
        :raises ServerStartError: the server exited or was not ready in time.
        """
        if self.running:
            return self
        mariadbd = self._mariadbd or find_mariadbd()
        if mariadbd is None or not _is_exe(mariadbd):
            raise MariaDBNotFound(
                f"no mariadbd binary found ({mariadbd or 'searched PATH and ' + ', '.join(_SEARCH_DIRS[:3])}); "
                + INSTALL_HINT
            )
        self._mariadbd = mariadbd
        t0 = time.monotonic()
        fresh = self._basedir is None
        if fresh:
            template = _template_datadir(mariadbd)
            base = tempfile.mkdtemp(prefix="tornpool-mdb-")
            if len(os.path.join(base, "mysqld.sock")) > 100 and os.path.isdir("/tmp"):
                os.rmdir(base)  # unix socket paths are limited to ~107 bytes
                base = tempfile.mkdtemp(prefix="tpmdb-", dir="/tmp")
            self._basedir = base
            with _live_lock:
                _live_servers.add(self)
            try:
                shutil.copytree(template, self.datadir, symlinks=True)
                if self.tls:
                    self.ssl_ca, self.ssl_cert, self.ssl_key = _write_tls_files(base)
            except BaseException:
                self._remove_dirs()
                raise
        attempts = 3 if self._port is None else 1
        for attempt in range(attempts):
            if self._port is None or attempt > 0:
                self._port = _free_port(self.host)
            try:
                self._spawn(mariadbd)
                self.wait_ready(self.startup_timeout)
                break
            except ServerStartError as exc:
                self._terminate(graceful=False)
                if attempt + 1 < attempts and "already in use" in str(exc):
                    continue
                if fresh:
                    self._remove_dirs()
                raise
            except BaseException:
                self._terminate(graceful=False)
                if fresh:
                    self._remove_dirs()
                raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _spawn(self, mariadbd: str) -> None:
        base = self._require_basedir()
        for stale in (self.unix_socket, os.path.join(base, "mysqld.pid")):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        tmpdir = os.path.join(base, "tmp")
        os.makedirs(tmpdir, exist_ok=True)
        args = [
            mariadbd,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--socket={self.unix_socket}",
            f"--pid-file={os.path.join(base, 'mysqld.pid')}",
            f"--log-error={self.log_path}",
            f"--tmpdir={tmpdir}",
            "--skip-name-resolve",
            "--innodb-flush-log-at-trx-commit=2",  # survives a process kill, not an OS crash
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--max-connections=500",
            "--max-allowed-packet=64M",  # tests fetch results larger than 16 MiB
            *_root_user_args(),
            *_DATADIR_OPTIONS,
        ]
        if self.tls:
            args += [
                f"--ssl-ca={self.ssl_ca}",
                f"--ssl-cert={self.ssl_cert}",
                f"--ssl-key={self.ssl_key}",
            ]
        args += self.extra_args
        with open(os.path.join(base, "mariadbd.out"), "ab") as out:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killable as a whole
                close_fds=True,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until a PyMySQL connect over the unix socket succeeds.

        :raises ServerStartError: the process exited, or *timeout* seconds passed.
        """
        deadline = time.monotonic() + timeout
        last: Optional[BaseException] = None
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise ServerStartError(
                    f"mariadbd exited with code {code} before becoming ready; log tail:\n"
                    + self._log_tail()
                )
            if os.path.exists(self.unix_socket):
                try:
                    conn = pymysql.connect(
                        unix_socket=self.unix_socket, user=self.user,
                        password=self.password, connect_timeout=2,
                    )
                except pymysql.err.MySQLError as exc:
                    last = exc
                else:
                    conn.close()
                    return
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"mariadbd not ready after {timeout:.1f}s (last error: {last!r}); log tail:\n"
                    + self._log_tail()
                )
            time.sleep(0.02)

    def _log_tail(self) -> str:
        chunks = []
        base = self._basedir
        if base is not None:
            for name in ("error.log", "mariadbd.out"):
                try:
                    with open(os.path.join(base, name), errors="replace") as f:
                        chunks.append(_tail(f.read()))
                except OSError:
                    pass
        return "\n".join(c for c in chunks if c) or "(no log)"

    def stop(self, timeout: float = 30.0, keep_data: bool = False) -> None:
        """Shut down gracefully (SIGTERM, wait), killing the process group if
        it does not exit within *timeout* seconds.

        Unless *keep_data*, the temp directory (datadir, socket, certs) is
        removed and a later :meth:`start` begins from a fresh datadir.
        Safe to call more than once.
        """
        self._terminate(graceful=True, timeout=timeout)
        if not keep_data:
            self._remove_dirs()

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the server by pid, wait for it to die and for its TCP port to
        refuse connections.  The datadir is kept: :meth:`restart` (or
        :meth:`start`) brings the server back with its committed data."""
        self._terminate(graceful=False)
        if self._port is None:
            return
        deadline = time.monotonic() + timeout
        while not _port_refuses(self.host, self._port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {self._port} still accepts after kill()")
            time.sleep(0.02)

    def restart(self, timeout: float = 30.0) -> "MariaDBServer":
        """Stop (gracefully, if running) and start again on the same port and
        datadir; return when ready."""
        if self._basedir is None:
            return self.start()
        self._terminate(graceful=True, timeout=timeout)
        return self.start()

    def _terminate(self, graceful: bool, timeout: float = 30.0) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                if graceful:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        pass
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        proc.kill()
            proc.wait(30)
        finally:
            self._proc = None

    def _remove_dirs(self) -> None:
        base = self._basedir
        self._basedir = None
        self.ssl_ca = self.ssl_cert = self.ssl_key = None
        with _live_lock:
            _live_servers.discard(self)
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)

    def __enter__(self) -> "MariaDBServer":
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        tb: "Optional[TracebackType]",
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<MariaDBServer {self.host}:{self._port} tls={self.tls} {state}>"


# --------------------------------------------------------------------------
# Shared server / DSN for a test session
# --------------------------------------------------------------------------

_session_lock = threading.Lock()
_session_server: Optional[MariaDBServer] = None


def test_dsn() -> str:
    """DSN of the server tests should use.

    ``$TORNPOOL_TEST_DSN`` when set; otherwise a throwaway server started on
    first call and shared by the whole process (stopped at exit).  Never use
    this server for tests that kill or restart: take a :class:`MariaDBServer`
    of your own (or the ``throwaway_mariadb`` fixture).
    """
    env = os.environ.get(TEST_DSN_ENV)
    if env:
        return env
    global _session_server
    with _session_lock:
        if _session_server is None or not _session_server.running:
            _session_server = MariaDBServer().start()
        return _session_server.dsn


test_dsn.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
