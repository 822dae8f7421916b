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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tornpool.errors import DSNError

__all__ = ["parse_dsn"]

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

# Aliases users bring from other drivers.
_ALIASES = {"db": "database", "dbname": "database", "passwd": "password", "timeout": "connect_timeout"}


def parse_dsn(dsn: str) -> dict[str, Any]:
    """Turn ``dsn`` into keyword arguments for PyMySQL's ``Connection``.

    :raises DSNError: the DSN cannot be parsed or names an unknown parameter.
    """
    if not isinstance(dsn, str):
        raise DSNError(f"DSN must be a str, not {type(dsn).__name__}")
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
        if convert is None:
            raise DSNError(f"unknown DSN parameter {key!r} (known: {', '.join(sorted(_PARAMS))})")
        try:
            kwargs[key] = convert(value)
        except ValueError as exc:
            raise DSNError(f"DSN parameter {key}={value!r}: {exc}") from None
    return kwargs


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
