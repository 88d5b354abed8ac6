"""Read-side queries shared by the admin and the API. No request objects here."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.expressions import Expression
from django.db.models.functions import (
    ASin,
    Cast,
    Coalesce,
    Cos,
    Power,
    Radians,
    Sin,
    Sqrt,
)

from trees.models import Borough, Health, Species, Status, Tree, TreeCount, TreeGroupCount


def search_trees(queryset: QuerySet[Tree], term: str) -> QuerySet[Tree]:
    """Trees whose id, ZIP code, address or species name matches `term`.

    Written by hand rather than with the admin's generic `search_fields` because an OR that
    joins the species table defeats every index: here each branch can use its own (primary
    key, ZIP code btree, address trigram, species id), so a search over 683,788 trees
    stays a few index scans instead of a sequential scan.
    """
    term = term.strip()
    if not term:
        return queryset
    matches = Q(address__icontains=term)
    if term.isdigit():
        if len(term) <= 18:  # fits a bigint
            matches |= Q(tree_id=int(term))
        if len(term) <= 5:
            matches |= Q(zipcode=term)
    species_ids = list(
        Species.objects.filter(
            Q(common_name__icontains=term) | Q(latin_name__icontains=term)
        ).values_list("id", flat=True)
    )
    if species_ids:
        matches |= Q(species_id__in=species_ids)
    return queryset.filter(matches)


def estimated_row_count(model: type[Tree]) -> int | None:
    """Postgres's own estimate of a table's rows: free, where `count(*)` scans the table.

    Returns None when the table has never been analysed, so callers fall back to counting.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [model._meta.db_table],
        )
        row = cursor.fetchone()
    if row is None or row[0] < 0:
        return None
    return row[0]


# --- The API's queries -------------------------------------------------------------------------

# Mean Earth radius (IUGG). A sphere is within 0.3% of the ellipsoid, far below what the
# census's own coordinate precision matters for at a few kilometres.
EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180

# The diameter histogram's bins, in inches: [0, 6), [6, 12), ... [42, 48), then 48 and over.
DBH_BIN_WIDTH = 6
DBH_BINS = 8


def trees() -> QuerySet[Tree]:
    """Every tree with its species, in key order."""
    return Tree.objects.select_related("species").order_by("tree_id")


# What a tree in a list shows, besides its species (trees.api.serializers.TreeSerializer).
TREE_SUMMARY_COLUMNS = (
    "tree_id",
    "status",
    "health",
    "species_id",
    "tree_dbh",
    "stump_diam",
    "curb_loc",
    "steward",
    "guards",
    "sidewalk",
    "problems",
    "address",
    "zipcode",
    "borough",
    "nta",
    "latitude",
    "longitude",
    "surveyed_on",
)


def tree_summaries(fields: Sequence[str] = ()) -> QuerySet:
    """Every tree as a dict of TREE_SUMMARY_COLUMNS and its species' names, in key order,
    and of the other Tree fields named in `fields` (for `fields=`; other names are ignored).

    Dicts rather than model instances: building a 45-field Tree and its Species for each row
    was the largest cost of an uncached page of 50 (~1.5 ms of it; benchmarks/bench_api.py).
    """
    stored = {field.name: field.attname for field in Tree._meta.concrete_fields}
    extra = [stored[name] for name in fields if name in stored]
    return Tree.objects.order_by("tree_id").values(
        *dict.fromkeys((*TREE_SUMMARY_COLUMNS, *extra)),
        species_latin_name=F("species__latin_name"),
        species_common_name=F("species__common_name"),
    )


class LocationInBox(Expression):
    """`location && box`: the tree's PostGIS point (migration 0008_postgis) in a lon/lat box.

    The point is not a model field, so this names the column itself, on the alias the query
    gives the tree table (`U0` in a subquery).
    """

    output_field = BooleanField()
    conditional = True

    def __init__(self, min_lon: float, min_lat: float, max_lon: float, max_lat: float) -> None:
        super().__init__()
        self.box = (min_lon, min_lat, max_lon, max_lat)

    def as_sql(self, compiler, connection):
        table = compiler.quote_name(compiler.query.base_table)
        return f"{table}.location && ST_MakeEnvelope(%s, %s, %s, %s, 4326)", list(self.box)


def in_bbox(
    queryset: QuerySet[Tree],
    *,
    min_lon: float,
    min_lat: float,
    max_lon: float,
    max_lat: float,
) -> QuerySet[Tree]:
    """Trees inside the box, corners included.

    The GiST index on the PostGIS point finds them (`&&`); `&&` compares float4 bounding boxes
    rounded outwards, so it may also pass a tree within a metre outside, and the exact
    comparisons on latitude/longitude then decide: the result is that of the coordinates.
    """
    return queryset.filter(
        LocationInBox(min_lon, min_lat, max_lon, max_lat),
        latitude__gte=min_lat,
        latitude__lte=max_lat,
        longitude__gte=min_lon,
        longitude__lte=max_lon,
    )


def within_radius(
    queryset: QuerySet[Tree], *, latitude: float, longitude: float, radius_m: float
) -> QuerySet[Tree]:
    """Trees at most `radius_m` metres from the point, annotated with `distance` in metres.

    The box around the circle goes first: the GiST index (in_bbox) leaves only the few hundred
    trees near the point for the exact great-circle (haversine) test, however large the
    table. PostGIS's ST_DWithin on geography would measure on the spheroid, not this sphere,
    and disagree with `distance` by up to 0.3% near the edge (README "PostGIS").
    """
    lat_margin = radius_m / METRES_PER_DEGREE
    widest_lat = min(abs(latitude) + lat_margin, 90.0)
    # A degree of longitude shrinks with cos(latitude); use the box's widest latitude so the
    # box always contains the circle. Within a radius of the pole, every longitude qualifies.
    cos_lat = math.cos(math.radians(widest_lat))
    lon_margin = 180.0 if cos_lat < 1e-9 else min(lat_margin / cos_lat, 180.0)
    boxed = in_bbox(
        queryset,
        min_lon=longitude - lon_margin,
        min_lat=latitude - lat_margin,
        max_lon=longitude + lon_margin,
        max_lat=latitude + lat_margin,
    )
    return boxed.annotate(distance=_haversine_m(latitude, longitude)).filter(
        distance__lte=radius_m
    )


def _haversine_m(latitude: float, longitude: float) -> Func:
    """SQL for the great-circle distance in metres from the point to each tree."""
    lat = math.radians(latitude)
    half_dlat = (Radians(F("latitude")) - Value(lat)) / Value(2.0)
    half_dlon = (Radians(F("longitude")) - Value(math.radians(longitude))) / Value(2.0)
    a = Power(Sin(half_dlat), 2) + Value(math.cos(lat)) * Cos(Radians(F("latitude"))) * Power(
        Sin(half_dlon), 2
    )
    return ExpressionWrapper(Value(2 * EARTH_RADIUS_M) * ASin(Sqrt(a)), output_field=FloatField())


def of_species_named(queryset: QuerySet[Tree], *names: str) -> QuerySet[Tree]:
    """Trees whose species' common or latin name is one of `names`, ignoring case.

    The species ids are looked up first, in their own small query, so the tree query is a
    plain `species_id IN (...)` that walks the (species, tree_id) index in key order; as a
    join or subquery Postgres may instead scan trees in key order testing each one.
    """
    if not names:
        return queryset.none()
    matches = Q()
    for name in names:
        matches |= Q(common_name__iexact=name) | Q(latin_name__iexact=name)
    species_ids = list(Species.objects.filter(matches).order_by().values_list("id", flat=True))
    return queryset.filter(species_id__in=species_ids)


def of_species_matching(queryset: QuerySet[Tree], term: str) -> QuerySet[Tree]:
    """Trees whose species' common or latin name contains `term`, ignoring case (`maple`: red
    maple, Norway maple, ...). The ids first, as of_species_named does, for the same plan."""
    species_ids = list(
        Species.objects.filter(Q(common_name__icontains=term) | Q(latin_name__icontains=term))
        .order_by()
        .values_list("id", flat=True)
    )
    return queryset.filter(species_id__in=species_ids)


def species_with_tree_counts(trees: QuerySet[Tree] | None = None) -> QuerySet[Species]:
    """Every species, annotated with `tree_count`; or, given `trees` (say, a filtered set),
    the species of those trees, each with how many of them it has.

    One correlated count per species: each is a range of the (species, tree_id) index, read
    without visiting the table, where a join and GROUP BY would hash all 683,788 trees.
    """
    source = Tree.objects.all() if trees is None else trees
    counts = (
        source.filter(species=OuterRef("pk"))
        .order_by()
        .values("species")
        .annotate(count=Count("*"))
        .values("count")
    )
    species = Species.objects.annotate(
        tree_count=Coalesce(Subquery(counts, output_field=IntegerField()), 0)
    ).order_by("latin_name")
    if trees is not None:
        species = species.filter(tree_count__gt=0)
    return species


# --- Grouped aggregates ------------------------------------------------------------------------

# The columns `groups/` groups by: the census's categorical ones. `species` is the species id,
# reported with its names.
GROUP_COLUMNS = (
    "borough",
    "nta",
    "zipcode",
    "species",
    "health",
    "status",
    "steward",
    "guards",
    "curb_loc",
    "sidewalk",
    "user_type",
    "council_district",
    "community_board",
)

# The group columns TreeCount counts by: grouped by these alone, the counts answer.
COUNTED_GROUP_COLUMNS = frozenset({"borough", "status", "health", "species"})
# Grouped by one of these alone, TreeGroupCount answers (unfiltered, or by diameter).
GROUP_COUNTED_COLUMNS = frozenset(TreeGroupCount.COLUMNS)


@dataclass(frozen=True)
class Group:
    values: dict[str, object]  # each grouped column's value; `species` as {id, latin_name, ...}
    count: int
    dbh_mean: float | None
    dbh_median: float | None
    poor_share: float | None


def tree_groups(
    queryset: QuerySet[Tree] | QuerySet[TreeCount] | QuerySet[TreeGroupCount], by: Sequence[str]
) -> list[Group]:
    """The trees grouped by the `by` columns (of GROUP_COLUMNS): each group's count, mean and
    median trunk diameter, and share in Poor health of its trees whose health was recorded.

    Largest group first, then by the groups' values (nulls last), so the order is stable.
    An empty text value (a dead tree's health, say) is reported as None, as in tree_stats.

    In two steps, as tree_stats does: the trees are first counted per group and diameter (a
    hash aggregate into a few tens of thousands of rows), and each group's median is then
    read from its running counts, the exact value `percentile_cont(0.5)` gives, interpolated
    between the middle two. Measured on 683,788 trees, by NTA: half the time of
    `percentile_cont` itself, which sorts every tree. Of TreeCount rows (by and filtered on
    COUNTED_GROUP_COLUMNS only), the first step sums ~50,000 counts instead; of TreeGroupCount
    rows (by one of GROUP_COUNTED_COLUMNS), that column's rows are the first step's already.
    """
    columns = ["species_id" if column == "species" else column for column in by]
    if queryset.model is TreeGroupCount:
        (column,) = by
        numeric = column in TreeGroupCount.NUMERIC_COLUMNS
        value = Cast("value", IntegerField()) if numeric else F("value")
        fine = (
            queryset.filter(column_name=column, count__gt=0)
            .order_by()
            # n a bigint, as COUNT(*) is: the mean's sum(n * dbh) is then numeric, not an
            # integer division.
            .values(
                "poor",
                "recorded",
                **{column: value},
                dbh=F("tree_dbh"),
                n=Cast("count", BigIntegerField()),
            )
        )
    elif queryset.model is TreeCount:
        fine = (
            queryset.filter(count__gt=0)
            .order_by()
            .values(*columns, dbh=F("tree_dbh"))
            .annotate(
                n=Sum("count"),
                poor=Coalesce(Sum("count", filter=Q(health=Health.POOR)), 0),
                recorded=Coalesce(Sum("count", filter=~Q(health="")), 0),
            )
        )
    else:
        fine = (
            queryset.order_by()
            .values(*columns, dbh=F("tree_dbh"))
            .annotate(
                n=Count("*"),
                poor=Count("tree_id", filter=Q(health=Health.POOR)),
                recorded=Count("tree_id", filter=~Q(health="")),
            )
        )
    try:
        fine_sql, params = fine.query.sql_with_params()
    except EmptyResultSet:  # a filter that can match nothing, e.g. an unknown species name
        return []
    keys = ", ".join(f'fine."{column}"' for column in columns)
    order = ", ".join(f'running."{column}" ASC NULLS LAST' for column in columns)
    grouped = ", ".join(f'running."{column}"' for column in columns)
    if "species_id" in columns:
        names, join = (
            ", min(species.latin_name) AS latin_name, min(species.common_name) AS common_name",
            'LEFT JOIN trees_species AS species ON species.id = running."species_id"',
        )
    else:
        names, join = "", ""
    # Columns, names and table are this module's own constants; every value is a parameter.
    # The running sums are of int (a group's count fits one) so that they are bigints, not
    # numerics: the two tests per row of the median's positions, floor((measured - 1) / 2)
    # and ceil((measured - 1) / 2) as integer divisions, are then integer arithmetic, which
    # measured a third of the time of counts-based groups (by=zipcode) in numeric.
    sql = f"""
        WITH running AS (
            SELECT fine.*,
                   sum(n::int) FILTER (WHERE dbh IS NOT NULL) OVER (
                       PARTITION BY {keys} ORDER BY dbh ROWS UNBOUNDED PRECEDING) AS upto,
                   sum(n::int) FILTER (WHERE dbh IS NOT NULL) OVER (PARTITION BY {keys})
                       AS measured
            FROM ({fine_sql}) AS fine
        ), medians AS (
            SELECT {grouped}, sum(n)::bigint AS n,
                   (sum(n * dbh) / max(measured))::float AS dbh_mean,
                   (max(measured) - 1) * 0.5 AS middle,
                   min(dbh) FILTER (WHERE upto > (measured - 1) / 2) AS low,
                   min(dbh) FILTER (WHERE upto > measured / 2) AS high,
                   sum(poor)::float / nullif(sum(recorded), 0) AS poor_share
                   {names}
            FROM running {join}
            GROUP BY {grouped}
        )
        SELECT {", ".join(f'"{column}"' for column in columns)}, n, dbh_mean,
               (low + (middle - floor(middle)) * (high - low))::float, poor_share
               {", latin_name, common_name" if names else ""}
        FROM medians AS running
        ORDER BY n DESC, {order}
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()

    groups = []
    for row in rows:
        values: dict[str, object] = {}
        for index, name in enumerate(by):
            value = row[index]
            if name == "species":
                value = (
                    None
                    if value is None
                    else {"id": value, "latin_name": row[-2], "common_name": row[-1]}
                )
            elif value == "":
                value = None
            values[name] = value
        count, dbh_mean, dbh_median, poor_share = row[len(by) : len(by) + 4]
        groups.append(
            Group(
                values=values,
                count=count,
                dbh_mean=dbh_mean,
                dbh_median=dbh_median,
                poor_share=poor_share,
            )
        )
    return groups


@dataclass(frozen=True)
class Tally:
    value: str | None
    count: int


@dataclass(frozen=True)
class SpeciesTally:
    id: int
    latin_name: str
    common_name: str
    count: int


@dataclass(frozen=True)
class DiameterBin:
    min_inches: int
    max_inches: int | None  # exclusive; None for the open-ended last bin
    count: int


@dataclass(frozen=True)
class TreeStats:
    total: int
    by_borough: list[Tally]
    by_status: list[Tally]
    by_health: list[Tally]
    top_species: list[SpeciesTally]
    diameter_histogram: list[DiameterBin]


# Each GROUPING SETS row says which set it belongs to through GROUPING(...): one bit per
# column, set when the column is NOT grouped. The columns, in the order of that call:
_STATS_COLUMNS = ("borough", "status", "health", "species_id", "dbh_bin")


def _grouping_bits(column: str | None) -> int:
    """GROUPING()'s value for the set grouped by `column` alone (None: the grand total)."""
    all_bits = (1 << len(_STATS_COLUMNS)) - 1
    if column is None:
        return all_bits
    return all_bits & ~(1 << (len(_STATS_COLUMNS) - 1 - _STATS_COLUMNS.index(column)))


def tree_stats(
    queryset: QuerySet[Tree] | QuerySet[TreeCount], *, top_species: int = 10
) -> TreeStats:
    """Counts by borough, status and health, the top species and a diameter histogram.

    Of trees, or of TreeCount rows (the same filters on the same columns, same answer).
    Measured on 683,788 trees: one GROUPING SETS pass over the table takes ~340 ms, as its
    five hash tables each see every row. Here the filtered trees are first counted per
    (borough, status, health, species, diameter), which the tree_stats_idx index returns
    already sorted, so Postgres counts them in one streaming pass without hashing (~50k
    groups), and only those groups are rolled up by GROUPING SETS: ~100 ms in all. TreeCount
    holds those groups already counted, leaving only the roll-up: about a third of that.
    """
    groups = ("borough", "status", "health", "species_id", "tree_dbh")
    if queryset.model is TreeCount:
        fine = queryset.filter(count__gt=0).order_by().values(*groups, n=F("count"))
    else:
        fine = queryset.order_by().values(*groups).annotate(n=Count("*"))
    try:
        fine_sql, params = fine.query.sql_with_params()
    except EmptyResultSet:  # a filter that can match nothing, e.g. an unknown species name
        return _tally_stats({}, {})
    rollup_sql = f"""
        SELECT GROUPING(borough, status, health, species_id, dbh_bin), borough, status, health,
               species_id, dbh_bin, SUM(n)::bigint
        FROM (
            SELECT borough, status, health, species_id, n,
                   width_bucket(tree_dbh, 0, %s, %s) AS dbh_bin
            FROM ({fine_sql}) AS fine
        ) AS binned
        GROUP BY GROUPING SETS ((borough), (status), (health), (species_id), (dbh_bin), ())
    """  # noqa: S608 (fine_sql is Django's own compiled SQL; every value is a parameter)
    with connection.cursor() as cursor:
        cursor.execute(rollup_sql, [DBH_BIN_WIDTH * DBH_BINS, DBH_BINS, *params])
        rows = cursor.fetchall()

    counts: dict[str, dict] = {column: {} for column in _STATS_COLUMNS}
    total = 0
    column_of_bits = {_grouping_bits(column): column for column in _STATS_COLUMNS}
    for bits, *values, count in rows:
        if bits == _grouping_bits(None):
            total = count or 0  # the () grouping set sums no rows to NULL
            continue
        column = column_of_bits[bits]
        counts[column][values[_STATS_COLUMNS.index(column)]] = count
    species_counts = sorted(
        ((count, species_id) for species_id, count in counts["species_id"].items() if species_id),
        key=lambda pair: (-pair[0], pair[1]),
    )[:top_species]
    names = Species.objects.in_bulk([species_id for _, species_id in species_counts])
    top = [
        SpeciesTally(
            id=species_id,
            latin_name=names[species_id].latin_name,
            common_name=names[species_id].common_name,
            count=count,
        )
        for count, species_id in species_counts
    ]
    return _tally_stats(counts, {"total": total, "top_species": top})


def _tally_stats(counts: dict[str, dict], extra: dict) -> TreeStats:
    """Every known value with its count (0 when absent), so the shape never depends on data."""

    def tally(column: str, values: list[str | None]) -> list[Tally]:
        found = counts.get(column, {})
        # Health is empty for dead trees and stumps: reported as the value None.
        return [Tally(value or None, found.get(value, 0)) for value in values]

    bins = counts.get("dbh_bin", {})
    histogram = [
        DiameterBin(
            min_inches=(number - 1) * DBH_BIN_WIDTH,
            max_inches=number * DBH_BIN_WIDTH if number <= DBH_BINS else None,
            count=bins.get(number, 0),
        )
        for number in range(1, DBH_BINS + 2)  # width_bucket numbers the overflow bin n + 1
    ]
    return TreeStats(
        total=extra.get("total", 0),
        by_borough=tally("borough", Borough.values),
        by_status=tally("status", Status.values),
        by_health=tally("health", [*Health.values, ""]),
        top_species=extra.get("top_species", []),
        diameter_histogram=histogram,
    )
