"""gunicorn configuration, read from the environment so the image and `make serve` share it."""

import json
import os

import gunicorn.util

# gthread, not sync: a sync worker tells the arbiter it is alive only between requests, so
# one response that takes longer than `timeout` to send (an export read by a slow client) is
# killed mid-body. A gthread worker's main loop keeps beating while its threads serve
# (tests/api/test_export_server.py). With one thread it serves one request at a time, as
# sync does.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
accesslog = "-" if os.environ.get("GUNICORN_ACCESS_LOG", "false").lower() == "true" else None
errorlog = "-"
# Bound what a client can send: the API is read-only, requests are small. Past these gunicorn
# answers 414 or 431 itself (request line, header count and size; tests/security/test_limits.py);
# Django bounds bodies and query strings (DATA_UPLOAD_MAX_* in config/settings.py).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# gunicorn believes X-Forwarded-Proto from 127.0.0.1 by default, so a client on the same host
# could claim HTTPS. Django alone decides, and only with TRUST_X_FORWARDED_PROTO.
secure_scheme_headers: dict[str, str] = {}


def _json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own error responses (414, 431, a malformed request, a worker's crash) in the
    API's JSON error shape, instead of gunicorn's HTML page: a client of the API reads one
    shape whatever answers it. Only the limit messages are kept (they quote nothing of the
    request); any other would echo the request line or a header."""
    detail = mesg if status_int in (414, 431) else reason
    body = json.dumps({"status": status_int, "detail": f"{detail.rstrip('.')}."}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


# gunicorn.workers.base calls util.write_error for every error it answers itself.
gunicorn.util.write_error = _json_error
