#!/usr/bin/env bash
# Drops the databases that earlier test runs left behind (prefixes tft_ and tfb_): each
# test drops its own at the end, but not when it failed half-way.
set -euo pipefail
cd "$(dirname "$0")/.."
# psql connects to the maintenance database of DATABASE_URL's server.
admin="$(python3 - "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}" <<'PY'
import sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(url._replace(path="/postgres")))
PY
)"
psql="$(scripts/postgres.sh psql)"
for db in $("$psql" "$admin" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'tft\_%' OR datname LIKE 'tfb\_%'"); do
  "$psql" "$admin" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
done
