"""The stored census beside the fake server's rows: every stored column, for exact checks.

The expected side types the server's strings in Python, as the loader means to type them in
SQL, so a test compares two independent readings of the same rows.
"""

import datetime

from django.db import connection

from trees.columns import COLUMNS, SPECIES_FIELDS, Column, Kind

TREE_COLUMNS = [c for c in COLUMNS if c.field not in SPECIES_FIELDS]
SPECIES_COLUMNS = [c for c in COLUMNS if c.field in SPECIES_FIELDS]


def stored_table() -> dict[int, tuple]:
    """Every stored tree by tree_id: its columns in COLUMNS order, then its species' names."""
    fields = ", ".join(f"t.{c.field}" for c in TREE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {fields}, s.latin_name, s.common_name FROM trees_tree t "
            "LEFT JOIN trees_species s ON s.id = t.species_id"
        )
        return {row[0]: row for row in cursor.fetchall()}


def expected_table(server) -> dict[int, tuple]:
    """The server's live rows as `stored_table` should hold them."""
    result = {}
    for row in server.rows():
        values = tuple(_typed(c, _raw(c, row)) for c in TREE_COLUMNS)
        species = tuple(_raw(c, row) for c in SPECIES_COLUMNS)
        result[values[0]] = values + species
    return result


def differences(server) -> dict[int, tuple]:
    """Trees whose stored row differs from upstream: {tree_id: (stored, expected)}."""
    stored, expected = stored_table(), expected_table(server)
    return {
        tree_id: (stored.get(tree_id), expected.get(tree_id))
        for tree_id in stored.keys() | expected.keys()
        if stored.get(tree_id) != expected.get(tree_id)
    }


def _raw(column: Column, row: dict[str, str]) -> str | None:
    return next((row[name] for name in column.sources if row.get(name) not in (None, "")), None)


def _typed(column: Column, raw: str | None):
    if raw is None:
        return "" if column.kind in (Kind.TEXT, Kind.CHOICE) else None
    match column.kind:
        case Kind.BIGINT | Kind.INTEGER | Kind.SMALLINT:
            return int(raw.split(".")[0])
        case Kind.FLOAT:
            return float(raw)
        case Kind.DATE:
            return datetime.date.fromisoformat(raw[:10])
        case Kind.TIMESTAMP:
            return datetime.datetime.fromisoformat(raw)
        case Kind.BOOLEAN:
            return {"yes": True, "no": False}[raw.lower()]
    return raw
