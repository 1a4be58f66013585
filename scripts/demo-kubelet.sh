#!/usr/bin/env bash
# demo-kubelet.sh - answer kupgrade's node-command pods on the test apiserver, as a kubelet would.
#
# Usage: scripts/demo-kubelet.sh ROOT DIR [NAMESPACE]
#   ROOT       node sandboxes made by scripts/demo-sandboxes.sh (ROOT/NODE/bin is the whole PATH)
#   DIR        the directory written by `scripts/testenv.sh up DIR`
#   NAMESPACE  where the command pods are created (default kupgrade-node-commands; created
#              here if missing)
# Runs until killed. The test apiserver has no kubelet: this watches for the pods that
# `apply --executor pod` creates (label app.kubernetes.io/component=node-command, not yet
# finished), runs each one's shell line (the `sh -c` argument after `nsenter ... --`) in the
# sandbox of its spec.nodeName, and reports the result in the pod's status the way the kubelet
# does: phase Succeeded or Failed, the container terminated with the exit code, and the output
# as the termination message (the test server cannot serve pod logs). Needs curl and jq.
# Nothing outside ROOT and the test apiserver is touched.
set -euo pipefail

log() { printf 'demo-kubelet: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

(($# >= 2)) || die "usage: $0 ROOT DIR [NAMESPACE]"
ROOT=$(cd "$1" && pwd) DIR=$2 NS=${3:-kupgrade-node-commands}
command -v jq >/dev/null || die "jq not found"
[[ -f $ROOT/api.env ]] || die "$ROOT/api.env: not found (make ROOT with scripts/demo-sandboxes.sh)"
[[ -d $DIR ]] || die "$DIR: not a directory"
# shellcheck disable=SC1091  # URL, CA and TOKEN, written by demo-sandboxes.sh
source "$ROOT/api.env"

# api METHOD PATH [BODY]: prints the response; fails on an HTTP error (409 allowed for POST).
api() {
  local method=$1 path=$2 body=${3:-} out code
  out=$(mktemp "$ROOT/kubelet.XXXXXX")
  code=$(curl -sS --max-time 10 --cacert "$CA" -H "Authorization: Bearer $TOKEN" \
    -H "Content-Type: application/merge-patch+json" -X "$method" ${body:+--data-binary "$body"} \
    -o "$out" -w '%{http_code}' "$URL$path") || code=000
  [[ $method == POST && $code == 409 ]] && code=200
  [[ $code == 2?? ]] || { log "$method $path: HTTP $code: $(cat "$out")"; rm -f "$out"; return 1; }
  cat "$out"
  rm -f "$out"
}

curl -sS --max-time 10 --cacert "$CA" -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
  -X POST --data-binary "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$NS\"}}" \
  -o /dev/null "$URL/api/v1/namespaces"

now() { TZ=UTC printf '%(%Y-%m-%dT%H:%M:%SZ)T' -1; }
SELECTOR='app.kubernetes.io%2Fcomponent%3Dnode-command'
# answer NAME NODE LINE-BASE64: run a command pod's shell line in its node's sandbox; report
# the result.
answer() {
  local name=$1 node=$2 line started out rc phase reason status
  line=$(base64 -d <<<"$3")
  # The node-side lock of the command: in the sandbox's run/kupgrade (the node's /run/kupgrade),
  # as the local executor keeps it, not in this machine's /run.
  line=${line//" kupgrade-lock /run/kupgrade "/" kupgrade-lock $ROOT/$node/run/kupgrade "}
  started=$(now)
  if [[ ! $node =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ || ! -d $ROOT/$node/bin ]]; then
    out="no sandbox for node $node" rc=127
  else
    rc=0
    # A strict sandbox: its bin/ is the whole PATH (a program it lacks is not found).
    out=$(cd "$ROOT/$node" && KUPGRADE_NODE_ROOT=$ROOT/$node PATH=$ROOT/$node/bin \
      "$ROOT/$node/bin/sh" -c "$line" 2>&1) || rc=$?
  fi
  phase=Succeeded reason=Completed
  ((rc == 0)) || { phase=Failed reason=Error; }
  status=$(jq -n --arg phase "$phase" --arg reason "$reason" --argjson rc "$rc" --arg msg "$out" \
    --arg started "$started" --arg finished "$(now)" '{status: {phase: $phase,
      containerStatuses: [{name: "command", ready: false, restartCount: 0,
        image: "demo", imageID: "", state: {terminated: {exitCode: $rc, reason: $reason,
        message: $msg, startedAt: $started, finishedAt: $finished}}}]}}')
  api PATCH "/api/v1/namespaces/$NS/pods/$name/status" "$status" >/dev/null ||
    log "could not report pod $name"
  log "$node: exit $rc: $line"
}

log "answering node-command pods in $NS for the sandboxes in $ROOT"
# A watch of the command pods (one JSON event per line), started again when the server ends it.
while true; do
  curl -sS -N --cacert "$CA" -H "Authorization: Bearer $TOKEN" \
    "$URL/api/v1/namespaces/$NS/pods?labelSelector=$SELECTOR&watch=1&timeoutSeconds=300" |
    jq --unbuffered -c 'select(.type == "ADDED") | .object
      | select(.metadata.deletionTimestamp == null)
      | select((.status.phase // "Pending") == "Pending")
      | "\(.metadata.name) \(.spec.nodeName) \(.spec.containers[0].command[-1] | @base64)"' -r |
    while read -r name node line; do answer "$name" "$node" "$line"; done || true
  sleep 0.2
done
