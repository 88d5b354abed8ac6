import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


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


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ensure_database_creates_a_missing_database_once(scratch_database_url):
    name, url = scratch_database_url
    first = manage("ensure_database", DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert f"Created database '{name}'" in first.stdout
    second = manage("ensure_database", DATABASE_URL=url)
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""


def test_ensure_database_reports_an_unreachable_server():
    result = manage(
        "ensure_database", DATABASE_URL="postgres://postgres@127.0.0.1:1/nyc_trees_unreachable"
    )
    assert result.returncode == 1
    assert "Cannot create database 'nyc_trees_unreachable' on 127.0.0.1" in result.stderr


def test_superuser_is_created_without_prompts(scratch_database_url):
    _, url = scratch_database_url
    assert manage("ensure_database", DATABASE_URL=url).returncode == 0
    assert manage("migrate", "--noinput", DATABASE_URL=url).returncode == 0
    result = manage(
        "createsuperuser",
        "--noinput",
        DATABASE_URL=url,
        DJANGO_SUPERUSER_USERNAME="ops",
        DJANGO_SUPERUSER_EMAIL="ops@example.org",
        DJANGO_SUPERUSER_PASSWORD="a-long-random-password-42",
    )
    assert result.returncode == 0, result.stderr
    check = manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "u = User.objects.get(username='ops'); "
        "print(u.is_superuser, u.check_password('a-long-random-password-42'))",
        DATABASE_URL=url,
    )
    assert check.stdout.strip().splitlines()[-1] == "True True"
