#!/usr/bin/env bash
# Test services (sourced by scripts/test.sh): each block installs a server from apt when it is
# missing, starts a throwaway instance on a free 127.0.0.1 port, exports the URL the tests
# read, and registers its shutdown in `services_stop`.
set -euo pipefail

SERVICES_STOP=()
services_stop() {
  local cmd
  for cmd in "${SERVICES_STOP[@]}"; do eval "$cmd" || true; done
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# BEGIN services: postgres
# END services: postgres
# BEGIN services: redis
# Starts a throwaway redis-server on a free 127.0.0.1 port (installing redis-server and
# redis-tools from apt when missing) and exports MILLRACE_TEST_REDIS_URL for the tests.
start_redis() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null \
    || ! command -v redis-benchmark >/dev/null; then
    apt_install redis-server redis-tools
  fi
  local port dir i
  port=$(free_port)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/millrace-redis.XXXXXX")
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
  for i in $(seq 1 100); do
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then break; fi
    if [ "$i" = 100 ]; then
      echo "redis-server did not answer on port $port; log:" >&2
      cat "$dir/redis.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  export MILLRACE_TEST_REDIS_URL="redis://127.0.0.1:$port/"
  SERVICES_STOP+=("redis-cli -p $port shutdown nosave >/dev/null 2>&1; rm -rf '$dir'")
  echo "redis-server on 127.0.0.1:$port (MILLRACE_TEST_REDIS_URL=$MILLRACE_TEST_REDIS_URL)"
}
# END services: redis
