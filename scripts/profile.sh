#!/usr/bin/env bash
# `just profile [FIGURE]`: a flame graph of the whole machine while one
# figure of the bench runs (`http`: 16 clients creating tasks, the default;
# `audit`: the audit consumer catching up on 10,000 events), from `perf
# record` of every process, call stacks unwound from DWARF. Writes
# target/bench/flame-FIGURE.svg. Needs perf (Debian: linux-perf) and
# inferno (`cargo install inferno`).
set -euo pipefail
cd "$(dirname "$0")/.."
figure="${1:-http}"
case "$figure" in
    http) title="16 HTTP clients creating tasks" ;;
    audit) title="the audit consumer catching up on 10,000 events" ;;
    *) echo "profile: no figure '$figure' (http or audit)" >&2; exit 2 ;;
esac
for tool in perf inferno-collapse-perf inferno-flamegraph; do
    command -v "$tool" >/dev/null || { echo "profile: $tool is not on PATH" >&2; exit 1; }
done
out=target/bench
mkdir -p "$out"
TASKFLOW_BENCH_PROFILE="$PWD/$out/perf-$figure.data" "${CARGO_TARGET_DIR:-target}/release/bench" "$figure"
# Every service's threads are named tokio-rt-worker: the samples carry the
# pid, which the bench's list turns into the process's name.
names=()
while read -r pid name; do
    names+=(-e "s/^tokio-rt-worker-$pid;/$name;/")
done < "$out/perf-$figure.data.pids"
perf script --input "$out/perf-$figure.data" -F +pid 2>/dev/null \
    | inferno-collapse-perf --all --pid \
    | sed "${names[@]}" -e 's/^\([^;]*\)-[0-9][0-9]*;/\1;/' > "$out/perf-$figure.folded"
# Frames narrower than a pixel are left out: unseen, they only make the SVG big.
inferno-flamegraph --minwidth 1 --title "TaskFlow: $title (every process of the machine)" \
    < "$out/perf-$figure.folded" > "$out/flame-$figure.svg"
echo "flame graph: $out/flame-$figure.svg"
