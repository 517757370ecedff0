#!/usr/bin/env bash
# `just profile`: a flame graph of the whole machine under the bench's
# 16-client HTTP load (target/bench/flame.svg), from `perf record` of every
# process, call stacks unwound from DWARF. Needs perf (Debian: linux-perf)
# and inferno (`cargo install inferno`).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in perf inferno-collapse-perf inferno-flamegraph; do
    command -v "$tool" >/dev/null || { echo "profile: $tool is not on PATH" >&2; exit 1; }
done
out=target/bench
mkdir -p "$out"
TASKFLOW_BENCH_PROFILE="$PWD/$out/perf.data" "${CARGO_TARGET_DIR:-target}/release/bench" http
perf script --input "$out/perf.data" 2>/dev/null \
    | inferno-collapse-perf --all > "$out/perf.folded"
inferno-flamegraph --title "TaskFlow under 16 HTTP clients creating tasks (every process of the machine)" \
    < "$out/perf.folded" > "$out/flame.svg"
echo "flame graph: $out/flame.svg"
