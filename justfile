# TaskFlow: `just up` starts everything, `just test` runs every test.

set dotenv-load := true
set shell := ["bash", "-euo", "pipefail", "-c"]

export NATS_URL := env("NATS_URL", "nats://127.0.0.1:4333")
# Unset: `scripts/postgres.sh url` picks a server at 127.0.0.1:5432, or starts one of our own.
export DATABASE_URL := env("DATABASE_URL", "")
export TASKFLOW_HTTP_ADDR := env("TASKFLOW_HTTP_ADDR", "127.0.0.1:8080")

# List the recipes
default:
    @just --list

# Start nats-server (unless NATS_URL has one), Postgres (unless one answers), then every service in one process
up:
    cargo build --profile local --bin taskflow
    scripts/nats.sh up
    scripts/smtp-catcher.sh up
    DATABASE_URL="$(scripts/postgres.sh url)" TASKFLOW_SMTP_URL="${TASKFLOW_SMTP_URL:-smtp://127.0.0.1:1025}" scripts/up.sh

# Stop what `just up` started
down:
    scripts/down.sh
    scripts/smtp-catcher.sh down
    scripts/nats.sh down
    scripts/postgres.sh down

# Follow the services' JSON logs
logs:
    tail -n 100 -f .data/taskflow.log

# Run every test against a real nats-server and Postgres
test:
    #!/usr/bin/env bash
    set -euo pipefail
    export DATABASE_URL="$(scripts/postgres.sh url)" TASKFLOW_POSTGRES_BIN="$(scripts/postgres.sh bin)"
    export NATS_SERVER_BIN="$(scripts/nats.sh bin)" SCHEMATHESIS_BIN="$(scripts/schemathesis.sh)"
    export SMTP_CATCHER_PYTHON="$(scripts/smtp-catcher.sh python)"
    scripts/drop-test-databases.sh
    cargo build --bins
    cargo nextest run --workspace --no-fail-fast
    # Again with two instances of every service: shared durable consumers, one relay publishing, one firing per reminder.
    TASKFLOW_TEST_INSTANCES=2 cargo nextest run --workspace --no-fail-fast \
        -E 'test(consumers::) | test(outbox::) | test(group_commit::) | test(scheduler::) | test(notifications::) | test(project_tasks::) | test(livefeed::)'
    # The newcomer's path: `just up` where no Postgres answers (its own network namespace).
    scripts/newcomer.sh
    # The short form of `just chaos`: two minutes, a dozen kills, a random seed it prints.
    cargo run -q -p taskflow-system-tests --bin chaos -- 2m

# The fast loop: lint, every unit and property test, and one system test end to end (under two minutes on a warm build)
check:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    DATABASE_URL="$(scripts/postgres.sh url)" NATS_SERVER_BIN="$(scripts/nats.sh bin)" cargo nextest run --workspace \
        -E 'not binary(system) | test(properties::) | test(smoke::) | test(layout::)'

# The property tests with more cases than `just test` runs (256): just props 20000
props CASES="10000":
    DATABASE_URL="$(scripts/postgres.sh url)" PROPTEST_CASES={{CASES}} cargo nextest run --workspace -E 'test(properties::)'

# Every fuzzer with a bigger budget than `just test` gives it: property cases, schemathesis examples per operation
fuzz CASES="10000" EXAMPLES="200":
    DATABASE_URL="$(scripts/postgres.sh url)" PROPTEST_CASES={{CASES}} cargo nextest run --workspace -E 'test(properties::)'
    DATABASE_URL="$(scripts/postgres.sh url)" NATS_SERVER_BIN="$(scripts/nats.sh bin)" SCHEMATHESIS_BIN="$(scripts/schemathesis.sh)" \
        TASKFLOW_FUZZ_EXAMPLES={{EXAMPLES}} cargo nextest run --workspace --no-capture \
        -E 'test(every_route_answers_as_its_openapi_document_says) | test(hostile::) | test(feed_limits::)'

# Kill and restart every part of the system under load, then check nothing was lost or doubled: just chaos 30m [SEED]
chaos DURATION="2m" *SEED:
    cargo build --bins
    TASKFLOW_POSTGRES_BIN="$(scripts/postgres.sh bin)" NATS_SERVER_BIN="$(scripts/nats.sh bin)" cargo run -q -p taskflow-system-tests --bin chaos -- {{DURATION}} {{SEED}}

# Measure the system run as separate processes (release build) and write target/bench/report.md, .json and load.svg; `just bench authz` (or audit, durability, http, paced, scale, timing) prints one group
bench *FIGURES:
    cargo build --release --bins
    DATABASE_URL="$(scripts/postgres.sh url)" TASKFLOW_POSTGRES_BIN="$(scripts/postgres.sh bin)" \
        NATS_SERVER_BIN="$(scripts/nats.sh bin)" SMTP_CATCHER_PYTHON="$(scripts/smtp-catcher.sh python)" \
        cargo run --release -p taskflow-system-tests --bin bench -- {{FIGURES}}

# A flame graph of every process while one bench figure runs: just profile [http|audit] (needs perf and `cargo install inferno`)
profile FIGURE="http":
    cargo build --release --bins
    DATABASE_URL="$(scripts/postgres.sh url)" TASKFLOW_POSTGRES_BIN="$(scripts/postgres.sh bin)" NATS_SERVER_BIN="$(scripts/nats.sh bin)" SMTP_CATCHER_PYTHON="$(scripts/smtp-catcher.sh python)" scripts/profile.sh {{FIGURE}}

# Fuzz the running API (`just up`) against its OpenAPI document: just api-fuzz 200
api-fuzz EXAMPLES="100":
    #!/usr/bin/env bash
    set -euo pipefail
    base="http://$TASKFLOW_HTTP_ADDR"
    email="fuzz-$(date +%s%N)@example.com"
    token="$(curl -fsS "$base/api/v1/auth/register" -H 'content-type: application/json' \
      -d "{\"email\":\"$email\",\"name\":\"Fuzz\",\"password\":\"correct horse battery\"}" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
    "$(scripts/schemathesis.sh)" run "$base/api/v1/openapi.json" --checks all \
      --max-examples {{EXAMPLES}} --header "Authorization: Bearer $token"

# Formatting and clippy, warnings as errors
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Regenerate schemas/json from the types
schemas:
    cargo run -q -p taskflow-schemas --example write_json_schemas

# Give a user the admin role (answers once every service applied it; their token stays valid)
make-admin EMAIL:
    DATABASE_URL="$(scripts/postgres.sh url)" cargo run -q --profile local --bin taskflow-identity -- make-admin {{EMAIL}}

# Take the admin role back (a token signed while they were admin acts as a member from then on)
revoke-admin EMAIL:
    DATABASE_URL="$(scripts/postgres.sh url)" cargo run -q --profile local --bin taskflow-identity -- revoke-admin {{EMAIL}}

# Create a task by NATS request (needs the nats CLI): just inject-create <user-id> "title"
inject-create ACTOR TITLE:
    nats --server "$NATS_URL" req taskflow.tasks.create '{"actor_id":"{{ACTOR}}","title":"{{TITLE}}"}' -H "X-Request-Id:cli-$(date +%s)"

# Complete a task by NATS request: just inject-complete <user-id> <task-id>
inject-complete ACTOR TASK:
    nats --server "$NATS_URL" req taskflow.tasks.complete '{"actor_id":"{{ACTOR}}","task_id":"{{TASK}}"}'

# Follow the live feed as a user, from a cursor if given (Node 20's WebSocket)
watch-feed TOKEN CURSOR="":
    node --experimental-websocket --no-warnings -e 'const ws = new WebSocket(process.argv[1]); ws.onmessage = (m) => console.log(m.data); ws.onclose = (e) => console.log("closed", e.code, e.reason)' "ws://$TASKFLOW_HTTP_ADDR/ws?token={{TOKEN}}{{ if CURSOR != "" { "&cursor=" + CURSOR } else { "" } }}"

# Inject a task.updated event for a task with the nats CLI (then see it in the audit and the feed)
inject-event TASK ACTOR:
    nats --server "$NATS_URL" pub "tasks.updated.{{TASK}}" "$(scripts/envelope.py task.updated {{TASK}} {{ACTOR}})" -H "Nats-Msg-Id:$(date +%s%N)"

# The audit trail of a task, as a user sees it
audit TOKEN TASK:
    curl -s "http://$TASKFLOW_HTTP_ADDR/api/v1/audit?task_id={{TASK}}" -H "authorization: Bearer {{TOKEN}}"

# Watch every task event on the TASKS stream
watch-events:
    nats --server "$NATS_URL" sub 'tasks.>'

# The mails the local SMTP catcher received (`just up` starts it), newest last
mails:
    @ls -tr .data/mail/new 2>/dev/null | while read -r mail; do echo "== $mail"; cat ".data/mail/new/$mail"; done

# Inject a reminder.due for a task with the nats CLI: its actor (as creator) is notified
inject-reminder TASK ACTOR:
    nats --server "$NATS_URL" pub "reminders.due.{{TASK}}" "$(scripts/envelope.py reminder.due {{TASK}} {{ACTOR}})" -H "Nats-Msg-Id:$(date +%s%N)"

# Watch reminders fire: every reminder.due on the REMINDERS stream
watch-reminders:
    nats --server "$NATS_URL" sub 'reminders.>'

# List the command services (NATS service API)
services:
    nats --server "$NATS_URL" micro ls
