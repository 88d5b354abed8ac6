"""Vector tile timings and sizes, in process (trees.tiles.tile), on a full-size census.

Run on a database loaded as bench_api.py loads one (benchmarks/census_rows.sql, 683,788 trees):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nyc_trees_bench .venv/bin/python \\
        benchmarks/bench_tiles.py

Times each tile of: z10-12 over the whole city, and z14-16 in a 3x3 block around Midtown
Manhattan and around central Queens; each tile ROUNDS times after one warm-up, no response
cache (this is the SQL's cost, the miss a cache hit spares). Targets: p95 < 300 ms at z10-12,
< 50 ms at z14-16, and no tile over 500 KB.
"""

import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from trees import tiles  # noqa: E402
from trees.models import Tree  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "5"))
CITY = (-74.2557, 40.4961, -73.7004, 40.9155)  # west, south, east, north
PLACES = {"Manhattan": (40.758, -73.985), "Queens": (40.72, -73.82)}


def tile_of(latitude: float, longitude: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((longitude + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(latitude))) / math.pi) / 2 * n)
    return x, y


def city_tiles(z: int) -> list[tuple[int, int, int]]:
    west, south, east, north = CITY
    x0, y0 = tile_of(north, west, z)
    x1, y1 = tile_of(south, east, z)
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def block(latitude: float, longitude: float, z: int) -> list[tuple[int, int, int]]:
    x, y = tile_of(latitude, longitude, z)
    return [(z, x + dx, y + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]


def measure(name: str, zxys: list[tuple[int, int, int]], **filters) -> None:
    trees = Tree.objects.filter(**filters)
    times, sizes = [], []
    for z, x, y in zxys:
        tiles.tile(z=z, x=x, y=y, trees=trees)  # warm-up
        body = b""
        for _ in range(ROUNDS):
            started = time.perf_counter()
            body = tiles.tile(z=z, x=x, y=y, trees=trees)
            times.append((time.perf_counter() - started) * 1000)
        sizes.append(len(body))
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
    print(
        f"{name:<28} tiles {len(zxys):>3}  median {statistics.median(times):7.1f} ms  "
        f"p95 {p95:7.1f} ms  max {max(times):7.1f} ms  "
        f"max size {max(sizes) / 1024:6.1f} KB  mean size {statistics.mean(sizes) / 1024:6.1f} KB",
        flush=True,
    )


def main() -> None:
    print(f"{Tree.objects.count():,} trees, {ROUNDS} rounds a tile")
    for z in (10, 11, 12):
        measure(f"z{z} city", city_tiles(z))
    for place, (latitude, longitude) in PLACES.items():
        for z in (14, 15, 16):
            measure(f"z{z} {place}", block(latitude, longitude, z))
    measure("z12 city, health=Poor", city_tiles(12), health="Poor")
    measure("z14 Queens, borough=Queens", block(*PLACES["Queens"], 14), borough="Queens")


if __name__ == "__main__":
    main()
