#!/bin/sh
# Entrypoint of the nyc-trees image: an optional migration step, then the command
# (gunicorn by default, or whatever `docker compose run` / `docker run` passes).
#
# Compose applies migrations once, in its one-shot `migrate` service, before any app
# replica starts: replicas that each migrated at start-up would race each other on the
# same tables. A container started on its own (`docker run`) can ask for the step here.
set -eu

if [ "${MIGRATE_ON_START:-false}" = "true" ]; then
    python manage.py migrate --noinput
fi

exec "$@"
