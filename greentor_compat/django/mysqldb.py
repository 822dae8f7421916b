"""Import Django's MySQL backend with PyMySQL standing in for ``MySQLdb``.

``django.db.backends.mysql.base`` starts with ``import MySQLdb`` and refuses a
``MySQLdb.version_info`` older than it supports (1.4.3 on Django 5.2, 2.2.1 on
6.0).  PyMySQL's ``install_as_MySQLdb()`` makes ``pymysql`` *the* ``MySQLdb``
for the whole process, and PyMySQL 1.1 reports 1.4.6 there.

:func:`django_mysql_base` avoids both: when ``MySQLdb`` cannot be imported
(no mysqlclient), it puts a module of its own -- PyMySQL's names, with a
``version_info`` no lower than 2.2.1 -- under ``MySQLdb`` (and its
``constants`` and ``converters``) in ``sys.modules`` only while Django's
backend modules are imported, then takes it out again.  Django's backend
modules keep the references they took; ``import MySQLdb`` anywhere else
behaves as before (mysqlclient, or ImportError).  When mysqlclient is
installed, nothing is replaced: Django's modules bind to it, and
:mod:`greentor_compat.django.mysql.base` overrides every place where that
would matter (connecting, converters, exception classes), so the backend
runs on PyMySQL either way.

PyMySQL itself is never modified.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

import pymysql
import pymysql.constants
import pymysql.constants.CLIENT
import pymysql.constants.FIELD_TYPE
import pymysql.converters

__all__ = ["django_mysql_base", "MYSQLDB_API_LEVEL", "shim_module"]

#: The mysqlclient API level the stand-in reports: what Django 6.0 requires
#: (5.2 requires 1.4.3).  PyMySQL 1.2 reports 2.2.8 itself and is kept.
MYSQLDB_API_LEVEL = (2, 2, 1, "final", 0)

_BACKEND = "django.db.backends.mysql.base"


def shim_module() -> types.ModuleType:
    """A module with PyMySQL's public names and a ``version_info`` of at
    least :data:`MYSQLDB_API_LEVEL` (PyMySQL's own module is left as it is)."""
    shim = types.ModuleType("MySQLdb", "PyMySQL standing in for mysqlclient (greentor_compat.django)")
    shim.__dict__.update({k: v for k, v in vars(pymysql).items() if not k.startswith("__")})
    version = tuple(pymysql.version_info)
    if version < MYSQLDB_API_LEVEL:
        version = MYSQLDB_API_LEVEL
    shim.version_info = version  # type: ignore[attr-defined]
    shim.__version__ = "%d.%d.%d" % version[:3]  # type: ignore[attr-defined]
    shim.constants = pymysql.constants  # type: ignore[attr-defined]
    shim.converters = pymysql.converters  # type: ignore[attr-defined]
    return shim


def _mysqldb_importable() -> bool:
    if "MySQLdb" in sys.modules:
        return sys.modules["MySQLdb"] is not None  # None: imports of it are blocked
    try:
        importlib.import_module("MySQLdb")
    except ImportError:
        return False
    return True


def django_mysql_base() -> Any:
    """``django.db.backends.mysql.base``, imported with the stand-in if
    needed (see the module docstring).

    :raises django.core.exceptions.ImproperlyConfigured: as Django raises it
        if its backend still cannot be imported.
    """
    loaded = sys.modules.get(_BACKEND)
    if loaded is not None:
        return loaded
    if _mysqldb_importable():
        return importlib.import_module(_BACKEND)
    names = {
        "MySQLdb": shim_module(),
        "MySQLdb.constants": pymysql.constants,
        "MySQLdb.constants.CLIENT": pymysql.constants.CLIENT,
        "MySQLdb.constants.FIELD_TYPE": pymysql.constants.FIELD_TYPE,
        "MySQLdb.converters": pymysql.converters,
    }
    absent = object()
    saved = {name: sys.modules.get(name, absent) for name in names}
    sys.modules.update(names)
    try:
        return importlib.import_module(_BACKEND)
    finally:
        for name, previous in saved.items():
            if previous is absent:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous  # type: ignore[assignment]
