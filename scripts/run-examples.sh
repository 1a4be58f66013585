#!/usr/bin/env bash
# Runs every example the way a newcomer would, failing on the first error. Examples that need
# the test apiserver use $KUPGRADE_TEST_KUBECONFIG (started by scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
run() { echo "+ cargo run -q --example $*"; cargo run -q -p kupgrade-examples --example "$@" >/tmp/kupgrade-example.out || { cat /tmp/kupgrade-example.out; exit 1; }; tail -n 3 /tmp/kupgrade-example.out; }
for f in examples/*.rs; do
  name=$(basename "$f" .rs)
  case "$name" in
    check) run check; for c in examples/clusters/*.yaml; do run check -- "$c"; done ;;
    *) : ;;
  esac
done
