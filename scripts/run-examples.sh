#!/usr/bin/env bash
# Runs every example the way a newcomer would, failing on the first error. Examples that need
# the test apiserver use $KUPGRADE_TEST_KUBECONFIG (started by scripts/test.sh); without it they
# are reported as not run (and fail when KUPGRADE_REQUIRE_REAL_SERVERS=1).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp -d /tmp/kupgrade-examples.XXXXXX)
KUBELET_PID=   # scripts/demo-kubelet.sh, in its own process group, while it runs
MIRROR_PID=    # a local HTTP server standing in for dl.k8s.io/release, while it runs
DEMO_API=      # the demo cluster's own etcd + kube-apiserver (scripts/testenv.sh), while they run
trap 'if [ -n "$KUBELET_PID" ]; then kill -- "-$KUBELET_PID" 2>/dev/null || true; fi
      if [ -n "$MIRROR_PID" ]; then kill "$MIRROR_PID" 2>/dev/null || true; fi
      if [ -n "$DEMO_API" ]; then scripts/testenv.sh down "$DEMO_API" >/dev/null 2>&1 || true; rm -rf "$DEMO_API"; fi
      rm -rf "$OUT"' EXIT
DATE=2026-11-25   # a fixed date: the same plans on every run
KC=${KUPGRADE_TEST_KUBECONFIG:-}   # the test apiserver's kubeconfig, when there is one
if [ -n "$KC" ]; then
  # The demo cluster gets an API server of its own: the tests before leave their objects
  # (deprecated APIs, Helm releases) on the shared one, and plan and apply gather readiness
  # evidence from the whole cluster they are pointed at.
  DEMO_API=$(mktemp -d /tmp/kupgrade-demo-api.XXXXXX)
  scripts/testenv.sh up "$DEMO_API" >"$OUT/demo-api.log" 2>&1 ||
    { cat "$OUT/demo-api.log" >&2; echo "starting the demo cluster's API server failed" >&2; exit 1; }
  # shellcheck disable=SC1091
  source "$DEMO_API/env"
  KC=$KUPGRADE_TEST_KUBECONFIG
fi

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

# Every `cargo run --example` command of the README (```sh blocks), of the examples' doc
# comments (```text blocks, and `inline` ones) and of the sample policies' comments (`inline`,
# or on a comment line of its own), in the order written, one per line: continuation lines
# joined, trailing `# comments` dropped. A synopsis (`[-- FILE]`) is not a command.
documented_commands() {
  {
    awk '/^```/ { block = !block; next } block && /^cargo run --example/' README.md
    for f in examples/*.rs examples/*/*.rs; do
      sed -n 's|^//! \{0,1\}||p' "$f" | awk '
        /^```/ { block = !block; acc = ""; next }
        !block { next }
        acc == "" && !/^cargo run --example/ { next }
        { acc = (acc == "" ? $0 : acc " " $0) }
        acc ~ /\\$/ { sub(/\\$/, "", acc); next }
        { print acc; acc = "" }'
    done
    grep -ho '`cargo run --example[^`]*`' README.md examples/*.rs examples/*/*.rs examples/policies/*.yaml | tr -d '`'
    sed -n 's/^#[[:space:]]*\(cargo run --example .*\)$/\1/p' examples/policies/*.yaml
  } | sed 's/ #.*$//; s/[[:space:]][[:space:]]*/ /g; s/ $//' | grep -v '\[' | awk '!seen[$0]++'
}

# Documented commands that CI cannot run as written, and why. Each must still be documented
# word for word: a changed command is a new one, and runs (or fails here) until it is listed.
declare -A NOT_RUN=(
  ["cargo run --example apply -- --executor ssh --cluster my-hosts.yaml --journal up.journal"]="upgrades the reader's machines over SSH"
  ["cargo run --example apply -- --kubeconfig admin.conf --executor ssh --cluster my-hosts.yaml"]="upgrades the reader's cluster over SSH"
  ["cargo run --example apply -- --kubeconfig admin.conf --executor pod --journal up.journal"]="upgrades the reader's cluster (the live steps below run the pod executor on the test cluster)"
  ["cargo run --example check -- --target 1.32 --evidence examples/readiness/ha-evidence.json --date 2025-03-01"]="exits 1 on the sample's readiness errors (run below, expecting that)"
)
# The documented upgrade of the test cluster, run as written by the live steps below.
LIVE_LOCAL_DOC="cargo run --example apply -- --kubeconfig DIR/kubeconfig --executor local --sandbox /tmp/sb --target 1.30 --date 2025-06-20 --drain-grace-period 0"
# The documented replace-strategy upgrade of the test cluster (scripts/demo-provider.sh), run too.
LIVE_REPLACE_DOC="cargo run --example apply -- --kubeconfig DIR/kubeconfig --executor local --sandbox /tmp/sb-replace --target 1.30 --date 2025-06-20 --drain-grace-period 0 --strategy replace --provider-create 'scripts/demo-provider.sh /tmp/sb-replace' --provider-find 'scripts/demo-provider.sh /tmp/sb-replace' --provider-remove 'scripts/demo-provider.sh /tmp/sb-replace'"

# documented COMMAND: runs a documented command, its placeholders replaced: the test cluster's
# kubeconfig for the reader's, an inventory of its SSH targets for hosts.yaml, this run's
# scratch directory for /tmp, and the embedded release data for releases.json and kubeadm.json.
documented() {
  local cmd=$1
  cmd=${cmd//"/tmp/"/$OUT/}
  cmd=${cmd//"~/.kube/config"/$KC}
  cmd=${cmd//"DIR/kubeconfig"/$KC}
  cmd=${cmd//"admin.conf"/$KC}
  cmd=${cmd//" hosts.yaml"/" $OUT/hosts.yaml"}
  cmd=${cmd//" releases.json"/" crates/kupgrade-core/data/k8s-releases.json"}
  cmd=${cmd//" kubeadm.json"/" crates/kupgrade-core/data/kubeadm-bundled-versions.json"}
  cmd=${cmd/"cargo run --example "/"cargo run -q -p kupgrade-examples --example "}
  n=$((n + 1))
  echo "+ $1"
  if ! eval "$cmd" >"$OUT/out" 2>"$OUT/err"; then
    cat "$OUT/out" "$OUT/err"
    echo "documented command failed: $1" >&2
    exit 1
  fi
  tail -n 2 "$OUT/out"
}

# Sort the documented commands: run now (no cluster needed), run against the test apiserver
# (reading it only), run by the live steps, or not run (with the reason).
OFFLINE=() LIVE_READ=()
while IFS= read -r cmd; do
  if [ -n "${NOT_RUN[$cmd]:-}" ]; then
    echo "not run: $cmd (${NOT_RUN[$cmd]})"
  elif [ "$cmd" = "$LIVE_LOCAL_DOC" ] || [ "$cmd" = "$LIVE_REPLACE_DOC" ]; then
    :
  elif [[ $cmd == *--kubeconfig* ]]; then
    if [[ $cmd == *"--example apply "* && $cmd != *--dry-run* ]]; then
      echo "documented command changes a live cluster, and CI does not run it: $cmd" >&2
      echo "(make the live steps of scripts/run-examples.sh run it, or list it in NOT_RUN with the reason)" >&2
      exit 1
    fi
    LIVE_READ+=("$cmd")
  else
    OFFLINE+=("$cmd")
  fi
done < <(documented_commands)
[ "${#OFFLINE[@]}" -gt 5 ] || { echo "found only ${#OFFLINE[@]} documented commands: is the extraction broken?" >&2; exit 1; }
documented_commands | grep -qxF "$LIVE_LOCAL_DOC" ||
  { echo "the documented live upgrade changed; update LIVE_LOCAL_DOC in scripts/run-examples.sh" >&2; exit 1; }
documented_commands | grep -qxF "$LIVE_REPLACE_DOC" ||
  { echo "the documented replace upgrade changed; update LIVE_REPLACE_DOC in scripts/run-examples.sh" >&2; exit 1; }
for cmd in "${OFFLINE[@]}"; do documented "$cmd"; done

# check: every bundled sample; exit status 1 for a cluster that violates the policy.
run check
for c in examples/clusters/*.yaml; do
  [ "$c" = examples/clusters/mid-upgrade-docs-order.yaml ] && continue
  run check -- "$c" --date "$DATE"
done
echo "+ cargo run --example check -- examples/clusters/mid-upgrade-docs-order.yaml --date $DATE (exits 1)"
rc=0
cargo run -q -p kupgrade-examples --example check -- examples/clusters/mid-upgrade-docs-order.yaml \
  --date "$DATE" >"$OUT/out" 2>"$OUT/err" || rc=$?
[ "$rc" = 1 ] || { cat "$OUT/out" "$OUT/err"; echo "check of a cluster with errors: exit $rc, expected 1" >&2; exit 1; }
n=$((n + 1))
# check --target: a readiness report; the bundled evidence holds errors, so it exits 1.
echo "+ cargo run --example check -- --target 1.32 --evidence examples/readiness/ha-evidence.json --date 2025-03-01 (exits 1)"
rc=0
cargo run -q -p kupgrade-examples --example check -- --target 1.32 \
  --evidence examples/readiness/ha-evidence.json --date 2025-03-01 >"$OUT/out" 2>"$OUT/err" || rc=$?
[ "$rc" = 1 ] || { cat "$OUT/out" "$OUT/err"; echo "readiness check with errors: exit $rc, expected 1" >&2; exit 1; }
grep -q '^Hop 1: v1.28.9 -> v1.29.14' "$OUT/out" && grep -q 'error\[removed-api\] .*shop-priority' "$OUT/out" ||
  { cat "$OUT/out"; echo "the readiness report lacks its findings per hop" >&2; exit 1; }
n=$((n + 1))

# plan: every sample, every format, both strategies, a custom policy (the README's main job ran
# above with the documented commands).
for c in examples/clusters/*.yaml; do
  run plan -- --cluster "$c" --date "$DATE" --available
  run plan -- --cluster "$c" --date "$DATE" --target 1.31 --allow-unsupported-target --tolerate-initial-violations
done
for f in text markdown json yaml mermaid html; do run plan -- --date "$DATE" --format "$f"; done
run plan -- --date "$DATE" --strategy replace --batch 2
run plan -- --date "$DATE" --batch 34% --policy examples/policies/kubelet-one-behind.yaml

# Release data: the calendar and the kubeadm version table from files (the embedded ones),
# the release team's labels from a local mirror (python's http.server), and no mirror at all
# (the plan falls back to the calendar, with a message).
DATA=crates/kupgrade-core/data
run plan -- --date "$DATE" --calendar "$DATA/k8s-releases.json" \
  --kubeadm-versions "$DATA/kubeadm-bundled-versions.json"
run check -- --date "$DATE" --calendar "$DATA/k8s-releases.json"
mkdir -p "$OUT/mirror/release"
echo v1.37.40 >"$OUT/mirror/release/stable.txt"
for m in $(seq 28 37); do echo "v1.$m.40" >"$OUT/mirror/release/stable-1.$m.txt"; done
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$OUT/mirror" >"$OUT/mirror.log" 2>&1 &
MIRROR_PID=$!
for _ in $(seq 50); do grep -q 'port [0-9]' "$OUT/mirror.log" && break; sleep 0.1; done
MIRROR="http://127.0.0.1:$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$OUT/mirror.log" | head -1)/release"
run plan -- --available --live-releases --release-base-url "$MIRROR"
grep -q "live releases: 11 label(s) read from $MIRROR" "$OUT/err" || { cat "$OUT/err"; echo "the mirror's labels were not read" >&2; exit 1; }
grep -q '^v1.37.40 .*newest stable' "$OUT/out" || { cat "$OUT/out"; echo "plan --available does not offer the mirror's v1.37.40" >&2; exit 1; }
run apply -- --executor sim --dry-run --target 1.30 --allow-unsupported-target --live-releases --release-base-url "$MIRROR"
kill "$MIRROR_PID"; wait "$MIRROR_PID" 2>/dev/null || true; MIRROR_PID=
run plan -- --date "$DATE" --live-releases --release-base-url "$MIRROR" --release-timeout 2
grep -q "warning: could not reach $MIRROR/stable.txt (.*); using the calendar of 2026-09-15" "$OUT/err" ||
  { cat "$OUT/err"; echo "no fallback message without the mirror" >&2; exit 1; }

# apply: the simulated cluster end to end, a dry run, and an interrupted run resumed.
run apply -- --date "$DATE" --executor sim --sim-speed 0
run apply -- --date "$DATE" --executor sim --dry-run
run apply -- --date "$DATE" --executor sim --sim-speed 0 --target 1.30 --allow-unsupported-target \
  --journal "$OUT/journal.jsonl" --sim-state "$OUT/sim.json"
run apply -- --executor sim --sim-speed 0 --journal "$OUT/journal.jsonl" --sim-state "$OUT/sim.json" --resume
# What undoing that run means where it ended: past the last hop's point of no return.
run apply -- --journal "$OUT/journal.jsonl" --rollback-plan
grep -q "^DISASTER RECOVERY: hop 2 (to v1.30" "$OUT/out" && grep -q "etcd snapshot: /var/backups/kupgrade/" "$OUT/out" ||
  { cat "$OUT/out"; echo "apply --rollback-plan did not name the recovery and its snapshot" >&2; exit 1; }
run apply -- --journal "$OUT/journal.jsonl" --rollback-plan json
# The replace strategy on the simulated cluster (the simulator is its own node provider).
run apply -- --date "$DATE" --executor sim --sim-speed 0 --strategy replace --batch 2

# The live test apiserver, seeded first with a small kubeadm-shaped demo cluster (testenv.sh
# writes the kubeconfig, token and CA into one directory): discover it, plan from it, and
# upgrade it for real, one minor, with node sandboxes standing in for the machines
# (scripts/demo-sandboxes.sh: their systemctl and kubeadm stubs patch the API as a kubelet and
# kubeadm would); cordon, drain (through the Eviction API), uncordon and the wait for Ready go
# through the API. Twice: straight through with the local executor, then through the pod
# executor (scripts/demo-kubelet.sh answers the command pods; needs jq) halted by a broken
# kubelet and resumed. After each, check on the server that the cluster really changed.
if [ -n "${KUPGRADE_TEST_KUBECONFIG:-}" ]; then
  LIVE_START=$SECONDS
  KC=$KUPGRADE_TEST_KUBECONFIG
  TESTDIR=$(dirname "$KC")
  TOKEN=$(awk -F, '$2 == "admin" { print $1; exit }' "$TESTDIR/tokens.csv")
  seed() {
    echo "+ scripts/seed-demo-cluster.sh"
    scripts/seed-demo-cluster.sh "$TESTDIR" 2>"$OUT/seed" ||
      { cat "$OUT/seed" >&2; echo "seeding the demo cluster failed" >&2; exit 1; }
  }
  sandboxes() { # sandboxes ROOT
    echo "+ scripts/demo-sandboxes.sh $1"
    scripts/demo-sandboxes.sh "$1" "$TESTDIR" demo-cp-1 demo-w-1 demo-w-2 2>"$OUT/sandboxes.log" ||
      { cat "$OUT/sandboxes.log" >&2; echo "making the node sandboxes failed" >&2; exit 1; }
  }
  fail() { cat "$OUT/out" "$OUT/err"; echo "live apply: $*" >&2; exit 1; }
  pod_status() { # pod_status NAMESPACE NAME: the HTTP status of a GET of that pod
    curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$TESTDIR/certs/apiserver.crt" \
      -H "Authorization: Bearer $TOKEN" "$KUPGRADE_TEST_APISERVER_URL/api/v1/namespaces/$1/pods/$2"
  }
  # upgraded SANDBOXES: what the API shows after an apply: every kubelet, the control plane and
  # kube-proxy at v1.30.14, nothing cordoned, the workload pods evicted from the workers, the
  # DaemonSet pods left in place; and kubeadm ran on the control-plane node.
  upgraded() {
    run discover -- --kubeconfig "$KC" --json
    [ "$(grep -c '"kubelet": "v1.30.14"' "$OUT/out")" = 3 ] || fail "not every kubelet reports v1.30.14"
    ! grep -q '"kubelet": "v1.29\|"kubelet": "v1.28' "$OUT/out" || fail "a kubelet still reports an old version"
    grep -q '"kube-apiserver": "v1.30.14"' "$OUT/out" || fail "kube-apiserver is not at v1.30.14"
    grep -q '"kube-proxy": "v1.30.14"' "$OUT/out" || fail "kube-proxy is not at v1.30.14"
    ! grep -q '"unschedulable": true' "$OUT/out" || fail "a node is left cordoned"
    local node
    for node in demo-w-1 demo-w-2; do
      [ "$(pod_status default "demo-web-$node")" = 404 ] || fail "pod default/demo-web-$node was not evicted"
      [ "$(pod_status kube-system "kube-proxy-$node")" = 200 ] || fail "the drain removed DaemonSet pod kube-proxy-$node"
    done
    grep -q '^kubeadm upgrade apply v1.30.14' "$1/demo-cp-1/log" || fail "kubeadm upgrade apply did not run on demo-cp-1"
    echo "  checked on the server: 3 kubelets, the control plane and kube-proxy at v1.30.14, none cordoned, 2 pods evicted"
  }

  seed
  # The SSH targets of the demo nodes, for the documented `--cluster hosts.yaml` (a dry run
  # connects to none of them).
  cat >"$OUT/hosts.yaml" <<'HOSTS'
nodes:
  - { name: demo-cp-1, roles: [control-plane], versions: { kubelet: v1.29.15, kube-apiserver: v1.29.15 }, ssh: { host: 127.0.0.1, user: root } }
  - { name: demo-w-1, versions: { kubelet: v1.29.15 }, ssh: { host: 127.0.0.1, user: root } }
  - { name: demo-w-2, versions: { kubelet: v1.28.15 }, ssh: { host: 127.0.0.1, user: root } }
HOSTS
  for cmd in "${LIVE_READ[@]}"; do documented "$cmd"; done
  run discover -- --kubeconfig "$KC"
  run discover -- --kubeconfig "$KC" --evidence-out "$OUT/evidence.json"
  grep -q '"apiRequests": {' "$OUT/evidence.json" && grep -q '"workloads": {' "$OUT/evidence.json" ||
    fail "discover --evidence-out wrote no evidence"
  LIVE=(--kubeconfig "$KC" --date "$DATE" --target 1.30 --allow-unsupported-target)
  run plan -- "${LIVE[@]}"
  # With --kubeconfig the readiness evidence is gathered live: the seeded static pods are known
  # as mirrors (not bare pods), and nothing blocks; --no-gather leaves the report out.
  grep -q "^Readiness for v1.29.15 to v1.30.14: 0 errors" "$OUT/out" ||
    fail "plan --kubeconfig shows no live readiness report, or one with errors"
  run plan -- "${LIVE[@]}" --no-gather
  ! grep -q "^Readiness for" "$OUT/out" || fail "plan --no-gather still gathered evidence"
  # A pod no controller manages on a worker: apply refuses to start, naming what to accept.
  curl -sS -o /dev/null --max-time 10 --cacert "$TESTDIR/certs/apiserver.crt" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -X POST "$KUPGRADE_TEST_APISERVER_URL/api/v1/namespaces/default/pods" \
    -d '{"metadata":{"name":"lonely"},"spec":{"nodeName":"demo-w-1","containers":[{"name":"c","image":"busybox"}]}}'
  if cargo run -q -p kupgrade-examples --example apply -- "${LIVE[@]}" --executor pod --dry-run >"$OUT/out" 2>"$OUT/err"; then
    fail "apply started with an unaccepted readiness error (a bare pod on demo-w-1)"
  fi
  grep -q -- "--accept drain/bare-pod:pod/default/lonely" "$OUT/err" || fail "the refusal does not name the --accept value"
  run apply -- "${LIVE[@]}" --executor pod --dry-run --accept drain/bare-pod:pod/default/lonely
  curl -sS -o /dev/null --max-time 10 --cacert "$TESTDIR/certs/apiserver.crt" -H "Authorization: Bearer $TOKEN" \
    -X DELETE "$KUPGRADE_TEST_APISERVER_URL/api/v1/namespaces/default/pods/lonely?gracePeriodSeconds=0"
  echo "  live readiness: gathered by plan, a bare pod refused apply until accepted by name"
  run plan -- "${LIVE[@]}" --format json
  run apply -- "${LIVE[@]}" --executor ssh --ssh-node-names --dry-run
  run apply -- "${LIVE[@]}" --executor pod --dry-run
  # The dry runs changed nothing: versions as seeded, nothing cordoned or evicted, no command pod.
  run discover -- --kubeconfig "$KC" --json
  [ "$(grep -c '"kubelet": "v1.29.15"' "$OUT/out")" = 2 ] || fail "a dry run changed a kubelet"
  ! grep -q '"unschedulable": true' "$OUT/out" || fail "a dry run cordoned a node"
  [ "$(pod_status default demo-web-demo-w-1)" = 200 ] || fail "a dry run evicted default/demo-web-demo-w-1"
  curl -sS --max-time 10 --cacert "$TESTDIR/certs/apiserver.crt" -H "Authorization: Bearer $TOKEN" \
    "$KUPGRADE_TEST_APISERVER_URL/api/v1/pods?labelSelector=app.kubernetes.io%2Fcomponent%3Dnode-command" \
    >"$OUT/out"
  grep -q '"items": *\[\]' "$OUT/out" || fail "a dry run created a node-command pod"

  # The real thing, straight through, as the apply example's documentation shows it.
  sandboxes "$OUT/sb"
  documented "$LIVE_LOCAL_DOC"
  upgraded "$OUT/sb"

  # Again from the start, through the pod executor: each node command runs in a pod pinned to
  # its node, which scripts/demo-kubelet.sh (the test server has no kubelet) runs in the node's
  # sandbox. demo-w-1's kubelet fails to restart: the run halts with demo-w-1 drained and
  # cordoned; once the kubelet is fixed, --resume finishes the job.
  seed
  sandboxes "$OUT/sb2"
  : >"$OUT/sb2/demo-w-1/state/kubelet.broken"
  if command -v jq >/dev/null; then
    echo "+ scripts/demo-kubelet.sh $OUT/sb2 (in the background)"
    setsid scripts/demo-kubelet.sh "$OUT/sb2" "$TESTDIR" 2>"$OUT/kubelet.log" &
    KUBELET_PID=$!
    ARGS=(--executor pod --journal "$OUT/live2.journal")
  else
    echo "not run: apply --executor pod on the test apiserver (scripts/demo-kubelet.sh needs jq); the local executor instead"
    ARGS=(--executor local --sandbox "$OUT/sb2" --journal "$OUT/live2.journal")
  fi
  echo "+ cargo run --example apply -- ${LIVE[*]} ${ARGS[*]} --attempts 1 --drain-grace-period 0 (halts)"
  rc=0
  cargo run -q -p kupgrade-examples --example apply -- "${LIVE[@]}" "${ARGS[@]}" --attempts 1 \
    --drain-grace-period 0 --drain-timeout 60 >"$OUT/out" 2>"$OUT/err" || rc=$?
  [ "$rc" = 2 ] || fail "expected the run to halt (exit code 2), got $rc"
  grep -q '^outcome: halted: .*demo-w-1/restart-kubelet' "$OUT/out" || fail "halted elsewhere than demo-w-1's kubelet restart"
  grep -q 'demo-w-1: kubelet v1.29.15, Ready, cordoned' "$OUT/out" || fail "demo-w-1 is not left cordoned at v1.29.15"
  grep -q "^resume with: .*--kubeconfig" "$OUT/out" || fail "the resume hint does not name the cluster"
  tail -n 3 "$OUT/out"
  n=$((n + 1))
  rm "$OUT/sb2/demo-w-1/state/kubelet.broken"
  run apply -- --kubeconfig "$KC" "${ARGS[@]}" --resume
  if [ -n "$KUBELET_PID" ]; then
    kill -- "-$KUBELET_PID"
    KUBELET_PID=
  fi
  upgraded "$OUT/sb2"

  # The replace strategy, as documented: without a node provider the run is refused before
  # its first step; with scripts/demo-provider.sh each worker is replaced by a new node at
  # v1.30.14 (made once), drained and removed.
  seed
  sandboxes "$OUT/sb-replace"
  echo "+ cargo run --example apply -- ${LIVE[*]} --executor local --strategy replace (no provider: refused)"
  rc=0
  cargo run -q -p kupgrade-examples --example apply -- "${LIVE[@]}" --executor local \
    --sandbox "$OUT/sb-replace" --strategy replace >"$OUT/out" 2>"$OUT/err" || rc=$?
  [ "$rc" = 1 ] || fail "expected the run without a node provider to be refused (exit code 1), got $rc"
  grep -q 'no node provider is configured: nothing was run' "$OUT/err" || fail "the refusal does not say why"
  [ ! -s "$OUT/sb-replace/demo-cp-1/log" ] || fail "the refused run ran a command on demo-cp-1"
  n=$((n + 1))
  documented "$LIVE_REPLACE_DOC"
  run discover -- --kubeconfig "$KC" --json
  for node in demo-w-1 demo-w-2; do
    ! grep -q "\"name\": \"$node\"" "$OUT/out" || fail "node $node was not removed"
    grep -A40 "\"name\": \"$node-v1-30-14\"" "$OUT/out" | grep -m1 '"kubelet":' | grep -q '"v1.30.14"' ||
      fail "node $node-v1-30-14 did not join at v1.30.14"
    [ "$(grep -cx "create $node-v1-30-14" "$OUT/sb-replace/provider.log")" = 1 ] || fail "$node-v1-30-14 was not created once"
    grep -qx "remove $node" "$OUT/sb-replace/provider.log" || fail "$node's machine was not removed"
  done
  echo "  checked on the server: demo-w-1 and demo-w-2 replaced by nodes at v1.30.14, each made once"
  # Leave the test apiserver as the seed script knows it: the new nodes go.
  for node in demo-w-1-v1-30-14 demo-w-2-v1-30-14; do
    KUPGRADE_PROVIDER_ACTION=remove KUPGRADE_NODE=$node scripts/demo-provider.sh "$OUT/sb-replace" 2>>"$OUT/err"
  done
  echo "  live steps: $((SECONDS - LIVE_START)) s"
elif [ "${KUPGRADE_REQUIRE_REAL_SERVERS:-0}" = 1 ]; then
  echo "discover, plan and apply --kubeconfig need KUPGRADE_TEST_KUBECONFIG (scripts/test.sh starts a test apiserver)" >&2
  exit 1
else
  echo "not run: discover, plan --kubeconfig, apply --kubeconfig (no test apiserver; scripts/test.sh starts one)"
fi
echo "examples: $n passed, 0 failed"
