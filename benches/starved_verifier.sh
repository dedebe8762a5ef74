#!/usr/bin/env bash
# The timing-sensitive fixture (tests/fixtures/timing-sensitive): a task whose tests fail
# when starved of CPU, beside ten CPU-heavy trials and an image build, run by
# `helios apply` under each policy: its defaults (`adaptive`), `reserve` and `none`
# (concurrency alone). Prints the tests' wall and CPU time and reward, and the run's wall
# time, for each; and the machine's load, which no policy can take away.
#
# Usage: cargo build --release && bash benches/starved_verifier.sh [ROUNDS]
set -euo pipefail
ROUNDS=${1:-1}
HELIOS=${HELIOS:-$(pwd)/target/release/helios}
[ -x "$HELIOS" ] || { echo "build helios first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
cleanup() {
  "$HELIOS" gc --label helios-bench=starved >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }

printf '%s cores; load before: %s\n' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
  for policy in adaptive reserve none; do
    rm -rf "$work/p"
    cp -r "$(dirname "$0")/../tests/fixtures/timing-sensitive" "$work/p"
    # A digest of its own, so the image is built beside the trials.
    echo "LABEL bench=\"$(date +%s%N)\"" >> "$work/p/tasks/a-build/environment/Dockerfile"
    start=$(now)
    "$HELIOS" apply --label helios-bench=starved --resources "$policy" "$work/p/pipeline.toml" \
      > "$work/$policy.log" 2>&1 || true
    took=$(awk "BEGIN { printf \"%.1f\", $(now) - $start }")
    d=$(ls -d "$work"/p/runs/timing/timed/b-deadline__*)
    printf 'round %d, --resources %-8s run %5s s; tests: %s; reward %s\n' "$round" "$policy" "$took" \
      "$(head -1 "$d/verifier/test-stdout.txt")" "$(cat "$d/verifier/reward.txt")"
  done
done
