#!/usr/bin/env bash
# Stops the process `scripts/up.sh` started, letting it drain.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${TASKFLOW_DATA:-.data}"
if [ -f "$DATA/taskflow.pid" ]; then
  pid="$(cat "$DATA/taskflow.pid")"
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "taskflow stopped"
  fi
  rm -f "$DATA/taskflow.pid"
fi
