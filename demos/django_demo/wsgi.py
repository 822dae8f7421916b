"""The demo's pages as a Django WSGI app (``ROOT_URLCONF`` of the demo's
settings), for a threaded WSGI server: ``application()`` is Django's
WSGI handler; each request's connection goes back to the pool when Django
closes it at the request's end (``CONN_MAX_AGE = 0``)."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path

__all__ = ["urlpatterns", "application"]


def notes(request: HttpRequest) -> JsonResponse:
    from demos.django_demo.models import Note

    return JsonResponse({"notes": [n.as_dict() for n in Note.objects.all()[:20]]})


def slow(request: HttpRequest) -> JsonResponse:
    seconds = min(float(request.GET.get("s", "0.05")), 5.0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT SLEEP(%s), CONNECTION_ID()", [seconds])
        slept, connection_id = cursor.fetchone()
    return JsonResponse({"connection_id": connection_id, "slept": slept == 0})


urlpatterns = [path("api/notes", notes), path("api/slow", slow)]


def application() -> Any:
    """Django's WSGI handler for the configured settings."""
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()
