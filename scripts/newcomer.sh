#!/usr/bin/env bash
# The newcomer's path, tested: on a machine where nothing answers on 5432
# (a network namespace with only its own loopback), `just up` must start its
# own Postgres and NATS, become ready and serve a create and a read, and
# `just down` must stop every process it started. What `just up` would
# fetch (crates, PyPI packages) is warmed outside first: nothing inside
# needs the network. Skipped, saying why, where namespaces are not allowed.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() { echo "newcomer: skipped: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
command -v ip >/dev/null || skip "no ip (iproute2)"
command -v just >/dev/null || skip "no just on PATH"

# Warm what `just up` uses, outside.
cargo build -q --profile local --bin taskflow
scripts/nats.sh bin >/dev/null
scripts/smtp-catcher.sh python >/dev/null
scripts/postgres.sh bin >/dev/null

ns="taskflow-newcomer-$$"
data="$(mktemp -d /tmp/taskflow-newcomer.XXXXXX)"
chmod 755 "$data"
ip netns add "$ns" 2>/dev/null || skip "cannot make a network namespace here"
inside() { ip netns exec "$ns" env -u DATABASE_URL -u NATS_URL TASKFLOW_DATA="$data" CARGO_NET_OFFLINE=true "$@"; }
cleanup() {
  inside just down >/dev/null 2>&1 || true
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns delete "$ns" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
inside ip link set lo up
if inside python3 -c 'import socket; socket.create_connection(("127.0.0.1", 5432), 1)' 2>/dev/null; then
  echo "newcomer: something answers on 5432 inside the namespace" >&2
  exit 1
fi

started=$(date +%s)
inside just up >"$data/up.log" 2>&1 || { cat "$data/up.log" >&2; exit 1; }
grep -q "started our own PostgreSQL" "$data/up.log" || {
  echo "newcomer: just up did not start its own Postgres:" >&2
  cat "$data/up.log" >&2
  exit 1
}
echo "newcomer: just up ready in $(($(date +%s) - started)) s, with its own Postgres and NATS"

inside python3 - <<'PY'
import json, urllib.request
base = "http://127.0.0.1:8080/api/v1"
def call(method, path, body=None, token=None):
    request = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", **({"authorization": "Bearer " + token} if token else {})})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.load(response)
status, user = call("POST", "/auth/register",
    {"email": "newcomer@example.com", "name": "Newcomer", "password": "correct horse battery"})
assert status == 201, status
status, task = call("POST", "/tasks", {"title": "first task"}, user["token"])
assert status == 201, status
status, page = call("GET", "/tasks", token=user["token"])
assert status == 200 and [t["id"] for t in page["items"]] == [task["id"]], page
print("newcomer: a task created and read back")
PY

inside just down >/dev/null 2>&1
left="$(ip netns pids "$ns" | wc -l)"
if [ "$left" != 0 ]; then
  echo "newcomer: just down left $left processes running:" >&2
  for pid in $(ip netns pids "$ns"); do ps -o pid=,args= -p "$pid" >&2 || true; done
  exit 1
fi
echo "newcomer: just down stopped every process it started"
