#!/usr/bin/env python3
"""Where a cached hit's time goes: the hit and the plain view in-process, and the two round
trips a hit cannot do without, each timed alone.

    .venv/bin/python benchmarks/bench_hit_parts.py [--requests 5000]

bench_api.py compares a cached `trees/` page with a plain Django view through gunicorn and
wrk. This explains that ratio: both run here through Django's WSGI handler and the whole
middleware stack (no server, no load generator), then the Redis command a hit sends (the
throttle's count and the stored body: trees.api.throttling.count_and_read) and the data
version's prepared statement on Postgres (trees.cache) run on their own, one at a time.
It uses the API benchmark's database (run bench_api.py once first) and its own cache key
prefix, and deletes what it stored.
"""

import argparse
import io
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/nyc_trees_bench_api"
PREFIX = "bench_hit_parts"


def _environ(path: str) -> dict:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT_ENCODING": "gzip",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
    }


def _microseconds(call: Callable[[], object], requests: int) -> float:
    for _ in range(min(200, requests)):  # warm: connections, caches, the stored response
        call()
    started = time.perf_counter()
    for _ in range(requests):
        call()
    return (time.perf_counter() - started) / requests * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="per measurement")
    parser.add_argument("--database-url", default=DATABASE_URL)
    args = parser.parse_args()

    os.environ.update(
        DATABASE_URL=args.database_url,
        CACHE_KEY_PREFIX=PREFIX,
        API_THROTTLE_RATE="1000000000/minute",
        ROOT_URLCONF="benchmarks.urls",
        LOG_LEVEL="ERROR",
        ENV_FILE="/dev/null",
        SECRET_KEY=secrets.token_urlsafe(32),
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection
    from django.test import RequestFactory
    from django_redis import get_redis_connection

    from trees import cache as data_cache
    from trees.api import throttling

    handler = WSGIHandler()

    def get(path: str) -> Callable[[], None]:
        def call() -> None:
            statuses = []

            def start_response(status, headers, exc_info=None):
                statuses.append(status)

            body = handler(_environ(path), start_response)
            b"".join(body)
            body.close()
            if not statuses[0].startswith("200"):
                raise SystemExit(f"{path}: {statuses[0]} (is the API benchmark's database there?)")

        return call

    request = RequestFactory().get("/api/v1/trees/", REMOTE_ADDR="127.0.0.1")
    redis_client = get_redis_connection("default")
    stored_key = cache.make_key("bench_hit_parts:body")
    redis_client.set(stored_key, b"x" * 2_600)  # a gzipped page's size
    data_cache.data_version()  # prepares the statement on this connection
    pgconn = connection.connection.pgconn

    rows = [
        ("plain Django JsonResponse (1 KB)", get("/bench/plain/")),
        ("trees/ page of 50, cached, gzip", get("/api/v1/trees/")),
        ("Redis: PING through redis-py", redis_client.ping),
        (
            "Redis: the hit's command (count + read) through redis-py",
            lambda: throttling.count_and_read(request, stored_key),
        ),
        (
            "Postgres: the data version's prepared statement (libpq)",
            lambda: pgconn.exec_prepared(data_cache._STATEMENT, []),
        ),
    ]
    try:
        print(f"{args.requests} requests each, one at a time, in this process\n")
        print("| measure | µs each |\n|---|--:|")
        for label, call in rows:
            print(f"| {label} | {_microseconds(call, args.requests):,.0f} |")
    finally:
        # Only this script's keys (its own prefix), without KEYS: the Redis may be shared.
        for key in redis_client.scan_iter(match=f"{PREFIX}:*", count=1000):
            redis_client.delete(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
