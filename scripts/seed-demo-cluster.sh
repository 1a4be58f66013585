#!/usr/bin/env bash
# seed-demo-cluster.sh - make the test apiserver look like a small kubeadm cluster.
#
# Usage: scripts/seed-demo-cluster.sh [DIR]
#   DIR is a directory written by `scripts/testenv.sh up DIR` (default: the directory of
#   $KUPGRADE_TEST_KUBECONFIG). The server URL comes from $KUPGRADE_TEST_APISERVER_URL or
#   DIR/env, the admin token from DIR/tokens.csv, the CA from DIR/certs/apiserver.crt.
#
# Creates what discovery reads (crates/kupgrade-kube/src/discover.rs):
#   nodes     demo-cp-1 (control plane, v1.29.15, zone-a, Ubuntu), demo-w-1 (v1.29.15, zone-a,
#             openSUSE Leap), demo-w-2 (v1.28.15, zone-b, Rocky Linux): apt, zypper and dnf;
#             kubelet version, OS image and Ready set via /status
#   pods      kube-system static (mirror) pods on demo-cp-1: kube-apiserver,
#             kube-controller-manager, kube-scheduler v1.29.15, etcd 3.5.10-0 (stacked)
#   config    ConfigMap kube-system/kubeadm-config (ClusterConfiguration, etcd.local)
#   add-ons   DaemonSet kube-system/kube-proxy v1.29.15, Deployment kube-system/coredns v1.11.1
#   workload  for drains to evict: pods default/demo-web-NODE on each worker (controlled by a
#             ReplicaSet) and kube-system/kube-proxy-NODE on every node (controlled by the
#             DaemonSet, which drains leave); no controller runs, so an evicted pod stays gone
# Discovery reads only image tags, labels and spec.nodeName from pods, so pod status is not set.
# Idempotent, and it resets what an upgrade changes: an object that already exists (409) is
# left as it is, then node status, spec.unschedulable and every image tag are patched back to
# the versions above; evicted pods are created again. Any other HTTP error stops the script
# with the server's response.
set -euo pipefail

log() { printf 'seed-demo-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

DIR=${1:-}
if [[ -z $DIR ]]; then
  [[ -n ${KUPGRADE_TEST_KUBECONFIG:-} ]] || die "usage: $0 DIR (the directory of scripts/testenv.sh up DIR)"
  DIR=$(dirname "$KUPGRADE_TEST_KUBECONFIG")
fi
[[ -d $DIR ]] || die "$DIR: not a directory"
command -v curl >/dev/null || die "curl not found"

URL=${KUPGRADE_TEST_APISERVER_URL:-}
if [[ -z $URL && -f $DIR/env ]]; then
  # shellcheck disable=SC1091
  URL=$(source "$DIR/env" && printf '%s' "${KUPGRADE_TEST_APISERVER_URL:-}")
fi
[[ -n $URL ]] || die "no server URL: set KUPGRADE_TEST_APISERVER_URL or give a DIR with an env file"
CA=$DIR/certs/apiserver.crt
[[ -f $CA ]] || die "$CA: CA certificate not found"
[[ -f $DIR/tokens.csv ]] || die "$DIR/tokens.csv: not found"
TOKEN=
while IFS=, read -r tok user _; do
  if [[ $user == admin ]]; then TOKEN=$tok; break; fi
done <"$DIR/tokens.csv"
[[ -n $TOKEN ]] || die "$DIR/tokens.csv: no line for user admin"

RESP=$(mktemp)
trap 'rm -f "$RESP"' EXIT

# api METHOD PATH BODY [PATCH-TYPE]: sends BODY (JSON); POSTs accept 409 AlreadyExists,
# PATCHes are merge patches unless PATCH-TYPE says `strategic` (containers merged by name).
api() {
  local method=$1 path=$2 body=$3 ctype=application/json code
  [[ $method == PATCH ]] && ctype=application/merge-patch+json
  [[ ${4:-} == strategic ]] && ctype=application/strategic-merge-patch+json
  code=$(curl -sS --max-time 10 --cacert "$CA" -H "Authorization: Bearer $TOKEN" \
    -H "Content-Type: $ctype" -X "$method" --data-binary "$body" -o "$RESP" -w '%{http_code}' \
    "$URL$path") || die "$method $path: curl failed"
  case $code in
    2??) ;;
    409) [[ $method == POST ]] || { cat "$RESP" >&2; echo >&2; die "$method $path: HTTP 409"; } ;;
    *) cat "$RESP" >&2; echo >&2; die "$method $path: HTTP $code" ;;
  esac
}

NS=kube-system
KUBE=v1.29.15
OS_CP="Ubuntu 22.04.4 LTS"

# kube-system exists on a fresh apiserver; creating it is a no-op (409) there.
api POST /api/v1/namespaces '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"kube-system"}}'

# node NAME KUBELET OS ZONE ROLE(cp|worker)
node() {
  local name=$1 kubelet=$2 os=$3 zone=$4 role=$5 cp_label=
  [[ $role == cp ]] && cp_label='"node-role.kubernetes.io/control-plane": "",'
  api POST /api/v1/nodes "$(cat <<EOF
{
  "apiVersion": "v1", "kind": "Node",
  "metadata": {
    "name": "$name",
    "labels": {
      $cp_label
      "kubernetes.io/hostname": "$name",
      "kubernetes.io/os": "linux",
      "kubernetes.io/arch": "amd64",
      "topology.kubernetes.io/zone": "$zone",
      "kupgrade-demo": "true"
    }
  }
}
EOF
)"
  api PATCH "/api/v1/nodes/$name" '{"spec":{"unschedulable":null}}'
  api PATCH "/api/v1/nodes/$name/status" "$(cat <<EOF
{
  "status": {
    "nodeInfo": {
      "kubeletVersion": "$kubelet", "kubeProxyVersion": "$kubelet", "osImage": "$os",
      "operatingSystem": "linux", "architecture": "amd64", "kernelVersion": "6.1.0-18-amd64",
      "containerRuntimeVersion": "containerd://1.7.13", "machineID": "$name", "systemUUID": "$name",
      "bootID": "$name"
    },
    "conditions": [{
      "type": "Ready", "status": "True", "reason": "KubeletReady",
      "message": "set by scripts/seed-demo-cluster.sh",
      "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"
    }]
  }
}
EOF
)"
  log "node $name: kubelet $kubelet, $os, $zone"
}

# static_pod COMPONENT IMAGE NODE: a mirror pod as the kubelet creates it for a static pod.
static_pod() {
  local component=$1 image=$2 node=$3
  api POST "/api/v1/namespaces/$NS/pods" "$(cat <<EOF
{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {
    "name": "$component-$node", "namespace": "$NS",
    "labels": { "component": "$component", "tier": "control-plane" },
    "annotations": {
      "kubernetes.io/config.mirror": "0123456789abcdef0123456789abcdef",
      "kubernetes.io/config.source": "file"
    }
  },
  "spec": {
    "nodeName": "$node",
    "priorityClassName": "system-node-critical",
    "hostNetwork": true,
    "containers": [{ "name": "$component", "image": "$image" }]
  }
}
EOF
)"
  api PATCH "/api/v1/namespaces/$NS/pods/$component-$node" \
    "{\"spec\":{\"containers\":[{\"name\":\"$component\",\"image\":\"$image\"}]}}" strategic
  log "pod $NS/$component-$node: $image"
}

# owned_pod NAMESPACE NAME NODE IMAGE OWNER-KIND OWNER-NAME: a pod bound to NODE, as its
# controller would have created it (the owner is only named: no controller runs here).
owned_pod() {
  local ns=$1 name=$2 node=$3 image=$4 kind=$5 owner=$6
  api POST "/api/v1/namespaces/$ns/pods" "$(cat <<EOF
{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {
    "name": "$name", "namespace": "$ns", "labels": { "app": "$owner" },
    "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "$kind", "name": "$owner",
      "uid": "00000000-0000-4000-8000-000000000001", "controller": true }]
  },
  "spec": {
    "nodeName": "$node",
    "containers": [{ "name": "main", "image": "$image" }]
  }
}
EOF
)"
  log "pod $ns/$name on $node ($kind $owner)"
}

# workload KIND(DaemonSet|Deployment) PLURAL NAME IMAGE
workload() {
  local kind=$1 plural=$2 name=$3 image=$4
  api POST "/apis/apps/v1/namespaces/$NS/$plural" "$(cat <<EOF
{
  "apiVersion": "apps/v1", "kind": "$kind",
  "metadata": { "name": "$name", "namespace": "$NS", "labels": { "k8s-app": "$name" } },
  "spec": {
    "selector": { "matchLabels": { "k8s-app": "$name" } },
    "template": {
      "metadata": { "labels": { "k8s-app": "$name" } },
      "spec": { "containers": [{ "name": "$name", "image": "$image" }] }
    }
  }
}
EOF
)"
  api PATCH "/apis/apps/v1/namespaces/$NS/$plural/$name" \
    "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"$name\",\"image\":\"$image\"}]}}}}" strategic
  log "${kind,,} $NS/$name: $image"
}

node demo-cp-1 "$KUBE" "$OS_CP" zone-a cp
node demo-w-1 "$KUBE" "openSUSE Leap 15.5" zone-a worker
node demo-w-2 v1.28.15 "Rocky Linux 9.3 (Blue Onyx)" zone-b worker

for c in kube-apiserver kube-controller-manager kube-scheduler; do
  static_pod "$c" "registry.k8s.io/$c:$KUBE" demo-cp-1
done
static_pod etcd registry.k8s.io/etcd:3.5.10-0 demo-cp-1

# The ClusterConfiguration as one JSON string (newlines escaped).
CLUSTER_CONFIG='apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nclusterName: demo\nkubernetesVersion: v1.29.15\ncontrolPlaneEndpoint: demo-cp-1:6443\nimageRepository: registry.k8s.io\netcd:\n  local:\n    dataDir: /var/lib/etcd\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\n'
api POST "/api/v1/namespaces/$NS/configmaps" "$(cat <<EOF
{
  "apiVersion": "v1", "kind": "ConfigMap",
  "metadata": { "name": "kubeadm-config", "namespace": "$NS" },
  "data": { "ClusterConfiguration": "$CLUSTER_CONFIG" }
}
EOF
)"
log "configmap $NS/kubeadm-config: clusterName demo, stacked etcd"

workload DaemonSet daemonsets kube-proxy "registry.k8s.io/kube-proxy:$KUBE"
workload Deployment deployments coredns registry.k8s.io/coredns/coredns:v1.11.1

for n in demo-cp-1 demo-w-1 demo-w-2; do
  owned_pod "$NS" "kube-proxy-$n" "$n" "registry.k8s.io/kube-proxy:$KUBE" DaemonSet kube-proxy
done
for n in demo-w-1 demo-w-2; do
  owned_pod default "demo-web-$n" "$n" registry.k8s.io/pause:3.9 ReplicaSet demo-web-5d8f7c
done
log "done: $URL"
