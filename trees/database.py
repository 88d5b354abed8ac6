"""Limits on what one web request may ask of Postgres.

A slow or blocked query must not hold a gunicorn worker until gunicorn kills it (an HTML
500 to the client, a lost worker): past DATABASE_STATEMENT_TIMEOUT Postgres cancels the
statement, and the request fails with an OperationalError (the API's error handler answers
it as a JSON 503). Only the web process sets it (config/wsgi.py): the sync, migrations and
other commands may take as long as they need.
"""

from django.db.backends.signals import connection_created

_RECEIVER = "trees.database.statement_timeout"


def limit_statements(seconds: float) -> None:
    """Set `statement_timeout` on every database connection this process opens (0: none)."""
    milliseconds = round(seconds * 1000)

    def set_timeout(sender, connection, **kwargs) -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, false)", [f"{milliseconds}ms"]
                )

    connection_created.disconnect(dispatch_uid=_RECEIVER)
    if milliseconds > 0:
        connection_created.connect(set_timeout, weak=False, dispatch_uid=_RECEIVER)


def unlimit_statements() -> None:
    """Undo limit_statements (for tests)."""
    connection_created.disconnect(dispatch_uid=_RECEIVER)
