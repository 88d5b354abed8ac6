"""The fake dataset behind the fake SODA server: its rows, changes, schema and SoQL.

Rows are never all in memory: each is regenerated from its index (`census.py`); changed,
added and corrupted rows are kept in full, deleted ones as a set of indices, and a republish
as one floor under every `:updated_at`. The sorted order of each (where, order) and the
encoded body of each query are cached, and every change drops both caches. The HTTP side,
faults and the public API are in `soda.py`.
"""

import bisect
import csv
import functools
import hashlib
import io
import json
import random
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate

from tests.fakes.census import FIELD_TYPES, FIELDS, generate_row, index_of_tree_id, tree_id_of

DEFAULT_LIMIT = 1000
MAX_LIMIT = 50_000
SYSTEM_FIELDS = (":id", ":created_at", ":updated_at", ":version")

#: Display names: the portal's bulk CSV headers (and the metadata's `name`), where they differ.
DISPLAY_NAMES = {
    "zipcode": "postcode",
    "cb_num": "community board",
    "boroname": "borough",
    "council_district": "council district",
    "census_tract": "census tract",
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
    op: str  # = != > >= < <= or "in"
    value: object  # int (timestamps in µs), float (numbers) or str; a tuple of them for "in"


@dataclass(frozen=True)
class AnyOf:
    """Terms joined by OR."""

    terms: tuple["Term", ...]


@dataclass(frozen=True)
class AllOf:
    """Terms joined by AND (inside parentheses; the top level is a plain tuple)."""

    terms: tuple["Term", ...]


Term = Condition | AnyOf | AllOf


@dataclass(frozen=True)
class Query:
    fmt: str
    select: tuple[str, ...]  # served names; empty for a count
    count_alias: str | None  # the answer's one key, for an aggregate (count or max)
    where: tuple[Term, ...]  # joined by AND
    order: tuple[tuple[str, bool], ...]  # (canonical name, descending)
    limit: int
    offset: int
    max_of: str | None = None  # `max(field)` instead of `count(*)` (canonical name)


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


_TOKEN = re.compile(
    r"\s*(?:(?P<literal>'(?:[^']|'')*'|-?\d+(?:\.\d+)?)|(?P<op>>=|<=|!=|<>|=|>|<)"
    r"|(?P<punct>[(),])|(?P<word>:?[A-Za-z_]\w*))"
)
_AGGREGATE = re.compile(
    r"\s*(?:count\s*\(\s*\*\s*\)|max\s*\(\s*(?P<max>:?[A-Za-z_]\w*)\s*\))"
    r"(?:\s+as\s+(?P<alias>[A-Za-z_]\w*))?\s*",
    re.IGNORECASE,
)

_ORDER_ITEM = re.compile(r"\s*(:?[A-Za-z_]\w*)(?:\s+(asc|desc))?\s*", re.IGNORECASE)
_SORTABLE = {":id", ":updated_at", ":created_at", "tree_id"}


def is_count(select: str) -> bool:
    """Whether a `$select` asks for one aggregate, `count(*)` or `max(field)`, not rows."""
    return bool(_AGGREGATE.fullmatch(select))


# --- the dataset: rows, overlays, schema, queries ------------------------------------------


class FakeDataset:
    """The rows one fake dataset holds, and how queries over them are answered."""

    def __init__(self, *, rows: int, seed: int, cache_bytes: int) -> None:
        self.seed = seed
        self._salt = _mix60(seed + 1)
        self._total = rows  # indices 0..total-1 ever existed; deleted ones are in _deleted
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
        self._orders: dict[tuple, object] = {}  # sorted indices, and keyset starts in them
        self.ignores_order = False  # a broken server: $order parsed, rows served shuffled

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

    def update(
        self, indices: Iterable[int], changes: Mapping[str, str | None] | None, *, touch=True
    ) -> None:
        """Apply `changes` (None: the value becomes null) to rows; `touch` gives them all one
        new `:updated_at`. Without changes, the trunk (or stump) diameter grows by an inch."""
        unknown = set(changes or ()) - set(FIELDS)
        if unknown:
            raise ValueError(f"not fields of the dataset: {sorted(unknown)}")
        stamp = self.tick() if touch else None
        for index in indices:
            row = self.row(index)
            if changes:
                for name, value in changes.items():
                    if value is None:
                        row.pop(name, None)
                    else:
                        row[name] = value
            else:
                grown = "stump_diam" if row.get("status") == "Stump" else "tree_dbh"
                row[grown] = str(int(row.get(grown) or 0) + 1)
            if stamp:
                row[":updated_at"] = stamp
                row[":version"] = "rv-" + _code(_mix60(self.id_number(index) ^ _ms(stamp)))
            self._stored[index] = row
        self.changed()

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
        select_text = params.get("$select", "*")
        select, count_alias = self._parse_select(select_text)
        aggregate = _AGGREGATE.fullmatch(select_text)
        max_of = self._canonical(aggregate["max"]) if aggregate and aggregate["max"] else None
        if max_of not in (None, ":updated_at", ":created_at"):
            raise _malformed(f"the fake takes max() of system timestamps only, not {max_of}")
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
        return Query(fmt, select, count_alias, where, order, limit, offset, max_of)

    def _parse_select(self, text: str) -> tuple[tuple[str, ...], str | None]:
        aggregate = _AGGREGATE.fullmatch(text)
        if aggregate:
            if aggregate["max"]:
                return (), aggregate["alias"] or f"max_{aggregate['max'].lstrip(':')}"
            return (), aggregate["alias"] or "count"
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

    def _parse_where(self, text: str) -> tuple[Term, ...]:
        """Comparisons and `IN (...)` lists, joined by AND and OR, grouped by parentheses."""
        if not text.strip():
            return ()
        tokens = _tokenize(text)
        term, position = self._parse_or(tokens, 0, text)
        if position != len(tokens):
            raise _malformed(f"unexpected {tokens[position][1]!r} in $where: {text!r}")
        return term.terms if isinstance(term, AllOf) else (term,)

    def _parse_or(self, tokens: list, position: int, text: str) -> tuple[Term, int]:
        terms = []
        while True:
            term, position = self._parse_and(tokens, position, text)
            terms.append(term)
            if not _is_word(tokens, position, "or"):
                break
            position += 1
        return (terms[0] if len(terms) == 1 else AnyOf(tuple(terms))), position

    def _parse_and(self, tokens: list, position: int, text: str) -> tuple[Term, int]:
        terms: list[Term] = []
        while True:
            term, position = self._parse_atom(tokens, position, text)
            terms += term.terms if isinstance(term, AllOf) else [term]
            if not _is_word(tokens, position, "and"):
                break
            position += 1
        return (terms[0] if len(terms) == 1 else AllOf(tuple(terms))), position

    def _parse_atom(self, tokens: list, position: int, text: str) -> tuple[Term, int]:
        kind, value = tokens[position] if position < len(tokens) else (None, None)
        if (kind, value) == ("punct", "("):
            term, position = self._parse_or(tokens, position + 1, text)
            if tokens[position : position + 1] != [("punct", ")")]:
                raise _malformed(f"a parenthesis is not closed in $where: {text!r}")
            return term, position + 1
        if kind != "word" or value.lower() in ("and", "or", "in"):
            raise _malformed(f"expected a column in $where, got {value!r}: {text!r}")
        served = value
        position += 1
        if _is_word(tokens, position, "in"):
            if tokens[position + 1 : position + 2] != [("punct", "(")]:
                raise _malformed(f"IN needs a parenthesised list in $where: {text!r}")
            literals, position = [], position + 2
            while True:
                if position >= len(tokens) or tokens[position][0] != "literal":
                    raise _malformed(f"IN lists only literals in $where: {text!r}")
                literals.append(tokens[position][1])
                position += 1
                if tokens[position : position + 1] == [("punct", ",")]:
                    position += 1
                    continue
                if tokens[position : position + 1] == [("punct", ")")]:
                    break
                raise _malformed(f"an IN list is not closed in $where: {text!r}")
            values = tuple(self._condition(served, "=", lit).value for lit in literals)
            return Condition(self._canonical(served), "in", values), position + 1
        if position + 1 >= len(tokens) or tokens[position][0] != "op":
            raise _malformed(f"expected a comparison after {served!r} in $where: {text!r}")
        if tokens[position + 1][0] != "literal":
            raise _malformed(f"expected a literal after {served!r} in $where: {text!r}")
        condition = self._condition(served, tokens[position][1], tokens[position + 1][1])
        return condition, position + 2

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

    def matching(self, where: tuple[Term, ...], order: tuple) -> list[int]:
        """Live indices that satisfy `where`, sorted by `order` (cached until a change)."""
        ordered, start = self.keyset(where, order)
        return ordered[start:] if start else ordered

    def keyset(self, where: tuple[Term, ...], order: tuple) -> tuple[list[int], int]:
        """The rows matching `where` as (rows in order, position of the first).

        Terms on `:id` are a keyset cursor ("after this row"): rows that satisfy one are a
        tail of the order, so the tail's start is found by bisection in the cached order of
        the other terms, and `start` says how many matching rows the cursor passed over
        (fault offsets count from there). A term on `:id` that is not such a bound
        (`:id < 'x'`) is answered by a plain scan, still exactly.
        """
        base = tuple(term for term in where if ":id" not in _fields_of(term))
        cursor = tuple(term for term in where if ":id" in _fields_of(term))
        ordered = self._ordered(base, order)
        if not cursor:
            return ordered, 0
        cached = self._orders.get(("keyset", where, order))
        if cached is not None:
            return cached
        self._orders[("keyset", where, order)] = found = self._find_keyset(ordered, cursor)
        return found

    def _find_keyset(self, ordered: list[int], cursor: tuple[Term, ...]) -> tuple[list[int], int]:
        start = bisect.bisect_left(ordered, True, key=lambda index: self._satisfies(index, cursor))
        if (
            (start == 0 or not self._satisfies(ordered[0], cursor))
            and all(self._satisfies(index, cursor) for index in ordered[start : start + 1000])
            and (start == len(ordered) or self._satisfies(ordered[-1], cursor))
        ):
            return ordered, start
        return [index for index in ordered if self._satisfies(index, cursor)], 0

    def position(self, query: Query) -> int:
        """Where a page request starts in its result: its `$offset` past the keyset cursor."""
        return self.keyset(query.where, query.order)[1] + query.offset

    def _ordered(self, where: tuple[Term, ...], order: tuple) -> list[int]:
        key = (where, order)
        cached = self._orders.get(key)
        if cached is not None:
            return cached
        candidates = self._candidates(where)
        indices = [index for index in candidates if self._satisfies(index, where)]
        for name, descending in reversed(order):  # stable sorts, last key first
            indices.sort(key=self._sort_key(name), reverse=descending)
        if self.ignores_order:
            random.Random(len(indices)).shuffle(indices)
        self._orders[key] = indices
        return indices

    def _candidates(self, where: tuple[Term, ...]) -> Iterable[int]:
        """Where no unchanged row can match (`:updated_at >` a recent watermark), only the
        changed and added rows need checking: incremental queries stay fast at full size.
        Likewise `tree_id IN (...)` needs only those trees' rows (and changed ones)."""
        updated = [c for c in where if isinstance(c, Condition) and c.field == ":updated_at"]
        if updated:
            base_values = {self._lift(ts) for _, ts in _BASE_UPDATES}
            if not any(
                all(_compare(_timestamp_us(value), c.op, c.value) for c in updated)
                for value in base_values
            ):
                return sorted(self._stored)  # deleted rows are never stored
        for term in where:
            if isinstance(term, Condition) and term.field == "tree_id" and term.op == "in":
                indices = {index_of_tree_id(int(v)) for v in term.value if float(v).is_integer()}
                indices = {i for i in indices if i is not None and i < self._total}
                indices |= set(self._stored)
                return sorted(indices - self._deleted)
        return self.live_indices()

    def _count_by_updated_at(self, where: tuple[Term, ...]) -> int | None:
        """A count of the rows no newer than a moment (`:updated_at <= 'T'`, maybe after a
        lower bound) as all such rows less the newer ones, which only changed rows can be
        (see `_candidates`): a sync's end-of-run check asks this, and must not cost the
        benchmark a scan of every row."""
        upper = [
            term
            for term in where
            if isinstance(term, Condition)
            and term.field == ":updated_at"
            and term.op in ("<", "<=")
        ]
        rest = tuple(term for term in where if term not in upper)
        if len(upper) != 1 or not all(
            isinstance(term, Condition) and term.field == ":updated_at" and term.op in (">", ">=")
            for term in rest
        ):
            return None
        newer = Condition(":updated_at", ">" if upper[0].op == "<=" else ">=", upper[0].value)
        matching = len(self.matching(rest, ())) if rest else self._total - len(self._deleted)
        return matching - len(self.matching((*rest, newer), ()))

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

    def _satisfies(self, index: int, where: tuple[Term, ...]) -> bool:
        return all(self._holds(index, term) for term in where)

    def _holds(self, index: int, term: Term) -> bool:
        if isinstance(term, AnyOf):
            return any(self._holds(index, inner) for inner in term.terms)
        if isinstance(term, AllOf):
            return all(self._holds(index, inner) for inner in term.terms)
        actual = self._actual(index, term)
        if actual is None:
            return False
        if term.op == "in":
            return actual in term.value
        return _compare(actual, term.op, term.value)

    def _actual(self, index: int, condition: Condition) -> object:
        """The row's value of the condition's field, typed as the condition's literal."""
        if condition.field == ":updated_at":
            return _timestamp_us(self.updated_at(index))
        if condition.field == "tree_id":
            return self.tree_id(index)
        if condition.field == ":id":
            stored = self._stored.get(index)
            return stored[":id"] if stored is not None else _row_id(self.id_number(index))
        raw = self.row(index).get(condition.field)
        sample = condition.value
        if condition.op == "in":
            sample = condition.value[0] if condition.value else None
        if raw is not None and isinstance(sample, (int, float)):
            try:
                return parse_timestamp_us(raw) if isinstance(sample, int) else float(raw)
            except ValueError:
                return None
        return raw

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
        if query.max_of:
            fields, types = [query.count_alias], [self._type_of(query.max_of)]
            if query.max_of == ":updated_at" and not query.where:
                newest = self._newest_updated_at()
            else:
                key = self._sort_key(query.max_of)
                newest = max((key(i) for i in self.matching(query.where, ())), default=None)
            rows: Iterable[list[str | None]] = [[newest if newest is None else str(newest)]]
        elif query.count_alias:
            fields, types = [query.count_alias], ["number"]
            count = self._count_by_updated_at(query.where)
            if count is None:
                count = len(self.matching(query.where, query.order))
            rows = [[str(count)]]
        else:
            columns = [self._schema[name] for name in query.select]
            fields, types = [c.name for c in columns], [c.type for c in columns]
            ordered, start = self.keyset(query.where, query.order)
            chunk = ordered[start + query.offset : start + query.offset + query.limit]
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

    def _newest_updated_at(self) -> str | None:
        """max(:updated_at) without a scan: the changed rows' stamps, and the newest base stamp
        some unchanged live row still has (one in a few rows has each)."""
        newest = max((self.updated_at(index) for index in self._stored), default=None)
        for bucket_stamp in sorted({ts for _, ts in _BASE_UPDATES}, reverse=True):
            stamp = self._lift(bucket_stamp)
            if newest is not None and stamp <= newest:
                break
            unchanged = (i for i in self.live_indices() if i not in self._stored)
            if any(self._base_updated_at(i) == bucket_stamp for i in unchanged):
                return stamp
        return newest

    def _type_of(self, name: str) -> str:
        return next((c.type for c in self._schema.values() if c.source == name), "text")

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


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise _malformed(f"cannot parse $where at position {position}: {text!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match[kind]))
        position = match.end()
    return tokens


def _is_word(tokens: list[tuple[str, str]], position: int, word: str) -> bool:
    return (
        position < len(tokens)
        and tokens[position][0] == "word"
        and tokens[position][1].lower() == word
    )


def _fields_of(term: Term) -> set[str]:
    if isinstance(term, Condition):
        return {term.field}
    return {name for inner in term.terms for name in _fields_of(inner)}


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
        # surrogateescape: a value holding "\udcff" serves a raw 0xFF byte, as a bad export can.
        return buffer.getvalue().encode("utf-8", "surrogateescape")
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    objects = (
        dumps(
            {name: value for name, value in zip(fields, values, strict=True) if value is not None}
        )
        for values in rows
    )
    return ("[" + "\n,".join(objects) + "]\n").encode()


def error_reply(status: int, body: dict) -> Reply:
    """A Socrata-style JSON error."""
    return Reply(
        status,
        json.dumps(body, indent=2).encode() + b"\n",
        [("Content-Type", "application/json; charset=UTF-8")],
    )
