"""Pages from a file on disk, for `sync_trees --from-file`.

Accepts what people download: the API's JSON (an array of objects) or CSV (API field
names), and the portal's bulk CSV export (display names as headers, US-style dates). The
loader maps either set of headers; this module only cuts the file into pages of
`page_size` records without reading it whole, so memory stays flat for any file size.
"""

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from trees.exceptions import SyncError
from trees.socrata import Page

_CHUNK = 1 << 20


@dataclass
class FileSource:
    path: Path
    supports_incremental: bool = False  # a file is a snapshot: there is no window to ask for

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.is_file():
            raise SyncError(f"Cannot read {self.path}: no such file")
        self.format = self._detect_format()

    @property
    def description(self) -> str:
        return str(self.path.resolve())

    def count(self, *, where: str | None = None) -> int | None:
        return None  # counting would mean reading the file twice

    def pages(self, *, where, order, page_size, max_rows, expected_total) -> Iterator[Page]:
        if where is not None:
            raise SyncError("A file cannot be synced incrementally; use --full or omit it")
        reader = self._csv_pages if self.format == "csv" else self._json_pages
        return reader(page_size=page_size, max_rows=max_rows)

    def _detect_format(self) -> str:
        with self.path.open("rb") as file:
            start = file.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        if start.startswith(b"["):
            return "json"
        if self.path.suffix.lower() == ".json":
            raise SyncError(f"{self.path} is not a JSON array of rows")
        return "csv"

    def _csv_pages(self, *, page_size: int, max_rows: int | None) -> Iterator[Page]:
        """Cut at record boundaries: a newline ends a record only outside quotes."""
        with self.path.open("rb") as file:
            header = _read_record(file)
            if not header:
                raise SyncError(f"{self.path} is empty")
            header = header.removeprefix(b"\xef\xbb\xbf")
            fields = tuple(_parse_csv_header(header))
            offset = 0
            while max_rows is None or offset < max_rows:
                wanted = page_size if max_rows is None else min(page_size, max_rows - offset)
                records = []
                while len(records) < wanted:
                    record = _read_record(file)
                    if not record:
                        break
                    if record.strip():
                        records.append(record if record.endswith(b"\n") else record + b"\n")
                if not records:
                    return
                yield Page(
                    offset=offset,
                    row_count=len(records),
                    fields=fields,
                    body=header + b"".join(records),
                    format="csv",
                )
                offset += len(records)
                if len(records) < wanted:
                    return

    def _json_pages(self, *, page_size: int, max_rows: int | None) -> Iterator[Page]:
        offset = 0
        rows: list[dict] = []
        seen_fields: dict[str, None] = {}
        for row in _iter_json_array(self.path):
            if not isinstance(row, dict):
                raise SyncError(f"{self.path}: row {offset + len(rows) + 1} is not an object")
            seen_fields.update(dict.fromkeys(row))
            rows.append(row)
            if len(rows) == page_size or (max_rows and offset + len(rows) >= max_rows):
                yield self._json_page(offset, rows, seen_fields)
                offset += len(rows)
                rows = []
                if max_rows and offset >= max_rows:
                    return
        if rows:
            yield self._json_page(offset, rows, seen_fields)

    @staticmethod
    def _json_page(offset: int, rows: list[dict], fields: dict[str, None]) -> Page:
        body = json.dumps(rows, ensure_ascii=False).encode("utf-8")
        return Page(
            offset=offset, row_count=len(rows), fields=tuple(fields), body=body, format="json"
        )


def _read_record(file) -> bytes:
    """One CSV record, which may span lines when a quoted field holds a newline."""
    record = file.readline()
    while record and record.count(b'"') % 2 == 1:
        more = file.readline()
        if not more:
            break
        record += more
    return record


def _parse_csv_header(line: bytes) -> list[str]:
    return next(csv.reader([line.decode("utf-8").rstrip("\r\n")]))


def _iter_json_array(path: Path) -> Iterator:
    """Decode the elements of a top-level JSON array one at a time."""
    decoder = json.JSONDecoder()
    with path.open("r", encoding="utf-8-sig") as file:
        buffer = file.read(_CHUNK).lstrip()
        if not buffer.startswith("["):
            raise SyncError(f"{path} is not a JSON array of rows")
        position = 1
        while True:
            position = _skip(buffer, position, " \t\r\n,")
            if position < len(buffer) and buffer[position] == "]":
                return
            try:
                if position >= len(buffer):
                    raise json.JSONDecodeError("need more", buffer, position)
                item, position = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError as exc:
                # Most likely the element continues in the next chunk: read on and retry.
                more = file.read(_CHUNK)
                if not more:
                    raise SyncError(f"{path} is not a complete JSON array: {exc}") from exc
                buffer, position = buffer[position:] + more, 0
                continue
            yield item


def _skip(text: str, position: int, characters: str) -> int:
    while position < len(text) and text[position] in characters:
        position += 1
    return position
