"""SODA 2.1 client for Socrata: HTTP, paging and retries. It knows nothing about our models.

The sync streams `Page.body` straight into Postgres `COPY`, so this module hands back the raw
bytes of each page after checking, cheaply, that they are whole: the stdlib `csv` reader counts
the records and checks that each has as many fields as the header (about 0.15 s for a page of
50,000 census rows); a JSON page must parse as an array of objects, which builds every row's
dict once (about 0.3-0.45 s and 200 MB more memory for the same page; orjson measured no faster
here), so CSV is the format for bulk loads. Pages are fetched by key under `$order` (rows
come in no stable order without it, and an offset shifts when rows change during a run; see
`iter_pages`) and yielded one at a time, so memory does not grow with the dataset.

Why one retry loop and not urllib3's `Retry` on the adapter: most of what goes wrong with a
large page is only visible after urllib3 has handed the response over: a body cut short (the
Content-Length check fails while the body is read), JSON that does not parse, a CSV record
with a field missing, a last row without the key the next page starts from. Those need a
loop around the request anyway. Putting the status and connection failures (202, 429, 5xx, resets,
timeouts) in the same loop gives one attempt budget (`max_attempts` HTTP requests per call, not
`max_attempts` squared), one place that honours `Retry-After` with a cap, and one log line per
retry carrying the `X-Socrata-RequestId`. The adapter therefore keeps requests' default of no
retries of its own.

Backoff: attempt n waits between half and all of `min(backoff_max, backoff_factor * 2**(n-1))`
seconds (jitter, so many clients do not retry in step), or what `Retry-After` says, capped by
`retry_after_max`. With the defaults a call gives up after 6 requests and about 8-16 s of
waiting.

The app token travels only in the `X-App-Token` header. It is never put in a URL or a log
line, and every message built here is scrubbed of it, in case a server echoes it back.
"""

import csv
import io
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit, urlunsplit

import requests

logger = logging.getLogger(__name__)

#: The API's largest `$limit` (larger pages get a 400 "length must be <= 50000").
MAX_PAGE_SIZE = 50_000
#: Statuses worth another try: still processing (202), throttled (429), server trouble.
RETRYABLE_STATUSES = frozenset({202, 429, 500, 502, 503, 504})
USER_AGENT = f"nyc-trees/0.1 (NYC street tree census mirror) {requests.utils.default_user_agent()}"
EXCERPT_CHARS = 200
FORMATS = ("csv", "json")
#: The orders `iter_pages` can page through by key, and the system fields of each key.
KEYSET_ORDERS = {":id": (":id",), ":updated_at,:id": (":updated_at", ":id")}

#: A row's place in a keyset order: (`:updated_at` or None, `:id`), as the server sent them.
type Key = tuple[str | None, str]

#: Query parameter names that carry credentials: their values appear in no message or log.
SECRET_PARAM_NAME = re.compile(r"(?i)token|key|passw|pwd|secret|signature|sig|auth|credential")
_SECRET_PARAM = re.compile(
    r"(?i)(?P<name>[?&;][^=&#\s]*?(?:token|key|passw|pwd|secret|signature|sig|auth|credential)"
    r"[^=&#\s]*=)[^&#\s'\"]+"
)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s?#]+@")


def redact_url_secrets(text: str) -> str:
    """`text` with every URL credential in it replaced: `user:pass@`, and the value of
    any query parameter whose name looks like one (`$$app_token`, `key`, `password`...).

    For anything that may hold a URL: messages, log lines (config/logging.py), records.
    """
    text = _USERINFO.sub(r"\g<scheme>[redacted]@", text)
    return _SECRET_PARAM.sub(r"\g<name>[redacted]", text)


@dataclass(frozen=True)
class Page:
    """One validated page, as the server sent it."""

    offset: int  # position of the page's first row in this fetch (rows before it)
    row_count: int  # records in the page (CSV records, not lines; JSON array length)
    fields: tuple[str, ...]  # CSV header, or JSON X-SODA2-Fields (else keys in first-seen order)
    body: bytes  # the raw body: CSV including its header line, or the JSON array
    format: str  # "csv" or "json"
    last_id: str | None = None  # the last row's `:id`: where the next page starts
    last_updated_at: str | None = None  # the last row's `:updated_at`, as sent


class SocrataError(Exception):
    """A request to Socrata failed. `str(exc)` never contains the app token."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.request_id = request_id


class SocrataUnavailable(SocrataError):
    """Socrata could not be reached, or kept answering 202/429/5xx until we gave up."""


class SocrataBadResponse(SocrataError):
    """Socrata refused the request (4xx), or kept sending bodies that were not whole."""


class SocrataSchemaError(SocrataBadResponse):
    """A column the query names does not exist any more: the dataset's schema changed."""


def soql_quote(value: str) -> str:
    """A SoQL text literal: single quotes, an embedded quote doubled (not backslashed)."""
    return "'" + value.replace("'", "''") + "'"


class _InvalidBody(Exception):
    """The body of a 200 response is not whole or not what was asked for."""


class _Retryable(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, error: SocrataError, *, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class SocrataClient:
    """Reads one Socrata domain. Not thread-safe: use one client per thread."""

    def __init__(
        self,
        base_url: str,
        *,
        app_token: str | None = None,
        format: str = "csv",
        connect_timeout: float = 10,
        read_timeout: float = 120,
        max_attempts: int = 6,
        backoff_factor: float = 0.5,
        backoff_max: float = 60,
        retry_after_max: float = 120,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, not {base_url!r}")
        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        # Credentials written into the URL (an app token in the query, `user:pass@`) are
        # taken out of it: the token goes in the header like one given on its own, the
        # login into the session, other parameters into every request; and every value of
        # them is scrubbed from what this client says, so none reaches a log or a SyncRun.
        parts = urlsplit(base_url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        url_token = next((value for name, value in query if name == "$$app_token"), None)
        extra = {name: value for name, value in query if name != "$$app_token"}
        host = parts.netloc.rpartition("@")[2]
        self.base_url = urlunsplit((parts.scheme, host, parts.path, "", "")).rstrip("/")
        self.format = format
        self.max_attempts = max_attempts
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self._timeout = (connect_timeout, read_timeout)
        self._token = app_token or url_token or None
        self._secrets = [
            secret
            for secret in (
                parts.password and unquote(parts.password),
                url_token,
                *(value for name, value in extra.items() if SECRET_PARAM_NAME.search(name)),
            )
            if secret and secret != self._token
        ]
        self._sleep = sleep
        self._random = random.Random()  # noqa: S311 - jitter, not cryptography
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        if self._token:
            self._session.headers["X-App-Token"] = self._token
        if parts.username is not None:
            self._session.auth = (unquote(parts.username), unquote(parts.password or ""))
        self._session.params = extra

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def resource_url(self, dataset: str) -> str:
        return f"{self.base_url}/resource/{dataset}.{self.format}"

    def count(self, dataset: str, *, where: str | None = None) -> int:
        """Rows in the dataset (matching `where`), from `$select=count(*)`."""
        params = {"$select": "count(*)"}
        if where:
            params["$where"] = where
        # Always JSON: one tiny object, whatever format the pages use.
        url = f"{self.base_url}/resource/{dataset}.json"
        return self._get(url, params, lambda response: _parse_count(response.content))

    def newest_updated_at(self, dataset: str) -> str | None:
        """The largest `:updated_at` of any row, as Socrata writes it (None: no rows)."""
        params: dict[str, str | int] = {"$select": "max(:updated_at) AS newest"}
        # Always JSON, as for count(): one tiny object.
        url = f"{self.base_url}/resource/{dataset}.json"
        try:
            return self._get(url, params, lambda response: _parse_newest(response.content))
        except SocrataBadResponse as exc:
            if exc.status != 400:
                raise
        # A portal that will not aggregate a system field still orders by it (every
        # incremental query does): the newest row's stamp is the same answer.
        logger.warning("Socrata refused max(:updated_at); asking for the newest row instead")
        params = {"$select": ":updated_at", "$order": ":updated_at DESC", "$limit": 1}
        return self._get(url, params, lambda response: _parse_newest(response.content))

    def iter_pages(
        self,
        dataset: str,
        *,
        where: str | None = None,
        order: str = ":id",
        page_size: int = 50_000,
        max_rows: int | None = None,
        expected_total: int | None = None,
    ) -> Iterator[Page]:
        """Yield the dataset page by page, with its system fields (`$select=:*,*`).

        Keyset paging, never `$offset`: each page asks for the rows after the last one the
        previous page ended with (`order` `:id`: `:id > 'last'`; `:updated_at,:id`:
        `(:updated_at > 'T' OR (:updated_at = 'T' AND :id > 'last'))`), ANDed with `where`.
        While the portal changes under a run, an offset shifts (a deleted row makes the
        next page skip one, an updated row moving to the end of an `:updated_at` order makes
        it repeat one); a key does not move, so no row that stays put is skipped or seen
        twice, and a row updated during an incremental run moves past the cursor, to be
        seen again in its newer version.

        Stops after a page with fewer rows than asked for, or once `max_rows` rows came (the
        last page then asks only for the rest). At least one page is yielded (unless
        `max_rows` is 0), even an empty one, which still names the fields; an empty page after
        full ones is not yielded.

        `expected_total` (from `count()`) arms the short-page guard: a close-delimited
        response cut exactly between two records looks like a valid, short, last page, so
        while fewer rows than expected came, a short page is followed by one more request
        after its last key. Only an empty answer to that one ends the fetch early (rows
        deleted upstream since the count make exactly that happen, once).
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
        if max_rows is not None and max_rows < 0:
            raise ValueError(f"max_rows must not be negative, not {max_rows}")
        if not order:
            raise ValueError("order is required: without $order, pages may skip or repeat rows")
        if order not in KEYSET_ORDERS:
            raise ValueError(f"order must be one of {sorted(KEYSET_ORDERS)} (keyset paging)")
        url = self.resource_url(dataset)
        fetched = 0
        cursor: Key | None = None
        confirmed: Key | bool | None = False  # the cursor a short page was followed from
        while True:
            limit = page_size if max_rows is None else min(page_size, max_rows - fetched)
            if limit <= 0:
                return
            params: dict[str, str | int] = {"$select": ":*,*"}
            conditions = [f"({where})" if cursor and where else where, _after(order, cursor)]
            conditions = [condition for condition in conditions if condition]
            if conditions:
                params["$where"] = " AND ".join(conditions)
            params.update({"$order": order, "$limit": limit})
            parse = partial(self._parse_page, offset=fetched, limit=limit, order=order)
            page = self._get(url, params, parse)
            if page.row_count or fetched == 0:
                yield page
            fetched += page.row_count
            if page.row_count:
                key = (page.last_updated_at, page.last_id)
                if key == cursor:
                    raise SocrataBadResponse(
                        f"GET {url}: the page after {cursor} ended at the same row again; "
                        "the server does not apply the keyset condition",
                        url=url,
                    )
                cursor = key
            if page.row_count == limit:
                continue
            more_expected = expected_total is not None and fetched < expected_total
            if not more_expected or confirmed == cursor:
                return
            logger.info(
                "Socrata: a short page (%d of %d rows) after %d of %d rows; asking once more",
                page.row_count,
                limit,
                fetched,
                expected_total,
            )
            confirmed = cursor

    # --- one request, with retries -------------------------------------------------------

    def _get[T](
        self,
        url: str,
        params: dict,
        parse: Callable[[requests.Response], T],
    ) -> T:
        """GET `url` until `parse` accepts a 200 response, within `max_attempts` requests.

        `parse(response)` raises `_InvalidBody` to ask for another try.
        """
        for attempt in range(1, self.max_attempts + 1):
            final = attempt == self.max_attempts
            try:
                return self._attempt(url, params, parse)
            except _Retryable as failure:
                if final:
                    error = failure.error
                    gave_up = type(error)(
                        f"{error} (gave up after {attempt} attempts)",
                        url=error.url,
                        status=error.status,
                        request_id=error.request_id,
                    )
                    logger.error("Socrata: %s", gave_up)
                    raise gave_up from failure.__cause__
                delay = self._delay(attempt, failure.retry_after)
                logger.warning(
                    "Socrata: %s; retrying in %.1f s (attempt %d of %d)",
                    failure.error,
                    delay,
                    attempt,
                    self.max_attempts,
                )
                self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _attempt[T](
        self,
        url: str,
        params: dict,
        parse: Callable[[requests.Response], T],
    ) -> T:
        """One request: return the parsed result, or raise `_Retryable` or a `SocrataError`."""
        shown = self._redact(
            unquote_plus(requests.Request("GET", url, params=params).prepare().url)
        )
        try:
            response = self._session.get(url, params=params, timeout=self._timeout)
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            # The headers came, the body did not arrive whole (Content-Length not reached,
            # connection reset mid-body, broken gzip).
            error = SocrataBadResponse(
                f"GET {shown}: the response body was cut off or corrupt ({self._reason(exc)})",
                url=shown,
            )
            raise _Retryable(error) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            error = SocrataUnavailable(
                f"GET {shown}: could not get a response ({self._reason(exc)})", url=shown
            )
            raise _Retryable(error) from exc
        except requests.RequestException as exc:  # e.g. too many redirects: another try won't help
            raise SocrataBadResponse(
                f"GET {shown}: request failed ({self._reason(exc)})", url=shown
            ) from exc

        status = response.status_code
        if status == 200:
            try:
                return parse(response)
            except _InvalidBody as exc:
                error = self._error(SocrataBadResponse, f"invalid body: {exc}", shown, response)
                raise _Retryable(error) from exc
        http_error = requests.HTTPError(f"HTTP {status}", response=response)
        if status in RETRYABLE_STATUSES:
            what = "still processing" if status == 202 else response.reason or "server error"
            error = self._error(SocrataUnavailable, what, shown, response)
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            raise _Retryable(error, retry_after=retry_after) from http_error
        kind, what = self._refusal(response)
        error = self._error(kind, what, shown, response)
        logger.error("Socrata: %s", error)
        raise error from http_error

    def _refusal(self, response: requests.Response) -> tuple[type[SocrataError], str]:
        """What a status that another try will not change means."""
        status = response.status_code
        code, message = _error_code(response)
        detail = ": ".join(part for part in (code, message) if part)
        if code == "query.soql.no-such-column":
            return SocrataSchemaError, f"the dataset's schema changed: {detail}"
        if status == 400:
            return SocrataBadResponse, f"Socrata rejected the query: {detail or 'no reason given'}"
        if status in (401, 403):
            if self._token:
                return SocrataBadResponse, "Socrata rejected the app token"
            return SocrataBadResponse, "Socrata refused access without an app token"
        if status == 404:
            return SocrataBadResponse, "no such dataset (or it was retired)"
        return SocrataBadResponse, f"unexpected response: {response.reason}"

    def _error[E: SocrataError](
        self, kind: type[E], what: str, shown: str, response: requests.Response
    ) -> E:
        """An error naming the URL, the status, the request id and the start of the body."""
        status = response.status_code
        request_id = response.headers.get("X-Socrata-RequestId")
        where = f"HTTP {status}" + (f", X-Socrata-RequestId {request_id}" if request_id else "")
        # Scrub before cutting and quoting, so no part of an echoed token survives either.
        head = response.content[: EXCERPT_CHARS + len(self._token or "")]
        excerpt = self._redact(head.decode("utf-8", "replace"))[:EXCERPT_CHARS]
        message = self._redact(f"GET {shown}: {what} ({where}); body: {excerpt!r}")
        return kind(message, url=shown, status=status, request_id=request_id)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        ceiling = min(self.backoff_max, self.backoff_factor * 2 ** (attempt - 1))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    def _redact(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "[app token]")
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return redact_url_secrets(text)

    def _reason(self, exc: BaseException) -> str:
        # requests wraps urllib3's MaxRetryError, whose `.reason` is the readable part.
        inner = exc.args[0] if exc.args else exc
        reason = getattr(inner, "reason", inner)
        return self._redact(f"{type(exc).__name__}: {reason}")

    # --- body checks ---------------------------------------------------------------------

    def _parse_page(
        self,
        response: requests.Response,
        *,
        offset: int,
        limit: int,
        order: str,
    ) -> Page:
        body = response.content
        if "text/html" in response.headers.get("Content-Type", ""):
            raise _InvalidBody("an HTML page instead of data (a proxy's error page?)")
        if self.format == "csv":
            fields, row_count, last = _check_csv(body)
        else:
            fields, row_count, last = _check_json(body, response.headers.get("X-SODA2-Fields"))
        if row_count > limit:
            raise _InvalidBody(f"{row_count} rows, but only {limit} were asked for")
        last_id = last_updated_at = None
        if row_count:
            last_id, last_updated_at = last.get(":id"), last.get(":updated_at")
            for name in KEYSET_ORDERS[order]:
                if not last.get(name):
                    raise _InvalidBody(f"the last row has no {name}, so no next page can follow")
        return Page(
            offset=offset,
            row_count=row_count,
            fields=fields,
            body=body,
            format=self.format,
            last_id=last_id,
            last_updated_at=last_updated_at,
        )


def _after(order: str, cursor: "Key | None") -> str | None:
    """The SoQL condition for the rows after `cursor` in `order` (None: from the start)."""
    if cursor is None:
        return None
    updated_at, row_id = cursor
    after_id = f":id > {soql_quote(row_id)}"
    if order == ":id":
        return after_id
    # Socrata's timestamp literal is UTC without the zone (as the watermark's).
    stamp = soql_quote((updated_at or "").removesuffix("Z"))
    return f"(:updated_at > {stamp} OR (:updated_at = {stamp} AND {after_id}))"


def _check_csv(body: bytes) -> tuple[tuple[str, ...], int, dict[str, str]]:
    """The header, the number of records and the last record (by field); every record must
    be as wide as the header."""
    # The C csv reader, fed line by line from a decoding wrapper over the same bytes (no
    # second full copy). strict=True turns an unterminated quote (a cut body) into an error.
    # A bad byte in a value is that row's problem, not the page's (trees.records): kept.
    text = io.TextIOWrapper(
        io.BytesIO(body), encoding="utf-8", errors="surrogateescape", newline=""
    )
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise _InvalidBody("a CSV body without a header row")
        width = len(header)
        row_count = 0
        record: list[str] = []
        for record in reader:
            row_count += 1
            if len(record) != width:
                raise _InvalidBody(
                    f"CSV record {row_count} has {len(record)} fields, the header has {width}"
                )
    except csv.Error as exc:
        raise _InvalidBody(f"unreadable CSV: {exc}") from exc
    return tuple(header), row_count, dict(zip(header, record, strict=False))


def _check_json(
    body: bytes, fields_header: str | None
) -> tuple[tuple[str, ...], int, dict[str, str]]:
    """The fields, the number of rows and the last row; the body must be a JSON array of
    objects."""
    try:
        # A bad byte in a value is that row's problem, not the page's (trees.records).
        rows = json.loads(body.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise _InvalidBody(f"JSON that does not parse: {exc}") from exc
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise _InvalidBody("JSON that is not an array of objects")
    fields = _fields_from_header(fields_header)
    if fields is None:
        # SODA leaves out null keys, so one row may not name every field: take the union.
        fields = tuple(dict.fromkeys(key for row in rows for key in row))
    return fields, len(rows), rows[-1] if rows else {}


def _fields_from_header(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    try:
        fields = json.loads(value)
    except ValueError:
        return None
    if isinstance(fields, list) and all(isinstance(field, str) for field in fields):
        return tuple(fields)
    return None


def _parse_count(body: bytes) -> int:
    """`[{"count": "683788"}]`; the key depends on the alias (count, count_1, ...)."""
    try:
        rows = json.loads(body)
        (row,) = rows
        (value,) = row.values()
        return int(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise _InvalidBody("a count that is not one object with one integer") from exc


def _parse_newest(body: bytes) -> str | None:
    """`[{"newest": "2023-10-09T10:02:32.402Z"}]` (no value if no rows), or the newest row's
    `[{":updated_at": "..."}]` (`[]` if no rows)."""
    try:
        rows = json.loads(body)
        if rows == []:
            return None
        (row,) = rows
        values = list(row.values())
    except (ValueError, TypeError, AttributeError) as exc:
        raise _InvalidBody("a max(:updated_at) that is not one object") from exc
    if not values:
        return None
    (value,) = values
    if not isinstance(value, str) or not value:
        raise _InvalidBody("a max(:updated_at) that is not one timestamp")
    return value


def _error_code(response: requests.Response) -> tuple[str | None, str | None]:
    """Socrata's error code and message: parse errors use `code`, semantic ones `errorCode`."""
    try:
        data = response.json()
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    code = data.get("errorCode") or data.get("code")
    message = data.get("message")
    return (str(code) if code else None), (str(message) if message else None)


def _retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
