"""Parse ``mysql://`` DSNs into PyMySQL connection arguments.

Accepted forms::

    mysql://user:password@host:3306/database?charset=utf8mb4&connect_timeout=5
    mysql://user@127.0.0.1/test?ssl_ca=/etc/ca.pem&ssl_verify_identity=true
    mysql://user@/test?unix_socket=/run/mysqld/mysqld.sock
    mysql://user@%2Frun%2Fmysqld%2Fmysqld.sock/test        (percent-encoded socket path as host)

The schemes ``mysql``, ``mariadb`` and ``mysql+tornpool`` are equivalent.
User, password and database are percent-decoded.  Query parameters are
PyMySQL's keyword arguments; values are converted to the type PyMySQL expects.
An unknown parameter or a malformed value raises :class:`~tornpool.errors.DSNError`.

A DSN may name several servers (for a pool: :mod:`tornpool.hosts`)::

    mysql://user@h1:3306,h2:3306,[::1]:3307/db?target_session_attrs=read-write&load_balance_hosts=random

:func:`parse_multi_host_dsn` reads that form (and every single-host DSN);
:func:`parse_dsn` keeps answering for one server only and refuses a host list
with a :class:`~tornpool.errors.DSNError` that says where to take it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from tornpool.errors import DSNError

__all__ = [
    "parse_dsn",
    "parse_multi_host_dsn",
    "parse_hosts",
    "HostSpec",
    "MultiHostDSN",
    "TARGET_SESSION_ATTRS",
    "LOAD_BALANCE_HOSTS",
]

SCHEMES = frozenset({"mysql", "mariadb", "mysql+tornpool", "mysql+pymysql"})


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _str(value: str) -> str:
    return value


_PARAMS: dict[str, Callable[[str], Any]] = {
    "charset": _str,
    "collation": _str,
    "connect_timeout": float,
    "read_timeout": float,
    "write_timeout": float,
    "autocommit": _bool,
    "local_infile": _bool,
    "init_command": _str,
    "sql_mode": _str,
    "program_name": _str,
    "unix_socket": _str,
    "ssl_ca": _str,
    "ssl_cert": _str,
    "ssl_key": _str,
    "ssl_key_password": _str,
    "ssl_verify_cert": _bool,
    "ssl_verify_identity": _bool,
    "ssl_disabled": _bool,
    "use_unicode": _bool,
    "binary_prefix": _bool,
    "client_flag": int,
    "max_allowed_packet": int,
    "auth_plugin_map": _str,
    "server_public_key": _str,
    "bind_address": _str,
    # tornpool's own: ask the server to flag session-state changes (default on)
    "session_track": _bool,
}

#: Values of ``target_session_attrs`` (libpq's names; see :mod:`tornpool.hosts`).
TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
#: Values of ``load_balance_hosts``: try the hosts in the order given, or shuffled.
LOAD_BALANCE_HOSTS = ("disable", "random")
# Options of a pool over several servers, not of one connection.
_HOST_LIST_PARAMS = ("target_session_attrs", "load_balance_hosts")

# Aliases users bring from other drivers.
_ALIASES = {"db": "database", "dbname": "database", "passwd": "password", "timeout": "connect_timeout"}


def parse_dsn(dsn: str) -> dict[str, Any]:
    """Turn ``dsn`` into keyword arguments for PyMySQL's ``Connection``.

    :raises DSNError: the DSN cannot be parsed or names an unknown parameter.
    """
    if not isinstance(dsn, str):
        raise DSNError(f"DSN must be a str, not {type(dsn).__name__}")
    if _several_hosts(dsn):
        raise DSNError(
            f"{_redact(dsn)!r} names several hosts; one connection goes to one server: "
            "use tornpool.Pool(dsn) or tornpool.hosts.connect_target(dsn)"
        )
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError as exc:
        raise DSNError(f"malformed DSN {_redact(dsn)!r}: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise DSNError(
            f"DSN scheme must be one of {sorted(SCHEMES)}, got {parts.scheme!r} in {_redact(dsn)!r}"
        )
    kwargs: dict[str, Any] = {}
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    netloc_host = parts.netloc.rpartition("@")[2]
    host = unquote(netloc_host.rsplit(":", 1)[0] if port is not None else netloc_host)
    if host.startswith("/"):
        kwargs["unix_socket"] = host
    elif host:
        kwargs["host"] = host.strip("[]")
    if port is not None:
        kwargs["port"] = port
    database = unquote(parts.path.lstrip("/"))
    if database:
        kwargs["database"] = database
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        key = _ALIASES.get(key, key)
        if key in ("database", "password", "user", "host"):
            kwargs[key] = value
            continue
        if key == "port":
            try:
                kwargs["port"] = int(value)
            except ValueError:
                raise DSNError(f"DSN parameter port={value!r} is not an integer") from None
            continue
        convert = _PARAMS.get(key)
        if convert is None and key in _HOST_LIST_PARAMS:
            raise DSNError(f"DSN parameter {key!r} chooses among servers: it is read by "
                           "tornpool.Pool and tornpool.hosts.connect_target, not by connect()")
        if convert is None:
            raise DSNError(f"unknown DSN parameter {key!r} (known: {', '.join(sorted(_PARAMS))})")
        try:
            kwargs[key] = convert(value)
        except ValueError as exc:
            raise DSNError(f"DSN parameter {key}={value!r}: {exc}") from None
    return kwargs


def _several_hosts(dsn: str) -> bool:
    """Whether ``dsn``'s network location lists more than one host."""
    try:
        netloc = urlsplit(dsn).netloc
    except ValueError:
        return False
    return "," in netloc.rpartition("@")[2]


@dataclass(frozen=True)
class HostSpec:
    """One server of a host list: a TCP host and port, or a unix socket
    (``host`` starting with ``/``; ``port`` is then None)."""

    host: str
    #: None: the default (3306, or the DSN's ``port`` parameter).
    port: int | None = None

    @property
    def is_socket(self) -> bool:
        return self.host.startswith("/")

    def connect_kwargs(self) -> dict[str, Any]:
        """The keyword arguments that name this server for :func:`tornpool.connect`."""
        if self.is_socket:
            return {"unix_socket": self.host}
        if self.port is None:
            return {"host": self.host}
        return {"host": self.host, "port": self.port}

    def __str__(self) -> str:
        if self.is_socket or self.port is None:
            return self.host if ":" not in self.host else f"[{self.host}]"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class MultiHostDSN:
    """A DSN that may name several servers, as :func:`parse_multi_host_dsn`
    reads it."""

    #: The servers, in the DSN's order (empty: none named, PyMySQL's default).
    hosts: tuple[HostSpec, ...]
    #: Connection arguments shared by every host (no host, port or socket).
    options: dict[str, Any]
    #: ``target_session_attrs`` if the DSN sets it.
    target_session_attrs: str | None = None
    #: ``load_balance_hosts`` if the DSN sets it.
    load_balance_hosts: str | None = None


def _port(text: str, item: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise DSNError(f"bad port in host {item!r}")
    return int(text)


def _host_item(item: str) -> HostSpec:
    item = item.strip()
    if not item:
        raise DSNError("empty host in host list")
    if item.startswith("/"):
        return HostSpec(item)
    if item.startswith("["):
        host, sep, rest = item[1:].partition("]")
        if not sep or not host or (rest and not rest.startswith(":")):
            raise DSNError(f"malformed host {item!r}")
        return HostSpec(host, _port(rest[1:], item) if rest else None)
    if item.count(":") > 1:
        raise DSNError(f"IPv6 host {item!r} must be written in brackets: [{item}]")
    host, sep, port = item.partition(":")
    if not host:
        raise DSNError(f"malformed host {item!r}")
    return HostSpec(host, _port(port, item) if sep else None)


def parse_hosts(hosts: str | Sequence[str | tuple[str, int]]) -> tuple[HostSpec, ...]:
    """A host list: ``"h1:3306,h2,[::1]:3307,/run/mysqld/mysqld.sock"`` or a
    sequence of such strings and ``(host, port)`` pairs.

    :raises DSNError: an empty list, or a host or port that makes no sense.
    """
    items: list[HostSpec] = []
    if isinstance(hosts, str):
        items = [_host_item(unquote(part)) for part in hosts.split(",")]
    else:
        for entry in hosts:
            if isinstance(entry, str):
                items.append(_host_item(entry))
            elif (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)
                  and isinstance(entry[1], int) and not isinstance(entry[1], bool)):
                if not entry[0] or not 0 < entry[1] < 65536:
                    raise DSNError(f"bad host {entry!r}")
                items.append(HostSpec(entry[0].strip("[]"), entry[1]))
            else:
                raise DSNError(f"a host is 'host[:port]' or (host, port), not {entry!r}")
    if not items:
        raise DSNError("the host list is empty")
    return tuple(items)


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise DSNError(f"{key}={value!r}: must be one of {', '.join(allowed)}")
    return value


def parse_multi_host_dsn(dsn: str) -> MultiHostDSN:
    """Read a DSN that names one or several servers.

    ``mysql://u:pw@h1:3306,h2,[::1]:3307/db?target_session_attrs=read-write``
    gives the hosts in order, the connection arguments they share (exactly
    what :func:`parse_dsn` gives for one host, minus host, port and socket),
    and the two host-list options.  A ``port`` parameter is the port of hosts
    written without one.

    :raises DSNError: the DSN cannot be parsed, names a host both in its
        network location and as a parameter, or has a bad option value.
    """
    if not isinstance(dsn, str):
        raise DSNError(f"DSN must be a str, not {type(dsn).__name__}")
    try:
        parts = urlsplit(dsn)
    except ValueError as exc:
        raise DSNError(f"malformed DSN {_redact(dsn)!r}: {exc}") from None
    userinfo, at, hostpart = parts.netloc.rpartition("@")
    hosts = parse_hosts(hostpart) if hostpart else ()
    target = balance = None
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "target_session_attrs":
            target = _choice(key, value, TARGET_SESSION_ATTRS)
        elif key == "load_balance_hosts":
            balance = _choice(key, value, LOAD_BALANCE_HOSTS)
        else:
            rest.append((key, value))
    options = parse_dsn(urlunsplit((parts.scheme, userinfo + at, parts.path, urlencode(rest), "")))
    host, port, sock = options.pop("host", None), options.pop("port", None), options.pop("unix_socket", None)
    if hosts and (host is not None or sock is not None):
        raise DSNError(f"{_redact(dsn)!r} names its host both before the path and as a parameter")
    if not hosts and (host is not None or sock is not None):
        hosts = (HostSpec(sock) if sock is not None else HostSpec(host, None),)
    if port is not None:
        hosts = tuple(HostSpec(h.host, port) if h.port is None and not h.is_socket else h
                      for h in hosts)
    return MultiHostDSN(hosts, options, target, balance)


def _redact(dsn: str) -> str:
    """``dsn`` with any password replaced, for error messages."""
    try:
        parts = urlsplit(dsn)
        if parts.password is None:
            return dsn
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()
    except ValueError:
        return "<unparseable DSN>"
