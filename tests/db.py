"""Connections of a test's own beside Django's, as another process (a worker, a sync) has."""

import psycopg
from django.db import connection


def other_connection(*, dbname: str | None = None, autocommit: bool = True) -> psycopg.Connection:
    """A new connection to the test database (or `dbname` on the same server)."""
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=dbname or settings["NAME"],
        autocommit=autocommit,
    )
