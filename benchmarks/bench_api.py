#!/usr/bin/env python3
"""API load benchmark: the issue's targets, measured in one run at full census size.

    make bench-api                          # or: .venv/bin/python benchmarks/bench_api.py
    .venv/bin/python benchmarks/bench_api.py --quick        # 2 s per measurement, a smoke run
    .venv/bin/python benchmarks/bench_api.py --duration 20 --only plain cached_list

What it does:
1. Creates its own database (nyc_trees_bench_api; never the development or test one),
   migrates it and fills it with 683,788 generated census-like trees in SQL
   (benchmarks/census_rows.sql: deterministic, ~10 s), then ANALYZEs. A later run reuses
   the rows if the generator has not changed (--reload forces a new load).
2. Starts gunicorn as in production (2 sync workers, DEBUG off, a fresh SECRET_KEY, its own
   cache key prefix, throttling raised out of the way) on 127.0.0.1, with the benchmark's
   URLconf, which adds a plain Django view returning a fixed ~1 KB JsonResponse: the ceiling.
3. Drives each scenario with wrk: requests per second with 16 connections for --duration
   seconds, in short rounds alternating with rounds of the plain view (other work on the
   machine comes and goes within seconds: each ratio compares rounds that saw the same
   conditions), then latency percentiles with 4 connections for --duration seconds.
   "Uncached" scenarios give every request its own URL (a random cursor, point or a no-op
   filter value), so none is a cache hit.
4. Prints a table with the target next to each figure, writes it as JSON under
   benchmarks/results/, and on exit, Ctrl-C included, stops gunicorn and deletes the
   responses it cached (its own key prefix only: the Redis may be shared).

The load generator and the server share this machine's cores: compare ratios within a run.
"""

import argparse
import base64
import hashlib
import itertools
import json
import math
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
ROWS_SQL = ROOT / "benchmarks" / "census_rows.sql"
WRK_REPORT = ROOT / "benchmarks" / "wrk_report.lua"
WRK_PATHS = ROOT / "benchmarks" / "wrk_paths.lua"
WRK_THREADS = 2
ROUNDS = 5  # throughput rounds per scenario, alternating with the plain view
RESULTS = ROOT / "benchmarks" / "results"

ROWS = 683_788
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/nyc_trees_bench_api"
PAGE_SIZE = 50
DEEP_PAGE = 1000
STAFF_USER, STAFF_PASSWORD = "bench-staff", secrets.token_urlsafe(16)

# Inside each borough's box in census_rows.sql: the centres of the `near` queries.
NYC_BOXES = [
    (40.55, 40.79, -73.96, -73.71),
    (40.58, 40.73, -74.03, -73.87),
    (40.51, 40.64, -74.24, -74.06),
    (40.81, 40.90, -73.92, -73.78),
    (40.70, 40.87, -74.01, -73.92),
]
BOROUGHS = ["Manhattan", "Bronx", "Brooklyn", "Queens", "Staten Island"]

# trees.queries.GROUP_COLUMNS (this script runs without Django): what groups/ groups by.
GROUP_COLUMNS = [
    "borough", "nta", "zipcode", "species", "health", "status", "steward", "guards",
    "curb_loc", "sidewalk", "user_type", "council_district", "community_board",
]  # fmt: skip

# Every tree filter (docs/spec of issue 11) with realistic values for census_rows.sql's trees,
# common and rare (and a few that match nothing: ZIP 83, tract 376.02), as query values.
# A callable draws a value. The filters_two scenario pairs every two of them.
YES_NO = ["Yes", "No"]
PROBLEM_FLAGS = [
    "root_stone", "root_grate", "root_other", "trunk_wire", "trnk_light", "trnk_other",
    "brch_light", "brch_shoe", "brch_other",
]  # fmt: skip


def _box(rng: random.Random) -> str:
    """A bbox of a few blocks (0.005 degrees) inside a borough."""
    lat_min, lat_max, lon_min, lon_max = rng.choice(NYC_BOXES)
    lat, lon = rng.uniform(lat_min, lat_max - 0.005), rng.uniform(lon_min, lon_max - 0.005)
    return f"{lon:.5f},{lat:.5f},{lon + 0.005:.5f},{lat + 0.005:.5f}"


def _point(rng: random.Random) -> str:
    lat_min, lat_max, lon_min, lon_max = rng.choice(NYC_BOXES)
    return f"{rng.uniform(lat_min, lat_max):.6f},{rng.uniform(lon_min, lon_max):.6f}"


def _wide_box(rng: random.Random) -> str:
    """A bbox of about 0.02 degrees (issue 12's measure) inside a borough."""
    lat_min, lat_max, lon_min, lon_max = rng.choice(NYC_BOXES)
    lat, lon = rng.uniform(lat_min, lat_max - 0.02), rng.uniform(lon_min, lon_max - 0.02)
    return f"{lon:.6f},{lat:.6f},{lon + 0.02:.6f},{lat + 0.02:.6f}"


def tile_of(latitude: float, longitude: float, z: int) -> tuple[int, int]:
    """The XYZ (Web Mercator) tile holding the point at zoom z."""
    n = 2**z
    x = int((longitude + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(latitude))) / math.pi) / 2 * n)
    return x, y


# The tiles the map asks for: z14-16 around Midtown Manhattan and central Queens (a 3x3 block
# of tiles each), and z10-12 over the whole city (aggregated cells).
TILE_PLACES = [(40.758, -73.985), (40.72, -73.82)]
CITY_BOX = (-74.2557, 40.4961, -73.7004, 40.9155)  # west, south, east, north


def street_tiles() -> list[tuple[int, int, int]]:
    tiles = set()
    for latitude, longitude in TILE_PLACES:
        for z in (14, 15, 16):
            x, y = tile_of(latitude, longitude, z)
            tiles |= {(z, x + dx, y + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)}
    return sorted(tiles)


def city_tiles() -> list[tuple[int, int, int]]:
    west, south, east, north = CITY_BOX
    tiles = []
    for z in (10, 11, 12):
        x0, y0 = tile_of(north, west, z)
        x1, y1 = tile_of(south, east, z)
        tiles += [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    return tiles


FILTER_VALUES: dict[str, list[str] | Callable[[random.Random], str]] = {
    "borough": BOROUGHS,
    "zipcode": ["11375", "10314", "10451", "11201", "10025", "83"],
    "nta": ["QN17", "BK31", "MN12", "BX29", "SI22"],
    "species": ["London planetree", "red maple", "ginkgo", "tree species 120"],
    "species_id": ["1", "11", "120"],
    "health": ["Good", "Fair", "Poor"],
    "status": ["Alive", "Dead", "Stump"],
    "steward": ["None", "1or2", "3or4", "4orMore"],
    "curb_loc": ["OnCurb", "OffsetFromCurb"],
    "sidewalk": ["NoDamage", "Damage"],
    "problem": ["Stones", "Sneakers", "BranchLights"],
    "dbh_min": ["30", "60"],
    "dbh_max": ["10", "40"],  # with dbh_min: bands (30-40) and empty ranges (60-40)
    "bbox": _box,
    "near": _point,  # radius: the default 250 m
    # Added by issue 11 (spec11.md's names); "not available" until the branch has them.
    "address": ["BROADWAY", "PARKWAY", "HYLAN BOULEVARD", "STREET"],
    "guards": ["None", "Helpful", "Harmful", "Unsure"],
    "user_type": ["Volunteer", "NYC Parks Staff", "TreesCount Staff"],
    "created_min": ["2015-06-01", "2016-10-01"],
    "created_max": ["2015-06-15", "2016-06-30"],
    "community_board": ["101", "406", "503", "212"],
    "council_district": ["4", "33", "51"],
    "census_tract": ["739", "12345", "376.02"],
    **dict.fromkeys(PROBLEM_FLAGS, YES_NO),
    "species_search": ["maple", "oak", "linden", "zelkova"],
}
PROBE_SAMPLES = 3  # requests per combination (or group column) in the per-key probe
ORDERING_PAGE = 100  # the ordering_dbh_page scenario's page


# --- The database ------------------------------------------------------------------------------


def django_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment for manage.py and gunicorn: only what we set, never the dev .env."""
    env = {key: value for key, value in os.environ.items() if not key.endswith("_FILE")}
    env.update(
        ENV_FILE="/dev/null",
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def manage(database_url: str, *args: str, **env: str) -> None:
    subprocess.run(
        [str(PYTHON), "manage.py", *args],
        cwd=ROOT,
        env=django_env(database_url, **env),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def prepare_database(database_url: str, *, reload: bool) -> None:
    name = database_url.rsplit("/", 1)[-1]
    if "bench" not in name:
        sys.exit(f"Refusing to load benchmark rows into {name!r}: its name must contain 'bench'")
    manage(database_url, "ensure_database")
    manage(database_url, "migrate", "--noinput")
    generator = ROWS_SQL.read_text().replace("%(rows)s", str(ROWS))
    stamp = f"bench-api rows={ROWS} sql={hashlib.sha256(generator.encode()).hexdigest()[:16]}"
    with psycopg.connect(database_url, autocommit=True) as db:
        current = db.execute("SELECT obj_description('trees_tree'::regclass)").fetchone()[0]
        if current == stamp and not reload:
            print(f"Reusing the {ROWS:,} generated trees in {name}.")
            return
        print(f"Loading {ROWS:,} generated trees into {name} ...", flush=True)
        started = time.monotonic()
        indexes = db.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'trees_tree' "
            "AND indexname <> 'trees_tree_pkey'"
        ).fetchall()
        db.execute("TRUNCATE trees_tree, trees_species CASCADE")
        # Building each index once after the load is several times faster than keeping all
        # of them up to date row by row.
        for index_name, _ in indexes:
            db.execute(f'DROP INDEX "{index_name}"')
        db.execute(generator)
        for _, definition in indexes:
            db.execute(definition)
        db.execute("VACUUM ANALYZE trees_tree")
        db.execute("VACUUM ANALYZE trees_species")
        db.execute("VACUUM ANALYZE trees_treecount")
        db.execute("VACUUM ANALYZE trees_treegroupcount")
        db.execute(f"COMMENT ON TABLE trees_tree IS '{stamp}'")
        print(f"Loaded and indexed in {time.monotonic() - started:.0f} s.")


def deep_page_position(database_url: str) -> int:
    """The last tree_id of page DEEP_PAGE - 1: the cursor of page DEEP_PAGE."""
    with psycopg.connect(database_url) as db:
        return db.execute(
            "SELECT tree_id FROM trees_tree ORDER BY tree_id OFFSET %s LIMIT 1",
            [(DEEP_PAGE - 1) * PAGE_SIZE - 1],
        ).fetchone()[0]


def cursor_for(position: int) -> str:
    return base64.b64encode(f"p={position}".encode()).decode()


# --- The server --------------------------------------------------------------------------------


class Server:
    """gunicorn as in production, started and always stopped (context manager)."""

    def __init__(self, database_url: str, port: int, static_root: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.database_url = database_url
        self.cache_prefix = f"bench-api-{uuid.uuid4().hex[:12]}"
        self.env = django_env(
            database_url,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            ROOT_URLCONF="benchmarks.urls",
            CACHE_KEY_PREFIX=self.cache_prefix,
            # Uncached scenarios store tens of thousands of responses: should the cleanup in
            # __exit__ never run, they still leave the shared Redis within the hour.
            CACHE_TTL="3600",
            API_THROTTLE_RATE="1000000000/second",
            API_TILE_THROTTLE_RATE="1000000000/second",
            STATIC_ROOT=str(static_root),
            GUNICORN_WORKERS="2",
            GUNICORN_THREADS="1",
            GUNICORN_ACCESS_LOG="false",
        )
        self.command = [
            str(GUNICORN),
            "config.wsgi",
            "--config",
            "config/gunicorn.py",
            "--bind",
            f"127.0.0.1:{port}",
        ]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Server":
        subprocess.run(
            [str(PYTHON), "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        # Its own process group, so stopping it takes the workers along.
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or a worker still importing Django
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not become ready within 30 s")

    def __exit__(self, *exc_info) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.delete_cached_responses()

    def delete_cached_responses(self) -> None:
        """Remove this run's keys (its own prefix only) from the Redis others share."""
        client = redis.Redis.from_url(self.env.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        batch = []
        for key in client.scan_iter(match=f"{self.cache_prefix}:*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)

    def wait_until_idle(self) -> None:
        """Wait for the requests a finished wrk run left queued to be served.

        wrk stops sending when its time is up, but gunicorn's sync workers still answer what
        sits in the listen backlog: after slow requests (stats/ uncached) that takes seconds,
        and the next run would measure the leftovers instead of its own requests.
        """
        deadline = time.monotonic() + 120
        quick = 0
        while quick < 4:  # more than one per worker in a row: the backlog is empty
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn still busy 120 s after the load stopped")
            start = time.monotonic()
            requests.get(f"{self.base}/healthz", timeout=120).raise_for_status()
            quick = quick + 1 if time.monotonic() - start < 0.05 else 0

    def staff_cookie(self) -> str:
        """Log in to the admin as a superuser, as a browser would; the session cookie."""
        create = (
            "from django.contrib.auth import get_user_model; U = get_user_model(); "
            f"u, _ = U.objects.get_or_create(username='{STAFF_USER}'); "
            f"u.is_staff = u.is_superuser = True; u.set_password('{STAFF_PASSWORD}'); u.save()"
        )
        subprocess.run(
            [str(PYTHON), "manage.py", "shell", "-c", create],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        session = requests.Session()
        login = f"{self.base}/admin/login/"
        session.get(login, timeout=10).raise_for_status()
        response = session.post(
            login,
            data={
                "username": STAFF_USER,
                "password": STAFF_PASSWORD,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
                "next": "/admin/",
            },
            headers={"Referer": login},
            timeout=10,
        )
        response.raise_for_status()
        if "sessionid" not in session.cookies:
            raise RuntimeError("Admin login failed: no session cookie")
        return f"sessionid={session.cookies['sessionid']}"


# --- Load --------------------------------------------------------------------------------------


@dataclass
class Measurement:
    requests_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx responses, timeouts and socket errors
    seconds: float


def wrk(
    url: str,
    *,
    connections: int,
    duration: int,
    paths: list[str],
    cookie: str | None,
    headers: dict[str, str] | None = None,
):
    """Run wrk once: every request to `url`, or each to the next of `paths` if given."""
    threads = min(WRK_THREADS, connections)  # wrk needs a connection per thread
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as path_file:
        command = [
            "wrk",
            f"--threads={threads}",
            f"--connections={connections}",
            f"--duration={duration}s",
            "--timeout=10s",
            f"--script={WRK_PATHS if paths else WRK_REPORT}",
        ]
        if cookie:
            command.append(f"--header=Cookie: {cookie}")
        for name, value in (headers or {}).items():
            command.append(f"--header={name}: {value}")
        command.append(url)
        if paths:
            path_file.write("\n".join(paths))
            path_file.flush()
            command += ["--", path_file.name, str(threads)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    report = json.loads(output[output.index('{"requests"') :])
    if paths and report["requests"] > len(paths):
        print(f"  warning: {report['requests']} requests for {len(paths)} distinct URLs")
    return Measurement(
        requests_per_second=report["requests"] / (report["duration_us"] / 1e6),
        p50_ms=report["p50_us"] / 1000,
        p95_ms=report["p95_us"] / 1000,
        p99_ms=report["p99_us"] / 1000,
        requests=report["requests"],
        errors=report["errors"],
        seconds=report["duration_us"] / 1e6,
    )


@dataclass
class Scenario:
    name: str
    label: str
    path: str | None = None  # one URL for every request (cached or fixed scenarios)
    make_paths: Callable[[random.Random, int], list[str]] | None = None  # one URL each
    budget: int = 2000  # distinct URLs needed per second of run, when make_paths is set
    staff: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    # Why the scenario cannot run on this server (None: it can); asked once it is up.
    unavailable: Callable[[], str | None] | None = None
    # (key, path) pairs, each path its own URL: timed one at a time after the load runs, to
    # say which keys (filter combinations, group columns) are the slowest.
    probe: Callable[[random.Random], list[tuple[str, str]]] | None = None


def unique_no_op_filters(rng: random.Random, count: int) -> list[str]:
    """Query fragments that match every generated tree (none is 1000 inches wide) yet make
    each URL distinct, so that each request misses the response cache."""
    variants = [
        f"dbh_max={limit}" if zero is None else f"dbh_min=0&dbh_max={limit}"
        for zero in (None, 0)
        for limit in range(1000, 32768)
    ]
    if count > len(variants):
        raise ValueError(f"Only {len(variants)} distinct no-op filters; shorten the duration")
    return rng.sample(variants, count)


# `radius` without `near` changes nothing (the filter documents it), yet each value is its own
# cache key: a no-op that leaves the SQL exactly that of the other parameters, for scenarios
# whose own filters may include the diameter (no dbh_max no-op there). Values 1.000 to
# 4999.999, each used once per run.
_RADII = (f"{1 + n / 1000:.3f}" for n in itertools.count())


def no_op_radius() -> str:
    radius = next(_RADII)
    if float(radius) >= 5000:
        raise ValueError("Out of distinct no-op radii; shorten the duration")
    return radius


@dataclass
class Context:
    """What the scenarios learn from the running server before they run."""

    base: str = ""
    deep_cursor: str = ""
    missing_filters: dict[str, str] = field(default_factory=dict)  # name -> its 400 message
    ordering_cursor: str | None = None  # the cursor of page ORDERING_PAGE of -tree_dbh
    ordering_error: str | None = None
    gzip_error: str | None = None

    def available_filters(self) -> list[str]:
        return [name for name in FILTER_VALUES if name not in self.missing_filters]


def filter_value(name: str, rng: random.Random) -> str:
    values = FILTER_VALUES[name]
    return values(rng) if callable(values) else rng.choice(values)


def two_filter_path(pair: tuple[str, str], rng: random.Random) -> str:
    """A trees/ page of 50 with the two filters, made distinct by a no-op radius (but with
    `near`, whose random point is distinct already and whose radius is its own)."""
    query = [(name, filter_value(name, rng)) for name in pair]
    if "near" not in pair:
        query.append(("radius", no_op_radius()))
    return f"/api/v1/trees/?{urlencode(query)}"


def scenarios(ctx: Context) -> list[Scenario]:
    def uncached_list(rng: random.Random, count: int) -> list[str]:
        return [
            f"/api/v1/trees/?borough={rng.choice(BOROUGHS).replace(' ', '+')}"
            f"&health={rng.choice(['Good', 'Fair', 'Poor'])}"
            f"&cursor={cursor_for(rng.randrange(1, ROWS))}"
            for _ in range(count)
        ]

    def near(rng: random.Random, count: int) -> list[str]:
        return [f"/api/v1/trees/?near={_point(rng)}&radius=500" for _ in range(count)]

    def wide_bbox(rng: random.Random, count: int) -> list[str]:
        return [f"/api/v1/trees/?bbox={_wide_box(rng)}" for _ in range(count)]

    def tiles(choices: list[tuple[int, int, int]]) -> Callable[[random.Random, int], list[str]]:
        # `radius` without `near` changes nothing: a distinct URL for the same tile, a miss.
        def paths(rng: random.Random, count: int) -> list[str]:
            return [
                "/tiles/trees/{}/{}/{}.mvt?radius={}".format(*rng.choice(choices), no_op_radius())
                for _ in range(count)
            ]

        return paths

    def first_page(rng: random.Random, count: int) -> list[str]:
        return [f"/api/v1/trees/?{no_op}" for no_op in unique_no_op_filters(rng, count)]

    def deep_page(rng: random.Random, count: int) -> list[str]:
        return [f"{path}&cursor={ctx.deep_cursor}" for path in first_page(rng, count)]

    def stats(rng: random.Random, count: int) -> list[str]:
        return [f"/api/v1/stats/?{no_op}" for no_op in unique_no_op_filters(rng, count)]

    def groups_nta(rng: random.Random, count: int) -> list[str]:
        return [f"/api/v1/groups/?by=nta&{no_op}" for no_op in unique_no_op_filters(rng, count)]

    def groups_any(rng: random.Random, count: int) -> list[str]:
        return [
            f"/api/v1/groups/?by={rng.choice(GROUP_COLUMNS)}&{no_op}"
            for no_op in unique_no_op_filters(rng, count)
        ]

    def groups_probe(rng: random.Random) -> list[tuple[str, str]]:
        no_ops = iter(unique_no_op_filters(rng, len(GROUP_COLUMNS) * PROBE_SAMPLES))
        return [
            (f"by={column}", f"/api/v1/groups/?by={column}&{next(no_ops)}")
            for column in GROUP_COLUMNS
            for _ in range(PROBE_SAMPLES)
        ]

    def pairs() -> list[tuple[str, str]]:
        return list(itertools.combinations(ctx.available_filters(), 2))

    def two_filters(rng: random.Random, count: int) -> list[str]:
        every = pairs()
        return [two_filter_path(rng.choice(every), rng) for _ in range(count)]

    def two_filters_probe(rng: random.Random) -> list[tuple[str, str]]:
        return [
            ("&".join(pair), two_filter_path(pair, rng))
            for pair in pairs()
            for _ in range(PROBE_SAMPLES)
        ]

    def ordering(cursor: bool) -> Callable[[random.Random, int], list[str]]:
        def paths(rng: random.Random, count: int) -> list[str]:
            tail = f"&cursor={ctx.ordering_cursor}" if cursor else ""
            return [
                f"/api/v1/trees/?ordering=-tree_dbh&radius={no_op_radius()}{tail}"
                for _ in range(count)
            ]

        return paths

    return [
        Scenario("plain", "plain Django JsonResponse (1 KB)", path="/bench/plain/"),
        Scenario("cached_list", "trees/ page of 50, cached", path="/api/v1/trees/"),
        Scenario(
            "cached_gzip",
            "trees/ page of 50, cached, Accept-Encoding: gzip",
            path="/api/v1/trees/",
            headers={"Accept-Encoding": "gzip"},
            unavailable=lambda: ctx.gzip_error,
        ),
        Scenario(
            "cached_filtered",
            "trees/ borough+health, cached",
            path="/api/v1/trees/?borough=Bronx&borough=Queens&health=Good",
        ),
        Scenario("uncached_list", "trees/ borough+health, uncached", make_paths=uncached_list),
        Scenario(
            "filters_two",
            "trees/ any two filters, page of 50, uncached",
            make_paths=two_filters,
            budget=1500,
            probe=two_filters_probe,
        ),
        Scenario("near", "trees/ near, 500 m, uncached", make_paths=near),
        Scenario("bbox", "trees/ bbox of 0.02 degrees, uncached", make_paths=wide_bbox),
        Scenario(
            "tiles_street",
            "tiles z14-16, Manhattan and Queens, uncached",
            make_paths=tiles(street_tiles()),
            budget=1500,
        ),
        Scenario(
            "tiles_city",
            "tiles z10-12, whole city (cells), uncached",
            make_paths=tiles(city_tiles()),
            budget=300,
        ),
        Scenario(
            "tiles_cached",
            "tile z15 Midtown, cached",
            path="/tiles/trees/{}/{}/{}.mvt".format(15, *tile_of(*TILE_PLACES[0], 15)),
        ),
        Scenario("first_page", "trees/ page 1, uncached", make_paths=first_page, budget=1500),
        Scenario(
            "deep_page", f"trees/ page {DEEP_PAGE}, uncached", make_paths=deep_page, budget=1500
        ),
        Scenario(
            "ordering_dbh_first",
            "trees/ ordering=-tree_dbh, page 1, uncached",
            make_paths=ordering(cursor=False),
            budget=1500,
            unavailable=lambda: ctx.ordering_error,
        ),
        Scenario(
            "ordering_dbh_page100",
            f"trees/ ordering=-tree_dbh, page {ORDERING_PAGE}, uncached",
            make_paths=ordering(cursor=True),
            budget=1500,
            unavailable=lambda: ctx.ordering_error,
        ),
        Scenario("stats_uncached", "stats/ all trees, uncached", make_paths=stats, budget=60),
        Scenario("stats_cached", "stats/ all trees, cached", path="/api/v1/stats/"),
        Scenario(
            "groups_nta_uncached", "groups/ by=nta, uncached", make_paths=groups_nta, budget=300
        ),
        Scenario(
            "groups_uncached",
            "groups/ by each column, uncached",
            make_paths=groups_any,
            budget=300,
            probe=groups_probe,
        ),
        Scenario("groups_nta_cached", "groups/ by=nta, cached", path="/api/v1/groups/?by=nta"),
        Scenario(
            "admin_filter",
            "admin changelist, 2 filters",
            path="/admin/trees/tree/?borough__exact=Bronx&health__exact=Poor",
            staff=True,
        ),
        Scenario(
            "admin_search",
            "admin changelist, address search",
            path="/admin/trees/tree/?q=BAY+RIDGE+PARKWAY",
            staff=True,
        ),
    ]


def learn(ctx: Context) -> None:
    """Ask the server which filters, orderings and encodings it has (this branch may lack
    some of issue 11's): what it answers 400 to is reported "not available", never timed."""
    rng = random.Random(7)
    for name in FILTER_VALUES:
        response = requests.get(
            f"{ctx.base}/api/v1/trees/",
            params={name: filter_value(name, rng), "page_size": 1},
            timeout=30,
        )
        if response.status_code == 400:
            errors = response.json().get("errors", {})
            ctx.missing_filters[name] = " ".join(errors.get(name, [])) or response.text[:200]
        else:
            response.raise_for_status()

    learn_ordering(ctx)
    learn_gzip(ctx)


def learn_ordering(ctx: Context) -> None:
    """Follow `next` from page 1 of ordering=-tree_dbh to page ORDERING_PAGE: its cursor."""
    url = f"{ctx.base}/api/v1/trees/?ordering=-tree_dbh"
    previous_dbh = None
    for page in range(1, ORDERING_PAGE + 1):
        response = requests.get(url, timeout=30)
        if response.status_code == 400:
            ctx.ordering_error = "ordering=-tree_dbh: " + json.dumps(response.json()["errors"])
            return
        response.raise_for_status()
        body = response.json()
        diameters = [tree["tree_dbh"] for tree in body["results"]]
        if diameters[0] is not None and previous_dbh is not None and diameters[0] > previous_dbh:
            raise RuntimeError(f"ordering=-tree_dbh: page {page} starts above the last one")
        previous_dbh = diameters[-1]
        if page < ORDERING_PAGE:
            url = body["next"]
    ctx.ordering_cursor = parse_qs(urlparse(url).query)["cursor"][0]


def learn_gzip(ctx: Context) -> None:
    headers = {"Accept-Encoding": "gzip"}
    for _ in range(2):  # the second from the cache
        response = requests.get(f"{ctx.base}/api/v1/trees/", headers=headers, timeout=30)
        response.raise_for_status()
    if response.headers.get("Content-Encoding") != "gzip":
        ctx.gzip_error = "trees/ answers Accept-Encoding: gzip uncompressed on this branch"


# --- Targets -----------------------------------------------------------------------------------


@dataclass
class Slowest:
    key: str  # a filter combination or group column
    median_ms: float
    max_ms: float
    statuses: list[int]


@dataclass
class Row:
    scenario: str
    label: str
    # None when the scenario is not available on this server (`target` says why).
    throughput: Measurement | None  # 16 connections, in rounds alternating with the plain view
    latency: Measurement | None  # 4 connections
    plain_throughput: Measurement | None  # the plain view's rounds, interleaved with this one's
    target: str = ""
    met: bool | None = None
    ratio_to_plain: float = field(default=0.0)
    unavailable: str | None = None
    probe_p95_ms: float | None = None  # the probe's requests, one at a time
    slowest: list[Slowest] = field(default_factory=list)


ISSUE_11 = "issue 11: "
ISSUE_12 = "issue 12: "


def judge(rows: dict[str, Row]) -> None:
    measured = {name: row for name, row in rows.items() if row.unavailable is None}
    for row in measured.values():
        row.ratio_to_plain = (
            row.throughput.requests_per_second / row.plain_throughput.requests_per_second
        )

    def target(name: str, text: str, met: Callable[[Row], bool]) -> None:
        if name in rows:
            rows[name].target = text
            if name in measured:
                rows[name].met = met(rows[name])

    target("cached_list", ">= 0.7x plain req/s", lambda r: r.ratio_to_plain >= 0.7)
    target("cached_gzip", f"{ISSUE_11}>= 0.7x plain req/s", lambda r: r.ratio_to_plain >= 0.7)
    target(
        "uncached_list",
        "p95 <= 50 ms, >= 0.3x plain",
        lambda r: r.latency.p95_ms <= 50 and r.ratio_to_plain >= 0.3,
    )
    target("filters_two", f"{ISSUE_11}p95 <= 50 ms", lambda r: r.latency.p95_ms <= 50)
    target("near", f"{ISSUE_12}p95 <= 10 ms", lambda r: r.latency.p95_ms <= 10)
    target("bbox", f"{ISSUE_12}p95 <= 20 ms", lambda r: r.latency.p95_ms <= 20)
    target("tiles_street", f"{ISSUE_12}p95 <= 50 ms", lambda r: r.latency.p95_ms <= 50)
    target("tiles_city", f"{ISSUE_12}p95 <= 300 ms", lambda r: r.latency.p95_ms <= 300)
    target("tiles_cached", f"{ISSUE_12}>= 0.7x plain req/s", lambda r: r.ratio_to_plain >= 0.7)
    if "first_page" in measured:
        first = rows["first_page"].latency.p95_ms
        target("deep_page", "p95 <= 2x page 1's", lambda r: r.latency.p95_ms <= 2 * first)
    if "ordering_dbh_first" in measured:
        first = rows["ordering_dbh_first"].latency.p95_ms
        target(
            "ordering_dbh_page100",
            f"{ISSUE_11}p95 <= 2x page 1's",
            lambda r: r.latency.p95_ms <= 2 * first,
        )
    else:
        target("ordering_dbh_page100", f"{ISSUE_11}p95 <= 2x page 1's", lambda r: False)
    target("stats_uncached", "p95 <= 500 ms", lambda r: r.latency.p95_ms <= 500)
    target("stats_cached", "p95 <= 5 ms", lambda r: r.latency.p95_ms <= 5)
    target("groups_nta_uncached", f"{ISSUE_11}p95 <= 300 ms", lambda r: r.latency.p95_ms <= 300)
    target("groups_uncached", f"{ISSUE_11}p95 <= 300 ms", lambda r: r.latency.p95_ms <= 300)
    target("groups_nta_cached", f"{ISSUE_11}p95 <= 5 ms", lambda r: r.latency.p95_ms <= 5)
    target("admin_filter", "p95 <= 300 ms", lambda r: r.latency.p95_ms <= 300)
    target("admin_search", "p95 <= 300 ms", lambda r: r.latency.p95_ms <= 300)
    for row in measured.values():
        if row.throughput.errors or row.latency.errors:
            row.met = False
            row.target += " (errors!)"
    for row in rows.values():
        if row.unavailable is not None:
            missing = f"not available ({row.unavailable})"
            row.target = f"{row.target}: {missing}" if row.target else missing


def print_table(rows: dict[str, Row], duration: int, ctx: Context) -> None:
    print(
        f"\nreq/s: 16 connections, {duration} s in rounds alternating with the plain view "
        f"(its req/s in those rounds next to it; 'x plain' compares the two); latency: 4 "
        f"connections, {duration} s. wrk and gunicorn (2 sync workers) share this machine.\n"
    )
    print("| measure | req/s | plain req/s | x plain | p50 ms | p95 ms | p99 ms | target | met |")
    print("|---|--:|--:|--:|--:|--:|--:|---|---|")
    for row in rows.values():
        met = {True: "yes", False: "**NO**", None: ""}[row.met]
        if row.unavailable is not None:
            print(f"| {row.label} | | | | | | | {row.target} | n/a |")
            continue
        print(
            f"| {row.label} | {row.throughput.requests_per_second:,.0f} | "
            f"{row.plain_throughput.requests_per_second:,.0f} | {row.ratio_to_plain:.2f} | "
            f"{row.latency.p50_ms:.1f} | {row.latency.p95_ms:.1f} | {row.latency.p99_ms:.1f} | "
            f"{row.target} | {met} |"
        )
    if ctx.missing_filters:
        print(
            "\nFilters not available on this server (a 400), left out of filters_two: "
            + ", ".join(ctx.missing_filters)
        )
    for row in rows.values():
        if row.slowest:
            print(
                f"\n{row.label}: the slowest of the probe ({PROBE_SAMPLES} distinct URLs each, "
                f"one request at a time; p95 of all {row.probe_p95_ms:.1f} ms):\n"
            )
            print("| key | median ms | max ms |")
            print("|---|--:|--:|")
            for slow in row.slowest:
                print(f"| {slow.key} | {slow.median_ms:.1f} | {slow.max_ms:.1f} |")


def run_probe(server: "Server", scenario: Scenario, rng: random.Random, row: Row) -> None:
    """Time each key's URLs one at a time: which combinations or columns are the slowest."""
    timings: dict[str, list[float]] = {}
    statuses: dict[str, list[int]] = {}
    pairs = scenario.probe(rng)
    rng.shuffle(pairs)
    with requests.Session() as session:
        for key, path in pairs:
            started = time.perf_counter()
            response = session.get(server.base + path, timeout=60)
            timings.setdefault(key, []).append((time.perf_counter() - started) * 1000)
            statuses.setdefault(key, []).append(response.status_code)
    every = sorted(ms for samples in timings.values() for ms in samples)
    row.probe_p95_ms = every[min(len(every) - 1, int(0.95 * len(every)))]
    ranked = sorted(
        (
            Slowest(key, sorted(ms)[len(ms) // 2], max(ms), statuses[key])
            for key, ms in timings.items()
        ),
        key=lambda slow: -slow.median_ms,
    )
    row.slowest = ranked[:10]
    failed = [key for key, codes in statuses.items() if any(code != 200 for code in codes)]
    if failed:
        row.met = False
        row.target += f" (non-200 in the probe: {', '.join(failed[:5])})"


# --- Main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--quick", action="store_true", help="2 s per measurement (smoke run)")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO", help="run only these")
    parser.add_argument("--reload", action="store_true", help="regenerate the rows")
    parser.add_argument("--port", type=int, default=8731)
    parser.add_argument("--database-url", default=DATABASE_URL)
    options = parser.parse_args()
    duration = 2 if options.quick else options.duration

    # Ctrl-C, SIGTERM and SIGHUP (a closed terminal) all unwind through the `with` below,
    # which stops gunicorn: it runs in its own session, so no signal would reach it.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, lambda received, _: sys.exit(128 + received))

    prepare_database(options.database_url, reload=options.reload)
    ctx = Context(deep_cursor=cursor_for(deep_page_position(options.database_url)))
    every = scenarios(ctx)
    unknown = set(options.only or ()) - {s.name for s in every}
    if unknown:
        sys.exit(f"Unknown scenario(s): {', '.join(sorted(unknown))}")
    wanted = set(options.only or (s.name for s in every))
    if "ordering_dbh_page100" in wanted:
        wanted.add("ordering_dbh_first")  # its target compares it with the first page
    chosen = [s for s in every if s.name in wanted]
    rng = random.Random(42)
    rows: dict[str, Row] = {}
    with (
        tempfile.TemporaryDirectory() as static_root,
        Server(options.database_url, options.port, Path(static_root)) as server,
    ):
        ctx.base = server.base
        cookie = server.staff_cookie() if any(s.staff for s in chosen) else None
        check_deep_page(server.base, ctx.deep_cursor)
        learn(ctx)
        plain = next(s for s in every if s.name == "plain")
        warm_up(server.base + plain.path, None, {})
        for scenario in chosen:
            reason = scenario.unavailable() if scenario.unavailable else None
            if reason is not None:
                print(f"{scenario.label}: not available ({reason})", flush=True)
                rows[scenario.name] = Row(
                    scenario.name, scenario.label, None, None, None, unavailable=reason
                )
                continue
            print(f"{scenario.label} ...", flush=True)
            rows[scenario.name] = measure(server, scenario, plain, duration, rng, cookie)
        judge(rows)
        for scenario in chosen:
            if scenario.probe and rows[scenario.name].unavailable is None:
                print(f"{scenario.label}: probing each key ...", flush=True)
                run_probe(server, scenario, rng, rows[scenario.name])
    print_table(rows, duration, ctx)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = RESULTS / f"bench_api-{stamp}.json"
    report.write_text(
        json.dumps(
            {
                "duration_s": duration,
                "missing_filters": ctx.missing_filters,
                "rows": [asdict(r) for r in rows.values()],
            },
            indent=1,
        )
    )
    print(f"\nSaved {report.relative_to(ROOT)}")
    return 0 if all(row.met is not False for row in rows.values()) else 1


def measure(
    server: Server,
    scenario: Scenario,
    plain: Scenario,
    duration: int,
    rng: random.Random,
    cookie: str | None,
) -> Row:
    """Throughput in rounds alternating with the plain view, then latency.

    Other work on the machine comes and goes within seconds; alternating short rounds lets
    both sides of each ratio see the same conditions.
    """
    staff_cookie = cookie if scenario.staff else None
    url = server.base + (scenario.path or "/")
    if scenario.path:
        warm_up(url, staff_cookie, scenario.headers)

    rounds = min(ROUNDS, duration)
    seconds = duration // rounds
    # Drawn once and handed out in disjoint slices: no URL is requested in two runs.
    unused = []
    if scenario.make_paths:
        unused = scenario.make_paths(rng, scenario.budget * (rounds * seconds + duration))

    def paths(run_seconds: int) -> list[str]:
        share = unused[: scenario.budget * run_seconds]
        del unused[: len(share)]
        return share

    def load(target: str, **options) -> Measurement:
        measurement = wrk(target, **options)
        server.wait_until_idle()
        return measurement

    mine, plains = [], []
    for _ in range(rounds):
        if scenario.name != plain.name:
            plains.append(
                load(
                    server.base + plain.path,
                    connections=16,
                    duration=seconds,
                    paths=[],
                    cookie=None,
                )
            )
        mine.append(
            load(
                url,
                connections=16,
                duration=seconds,
                paths=paths(seconds),
                cookie=staff_cookie,
                headers=scenario.headers,
            )
        )
    latency = load(
        url,
        connections=4,
        duration=duration,
        paths=paths(duration),
        cookie=staff_cookie,
        headers=scenario.headers,
    )
    throughput = combine(mine)
    return Row(
        scenario.name,
        scenario.label,
        throughput,
        latency,
        combine(plains) if plains else throughput,
    )


def combine(runs: list[Measurement]) -> Measurement:
    """Several throughput rounds as one: all their requests over all their time.

    (Percentiles are the worst round's; the table takes latency from the 4-connection run.)
    """
    seconds = sum(run.seconds for run in runs)
    requests = sum(run.requests for run in runs)
    return Measurement(
        requests_per_second=requests / seconds,
        p50_ms=max(run.p50_ms for run in runs),
        p95_ms=max(run.p95_ms for run in runs),
        p99_ms=max(run.p99_ms for run in runs),
        requests=requests,
        errors=sum(run.errors for run in runs),
        seconds=seconds,
    )


def warm_up(url: str, cookie: str | None, headers: dict[str, str]) -> None:
    headers = {**headers, **({"Cookie": cookie} if cookie else {})}
    for _ in range(3):
        requests.get(url, headers=headers, timeout=30).raise_for_status()


def check_deep_page(base: str, deep_cursor: str) -> None:
    """The computed cursor really lands on page DEEP_PAGE: rows (DEEP_PAGE-1)*50+1 onwards."""
    body = requests.get(f"{base}/api/v1/trees/?cursor={deep_cursor}", timeout=30).json()
    first_id = body["results"][0]["tree_id"]
    offset = (DEEP_PAGE - 1) * PAGE_SIZE
    if first_id != offset + 4:  # census_rows.sql numbers trees from 4, without gaps
        raise RuntimeError(f"Page {DEEP_PAGE} starts at tree {first_id}, not {offset + 4}")


if __name__ == "__main__":
    sys.exit(main())
