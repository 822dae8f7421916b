"""``ENGINE: "greentor_compat.django.mysql"`` -- Django's MySQL backend on
PyMySQL, pooled; the wrapper is :class:`greentor_compat.django.mysql.base.DatabaseWrapper`."""
