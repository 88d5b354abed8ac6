"""Keyset paging of trees in each order the API offers: exact, and as fast deep as on page 1.

A page is the `limit` trees after a position, the position being the last tree seen as
(its value in the order, its tree_id): `WHERE (tree_dbh, tree_id) < (12, 500000) ORDER BY
tree_dbh DESC, tree_id DESC LIMIT 51`, a range of the (tree_dbh, tree_id) index, never an
OFFSET. tree_id is unique, so thousands of trees sharing a diameter still have one order and
a page boundary falls between two of them exactly; trees added or removed between two
requests shift no later position.

Each order has two segments: the trees with a value, by (value, tree_id), then those without
(a stump's missing species, an unknown date) by tree_id; descending reverses the first
segment's order and the tree_id order of the second, but trees without a value come last
either way. Each segment is one range of one index, read forwards or backwards, so a page
that crosses from one to the other is two short queries. Paging backwards reads the same
ranges the other way and reverses the rows.

The species order is by latin name, a column of the species table: no index on trees can
hold it. So the ~130 species are walked in latin name order and each one's trees read from
the (species, tree_id) index, at most `limit` of them, by a LATERAL join that Postgres stops
as soon as it has `limit` rows (see _species_rows).
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import F, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan

from trees import plans

BIGINT_MIN = -(2**63)


@dataclass(frozen=True)
class Order:
    """One order of the trees/ list, as `ordering=` names it."""

    name: str
    column: str | None  # what the trees are ordered by before tree_id (None: tree_id alone)
    descending: bool
    key: str | None  # the row's key holding the column's value (queries.tree_summaries)
    nullable: bool = True
    # The column's values as cursors write and read them: str -> value, raising ValueError.
    parse: Callable[[str], object] | None = None


def _dbh(text: str) -> int:
    if not (text.isdigit() and text.isascii() and len(text) <= 5 and int(text) <= 32767):
        raise ValueError(text)
    return int(text)


def _date(text: str) -> datetime.date:
    if len(text) != 10:  # fromisoformat also reads 20150827 and week dates
        raise ValueError(text)
    return datetime.date.fromisoformat(text)


def _latin_name(text: str) -> str:
    if not 1 <= len(text) <= 200 or "\x00" in text:
        raise ValueError(text)
    return text


def _distance(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):  # also refuses nan
        raise ValueError(text)
    return value


def _orders() -> dict[str, Order]:
    orders = {
        "tree_id": Order("tree_id", None, False, None),
        "-tree_id": Order("-tree_id", None, True, None),
    }
    for name, column, key, parse in [
        ("tree_dbh", "tree_dbh", "tree_dbh", _dbh),
        ("created_at", "surveyed_on", "surveyed_on", _date),
        ("species", "species__latin_name", "species_latin_name", _latin_name),
    ]:
        for descending in (False, True):
            prefix = "-" if descending else ""
            orders[prefix + name] = Order(prefix + name, column, descending, key, parse=parse)
    orders["distance"] = Order("distance", "distance", False, "distance", False, _distance)
    return orders


ORDERS = _orders()


@dataclass(frozen=True)
class Position:
    """A tree's place in an order: its value (None: it has none) and its tree_id."""

    value: object
    tree_id: int


def position_of(row: dict, order: Order) -> Position:
    return Position(None if order.key is None else row[order.key], row["tree_id"])


def page(
    queryset: QuerySet, order: Order, *, after: Position | None, backwards: bool, limit: int
) -> list[dict]:
    """Up to `limit` rows of `queryset` (dict rows: tree_summaries) right after `after` in
    `order`, or, `backwards`, right before it; either way in `order`. No `after`: the first
    (or, backwards, the last) rows."""
    descending = order.descending != backwards  # the direction the indexes are read in
    if order.column is None:
        rows = _range(queryset.order_by(), order, "tree_id", after, descending, limit)
        return rows[::-1] if backwards else rows
    in_nulls = after is not None and after.value is None
    # The two segments in the order they are read: values then nulls, or back from nulls.
    segments = ["nulls", "values"] if backwards else ["values", "nulls"]
    if after is not None:  # from the segment the position is in
        segments = segments[segments.index("nulls" if in_nulls else "values") :]
    rows: list[dict] = []
    for segment in segments:
        if segment == "nulls" and not order.nullable:
            continue
        start = after if (segment == "nulls") == in_nulls else None
        needed = limit - len(rows)
        if segment == "values":
            rows += _value_rows(queryset, order, start, descending, needed)
        else:
            nulls = queryset.order_by().filter(**{_null_column(order): None})
            rows += _range(nulls, order, "tree_id", start, descending, needed)
        if len(rows) >= limit:
            break
    return rows[::-1] if backwards else rows


def _null_column(order: Order) -> str:
    # A tree without species: its species_id, which the (species, tree_id) index holds.
    return "species_id" if order.column == "species__latin_name" else order.column


def _range(
    queryset: QuerySet,
    order: Order,
    column: str,
    start: Position | None,
    descending: bool,
    limit: int,
) -> list[dict]:
    """`limit` rows ordered by `column` then tree_id (by tree_id alone if column is it)."""
    keys = ("tree_id",) if column == "tree_id" else (column, "tree_id")
    if start is not None:
        after = TupleLessThan if descending else TupleGreaterThan
        bound = (start.tree_id,) if len(keys) == 1 else (start.value, start.tree_id)
        queryset = queryset.filter(after(Tuple(*(F(key) for key in keys)), bound))
    sign = "-" if descending else ""
    return plans.rows(queryset.order_by(*(sign + key for key in keys))[:limit])


def _value_rows(
    queryset: QuerySet, order: Order, start: Position | None, descending: bool, limit: int
) -> list[dict]:
    if order.column == "species__latin_name":
        return _species_rows(queryset, start, descending, limit)
    with_values = queryset.order_by()
    if order.nullable:
        with_values = with_values.filter(**{f"{order.column}__isnull": False})
    return _range(with_values, order, order.column, start, descending, limit)


def _species_rows(
    queryset: QuerySet, start: Position | None, descending: bool, limit: int
) -> list[dict]:
    """Trees with a species by (latin name, tree_id): for each species in latin name order,
    its first `limit` trees from the (species, tree_id) index (those after `start`'s tree_id
    for `start`'s own species), until `limit` rows are found.

    Postgres reads species one at a time and sorts only each one's few rows by tree_id
    (an incremental sort on the latin name), so a page deep into the largest species costs
    what the first page does; a join ordered by latin name would sort that whole species.
    """
    compare, sign, direction = ("<", "-", "DESC") if descending else (">", "", "ASC")
    # The subquery sees the outer species row as `s`: its trees, and for `start`'s species
    # only those past `start`'s tree_id (tree ids are positive: the other bound is no bound).
    trees = queryset.filter(species_id=RawSQL("s.id", []))
    if start is not None:
        no_bound = "9223372036854775807" if descending else str(BIGINT_MIN)
        bound = RawSQL(  # noqa: S611 (a constant of this module; the values are parameters)
            f"CASE WHEN s.latin_name = %s THEN %s ELSE {no_bound} END",
            [start.value, start.tree_id],
        )
        trees = trees.filter(**{"tree_id__lt" if descending else "tree_id__gt": bound})
    trees = trees.order_by(f"{sign}tree_id")[:limit]
    try:
        inner_sql, inner_params = trees.query.sql_with_params()
    except EmptyResultSet:  # a filter that matches nothing, e.g. an unknown species name
        return []
    species_filter, species_params = "", []
    if start is not None:
        species_filter, species_params = f"WHERE latin_name {compare}= %s", [start.value]
    sql = f"""
        SELECT trees.* FROM (
            SELECT id, latin_name FROM trees_species {species_filter}
        ) AS s
        CROSS JOIN LATERAL ({inner_sql}) AS trees
        ORDER BY s.latin_name {direction}, trees.tree_id {direction}
        LIMIT %s
    """  # noqa: S608 (the inner query is Django's own compiled SQL; values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*species_params, *inner_params, limit])
        columns = [column.name for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
