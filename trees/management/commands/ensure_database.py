"""Create the configured database when it does not exist yet, so set-up is one command."""

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from psycopg import sql


class Command(BaseCommand):
    help = "Create the database named by DATABASE_URL if it is missing (needs CREATEDB)."

    def handle(self, *args, **options) -> None:
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
