"""WSGI entry point, used by gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# Web requests only (not the sync, not migrations): see trees/database.py.
from django.conf import settings  # noqa: E402 (settings are configured by now)

from trees.database import limit_statements  # noqa: E402

limit_statements(settings.DATABASE_STATEMENT_TIMEOUT)
