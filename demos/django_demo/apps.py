from django.apps import AppConfig


class DjangoDemoConfig(AppConfig):
    name = "demos.django_demo"
    label = "django_demo"
    default_auto_field = "django.db.models.BigAutoField"
