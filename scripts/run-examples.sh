#!/usr/bin/env bash
# Runs every example the way a newcomer would, failing on the first error. Examples that need
# the test apiserver use $KUPGRADE_TEST_KUBECONFIG (started by scripts/test.sh); without it they
# are reported as not run (and fail when KUPGRADE_REQUIRE_REAL_SERVERS=1).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp -d /tmp/kupgrade-examples.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
DATE=2026-11-25   # a fixed date: the same plans on every run

cargo build -q -p kupgrade-examples --examples
n=0
run() {
  n=$((n + 1))
  echo "+ cargo run --example $*"
  if ! cargo run -q -p kupgrade-examples --example "$@" >"$OUT/out" 2>"$OUT/err"; then
    cat "$OUT/out" "$OUT/err"
    echo "example failed: $*" >&2
    exit 1
  fi
  tail -n 2 "$OUT/out"
}

# check: every bundled sample.
run check
for c in examples/clusters/*.yaml; do run check -- "$c" --date "$DATE"; done

# plan: the README's main job, every sample, every format, both strategies, a custom policy.
run plan
for c in examples/clusters/*.yaml; do
  run plan -- --cluster "$c" --date "$DATE" --available
  run plan -- --cluster "$c" --date "$DATE" --target 1.31 --allow-unsupported-target --tolerate-initial-violations
done
for f in text markdown json yaml mermaid; do run plan -- --date "$DATE" --format "$f"; done
run plan -- --date "$DATE" --strategy replace --batch 2
run plan -- --date "$DATE" --batch 34% --policy examples/policies/kubelet-one-behind.yaml

# apply: the simulated cluster end to end, a dry run, and an interrupted run resumed.
run apply -- --date "$DATE" --executor sim --sim-speed 0
run apply -- --date "$DATE" --executor sim --dry-run
run apply -- --date "$DATE" --executor sim --sim-speed 0 --target 1.30 --allow-unsupported-target \
  --journal "$OUT/journal.jsonl" --sim-state "$OUT/sim.json"
run apply -- --date "$DATE" --executor sim --sim-speed 0 --target 1.30 --allow-unsupported-target \
  --journal "$OUT/journal.jsonl" --sim-state "$OUT/sim.json" --resume

# discover: the live test apiserver, seeded first with a small kubeadm-shaped demo cluster
# (testenv.sh writes the kubeconfig, token and CA into one directory).
if [ -n "${KUPGRADE_TEST_KUBECONFIG:-}" ]; then
  echo "+ scripts/seed-demo-cluster.sh"
  scripts/seed-demo-cluster.sh "$(dirname "$KUPGRADE_TEST_KUBECONFIG")" 2>"$OUT/seed" ||
    { cat "$OUT/seed" >&2; echo "seeding the demo cluster failed" >&2; exit 1; }
  run discover -- --kubeconfig "$KUPGRADE_TEST_KUBECONFIG"
elif [ "${KUPGRADE_REQUIRE_REAL_SERVERS:-0}" = 1 ]; then
  echo "discover needs KUPGRADE_TEST_KUBECONFIG (scripts/test.sh starts a test apiserver)" >&2
  exit 1
else
  echo "not run: discover (no test apiserver; scripts/test.sh starts one)"
fi
echo "examples: $n passed, 0 failed"
