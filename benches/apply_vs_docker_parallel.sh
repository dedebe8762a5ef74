#!/usr/bin/env bash
# Benchmark: 2×N trivial trials (N tasks × oracle and nop) through `helios apply` at its
# defaults and concurrency C, against the same container steps done by the plain docker
# CLI, C trials at a time (xargs -P). Figures in docs/benchmarks.md.
#
# Usage: cargo build --release && bash benches/apply_vs_docker_parallel.sh [N] [C]
# Needs a Docker engine and the image debian:bookworm-slim.
set -euo pipefail
N=${1:-20}
C=${2:-8}
HELIOS=${HELIOS:-$(pwd)/target/release/helios}
IMAGE=${IMAGE:-debian:bookworm-slim}
[ -x "$HELIOS" ] || { echo "build helios first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
cleanup() {
  docker rm -f $(docker ps -aq --filter label=helios-bench=cli-parallel) >/dev/null 2>&1 || true
  "$HELIOS" gc --label helios-bench=apply-parallel >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

source "$(dirname "$0")/common/trivial_tasks.sh"
trivial_tasks "$work" "$N" "$IMAGE"

now() { date +%s.%N; }
elapsed() { awk "BEGIN { printf \"%.2f\", $2 - $1 }"; }

# One trial with the docker CLI: $1 the task directory, $2 the agent (oracle or nop).
cli_trial() {
  local d=$1 agent=$2 id out
  out=$WORK/cli/$(basename "$d")-$agent
  id=$(docker run -d --init --label helios-bench=cli-parallel -w /app --entrypoint /bin/sh "$IMAGE" \
       -c "trap 'exit 0' TERM; while :; do sleep 3600 & wait \$!; done")
  docker exec "$id" mkdir -p /logs/agent /logs/verifier /logs/artifacts /app
  if [ "$agent" = oracle ]; then
    docker cp -q "$d/solution" "$id:/solution"
    docker exec -w /app "$id" bash -c 'bash /solution/solve.sh > /logs/agent/oracle.txt 2>&1'
  fi
  docker cp -q "$d/tests" "$id:/tests"
  docker exec -w /app "$id" bash -c 'bash /tests/test.sh > /logs/verifier/test-stdout.txt 2>&1'
  mkdir -p "$out"
  docker cp -q "$id:/logs" "$out/"
  docker rm -f "$id" > /dev/null
}
export -f cli_trial
export IMAGE WORK=$work

printf '[pipeline]\nname = "p"\noutput_dir = "runs"\nconcurrency = %s\n[[tasks]]\npath = "tasks/*"\n[[stages]]\nname = "s"\nagents = ["oracle", "nop"]\n' \
  "$C" > "$work/p.toml"

printf 'trials: %d (%d trivial tasks × oracle, nop), %d at a time; %s cores; load before: %s\n' \
  "$((2 * N))" "$N" "$C" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
for round in 1 2; do
  rm -rf "$work/runs" "$work/cli"
  start=$(now)
  "$HELIOS" apply --label helios-bench=apply-parallel "$work/p.toml" > /dev/null 2>&1 || true
  helios=$(elapsed "$start" "$(now)")
  passed=$(grep -l '"reward": 1.0' "$work"/runs/p/s/*/result.json | wc -l)
  [ "$passed" -eq "$N" ] || { echo "helios: $passed of $N oracle trials passed" >&2; exit 1; }

  start=$(now)
  for d in "$work"/tasks/*; do printf '%s oracle\n%s nop\n' "$d" "$d"; done \
    | xargs -P "$C" -L 1 bash -c 'cli_trial "$0" "$1"'
  cli=$(elapsed "$start" "$(now)")
  cli_passed=$(grep -l '^1$' "$work"/cli/*-oracle/logs/verifier/reward.txt | wc -l)
  [ "$cli_passed" -eq "$N" ] || { echo "docker CLI: $cli_passed of $N oracle trials passed" >&2; exit 1; }
  printf 'round %d: helios apply (defaults) %6s s, docker CLI %d at a time %6s s, ratio %.2f\n' \
    "$round" "$helios" "$C" "$cli" "$(awk "BEGIN { print $helios / $cli }")"
done
