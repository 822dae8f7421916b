"""The demo's models (no migrations: :func:`demos.django_demo.config.create_tables`
creates their tables)."""

from __future__ import annotations

from django.db import models


class Note(models.Model):
    name = models.CharField(max_length=60)
    message = models.CharField(max_length=500)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "django_demo"
        ordering = ["-id"]

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "message": self.message,
                "created": self.created.isoformat()}


class Counter(models.Model):
    """A named counter, bumped under ``select_for_update``."""

    name = models.CharField(max_length=60, unique=True)
    value = models.IntegerField(default=0)

    class Meta:
        app_label = "django_demo"
