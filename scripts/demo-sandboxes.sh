#!/usr/bin/env bash
# shellcheck disable=SC2016  # the stub bodies are single-quoted on purpose: they expand when run
# demo-sandboxes.sh - per-node sandboxes that act as kubeadm nodes of the test apiserver.
#
# Usage: scripts/demo-sandboxes.sh ROOT DIR NODE...
#   ROOT   the sandbox root to create (for `apply --executor local --sandbox ROOT`); it must not
#          exist yet or be empty
#   DIR    the directory written by `scripts/testenv.sh up DIR` (server URL from
#          $KUPGRADE_TEST_APISERVER_URL or DIR/env, admin token from DIR/tokens.csv, CA from
#          DIR/certs/apiserver.crt), seeded by scripts/seed-demo-cluster.sh
#   NODE   the node names (ROOT/NODE is that node's sandbox)
#
# The test apiserver has no kubelet and no node behind its Node objects. Each sandbox's bin/
# is a strict sandbox: the node's whole PATH under the local executor (and the stand-in
# kubelet), so a command the sandbox does not provide is not found instead of running this
# machine's program. It holds a few harmless programs (SANDBOX_PROGRAMS below, as scripts that
# exec the machine's own), and
# stub programs that keep package versions in
# ROOT/NODE/state, write the files commands would write under ROOT/NODE/fs, log every call
# to ROOT/NODE/log, and make the API show what a kubelet and kubeadm would:
#   systemctl restart kubelet   PATCH nodes/NODE/status: nodeInfo.kubeletVersion (and
#                               kubeProxyVersion) = the installed kubelet package, Ready;
#                               fails while ROOT/NODE/state/kubelet.broken exists (a node to
#                               fix by hand before resuming)
#   kubeadm upgrade apply vX    PATCH the static (mirror) pods of NODE to vX (etcd and CoreDNS
#                               to the versions kubeadm bundles for that minor, from
#                               crates/kupgrade-core/data/kubeadm-bundled-versions.json) and
#                               the kube-proxy DaemonSet to vX; records the cluster version
#   kubeadm upgrade node        on a node with a kube-apiserver mirror pod, the same static pod
#                               patches at the recorded cluster version
# Package installs (apt-get, dnf, zypper) are refused unless the pinned minor's repository was
# configured first (as pkgs.k8s.io behaves), and `kubeadm upgrade apply` unless the installed
# kubeadm is vX. Pre-staging's downloads (apt-get -o ... install --download-only, dnf install
# --downloadonly) and image pulls (kubeadm config images pull) succeed and install nothing.
# Nothing outside ROOT and the test apiserver is touched.
set -euo pipefail

log() { printf 'demo-sandboxes: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

(($# >= 3)) || die "usage: $0 ROOT DIR NODE..."
ROOT=$1 DIR=$2
shift 2
cd "$(dirname "$0")/.."
BUNDLED=crates/kupgrade-core/data/kubeadm-bundled-versions.json

[[ -d $DIR ]] || die "$DIR: not a directory"
URL=${KUPGRADE_TEST_APISERVER_URL:-}
if [[ -z $URL && -f $DIR/env ]]; then
  # shellcheck disable=SC1091
  URL=$(source "$DIR/env" && printf '%s' "${KUPGRADE_TEST_APISERVER_URL:-}")
fi
[[ -n $URL ]] || die "no server URL: set KUPGRADE_TEST_APISERVER_URL or give a DIR with an env file"
CA=$(cd "$DIR" && pwd)/certs/apiserver.crt
[[ -f $CA ]] || die "$CA: CA certificate not found"
TOKEN=
while IFS=, read -r tok user _; do
  if [[ $user == admin ]]; then TOKEN=$tok; break; fi
done <"$DIR/tokens.csv"
[[ -n $TOKEN ]] || die "$DIR/tokens.csv: no line for user admin"
[[ -f $BUNDLED ]] || die "$BUNDLED: not found"
if [[ -e $ROOT ]] && [[ -n $(ls -A "$ROOT") ]]; then die "$ROOT: exists and is not empty"; fi
mkdir -p "$ROOT"
ROOT=$(cd "$ROOT" && pwd)

# Shared by every stub: the server, and `minor etcd coredns` per line from kubeadm's table.
printf 'URL=%q\nCA=%q\nTOKEN=%q\n' "$URL" "$CA" "$TOKEN" >"$ROOT/api.env"
chmod 600 "$ROOT/api.env"
sed -n 's/.*"minor": *"\([0-9.]*\)", *"etcd": *"\([^"]*\)", *"coredns": *"\([^"]*\)".*/\1 \2 \3/p' \
  "$BUNDLED" >"$ROOT/bundled"
[[ -s $ROOT/bundled ]] || die "$BUNDLED: no rows with both etcd and CoreDNS"

# The prologue of every stub: where its node lives, a log line, a PATH without the stubs, and
# `api METHOD PATH BODY [merge|strategic]`.
read -r -d '' PROLOGUE <<'EOS' || true
set -eu
R=${KUPGRADE_NODE_ROOT:?KUPGRADE_NODE_ROOT is not set}
S=$R/state
NODE=${R##*/}
printf '%s\n' "${0##*/} $*" >>"$R/log"
PATH=/usr/local/bin:/usr/bin:/bin
api() {
  local ctype=application/merge-patch+json code out
  [ "${4:-merge}" = strategic ] && ctype=application/strategic-merge-patch+json
  . "$R/../api.env"
  out=$(mktemp "$R/api.XXXXXX")
  code=$(curl -sS --max-time 10 --cacert "$CA" -H "Authorization: Bearer $TOKEN" \
    -H "Content-Type: $ctype" -X "$1" --data-binary "$3" -o "$out" -w '%{http_code}' "$URL$2") || code=000
  case $code in
    2??) rm -f "$out" ;;
    *) echo "${0##*/}: $1 $2: HTTP $code: $(cat "$out")" >&2; rm -f "$out"; exit 1 ;;
  esac
}
EOS

# Harmless programs every sandbox provides (the same list as kupgrade_exec::node_env::
# SANDBOX_PROGRAMS; a test keeps them equal). Stubs of the same name win.
SANDBOX_PROGRAMS=(sh env cat echo printf test true false id sleep mkdir touch ls grep sed awk
  head tail tr cut wc sort uniq date dirname basename base64 mktemp chmod yes seq rm)

stub() { # stub NAME BODY: writes ROOT/NODE/bin/NAME
  printf '#!/bin/sh\n%s\n%s\n' "$PROLOGUE" "$2" >"$BIN/$1"
  chmod 755 "$BIN/$1"
}

for node in "$@"; do
  [[ $node =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || die "$node: not a node name"
  BIN=$ROOT/$node/bin
  mkdir -p "$BIN" "$ROOT/$node/state" "$ROOT/$node/fs"

  # sudo -n [env VAR=VALUE...] PROGRAM ARGS: runs it as this user (found in the sandbox only).
  printf '%s\n' '#!/bin/sh' \
    '[ "$1" = -n ] || { echo "stub sudo: called without -n" >&2; exit 1; }' \
    'shift' 'exec "$@"' >"$BIN/sudo"
  chmod 755 "$BIN/sudo"

  stub mkdir '[ "$1" = -p ] && shift
for d; do mkdir -p "$R/fs$d"; done'

  stub cp '[ "$1 $2" = "-a -T" ] || { echo "stub cp: only cp -a -T SRC DST" >&2; exit 1; }
mkdir -p "$R/fs$4"; echo "copy of $3" >"$R/fs$4/COPIED"'

  stub etcdctl 'for last; do :; done
mkdir -p "$R/fs${last%/*}"; echo "etcd snapshot" >"$R/fs$last"; echo "Snapshot saved at $last"'

  # tee FILE: the repository file decides which minor the package manager can install
  # (pre-staging's own source lists under /var/lib/kupgrade/prestage do not).
  stub tee 'mkdir -p "$R/fs${1%/*}"
cat >"$R/fs$1"
case $1 in
/var/lib/kupgrade/prestage/*) ;;
*) sed -n "s#.*/core:/stable:/v\([0-9.]*\)/.*#\1#p" "$R/fs$1" | head -n 1 >"$S/repo" ;;
esac
cat "$R/fs$1"'

  # install NAME VERSION: one package, from the configured repository only.
  INSTALL='install_pkg() {
  if [ "$(cat "$S/repo" 2>/dev/null)" != "${2%.*}" ]; then
    echo "no package $1 $2: the configured repository is v$(cat "$S/repo" 2>/dev/null)" >&2; exit 100
  fi
  echo "$2" >"$S/$1.pkg"; echo "Setting up $1 ($2)"
}'
  # Pre-staging: apt-get -o Dir::...=... (its own source list and index) update, and
  # install --download-only, which installs nothing (the pins are written to ROOT/NODE/state/downloaded).
  stub apt-get "$INSTALL"'
if [ "$1" = -o ]; then
  while [ "$1" = -o ]; do shift 2; done
  case "$1" in
  update) echo "Reading package lists... Done" ;;
  install) shift; for pin; do case $pin in -*) ;; *) echo "$pin" >>"$S/downloaded" ;; esac; done
    echo "Download complete and in download only mode" ;;
  *) echo "stub apt-get: $*" >&2; exit 100 ;;
  esac
  exit 0
fi
case "$1" in
update) echo "Reading package lists... Done" ;;
install)
  shift; [ "$1" = -y ] && shift
  for pin; do name=${pin%%=*}; v=${pin#*=}; install_pkg "$name" "${v%-\*}"; done ;;
*) echo "stub apt-get: $*" >&2; exit 100 ;;
esac'
  stub dpkg '[ "$1 $2" = "--triggers-only --pending" ] || { echo "stub dpkg: $*" >&2; exit 2; }'
  stub apt-mark 'verb=$1; shift
for p; do
  case $verb in hold) : >"$S/held.$p" ;; unhold) rm -f "$S/held.$p" ;; *) exit 1 ;; esac
done'
  stub dnf "$INSTALL"'
[ "$1 $2" = "install -y" ] || { echo "stub dnf: $*" >&2; exit 1; }
shift 2
case " $* " in *" --downloadonly "*)
  for a; do case $a in --*) ;; *) echo "$a" >>"$S/downloaded" ;; esac; done
  echo "The downloaded packages were saved in cache until the next successful transaction."; exit 0 ;;
esac
for a; do
  case $a in --*) continue ;; esac
  name=${a%%-[0-9]*}; v=${a#"$name"-}; install_pkg "$name" "${v%-\*}"
done'

  # zypper [--non-interactive] [--gpg-auto-import-keys] COMMAND: locks as files, like apt-mark.
  stub zypper "$INSTALL"'
while [ $# -gt 0 ]; do
  case $1 in --non-interactive|--gpg-auto-import-keys) shift ;; -*) echo "stub zypper: $1" >&2; exit 2 ;; *) break ;; esac
done
[ $# -gt 0 ] || { echo "stub zypper: no command" >&2; exit 1; }
verb=$1; shift
case $verb in
refresh) echo "Specified repositories have been refreshed." ;;
addlock) for p; do : >"$S/held.$p"; done ;;
removelock) for p; do rm -f "$S/held.$p"; done ;;
install)
  [ "${1:-}" = --oldpackage ] && shift
  for cap; do install_pkg "${cap%%=*}" "${cap#*=}"; done ;;
*) echo "stub zypper: $verb $*" >&2; exit 1 ;;
esac'

  stub systemctl 'case "$1 ${2:-}" in
"daemon-reload ") ;;
"restart kubelet")
  if [ -f "$S/kubelet.broken" ]; then
    echo "Job for kubelet.service failed because the control process exited with error code." >&2; exit 1
  fi
  v=v$(cat "$S/kubelet.pkg")
  api PATCH "/api/v1/nodes/$NODE/status" "{\"status\":{\"nodeInfo\":{\"kubeletVersion\":\"$v\",\"kubeProxyVersion\":\"$v\"},\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"message\":\"kubelet $v (scripts/demo-sandboxes.sh)\",\"lastHeartbeatTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"lastTransitionTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}]}}"
  echo "$v" >"$S/kubelet.running" ;;
*) echo "stub systemctl: $*" >&2; exit 1 ;;
esac'

  # static_pods VERSION: what the kubelet shows after kubeadm rewrote this node's manifests.
  stub kubeadm 'image() { # image COMPONENT REF
  api PATCH "/api/v1/namespaces/kube-system/pods/$1-$NODE" \
    "{\"spec\":{\"containers\":[{\"name\":\"$1\",\"image\":\"$2\"}]}}" strategic
}
static_pods() {
  v=$1; minor=${v#v}; minor=${minor%.*}
  etcd=$(awk -v m="$minor" "\$1 == m { print \$2 }" "$R/../bundled")
  [ -n "$etcd" ] || { echo "stub kubeadm: no etcd version known for $minor" >&2; exit 1; }
  for c in kube-apiserver kube-controller-manager kube-scheduler; do image "$c" "registry.k8s.io/$c:$v"; done
  image etcd "registry.k8s.io/etcd:$etcd"
}
case "$1 ${2:-}" in
"version -o") echo "v$(cat "$S/kubeadm.pkg")" ;;
"upgrade plan") echo "[upgrade/versions] Target version: $3" ;;
"config images") echo "[config/images] Pulled registry.k8s.io/kube-apiserver:$5" ;;
"upgrade apply")
  v=$3
  [ "v$(cat "$S/kubeadm.pkg")" = "$v" ] || { echo "[upgrade/version] FATAL: kubeadm is not $v" >&2; exit 1; }
  static_pods "$v"
  minor=${v#v}; minor=${minor%.*}
  dns=$(awk -v m="$minor" "\$1 == m { print \$3 }" "$R/../bundled")
  api PATCH /apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy \
    "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"kube-proxy\",\"image\":\"registry.k8s.io/kube-proxy:$v\"}]}}}}" strategic
  api PATCH /apis/apps/v1/namespaces/kube-system/deployments/coredns \
    "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"coredns\",\"image\":\"registry.k8s.io/coredns/coredns:$dns\"}]}}}}" strategic
  echo "$v" >"$R/../cluster-version"
  echo "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"$v\". Enjoy!" ;;
"upgrade node")
  if [ -f "$R/../cluster-version" ] && [ -f "$S/control-plane" ]; then static_pods "$(cat "$R/../cluster-version")"; fi
  echo "[upgrade] The configuration for this node was successfully updated!" ;;
*) echo "stub kubeadm: $*" >&2; exit 1 ;;
esac'
  # A script that execs the machine's program, not a symbolic link: writing a stub of the same
  # name later would follow a link and overwrite the machine's own program.
  for p in "${SANDBOX_PROGRAMS[@]}"; do
    if [[ ! -e $BIN/$p ]]; then
      found=$(type -P "$p") || die "$p: not found on PATH, so it cannot be provided in $BIN"
      [[ $found != *"'"* ]] || die "$found: cannot be written in a script"
      printf '#!/bin/sh\nexec %s "$@"\n' "'$found'" >"$BIN/$p"
      chmod 755 "$BIN/$p"
    fi
  done
  log "$ROOT/$node"
done
# Control-plane nodes: those with a kube-apiserver mirror pod (kubeadm upgrade node redoes
# their static pods).
for node in "$@"; do
  code=$(curl -sS --max-time 10 --cacert "$CA" -H "Authorization: Bearer $TOKEN" -o /dev/null \
    -w '%{http_code}' "$URL/api/v1/namespaces/kube-system/pods/kube-apiserver-$node") ||
    die "GET pod kube-apiserver-$node: curl failed"
  case $code in
    200) : >"$ROOT/$node/state/control-plane"; log "$node: control plane" ;;
    404) ;;
    *) die "GET pod kube-system/kube-apiserver-$node: HTTP $code" ;;
  esac
done
