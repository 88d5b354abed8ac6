"""Create the configured database when it does not exist yet, so set-up is one command;
with --postgis-status, say whether its server can create the postgis extension
(scripts/bootstrap installs Debian's package when it cannot)."""

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from psycopg import sql


class Command(BaseCommand):
    help = "Create the database named by DATABASE_URL if it is missing (needs CREATEDB)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--postgis-status",
            action="store_true",
            help="Print 'available', or 'missing:<server major version>', and change nothing.",
        )

    def handle(self, *args, **options) -> None:
        if options["postgis_status"]:
            self.stdout.write(postgis_status())
            return
        params = connection.get_connection_params()
        name = params.pop("dbname")
        # Connect to the server's maintenance database, since ours may not exist yet.
        params["dbname"] = "postgres"
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        try:
            with psycopg.connect(**params, autocommit=True) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", [name]
                ).fetchone()
                if exists:
                    if options["verbosity"] >= 2:
                        self.stdout.write(f"Database {name!r} exists.")
                    return
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            host = params.get("host") or "local socket"
            raise CommandError(f"Cannot create database {name!r} on {host}: {exc}") from exc
        self.stdout.write(f"Created database {name!r}.")


def postgis_status() -> str:
    """'available' when the server offers the postgis extension, else 'missing:<major>'."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'postgis'), "
                "current_setting('server_version_num')::int / 10000"
            )
            available, major = cursor.fetchone()
    except DatabaseError as exc:
        raise CommandError(f"Cannot ask the database server about PostGIS: {exc}") from exc
    return "available" if available else f"missing:{major}"
