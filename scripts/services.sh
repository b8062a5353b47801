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

# PostgreSQL binaries directory (newest installed major version), or nothing.
postgres_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; fi
}

# Runs a command as the `postgres` user when we are root (the server refuses to run as root).
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Starts a throwaway PostgreSQL cluster on a free 127.0.0.1 port (trust auth, no fsync: test
# data only) and exports MILLRACE_TEST_POSTGRES_URL for the adapters' SQL tests.
start_postgres() {
  local bindir dir port
  bindir=$(postgres_bindir)
  if [ -z "$bindir" ]; then
    echo "start_postgres: installing postgresql from apt" >&2
    apt_install postgresql
    bindir=$(postgres_bindir)
    if [ -z "$bindir" ]; then
      echo "start_postgres: no initdb/pg_ctl under /usr/lib/postgresql/*/bin after install" >&2
      return 1
    fi
  fi
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres
  fi
  dir=$(mktemp -d /tmp/millrace-postgres.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  port=$(free_port)
  as_postgres "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  # -k: the Unix socket goes to our temp dir, not /var/run/postgresql; -F: no fsync.
  as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -F" start >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }
  SERVICES_STOP+=("as_postgres '$bindir/pg_ctl' -D '$dir/data' -m fast -w stop >/dev/null; rm -rf '$dir'")
  as_postgres "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres millrace_test
  export MILLRACE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/millrace_test"
  echo "start_postgres: PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)" >&2
}
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
