#!/usr/bin/env bash
# Drops the databases that earlier test runs left behind (prefix tft_): each
# test drops its own at the end, but not when it failed half-way.
set -euo pipefail
server="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
for db in $(psql "${server%/}/postgres" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'tft\_%'"); do
  psql "${server%/}/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
done
