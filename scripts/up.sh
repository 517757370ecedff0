#!/usr/bin/env bash
# Starts the all-in-one `taskflow` process in the background (nats-server and
# Postgres are started before, by `scripts/nats.sh up` and
# `scripts/postgres.sh url`), waits until it is ready and prints where
# everything is.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${TASKFLOW_DATA:-.data}"
HTTP_ADDR="${TASKFLOW_HTTP_ADDR:-127.0.0.1:8080}"
TARGET="${CARGO_TARGET_DIR:-target}"
mkdir -p "$DATA"

# Running already: kept, unless the build is newer than the process (a
# change since), which then drains and starts again on the new build.
if [ -f "$DATA/taskflow.pid" ] && kill -0 "$(cat "$DATA/taskflow.pid")" 2>/dev/null; then
  if [ "$TARGET/local/taskflow" -nt "$DATA/taskflow.pid" ]; then
    echo "taskflow was built again since it started: restarting it"
    scripts/down.sh
  else
    echo "taskflow is already running (pid $(cat "$DATA/taskflow.pid")); \`just down\` stops it"
    exit 0
  fi
fi

# The process creates its databases, migrates them and creates the streams.
nohup "$TARGET/local/taskflow" >>"$DATA/taskflow.log" 2>&1 &
echo $! > "$DATA/taskflow.pid"

for _ in $(seq 150); do
  if curl -fsS "http://$HTTP_ADDR/health/ready" >/dev/null 2>&1; then
    cat <<MSG
TaskFlow is up.
  API        http://$HTTP_ADDR/api/v1
  OpenAPI    http://$HTTP_ADDR/api/v1/openapi.json
  health     http://$HTTP_ADDR/health/ready
  metrics    http://$HTTP_ADDR/metrics
  NATS       ${NATS_URL:-nats://127.0.0.1:4333}  (nats-server monitoring http://127.0.0.1:8333)
  Postgres   ${DATABASE_URL}
  logs       $DATA/taskflow.log  (\`just logs\`)
  mail       ${TASKFLOW_SMTP_URL:-none}  (caught mails: \`just mails\`)
MSG
    exit 0
  fi
  if ! kill -0 "$(cat "$DATA/taskflow.pid")" 2>/dev/null; then
    echo "taskflow exited; the end of $DATA/taskflow.log:" >&2
    tail -n 20 "$DATA/taskflow.log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "taskflow did not become ready in 30 s: see $DATA/taskflow.log" >&2
exit 1
