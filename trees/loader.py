"""Bulk loading of census pages: COPY into staging, check in SQL, one upsert.

Why the work happens in Postgres: measured on this kind of machine for the 683,788-row
census, Python's per-value work alone (json.loads, then dicts to typed tuples) costs three
times a plain COPY, and `bulk_create(update_conflicts=True)` takes minutes and gigabytes.

So a CSV page's bytes go straight into `COPY` into a typed staging table: Postgres's own
input functions type every value, as fast as a COPY can be. If one value does not read (a
number that is not a number, the 30th of February), that COPY fails as a whole, and the
page is loaded again the careful way: as text, then typed by SQL that checks each value's
shape first and records a rejection reason instead of raising. JSON pages always take the
text route (`json_array_elements`). Then one UPDATE marks rows that break the census's
rules (closed vocabularies, required fields, coordinates inside New York), and one
INSERT … ON CONFLICT … WHERE IS DISTINCT FROM writes only new and changed trees.

The loader runs on the caller's connection, inside the caller's transaction; its staging
tables are temporary and vanish when that transaction ends. A first load (the tree table
empty) writes into a table of its own instead, put in the tree table's place at the very end
(FirstLoad), so the API keeps reading the tree table meanwhile.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from django.db import DataError, IntegrityError, OperationalError, connection, transaction
from psycopg import sql

from trees import records
from trees.columns import (
    BOROUGH_BY_CODE,
    COLUMNS,
    LATITUDE_RANGE,
    LONGITUDE_RANGE,
    SPECIES_FIELDS,
    Column,
    ColumnMap,
    Kind,
)
from trees.exceptions import SyncError
from trees.models import Species, Tree, TreeCount, TreeGroupCount

if TYPE_CHECKING:
    from trees.socrata import Page

RAW = "sync_raw"
TYPED = "sync_typed"
SEEN = "sync_seen"
TREE_TABLE = Tree._meta.db_table
SPECIES_TABLE = Species._meta.db_table
# A first load's own table (FirstLoad): it exists only inside that load's transaction.
LOAD_TABLE = f"{TREE_TABLE}_load"
# TreeCount's key, as the count triggers of migration 0003 group by it.
COUNT_TABLE = TreeCount._meta.db_table
COUNT_KEY = ", ".join(
    TreeCount._meta.get_field(name).column
    for name in next(
        c for c in TreeCount._meta.constraints if c.name == "treecount_unique_group"
    ).fields
)
# TreeGroupCount's rows of a table of trees, as the triggers of migration 0005 count them.
GROUP_COUNT_TABLE = TreeGroupCount._meta.db_table


def group_counts_of(table: str) -> str:
    """SQL that fills TreeGroupCount with the counts of the trees in `table`."""
    unpivot = ", ".join(f"('{column}', rows.{column}::text)" for column in TreeGroupCount.COLUMNS)
    return (
        f"INSERT INTO {GROUP_COUNT_TABLE} (column_name, value, tree_dbh, count, poor, recorded) "
        "SELECT unpivoted.column_name, unpivoted.value, rows.tree_dbh, count(*), "
        "count(*) FILTER (WHERE rows.health = 'Poor'), count(*) FILTER (WHERE rows.health <> '') "
        f"FROM {table} AS rows CROSS JOIN LATERAL (VALUES {unpivot}) "
        "AS unpivoted (column_name, value) GROUP BY 1, 2, 3"
    )


logger = logging.getLogger(__name__)

# Tree columns the upsert writes, in COLUMNS order, and those it may change.
TREE_FIELDS = [c.field for c in COLUMNS if c.field not in SPECIES_FIELDS]
UPDATED_FIELDS = [*(f for f in TREE_FIELDS if f != "tree_id"), "species_id"]

# Column types of the typed staging table. Dates and timestamps stay text there: Postgres's
# input functions accept words such as 'yesterday' and 'epoch', which are no census date,
# so they are checked by shape first and cast only when they are written.
STAGED_TYPES = {
    Kind.BIGINT: "bigint",
    Kind.INTEGER: "integer",
    Kind.SMALLINT: "smallint",
    Kind.FLOAT: "double precision",
    Kind.DATE: "text",
    Kind.TIMESTAMP: "text",
    Kind.BOOLEAN: "boolean",  # COPY reads Yes/No, Y/N, true/false in any case
    Kind.CHOICE: "text",
    Kind.TEXT: "text",
}

# Shapes that cast without error. Digits are bounded so no cast can overflow its type.
_NUMBER_SHAPES = {
    Kind.BIGINT: r"^\s*-?\d{1,18}(\.0*)?\s*$",
    Kind.INTEGER: r"^\s*-?\d{1,9}(\.0*)?\s*$",
    Kind.SMALLINT: r"^\s*-?\d{1,4}(\.0*)?\s*$",
}
_FLOAT_SHAPE = r"^\s*[+-]?(\d{1,20}(\.\d{0,20})?|\.\d{1,20})([eE][+-]?\d{1,2})?\s*$"
# Days 01-28 exist in every month; anything else goes through the careful SQL functions.
_SAFE_DATE = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])(T00:00:00(\.0+)?)?$"
_SAFE_US_DATE = r"^(0[1-9]|1[0-2])/(0[1-9]|1\d|2[0-8])/\d{4}$"
_SAFE_TIMESTAMP = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?Z$"
)
_KIND_NAMES = {
    Kind.BIGINT: "an integer",
    Kind.INTEGER: "an integer",
    Kind.SMALLINT: "a whole number below 10000",
    Kind.FLOAT: "a number",
    Kind.DATE: "a date",
    Kind.TIMESTAMP: "a timestamp",
    Kind.BOOLEAN: "Yes or No",
}


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _careful_cast(column: Column, raw: str) -> str:
    """SQL reading the text `raw` as the column's staged type, or NULL when it cannot.

    Never raises. Dates and timestamps pass through as text (see STAGED_TYPES).
    """
    kind = column.kind
    if kind in _NUMBER_SHAPES:
        return (
            f"CASE WHEN {raw} ~ {_literal(_NUMBER_SHAPES[kind])} "
            f"THEN split_part({raw}, '.', 1)::{STAGED_TYPES[kind]} END"
        )
    if kind is Kind.FLOAT:
        return f"CASE WHEN {raw} ~ {_literal(_FLOAT_SHAPE)} THEN {raw}::double precision END"
    if kind is Kind.BOOLEAN:
        return (
            f"CASE lower(btrim({raw})) WHEN 'yes' THEN true WHEN 'no' THEN false "
            "WHEN 'y' THEN true WHEN 'n' THEN false "
            "WHEN 'true' THEN true WHEN 'false' THEN false END"
        )
    return raw


def _build_careful_typing_sql() -> str:
    """INSERT INTO sync_typed SELECT …: type the text staging table, one reason per bad value.

    The inner query is kept from being merged into the outer one (OFFSET 0), so each cast
    runs once per value although the outer query looks at its result twice.
    """
    casts = ", ".join(
        f"NULLIF({c.field}, '') AS raw_{c.field}, "
        f"{_careful_cast(c, f'NULLIF({c.field}, {_literal("")})')} AS t_{c.field}"
        for c in COLUMNS
    )
    reasons = ", ".join(
        f"CASE WHEN raw_{c.field} IS NOT NULL AND t_{c.field} IS NULL THEN "
        f"{_literal(f'{c.field} is not {_KIND_NAMES[c.kind]}: ')} "
        f"|| quote_literal(left(raw_{c.field}, 40)) END"
        for c in COLUMNS
        if c.kind in _KIND_NAMES and c.kind not in (Kind.DATE, Kind.TIMESTAMP)
    )
    columns = ", ".join(c.field for c in COLUMNS)
    typed = ", ".join(f"t_{c.field}" for c in COLUMNS)
    return f"""
        INSERT INTO {TYPED} (line, raw_tree_id, reason, {columns})
        SELECT line, raw_tree_id, NULLIF(concat_ws('; ', {reasons}), ''), {typed}
        FROM (SELECT line, {casts} FROM {RAW} OFFSET 0) AS typed
    """


def _fast_typing_sql() -> str:
    """INSERT INTO sync_typed SELECT …: direct casts; fails as a whole on one unreadable value."""
    columns = ", ".join(c.field for c in COLUMNS)
    casts = ", ".join(f"NULLIF({c.field}, '')::{STAGED_TYPES[c.kind]}" for c in COLUMNS)
    return f"""
        INSERT INTO {TYPED} (line, raw_tree_id, {columns})
        SELECT line, tree_id, {casts} FROM {RAW}
    """


def read_value(column: Column, staged: str) -> str:
    """SQL for the value to store from a staged one that passed the checks."""
    if column.kind is Kind.DATE:
        return f"{staged}::date"  # ISO, or US style under the sync's DateStyle (MDY)
    if column.kind is Kind.TIMESTAMP:
        return f"{staged}::timestamptz"
    if column.kind in (Kind.TEXT, Kind.CHOICE):
        return f"COALESCE({staged}, '')"  # Django's convention: blank text is ''
    return staged


def _readable(column: Column, staged: str, *, careful: bool) -> str:
    """SQL that holds when a staged date or timestamp reads as one.

    The fast form casts (the cheapest test there is: a regular expression costs several
    times more) after ruling out Postgres's special words ('today', 'epoch', 'infinity'),
    none of which starts with a digit; an impossible date makes it raise. The careful form
    tests the shape, and sends only odd values through the never-raising SQL functions.
    """
    if not careful:
        return f"(ascii({staged}) BETWEEN 48 AND 57 AND {read_value(column, staged)} IS NOT NULL)"
    if column.kind is Kind.DATE:
        return (
            f"({staged} ~ {_literal(_SAFE_DATE)} OR {staged} ~ {_literal(_SAFE_US_DATE)} "
            f"OR trees_parse_date({staged}) IS NOT NULL)"
        )
    return (
        f"({staged} ~ {_literal(_SAFE_TIMESTAMP)} OR trees_parse_timestamp({staged}) IS NOT NULL)"
    )


def _rule_checks(column: Column, value: str, *, careful: bool) -> list[tuple[str, str]]:
    """(condition that holds for a usable row, SQL for the reason when it does not).

    `value` is the SQL for the column's value: the column itself, or its normalised form.
    """
    name = column.field
    checks = []
    if column.kind is Kind.CHOICE:
        allowed = ", ".join(_literal(choice) for choice in column.choices)
        checks.append(
            (
                f"COALESCE({value} IN ({allowed}), {value} IS NULL)",
                f"{_literal(f'{name} is not one of {", ".join(column.choices)}: ')} "
                f"|| quote_literal(left({value}, 40))",
            )
        )
    if column.kind in (Kind.DATE, Kind.TIMESTAMP):
        checks.append(
            (
                f"({value} IS NULL OR {_readable(column, value, careful=careful)})",
                f"{_literal(f'{name} is not {_KIND_NAMES[column.kind]}: ')} "
                f"|| quote_literal(left({value}, 40))",
            )
        )
    if column.kind is Kind.SMALLINT:
        checks.append((f"COALESCE({value} >= 0, true)", _literal(f"{name} is negative")))
    if column.kind is Kind.FLOAT:
        checks.append(
            (
                f"COALESCE({value} NOT IN ('NaN', 'Infinity', '-Infinity'), true)",
                _literal(f"{name} is not a finite number"),
            )
        )
    if column.max_length is not None and column.kind is Kind.TEXT:
        checks.append(
            (
                f"COALESCE(length({value}) <= {column.max_length}, true)",
                _literal(f"{name} is longer than {column.max_length} characters"),
            )
        )
    if column.required:
        checks.append((f"{value} IS NOT NULL", _literal(f"{name} is missing")))
    if column.field == "borough":
        checks.append((f"{value} IS NOT NULL", "'borough is missing'"))
    return checks


def _normalised(column: Column) -> str:
    """The census's own spelling of a choice given in another case, else the value as is.

    A missing borough name is taken from the borough code, which the census also carries.
    """
    if column.kind is not Kind.CHOICE:
        return column.field
    whens = " ".join(f"WHEN {_literal(c.lower())} THEN {_literal(c)}" for c in column.choices)
    fallback = column.field
    if column.field == "borough":
        by_code = " ".join(f"WHEN {n} THEN {_literal(b)}" for n, b in BOROUGH_BY_CODE.items())
        fallback = f"borough, CASE borocode {by_code} END"
    return f"COALESCE(CASE lower(btrim({column.field})) {whens} END, {fallback})"


def _build_check_sql(*, careful: bool) -> str:
    """UPDATE sync_typed: normalise spellings, and record every broken rule of each row.

    One pass over the page. The WHERE tests the rules on the values as staged, cheaply, and
    picks the few rows that need anything: a value in another case, a borough to take from
    its code, or a broken rule. For those, SET normalises, then names what is still wrong
    (every SET expression sees the row as it was, so reasons test the normalised values).
    """
    (low_lat, high_lat), (low_lon, high_lon) = LATITUDE_RANGE, LONGITUDE_RANGE
    coordinates = (
        f"COALESCE(latitude BETWEEN {low_lat} AND {high_lat} "
        f"AND longitude BETWEEN {low_lon} AND {high_lon}, true)",
        "'coordinates outside New York: ' || latitude || ', ' || longitude",
    )
    as_staged = [c for col in COLUMNS for c in _rule_checks(col, col.field, careful=careful)]
    normalised = [
        check
        for column in COLUMNS
        for check in _rule_checks(column, _normalised(column), careful=careful)
    ]
    choices = [c for c in COLUMNS if c.kind is Kind.CHOICE]
    reasons = ", ".join(
        f"CASE WHEN NOT ({ok}) THEN {why} END" for ok, why in [*normalised, coordinates]
    )
    return f"""
        UPDATE {TYPED} SET
            {", ".join(f"{c.field} = {_normalised(c)}" for c in choices)},
            reason = NULLIF(concat_ws('; ', reason, {reasons}), '')
        WHERE NOT ({" AND ".join(f"({ok})" for ok, _ in [*as_staged, coordinates])})
    """


def _incoming_sql() -> str:
    """The page's usable rows as the tree table stores them, species resolved."""
    values = ", ".join(
        f"{read_value(next(c for c in COLUMNS if c.field == f), f's.{f}')} AS {f}"
        for f in TREE_FIELDS
    )
    return f"""
        SELECT {values}, sp.id AS species_id
        FROM {TYPED} AS s
        LEFT JOIN {SPECIES_TABLE} AS sp ON sp.latin_name = s.spc_latin
        WHERE s.reason IS NULL
    """


@cache
def upsert_sql(table: str) -> str:
    """One INSERT … ON CONFLICT for the page; unchanged trees are skipped, not rewritten.

    Unchanged rows are filtered out by a join before the insert, not only by the ON
    CONFLICT's WHERE: Postgres locks (and so writes to) every conflicting row it reaches,
    even when the WHERE then declines to update it.
    """
    columns = ", ".join([*TREE_FIELDS, "species_id"])
    excluded = ", ".join(f"EXCLUDED.{f}" for f in UPDATED_FIELDS)
    return f"""
        WITH incoming AS ({_incoming_sql()}),
        upserted AS (
            INSERT INTO {table} AS t ({columns})
            SELECT {", ".join(f"i.{f}" for f in [*TREE_FIELDS, "species_id"])}
            FROM incoming AS i
            LEFT JOIN {table} AS stored ON stored.tree_id = i.tree_id
            WHERE stored.tree_id IS NULL
                OR ({", ".join(f"stored.{f}" for f in UPDATED_FIELDS)})
                IS DISTINCT FROM ({", ".join(f"i.{f}" for f in UPDATED_FIELDS)})
            ON CONFLICT (tree_id) DO UPDATE SET ({", ".join(UPDATED_FIELDS)}) = ROW({excluded})
            WHERE ({", ".join(f"t.{f}" for f in UPDATED_FIELDS)}) IS DISTINCT FROM ({excluded})
            RETURNING xmax = 0 AS inserted
        )
        SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
        FROM upserted
    """


CAREFUL_TYPING_SQL = _build_careful_typing_sql()
FAST_TYPING_SQL = _fast_typing_sql()
FAST_CHECK_SQL = _build_check_sql(careful=False)
CAREFUL_CHECK_SQL = _build_check_sql(careful=True)


@cache
def insert_sql(table: str) -> str:
    """Into a table that was empty when the run began: no conflict is likely, so a plain
    INSERT (a quarter cheaper than ON CONFLICT's speculative insertion) is tried first."""
    return f"INSERT INTO {table} ({', '.join([*TREE_FIELDS, 'species_id'])}) {_incoming_sql()}"


SPECIES_SQL = f"""
    WITH changed AS (
        INSERT INTO {SPECIES_TABLE} AS sp (latin_name, common_name)
        SELECT spc_latin, COALESCE(max(spc_common), '')
        FROM {TYPED}
        WHERE reason IS NULL AND spc_latin IS NOT NULL
        GROUP BY spc_latin
        ON CONFLICT (latin_name) DO UPDATE SET common_name = EXCLUDED.common_name
        WHERE sp.common_name IS DISTINCT FROM EXCLUDED.common_name
        RETURNING 1
    )
    SELECT count(*) FROM changed
"""

# One tree twice in a batch is the same tree seen again after it changed upstream during
# the run (an incremental run's keyset order puts its newer version later), not a bad row:
# the newest :updated_at is kept (a tie, or a file without timestamps: the later line) and
# the older rows are dropped, not rejected. Two rows of one tree would also make the upsert
# fail ("cannot affect row a second time"). Across batches the later batch is the newer.
DUPLICATES_SQL = f"""
    WITH ranked AS (
        SELECT line, row_number() OVER (
            PARTITION BY tree_id
            ORDER BY socrata_updated_at::timestamptz DESC NULLS LAST, line DESC
        ) AS n
        FROM {TYPED}
        WHERE reason IS NULL AND tree_id IN (
            SELECT tree_id FROM {TYPED} WHERE reason IS NULL
            GROUP BY tree_id HAVING count(*) > 1
        )
    )
    DELETE FROM {TYPED} AS s USING ranked WHERE s.line = ranked.line AND ranked.n > 1
"""

# Placeholders of rows Postgres could not read (see trees.records): their own reason only.
UNREADABLE_SQL = f"""
    UPDATE {TYPED} AS s SET reason = u.reason, raw_tree_id = COALESCE(s.raw_tree_id, u.tree_id)
    FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS u(line, reason, tree_id)
    WHERE s.line = u.line
"""

_UPDATED_AT = next(c for c in COLUMNS if c.field == "socrata_updated_at")
SUMMARY_SQL = f"""
    SELECT count(*), count(*) FILTER (WHERE reason IS NOT NULL),
        max({read_value(_UPDATED_AT, "socrata_updated_at")}) FILTER (WHERE reason IS NULL)
    FROM {TYPED}
"""

SAMPLE_SQL = f"""
    SELECT line, COALESCE(raw_tree_id, tree_id::text), reason FROM {TYPED}
    WHERE reason IS NOT NULL ORDER BY line LIMIT %s
"""


@dataclass
class PageResult:
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    superseded: int = 0  # older versions of a tree fetched again in the same batch
    species_changed: int = 0
    newest: datetime | None = None
    rejections: list[dict] = field(default_factory=list)

    @property
    def unchanged(self) -> int:
        return self.fetched - self.superseded - self.rejected - self.inserted - self.updated

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated or self.species_changed)


class Loader:
    """Loads pages into the tree table (or `table`) within the caller's transaction.

    Pages are staged as they arrive (`stage`, one COPY each, so their bytes can be freed at
    once) and checked and written in batches (`flush`): the statements cost the same per
    row whatever the batch, but each has a fixed cost, so small pages (flat memory) need
    not mean many statements.
    """

    def __init__(
        self,
        *,
        track_seen: bool,
        into_empty_table: bool = False,
        sample_size: int = 20,
        table: str = TREE_TABLE,
    ) -> None:
        self.table = table
        self.track_seen = track_seen
        self.into_empty_table = into_empty_table
        self.sample_size = sample_size
        self.staged_rows = 0
        self._spare_columns = 0
        self._unreadable: list[tuple[int, str, str | None]] = []  # (line, reason, tree_id)

    def start(self) -> None:
        """Create the staging tables (dropped when the transaction ends)."""
        text_columns = ", ".join(f"{c.field} text" for c in COLUMNS)
        typed_columns = ", ".join(f"{c.field} {STAGED_TYPES[c.kind]}" for c in COLUMNS)
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE {RAW} (line bigserial, {text_columns}) ON COMMIT DROP"
            )
            cursor.execute(
                f"CREATE TEMP TABLE {TYPED} (line bigserial, raw_tree_id text, reason text, "
                f"{typed_columns}) ON COMMIT DROP"
            )
            if self.track_seen:
                cursor.execute(f"CREATE TEMP TABLE {SEEN} (tree_id bigint) ON COMMIT DROP")

    def load(self, page: "Page", columns: ColumnMap) -> PageResult:
        """Stage one page and write it at once."""
        self.stage(page, columns)
        return self.flush()

    def stage(self, page: "Page", columns: ColumnMap) -> None:
        """Add the page's rows to sync_typed: by COPY when every value reads, else carefully.

        Each row's `line` is its position in the whole fetch (the page's offset plus its
        place in the page), for rejection samples and for "a later row wins". A row holding
        bytes no Postgres text can (NUL, invalid UTF-8) is staged as an empty placeholder
        and rejected with its reason at the next flush (see trees.records).
        """
        page, unreadable = records.neutralise(page, key=columns.sources.get("tree_id"))
        self._unreadable += [(page.offset + r.position, r.reason, r.tree_id) for r in unreadable]
        with connection.cursor() as cursor:
            if page.format == "csv":
                # Outside the savepoint below: rolling it back would take new columns along.
                targets = self._target_columns(cursor, page.fields, columns)
                try:
                    with transaction.atomic():  # a savepoint: a failed COPY must not end the run
                        self._number_lines_from(cursor, TYPED, page.offset)
                        self._copy_csv(cursor, TYPED, page, targets)
                except DataError:
                    self._restage_raw(cursor, page.offset)
                    self._copy_csv(cursor, RAW, page, targets)
                    cursor.execute(CAREFUL_TYPING_SQL)
            else:
                self._restage_raw(cursor, page.offset)
                self._insert_json(cursor, page, columns)
                try:
                    with transaction.atomic():
                        cursor.execute(FAST_TYPING_SQL)
                except DataError:
                    cursor.execute(CAREFUL_TYPING_SQL)
        self.staged_rows += page.row_count

    def flush(self) -> PageResult:
        """Check and write what is staged; returns what it did."""
        with connection.cursor() as cursor:
            self._check_rows(cursor)
            if self._unreadable:
                lines, reasons, tree_ids = zip(*self._unreadable, strict=True)
                cursor.execute(UNREADABLE_SQL, [list(lines), list(reasons), list(tree_ids)])
                self._unreadable.clear()
            cursor.execute(DUPLICATES_SQL)
            superseded = cursor.rowcount
            cursor.execute(SUMMARY_SQL)
            fetched, rejected, newest = cursor.fetchone()
            result = PageResult(
                fetched=fetched + superseded,
                rejected=rejected,
                superseded=superseded,
                newest=newest,
            )
            if rejected:
                cursor.execute(SAMPLE_SQL, [self.sample_size])
                result.rejections = [
                    {"row": line, "tree_id": tree_id, "reason": reason}
                    for line, tree_id, reason in cursor.fetchall()
                ]
            cursor.execute(SPECIES_SQL)
            (result.species_changed,) = cursor.fetchone()
            result.inserted, result.updated = self._write_trees(cursor)
            if self.track_seen:
                cursor.execute(
                    f"INSERT INTO {SEEN} SELECT tree_id FROM {TYPED} WHERE tree_id IS NOT NULL"
                )
            cursor.execute(f"TRUNCATE {TYPED}")
        self.staged_rows = 0
        return result

    def _write_trees(self, cursor) -> tuple[int, int]:
        """Insert new trees and update changed ones; returns (inserted, updated)."""
        if self.into_empty_table:
            try:
                with transaction.atomic():
                    cursor.execute(insert_sql(self.table))
                return cursor.rowcount, 0
            except IntegrityError:
                pass  # an earlier batch of this run had one of these trees
        cursor.execute(upsert_sql(self.table))
        return cursor.fetchone()

    def _check_rows(self, cursor) -> None:
        """Normalise, record broken rules; dates are tested by casting, carefully if one fails."""
        try:
            with transaction.atomic():  # a savepoint: a failed cast must not end the run
                cursor.execute(FAST_CHECK_SQL)
        except DataError:
            cursor.execute(CAREFUL_CHECK_SQL)

    def unseen_tree_ids(self) -> list[int]:
        """Stored trees this run has not seen (yet), in tree_id order."""
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {SEEN}")
            cursor.execute(
                f"SELECT tree_id FROM {TREE_TABLE} AS t WHERE NOT EXISTS "
                f"(SELECT 1 FROM {SEEN} AS s WHERE s.tree_id = t.tree_id) ORDER BY tree_id"
            )
            return [tree_id for (tree_id,) in cursor.fetchall()]

    def delete_missing(self) -> int:
        """Delete the trees this run did not see (call only after a complete full fetch)."""
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {SEEN}")
            cursor.execute(
                f"DELETE FROM {self.table} AS t "
                f"WHERE NOT EXISTS (SELECT 1 FROM {SEEN} AS s WHERE s.tree_id = t.tree_id)"
            )
            return cursor.rowcount

    @staticmethod
    def _number_lines_from(cursor, table: str, offset: int) -> None:
        # Sequences ignore rollbacks, so this is set again before every attempt.
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence(%s, 'line'), %s, false)", [table, offset + 1]
        )

    def _restage_raw(self, cursor, offset: int) -> None:
        """Empty the text staging table for one page, its lines numbered from `offset`."""
        cursor.execute(f"TRUNCATE {RAW}")
        self._number_lines_from(cursor, RAW, offset)

    def _copy_csv(self, cursor, table: str, page: "Page", targets: list[str]) -> None:
        names = sql.SQL(", ").join(map(sql.Identifier, targets))
        # FORCE_NULL: a quoted empty value is missing too, as an unquoted one is.
        statement = sql.SQL(
            "COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true, FORCE_NULL ({}))"
        ).format(sql.Identifier(table), names, names)
        # cursor.copy() is psycopg's own: wrap its errors as Django's, like execute()'s.
        with connection.wrap_database_errors, cursor.copy(statement) as copy:
            copy.write(page.body)

    def _target_columns(self, cursor, headers: tuple[str, ...], columns: ColumnMap) -> list[str]:
        """The staging column for each header, in order; unknown headers land in spare ones."""
        by_source = {source: field for field, source in columns.sources.items()}
        targets, spare = [], 0
        for header in headers:
            if header in by_source:
                targets.append(by_source.pop(header))
            else:
                spare += 1
                targets.append(f"spare_{spare}")
        while self._spare_columns < spare:
            self._spare_columns += 1
            for table in (RAW, TYPED):
                cursor.execute(f"ALTER TABLE {table} ADD COLUMN spare_{self._spare_columns} text")
        return targets

    def _insert_json(self, cursor, page: "Page", columns: ColumnMap) -> None:
        fields = list(columns.sources)
        statement = sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM json_array_elements(%s::json) AS element"
        ).format(
            sql.Identifier(RAW),
            sql.SQL(", ").join(map(sql.Identifier, fields)),
            sql.SQL(", ").join(
                sql.SQL("element ->> {}").format(sql.Literal(columns.sources[f])) for f in fields
            ),
        )
        cursor.execute(statement, [page.body.decode("utf-8")])


def table_is_empty() -> bool:
    """Whether the tree table holds no tree: then a run is a first load (FirstLoad)."""
    return not Tree.objects.exists()


# Held (for its transaction) by a first load, so that /readyz can tell: any fixed 64-bit
# number works; this one spells "nycfirst" in ASCII. The sync's own lock is sync.ADVISORY_LOCK_ID.
FIRST_LOAD_LOCK_ID = 0x6E79636669727374

# The swap waits for the tree table's lock in short tries: while a try waits, API reads of
# the table queue behind it, so none waits longer than one try. After the last, it waits.
SWAP_LOCK_TIMEOUT = "200ms"
SWAP_LOCK_TRIES = 50


@dataclass
class _Schema:
    """What migrations gave the tree table, read from the catalogs when a first load starts."""

    indexes: list[tuple[str, bool, str]]  # (name, unique, definition from USING on)
    keys: list[tuple[str, str]]  # (name, definition): primary key, unique and exclusion
    foreign_keys: list[tuple[str, str]]  # (name, definition)
    referenced: list[str]  # the tables the foreign keys point to
    triggers: list[str]  # CREATE TRIGGER statements naming the tree table
    comment: str | None
    grants: list[tuple[str, str]]  # (privilege, grantee or PUBLIC)


class FirstLoad:
    """A first load into a table of its own, put in the tree table's place at the very end.

    Loading into the tree table itself would mean maintaining its secondary indexes and its
    species foreign key row by row (slower than loading the rows), or dropping them: and
    DROP INDEX holds the table's ACCESS EXCLUSIVE lock until the run commits, so every API
    request touching the table would wait for the whole run. Here the load table is this
    transaction's own (nobody else can even see it): it gets the tree table's columns, checks
    and primary key at once, its indexes, foreign keys and TreeCount's and TreeGroupCount's
    counts after the last row, and then, in a moment, the swap: the empty tree table is
    dropped, the load table renamed in its place, its indexes, keys and triggers renamed or
    created under the names the migrations gave them (read from the catalogs, so later
    migrations find them).

    The whole of it is the run's transaction: a failed or interrupted load leaves the empty
    tree table as it was, and no load table. A table something else depends on (a view, a
    foreign key, a sequence) cannot be swapped: then the load goes into the tree table
    itself, its indexes kept (slower, never blocking).
    """

    def __init__(self) -> None:
        self.table = LOAD_TABLE
        self.warning: str | None = None
        self._schema: _Schema | None = None

    def start(self) -> None:
        """Create the load table (or choose the tree table itself; see `warning`)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [FIRST_LOAD_LOCK_ID])
            dependents = _dependents(cursor)
            if dependents:
                self.table = TREE_TABLE
                self.warning = (
                    f"First load into {TREE_TABLE} itself, with its indexes (slower, never "
                    f"blocking readers), because of what depends on it: {', '.join(dependents)}"
                )
                logger.warning(self.warning)
                return
            self._schema = schema = _read_schema(cursor)
            cursor.execute(
                f"CREATE TABLE {LOAD_TABLE} (LIKE {TREE_TABLE} INCLUDING DEFAULTS "
                "INCLUDING CONSTRAINTS INCLUDING COMMENTS INCLUDING STORAGE "
                "INCLUDING COMPRESSION INCLUDING GENERATED INCLUDING STATISTICS)"
            )
            # The primary key at once: a tree repeated on a later page must conflict.
            for number, (_, definition) in enumerate(schema.keys):
                cursor.execute(
                    f'ALTER TABLE {LOAD_TABLE} ADD CONSTRAINT "{_load_name(number, "key")}" '
                    f"{definition}"
                )

    def finish(self) -> None:
        """Index and count the load table, then swap it in; call as the run's last write."""
        if self._schema is None:
            return
        schema = self._schema
        statements = [
            f'CREATE {"UNIQUE " if unique else ""}INDEX "{_load_name(number, "idx")}" '
            f"ON {LOAD_TABLE} {tail}"
            for number, (_, unique, tail) in enumerate(schema.indexes)
        ]
        statements += [
            f'ALTER TABLE {LOAD_TABLE} ADD CONSTRAINT "{name}" {definition}'
            for name, definition in schema.foreign_keys
        ]
        statements += [
            f"ANALYZE {LOAD_TABLE}",  # the planner needs statistics at once
            # First the 0 counts an emptied table left.
            f"DELETE FROM {COUNT_TABLE}",
            f"INSERT INTO {COUNT_TABLE} ({COUNT_KEY}, count) "
            f"SELECT {COUNT_KEY}, count(*) FROM {LOAD_TABLE} GROUP BY {COUNT_KEY}",
            f"DELETE FROM {GROUP_COUNT_TABLE}",
            group_counts_of(LOAD_TABLE),
            f"ANALYZE {GROUP_COUNT_TABLE}",  # read by one column's index range, not a sort
        ]
        with connection.cursor() as cursor:
            for statement in statements:
                _timed(cursor, statement)
            started = time.perf_counter()
            self._swap(cursor, schema)
            logger.info("Swapped the first load in: %.3f s", time.perf_counter() - started)

    def _swap(self, cursor, schema: _Schema) -> None:
        """The one moment API reads of the tree table wait: a few catalog changes."""
        _lock(cursor, [TREE_TABLE, *schema.referenced])
        cursor.execute(f"SELECT EXISTS (SELECT FROM {TREE_TABLE})")
        if cursor.fetchone()[0]:
            raise SyncError(
                f"Trees were written to {TREE_TABLE} during the first load; "
                "nothing was loaded, run the sync again"
            )
        statements = [
            f"DROP TABLE {TREE_TABLE}",
            f"ALTER TABLE {LOAD_TABLE} RENAME TO {TREE_TABLE}",
        ]
        statements += [
            f'ALTER TABLE {TREE_TABLE} RENAME CONSTRAINT "{_load_name(number, "key")}" TO "{name}"'
            for number, (name, _) in enumerate(schema.keys)
        ]
        statements += [
            f'ALTER INDEX "{_load_name(number, "idx")}" RENAME TO "{name}"'
            for number, (name, _, _) in enumerate(schema.indexes)
        ]
        statements += schema.triggers  # they name the tree table: now the loaded one
        statements += [
            f"GRANT {privilege} ON {TREE_TABLE} TO {to}" for privilege, to in schema.grants
        ]
        for statement in statements:
            _timed(cursor, statement)
        if schema.comment is not None:
            cursor.execute(f"COMMENT ON TABLE {TREE_TABLE} IS %s", [schema.comment])


def _load_name(number: int, kind: str) -> str:
    """A load table index's name until the swap (index names are unique per schema)."""
    return f"{LOAD_TABLE}_{kind}{number}"


def _timed(cursor, statement: str) -> None:
    started = time.perf_counter()
    cursor.execute(statement)
    logger.debug("%.2f s: %s", time.perf_counter() - started, statement)


def _dependents(cursor) -> list[str]:
    """What would stop the swap: objects of other tables on the tree table, or sequences.

    The table's own constraints, indexes, triggers and generated columns (the PostGIS
    location) are rebuilt by the swap or copied by LIKE; a view or a
    foreign key from elsewhere would have to be dropped with it, a sequence it owns (an
    identity or serial column) would start again.
    """
    cursor.execute(
        """
        SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid)
        FROM pg_depend AS d
        LEFT JOIN pg_constraint AS c ON d.classid = 'pg_constraint'::regclass AND c.oid = d.objid
        LEFT JOIN pg_class AS k ON d.classid = 'pg_class'::regclass AND k.oid = d.objid
        LEFT JOIN pg_attrdef AS a ON d.classid = 'pg_attrdef'::regclass AND a.oid = d.objid
        WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = %s::regclass
            AND ((d.deptype = 'n' AND c.conrelid IS DISTINCT FROM d.refobjid
                  AND a.adrelid IS DISTINCT FROM d.refobjid)
                 OR k.relkind = 'S')
        ORDER BY 1
        """,
        [TREE_TABLE],
    )
    return [name for (name,) in cursor.fetchall()]


def _read_schema(cursor) -> _Schema:
    cursor.execute(
        """
        SELECT c.relname, i.indisunique, pg_get_indexdef(i.indexrelid)
        FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
        WHERE i.indrelid = %s::regclass
            AND NOT EXISTS (SELECT FROM pg_constraint WHERE conindid = i.indexrelid
                                                        AND conrelid = i.indrelid)
        ORDER BY c.relname
        """,
        [TREE_TABLE],
    )
    # pg_get_indexdef: CREATE [UNIQUE] INDEX name ON table USING method (...) [...]
    indexes = [
        (name, unique, definition[definition.index(" USING ") :].lstrip())
        for name, unique, definition in cursor.fetchall()
    ]
    cursor.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid), confrelid::regclass::text "
        "FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'x', 'f') "
        "ORDER BY conname",
        [TREE_TABLE],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgrelid = %s::regclass AND NOT tgisinternal ORDER BY tgname",
        [TREE_TABLE],
    )
    triggers = [definition for (definition,) in cursor.fetchall()]
    cursor.execute(
        "SELECT obj_description(%s::regclass, 'pg_class')",
        [TREE_TABLE],
    )
    (comment,) = cursor.fetchone()
    cursor.execute(
        "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' "
        "ELSE quote_ident(pg_get_userbyid(a.grantee)) END "
        "FROM pg_class AS c, aclexplode(c.relacl) AS a "
        "WHERE c.oid = %s::regclass AND a.grantee <> c.relowner",
        [TREE_TABLE],
    )
    grants = cursor.fetchall()
    return _Schema(
        indexes=indexes,
        keys=[(name, definition) for name, kind, definition, _ in constraints if kind != "f"],
        foreign_keys=[
            (name, definition) for name, kind, definition, _ in constraints if kind == "f"
        ],
        referenced=sorted({table for _, kind, _, table in constraints if kind == "f"}),
        triggers=triggers,
        comment=comment,
        grants=grants,
    )


def _lock(cursor, tables: list[str]) -> None:
    """Take the swap's locks in short tries (see SWAP_LOCK_TIMEOUT), then by waiting."""
    statement = f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"
    for _ in range(SWAP_LOCK_TRIES):
        try:
            with transaction.atomic():  # a savepoint: a timed-out try must not end the run
                cursor.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
                cursor.execute(statement)
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            continue
        cursor.execute("SET LOCAL lock_timeout = DEFAULT")
        return
    logger.warning("The first load waits for readers of %s to let it swap", TREE_TABLE)
    cursor.execute(statement)
