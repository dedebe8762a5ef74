# Sourced by the shell benchmarks: `trivial_tasks DIR COUNT IMAGE` writes COUNT tasks
# DIR/tasks/tNN on the prebuilt IMAGE (no build): the oracle writes hello to /app/out, the
# test checks it.
trivial_tasks() {
  local dir=$1 count=$2 image=$3 i d
  for i in $(seq -w 1 "$count"); do
    d=$dir/tasks/t$i
    mkdir -p "$d/tests" "$d/solution"
    printf '[environment]\ndocker_image = "%s"\nworkdir = "/app"\n' "$image" > "$d/task.toml"
    echo "Write hello to /app/out." > "$d/instruction.md"
    echo 'echo hello > /app/out' > "$d/solution/solve.sh"
    echo '[ "$(cat /app/out)" = hello ] && echo 1 > /logs/verifier/reward.txt || echo 0 > /logs/verifier/reward.txt' \
      > "$d/tests/test.sh"
  done
}
