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
# END services: redis
