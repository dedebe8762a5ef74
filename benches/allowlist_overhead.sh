#!/usr/bin/env bash
# Benchmark: what an `allowlist` agent phase costs a trial. N trivial oracle trials on a
# prebuilt image, public throughout, against the same tasks whose agent phase is under an
# allowlist (the network guard started in the sandbox's namespace, its rules and DNS filter
# put in force, then lifted for the tests). Prints both wall times and the difference per
# trial; the figures are recorded in docs/benchmarks.md.
#
# Usage: cargo build --release && bash benches/allowlist_overhead.sh [N] [ROUNDS]
# (HELIOS=target/debug/helios to time a debug build.) Needs a Docker engine and the image
# debian:bookworm-slim (bash ../shared/docker-up.sh). The guard's image is built by a
# first, untimed run.
set -euo pipefail
N=${1:-8}
ROUNDS=${2:-3}
HELIOS=${HELIOS:-$(pwd)/target/release/helios}
IMAGE=${IMAGE:-debian:bookworm-slim}
[ -x "$HELIOS" ] || { echo "build helios first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
cleanup() {
  "$HELIOS" gc --label helios-bench=allowlist >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

source "$(dirname "$0")/common/trivial_tasks.sh"
mkdir -p "$work/public" "$work/allowlist"
trivial_tasks "$work/public" "$N" "$IMAGE"
trivial_tasks "$work/allowlist" "$N" "$IMAGE"
for task in "$work"/allowlist/tasks/*; do
  printf '[agent]\nnetwork_mode = "allowlist"\nallowed_hosts = ["pypi.org", "10.0.0.0/8"]\n' >> "$task/task.toml"
done

now() { date +%s.%N; }
run() {  # $1: variant, $2: round; prints the wall time of a fresh apply
  local dir=$work/$1
  printf '[pipeline]\nname = "r%s"\noutput_dir = "runs"\nconcurrency = 4\n[[tasks]]\npath = "tasks/*"\n[[stages]]\nname = "s"\nagents = ["oracle"]\n' \
    "$2" > "$dir/r$2.toml"
  local start; start=$(now)
  "$HELIOS" apply --cpus 16 --label helios-bench=allowlist "$dir/r$2.toml" > "$dir/r$2.log" 2>&1 \
    || { echo "apply of $1 failed:" >&2; cat "$dir/r$2.log" >&2; exit 1; }
  awk "BEGIN { printf \"%.2f\", $(now) - $start }"
}

run allowlist warm > /dev/null  # builds the guard's image once
for round in $(seq 1 "$ROUNDS"); do
  public=$(run public "$round")
  allowlist=$(run allowlist "$round")
  echo "round $round: public ${public}s, allowlist ${allowlist}s, per trial +$(awk "BEGIN { printf \"%.2f\", ($allowlist - $public) / $N }")s"
done
