"""Fixtures for tests that run management commands as separate processes."""

import uuid

import psycopg
import pytest


@pytest.fixture
def scratch_database_url():
    from django.conf import settings

    db = settings.DATABASES["default"]
    name = f"nyc_trees_scratch_{uuid.uuid4().hex[:8]}"
    host = db["HOST"] or "127.0.0.1"
    yield name, f"postgres://{db['USER']}@{host}:{db['PORT'] or 5432}/{name}"
    with psycopg.connect(
        host=host,
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
