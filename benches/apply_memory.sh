#!/usr/bin/env bash
# Benchmark: peak memory of `helios apply` over trivial trials, at each trial count given
# (default 100 and 1000): it should stay flat as the count grows. Prints the count, the
# wall time and the peak resident memory (GNU time's %M). The figures are recorded in
# docs/benchmarks.md.
#
# Usage: cargo build --release && bash benches/apply_memory.sh [COUNT ...]
# Needs a Docker engine, the image debian:bookworm-slim (bash ../shared/docker-up.sh) and
# /usr/bin/time (Debian's `time` package).
set -euo pipefail
HELIOS=${HELIOS:-$(pwd)/target/release/helios}
IMAGE=${IMAGE:-debian:bookworm-slim}
CONCURRENCY=${CONCURRENCY:-8}
[ -x "$HELIOS" ] || { echo "build helios first: cargo build --release" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time: apt-get install time" >&2; exit 1; }
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(100 1000)

work=$(mktemp -d)
cleanup() {
  "$HELIOS" gc --label helios-bench=memory >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Tasks on a prebuilt image: the oracle writes a file, the test checks it.
source "$(dirname "$0")/common/trivial_tasks.sh"
trivial_tasks "$work" 10 "$IMAGE"

printf '%8s | %10s | %12s\n' trials seconds "peak memory"
for count in "${counts[@]}"; do
  attempts=$(( (count + 9) / 10 ))
  name="memory-$count"
  printf '[pipeline]\nname = "%s"\noutput_dir = "runs"\nconcurrency = %s\nmax_trials = %s\n[[tasks]]\npath = "tasks/*"\n[[stages]]\nname = "s"\nagents = ["oracle"]\nattempts = %s\n' \
    "$name" "$CONCURRENCY" "$((attempts * 10))" "$attempts" > "$work/$name.toml"
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/$name.kib" \
    "$HELIOS" apply --label helios-bench=memory --cpus "$CONCURRENCY" "$work/$name.toml" > "$work/$name.log" 2>&1 \
    || { tail -20 "$work/$name.log" >&2; exit 1; }
  seconds=$(awk "BEGIN { print $(date +%s.%N) - $start }")
  passed=$(grep -l '"reward": 1.0' "$work"/runs/"$name"/s/*/result.json | wc -l)
  [ "$passed" -eq "$((attempts * 10))" ] || { echo "only $passed of $((attempts * 10)) trials passed" >&2; exit 1; }
  printf '%8d | %10.1f | %8.1f MiB\n' "$((attempts * 10))" "$seconds" "$(awk "BEGIN { print $(cat "$work/$name.kib") / 1024 }")"
done
