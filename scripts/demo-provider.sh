#!/usr/bin/env bash
# demo-provider.sh - a node provider for the replace strategy on the test apiserver, as
# `apply --provider-create/--provider-find/--provider-remove` runs it.
#
# Usage: scripts/demo-provider.sh ROOT
#   ROOT   a sandbox root made by scripts/demo-sandboxes.sh (its api.env names the server);
#          a node's "machine" is the directory ROOT/NODE
#
# What to do comes from the environment kupgrade sets (kupgrade_exec::provider documents it):
#   KUPGRADE_PROVIDER_ACTION=create  makes ROOT/NODE (its file `machine` first, so that a crash
#       leaves a machine that find reports), then registers node KUPGRADE_NODE in the API as a
#       joining kubelet would: the template's labels (KUPGRADE_LABELS), its own hostname label,
#       kubelet KUPGRADE_VERSION, Ready; prints {"name": NODE, "machine": ...} on stdout.
#   KUPGRADE_PROVIDER_ACTION=find    prints {"exists": true, ...} when ROOT/NODE/machine or
#       the Node object exists, {"exists": false} otherwise; changes nothing.
#   KUPGRADE_PROVIDER_ACTION=remove  deletes the Node object (gone already is fine) and the
#       directory ROOT/NODE.
# Every call is logged to ROOT/provider.log (`ACTION NODE`); logs go to stderr.
set -euo pipefail

log() { printf 'demo-provider: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

(($# == 1)) || die "usage: $0 ROOT"
ROOT=$1
[[ -f $ROOT/api.env ]] || die "$ROOT/api.env not found (make ROOT with scripts/demo-sandboxes.sh)"
# shellcheck disable=SC1091
. "$ROOT/api.env"
ACTION=${KUPGRADE_PROVIDER_ACTION:?KUPGRADE_PROVIDER_ACTION is not set}
NODE=${KUPGRADE_NODE:?KUPGRADE_NODE is not set}
# kupgrade checks node names; check again before the name becomes a path or part of a URL.
[[ $NODE =~ ^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$ ]] || die "bad node name: $NODE"
M=$ROOT/$NODE
printf '%s %s\n' "$ACTION" "$NODE" >>"$ROOT/provider.log"

RESP=$(mktemp)
trap 'rm -f "$RESP"' EXIT
# api METHOD PATH [BODY [merge]]: prints the HTTP status; the body is in $RESP.
api() {
  local ctype=application/json
  [[ ${4:-} == merge ]] && ctype=application/merge-patch+json
  curl -sS --max-time 10 --cacert "$CA" -H "Authorization: Bearer $TOKEN" -H "Content-Type: $ctype" \
    -X "$1" ${3:+--data-binary "$3"} -o "$RESP" -w '%{http_code}' "$URL$2"
}
must() { # must CODE... -- METHOD PATH [BODY [merge]]
  local ok=() code
  while [[ $1 != -- ]]; do ok+=("$1"); shift; done
  shift
  code=$(api "$@") || die "$1 $2: curl failed"
  [[ " ${ok[*]} " == *" $code "* ]] || { cat "$RESP" >&2; echo >&2; die "$1 $2: HTTP $code"; }
}

case $ACTION in
  create)
    VERSION=${KUPGRADE_VERSION:?} LABELS=${KUPGRADE_LABELS:-"{}"}
    [[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "bad version: $VERSION"
    [[ ${LABELS:0:1} == "{" ]] || die "KUPGRADE_LABELS is not a JSON object: $LABELS"
    case ${KUPGRADE_OS_FAMILY:-} in
      debian) OS="Ubuntu 22.04.4 LTS" ;;
      rhel) OS="Rocky Linux 9.3 (Blue Onyx)" ;;
      suse) OS="openSUSE Leap 15.5" ;;
      *) OS="Linux" ;;
    esac
    mkdir -p "$M"
    printf 'template=%s version=%s\n' "${KUPGRADE_TEMPLATE_NODE:-}" "$VERSION" >"$M/machine"
    log "machine $M made like ${KUPGRADE_TEMPLATE_NODE:-?}, joining at $VERSION"
    # The kubelet registers the node: the template's labels, then its own hostname.
    must 201 409 -- POST /api/v1/nodes \
      "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$NODE\",\"labels\":$LABELS}}"
    must 200 -- PATCH "/api/v1/nodes/$NODE" \
      "{\"metadata\":{\"labels\":{\"kubernetes.io/hostname\":\"$NODE\"}}}" merge
    must 200 -- PATCH "/api/v1/nodes/$NODE/status" "$(
      cat <<EOF
{"status": {
  "nodeInfo": {
    "kubeletVersion": "$VERSION", "kubeProxyVersion": "$VERSION", "osImage": "$OS",
    "operatingSystem": "linux", "architecture": "amd64", "kernelVersion": "6.1.0-18-amd64",
    "containerRuntimeVersion": "containerd://1.7.13", "machineID": "$NODE", "systemUUID": "$NODE",
    "bootID": "$NODE"
  },
  "conditions": [{
    "type": "Ready", "status": "True", "reason": "KubeletReady",
    "message": "set by scripts/demo-provider.sh",
    "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"
  }]
}}
EOF
    )" merge
    log "node $NODE joined: kubelet $VERSION, Ready"
    printf '{"name": "%s", "machine": "sandbox %s"}\n' "$NODE" "$NODE"
    ;;
  find)
    code=$(api GET "/api/v1/nodes/$NODE") || die "GET node $NODE: curl failed"
    case $code in 200 | 404) ;; *) cat "$RESP" >&2; die "GET node $NODE: HTTP $code" ;; esac
    if [[ -e $M/machine || $code == 200 ]]; then
      printf '{"exists": true, "machine": "sandbox %s"}\n' "$NODE"
    else
      printf '{"exists": false}\n'
    fi
    ;;
  remove)
    must 200 202 404 -- DELETE "/api/v1/nodes/$NODE"
    rm -rf -- "$M"
    log "node $NODE deleted, its machine $M too"
    ;;
  *) die "unknown KUPGRADE_PROVIDER_ACTION: $ACTION" ;;
esac
