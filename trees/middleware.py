"""Liveness and readiness probes, answered before the rest of the stack runs.

They sit in front of every other middleware so that a container healthcheck or a load
balancer gets an answer whatever Host header it sends (ALLOWED_HOSTS), over plain HTTP
(SECURE_SSL_REDIRECT), and without touching sessions.
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.db.utils import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware import csp
from django.utils.csp import CSP, build_policy
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from trees.loader import FIRST_LOAD_LOCK_ID
from trees.sync import ADVISORY_LOCK_ID

logger = logging.getLogger(__name__)


def liveness() -> JsonResponse:
    """The process is up and serving; checks nothing else, so it never flaps with a dependency."""
    return JsonResponse({"status": "ok"})


def readiness() -> JsonResponse:
    """Ready when Postgres answers; 503 when it does not. Redis down is reported, not fatal.

    The API answers without Redis (no response cache, no throttle: trees.breaker), so a Redis
    outage makes the service slower, not unavailable: a load balancer that took every
    replica out of rotation for it would turn a degraded service into no service. It also
    says whether a sync is running ("sync"), without failing for it: the API answers during
    any sync, a first load included (that one serves the previous, empty table).
    """
    postgres, sync = _check_postgres()
    checks = {"postgres": postgres, "redis": _check_redis()}
    ready = postgres == "ok"
    status = "unavailable" if not ready else "ok" if checks["redis"] == "ok" else "degraded"
    response = JsonResponse(
        {"status": status, "checks": checks, "sync": sync}, status=200 if ready else 503
    )
    # The checks logged what is down; Django would add an ERROR line for each 503 probe.
    response._has_been_logged = True
    return response


# Postgres's lock table names a 64-bit advisory key by its two halves, per database.
# Reading pg_locks touches no table, so no lock (the tree table's included) can make the
# probe wait.
_SYNC_LOCKS_SQL = """
    SELECT count(*) FILTER (WHERE classid::bigint = %s AND objid::bigint = %s),
        count(*) FILTER (WHERE classid::bigint = %s AND objid::bigint = %s)
    FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 1 AND granted
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_SYNC_LOCKS_ARGS = [
    half
    for key in (ADVISORY_LOCK_ID, FIRST_LOAD_LOCK_ID)
    for half in (key >> 32, key & 0xFFFFFFFF)
]


def _check_postgres() -> tuple[str, str]:
    """("ok" or "down", and what the sync is doing: idle, in progress, first load, unknown).

    A failure on the connection this worker kept open is tried once more on a new one: it
    may be dead (Postgres restarted, a failover, an idle connection dropped) while Postgres
    answers. A failure to connect is not tried again (that would double the probe's wait).
    """
    reused = connection.connection is not None
    try:
        syncing, first_load = _sync_locks()
    except DatabaseError as exc:
        if not reused:
            logger.warning("Readiness: Postgres is down: %s", exc)
            return "down", "unknown"
        connection.close()
        try:
            syncing, first_load = _sync_locks()
        except DatabaseError as exc:
            logger.warning("Readiness: Postgres is down: %s", exc)
            return "down", "unknown"
    if first_load:
        return "ok", "first load in progress"
    return "ok", "in progress" if syncing else "idle"


def _sync_locks() -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(_SYNC_LOCKS_SQL, _SYNC_LOCKS_ARGS)
        return cursor.fetchone()


def _check_redis() -> str:
    try:
        # The raw client: the cache backend would swallow the error (IGNORE_EXCEPTIONS).
        get_redis_connection("default").ping()
    except RedisError as exc:
        logger.warning("Readiness: Redis is down: %s", exc)
        return "down"
    return "ok"


PROBES: dict[str, Callable[[], JsonResponse]] = {"/healthz": liveness, "/readyz": readiness}


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info.rstrip("/") or "/")
        if probe is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return JsonResponse({"detail": "Method not allowed."}, status=405)
        response = probe()
        response["Cache-Control"] = "no-store"
        return response


class ContentSecurityPolicyMiddleware(csp.ContentSecurityPolicyMiddleware):
    """Django's CSP middleware, with the policy built once instead of on every response.

    Our policy (SECURE_CSP) uses no nonce, so its header never changes; building it anew
    cost a cached API answer a fifth of its time. Views that set their own policy, or a
    policy with a nonce, still go through Django's code.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        super().__init__(get_response)
        self.header = None
        config = settings.SECURE_CSP
        if config and not settings.SECURE_CSP_REPORT_ONLY and CSP.NONCE not in str(config):
            self.header = build_policy(config)

    def process_request(self, request: HttpRequest) -> None:
        if self.header is None:
            super().process_request(request)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if self.header is None or hasattr(response, "_csp_config"):
            return super().process_response(request, response)
        if CSP.HEADER_ENFORCE not in response:
            # A plain str: WSGI servers refuse a header name of any other type, StrEnum included.
            response.headers[str(CSP.HEADER_ENFORCE)] = self.header
        return response
