#!/usr/bin/env bash
# Benchmark: trials whose agent mostly waits (as on a model's API), under each admission
# policy. N tasks declaring `cpus = 1` (as Terminal-Bench's do), whose oracle `solve.sh`
# sleeps S seconds, at concurrency C, run by `helios apply`:
#   - at its defaults (`adaptive`: admitted by measured CPU pressure);
#   - with `--resources reserve --cpus C` (each trial's CPU reserved, on a budget of C);
#   - with `--resources reserve` (each trial's CPU reserved, on this machine's cores) when
#     RESERVE=1 (slow: cores / 1 CPU trials at a time).
# Prints each wall time and the ratio defaults / reserve --cpus C. Figures in
# docs/benchmarks.md.
#
# Usage: cargo build --release && bash benches/waiting_agents.sh [N] [S] [C]
# Needs a Docker engine and the image debian:bookworm-slim.
set -euo pipefail
N=${1:-32}
S=${2:-10}
C=${3:-16}
HELIOS=${HELIOS:-$(pwd)/target/release/helios}
IMAGE=${IMAGE:-debian:bookworm-slim}
[ -x "$HELIOS" ] || { echo "build helios first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
cleanup() {
  "$HELIOS" gc --label helios-bench=waiting >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

for i in $(seq -w 1 "$N"); do
  d=$work/tasks/t$i
  mkdir -p "$d/tests" "$d/solution"
  printf '[environment]\ndocker_image = "%s"\nworkdir = "/app"\ncpus = 1\n' "$IMAGE" > "$d/task.toml"
  echo "Wait, then write hello to /app/out." > "$d/instruction.md"
  printf 'sleep %s\necho hello > /app/out\n' "$S" > "$d/solution/solve.sh"
  echo '[ "$(cat /app/out)" = hello ] && echo 1 > /logs/verifier/reward.txt || echo 0 > /logs/verifier/reward.txt' \
    > "$d/tests/test.sh"
done

now() { date +%s.%N; }
elapsed() { awk "BEGIN { printf \"%.1f\", $2 - $1 }"; }

run() {  # $1: name, then apply's options
  local name=$1; shift
  printf '[pipeline]\nname = "%s"\noutput_dir = "runs"\nconcurrency = %s\n[[tasks]]\npath = "tasks/*"\n[[stages]]\nname = "s"\nagents = ["oracle"]\n' \
    "$name" "$C" > "$work/$name.toml"
  local start; start=$(now)
  "$HELIOS" apply --label helios-bench=waiting "$@" "$work/$name.toml" > "$work/$name.log" 2>&1 \
    || { echo "$name: apply failed" >&2; tail -20 "$work/$name.log" >&2; exit 1; }
  local took; took=$(elapsed "$start" "$(now)")
  local passed; passed=$(grep -l '"reward": 1.0' "$work"/runs/"$name"/s/*/result.json | wc -l)
  [ "$passed" -eq "$N" ] || { echo "$name: only $passed of $N trials passed" >&2; exit 1; }
  echo "$took"
}

printf 'trials: %d, each waiting %s s, declaring 1 CPU; concurrency %d; %s cores; load before: %s\n' \
  "$N" "$S" "$C" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
defaults=$(run defaults)
printf 'helios, defaults (adaptive):        %6s s\n' "$defaults"
reserved=$(run reserved --resources reserve --cpus "$C")
printf 'helios, --resources reserve --cpus %d: %6s s\n' "$C" "$reserved"
if [ "${RESERVE:-0}" = 1 ]; then
  strict=$(run strict --resources reserve)
  printf 'helios, --resources reserve:        %6s s\n' "$strict"
fi
printf 'ideal (waits only):                 %6s s\n' "$(awk "BEGIN { print $S * int(($N + $C - 1) / $C) }")"
printf 'ratio defaults / reserve --cpus %d: %.2f\n' "$C" "$(awk "BEGIN { print $defaults / $reserved }")"
