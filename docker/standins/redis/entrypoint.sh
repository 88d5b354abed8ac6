#!/bin/sh
# Stand-in for the official redis image's entrypoint (scripts/docker-smoke only): like it, a
# server started without a config file accepts connections from the network (protected mode
# off), and runs as the redis user. See ../README.md.
set -eu

if [ "${1#-}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
  set -- "$@" --protected-mode no
  if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
