#!/usr/bin/env bash
# Benchmark: N trivial trials through `helios apply`, against the same container steps done
# by the plain docker CLI in a shell loop. Prints both times, the per-trial overhead and the
# ratio. The figures are recorded in docs/benchmarks.md.
#
# Usage: cargo build --release && bash benches/apply_vs_docker.sh [N]
# Needs a Docker engine and the image debian:bookworm-slim (bash ../shared/docker-up.sh).
set -euo pipefail
N=${1:-20}
HELIOS=${HELIOS:-$(pwd)/target/release/helios}
IMAGE=${IMAGE:-debian:bookworm-slim}
[ -x "$HELIOS" ] || { echo "build helios first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
cleanup() {
  docker rm -f $(docker ps -aq --filter label=helios-bench=cli) >/dev/null 2>&1 || true
  "$HELIOS" gc --label helios-bench=apply >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Tasks on a prebuilt image: the oracle writes a file, the test checks it.
source "$(dirname "$0")/common/trivial_tasks.sh"
trivial_tasks "$work" "$N" "$IMAGE"

pipeline() {  # $1: name, $2: concurrency
  printf '[pipeline]\nname = "%s"\noutput_dir = "runs"\nconcurrency = %s\n[[tasks]]\npath = "tasks/*"\n[[stages]]\nname = "s"\nagents = ["oracle"]\n' \
    "$1" "$2" > "$work/$1.toml"
}
now() { date +%s.%N; }
elapsed() { awk "BEGIN { print $2 - $1 }"; }
div() { awk "BEGIN { print $1 / $2 }"; }

pipeline sequential 1
pipeline parallel 4
start=$(now)
"$HELIOS" apply --label helios-bench=apply "$work/sequential.toml" > /dev/null 2>&1
helios_seq=$(elapsed "$start" "$(now)")
start=$(now)
"$HELIOS" apply --label helios-bench=apply "$work/parallel.toml" > /dev/null 2>&1
helios_par=$(elapsed "$start" "$(now)")
passed=$(grep -l '"reward": 1.0' "$work"/runs/sequential/s/*/result.json | wc -l)
[ "$passed" -eq "$N" ] || { echo "helios: only $passed of $N trials passed" >&2; exit 1; }

# The same steps, one trial after the other, with the docker CLI.
start=$(now)
for d in "$work"/tasks/*; do
  id=$(docker run -d --init --label helios-bench=cli -w /app --entrypoint /bin/sh "$IMAGE" \
       -c "trap 'exit 0' TERM; while :; do sleep 3600 & wait \$!; done")
  docker exec "$id" mkdir -p /logs/agent /logs/verifier /logs/artifacts /app
  docker cp -q "$d/solution" "$id:/solution"
  docker exec -w /app "$id" bash -c 'bash /solution/solve.sh > /logs/agent/oracle.txt 2>&1'
  docker cp -q "$d/tests" "$id:/tests"
  docker exec -w /app "$id" bash -c 'bash /tests/test.sh > /logs/verifier/test-stdout.txt 2>&1'
  mkdir -p "$work/cli/$(basename "$d")"
  docker cp -q "$id:/logs" "$work/cli/$(basename "$d")/"
  docker rm -f "$id" > /dev/null
done
cli=$(elapsed "$start" "$(now)")
cli_passed=$(grep -l '^1$' "$work"/cli/*/logs/verifier/reward.txt | wc -l)
[ "$cli_passed" -eq "$N" ] || { echo "docker CLI: only $cli_passed of $N trials passed" >&2; exit 1; }

printf 'trials: %d (trivial: write a file, check it)\n' "$N"
printf 'docker CLI loop, sequential:   %6.2f s  (%.3f s per trial)\n' "$cli" "$(div "$cli" "$N")"
printf 'helios apply, concurrency 1:   %6.2f s  (%.3f s per trial)\n' "$helios_seq" "$(div "$helios_seq" "$N")"
printf 'helios apply, concurrency 4:   %6.2f s  (%.3f s per trial)\n' "$helios_par" "$(div "$helios_par" "$N")"
printf 'ratio helios (concurrency 1) / CLI loop: %.2f\n' "$(div "$helios_seq" "$cli")"
