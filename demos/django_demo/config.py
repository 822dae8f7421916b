"""Django settings for the demo (and the tests): ``configure(dsn)``."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings
from tornpool import parse_dsn

__all__ = ["database_settings", "configure", "create_tables"]


def database_settings(dsn: str, *, name: str | None = None, pool: Any = True,
                      **extra: Any) -> dict[str, Any]:
    """A ``DATABASES`` entry for ``dsn`` on ``greentor_compat.django.mysql``."""
    kw = parse_dsn(dsn)
    entry: dict[str, Any] = {
        "ENGINE": "greentor_compat.django.mysql",
        "NAME": name or kw.get("database") or "test",
        "USER": kw.get("user") or "root",
        "PASSWORD": kw.get("password") or "",
        "HOST": kw.get("unix_socket") or kw.get("host") or "127.0.0.1",
        "PORT": str(kw.get("port") or ""),
        "OPTIONS": {"pool": pool},
        "TEST": {"NAME": None},
    }
    entry.update(extra)
    return entry


def configure(databases: dict[str, dict[str, Any]], **more: Any) -> None:
    """``settings.configure`` for the demo app, then ``django.setup()``
    (once per process; later calls do nothing)."""
    if settings.configured:
        return
    settings.configure(
        DATABASES=databases,
        INSTALLED_APPS=["demos.django_demo.apps.DjangoDemoConfig"],
        USE_TZ=True,
        TIME_ZONE="UTC",
        ROOT_URLCONF="demos.django_demo.wsgi",
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="demo-only-not-secret",
        DEBUG=False,
        **more,
    )
    django.setup()


def create_tables(alias: str = "default") -> None:
    """Create the demo's tables on ``alias`` if missing (blocking style: call
    it in a green task or a thread)."""
    from django.db import connections

    from demos.django_demo.models import Counter, Note

    conn = connections[alias]
    existing = set(conn.introspection.table_names())
    with conn.schema_editor() as editor:
        for model in (Note, Counter):
            if model._meta.db_table not in existing:
                editor.create_model(model)
    conn.close()
