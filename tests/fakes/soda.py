"""A fake SODA 2.1 server: real HTTP on a local port, census-like rows, switchable faults.

Used in-process by the test suite (the `soda_server` fixture), and as a process by the
benchmark and the Docker smoke test:

    python -m tests.fakes.soda --rows 683788 --port 8765 [--host 0.0.0.0] [--seed N]
                               [--app-token T] [--dataset uvpi-gqnh] [--cache-mb 1024]

It prints its URL on stdout once listening and serves until killed.

What it imitates (see ../shared/SOCRATA.md): `GET /resource/<id>.json|.csv` with `$select`
(`:*,*`, `*`, field lists, `count(*) [AS x]`), `$where` (comparisons and `IN (...)` lists,
joined by AND and OR, grouped by parentheses; timestamps compared as instants, `:id` as
text), `$order` (`:id`, `:updated_at,:id`, `tree_id`, ... ASC/DESC), `$limit` (default 1000,
at most 50,000) and `$offset`, plus `field=value` filters and
`$$app_token`; `GET /api/views/<id>.json` metadata. Every value is a string; JSON leaves null
keys out, CSV leaves null fields empty (other values are quoted); `X-SODA2-Fields`/`-Types`,
`ETag`, `Last-Modified` and `X-Socrata-RequestId` headers; Socrata-style error bodies (`code`
for parse errors, `errorCode` for semantic ones).

The benchmark serves 683,788 rows and must time the sync, not this server: rows are
regenerated from their index instead of held in memory, and encoded pages are cached until the
data changes (see `dataset.py`), so a repeated pass costs only socket writes. Responses use
HTTP/1.1 keep-alive and Content-Length.

Faults are queued through methods (`fail`, `respond_with`, `drop_connection`, `truncate_body`,
`short_page`, `break_record`, `slow`, `hold`); each is consumed by the next `times` matching
`/resource` requests. A fault with `offset=None` matches any of them (a count too); with
`offset=N` only page requests whose first row is row N of their result: `$offset=N`, or, for
keyset paging (`$where=... AND :id > 'x'`), the page that starts N rows past the start of
the same query without its `:id` cursor. Data changes (`update_rows`, `add_rows`,
`delete_rows`, `republish`, `corrupt_rows`) and schema switches (`rename_columns`,
`drop_columns`, `add_columns`) apply at once and stay; `on_page_request` runs a change when
the Nth page request arrives, before it is answered, as the real portal changes under a
sync that is paging.
"""

import argparse
import contextlib
import csv
import json
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, urlsplit

from tests.fakes.census import FIELDS
from tests.fakes.dataset import (
    DISPLAY_NAMES,
    FakeDataset,
    QueryError,
    Reply,
    error_reply,
    is_count,
)

DEFAULT_DATASET = "uvpi-gqnh"
#: The three columns whose API names public code disagrees on, and their other names.
DISPUTED_NAMES = {"zipcode": "postcode", "boroname": "borough", "cb_num": "community_board"}

#: Bad values `corrupt_rows` can plant: valid HTTP and CSV/JSON, unusable rows.
MALFORMATIONS = {
    "missing_tree_id": {"tree_id": None},
    "bad_dbh": {"tree_dbh": "abc"},
    "bad_status": {"status": "Sleeping"},
    "zero_latitude": {"latitude": "0"},
    "bad_date": {"created_at": "2015-13-45T00:00:00.000"},
}


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
    hold: "Hold | None" = None  # for kind "hold"


@dataclass
class Hold:
    """A request held by `FakeSodaServer.hold`: `arrived` once it came, answered on `release()`."""

    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


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
        self._page_hooks: list[list] = []  # [requests still to wait for, callback]
        self.page_requests = 0  # page (not count) requests answered or refused so far
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
        """Data fields of each row with an integer tree_id, keyed by it.

        Under the API's own names (`zipcode`, `boroname`, ...) whatever `rename_columns`
        serves; no system fields. Values are raw strings: typing them is the sync's job.
        """
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
        with self._lock:
            indices = self._data.pick(which)
            tree_ids = [self._data.tree_id(index) or 0 for index in indices]
            self._data.update(indices, changes or None)
            return tree_ids

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
            ordered = self._data.matching((), ((":id", False),))
            tree_ids = []
            for position, kind in positions.items():
                index = ordered[position]
                tree_ids.append(self._data.tree_id(index) or 0)
                self._data.update([index], MALFORMATIONS[kind], touch=False)
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

    def hold(self, *, offset: int | None = None) -> Hold:
        """Hold the next matching request until `release()`: something can happen meanwhile."""
        held = Hold()
        self._add_fault(Fault("hold", 1, offset, hold=held))
        return held

    def ignore_order(self, ignore: bool = True) -> None:
        """A broken server (or proxy) that applies `$where` and `$limit` but serves the rows
        in no particular order: a keyset cursor then passes over rows it never served."""
        with self._lock:
            self._data.ignores_order = ignore
            self._data.changed()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._page_hooks.clear()

    def on_page_request(self, callback: Callable[[Self], object], *, nth: int = 1) -> None:
        """Call `callback(server)` when the `nth` page request from now arrives (a count is
        no page), before that request is answered or a fault hits it. Runs once."""
        if nth < 1:
            raise ValueError("nth counts from 1")
        with self._lock:
            self._page_hooks.append([nth, callback])

    @property
    def pending_page_hooks(self) -> int:
        with self._lock:
            return len(self._page_hooks)

    def _run_page_hooks(self) -> None:
        with self._lock:
            self.page_requests += 1
            due = []
            for hook in list(self._page_hooks):
                hook[0] -= 1
                if hook[0] <= 0:
                    self._page_hooks.remove(hook)
                    due.append(hook[1])
            for callback in due:
                callback(self)

    @property
    def pending_faults(self) -> int:
        """How many more requests the queued faults will hit."""
        with self._lock:
            return sum(fault.times for fault in self._faults)

    def _add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, offset: int | None, count: bool) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and (
                    fault.offset is None or (not count and fault.offset == offset)
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
            return self._send(handler, error_reply(403, body), request_id)

        resource = re.fullmatch(r"/resource/([\w-]+)\.(json|csv)", parts.path)
        view = re.fullmatch(r"/api/views/([\w-]+)\.json", parts.path)
        dataset = (resource or view)[1] if (resource or view) else None
        if dataset != self.dataset:
            body = {"code": "not_found", "error": True, "message": f"Not found: {parts.path}"}
            return self._send(handler, error_reply(404, body), request_id)
        if view:
            with self._lock:
                metadata = self._data.metadata(self.dataset)
            reply = Reply(
                200, json.dumps(metadata).encode(), [("Content-Type", "application/json")]
            )
            return self._send(handler, reply, request_id)

        fmt = resource[2]
        count = is_count(params.get("$select", ""))
        if not count:
            self._run_page_hooks()
        with self._lock:
            try:
                query = self._data.parse(fmt, params)
                # A count takes only faults without an offset: no need to find its start.
                position = 0 if count else self._data.position(query)
                error = None
            except QueryError as exc:
                query, error = None, exc
                position = int(params["$offset"]) if params.get("$offset", "").isdigit() else 0
        fault = self._take_fault(position, count)
        if fault and fault.kind == "slow":
            self._stopping.wait(fault.seconds)
        if fault and fault.hold:
            fault.hold.arrived.set()
            while not fault.hold.released.wait(0.05) and not self._stopping.is_set():
                pass
        if fault and fault.reply:
            return self._send(handler, fault.reply, request_id)
        if fault and fault.kind == "drop":
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            handler.close_connection = True
            return None

        with self._lock:
            if error is not None:
                reply = error_reply(error.status, error.body)
            else:
                if fault and fault.kind == "short_page" and not query.count_alias:
                    query = replace(query, limit=min(query.limit, fault.rows))
                reply = self._data.render(query, headers)
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
