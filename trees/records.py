"""Records Postgres cannot take at all: found cheaply, replaced by placeholders, named.

Postgres text cannot hold a NUL character, and a UTF-8 database takes no invalid UTF-8:
one such byte makes the COPY of a CSV page fail as a whole ("invalid byte sequence for
encoding UTF8: 0x00"), the careful text route too, and a JSON `\\u0000` makes `->>`
fail ("unsupported Unicode escape sequence"). Every later run would fail on the same row.
So such a row is a bad row like any other: rejected with its reason, the rest of its page
loaded.

The check costs a page without bad bytes two C-speed scans (`in` and one decode), no
Python work per row. Only a page that fails them is cut into records here, and each bad
record is replaced by a placeholder that keeps the page's row count and numbering (so
rejection samples name the right row) and the tree's id when it is readable (so a full
run does not delete a tree whose row was unreadable this time, as with any rejected row).
The loader gives the placeholder the reason found here.

Neutral ground: both Socrata pages and file pages come through here, and it speaks
neither HTTP nor files.
"""

import csv
import json
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trees.socrata import Page

NUL_BYTE = "holds a NUL byte"
NOT_UTF8 = "is not valid UTF-8"
LONE_SURROGATE = "holds a lone UTF-16 surrogate escape"

_KEY_SHAPE = re.compile(r"\s*\d{1,18}\s*")  # a tree_id worth keeping: fits a bigint
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNDECODED = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a bad byte
# `\u0000`, or what may start a \uD800-\uDFFF escape (a pair is fine: checked exactly
# then). Plain `in` scans: a regular expression costs ten times more on a big page.
_JSON_SUSPECTS = (b"\\u0000", b"\\ud", b"\\uD")


@dataclass(frozen=True)
class BadRecord:
    position: int  # 1-based place of the record in its page
    tree_id: str | None  # the record's tree_id, when it is readable
    reason: str


def neutralise(page: "Page", *, key: str | None) -> tuple["Page", list[BadRecord]]:
    """The page, each record Postgres cannot take replaced by a placeholder; and those records.

    `key` is the page's header for tree_id. A clean page comes back as it is.
    """
    if page.format == "csv":
        if b"\x00" not in page.body and _is_utf8(page.body):
            return page, []
        return _neutralise_csv(page, key)
    if (
        b"\x00" not in page.body
        and not any(suspect in page.body for suspect in _JSON_SUSPECTS)
        and _is_utf8(page.body)
    ):
        return page, []
    return _neutralise_json(page, key)


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- CSV -------------------------------------------------------------------------------------


def split_records(body: bytes) -> list[bytes]:
    """CSV records with their line ends; a newline inside quotes does not end a record."""
    records, current, quotes = [], [], 0
    for line in body.splitlines(keepends=True):
        current.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            records.append(b"".join(current))
            current, quotes = [], 0
    if current:
        records.append(b"".join(current))
    return records


def _neutralise_csv(page: "Page", key: str | None) -> tuple["Page", list[BadRecord]]:
    header, *rows = split_records(page.body)
    width = len(page.fields)
    key_index = page.fields.index(key) if key in page.fields else None
    kept, bad = [header], []
    for position, record in enumerate(rows, start=1):
        values = _csv_values(record)
        reason = _csv_reason(record, values, page.fields)
        if reason is None:
            kept.append(record)
            continue
        tree_id = _readable_key(values, key_index)
        bad.append(BadRecord(position, tree_id, reason))
        placeholder = [""] * width
        if tree_id is not None and key_index is not None:
            placeholder[key_index] = tree_id
        kept.append(",".join(placeholder).encode() + b"\n")
    return replace(page, body=b"".join(kept)), bad


def _csv_values(record: bytes) -> list[str] | None:
    text = record.decode("utf-8", "surrogateescape")
    try:
        return next(csv.reader([text]), None)
    except csv.Error:  # e.g. a field over csv's limit: the record as a whole is named
        return None


def _csv_reason(record: bytes, values: list[str] | None, fields: tuple[str, ...]) -> str | None:
    if b"\x00" not in record and _is_utf8(record):
        return None
    if values is None or len(values) != len(fields):
        reasons = [NUL_BYTE] if b"\x00" in record else []
        reasons += [] if _is_utf8(record) else [NOT_UTF8]
        return "; ".join(f"the row {reason}" for reason in reasons)
    reasons = [
        reason
        for field, value in zip(fields, values, strict=True)
        if (reason := _value_reasons(field, value))
    ]
    return "; ".join(reasons) or f"the row {NUL_BYTE if b'\x00' in record else NOT_UTF8}"


# --- JSON ------------------------------------------------------------------------------------


def _neutralise_json(page: "Page", key: str | None) -> tuple["Page", list[BadRecord]]:
    rows = json.loads(page.body.decode("utf-8", "surrogateescape"))
    # In valid UTF-8, a surrogate can only come from an escape such as "\udcff".
    escaped = _is_utf8(page.body)
    kept, bad = [], []
    for position, row in enumerate(rows, start=1):
        reason = "; ".join(
            part
            for name, value in row.items()
            for part in (
                _value_reasons("a field name", name, escaped=escaped),
                _value_reasons(_clean_name(name), _as_text(value), escaped=escaped),
            )
            if part
        )
        if not reason:
            kept.append(row)
            continue
        value = row.get(key) if key is not None else None
        tree_id = value.strip() if isinstance(value, str) and _KEY_SHAPE.fullmatch(value) else None
        bad.append(BadRecord(position, tree_id, reason))
        kept.append({key: tree_id} if tree_id is not None else {})
    if not bad:
        return page, []  # only a valid surrogate pair or an escaped backslash looked odd
    body = json.dumps(kept, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return replace(page, body=body), bad


def _as_text(value: object) -> str:
    """A value's text; a nested value (a point) as JSON, NUL and surrogates left visible."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False).replace("\\u0000", "\x00")


def _clean_name(name: str) -> str:
    return _SURROGATE.sub("?", name.replace("\x00", "?"))


# --- both ------------------------------------------------------------------------------------


def _value_reasons(field: str, value: str, *, escaped: bool = False) -> str:
    reasons = []
    if "\x00" in value:
        reasons.append(f"{field} {NUL_BYTE}")
    if not escaped and _UNDECODED.search(value):
        reasons.append(f"{field} {NOT_UTF8}")
    elif _SURROGATE.search(value):
        reasons.append(f"{field} {LONE_SURROGATE}")
    return "; ".join(reasons)


def _readable_key(values: list[str] | None, key_index: int | None) -> str | None:
    if values is None or key_index is None or key_index >= len(values):
        return None
    value = values[key_index]
    return value.strip() if _KEY_SHAPE.fullmatch(value) else None
