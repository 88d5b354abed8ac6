#!/usr/bin/env python3
"""Deep cursor pages of each `ordering=`: page 100 against page 1, uncached, at census size.

    .venv/bin/python benchmarks/bench_ordering.py               # every ordering, 300 requests
    .venv/bin/python benchmarks/bench_ordering.py --requests 100 -- -tree_dbh species

The issue's target: `ordering=-tree_dbh`, the 100th cursor page's p95 within 2x the first's.
It fills (or reuses) the API benchmark's database as benchmarks/bench_api.py does
(BENCH_DATABASE_URL to use another one), follows 99 `next` links of 50 trees to reach page
100, then times both pages with Django's test client through the whole middleware stack,
response cache included: every request carries its own no-op `radius` (without `near` it
changes nothing), so none is a cache hit. In process rather than through gunicorn: the
ratio is what matters, and it compares two queries of the same view.
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_api import DATABASE_URL, prepare_database  # noqa: E402

ORDERINGS = [
    "-tree_dbh", "tree_dbh", "created_at", "-created_at", "species", "-species", "tree_id",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("orderings", nargs="*", default=ORDERINGS)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per page")
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL", DATABASE_URL)
    prepare_database(database_url, reload=False)
    os.environ.update(
        ENV_FILE="/dev/null",
        DATABASE_URL=database_url,
        SECRET_KEY="bench-ordering-" + "x" * 50,
        DEBUG="false",
        LOG_LEVEL="ERROR",
        API_THROTTLE_RATE="1000000000/second",
        CACHE_KEY_PREFIX=f"bench-ordering-{random.randrange(10**9)}",
        ALLOWED_HOSTS="testserver",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    import django

    django.setup()
    from django.test import Client

    client = Client()

    def percentiles(url: str) -> tuple[float, float]:
        times = []
        for _ in range(args.requests):
            started = time.perf_counter()
            response = client.get(f"{url}&radius={random.uniform(1, 5000):.6f}")
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:300]
        times.sort()
        return statistics.median(times), times[int(0.95 * len(times)) - 1]

    print("| ordering | page 1 p50 ms | p95 ms | page 100 p50 ms | p95 ms | p95 x page 1 |")
    print("|---|--:|--:|--:|--:|--:|")
    for ordering in args.orderings:
        first = f"/api/v1/trees/?ordering={ordering}&page_size=50"
        body = client.get(first).json()
        for _ in range(98):
            body = client.get(body["next"]).json()
        deep = body["next"].removeprefix("http://testserver")
        p50, p95 = percentiles(first)
        deep50, deep95 = percentiles(deep)
        print(
            f"| `{ordering}` | {p50:.1f} | {p95:.1f} | {deep50:.1f} | {deep95:.1f} "
            f"| {deep95 / p95:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
