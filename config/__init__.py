"""The composition root: settings (read from the environment only; importing them writes nothing),
URLs, the ASGI/WSGI entry points, the Celery app, and ``embedded.prepare()`` which sets up the
zero-setup default at process start. Imported by nobody; it wires the apps together (settings name
the classes and functions it plugs in, such as the audit retention policy).
"""

from config.celery import app as celery_app

__all__ = ["celery_app"]
