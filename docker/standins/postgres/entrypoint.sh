#!/bin/bash
# Stand-in for the official postgis/postgis image's entrypoint (scripts/docker-smoke only): what the
# nyc-trees stack relies on, nothing more. See ../README.md.
set -euo pipefail

if [ "$(id -u)" = 0 ]; then
  # Like the official image: fix the data folder's ownership as root, then run as postgres.
  mkdir -p "$PGDATA" /run/postgresql
  chown -R postgres:postgres "$PGDATA" /run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "${1:-}" != postgres ]; then
  exec "$@"
fi

user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"
password="${POSTGRES_PASSWORD:-}"
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  password="$(<"$POSTGRES_PASSWORD_FILE")"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "$password" ]; then
    echo "stand-in postgres: POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE is required" >&2
    exit 1
  fi
  echo "stand-in postgres: first start, initialising $PGDATA for user $user"
  initdb --username="$user" --pwfile=<(printf '%s\n' "$password") --encoding=UTF8 \
    --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$database" != postgres ]; then
    echo "CREATE DATABASE \"$database\";" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
fi

shift
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
