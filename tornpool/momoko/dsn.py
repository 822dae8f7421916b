"""Momoko DSNs: libpq ``key=value`` strings and ``mysql://`` URLs.

Momoko passes its DSN to libpq, so its users write::

    dbname=shop user=app password=secret host=db.internal port=5432

:func:`parse` turns such a string into tornpool's connection arguments (port
3306 unless given); a ``mysql://user:pw@host:port/db?param=v`` URL goes to
:func:`tornpool.parse_dsn` unchanged.  The keys understood:

=================== ==========================================================
``dbname``          database
``user``            user
``password``        password (``password= host=x`` is an empty password;
                    libpq would take ``host=x`` as the password)
``host``            host name or address; a value starting with ``/`` is the
                    path of the server's unix socket
``hostaddr``        numeric address (wins over ``host``, as in libpq)
``port``            TCP port (default 3306)
``unix_socket``     path of the server's unix socket (MySQL's name)
``connect_timeout`` seconds for TCP + TLS + authentication
``sslmode``         ``disable``; ``allow``/``prefer``/``require`` (TLS when
                    offered); ``verify-ca``; ``verify-full``
``sslrootcert``,    CA, client certificate and key files
``sslcert``,
``sslkey``
``application_name`` the connection attribute ``program_name``
``client_encoding`` character set (``UTF8`` becomes ``utf8mb4``)
``charset``         character set (MySQL's name)
=================== ==========================================================

Any other key is ignored with a :class:`DSNWarning` (Momoko DSNs often carry
PostgreSQL-only settings such as ``options`` or ``target_session_attrs``).
A string that is not ``key=value`` pairs, an unterminated quote or a
non-numeric port raise :class:`~tornpool.errors.DSNError`.
"""

from __future__ import annotations

import warnings
from typing import Any

from tornpool.dsn import parse_dsn
from tornpool.errors import DSNError

__all__ = ["parse", "split_pairs", "DSNWarning"]


class DSNWarning(UserWarning):
    """A DSN key with no MySQL meaning was ignored."""


_RENAMED = {
    "dbname": "database",
    "user": "user",
    "password": "password",
    "unix_socket": "unix_socket",
    "sslrootcert": "ssl_ca",
    "sslcert": "ssl_cert",
    "sslkey": "ssl_key",
    "application_name": "program_name",
    "charset": "charset",
}

_SSLMODES: dict[str, dict[str, Any]] = {
    "disable": {"ssl_disabled": True},
    "allow": {},
    "prefer": {},
    "require": {},
    "verify-ca": {"ssl_verify_cert": True},
    "verify-full": {"ssl_verify_cert": True, "ssl_verify_identity": True},
}


def split_pairs(dsn: str) -> list[tuple[str, str]]:
    """The ``(key, value)`` pairs of a libpq connection string, in order.

    Spaces around ``=`` are allowed; values may be single-quoted
    (``password='a b'``); a backslash escapes the next character, quoted or
    not.  ``key=`` followed by another ``key=value`` word is an empty value
    (libpq would take that word as the value: quote a value containing ``=``).

    :raises DSNError: a word without ``=``, an empty key, an unterminated quote.
    """
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(dsn)
    while True:
        while i < n and dsn[i].isspace():
            i += 1
        if i >= n:
            return pairs
        start = i
        while i < n and dsn[i] != "=" and not dsn[i].isspace():
            i += 1
        key = dsn[start:i]
        while i < n and dsn[i].isspace():
            i += 1
        if not key or i >= n or dsn[i] != "=":
            raise DSNError(f"malformed DSN: expected key=value at {dsn[start:start + 20]!r}")
        i += 1
        after = i
        while i < n and dsn[i].isspace():
            i += 1
        if i > after and _is_pair(dsn, i):
            i = after  # ``password= host=x``: an empty value, then the next pair
        value, i = _value(dsn, i, key)
        pairs.append((key, value))


def _is_pair(dsn: str, i: int) -> bool:
    """Whether an unquoted ``key=value`` word starts at ``dsn[i]``."""
    if i >= len(dsn) or dsn[i] == "'":
        return False
    end = i
    while end < len(dsn) and not dsn[end].isspace():
        end += 1
    return "=" in dsn[i:end]


def _value(dsn: str, i: int, key: str) -> tuple[str, int]:
    """The value starting at ``dsn[i]`` (after ``key=``) and the index after it."""
    n = len(dsn)
    out: list[str] = []
    if i < n and dsn[i] == "'":
        i += 1
        while i < n and dsn[i] != "'":
            if dsn[i] == "\\" and i + 1 < n:
                i += 1
            out.append(dsn[i])
            i += 1
        if i >= n:
            raise DSNError(f"malformed DSN: unterminated quoted value for {key!r}")
        return "".join(out), i + 1
    while i < n and not dsn[i].isspace():
        if dsn[i] == "\\" and i + 1 < n:
            i += 1
        out.append(dsn[i])
        i += 1
    return "".join(out), i


def parse(dsn: str) -> dict[str, Any]:
    """tornpool connection arguments for a Momoko DSN (see the module docstring).

    :raises DSNError: the DSN cannot be understood.
    """
    if not isinstance(dsn, str):
        raise DSNError(f"DSN must be a str, not {type(dsn).__name__}")
    text = dsn.strip()
    if "://" in text:
        return parse_dsn(text)
    kwargs: dict[str, Any] = {}
    hostaddr = None
    for key, value in split_pairs(text):
        if key in _RENAMED:
            kwargs[_RENAMED[key]] = value
        elif key == "host":
            if value.startswith("/"):
                kwargs["unix_socket"] = value
            elif value:
                kwargs["host"] = value
        elif key == "hostaddr":
            hostaddr = value or None
        elif key == "port":
            kwargs["port"] = _number(int, key, value)
        elif key == "connect_timeout":
            kwargs["connect_timeout"] = _number(float, key, value)
        elif key == "client_encoding":
            kwargs["charset"] = "utf8mb4" if value.lower().replace("-", "") == "utf8" else value.lower()
        elif key == "sslmode":
            if value not in _SSLMODES:
                raise DSNError(f"DSN key sslmode={value!r}: expected one of {', '.join(_SSLMODES)}")
            kwargs.update(_SSLMODES[value])
        else:
            warnings.warn(DSNWarning(f"DSN key {key!r} has no MySQL meaning; ignored"), stacklevel=3)
    if hostaddr is not None:
        kwargs["host"] = hostaddr
    kwargs.setdefault("port", 3306)
    return kwargs


def _number(kind: type[int] | type[float], key: str, value: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise DSNError(f"DSN key {key}={value!r} is not a number") from None
