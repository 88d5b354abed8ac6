"""Mapbox Vector Tiles of trees, made by PostGIS (ST_AsMVT) from a filtered Tree queryset.

One layer, `trees`. From AGGREGATE_BELOW_ZOOM on, one point per tree; below it, one point per
grid cell (GRID x GRID cells a tile) at the mean position of the cell's trees, with their
counts: a z10 tile over Queens holds ~100,000 trees, far too many points to send (or draw).

The tile's SQL wraps the queryset's own SQL (`Tree.objects.filter(...)` as the API's filters
built it), so every filter of `trees/` selects the same trees here; the tile adds only the
box test on `location` (migration 0008_postgis), which the GiST index answers.
"""

import math
from typing import NamedTuple

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from trees.models import Tree
from trees.queries import LocationInBox

LAYER = "trees"
EXTENT = 4096  # tile coordinates per side, ST_AsMVT's default
BUFFER = 64  # tile coordinates drawn beyond each edge, so symbols on a border are not cut
MAX_ZOOM = 22
AGGREGATE_BELOW_ZOOM = 14
GRID = 128  # cells per side of an aggregated tile: 32 tile coordinates, ~8 px on screen

# Web Mercator (EPSG:3857): the sphere's half circumference, in metres.
HALF_WORLD = 20037508.342789244


class TileBounds(NamedTuple):
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


def is_valid_tile(z: int, x: int, y: int) -> bool:
    return 0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z


def tile_bounds(z: int, x: int, y: int, *, buffer: int = BUFFER) -> TileBounds:
    """The tile and `buffer` tile coordinates around it, in longitude/latitude: the box the
    GiST index is asked for."""
    size = 2 * HALF_WORLD / 2**z
    margin = size * buffer / EXTENT
    west = -HALF_WORLD + x * size - margin
    east = -HALF_WORLD + (x + 1) * size + margin
    north = HALF_WORLD - y * size + margin
    south = HALF_WORLD - (y + 1) * size - margin
    return TileBounds(_lon(west), _lat(south), _lon(east), _lat(north))


def _lon(metres: float) -> float:
    return metres / HALF_WORLD * 180


def _lat(metres: float) -> float:
    return math.degrees(2 * math.atan(math.exp(metres / HALF_WORLD * math.pi)) - math.pi / 2)


# Web Mercator from the latitude/longitude columns, as ST_Transform(location, 3857) computes
# it (to a millimetre), without PROJ's per-row overhead.
MERCATOR_X = f"longitude * {HALF_WORLD / 180!r}"
MERCATOR_Y = f"ln(tan(radians(45 + latitude / 2))) * {HALF_WORLD / math.pi!r}"

TILE_ENVELOPE = "ST_TileEnvelope(%s::int, %s::int, %s::int)"

POINTS = f"""
SELECT ST_AsMVT(feature, '{LAYER}', {EXTENT}, 'geom', 'id')
FROM (
    SELECT trees.tree_id AS id,
           trees.tree_id,
           coalesce(species.common_name, '') AS species,
           trees.health,
           trees.status,
           trees.dbh,
           ST_AsMVTGeom(ST_Point(trees.mx, trees.my, 3857), {TILE_ENVELOPE},
                        {EXTENT}, {BUFFER}, true) AS geom
    FROM ({{trees}}) AS trees
    LEFT JOIN trees_species AS species ON species.id = trees.species_id
) AS feature
"""  # noqa: S608 (constants of this module; {trees} is Django's SQL, values are parameters)

# Cells are counted on the tile's own grid, of the tile's trees only (west and south edges
# in, east and north out): every tree is in exactly one cell of one tile, so the counts of
# a zoom's tiles add up to the trees matching. A cell's mean position lies inside it.
CELLS = f"""
SELECT ST_AsMVT(feature, '{LAYER}', {EXTENT}, 'geom')
FROM (
    SELECT count(*) AS count,
           count(*) FILTER (WHERE health = 'Good') AS good,
           count(*) FILTER (WHERE health = 'Fair') AS fair,
           count(*) FILTER (WHERE health = 'Poor') AS poor,
           round(avg(dbh))::int AS dbh,
           ST_AsMVTGeom(ST_Point(avg(mx), avg(my), 3857), {TILE_ENVELOPE},
                        {EXTENT}, {BUFFER}, true) AS geom
    FROM ({{trees}}) AS trees
    WHERE mx >= %s::float8 AND mx < %s::float8 AND my >= %s::float8 AND my < %s::float8
    GROUP BY floor((mx - %s::float8) / %s::float8), floor((my - %s::float8) / %s::float8)
) AS feature
"""  # noqa: S608 (as POINTS)


def tile(*, z: int, x: int, y: int, trees: QuerySet[Tree]) -> bytes:
    """The tile z/x/y of `trees` as MVT bytes; empty bytes when no tree is in it.

    `trees` is any Tree queryset (the API's filters applied); the caller checks is_valid_tile.
    """
    aggregated = z < AGGREGATE_BELOW_ZOOM
    # Cells need the tile's trees only; single points those of the buffer too.
    box = tile_bounds(z, x, y, buffer=0 if aggregated else BUFFER)
    selected = (
        trees.order_by()
        .filter(LocationInBox(*box))
        .annotate(mx=_raw(MERCATOR_X), my=_raw(MERCATOR_Y), dbh=_raw("coalesce(tree_dbh, 0)"))
    )
    try:
        sql, params = _tile_sql(z, x, y, selected)
    except EmptyResultSet:  # a filter that Django knows matches nothing (.none())
        return b""
    with transaction.atomic(), connection.cursor() as cursor:
        # JIT compiles the plan for seconds' worth of rows; a tile is milliseconds of them.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        (body,) = cursor.fetchone()
    return bytes(body or b"")


def _tile_sql(z: int, x: int, y: int, selected: QuerySet[Tree]) -> tuple[str, list]:
    if z < AGGREGATE_BELOW_ZOOM:
        inner, inner_params = selected.values("health", "dbh", "mx", "my").query.sql_with_params()
        size = 2 * HALF_WORLD / 2**z
        west, north = -HALF_WORLD + x * size, HALF_WORLD - y * size
        south, east, cell = north - size, west + size, size / GRID
        sql = CELLS.replace("{trees}", inner)
        params = [z, x, y, *inner_params, west, east, south, north, west, cell, south, cell]
    else:
        columns = ("tree_id", "species_id", "health", "status", "dbh", "mx", "my")
        inner, inner_params = selected.values(*columns).query.sql_with_params()
        sql = POINTS.replace("{trees}", inner)
        params = [z, x, y, *inner_params]
    return sql, params


def _raw(sql: str) -> RawSQL:
    return RawSQL(sql, ())  # noqa: S611 (constants of this module)
