#!/usr/bin/env bash
# shellcheck disable=SC2016  # node-side scripts are single-quoted on purpose: they expand in the node
# fleet.sh - real Debian nodes on this machine: each its own root (overlayfs over one cached
# bookworm root), network namespace and sshd; real apt against pkgs.k8s.io-shaped repositories.
#
# Usage:
#   scripts/fleet.sh packages        install the host tools (mmdebstrap, apt-utils, iproute2, ...)
#   scripts/fleet.sh rootfs          build the node root once into the cache
#   scripts/fleet.sh repo            build the signed deb and rpm repositories (v1.28..v1.31) once
#   scripts/fleet.sh up DIR N [API]  start N nodes (fleet-cp-1, fleet-w-1 ...) at v1.28 (API: the
#                                    directory of `scripts/testenv.sh up API`, whose apiserver the
#                                    nodes' kubeadm, kubelet and systemctl stubs act on); writes
#                                    DIR/env, DIR/hosts.yaml, DIR/known_hosts and DIR/id
#   scripts/fleet.sh down DIR        stop and remove everything `up DIR` made (idempotent)
#   scripts/fleet.sh leftovers DIR   list what of DIR's fleet still exists; exit 1 if anything does
#   scripts/fleet.sh seed API N      register the fleet's nodes (v1.28.15, Debian) on the test apiserver
#   scripts/fleet.sh test [--faults N] [--seed S] [--kinds K,...]
#                                    the whole path: apiserver, fleet, apply over SSH, checks, down;
#                                    with --faults, a campaign of N seeded faults of mixed kinds
#                                    (scripts/fleet-faults.sh) each resumed to the target, and a
#                                    summary table
#
# Environment: KUPGRADE_CACHE_DIR (default /var/cache/kupgrade): the root and the repositories
# go under its fleet/ folder. KUPGRADE_FLEET_CONTROL_PLANES (default 1): how many of the nodes
# (the first ones, fleet-cp-1 ...) are control-plane nodes. `test` reads KUPGRADE_FLEET_NODES
# (default 5), KUPGRADE_FLEET_TARGET (default 1.31: three hops), KUPGRADE_FLEET_FAULTS,
# KUPGRADE_FLEET_SEED (default 1) and KUPGRADE_FLEET_FAULT_KINDS (default all but kill) as
# --faults, --seed and --kinds do, KUPGRADE_FLEET_KILLS (default 0; without
# KUPGRADE_FLEET_FAULTS: that many faults of the kill kind, each costing the 60 s the killed
# run's lease holds), and runs with 2 control-plane nodes, 1 dnf node and 1 zypper node unless
# KUPGRADE_FLEET_CONTROL_PLANES, KUPGRADE_FLEET_RPM_NODES and KUPGRADE_FLEET_SUSE_NODES say
# otherwise. Needs root (namespaces, mounts, chroot). Each fleet has its own
# 198.18.X.0/24 (a benchmarking range; nothing is routed outside): a bridge kfID-br on this
# machine (.1, where the repository server and the apiserver forwarder listen) and one veth
# per node (.10, .11 ...); ID is a hash of DIR, so fleets in different DIRs do not meet.
# Every process of a node runs in its network namespace, in a private mount and PID namespace,
# chrooted in the node's root; `down` kills what `ip netns pids` lists, so nothing survives.
set -euo pipefail

readonly CACHE_DIR=${KUPGRADE_CACHE_DIR:-/var/cache/kupgrade}
readonly FLEET_CACHE=$CACHE_DIR/fleet
readonly ROOTFS_VERSION=2 REPO_VERSION=6
readonly ROOTFS=$FLEET_CACHE/rootfs-v$ROOTFS_VERSION
readonly REPO=$FLEET_CACHE/repo-v$REPO_VERSION
SCRIPTS=$(cd "$(dirname "$0")" && pwd) && readonly SCRIPTS
ROOT_DIR=$(dirname "$SCRIPTS") && readonly ROOT_DIR
readonly READY_TIMEOUT=${KUPGRADE_READY_TIMEOUT:-60}
readonly MINORS=(1.28 1.29 1.30 1.31)
# The node root: sshd, apt, gpg (keyring checks), curl (the stubs' API calls), sudo (the
# rendered commands start with `sudo -n`), dnf and rpm (a RHEL-family node), zypper (a
# SUSE-family node: Debian's zypper and libzypp against the same rpm repositories).
readonly ROOT_PACKAGES=openssh-server,sudo,gnupg,curl,ca-certificates,iproute2,dnf,rpm,zypper
readonly HOST_PACKAGES=(mmdebstrap apt-utils dpkg-dev rpm createrepo-c iproute2 openssh-client openssh-server
  gnupg openssl curl)

log() { printf 'fleet: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '6,21s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
need_root() { [[ $(id -u) == 0 ]] || die "needs root (network namespaces, mounts, chroot)"; }

# ---------------------------------------------------------------------------- packages
cmd_packages() {
  local p missing=()
  for p in "${HOST_PACKAGES[@]}"; do
    # shellcheck disable=SC2016
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# ------------------------------------------------------------------------------ rootfs
# The root counts as built only if its marker (written last) exists: a half-built one is
# rebuilt, under a lock, so concurrent runs build it once.
cmd_rootfs() {
  [[ -f $ROOTFS.done ]] && { log "node root cached: $ROOTFS"; return; }
  need_root
  mkdir -p "$FLEET_CACHE"
  exec 7>"$FLEET_CACHE/rootfs.lock"
  flock -n 7 || { log "another build holds the lock; waiting"; flock 7; }
  [[ -f $ROOTFS.done ]] && { log "node root built by a concurrent run"; return; }
  command -v mmdebstrap >/dev/null || die "mmdebstrap not found; run: $0 packages"
  local start=$SECONDS tmp=$ROOTFS.tmp
  rm -rf "$tmp" "$ROOTFS"
  log "building the node root (Debian bookworm minbase + $ROOT_PACKAGES)"
  # No mirror argument: mmdebstrap uses this machine's apt sources.
  mmdebstrap --quiet --variant=minbase --include="$ROOT_PACKAGES" bookworm "$tmp" >&2 ||
    die "mmdebstrap failed"
  # Each node gets its own host key at `up`; the nodes reach no Debian mirror, so the root
  # keeps no Debian source (apt-get update would fail on it): only pkgs.k8s.io's list.
  rm -f "$tmp"/etc/ssh/ssh_host_* "$tmp"/etc/apt/sources.list "$tmp"/etc/apt/sources.list.d/*
  rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/archives/*.deb
  mv "$tmp" "$ROOTFS"
  touch "$ROOTFS.done"
  log "node root built in $((SECONDS - start)) s: $ROOTFS ($(du -sh "$ROOTFS" | cut -f1))"
}

# ------------------------------------------------------------------ the test apiserver
# Read from the directory of `scripts/testenv.sh up API`.
api_url() { (
  # shellcheck disable=SC1091  # written by testenv.sh
  source "$1/env" && printf '%s' "$KUPGRADE_TEST_APISERVER_URL"
); }
api_token() { awk -F, '$2 == "admin" { print $1; exit }' "$1/tokens.csv"; }
api_get() { # api_get API PATH: the response body of a GET as the admin
  curl -sS --max-time 10 --cacert "$1/certs/apiserver.crt" -H "Authorization: Bearer $(api_token "$1")" \
    "$(api_url "$1")$2"
}

# --------------------------------------------------------------------------- naming
fleet_id() { printf '%s' "$1" | sha1sum | cut -c1-6; }   # fleet_id DIR (DIR absolute)
# The first KUPGRADE_FLEET_CONTROL_PLANES nodes (default 1) are control-plane nodes.
[[ ${1:-} == test ]] && : "${KUPGRADE_FLEET_CONTROL_PLANES:=2}"
readonly CONTROL_PLANES=${KUPGRADE_FLEET_CONTROL_PLANES:-1}
[[ $CONTROL_PLANES =~ ^[1-9]$ ]] || die "KUPGRADE_FLEET_CONTROL_PLANES must be 1 to 9, not '$CONTROL_PLANES'"
is_cp() { (($1 < CONTROL_PLANES)); }
# The last KUPGRADE_FLEET_RPM_NODES workers (default 0; `test`: 1) stand for RHEL-family nodes:
# dnf and rpm (Debian's) against the rpm repositories, shown as Rocky Linux on the API.
[[ ${1:-} == test ]] && : "${KUPGRADE_FLEET_RPM_NODES:=1}"
readonly RPM_NODES=${KUPGRADE_FLEET_RPM_NODES:-0}
[[ $RPM_NODES =~ ^[0-9]$ ]] || die "KUPGRADE_FLEET_RPM_NODES must be 0 to 9, not '$RPM_NODES'"
# The KUPGRADE_FLEET_SUSE_NODES workers before them (default 0; `test`: 1) stand for SUSE-family
# nodes: zypper against the rpm repositories, shown as openSUSE Leap on the API.
[[ ${1:-} == test ]] && : "${KUPGRADE_FLEET_SUSE_NODES:=1}"
readonly SUSE_NODES=${KUPGRADE_FLEET_SUSE_NODES:-0}
[[ $SUSE_NODES =~ ^[0-9]$ ]] || die "KUPGRADE_FLEET_SUSE_NODES must be 0 to 9, not '$SUSE_NODES'"
family() {   # family I N
  if is_cp "$1"; then echo deb
  elif (($1 >= $2 - RPM_NODES)); then echo rpm
  elif (($1 >= $2 - RPM_NODES - SUSE_NODES)); then echo suse
  else echo deb; fi
}
os_image() {
  case $1 in
  rpm) echo 'Rocky Linux 9.3 (Blue Onyx)' ;;
  suse) echo 'openSUSE Leap 15.5' ;;
  *) echo 'Debian GNU/Linux 12 (bookworm)' ;;
  esac
}
node_name() { if is_cp "$1"; then echo "fleet-cp-$(($1 + 1))"; else echo "fleet-w-$(($1 - CONTROL_PLANES + 1))"; fi; }

# is_ours PID DIR: PID is alive and its command line names DIR/ (guards against PID reuse).
is_ours() {
  [[ $1 =~ ^[0-9]+$ && -r /proc/$1/cmdline ]] && { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null | grep -qF -- "$2/"
}

# A free /24 in 198.18.0.0/15 (no address of it on this machine), under the caller's lock.
free_subnet() {
  local used x
  used=$(ip -4 -o addr show | awk '{print $4}')
  for x in $(seq 0 255); do
    grep -q "^198\.18\.$x\." <<<"$used" || { echo "198.18.$x"; return; }
  done
  die "no free /24 left in 198.18.0.0/16"
}

start_bg() {   # start_bg DIR NAME CMD...: detached, output to DIR/NAME.log, PID to DIR/NAME.pid
  local dir=$1 name=$2 && shift 2
  setsid "$@" </dev/null >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
  disown $!   # its end (killed by `down`) is no news to report
}

wait_for() {   # wait_for WHAT CMD...: until CMD succeeds, at most READY_TIMEOUT seconds
  local what=$1 deadline=$((SECONDS + READY_TIMEOUT)) && shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what not reached within $READY_TIMEOUT s"
    sleep 0.2
  done
}

# ---------------------------------------------------------------------------------- up
# node_files ROOT NAME ADDR NET ROLE DIR API: the node's own files, written into its overlay.
node_files() {
  local r=$1 name=$2 addr=$3 net=$4 role=$5 dir=$6 api=$7 family=$8
  echo "$name" >"$r/etc/hostname"
  printf '127.0.0.1 localhost\n%s %s\n%s.1 pkgs.k8s.io\n' "$addr" "$name" "$net" >"$r/etc/hosts"
  # sshd: its own host key, root by key only, listening on the node's address.
  ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$r/etc/ssh/ssh_host_ed25519_key"
  printf '%s\n' "ListenAddress $addr" "Port 22" "HostKey /etc/ssh/ssh_host_ed25519_key" \
    "PidFile /run/sshd.pid" "PermitRootLogin prohibit-password" "PasswordAuthentication no" \
    "KbdInteractiveAuthentication no" "UsePAM no" "PrintMotd no" "Subsystem sftp internal-sftp" \
    >"$r/etc/ssh/sshd_config_fleet"
  install -d -m 700 "$r/root/.ssh"
  install -m 600 "$dir/id.pub" "$r/root/.ssh/authorized_keys"
  : >"$r/root/.bashrc"   # nothing at login: the runner's commands start at once
  # apt: the keyring and the v1.28 source as kubeadm's documentation sets them up, and the
  # test CA for https://pkgs.k8s.io (served from this machine's end of the veth network).
  install -d -m 755 "$r/etc/apt/keyrings" "$r/etc/kupgrade-fleet" "$r/usr/local/lib/kupgrade-fleet" \
    "$r/var/log/kupgrade-fleet" "$r/etc/kubernetes/manifests"
  install -m 644 "$REPO/keys/kubernetes-apt-keyring.gpg" "$r/etc/apt/keyrings/kubernetes-apt-keyring.gpg"
  install -m 644 "$REPO/keys/ca.crt" "$r/etc/kupgrade-fleet/repo-ca.crt"
  echo 'Acquire::https::pkgs.k8s.io::CaInfo "/etc/kupgrade-fleet/repo-ca.crt";' >"$r/etc/apt/apt.conf.d/80kupgrade-fleet"
  if [[ $family == deb ]]; then
    echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.28/deb/ /" \
      >"$r/etc/apt/sources.list.d/kubernetes.list"
  elif [[ $family == rpm ]]; then
    # dnf: the .repo file of kubeadm's documentation; dnf (libcurl) trusts the system bundle.
    install -d -m 755 "$r/etc/yum.repos.d"
    printf '%s\n' '[kubernetes]' 'name=Kubernetes' 'baseurl=https://pkgs.k8s.io/core:/stable:/v1.28/rpm/' \
      'enabled=1' 'gpgcheck=1' 'gpgkey=https://pkgs.k8s.io/core:/stable:/v1.28/rpm/repodata/repomd.xml.key' \
      'exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni' >"$r/etc/yum.repos.d/kubernetes.repo"
    cat "$REPO/keys/ca.crt" >>"$r/etc/ssl/certs/ca-certificates.crt"
  else
    # zypper: the same repository without exclude= (zypper has none: packages are locked),
    # as kupgrade writes it. libzypp verifies repomd.xml's signature (repomd.xml.asc) and
    # keeps its rpm database in /var/lib/rpm, where rpm on a SUSE system looks too.
    install -d -m 755 "$r/etc/zypp/repos.d" "$r/etc/rpm"
    printf '%s\n' '[kubernetes]' 'name=Kubernetes' 'baseurl=https://pkgs.k8s.io/core:/stable:/v1.28/rpm/' \
      'enabled=1' 'gpgcheck=1' 'gpgkey=https://pkgs.k8s.io/core:/stable:/v1.28/rpm/repodata/repomd.xml.key' \
      >"$r/etc/zypp/repos.d/kubernetes.repo"
    echo '%_dbpath /var/lib/rpm' >"$r/etc/rpm/macros"
    cat "$REPO/keys/ca.crt" >>"$r/etc/ssl/certs/ca-certificates.crt"
  fi
  sed -n 's/.*"minor": *"\([0-9.]*\)", *"etcd": *"\([^"]*\)", *"coredns": *"\([^"]*\)".*/\1 \2 \3/p' \
    "$ROOT_DIR/crates/kupgrade-core/data/kubeadm-bundled-versions.json" >"$r/etc/kupgrade-fleet/bundled"
  if [[ $role == cp ]]; then
    # The static pod manifests of kubeadm's v1.28.15 control plane with its bundled etcd.
    local c etcd
    etcd=$(awk '$1 == "1.28" { print $2 }' "$r/etc/kupgrade-fleet/bundled")
    for c in kube-apiserver:v1.28.15 kube-controller-manager:v1.28.15 kube-scheduler:v1.28.15 "etcd:$etcd"; do
      printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: kube-system\nspec:\n  containers:\n  - name: %s\n    image: registry.k8s.io/%s\n' \
        "${c%%:*}" "${c%%:*}" "$c" >"$r/etc/kubernetes/manifests/${c%%:*}.yaml"
    done
    echo 'kind: Config' >"$r/etc/kubernetes/admin.conf"
  fi
  # The kubelet's kubeconfig, as kubeadm join leaves it: the cluster's endpoint.
  printf 'apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: LS0t\n    server: https://%s.1:6443\n  name: default-cluster\n' \
    "$net" >"$r/etc/kubernetes/kubelet.conf"
  # The API the stubs act on: the test apiserver through the forwarder on NET.1:6443 (curl
  # --connect-to keeps the name and certificate of the URL).
  if [[ -n $api ]]; then
    local url token
    url=$(api_url "$api") token=$(api_token "$api")
    install -m 644 "$api/certs/apiserver.crt" "$r/etc/kupgrade-fleet/apiserver-ca.crt"
    (umask 077 && printf 'URL=%s\nTOKEN=%s\nCONNECT=%s\n' "$url" "$token" \
      "${url#https://}:$net.1:6443" >"$r/etc/kupgrade-fleet/api.env")
  fi
  # The stub library of the payloads, and the programs a node without systemd lacks.
  cat >"$r/usr/local/lib/kupgrade-fleet/stub.sh" <<'EOS'
set -eu
NODE=$(cat /etc/hostname)
printf '%s %s\n' "${0##*/}" "$*" >>/var/log/kupgrade-fleet/calls.log
# kubeadm's upgrades also log their start and their end (with the exit status; a killed one
# has no end) to kubeadm.log, with the stub's version: the fault campaign proves from it that
# no upgrade that ended well ran again.
case "${0##*/} ${1:-} ${2:-}" in
"kubeadm upgrade apply" | "kubeadm upgrade node")
  echo "start ${V:-?} $*" >>/var/log/kupgrade-fleet/kubeadm.log
  trap 'echo "end ${V:-?} $* = $?" >>/var/log/kupgrade-fleet/kubeadm.log' EXIT ;;
esac
api() { # api METHOD PATH BODY [strategic]: a GET prints the response
  [ -f /etc/kupgrade-fleet/api.env ] || { echo "${0##*/}: no API configured (fleet up without API)" >&2; exit 1; }
  . /etc/kupgrade-fleet/api.env
  ctype=application/merge-patch+json
  [ "${4:-}" = strategic ] && ctype=application/strategic-merge-patch+json
  out=$(mktemp)
  code=$(curl -sS --max-time 10 --connect-to "$CONNECT" --cacert /etc/kupgrade-fleet/apiserver-ca.crt \
    -H "Authorization: Bearer $TOKEN" -H "Content-Type: $ctype" -X "$1" --data-binary "$3" \
    -o "$out" -w '%{http_code}' "$URL$2") || code=000
  case $code in
    2??) [ "$1" != GET ] || cat "$out"; rm -f "$out" ;;
    *) echo "${0##*/}: $1 $2: HTTP $code: $(cat "$out")" >&2; rm -f "$out"; exit 1 ;;
  esac
}
addons() { # addons VERSION: as kubeadm >= 1.28, kube-proxy and CoreDNS move only once every
  # control-plane node's kube-apiserver runs VERSION (by `upgrade apply` on a single control
  # plane, else by the last `upgrade node`)
  behind=$(api GET '/api/v1/namespaces/kube-system/pods?labelSelector=component%3Dkube-apiserver' '' |
    grep -o '"image": *"[^"]*"' | grep -v ":$1\"\$" || true)
  if [ -n "$behind" ]; then
    echo "[upgrade/addons] skipping the kube-proxy and CoreDNS upgrade: not every control-plane node runs $1 yet"
    return 0
  fi
  api PATCH /apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy \
    "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"kube-proxy\",\"image\":\"registry.k8s.io/kube-proxy:$1\"}]}}}}" strategic
  api PATCH /apis/apps/v1/namespaces/kube-system/deployments/coredns \
    "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"coredns\",\"image\":\"registry.k8s.io/coredns/coredns:$(bundled "$1" 3)\"}]}}}}" strategic
  echo "[upgrade/addons] kube-proxy and CoreDNS upgraded for $1"
}
bundled() { # bundled VERSION FIELD: kubeadm's etcd (2) or CoreDNS (3) for VERSION's minor
  m=${1#v}; m=${m%.*}
  awk -v m="$m" -v f="$2" '$1 == m { print $f }' /etc/kupgrade-fleet/bundled
}
image() { # image COMPONENT REF: COMPONENT's static pod manifest names REF, and its mirror pod runs it
  manifest "$1" "$2"
  api PATCH "/api/v1/namespaces/kube-system/pods/$1-$NODE" \
    "{\"spec\":{\"containers\":[{\"name\":\"$1\",\"image\":\"$2\"}]}}" strategic
}
manifest() { # manifest COMPONENT REF: the static pod manifest kubeadm writes
  printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: kube-system\nspec:\n  containers:\n  - name: %s\n    image: %s\n' \
    "$1" "$1" "$2" >"/etc/kubernetes/manifests/$1.yaml"
}
certs() { # certs: `kubeadm certs check-expiration -o json`, as kubeadm prints it (a year left)
  exp=$(date -u -d '+365 days' +%Y-%m-%dT%H:%M:%SZ) ca=$(date -u -d '+3650 days' +%Y-%m-%dT%H:%M:%SZ)
  echo '[check-expiration] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...'
  printf '{"kind":"CertificateExpirationInfo","apiVersion":"output.kubeadm.k8s.io/v1alpha3","certificates":['
  sep=
  for c in admin.conf apiserver apiserver-etcd-client apiserver-kubelet-client controller-manager.conf \
    etcd-healthcheck-client etcd-peer etcd-server front-proxy-client scheduler.conf super-admin.conf; do
    printf '%s{"name":"%s","expirationDate":"%s","residualTime":31536000,"externallyManaged":false,"caName":"ca","missing":false}' "$sep" "$c" "$exp"
    sep=,
  done
  printf '],"certificateAuthorities":['
  sep=
  for c in ca etcd-ca front-proxy-ca; do
    printf '%s{"name":"%s","expirationDate":"%s","residualTime":315360000,"externallyManaged":false,"missing":false}' "$sep" "$c" "$ca"
    sep=,
  done
  printf ']}\n'
}
static_pods() { # static_pods VERSION: what the kubelet shows after kubeadm rewrote the manifests
  for c in kube-apiserver kube-controller-manager kube-scheduler; do image "$c" "registry.k8s.io/$c:$1"; done
  etcd=$(bundled "$1" 2)
  [ -n "$etcd" ] || { echo "${0##*/}: no etcd version known for $1" >&2; exit 1; }
  image etcd "registry.k8s.io/etcd:$etcd"
}
EOS
  cat >"$r/usr/local/bin/systemctl" <<'EOS'
#!/bin/sh
# systemctl (fleet stub: no systemd in a node): restart kubelet shows the installed kubelet's
# version on the Node, as the restarted kubelet would.
. /usr/local/lib/kupgrade-fleet/stub.sh
case "$1 ${2:-}" in
"daemon-reload ") ;;
"restart kubelet")
  v=$(dpkg-query -W -f='${Version}\n' kubelet 2>/dev/null || rpm -q --qf '%{VERSION}\n' kubelet)
  # Two versions in the database (an interrupted rpm transaction nobody repaired): which
  # kubelet binary runs is undefined, so this kubelet does not come back.
  [ "$(printf '%s\n' "$v" | wc -l)" = 1 ] || {
    echo "systemctl (fleet stub): the package database lists kubelet more than once ($(echo $v)): an interrupted install was not repaired" >&2
    exit 1
  }
  v=v${v%%-*}
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  api PATCH "/api/v1/nodes/$NODE/status" "{\"status\":{\"nodeInfo\":{\"kubeletVersion\":\"$v\",\"kubeProxyVersion\":\"$v\"},\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"message\":\"kubelet $v (scripts/fleet.sh)\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"}]}}" ;;
*) echo "systemctl (fleet stub): $*" >&2; exit 1 ;;
esac
EOS
  cat >"$r/usr/local/bin/etcdctl" <<'EOS'
#!/bin/sh
# etcdctl (fleet stub): `snapshot save FILE` writes a file.
. /usr/local/lib/kupgrade-fleet/stub.sh
for last; do :; done
mkdir -p "${last%/*}" && echo "etcd snapshot (fleet stub)" >"$last" && echo "Snapshot saved at $last"
EOS
  chmod 755 "$r/usr/local/bin/systemctl" "$r/usr/local/bin/etcdctl"
}

# The node's init: in its own mount, UTS and PID namespace (so /proc, /dev and /run vanish
# with it, and its hostname is its own), chrooted in its root, sshd in the foreground.
readonly NODE_INIT='r=$1
mount -t proc proc "$r/proc"
mount -t tmpfs -o mode=755,size=64m tmpfs "$r/run" && mkdir -m 755 "$r/run/sshd"
mount -t tmpfs -o mode=755,size=1m tmpfs "$r/dev"
for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r n a b <<EOF
$d
EOF
  mknod -m 666 "$r/dev/$n" c "$a" "$b"
done
mkdir "$r/dev/pts" && mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"; ln -s /proc/self/fd "$r/dev/fd"; ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"
hostname "$(cat "$r/etc/hostname")"
exec chroot "$r" /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config_fleet'

# node_start NODE-DIR NS: the node's init (and sshd) in its namespaces; `up` starts it, the
# fault campaign starts it again after killing it. NODE-DIR/sshd.pid is unshare's PID, whose
# child is the node's PID 1 (sshd): killing either ends every process of the node.
node_start() {
  start_bg "$1" sshd ip netns exec "$2" unshare --mount --uts --pid --fork --kill-child \
    --propagation private sh -c "$NODE_INIT" node-init "$1/root"
}

# fleet_ssh DIR ADDR CMD...: a command on a node, with the fleet's key and strict host keys.
fleet_ssh() {
  local dir=$1 addr=$2 && shift 2
  ssh -n -i "$dir/id" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$dir/known_hosts" -o ConnectTimeout=5 "root@$addr" "$@"
}

cmd_up() {
  local dir=$1 n=$2 api=${3:-} id net i name ns addr r host peer family
  need_root
  [[ $n =~ ^[1-9][0-9]?$ ]] || die "N must be a number of nodes from 1 to 99, not '$n'"
  ((n >= CONTROL_PLANES)) || die "$n node(s) cannot hold $CONTROL_PLANES control-plane node(s)"
  if [[ -n $api ]]; then
    [[ -f $api/env && -f $api/tokens.csv ]] || die "$api: not a directory of 'scripts/testenv.sh up' (no env or tokens.csv)"
    api=$(cd "$api" && pwd -P)
  fi
  cmd_rootfs
  cmd_repo
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd -P)
  cmd_down "$dir"   # an earlier `up` on the same DIR is replaced, not doubled
  # From here on a failure (or a signal) leaves nothing behind (a caller's own EXIT trap, as
  # `test` has, is left in place: it tears the fleet down itself).
  local own_trap=
  if [[ -z $(trap -p EXIT) ]]; then
    # shellcheck disable=SC2064  # expand $dir now
    trap "log 'up failed: tearing down'; cmd_down '$dir'" EXIT
    own_trap=1
  fi
  id=$(fleet_id "$dir")
  local start=$SECONDS
  rm -f "$dir/id" "$dir/id.pub" "$dir/nodes.list"
  ssh-keygen -q -t ed25519 -N '' -C "fleet $dir" -f "$dir/id" </dev/null
  : >"$dir/known_hosts"
  exec 5>"$FLEET_CACHE/net.lock"
  flock 5
  net=$(free_subnet)
  echo "$net" >"$dir/net"
  ip link add "kf$id-br" type bridge
  ip addr add "$net.1/24" dev "kf$id-br"
  ip link set "kf$id-br" up
  flock -u 5
  {
    echo "nodes:"
  } >"$dir/hosts.yaml"
  for ((i = 0; i < n; i++)); do
    name=$(node_name "$i") ns=kupf-$id-$i addr=$net.$((10 + i)) r=$dir/nodes/$name
    host=kf$id-h$i peer=kf$id-p$i
    mkdir -p "$r"/{upper,work,root}
    mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$r/upper,workdir=$r/work" "$r/root"
    family=$(family "$i" "$n")
    node_files "$r/root" "$name" "$addr" "$net" "$(is_cp "$i" && echo cp || echo worker)" "$dir" "$api" "$family"
    echo "$addr $(cut -d' ' -f1,2 "$r/root/etc/ssh/ssh_host_ed25519_key.pub")" >>"$dir/known_hosts"
    ip netns add "$ns"
    ip link add "$host" type veth peer name "$peer"
    ip link set "$peer" netns "$ns"
    ip -n "$ns" link set "$peer" name eth0
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip link set "$host" master "kf$id-br" up
    node_start "$r" "$ns"
    # Only the ssh: fields count beside --kubeconfig; the rest makes it a valid inventory.
    printf '  - { name: %s, %s, ssh: { host: "%s", user: root } }\n' "$name" \
      "$(is_cp "$i" && echo 'roles: [control-plane], versions: { kubelet: v1.28.15, kube-apiserver: v1.28.15 }' ||
        echo 'versions: { kubelet: v1.28.15 }')" "$addr" >>"$dir/hosts.yaml"
    printf '%s %s %s %s\n' "$name" "$addr" "$ns" "$family" >>"$dir/nodes.list"
    # For the test of the teardown: a failure halfway through `up`.
    [[ ${KUPGRADE_FLEET_FAIL_AFTER:-} != "$name" ]] || die "failing after $name (KUPGRADE_FLEET_FAIL_AFTER)"
  done
  start_bg "$dir" repo python3 "$SCRIPTS/fleet-serve.py" repo --bind "$net.1" --port 443 \
    --dir "$REPO/www" --cert "$REPO/keys/server.crt" --key "$REPO/keys/server.key" --log "$dir/repo-access.log" \
    --fault "$dir/repo-fault"
  wait_for "the repository server" grep -q listening "$dir/repo.log"
  if [[ -n $api ]]; then
    local target
    target=$(api_url "$api") target=${target#https://}
    start_bg "$dir" forward python3 "$SCRIPTS/fleet-serve.py" forward --bind "$net.1" --port 6443 \
      --to "$target" --log "$dir/forward-access.log"
    wait_for "the apiserver forwarder" grep -q listening "$dir/forward.log"
  fi
  while read -r name addr ns family; do
    wait_for "sshd of $name ($addr)" fleet_ssh "$dir" "$addr" true
  done <"$dir/nodes.list"
  # Each node as kubeadm's documentation leaves it: v1.28 installed from pkgs.k8s.io, held.
  local pids=() failed=0
  local install
  while read -r name addr ns family; do
    install='set -e; apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubeadm=1.28.15-1.1 kubelet=1.28.15-1.1 kubectl=1.28.15-1.1 >/dev/null
      apt-mark hold kubeadm kubelet kubectl >/dev/null'
    [[ $family == rpm ]] &&
      install='dnf install -y -q kubeadm-1.28.15 kubelet-1.28.15 kubectl-1.28.15 --disableexcludes=kubernetes'
    [[ $family == suse ]] &&
      install='set -e; zypper --non-interactive --quiet --gpg-auto-import-keys refresh kubernetes
        zypper --non-interactive --quiet install kubeadm=1.28.15 kubelet=1.28.15 kubectl=1.28.15
        zypper --non-interactive --quiet addlock kubeadm kubelet kubectl'
    fleet_ssh "$dir" "$addr" "$install" >"$dir/nodes/$name/install.log" 2>&1 &
    pids+=($!)
  done <"$dir/nodes.list"
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  ((failed == 0)) || { cat "$dir"/nodes/*/install.log >&2; die "installing v1.28 on the nodes failed"; }
  printf 'export %s=%q\n' >"$dir/env" KUPGRADE_FLEET_DIR "$dir" KUPGRADE_FLEET_KEY "$dir/id" \
    KUPGRADE_FLEET_KNOWN_HOSTS "$dir/known_hosts" KUPGRADE_FLEET_HOSTS "$dir/hosts.yaml" \
    KUPGRADE_FLEET_NET "$net.0/24"
  [[ -z $own_trap ]] || trap - EXIT
  log "$n node(s) up in $((SECONDS - start)) s on $net.0/24 (v1.28.15 installed and held); source $dir/env"
}

# -------------------------------------------------------------------------------- down
# Everything is found from DIR (names derive from its hash), not from a list `up` may not have
# finished writing: namespaces kupf-ID-*, links kfID-*, mounts under DIR, servers named DIR.
cmd_down() {
  local dir=$1 id ns pid name i mnt
  [[ -d $dir ]] || return 0
  dir=$(cd "$dir" && pwd -P) id=$(fleet_id "$dir")
  for name in repo forward; do
    [[ -f $dir/$name.pid ]] || continue
    pid=$(<"$dir/$name.pid")
    if is_ours "$pid" "$dir"; then kill -TERM "$pid" 2>/dev/null || true; fi
    for ((i = 0; i < 30; i++)); do is_ours "$pid" "$dir" || break; sleep 0.1; done
    if is_ours "$pid" "$dir"; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$dir/$name.pid"
  done
  for ns in $(ip netns list | awk -v p="kupf-$id-" 'index($1, p) == 1 {print $1}'); do
    for ((i = 0; i < 50; i++)); do
      pid=$(ip netns pids "$ns" 2>/dev/null || true)
      [[ -z $pid ]] && break
      # shellcheck disable=SC2086  # one PID per word
      kill -KILL $pid 2>/dev/null || true
      sleep 0.1
    done
    [[ -z $(ip netns pids "$ns" 2>/dev/null || true) ]] || log "warning: processes survive in $ns: $(ip netns pids "$ns" | tr '\n' ' ')"
    ip netns del "$ns" || log "warning: cannot delete namespace $ns"
  done
  for name in $(ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep "^kf$id-" || true); do
    ip link del "$name" 2>/dev/null || true
  done
  # Mounts under DIR, deepest first.
  while read -r mnt; do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" || log "warning: cannot unmount $mnt"
  done < <(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
  rm -rf "$dir/nodes" "$dir/nodes.list" "$dir/env" "$dir/net" "$dir/repo-fault"
}

cmd_leftovers() {
  local dir=$1 id found=0 line
  dir=$(cd "$dir" 2>/dev/null && pwd -P || echo "$dir") id=$(fleet_id "$dir")
  while read -r line; do [[ -n $line ]] && { echo "namespace: $line"; found=1; }; done \
    < <(ip netns list | awk -v p="kupf-$id-" 'index($1, p) == 1 {print $1}')
  while read -r line; do [[ -n $line ]] && { echo "link: $line"; found=1; }; done \
    < <(ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep "^kf$id-" || true)
  while read -r line; do [[ -n $line ]] && { echo "mount: $line"; found=1; }; done \
    < <(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo)
  procs_naming "$dir" && found=1
  ((found == 0)) && log "no leftovers of $dir"
  ((found == 0))
}

procs_naming() { # procs_naming DIR: list the processes whose command line names DIR/; true if any
  local p found=1
  for p in /proc/[0-9]*; do
    [[ ${p#/proc/} == "$$" || ${p#/proc/} == "$BASHPID" ]] && continue
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$1/"; then
      echo "process: ${p#/proc/} $({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | cut -c1-120)"
      found=0
    fi
  done
  return $found
}

# ---------------------------------------------------------------------- repo, test
# shellcheck source=scripts/fleet-repo.sh
source "$SCRIPTS/fleet-repo.sh"
# shellcheck source=scripts/fleet-faults.sh
source "$SCRIPTS/fleet-faults.sh"
# shellcheck source=scripts/fleet-test.sh
source "$SCRIPTS/fleet-test.sh"

# A signal ends the script through its EXIT trap, which tears down what it started.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
case ${1:-} in
  packages) cmd_packages ;;
  rootfs) cmd_rootfs ;;
  repo) cmd_repo ;;
  up) [[ $# -ge 3 && $# -le 4 ]] || usage; cmd_up "$2" "$3" "${4:-}" ;;
  down) [[ $# -eq 2 ]] || usage; need_root; cmd_down "$2" ;;
  leftovers) [[ $# -eq 2 ]] || usage; cmd_leftovers "$2" ;;
  seed) [[ $# -eq 3 ]] || usage; cmd_seed "$2" "$3" ;;
  test) shift && cmd_test "$@" ;;
  -h | --help | help) usage 0 ;;
  *) usage ;;
esac
