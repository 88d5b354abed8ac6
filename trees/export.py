"""Bulk export of trees as CSV, GeoJSON or newline-delimited GeoJSON, streamed from Postgres.

No row passes through Django's ORM machinery or Python's csv/json: Postgres writes the bytes
(`COPY (SELECT ...) TO STDOUT`, read through psycopg 3's `cursor.copy()`) and this module only
gathers them into chunks of CHUNK_BYTES for the WSGI server, gzipping them on the way if
asked. Memory stays one chunk however many trees match.

The rows are the trees a filtered queryset selects (the API's TreeFilterSet builds it), so an
export means exactly what the same filters mean on `trees/`. Columns (EXPORT_COLUMNS): every
stored column of Tree in model order, the species as `species_id` and its two names.

- CSV: `COPY ... (FORMAT csv, HEADER)`, one header row of the column names. NULL is an empty
  field and an empty text a quoted `""`; booleans `true`/`false`, dates ISO 8601.
- GeoJSON features: Postgres builds each Feature with json_build_object, and COPY writes one
  per line. CSV format with a quote and a delimiter that JSON never holds unescaped (control
  characters U+0001 and U+0002: JSON escapes every control character) writes each JSON text
  exactly as it is, where COPY's text format would double every backslash.

The web process's statement_timeout (trees/database.py) is lifted for the export's own
transaction only (SET LOCAL): a whole-census COPY takes longer, and its pace is the client's.
"""

import zlib
from collections.abc import Iterator, Sequence
from contextlib import closing

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import F, QuerySet, Value

from trees.models import Tree

CHUNK_BYTES = 64 * 1024
# zlib level 1: ~4x smaller than plain CSV for a fraction of level 6's CPU (the export is
# CPU-bound in the worker); wbits 31 means a gzip header and trailer.
GZIP_LEVEL = 1
GZIP_WBITS = 31


def _columns() -> tuple[str, ...]:
    names = []
    for field in Tree._meta.concrete_fields:
        if field.name == "species":
            names += ["species_id", "species_latin_name", "species_common_name"]
        else:
            names.append(field.attname)
    return tuple(names)


EXPORT_COLUMNS: tuple[str, ...] = _columns()
# Where a GeoJSON feature keeps these: its `id` and its geometry, not its properties.
FEATURE_ID = "tree_id"
COORDINATES = ("longitude", "latitude")
# Columns written as JSON writes them (ISO 8601 with a `T`), not as Postgres's text does.
_TIMESTAMP_COLUMNS = frozenset(
    field.attname
    for field in Tree._meta.concrete_fields
    if field.get_internal_type() == "DateTimeField"
)

_BOOLEAN_COLUMNS = frozenset(
    field.attname
    for field in Tree._meta.concrete_fields
    if field.get_internal_type() == "BooleanField"
)

CSV_MEDIA_TYPE = "text/csv; charset=utf-8; header=present"
GEOJSON_MEDIA_TYPE = "application/geo+json"
# RFC 8142's GeoJSON text sequences would start each feature with RS (0x1E), which GDAL's
# GeoJSONSeq driver reads but jq, pandas and `for line in file` do not: plain lines it is.
NDJSON_MEDIA_TYPE = "application/x-ndjson"

_FEATURE_COLLECTION_HEAD = b'{"type":"FeatureCollection","features":[\n'
_FEATURE_COLLECTION_TAIL = b"]}\n"


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def _rows_sql(trees: QuerySet[Tree], columns: Sequence[str]) -> tuple[str, tuple]:
    """The SELECT of `columns` (EXPORT_COLUMNS names) of `trees`, in tree_id order."""
    plain = [name for name in columns if not name.startswith("species_") or name == "species_id"]
    names = {
        name: F(f"species__{name.removeprefix('species_')}")
        for name in columns
        if name in ("species_latin_name", "species_common_name")
    }
    try:
        sql, params = trees.order_by("tree_id").values(*plain, **names).query.sql_with_params()
    except EmptyResultSet:  # a filter that matches nothing, such as an unknown species name
        nothing = trees.model.objects.filter(Value(False)).values(*plain, **names)
        sql, params = nothing.query.sql_with_params()
    return sql, tuple(params)


def _column(table: str, name: str) -> str:
    """A column as the export writes it: a timestamp as ISO 8601 in UTC with microseconds
    (`2015-08-27T00:00:00.000000Z`, as JSON dates go), anything else as it is."""
    column = f"{table}.{_quoted(name)}"
    if name in _TIMESTAMP_COLUMNS:
        utc = f"{column} AT TIME ZONE 'UTC'"
        return f"""to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS {_quoted(name)}"""
    return column


def csv_sql(trees: QuerySet[Tree], columns: Sequence[str]) -> tuple[str, tuple]:
    """`COPY (SELECT columns) TO STDOUT` as CSV with a header row, and its parameters."""
    inner, params = _rows_sql(trees, columns)
    outer = ", ".join(
        f"q.{_quoted(name)}::text AS {_quoted(name)}"  # `true`, not COPY's `t`
        if name in _BOOLEAN_COLUMNS
        else _column("q", name)
        for name in columns
    )
    # The `%` of the outer query are literal: only the inner one has placeholders.
    select = f"SELECT {outer} FROM ({inner}) AS q"  # noqa: S608 (column names are ours)
    return f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER)", params


def features_sql(trees: QuerySet[Tree], columns: Sequence[str]) -> tuple[str, tuple]:
    """COPY of one GeoJSON Feature per line: id and geometry always, `columns` as properties
    (less the coordinates, which are the geometry).

    The properties are to_json of a row (compact, in column order); the rest is text glued
    around it, since json_build_object pads every key with spaces. A float8's text is the
    shortest that reads back the same, as in JSON; none of these columns is ever NULL.
    """
    properties = [name for name in columns if name not in COORDINATES]
    selected = list(dict.fromkeys([FEATURE_ID, *COORDINATES, *properties]))
    inner, params = _rows_sql(trees, selected)
    row = ", ".join(_column("r", name) for name in properties)
    lon, lat = (f"r.{_quoted(name)}" for name in COORDINATES)
    props = "to_json(p)" if properties else "'{}'"
    feature = (
        f"""'{{"type":"Feature","id":' || r.{_quoted(FEATURE_ID)} || """
        f"""',"geometry":{{"type":"Point","coordinates":[' || {lon} || ',' || {lat} || """
        f"""']}},"properties":' || {props} || '}}'"""
    )
    lateral = f", LATERAL (SELECT {row}) AS p" if properties else ""
    select = f"SELECT {feature} FROM ({inner}) AS r{lateral}"  # noqa: S608 (names are ours)
    return (
        f"COPY ({select}) TO STDOUT WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')",
        params,
    )


def _copy_rows(sql: str, params: tuple) -> Iterator[bytes]:
    """The rows COPY writes, one bytes object each, in a transaction without statement_timeout.

    Runs when the response is iterated: after the view has returned, on the request's own
    connection (Django closes it at request_finished, once the response is closed).
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 0")
        with cursor.cursor.copy(sql, params) as copy:
            for row in copy:
                yield bytes(row)


def _chunked(pieces: Iterator[bytes], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """`pieces` gathered into chunks of about `size` bytes: a write to the socket per row
    would cost more than the row."""
    with closing(pieces):  # a client gone mid-export: end the COPY and its transaction now
        buffer = bytearray()
        for piece in pieces:
            buffer += piece
            if len(buffer) >= size:
                yield bytes(buffer)
                buffer.clear()
        if buffer:
            yield bytes(buffer)


def csv_rows(trees: QuerySet[Tree], columns: Sequence[str]) -> Iterator[bytes]:
    """The CSV export of `trees`, header row first, in chunks."""
    return _chunked(_copy_rows(*csv_sql(trees, columns)))


def feature_lines(trees: QuerySet[Tree], columns: Sequence[str]) -> Iterator[bytes]:
    """One GeoJSON Feature per line (newline-delimited GeoJSON), in chunks."""
    return _chunked(_copy_rows(*features_sql(trees, columns)))


def feature_collection(trees: QuerySet[Tree], columns: Sequence[str]) -> Iterator[bytes]:
    """A GeoJSON FeatureCollection of `trees`, in chunks."""

    sql, params = features_sql(trees, columns)  # now: a failure is the view's, not the stream's

    def pieces() -> Iterator[bytes]:
        yield _FEATURE_COLLECTION_HEAD
        separator = b""
        with closing(_copy_rows(sql, params)) as lines:
            for line in lines:  # a Feature and its "\n"
                yield separator
                yield line
                separator = b","
        yield _FEATURE_COLLECTION_TAIL

    return _chunked(pieces())


def gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """`chunks` as one gzip stream, compressed chunk by chunk (never the whole at once)."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
    with closing(chunks):
        for chunk in chunks:
            if compressed := compressor.compress(chunk):
                yield compressed
    yield compressor.flush()
