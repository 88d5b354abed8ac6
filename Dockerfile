# nyc-trees: gunicorn serving the map, the API and the admin, static files collected at build time.
# PYTHON_IMAGE exists so a check without a registry can build on a local stand-in base
# (scripts/docker-smoke); a real build uses the default.
ARG PYTHON_IMAGE=python:3.13-slim

# --- build: a virtualenv with the pinned requirements -----------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# MapLibre GL JS for the map page, from the npm registry, checked against its pinned sha512
# (the script fails the build on a mismatch or a network error). First, so that a change of
# requirements does not download it again.
COPY scripts/vendor_maplibre.py /tmp/vendor_maplibre.py
RUN python3 /tmp/vendor_maplibre.py --dest /opt/maplibre-gl

# `python3`, not `python`: a plain Debian base has no `python` alias.
RUN python3 -m venv /opt/venv

# Requirements before the code, so a code change reuses this layer instead of reinstalling.
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir --requirement /tmp/requirements.txt

# --- runtime: the virtualenv and the code, nothing else ---------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE
LABEL org.opencontainers.image.title="nyc-trees" \
      org.opencontainers.image.description="NYC Street Tree Census mirrored from Socrata into PostgreSQL, served as a cached REST API and the Django admin" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH="/opt/venv/bin:${PATH}"

# A fixed, unprivileged uid, so volume and secret permissions can be reasoned about.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv

# The code stays owned by root: the app user can read it but not change it.
WORKDIR /app
COPY manage.py ./
COPY config ./config
COPY trees ./trees
# The vendored copy stays out of the build context (.dockerignore): the build stage's is used.
COPY --from=build /opt/maplibre-gl ./trees/static/vendor/maplibre-gl
COPY docker/entrypoint.sh ./docker/entrypoint.sh

# DEBUG=true only lets the settings load without a SECRET_KEY; collectstatic uses no key,
# and no secret is ever needed (or stored) at build time.
RUN DEBUG=true python manage.py collectstatic --noinput --verbosity 0

# Numeric, so a runtime (Kubernetes' runAsNonRoot) can tell it is not root without /etc/passwd.
USER 10001:10001
EXPOSE 8000

# Liveness only: /healthz touches neither Postgres nor Redis. Python, as slim has no curl; an
# HTTP error or refused connection raises, so the exit code is non-zero. No spaces inside the
# arguments: podman's Docker API splits exec-form arguments on them.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "__import__('urllib.request').request.urlopen('http://127.0.0.1:8000/healthz',timeout=4)"]

ENTRYPOINT ["/app/docker/entrypoint.sh"]
# Workers, threads and timeouts come from GUNICORN_* variables (config/gunicorn.py).
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--config", "config/gunicorn.py"]
