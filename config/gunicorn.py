"""gunicorn configuration, read from the environment so the image and `make serve` share it."""

import os

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
