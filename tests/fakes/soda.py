"""A fake SODA 2.1 server: real HTTP on a local port, census-like rows, switchable faults.

Used in-process by the test suite (the `soda_server` fixture), and as a process by the
benchmark and the Docker smoke test:

    python -m tests.fakes.soda --rows 683788 --port 8765 [--host 0.0.0.0] [--seed N]
                               [--app-token T] [--dataset uvpi-gqnh] [--cache-mb 1024]

It prints its URL on stdout once listening and serves until killed.

What it imitates (see ../shared/SOCRATA.md): `GET /resource/<id>.json|.csv` with `$select`
(`:*,*`, `*`, field lists, `count(*) [AS x]`), `$where` (comparisons joined by AND;
timestamps compared as instants), `$order` (`:id`, `:updated_at,:id`, `tree_id`, ... ASC/DESC),
`$limit` (default 1000, at most 50,000) and `$offset`, plus `field=value` filters and
`$$app_token`; `GET /api/views/<id>.json` metadata. Every value is a string; JSON leaves null
keys out, CSV leaves null fields empty (other values are quoted); `X-SODA2-Fields`/`-Types`,
`ETag`, `Last-Modified` and `X-Socrata-RequestId` headers; Socrata-style error bodies (`code`
for parse errors, `errorCode` for semantic ones).

Why it is built this way: the benchmark serves 683,788 rows and must time the sync, not this
server. Rows are never all in memory: each is regenerated from its index (`census.py`), and
changes live in small overlays (changed and added rows in full, deleted indices, a republish
floor for `:updated_at`). The sorted row order of each (where, order) and the encoded body of
each query are cached, and every change to the data or the schema drops both caches, so a
repeated pass costs only socket writes.

Faults are queued through methods (`fail`, `drop_connection`, `truncate_body`, `short_page`,
`break_record`, `slow`); each is consumed by the next `times` matching `/resource` requests.
A fault with `offset=None` matches any of them (a count too); with `offset=N` it matches only
page requests at `$offset=N`.
"""

import argparse
import contextlib
import csv
import functools
import hashlib
import io
import json
import random
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, urlsplit

from tests.fakes.census import FIELD_TYPES, FIELDS, generate_row, index_of_tree_id, tree_id_of

DEFAULT_DATASET = "uvpi-gqnh"
DEFAULT_LIMIT = 1000
MAX_LIMIT = 50_000
SYSTEM_FIELDS = (":id", ":created_at", ":updated_at", ":version")

#: The three columns whose API names public code disagrees on, and their other names.
DISPUTED_NAMES = {"zipcode": "postcode", "boroname": "borough", "cb_num": "community_board"}

#: Display names: the portal's bulk CSV headers (and the metadata's `name`), where they differ.
DISPLAY_NAMES = {
    "zipcode": "postcode",
    "cb_num": "community board",
    "boroname": "borough",
    "council_district": "council district",
    "census_tract": "census tract",
}

#: Bad values `corrupt_rows` can plant: valid HTTP and CSV/JSON, unusable rows.
MALFORMATIONS = {
    "missing_tree_id": {"tree_id": None},
    "bad_dbh": {"tree_dbh": "abc"},
    "bad_status": {"status": "Sleeping"},
    "zero_latitude": {"latitude": "0"},
    "bad_date": {"created_at": "2015-13-45T00:00:00.000"},
}

# Base rows were published in three batches; later changes tick an hour at a time from there.
_PUBLISHED = "2017-02-16T14:21:07.118Z"
_BASE_UPDATES = (
    (80, _PUBLISHED),
    (95, "2019-11-05T18:30:41.552Z"),
    (100, "2023-10-09T10:02:32.402Z"),
)
_TICK_MS = 3_600_000 + 137

_ID_ALPHABET = "23456789abcdefghijkmnpqrstuvwxyz"  # in ASCII order: ids sort like their numbers
_MASK60 = (1 << 60) - 1


# --- small pure helpers --------------------------------------------------------------------


def _mix60(x: int) -> int:
    """A bijection on 60-bit integers (splitmix-style), so scattered ids stay unique."""
    x &= _MASK60
    x ^= x >> 31
    x = (x * 0x7FB5D329728EA185) & _MASK60
    x ^= x >> 27
    x = (x * 0x81DADEF4BC2DD44D) & _MASK60
    return x ^ (x >> 33)


_PAIRS = [a + b for a in _ID_ALPHABET for b in _ID_ALPHABET]  # 10 bits -> 2 characters


def _code(number: int) -> str:
    """12 characters for 60 bits, in an order that sorts like the numbers."""
    pairs = _PAIRS
    return (
        pairs[(number >> 50) & 1023]
        + pairs[(number >> 40) & 1023]
        + pairs[(number >> 30) & 1023]
        + pairs[(number >> 20) & 1023]
        + pairs[(number >> 10) & 1023]
        + pairs[number & 1023]
    )


def _row_id(number: int) -> str:
    code = _code(number)
    return f"row-{code[:4]}_{code[4:8]}~{code[8:]}"


_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?"
)


def parse_timestamp_us(text: str) -> int:
    """Microseconds since the epoch for a SoQL timestamp; no zone means UTC."""
    match = _TIMESTAMP.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a timestamp: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
        tzinfo=UTC,
    )  # fmt: skip
    micros = int((fraction or "0").ljust(6, "0")[:6])
    offset_minutes = 0
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset_minutes = (int(digits[:2]) * 60 + int(digits[2:])) * (1 if zone[0] == "+" else -1)
    seconds = int(moment.timestamp()) - offset_minutes * 60
    return seconds * 1_000_000 + micros


def format_timestamp_ms(ms: int) -> str:
    """A Socrata fixed timestamp: `2023-10-09T10:02:32.402Z`."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _ms(text: str) -> int:
    return parse_timestamp_us(text) // 1000


_timestamp_us = functools.lru_cache(maxsize=1024)(parse_timestamp_us)  # few distinct values


def write_bulk_csv(path: str | Path, rows: Iterable[Mapping[str, str]]) -> int:
    """Write rows (API field names) as the portal's bulk CSV download; return the count.

    That file differs from the API's CSV: display names as headers (`postcode`, `borough`,
    `community board`, ...), US dates (`08/27/2015`) for `created_at`, no system fields.
    """
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(DISPLAY_NAMES.get(name, name) for name in FIELDS)
        for row in rows:
            values = [row.get(name, "") for name in FIELDS]
            created = row.get("created_at", "")
            if re.match(r"\d{4}-\d{2}-\d{2}", created):
                values[FIELDS.index("created_at")] = (
                    f"{created[5:7]}/{created[8:10]}/{created[:4]}"
                )
            writer.writerow(values)
            count += 1
    return count


# --- queries -------------------------------------------------------------------------------


class QueryError(Exception):
    """A request the real API would refuse; carries Socrata's error body."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


def _malformed(message: str) -> QueryError:
    return QueryError(
        400, {"code": "query.compiler.malformed", "error": True, "message": message, "data": {}}
    )


def _no_such_column(name: str) -> QueryError:
    return QueryError(
        400,
        {
            "errorCode": "query.soql.no-such-column",
            "message": f"No such column: {name}",
            "data": {"column": name, "dataset": "alpha.1234"},
        },
    )


@dataclass(frozen=True)
class Condition:
    field: str  # canonical name
    op: str
    value: object  # int (timestamps in µs, numbers) or str


@dataclass(frozen=True)
class Query:
    fmt: str
    select: tuple[str, ...]  # served names; empty for a count
    count_alias: str | None
    where: tuple[Condition, ...]
    order: tuple[tuple[str, bool], ...]  # (canonical name, descending)
    limit: int
    offset: int


@dataclass(frozen=True)
class Column:
    name: str  # as served
    source: str | None  # canonical name (or system field); None for an added column
    type: str
    value: str | None = None  # an added column's constant


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]

    @property
    def app_token(self) -> str | None:
        return self.headers.get("X-App-Token") or self.query.get("$$app_token")  # title-cased


@dataclass
class Fault:
    kind: str
    times: int
    offset: int | None
    reply: Reply | None = None  # for kind "reply"
    seconds: float = 0.0  # for kind "slow"
    rows: int = 0  # for kind "short_page"


_CONDITION = re.compile(
    r"\s*(?P<field>:?[A-Za-z_]\w*)\s*(?P<op>>=|<=|!=|<>|=|>|<)\s*"
    r"(?P<value>'(?:[^']|'')*'|-?\d+(?:\.\d+)?)\s*"
)
_AND = re.compile(r"and\s+", re.IGNORECASE)
_COUNT = re.compile(r"\s*count\s*\(\s*\*\s*\)(?:\s+as\s+([A-Za-z_]\w*))?\s*", re.IGNORECASE)
_ORDER_ITEM = re.compile(r"\s*(:?[A-Za-z_]\w*)(?:\s+(asc|desc))?\s*", re.IGNORECASE)
_SORTABLE = {":id", ":updated_at", ":created_at", "tree_id"}


# --- the dataset: rows, overlays, schema, queries ------------------------------------------


class FakeDataset:
    """The rows one fake dataset holds, and how queries over them are answered."""

    def __init__(self, *, rows: int, seed: int, cache_bytes: int) -> None:
        self.seed = seed
        self._salt = _mix60(seed + 1)
        self._total = rows  # indices 0..total-1 ever existed; deleted ones are in _deleted
        self._base_rows = rows
        self._stored: dict[int, dict[str, str]] = {}  # changed, added or corrupted rows
        self._deleted: set[int] = set()
        self._floor: str | None = None  # republish(): no row's :updated_at is older
        self._clock_ms = _ms(_BASE_UPDATES[-1][1])
        self._last_modified_ms = self._clock_ms
        self._mutations = 0
        self.version = 1  # bumped by every change; part of the ETag
        self._renames: dict[str, str] = {}
        self._dropped: set[str] = set()
        self._extra: dict[str, str] = {}
        self._schema = self._build_schema()
        self._cache_bytes = cache_bytes
        self._bodies: OrderedDict[Query, Reply] = OrderedDict()
        self._bodies_size = 0
        self._orders: dict[tuple, list[int]] = {}

    # Cheap per-index facts (no row generated) --------------------------------------------

    def id_number(self, index: int) -> int:
        return _mix60(index ^ self._salt)

    def _base_updated_at(self, index: int) -> str:
        bucket = self.id_number(index) % 100
        return next(ts for limit, ts in _BASE_UPDATES if bucket < limit)

    def _lift(self, updated_at: str) -> str:
        """A republish raises every older `:updated_at` to its own."""
        if self._floor and updated_at < self._floor:  # one format: text order is time order
            return self._floor
        return updated_at

    def updated_at(self, index: int) -> str:
        stored = self._stored.get(index)
        if stored is not None:
            return self._lift(stored[":updated_at"])
        return self._lift(self._base_updated_at(index))

    def tree_id(self, index: int) -> int | None:
        stored = self._stored.get(index)
        if stored is None:
            return tree_id_of(index)
        try:
            return int(stored.get("tree_id", ""))
        except ValueError:
            return None

    def live_indices(self) -> Iterable[int]:
        if not self._deleted:
            return range(self._total)
        return (index for index in range(self._total) if index not in self._deleted)

    def row(self, index: int) -> dict[str, str]:
        """The full row: system fields and data fields under their API names."""
        stored = self._stored.get(index)
        if stored is not None:
            row = dict(stored)
        else:
            number = self.id_number(index)
            row = {
                ":id": _row_id(number),
                ":created_at": _PUBLISHED,
                ":updated_at": self._base_updated_at(index),
                ":version": "rv-" + _code(_mix60(number ^ 0x5BD1E995)),
                **generate_row(self.seed, index),
            }
        updated = self.updated_at(index)
        if row[":updated_at"] != updated:  # lifted by a republish
            row[":updated_at"] = updated
            row[":version"] = "rv-" + _code(_mix60(self.id_number(index) ^ _ms(updated)))
        return row

    def index_for_tree_id(self, tree_id: int) -> int:
        index = index_of_tree_id(tree_id)
        if index is None or index >= self._total or index in self._deleted:
            raise KeyError(f"no live row with tree_id {tree_id}")
        return index

    # Schema ------------------------------------------------------------------------------

    def _build_schema(self) -> dict[str, Column]:
        columns = [Column(name, name, "meta_data") for name in SYSTEM_FIELDS]
        for name in FIELDS:
            served = self._renames.get(name, name)
            if served not in self._dropped:
                columns.append(Column(served, name, FIELD_TYPES[name]))
        columns += [Column(name, None, "text", value) for name, value in self._extra.items()]
        return {column.name: column for column in columns}

    @property
    def columns(self) -> list[Column]:
        return list(self._schema.values())

    def set_schema(
        self,
        *,
        renames: Mapping[str, str] | None = None,
        dropped: Iterable[str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        if renames is not None:
            unknown = set(renames) - set(FIELDS)
            if unknown:
                raise ValueError(f"not fields of the dataset: {sorted(unknown)}")
            self._renames = dict(renames)
        if dropped is not None:
            self._dropped = set(dropped)
        if extra is not None:
            self._extra = dict(extra)
        self._schema = self._build_schema()
        self.changed()

    def _canonical(self, served: str) -> str:
        column = self._schema.get(served)
        if column is None or column.source is None:
            raise _no_such_column(served)
        return column.source

    # Changes -----------------------------------------------------------------------------

    def tick(self) -> str:
        self._clock_ms += _TICK_MS
        return format_timestamp_ms(self._clock_ms)

    def changed(self) -> None:
        """Forget every cached order and body; new ETag and Last-Modified."""
        self.version += 1
        self._last_modified_ms = self._clock_ms
        self._orders.clear()
        self._bodies.clear()
        self._bodies_size = 0

    def store(self, index: int, row: dict[str, str]) -> None:
        self._stored[index] = row

    def pick(self, which: int | Iterable[int]) -> list[int]:
        """Indices of the given tree_ids, or of `which` live rows chosen by the seed."""
        if isinstance(which, int):
            self._mutations += 1
            rng = random.Random((self.seed << 20) ^ self._mutations)
            live = list(self.live_indices())
            return sorted(rng.sample(live, min(which, len(live))))
        return [self.index_for_tree_id(tree_id) for tree_id in which]

    def add(self, count: int) -> list[int]:
        stamp = self.tick()
        added = []
        for index in range(self._total, self._total + count):
            number = self.id_number(index)
            self._stored[index] = {
                ":id": _row_id(number),
                ":created_at": stamp,
                ":updated_at": stamp,
                ":version": "rv-" + _code(_mix60(number ^ self._clock_ms)),
                **generate_row(self.seed, index),
            }
            added.append(index)
        self._total += count
        self.changed()
        return added

    def delete(self, indices: Iterable[int]) -> None:
        for index in indices:
            self._deleted.add(index)
            self._stored.pop(index, None)
        self.changed()

    def republish(self) -> str:
        self._floor = self.tick()
        self.changed()
        return self._floor

    @property
    def last_modified(self) -> str:
        return formatdate(self._last_modified_ms / 1000, usegmt=True)

    @property
    def last_modified_epoch(self) -> int:
        return self._last_modified_ms // 1000

    # Queries -----------------------------------------------------------------------------

    def parse(self, fmt: str, params: Mapping[str, str]) -> Query:
        unknown = [key for key in params if key.startswith("$") and key not in _KNOWN_PARAMS]
        if unknown:
            raise _malformed(f"the fake does not support {', '.join(unknown)}")
        select, count_alias = self._parse_select(params.get("$select", "*"))
        where = self._parse_where(params.get("$where", ""))
        where += tuple(
            self._condition(name, "=", _quote(value))
            for name, value in params.items()
            if not name.startswith("$")
        )
        order = self._parse_order(params.get("$order", ""))
        limit = _parse_int(params.get("$limit", str(DEFAULT_LIMIT)), "$limit")
        if limit > MAX_LIMIT:
            raise QueryError(
                400,
                {
                    "code": "query.execution.queryTooComplex",
                    "error": True,
                    "message": f"length must be <= {MAX_LIMIT}",
                    "data": {},
                },
            )
        offset = _parse_int(params.get("$offset", "0"), "$offset")
        return Query(fmt, select, count_alias, where, order, limit, offset)

    def _parse_select(self, text: str) -> tuple[tuple[str, ...], str | None]:
        count = _COUNT.fullmatch(text)
        if count:
            return (), count.group(1) or "count"
        names: list[str] = []
        for item in (part.strip() for part in text.split(",")):
            if item == ":*":
                names += SYSTEM_FIELDS
            elif item == "*":
                names += [c.name for c in self._schema.values() if not c.name.startswith(":")]
            elif item in self._schema:
                names.append(item)
            elif re.fullmatch(r":?[A-Za-z_]\w*", item):
                raise _no_such_column(item)
            else:
                raise _malformed(f"cannot parse $select: {text!r}")
        return tuple(dict.fromkeys(names)), None

    def _parse_where(self, text: str) -> tuple[Condition, ...]:
        if not text.strip():
            return ()
        conditions, position = [], 0
        while True:
            match = _CONDITION.match(text, position)
            if not match:
                raise _malformed(f"cannot parse $where at position {position}: {text!r}")
            conditions.append(self._condition(match["field"], match["op"], match["value"]))
            position = match.end()
            if position == len(text):
                return tuple(conditions)
            joiner = _AND.match(text, position)
            if not joiner:
                raise _malformed(f"expected AND at position {position}: {text!r}")
            position = joiner.end()

    def _condition(self, served: str, op: str, literal: str) -> Condition:
        name = self._canonical(served)
        kind = self._schema[served].type if served in self._schema else "text"
        text = literal[1:-1].replace("''", "'") if literal.startswith("'") else literal
        try:
            if name in (":updated_at", ":created_at") or kind == "calendar_date":
                value: object = parse_timestamp_us(text)
            elif kind == "number":
                value = float(text)
            else:
                value = text
        except ValueError as exc:
            raise QueryError(
                400,
                {
                    "errorCode": "query.soql.type-mismatch",
                    "message": f"Type mismatch for {served}, is {kind}: {literal}",
                    "data": {},
                },
            ) from exc
        return Condition(name, "!=" if op == "<>" else op, value)

    def _parse_order(self, text: str) -> tuple[tuple[str, bool], ...]:
        if not text.strip():
            return ()
        order = []
        for item in text.split(","):
            match = _ORDER_ITEM.fullmatch(item)
            if not match:
                raise _malformed(f"cannot parse $order: {text!r}")
            name = self._canonical(match[1])
            if name not in _SORTABLE:
                raise _malformed(f"the fake cannot order by {match[1]}")
            order.append((name, (match[2] or "").lower() == "desc"))
        return tuple(order)

    def matching(self, where: tuple[Condition, ...], order: tuple) -> list[int]:
        """Live indices that satisfy `where`, sorted by `order` (cached until a change)."""
        key = (where, order)
        cached = self._orders.get(key)
        if cached is not None:
            return cached
        candidates = self._candidates(where)
        indices = [index for index in candidates if self._satisfies(index, where)]
        for name, descending in reversed(order):  # stable sorts, last key first
            indices.sort(key=self._sort_key(name), reverse=descending)
        self._orders[key] = indices
        return indices

    def _candidates(self, where: tuple[Condition, ...]) -> Iterable[int]:
        """Where no unchanged row can match (`:updated_at >` a recent watermark), only the
        changed and added rows need checking: incremental queries stay fast at full size."""
        updated = [c for c in where if c.field == ":updated_at"]
        if updated:
            base_values = {self._lift(ts) for _, ts in _BASE_UPDATES}
            if not any(
                all(_compare(_timestamp_us(value), c.op, c.value) for c in updated)
                for value in base_values
            ):
                return sorted(self._stored)  # deleted rows are never stored
        return self.live_indices()

    def _sort_key(self, name: str):
        if name == ":id":
            return self.id_number
        if name == ":updated_at":
            return self.updated_at
        if name == ":created_at":
            return lambda index: self.row(index)[":created_at"]

        def by_tree_id(index: int) -> tuple[bool, int]:
            tree_id = self.tree_id(index)
            return tree_id is None, tree_id or 0

        return by_tree_id

    def _satisfies(self, index: int, where: tuple[Condition, ...]) -> bool:
        row = None
        for condition in where:
            if condition.field == ":updated_at":
                actual: object = _timestamp_us(self.updated_at(index))
            elif condition.field == "tree_id":
                actual = self.tree_id(index)
            else:
                row = row or self.row(index)
                raw = row.get(condition.field)
                actual = raw
                if raw is not None and isinstance(condition.value, (int, float)):
                    try:
                        actual = (
                            parse_timestamp_us(raw)
                            if isinstance(condition.value, int)
                            else float(raw)
                        )
                    except ValueError:
                        actual = None
            if actual is None or not _compare(actual, condition.op, condition.value):
                return False
        return True

    def render(self, query: Query, request_headers: Mapping[str, str]) -> Reply:
        """The 200 reply for a parsed query, from the cache when the data has not changed."""
        reply = self._bodies.get(query)
        if reply is None:
            reply = self._render(query)
            self._remember(query, reply)
        else:
            self._bodies.move_to_end(query)
        etag = dict(reply.headers)["ETag"]
        if request_headers.get("If-None-Match") == etag:
            return Reply(304, b"", [h for h in reply.headers if h[0] != "Content-Type"])
        return reply

    def _remember(self, query: Query, reply: Reply) -> None:
        if len(reply.body) > self._cache_bytes:
            return
        self._bodies[query] = reply
        self._bodies_size += len(reply.body)
        while self._bodies_size > self._cache_bytes:
            _, evicted = self._bodies.popitem(last=False)
            self._bodies_size -= len(evicted.body)

    def _render(self, query: Query) -> Reply:
        indices = self.matching(query.where, query.order)
        if query.count_alias:
            fields, types = [query.count_alias], ["number"]
            rows: Iterable[list[str | None]] = [[str(len(indices))]]
        else:
            columns = [self._schema[name] for name in query.select]
            fields, types = [c.name for c in columns], [c.type for c in columns]
            chunk = indices[query.offset : query.offset + query.limit]
            rows = (self.values(index, columns) for index in chunk)
        body = _encode(query.fmt, fields, rows)
        tag = hashlib.sha1(f"{self.version}:{query}".encode(), usedforsecurity=False).hexdigest()
        headers = [
            ("Content-Type", _CONTENT_TYPES[query.fmt]),
            ("ETag", f'"{tag[:24]}"'),
            ("Last-Modified", self.last_modified),
            ("X-SODA2-Fields", json.dumps(fields)),
            ("X-SODA2-Types", json.dumps(types)),
            ("X-SODA2-Truth-Last-Modified", self.last_modified),
            ("X-SODA2-Data-Out-Of-Date", "false"),
        ]
        return Reply(200, body, headers)

    def values(self, index: int, columns: list[Column]) -> list[str | None]:
        row = self.row(index)
        return [row.get(c.source) if c.source else c.value for c in columns]

    def metadata(self, dataset: str) -> dict:
        data_columns = [c for c in self._schema.values() if not c.name.startswith(":")]
        return {
            "id": dataset,
            "name": "2015 Street Tree Census - Tree Data",
            "assetType": "dataset",
            "createdAt": 1464969600,
            "publicationDate": 1487254867,
            "rowsUpdatedAt": self.last_modified_epoch,
            "viewLastModified": self.last_modified_epoch,
            "columns": [
                {
                    "id": 1000 + position,
                    "name": DISPLAY_NAMES.get(c.source or "", c.name),
                    "fieldName": c.name,
                    "dataTypeName": c.type,
                    "position": position,
                }
                for position, c in enumerate(data_columns, start=1)
            ],
        }


_KNOWN_PARAMS = {"$select", "$where", "$order", "$limit", "$offset", "$$app_token"}
_CONTENT_TYPES = {"csv": "text/csv; charset=UTF-8", "json": "application/json; charset=UTF-8"}


def _parse_int(text: str, name: str) -> int:
    if not text.strip().isdigit():
        raise _malformed(f"{name} must be a non-negative integer, not {text!r}")
    return int(text)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _compare(actual, op: str, expected) -> bool:
    if op == "=":
        return actual == expected
    if op == "!=":
        return actual != expected
    if type(actual) is not type(expected) and not (
        isinstance(actual, (int, float)) and isinstance(expected, (int, float))
    ):
        return False
    if op == ">":
        return actual > expected
    if op == ">=":
        return actual >= expected
    if op == "<":
        return actual < expected
    return actual <= expected


def _encode(fmt: str, fields: list[str], rows: Iterable[list[str | None]]) -> bytes:
    """CSV: header, quoted values, nulls as empty unquoted fields. JSON: nulls left out."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_NOTNULL, lineterminator="\n")
        writer.writerow(fields)
        writer.writerows(rows)
        return buffer.getvalue().encode()
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    objects = (
        dumps(
            {name: value for name, value in zip(fields, values, strict=True) if value is not None}
        )
        for values in rows
    )
    return ("[" + "\n,".join(objects) + "]\n").encode()


def _error_reply(status: int, body: dict) -> Reply:
    return Reply(
        status,
        json.dumps(body, indent=2).encode() + b"\n",
        [("Content-Type", "application/json; charset=UTF-8")],
    )


_STATUS_BODIES = {
    202: {"code": "processing", "message": "Your request is being processed; try again soon"},
    429: {"code": "too_many_requests", "error": True, "message": "Too many requests"},
    500: {"code": "internal_error", "error": True, "message": "Internal error"},
    502: {"code": "bad_gateway", "error": True, "message": "Bad gateway"},
    503: {"code": "service_unavailable", "error": True, "message": "Service unavailable"},
    504: {"code": "gateway_timeout", "error": True, "message": "Gateway timeout"},
}


# --- HTTP ----------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], fake: "FakeSodaServer") -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup we neither need nor have.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a sync's pages reuse one connection
    server: _HTTPServer
    timeout = 60  # an idle keep-alive connection's thread ends after this

    def setup(self) -> None:
        super().setup()
        self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        self.server.fake._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        try:
            self.server.fake._serve(self)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client went away: nothing to report

    def log_message(self, format: str, *args) -> None:
        pass  # tests read `server.requests`; stderr stays quiet


class FakeSodaServer:
    """A running fake Socrata domain serving one dataset. Thread-safe."""

    def __init__(
        self,
        *,
        rows: int = 2500,
        seed: int = 0,
        dataset: str = DEFAULT_DATASET,
        app_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        cache_bytes: int = 1 << 30,
    ) -> None:
        self.dataset = dataset
        self.app_token = app_token
        self._data = FakeDataset(rows=rows, seed=seed, cache_bytes=cache_bytes)
        self._lock = threading.RLock()
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), self)
        bound_host, self.port = self._httpd.server_address[:2]
        shown = "127.0.0.1" if bound_host in ("0.0.0.0", "", "::") else bound_host  # noqa: S104
        self.url = f"http://{shown}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread:
            self._httpd.shutdown()
        self._httpd.server_close()
        for connection in list(self._connections):
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def resource_url(self, fmt: str = "json") -> str:
        return f"{self.url}/resource/{self.dataset}.{fmt}"

    # --- what the server holds ---------------------------------------------------------

    def rows(self) -> list[dict[str, str]]:
        """Every live row as `$select=:*,*&$order=:id` serves it in JSON (absent = null)."""
        with self._lock:
            data = self._data
            columns = data.columns
            return [
                {
                    c.name: v
                    for c, v in zip(columns, data.values(i, columns), strict=True)
                    if v is not None
                }
                for i in data.matching((), ((":id", False),))
            ]

    def expected_rows(self) -> dict[int, dict[str, str]]:
        """Data fields (API names, whatever is served) of each row with an integer tree_id."""
        with self._lock:
            data = self._data
            result = {}
            for index in data.live_indices():
                tree_id = data.tree_id(index)
                if tree_id is not None:
                    row = data.row(index)
                    result[tree_id] = {k: v for k, v in row.items() if not k.startswith(":")}
            return result

    @property
    def row_count(self) -> int:
        with self._lock:
            return len(self._data.matching((), ()))

    def tree_ids(self) -> list[int]:
        with self._lock:
            return sorted(self.expected_rows())

    @property
    def last_updated_at(self) -> str:
        """The newest `:updated_at` of any row."""
        with self._lock:
            return max(self._data.updated_at(i) for i in self._data.live_indices())

    @property
    def etag_version(self) -> int:
        with self._lock:
            return self._data.version

    def write_bulk_csv(self, path: str | Path) -> int:
        """This data as the portal's bulk CSV download (see `write_bulk_csv`)."""
        with self._lock:
            rows = list(self.expected_rows().values())
        return write_bulk_csv(path, rows)

    # --- data changes between runs -----------------------------------------------------

    def update_rows(self, which: int | Iterable[int], **changes: str | None) -> list[int]:
        """Change rows and give them all one new, later `:updated_at`; return their tree_ids.

        `which` is a list of tree_ids, or a count of rows picked by the seed. `changes` maps
        API field names to new values (None: the value becomes null). Without changes, the
        trunk (or stump) diameter grows by one inch, so the data really differs.
        """
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise ValueError(f"not fields of the dataset: {sorted(unknown)}")
        with self._lock:
            data = self._data
            indices = data.pick(which)
            stamp = data.tick()
            for index in indices:
                row = data.row(index)
                if changes:
                    for name, value in changes.items():
                        if value is None:
                            row.pop(name, None)
                        else:
                            row[name] = value
                else:
                    grown = "stump_diam" if row.get("status") == "Stump" else "tree_dbh"
                    row[grown] = str(int(row.get(grown) or 0) + 1)
                row[":updated_at"] = stamp
                row[":version"] = "rv-" + _code(_mix60(data.id_number(index) ^ _ms(stamp)))
                data.store(index, row)
            data.changed()
            return [data.tree_id(index) or 0 for index in indices]

    def add_rows(self, count: int) -> list[int]:
        """Append `count` new rows (new tree_ids, a new `:updated_at`); return their tree_ids."""
        with self._lock:
            return [self._data.tree_id(index) or 0 for index in self._data.add(count)]

    def delete_rows(self, which: int | Iterable[int]) -> list[int]:
        """Remove rows (tree_ids, or a count picked by the seed); return their tree_ids.

        As on Socrata, nothing signals a delete: the rows are simply gone.
        """
        with self._lock:
            indices = self._data.pick(which)
            tree_ids = [self._data.tree_id(index) or 0 for index in indices]
            self._data.delete(indices)
            return tree_ids

    def republish(self) -> str:
        """The publisher reloads everything: every row gets one new `:updated_at`."""
        with self._lock:
            return self._data.republish()

    def corrupt_rows(self, positions: Mapping[int, str]) -> list[int]:
        """Plant bad values at rows `position` (0-based, in `:id` order); keep `:updated_at`.

        Kinds are the keys of MALFORMATIONS. Returns the rows' original tree_ids.
        """
        with self._lock:
            data = self._data
            ordered = data.matching((), ((":id", False),))
            tree_ids = []
            for position, kind in positions.items():
                index = ordered[position]
                tree_ids.append(data.tree_id(index) or 0)
                row = data.row(index)
                for name, value in MALFORMATIONS[kind].items():
                    if value is None:
                        row.pop(name, None)
                    else:
                        row[name] = value
                data.store(index, row)
            data.changed()
            return tree_ids

    # --- schema switches (each call replaces the previous setting; {} or [] resets) ------

    def rename_columns(self, renames: Mapping[str, str]) -> None:
        """Serve columns under other names, e.g. DISPUTED_NAMES (zipcode -> postcode ...)."""
        with self._lock:
            self._data.set_schema(renames=renames)

    def drop_columns(self, names: Iterable[str]) -> None:
        """Stop serving these columns (by their served names)."""
        with self._lock:
            self._data.set_schema(dropped=names)

    def add_columns(self, columns: Mapping[str, str]) -> None:
        """Serve extra, unknown columns after the others, each with a constant value."""
        with self._lock:
            self._data.set_schema(extra=columns)

    # --- faults --------------------------------------------------------------------------

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        offset: int | None = None,
        retry_after: str | float | None = None,
    ) -> None:
        """Answer with `status` (202, 429, 5xx, or any 4xx) and a Socrata-style body."""
        body = _STATUS_BODIES.get(status) or {
            "code": f"http_{status}",
            "error": True,
            "message": f"Fault injected: HTTP {status}",
        }
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        self.respond_with(status, body, headers=headers, times=times, offset=offset)

    def respond_with(
        self,
        status: int,
        body: object,
        *,
        content_type: str = "application/json; charset=UTF-8",
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        offset: int | None = None,
    ) -> None:
        """Answer with exactly this status and body (bytes as they are, anything else as JSON)."""
        raw = body if isinstance(body, bytes) else json.dumps(body, indent=2).encode()
        extra = [("Content-Type", content_type), *(headers or {}).items()]
        self._add_fault(Fault("reply", times, offset, reply=Reply(status, raw, extra)))

    def drop_connection(self, *, times: int = 1, offset: int | None = None) -> None:
        """Close the connection (with a reset) after reading the request, before answering."""
        self._add_fault(Fault("drop", times, offset))

    def truncate_body(
        self, *, times: int = 1, offset: int | None = None, content_length: bool = True
    ) -> None:
        """Send the headers and half the body, then close.

        With `content_length` the header announces the whole body (the client sees the
        mismatch); without it the response is close-delimited, so only the content shows it.
        """
        kind = "truncate" if content_length else "truncate_close"
        self._add_fault(Fault(kind, times, offset))

    def short_page(self, rows: int, *, times: int = 1, offset: int | None = None) -> None:
        """A close-delimited page cut cleanly after `rows` records: valid, just short."""
        self._add_fault(Fault("short_page", times, offset, rows=rows))

    def break_record(self, *, times: int = 1, offset: int | None = None) -> None:
        """CSV: the middle record loses its last field. JSON: one element is not an object."""
        self._add_fault(Fault("break_record", times, offset))

    def slow(self, seconds: float, *, times: int = 1, offset: int | None = None) -> None:
        """Wait `seconds` before answering (for read-timeout tests)."""
        self._add_fault(Fault("slow", times, offset, seconds=seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many more requests the queued faults will hit."""
        with self._lock:
            return sum(fault.times for fault in self._faults)

    def _add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, offset: int | None, is_count: bool) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and (
                    fault.offset is None or (not is_count and fault.offset == offset)
                ):
                    fault.times -= 1
                    if not fault.times:
                        self._faults.remove(fault)
                    return replace(fault)
        return None

    # --- what the server received --------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def app_tokens(self) -> list[str | None]:
        return [request.app_token for request in self.requests]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # --- serving ------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        params = {key: values[-1] for key, values in parse_qs(parts.query, True).items()}
        # Header names are case-insensitive; keep one spelling so lookups are simple.
        headers = {name.title(): value for name, value in handler.headers.items()}
        request = RecordedRequest(parts.path, params, parts.query, headers)
        with self._lock:
            self._requests.append(request)
        request_id = uuid.uuid4().hex[:24]

        if self.app_token and request.app_token != self.app_token:
            body = {
                "code": "permission_denied" if request.app_token else "app_token_required",
                "error": True,
                "message": "Invalid app_token specified"
                if request.app_token
                else "An app token is required",
            }
            return self._send(handler, _error_reply(403, body), request_id)

        resource = re.fullmatch(r"/resource/([\w-]+)\.(json|csv)", parts.path)
        view = re.fullmatch(r"/api/views/([\w-]+)\.json", parts.path)
        dataset = (resource or view)[1] if (resource or view) else None
        if dataset != self.dataset:
            body = {"code": "not_found", "error": True, "message": f"Not found: {parts.path}"}
            return self._send(handler, _error_reply(404, body), request_id)
        if view:
            with self._lock:
                metadata = self._data.metadata(self.dataset)
            reply = Reply(
                200, json.dumps(metadata).encode(), [("Content-Type", "application/json")]
            )
            return self._send(handler, reply, request_id)

        fmt = resource[2]
        offset = int(params["$offset"]) if params.get("$offset", "").isdigit() else 0
        is_count = bool(_COUNT.fullmatch(params.get("$select", "")))
        fault = self._take_fault(offset, is_count)
        if fault and fault.kind == "slow":
            self._stopping.wait(fault.seconds)
        if fault and fault.reply:
            return self._send(handler, fault.reply, request_id)
        if fault and fault.kind == "drop":
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            handler.close_connection = True
            return None

        with self._lock:
            try:
                query = self._data.parse(fmt, params)
                if fault and fault.kind == "short_page" and not query.count_alias:
                    query = replace(query, limit=min(query.limit, fault.rows))
                reply = self._data.render(query, headers)
            except QueryError as error:
                reply = _error_reply(error.status, error.body)
        if reply.status != 200 or not fault:
            return self._send(handler, reply, request_id)
        if fault.kind == "break_record":
            return self._send(
                handler, replace(reply, body=_break_record(fmt, reply.body)), request_id
            )
        if fault.kind == "short_page":
            return self._send(handler, reply, request_id, content_length=False)
        if fault.kind in ("truncate", "truncate_close"):
            cut = len(reply.body) // 2
            while cut > 1 and reply.body[cut - 1 : cut] == b"\n":
                cut -= 1  # never cut exactly between records
            return self._send(
                handler,
                reply,
                request_id,
                content_length=fault.kind == "truncate",
                send_bytes=cut,
            )
        return self._send(handler, reply, request_id)

    def _send(
        self,
        handler: _Handler,
        reply: Reply,
        request_id: str,
        *,
        content_length: bool = True,
        send_bytes: int | None = None,
    ) -> None:
        handler.send_response(reply.status)
        for name, value in reply.headers:
            handler.send_header(name, value)
        handler.send_header("X-Socrata-RequestId", request_id)
        close = not content_length or send_bytes is not None
        if content_length:
            handler.send_header("Content-Length", str(len(reply.body)))
        if close:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        body = reply.body if send_bytes is None else reply.body[:send_bytes]
        if body and reply.status != 304:
            handler.wfile.write(body)


def _break_record(fmt: str, body: bytes) -> bytes:
    if fmt == "csv":
        lines = body.split(b"\n")
        middle = max(1, (len(lines) - 1) // 2)  # a record, never the header
        if middle < len(lines) - 1:
            lines[middle] = lines[middle].rsplit(b",", 1)[0]
        return b"\n".join(lines)
    rows = json.loads(body)
    rows.insert(len(rows) // 2, "not an object")
    return json.dumps(rows).encode()


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.soda",
        description="Serve generated census rows like Socrata's SODA 2.1 API, until killed.",
    )
    parser.add_argument("--rows", type=int, default=683_788, help="rows to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="dataset id to serve")
    parser.add_argument("--app-token", help="require this X-App-Token")
    parser.add_argument(
        "--cache-mb", type=int, default=1024, help="memory for encoded pages (0: no cache)"
    )
    args = parser.parse_args(argv)
    server = FakeSodaServer(
        rows=args.rows,
        seed=args.seed,
        dataset=args.dataset,
        app_token=args.app_token,
        host=args.host,
        port=args.port,
        cache_bytes=args.cache_mb << 20,
    ).start()

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(server.url, flush=True)
    print(
        f"serving {args.rows} rows of {args.dataset} on {args.host}:{server.port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
