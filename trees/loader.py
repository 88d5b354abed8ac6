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
tables are temporary and vanish when that transaction ends.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import DataError, IntegrityError, connection, transaction
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

if TYPE_CHECKING:
    from trees.socrata import Page

RAW = "sync_raw"
TYPED = "sync_typed"
SEEN = "sync_seen"
TREE_TABLE = "trees_tree"
SPECIES_TABLE = "trees_species"

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


def _build_upsert_sql() -> str:
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
            INSERT INTO {TREE_TABLE} AS t ({columns})
            SELECT {", ".join(f"i.{f}" for f in [*TREE_FIELDS, "species_id"])}
            FROM incoming AS i
            LEFT JOIN {TREE_TABLE} AS stored ON stored.tree_id = i.tree_id
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
UPSERT_SQL = _build_upsert_sql()
# Into a table that was empty when the run began: no conflict is likely, so a plain
# INSERT (a quarter cheaper than ON CONFLICT's speculative insertion) is tried first.
INSERT_SQL = (
    f"INSERT INTO {TREE_TABLE} ({', '.join([*TREE_FIELDS, 'species_id'])}) {_incoming_sql()}"
)

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
    """Loads pages into the tree table within the caller's transaction.

    Pages are staged as they arrive (`stage`, one COPY each, so their bytes can be freed at
    once) and checked and written in batches (`flush`): the statements cost the same per
    row whatever the batch, but each has a fixed cost, so small pages (flat memory) need
    not mean many statements.
    """

    def __init__(
        self, *, track_seen: bool, into_empty_table: bool = False, sample_size: int = 20
    ) -> None:
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
                    cursor.execute(INSERT_SQL)
                return cursor.rowcount, 0
            except IntegrityError:
                pass  # an earlier batch of this run had one of these trees
        cursor.execute(UPSERT_SQL)
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
                f"DELETE FROM {TREE_TABLE} AS t "
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
