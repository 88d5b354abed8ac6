"""Pages from a file on disk, for `sync_trees --from-file`.

Accepts what people download: the API's JSON (an array of objects) or CSV (API field
names), and the portal's bulk CSV export (display names as headers, US-style dates). The
loader maps either set of headers; this module only cuts the file into pages of
`page_size` records without reading it whole, so memory stays flat for any file size.

A file is whatever someone put on disk, so nothing in it is trusted to be small or to be
text. A record (a CSV record, or a JSON array's element) holds at most MAX_RECORD_BYTES
(1 MiB; a census row is about 600 bytes): lines are read with `readline(limit)`, so an
endless line costs no more than that, and a page holds at most MAX_PAGE_BYTES whatever
`--page-size` says. A header that is not UTF-8 text, a known binary format (gzip, ZIP,
PNG, ...) or a record over the limit ends the run with one line saying so; a bad byte
inside one row only makes that row a rejection (trees.records). A file holding no tree
is an error, never an empty census: with `--full` it would delete every tree.
"""

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from trees.exceptions import SyncError
from trees.socrata import Page

MAX_RECORD_BYTES = 1 << 20
MAX_PAGE_BYTES = 8 << 20
_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"

# What a file that is no census export at all often is, by its first bytes.
_SIGNATURES = (
    (b"\x1f\x8b", "is gzip-compressed: decompress it first"),
    (b"PK\x03\x04", "is a ZIP archive: extract the CSV or JSON from it first"),
    (b"\xfd7zXZ\x00", "is xz-compressed: decompress it first"),
    (b"\x28\xb5\x2f\xfd", "is zstd-compressed: decompress it first"),
    (b"\x89PNG", "is a PNG image, not CSV or JSON"),
    (b"%PDF", "is a PDF document, not CSV or JSON"),
    (b"SQLite format 3\x00", "is an SQLite database, not CSV or JSON"),
    (b"\xff\xfe", "is UTF-16 text: save it as UTF-8"),
    (b"\xfe\xff", "is UTF-16 text: save it as UTF-8"),
)


class _RecordTooLarge(Exception):
    """A record grew past MAX_RECORD_BYTES before it ended."""


@dataclass
class FileSource:
    path: Path
    supports_incremental: bool = False  # a file is a snapshot: there is no window to ask for

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.path.is_dir():
            raise SyncError(f"Cannot read {self.path}: it is a directory, not a file")
        if self.path.exists() and not self.path.is_file():
            # A FIFO or a device could block the run forever, or never end.
            raise SyncError(f"Cannot read {self.path}: not a regular file (a FIFO or device?)")
        if not self.path.is_file():
            raise SyncError(f"Cannot read {self.path}: no such file")

    @property
    def description(self) -> str:
        return str(self.path.resolve())

    def count(self, *, where: str | None = None) -> int | None:
        return None  # counting would mean reading the file twice

    def pages(self, *, where, order, page_size, max_rows, expected_total) -> Iterator[Page]:
        """The file's pages; raises SyncError (inside the run, so it is recorded) if unusable."""
        if where is not None:
            raise SyncError("A file cannot be synced incrementally; use --full or omit it")
        try:
            reader = self._csv_pages if self._detect_format() == "csv" else self._json_pages
        except OSError as exc:
            raise SyncError(self._unreadable(exc)) from exc
        return self._reading(reader(page_size=page_size, max_rows=max_rows))

    def _reading(self, pages: Iterator[Page]) -> Iterator[Page]:
        # The file can go away, or the disk fail, after the run began: one clear line.
        try:
            yield from pages
        except OSError as exc:
            raise SyncError(self._unreadable(exc)) from exc

    def _unreadable(self, exc: OSError) -> str:
        return f"Cannot read {self.path}: {exc.strerror or exc}"

    def _detect_format(self) -> str:
        with self.path.open("rb") as file:
            head = file.read(4096)
        for signature, what in _SIGNATURES:
            if head.startswith(signature):
                raise SyncError(f"{self.path} {what}")
        start = head.removeprefix(_BOM).lstrip(b" \t\r\n")
        if not start:
            raise SyncError(f"{self.path} is empty: it holds no trees")
        if start.startswith(b"["):
            return "json"
        if start.startswith(b"{") and self._not_csv(head) is None:
            raise SyncError(f"{self.path} holds one JSON object, not a JSON array of rows")
        if self.path.suffix.lower() == ".json":
            raise SyncError(f"{self.path} is not a JSON array of rows")
        return "csv"

    def _csv_pages(self, *, page_size: int, max_rows: int | None) -> Iterator[Page]:
        """Cut at record boundaries: a newline ends a record only outside quotes."""
        with self.path.open("rb") as file:
            try:
                header = _read_record(file)
            except _RecordTooLarge as exc:
                problem = self._not_csv(exc.args[0]) or self._too_large("the header line")
                raise SyncError(problem) from None
            header = header.removeprefix(_BOM)
            if not header.strip():
                raise SyncError(f"{self.path} is empty: it holds no trees")
            problem = self._not_csv(header)
            if problem:
                raise SyncError(problem)
            fields = tuple(self._parse_header(header))
            offset, at_end = 0, False
            while not at_end and (max_rows is None or offset < max_rows):
                wanted = page_size if max_rows is None else min(page_size, max_rows - offset)
                records: list[bytes] = []
                size = 0
                while len(records) < wanted and size < MAX_PAGE_BYTES:
                    try:
                        record = _read_record(file)
                    except _RecordTooLarge:
                        raise SyncError(
                            self._too_large(f"row {offset + len(records) + 1}")
                        ) from None
                    if not record:
                        at_end = True
                        break
                    if record.strip():
                        records.append(record if record.endswith(b"\n") else record + b"\n")
                        size += len(record)
                if not records:
                    break
                yield Page(
                    offset=offset,
                    row_count=len(records),
                    fields=fields,
                    body=header + b"".join(records),
                    format="csv",
                )
                offset += len(records)
            if offset == 0:
                raise SyncError(f"{self.path} holds no trees: a header and no rows")

    def _not_csv(self, first_line: bytes) -> str | None:
        """Why the first line cannot be a CSV header, if it cannot."""
        if b"\x00" in first_line:
            return f"{self.path} is not a CSV or JSON file: it holds NUL bytes (binary data?)"
        try:
            first_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data":  # not just a character cut in two
                return f"{self.path} is not a CSV or JSON file: its first line is not UTF-8 text"
        return None

    def _parse_header(self, line: bytes) -> list[str]:
        try:
            return next(csv.reader([line.decode("utf-8").rstrip("\r\n")]))
        except csv.Error as exc:
            raise SyncError(f"{self.path}: the header line is not CSV ({exc})") from None

    def _too_large(self, what: str) -> str:
        return (
            f"{self.path}: {what} is larger than {MAX_RECORD_BYTES >> 20} MiB, the most a row "
            "may hold (an unclosed quote? is this the census as CSV or JSON?)"
        )

    def _json_pages(self, *, page_size: int, max_rows: int | None) -> Iterator[Page]:
        """Pages of the array's elements, each as the file spells it (bad bytes included)."""
        offset = 0
        rows: list[bytes] = []
        size = 0
        seen_fields: dict[str, None] = {}
        for row, text in self._iter_json_array():
            if not isinstance(row, dict):
                raise SyncError(f"{self.path}: row {offset + len(rows) + 1} is not an object")
            seen_fields.update(dict.fromkeys(row))
            rows.append(text.encode("utf-8", "surrogateescape"))
            size += len(rows[-1])
            if (
                len(rows) == page_size
                or size >= MAX_PAGE_BYTES
                or (max_rows and offset + len(rows) >= max_rows)
            ):
                yield self._json_page(offset, rows, seen_fields)
                offset += len(rows)
                rows, size = [], 0
                if max_rows and offset >= max_rows:
                    return
        if rows:
            yield self._json_page(offset, rows, seen_fields)
        elif offset == 0:
            raise SyncError(f"{self.path} holds no trees: an empty JSON array")

    @staticmethod
    def _json_page(offset: int, rows: list[bytes], fields: dict[str, None]) -> Page:
        body = b"[" + b",\n".join(rows) + b"]"
        return Page(
            offset=offset, row_count=len(rows), fields=tuple(fields), body=body, format="json"
        )

    def _iter_json_array(self) -> Iterator[tuple[object, str]]:
        """Decode the elements of a top-level JSON array one at a time, with their text.

        Undecodable bytes are kept as surrogate escapes, to be found and rejected per row.
        """
        decoder = json.JSONDecoder()
        with self.path.open("r", encoding="utf-8-sig", errors="surrogateescape") as file:
            buffer = file.read(_CHUNK).lstrip()
            if not buffer.startswith("["):
                raise SyncError(f"{self.path} is not a JSON array of rows")
            position, index = 1, 0
            while True:
                position = _skip(buffer, position, " \t\r\n,")
                if position < len(buffer) and buffer[position] == "]":
                    return
                try:
                    if position >= len(buffer):
                        raise json.JSONDecodeError("need more", buffer, position)
                    item, end = decoder.raw_decode(buffer, position)
                except json.JSONDecodeError as exc:
                    # Most likely the element continues in the next chunk: read on and retry,
                    # but never past the most a row may hold.
                    if len(buffer) - position > MAX_RECORD_BYTES:
                        if "Unterminated" in exc.msg or exc.pos - position >= MAX_RECORD_BYTES:
                            raise SyncError(self._too_large(f"row {index + 1}")) from None
                        raise SyncError(
                            f"{self.path}: row {index + 1} is not valid JSON ({exc.msg})"
                        ) from None
                    more = file.read(_CHUNK)
                    if not more:
                        raise SyncError(
                            f"{self.path} is not a complete JSON array: {exc.msg}"
                        ) from None
                    buffer, position = buffer[position:] + more, 0
                    continue
                if end - position > MAX_RECORD_BYTES:
                    raise SyncError(self._too_large(f"row {index + 1}"))
                yield item, buffer[position:end]
                position, index = end, index + 1


def _read_record(file: BinaryIO) -> bytes:
    """One CSV record, which may span lines when a quoted field holds a newline.

    Never reads more than MAX_RECORD_BYTES + 1 bytes: past that, raises _RecordTooLarge
    (with what it read), however long the line is on disk.
    """
    record, quotes = b"", 0
    while True:
        line = file.readline(MAX_RECORD_BYTES + 1 - len(record))
        record += line
        if len(record) > MAX_RECORD_BYTES:
            raise _RecordTooLarge(record[:4096])
        quotes += line.count(b'"')
        if not line.endswith(b"\n") or quotes % 2 == 0:
            return record  # the end of the file, or of the record


def _skip(text: str, position: int, characters: str) -> int:
    while position < len(text) and text[position] in characters:
        position += 1
    return position
