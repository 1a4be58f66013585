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
#   scripts/fleet.sh test            the whole path: apiserver, fleet, apply over SSH, checks, down
#
# Environment: KUPGRADE_CACHE_DIR (default /var/cache/kupgrade): the root and the repositories
# go under its fleet/ folder. KUPGRADE_FLEET_CONTROL_PLANES (default 1): how many of the nodes
# (the first ones, fleet-cp-1 ...) are control-plane nodes. `test` reads KUPGRADE_FLEET_NODES
# (default 5), KUPGRADE_FLEET_TARGET (default 1.31: three hops), KUPGRADE_FLEET_KILLS (default
# 0: how often to SIGKILL the runner at a random moment and resume; each costs the 60 s the
# killed run's lease holds) with KUPGRADE_FLEET_SEED (default 1), and runs with 2 control-plane
# nodes and 1 dnf node unless KUPGRADE_FLEET_CONTROL_PLANES and KUPGRADE_FLEET_RPM_NODES say
# otherwise. Needs root (namespaces, mounts, chroot). Each fleet has its own
# 198.18.X.0/24 (a benchmarking range; nothing is routed outside): a bridge kfID-br on this
# machine (.1, where the repository server and the apiserver forwarder listen) and one veth
# per node (.10, .11 ...); ID is a hash of DIR, so fleets in different DIRs do not meet.
# Every process of a node runs in its network namespace, in a private mount and PID namespace,
# chrooted in the node's root; `down` kills what `ip netns pids` lists, so nothing survives.
set -euo pipefail

readonly CACHE_DIR=${KUPGRADE_CACHE_DIR:-/var/cache/kupgrade}
readonly FLEET_CACHE=$CACHE_DIR/fleet
readonly ROOTFS_VERSION=1 REPO_VERSION=3
readonly ROOTFS=$FLEET_CACHE/rootfs-v$ROOTFS_VERSION
readonly REPO=$FLEET_CACHE/repo-v$REPO_VERSION
SCRIPTS=$(cd "$(dirname "$0")" && pwd) && readonly SCRIPTS
ROOT_DIR=$(dirname "$SCRIPTS") && readonly ROOT_DIR
readonly READY_TIMEOUT=${KUPGRADE_READY_TIMEOUT:-60}
readonly MINORS=(1.28 1.29 1.30 1.31)
# The node root: sshd, apt, gpg (keyring checks), curl (the stubs' API calls), sudo (the
# rendered commands start with `sudo -n`), dnf and rpm (a RHEL-family node, later).
readonly ROOT_PACKAGES=openssh-server,sudo,gnupg,curl,ca-certificates,iproute2,dnf,rpm
readonly HOST_PACKAGES=(mmdebstrap apt-utils dpkg-dev rpm createrepo-c iproute2 openssh-client openssh-server
  gnupg openssl curl)

log() { printf 'fleet: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '5,17s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
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

# -------------------------------------------------------------------------------- repo
# Upstream-shaped versions: kubeadm, kubelet, kubectl at the last three patches of each minor
# the calendar knows (`1.29.15-1.1`), kubernetes-cni and cri-tools as pkgs.k8s.io ships them.
patches() { # patches MINOR: the last three patch versions of MINOR known to the calendar
  python3 - "$1" "$ROOT_DIR/crates/kupgrade-core/data/k8s-releases.json" <<'EOF'
import json, sys
minor, path = sys.argv[1], sys.argv[2]
data = json.load(open(path))
for m in data.get("minors") or data.get("releases"):
    if m["minor"] == minor:
        last = int(m["latest_known_patch"].split(".")[2])
        print(" ".join("%s.%d" % (minor, p) for p in range(max(0, last - 2), last + 1)))
EOF
}
cni_version() { case $1 in 1.28) echo 1.2.0 ;; 1.29) echo 1.3.0 ;; 1.30) echo 1.4.0 ;; *) echo 1.5.1 ;; esac; }

# deb OUT NAME VERSION DEPENDS PAYLOAD-PATH PAYLOAD: one package with one executable file.
deb() {
  local out=$1 name=$2 version=$3 depends=$4 path=$5 payload=$6 tree
  tree=$(mktemp -d)
  mkdir -p "$tree/DEBIAN" "$tree$(dirname "$path")"
  printf '%s\n' "$payload" >"$tree$path" && chmod 755 "$tree$path"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: amd64"
    echo "Maintainer: kupgrade fleet <fleet@kupgrade.invalid>"
    [[ -n $depends ]] && echo "Depends: $depends"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Description: $name stub for kupgrade's test fleet (scripts/fleet.sh)"
  } >"$tree/DEBIAN/control"
  dpkg-deb --root-owner-group -Zgzip -b "$tree" "$out/${name}_${version}_amd64.deb" >/dev/null
  rm -rf "$tree"
}

# rpm OUT NAME VERSION-RELEASE REQUIRES PAYLOAD-PATH PAYLOAD: the same as an rpm (unsigned;
# signed with the whole repository). No automatic requirements: the node's rpm database knows
# only what dnf installed (its /bin/sh is dpkg's).
rpm_pkg() {
  local out=$1 name=$2 version=${3%-*} release=${3##*-} requires=$4 path=$5 payload=$6 top
  top=$(mktemp -d)
  mkdir -p "$top/SOURCES"
  printf '%s\n' "$payload" >"$top/SOURCES/payload"
  {
    echo "Name: $name"
    echo "Version: $version"
    echo "Release: $release"
    echo "Summary: $name stub for kupgrade's test fleet (scripts/fleet.sh)"
    echo "License: Apache-2.0"
    echo "BuildArch: x86_64"
    echo "AutoReqProv: no"
    echo "Source0: payload"
    [[ -n $requires ]] && echo "Requires: $requires"
    echo '%global debug_package %{nil}'
    echo '%global __os_install_post %{nil}'
    echo '%description'
    echo "$name stub for kupgrade's test fleet"
    echo '%install'
    echo "install -D -m 755 %{SOURCE0} %{buildroot}$path"
    echo '%files'
    echo "$path"
  } >"$top/$name.spec"
  rpmbuild --quiet -bb --define "_topdir $top" "$top/$name.spec" >/dev/null 2>&1 ||
    die "rpmbuild $name $version-$release failed"
  mv "$top"/RPMS/x86_64/*.rpm "$out/"
  rm -rf "$top"
}

# pkg MINOR-DIR NAME VERSION DEPENDS PAYLOAD-PATH PAYLOAD: NAME at VERSION (upstream's, without
# the packaging revision) in the minor's deb (VERSION-1.1) and rpm (VERSION-150500.1.1)
# repositories; DEPENDS as "NAME >= VERSION, ...".
pkg() {
  local dir=$1 name=$2 version=$3 depends=$4 path=$5 payload=$6 debdeps
  debdeps=$(sed -E 's/([a-z-]+) >= ([0-9.]+)/\1 (>= \2)/g' <<<"$depends")
  deb "$dir/deb/amd64" "$name" "$version-1.1" "$debdeps" "$path" "$payload"
  rpm_pkg "$dir/rpm/x86_64" "$name" "$version-150500.1.1" "$depends" "$path" "$payload"
}

# The payloads: what kubeadm and a kubelet would make the API show, through the node's stub
# library (/usr/local/lib/kupgrade-fleet/stub.sh, written by `up`).
kubeadm_payload() {
  printf '#!/bin/sh\nV=v%s\n' "$1"
  cat <<'EOS'
. /usr/local/lib/kupgrade-fleet/stub.sh
case "$1 ${2:-}" in
"version -o") echo "$V" ;;
"version ") echo "kubeadm version: &version.Info{GitVersion:\"$V\"}" ;;
"upgrade plan") echo "[upgrade/versions] kubeadm version: $V" ;;
"upgrade apply")
  [ "${3:-}" = "$V" ] || { echo "[upgrade/version] FATAL: the kubeadm version is $V, not ${3:-}" >&2; exit 1; }
  static_pods "$V"
  addons "$V"
  echo "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"$V\". Enjoy!" ;;
"upgrade node")
  if [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; then static_pods "$V"; addons "$V"; fi
  echo "[upgrade] The configuration for this node was successfully updated!" ;;
*) echo "kubeadm (fleet stub): $*" >&2; exit 1 ;;
esac
EOS
}

cmd_repo() {
  [[ -f $REPO.done ]] && { log "repositories cached: $REPO"; return; }
  mkdir -p "$FLEET_CACHE"
  exec 6>"$FLEET_CACHE/repo.lock"
  flock -n 6 || { log "another build holds the lock; waiting"; flock 6; }
  [[ -f $REPO.done ]] && { log "repositories built by a concurrent run"; return; }
  local tool
  for tool in apt-ftparchive rpmbuild rpmsign createrepo_c; do
    command -v "$tool" >/dev/null || die "$tool not found; run: $0 packages"
  done
  local start=$SECONDS tmp=$REPO.tmp minor dir v cni gh
  rm -rf "$tmp" "$REPO" && mkdir -p "$tmp/keys" "$tmp/www"
  gh=$(mktemp -d) && chmod 700 "$gh"
  # shellcheck disable=SC2064
  trap "gpgconf --homedir '$gh' --kill all 2>/dev/null; rm -rf '$gh'" RETURN

  # The test signing key (the same for every minor, as upstream's), and the keyring the nodes
  # keep at /etc/apt/keyrings/kubernetes-apt-keyring.gpg (binary, as `gpg --dearmor` makes it).
  gpg --homedir "$gh" --batch --quiet --passphrase '' \
    --quick-gen-key 'kupgrade fleet test repository <fleet@kupgrade.invalid>' ed25519 sign never
  gpg --homedir "$gh" --batch --armor --export >"$tmp/keys/Release.key"
  gpg --homedir "$gh" --batch --export >"$tmp/keys/kubernetes-apt-keyring.gpg"
  # The test CA the nodes trust for https://pkgs.k8s.io, and the server's certificate.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
    -subj '/CN=kupgrade fleet test CA' -keyout "$tmp/keys/ca.key" -out "$tmp/keys/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=pkgs.k8s.io' \
    -keyout "$tmp/keys/server.key" -out "$tmp/keys/server.csr" 2>/dev/null
  openssl x509 -req -in "$tmp/keys/server.csr" -CA "$tmp/keys/ca.crt" -CAkey "$tmp/keys/ca.key" \
    -CAcreateserial -days 36500 -out "$tmp/keys/server.crt" \
    -extfile <(printf 'subjectAltName=DNS:pkgs.k8s.io\nextendedKeyUsage=serverAuth\n') 2>/dev/null

  for minor in "${MINORS[@]}"; do
    dir=$tmp/www/core:/stable:/v$minor
    mkdir -p "$dir/deb/amd64" "$dir/rpm/x86_64"
    cni=$(cni_version "$minor")
    pkg "$dir" kubernetes-cni "$cni" "" /opt/cni/bin/loopback '#!/bin/sh
echo "CNI loopback plugin (fleet stub)"'
    pkg "$dir" cri-tools "$minor.0" "" /usr/bin/crictl "#!/bin/sh
echo 'crictl version v$minor.0 (fleet stub)'"
    for v in $(patches "$minor"); do
      pkg "$dir" kubeadm "$v" "cri-tools >= 1.28.0" /usr/bin/kubeadm "$(kubeadm_payload "$v")"
      pkg "$dir" kubelet "$v" "kubernetes-cni >= 1.2.0, cri-tools >= 1.28.0" /usr/bin/kubelet "#!/bin/sh
echo 'Kubernetes v$v'"
      pkg "$dir" kubectl "$v" "" /usr/bin/kubectl "#!/bin/sh
echo 'Client Version: v$v'"
    done
    # rpm: signed packages, repodata by createrepo_c, the key where the .repo file's gpgkey= looks.
    rpmsign --define "__gpg $(command -v gpg)" --define "_gpg_path $gh" \
      --define '_gpg_name kupgrade fleet test repository' --addsign "$dir"/rpm/x86_64/*.rpm </dev/null >/dev/null 2>&1 ||
      die "rpmsign failed"
    createrepo_c -q "$dir/rpm"
    cp "$tmp/keys/Release.key" "$dir/rpm/repodata/repomd.xml.key"
    dir=$dir/deb
    # A flat repository, as pkgs.k8s.io's: `deb [signed-by=...] URL/core:/stable:/vN/deb/ /`.
    (cd "$dir" && apt-ftparchive packages amd64 >Packages && gzip -9kn Packages &&
      apt-ftparchive -o "APT::FTPArchive::Release::Origin=obs://build.opensuse.org/isv:kubernetes:core:stable:v$minor/deb" \
        -o "APT::FTPArchive::Release::Label=isv:kubernetes:core:stable:v$minor" \
        -o APT::FTPArchive::Release::Architectures=amd64 release . >Release)
    gpg --homedir "$gh" --batch --yes --clearsign -o "$dir/InRelease" "$dir/Release"
    gpg --homedir "$gh" --batch --yes --armor --detach-sign -o "$dir/Release.gpg" "$dir/Release"
    cp "$tmp/keys/Release.key" "$dir/Release.key"
  done
  rm -f "$tmp/keys/server.csr"
  mv "$tmp" "$REPO"
  touch "$REPO.done"
  log "repositories built in $((SECONDS - start)) s: $REPO/www ($(find "$REPO/www" -name '*.deb' | wc -l) deb, $(find "$REPO/www" -name '*.rpm' | wc -l) rpm packages)"
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

lease_left() { # lease_left API: seconds until the run lease (kube-system/kupgrade) expires, 0 if free
  api_get "$1" /apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kupgrade | python3 -c '
import datetime, json, sys
spec = json.load(sys.stdin).get("spec") or {}
t = spec.get("renewTime") or spec.get("acquireTime")
if not spec.get("holderIdentity") or not t:
    print(0)
else:
    end = datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) + datetime.timedelta(
        seconds=spec.get("leaseDurationSeconds", 0))
    print(max(0, int((end - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 1))'
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
family() { if ! is_cp "$1" && (($1 >= $2 - RPM_NODES)); then echo rpm; else echo deb; fi; }   # family I N
os_image() { if [[ $1 == rpm ]]; then echo 'Rocky Linux 9.3 (Blue Onyx)'; else echo 'Debian GNU/Linux 12 (bookworm)'; fi; }
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
  else
    # dnf: the .repo file of kubeadm's documentation; dnf (libcurl) trusts the system bundle.
    install -d -m 755 "$r/etc/yum.repos.d"
    printf '%s\n' '[kubernetes]' 'name=Kubernetes' 'baseurl=https://pkgs.k8s.io/core:/stable:/v1.28/rpm/' \
      'enabled=1' 'gpgcheck=1' 'gpgkey=https://pkgs.k8s.io/core:/stable:/v1.28/rpm/repodata/repomd.xml.key' \
      'exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni' >"$r/etc/yum.repos.d/kubernetes.repo"
    cat "$REPO/keys/ca.crt" >>"$r/etc/ssl/certs/ca-certificates.crt"
  fi
  sed -n 's/.*"minor": *"\([0-9.]*\)", *"etcd": *"\([^"]*\)", *"coredns": *"\([^"]*\)".*/\1 \2 \3/p' \
    "$ROOT_DIR/crates/kupgrade-core/data/kubeadm-bundled-versions.json" >"$r/etc/kupgrade-fleet/bundled"
  if [[ $role == cp ]]; then
    printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: kube-apiserver, namespace: kube-system}\n' \
      >"$r/etc/kubernetes/manifests/kube-apiserver.yaml"
    echo 'kind: Config' >"$r/etc/kubernetes/admin.conf"
  fi
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
image() { # image COMPONENT REF: the mirror pod of COMPONENT on this node runs REF
  api PATCH "/api/v1/namespaces/kube-system/pods/$1-$NODE" \
    "{\"spec\":{\"containers\":[{\"name\":\"$1\",\"image\":\"$2\"}]}}" strategic
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
  v=v$(dpkg-query -W -f='${Version}' kubelet 2>/dev/null || rpm -q --qf '%{VERSION}' kubelet); v=${v%%-*}
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
    start_bg "$r" sshd ip netns exec "$ns" unshare --mount --uts --pid --fork --kill-child \
      --propagation private sh -c "$NODE_INIT" node-init "$r/root"
    # Only the ssh: fields count beside --kubeconfig; the rest makes it a valid inventory.
    printf '  - { name: %s, %s, ssh: { host: "%s", user: root } }\n' "$name" \
      "$(is_cp "$i" && echo 'roles: [control-plane], versions: { kubelet: v1.28.15, kube-apiserver: v1.28.15 }' ||
        echo 'versions: { kubelet: v1.28.15 }')" "$addr" >>"$dir/hosts.yaml"
    printf '%s %s %s %s\n' "$name" "$addr" "$ns" "$family" >>"$dir/nodes.list"
    # For the test of the teardown: a failure halfway through `up`.
    [[ ${KUPGRADE_FLEET_FAIL_AFTER:-} != "$name" ]] || die "failing after $name (KUPGRADE_FLEET_FAIL_AFTER)"
  done
  start_bg "$dir" repo python3 "$SCRIPTS/fleet-serve.py" repo --bind "$net.1" --port 443 \
    --dir "$REPO/www" --cert "$REPO/keys/server.crt" --key "$REPO/keys/server.key" --log "$dir/repo-access.log"
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
  rm -rf "$dir/nodes" "$dir/nodes.list" "$dir/env" "$dir/net"
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

# -------------------------------------------------------------------------------- seed
# The fleet's nodes as the API shows a kubeadm cluster at v1.28.15 (Debian): Node objects
# (Ready, kubelet version, OS image), the control plane's mirror pods on each control-plane node, the
# kubeadm-config ConfigMap, kube-proxy and CoreDNS, and a workload pod on each worker for
# the drains to evict (as scripts/seed-demo-cluster.sh does for the demo nodes).
cmd_seed() {
  local api=$1 n=$2 url token resp i name
  url=$(api_url "$api") token=$(api_token "$api")
  resp=$(mktemp)
  # shellcheck disable=SC2064
  trap "rm -f '$resp'" RETURN
  api() { # api METHOD PATH BODY [strategic]: POST accepts 409 (already there)
    local ctype=application/json code
    [[ $1 == PATCH ]] && ctype=application/merge-patch+json
    [[ ${4:-} == strategic ]] && ctype=application/strategic-merge-patch+json
    code=$(curl -sS --max-time 10 --cacert "$api/certs/apiserver.crt" -H "Authorization: Bearer $token" \
      -H "Content-Type: $ctype" -X "$1" --data-binary "$3" -o "$resp" -w '%{http_code}' "$url$2") ||
      die "$1 $2: curl failed"
    [[ $code == 2?? || ($code == 409 && $1 == POST) ]] || die "$1 $2: HTTP $code: $(cat "$resp")"
  }
  local v=v1.28.15 ns=kube-system owner='"ownerReferences":[{"apiVersion":"apps/v1","kind":"%s","name":"%s","uid":"00000000-0000-4000-8000-000000000001","controller":true}]'
  for ((i = 0; i < n; i++)); do
    name=$(node_name "$i")
    local cp_label=
    is_cp "$i" && cp_label='"node-role.kubernetes.io/control-plane":"",'
    api POST /api/v1/nodes "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$name\",\"labels\":{$cp_label\"kubernetes.io/hostname\":\"$name\",\"kubernetes.io/os\":\"linux\",\"topology.kubernetes.io/zone\":\"zone-$((i % 2))\"}}}"
    api PATCH "/api/v1/nodes/$name/status" "{\"status\":{\"nodeInfo\":{\"kubeletVersion\":\"$v\",\"kubeProxyVersion\":\"$v\",\"osImage\":\"$(os_image "$(family "$i" "$n")")\",\"operatingSystem\":\"linux\",\"architecture\":\"amd64\",\"kernelVersion\":\"6.1.0-18-amd64\",\"containerRuntimeVersion\":\"containerd://1.7.13\",\"machineID\":\"$name\",\"systemUUID\":\"$name\",\"bootID\":\"$name\"},\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"message\":\"set by scripts/fleet.sh seed\",\"lastHeartbeatTime\":\"2026-01-01T00:00:00Z\",\"lastTransitionTime\":\"2026-01-01T00:00:00Z\"}]}}"
    # shellcheck disable=SC2059
    api POST "/api/v1/namespaces/$ns/pods" "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"kube-proxy-$name\",\"namespace\":\"$ns\",\"labels\":{\"k8s-app\":\"kube-proxy\"},$(printf "$owner" DaemonSet kube-proxy)},\"spec\":{\"nodeName\":\"$name\",\"containers\":[{\"name\":\"kube-proxy\",\"image\":\"registry.k8s.io/kube-proxy:$v\"}]}}"
    if ! is_cp "$i"; then
      # shellcheck disable=SC2059
      api POST /api/v1/namespaces/default/pods "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-$name\",\"namespace\":\"default\",\"labels\":{\"app\":\"web\"},$(printf "$owner" ReplicaSet web-5d8f7c)},\"spec\":{\"nodeName\":\"$name\",\"containers\":[{\"name\":\"main\",\"image\":\"registry.k8s.io/pause:3.9\"}]}}"
    fi
  done
  local c image
  for ((i = 0; i < CONTROL_PLANES; i++)); do
    name=$(node_name "$i")
    for c in kube-apiserver kube-controller-manager kube-scheduler etcd; do
    image=registry.k8s.io/$c:$v
    [[ $c == etcd ]] && image=registry.k8s.io/etcd:3.5.9-0
    api POST "/api/v1/namespaces/$ns/pods" "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"$c-$name\",\"namespace\":\"$ns\",\"labels\":{\"component\":\"$c\",\"tier\":\"control-plane\"},\"annotations\":{\"kubernetes.io/config.mirror\":\"0123456789abcdef\",\"kubernetes.io/config.source\":\"file\"}},\"spec\":{\"nodeName\":\"$name\",\"priorityClassName\":\"system-node-critical\",\"hostNetwork\":true,\"containers\":[{\"name\":\"$c\",\"image\":\"$image\"}]}}"
    done
  done
  api POST "/api/v1/namespaces/$ns/configmaps" "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"kubeadm-config\",\"namespace\":\"$ns\"},\"data\":{\"ClusterConfiguration\":\"apiVersion: kubeadm.k8s.io/v1beta3\\nkind: ClusterConfiguration\\nclusterName: fleet\\nkubernetesVersion: $v\\ncontrolPlaneEndpoint: fleet-cp-1:6443\\netcd:\\n  local:\\n    dataDir: /var/lib/etcd\\n\"}}"
  local kind plural wl
  for wl in "DaemonSet daemonsets kube-proxy registry.k8s.io/kube-proxy:$v" \
    "Deployment deployments coredns registry.k8s.io/coredns/coredns:v1.10.1"; do
    read -r kind plural name image <<<"$wl"
    api POST "/apis/apps/v1/namespaces/$ns/$plural" "{\"apiVersion\":\"apps/v1\",\"kind\":\"$kind\",\"metadata\":{\"name\":\"$name\",\"namespace\":\"$ns\",\"labels\":{\"k8s-app\":\"$name\"}},\"spec\":{\"selector\":{\"matchLabels\":{\"k8s-app\":\"$name\"}},\"template\":{\"metadata\":{\"labels\":{\"k8s-app\":\"$name\"}},\"spec\":{\"containers\":[{\"name\":\"$name\",\"image\":\"$image\"}]}}}}"
  done
  log "seeded $n fleet node(s) at $v on $url"
}

# -------------------------------------------------------------------------------- test
# check WHAT CONDITION...: a verification from outside the nodes; counts failures.
FAILURES=0
check() {
  local what=$1 && shift
  if "$@"; then log "ok: $what"; else log "FAILED: $what"; FAILURES=$((FAILURES + 1)); fi
}

# verify_rpm DIR ROOT NAME ADDR MINOR VERSION: the same for a dnf node.
verify_rpm() {
  local dir=$1 r=$2 name=$3 addr=$4 minor=$5 v=$6 pkgs
  pkgs=$(chroot "$r" rpm -q --qf '%{NAME}=%{VERSION}-%{RELEASE} ' kubeadm kubectl kubelet)
  check "$name: rpm -q shows kubeadm, kubectl, kubelet at ${v#v}-150500.1.1 ($pkgs)" \
    test "$pkgs" = "kubeadm=${v#v}-150500.1.1 kubectl=${v#v}-150500.1.1 kubelet=${v#v}-150500.1.1 "
  check "$name: the repository file names v$minor and still excludes the packages" \
    eval 'grep -qx "baseurl=https://pkgs.k8s.io/core:/stable:/v$minor/rpm/" "$r/etc/yum.repos.d/kubernetes.repo" &&
      grep -qx "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni" "$r/etc/yum.repos.d/kubernetes.repo"'
  check "$name: the node's kubelet was restarted by the run (its stub log)" \
    grep -qx 'systemctl restart kubelet' "$r/var/log/kupgrade-fleet/calls.log"
  # The excludes are in force: dnf offers the packages only with --disableexcludes.
  check "$name: dnf offers kubelet only with --disableexcludes=kubernetes (the exclude= line holds)" eval \
    '! fleet_ssh "$dir" "$addr" dnf -q --cacheonly list --available --showduplicates kubelet >/dev/null 2>&1 &&
      fleet_ssh "$dir" "$addr" dnf -q --cacheonly list --available --showduplicates kubelet \
        --disableexcludes=kubernetes 2>/dev/null | grep -q "^kubelet"'
  check "$name: dnf fetched v$minor's repodata from the repository server" \
    grep -q "^$addr \"GET /core:/stable:/v$minor/rpm/repodata/repomd.xml " "$dir/repo-access.log"
}

# verify DIR API MINOR VERSION: what the upgrade must leave, seen from outside the nodes.
verify() {
  local dir=$1 api=$2 minor=$3 v=$4 name addr ns r pkgs held nodes family
  while read -r name addr ns family; do
    r=$dir/nodes/$name/root
    if [[ $family == rpm ]]; then verify_rpm "$dir" "$r" "$name" "$addr" "$minor" "$v"; continue; fi
    pkgs=$(chroot "$r" dpkg-query -W -f='${Package}=${Version} ' kubeadm kubelet kubectl)
    check "$name: dpkg-query shows kubeadm, kubelet, kubectl at ${v#v}-1.1 ($pkgs)" \
      test "$pkgs" = "kubeadm=${v#v}-1.1 kubectl=${v#v}-1.1 kubelet=${v#v}-1.1 "
    held=$(chroot "$r" apt-mark showhold | tr '\n' ' ')
    check "$name: apt-mark showhold lists the three packages ($held)" test "$held" = "kubeadm kubectl kubelet "
    check "$name: the node's kubelet was restarted by the run (its stub log)" \
      grep -qx 'systemctl restart kubelet' "$r/var/log/kupgrade-fleet/calls.log"
    check "$name: apt fetched v$minor's signed InRelease from the repository server" \
      grep -q "^$addr \"GET /core:/stable:/v$minor/deb/InRelease " "$dir/repo-access.log"
    check "$name: the repository file names v$minor" \
      grep -qx "deb \[signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg\] https://pkgs.k8s.io/core:/stable:/v$minor/deb/ /" \
      "$r/etc/apt/sources.list.d/kubernetes.list"
  done <"$dir/nodes.list"
  nodes=$(api_get "$api" /api/v1/nodes)
  check "the apiserver shows every kubelet at $v" \
    test "$(grep -c "\"kubeletVersion\": \"$v\"" <<<"$nodes")" = "$(wc -l <"$dir/nodes.list")"
  check "kubeadm upgrade apply $v ran on fleet-cp-1" \
    grep -q "^kubeadm upgrade apply $v " "$dir/nodes/fleet-cp-1/root/var/log/kupgrade-fleet/calls.log"
  local images
  images=$(api_get "$api" '/api/v1/namespaces/kube-system/pods?labelSelector=component%3Dkube-apiserver')
  check "the kube-proxy DaemonSet runs $v (moved by the last control-plane node's kubeadm)" \
    grep -q "\"image\": \"registry.k8s.io/kube-proxy:$v\"" < <(api_get "$api" /apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy)
  check "every control-plane node's kube-apiserver runs $v (kubeadm upgrade apply/node)" \
    test "$(grep -c "\"image\": \"registry.k8s.io/kube-apiserver:$v\"" <<<"$images")" = "$CONTROL_PLANES"
}

# wait_for_lease API: a killed run's lease holds until it expires (60 s after its last
# renewal); the resumed run is refused until then, by design.
wait_for_lease() {
  local left
  left=$(lease_left "$1")
  if ((left > 0)); then
    log "waiting ${left} s for the killed run's lease to expire"
    sleep "$left"
  fi
}

cmd_test() {
  need_root
  local work n=${KUPGRADE_FLEET_NODES:-5} start=$SECONDS target=${KUPGRADE_FLEET_TARGET:-1.31} v
  [[ -n ${CARGO_TARGET_DIR:-} ]] || log "warning: CARGO_TARGET_DIR is not set: cargo builds into the worktree"
  work=$(mktemp -d /tmp/kupgrade-fleet.XXXXXX)
  # shellcheck disable=SC2064
  trap "cmd_down '$work/fleet'; '$SCRIPTS/testenv.sh' down '$work/api'; rm -rf '$work'" EXIT
  "$SCRIPTS/testenv.sh" up "$work/api"
  cmd_seed "$work/api" "$n"
  cmd_up "$work/fleet" "$n" "$work/api"
  log "fleet ready after $((SECONDS - start)) s"
  # The example's binary itself (not `cargo run`), so that a SIGKILL reaches the runner.
  (cd "$ROOT_DIR" && cargo build -q -p kupgrade-examples --example apply) || die "building the apply example failed"
  local bin=${CARGO_TARGET_DIR:-$ROOT_DIR/target}/debug/examples/apply
  # TMPDIR: the SSH runner's control sockets; a killed runner leaves its directory behind, here.
  mkdir -p "$work/tmp"
  local apply=(env "TMPDIR=$work/tmp" "$bin" --kubeconfig "$work/api/kubeconfig" --cluster "$work/fleet/hosts.yaml" --executor ssh
    --ssh-key "$work/fleet/id" --known-hosts "$work/fleet/known_hosts" --journal "$work/up.journal")
  local args=(--target "$target" --date 2026-11-25 --allow-unsupported-target --drain-grace-period 0
    --drain-timeout 60)
  # Faults: KUPGRADE_FLEET_KILLS times, SIGKILL the runner at a random moment (seeded by
  # KUPGRADE_FLEET_SEED), then resume from the journal; the last run goes to the end.
  local kills=${KUPGRADE_FLEET_KILLS:-0} k pid delay killed=0
  [[ $kills =~ ^[0-9]+$ ]] || die "KUPGRADE_FLEET_KILLS must be a number, not '$kills'"
  RANDOM=${KUPGRADE_FLEET_SEED:-1}
  for ((k = 1; k <= kills; k++)); do
    wait_for_lease "$work/api"
    "${apply[@]}" "${args[@]}" >>"$work/killed.out" 2>&1 &
    pid=$!
    delay=$((300 + RANDOM % 6000))
    sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
    if kill -KILL "$pid" 2>/dev/null; then
      killed=$((killed + 1))
      log "fault $k/$kills: SIGKILL the runner after $delay ms"
    else
      log "fault $k/$kills: the run ended before the kill after $delay ms"
    fi
    wait "$pid" 2>/dev/null || true
    args=(--resume)
  done
  wait_for_lease "$work/api"
  "${apply[@]}" "${args[@]}" >"$work/apply.out" 2>"$work/apply.err" ||
    { cat "$work/apply.out" "$work/apply.err" >&2; die "apply over SSH failed"; }
  tail -n 5 "$work/apply.out" >&2
  v=$(sed -n "s/.*\(v$target\.[0-9]*\).*/\1/p" "$work/apply.out" | tail -n1)
  [[ -n $v ]] || die "apply's output names no v$target.x version"
  verify "$work/fleet" "$work/api" "$target" "$v"
  # The point of no return runs once per hop, however often the runner was killed.
  local applies
  applies=$(grep -h '^kubeadm upgrade apply ' "$work"/fleet/nodes/*/root/var/log/kupgrade-fleet/calls.log | sort)
  check "kubeadm upgrade apply ran once per hop ($killed runner(s) killed): $(tr '\n' ';' <<<"$applies")" \
    test -z "$(uniq -d <<<"$applies")" -a "$(wc -l <<<"$applies")" = "$(("${target#1.}" - 28))"
  check "the leftovers check sees a running fleet" eval '! cmd_leftovers "$work/fleet" >/dev/null 2>&1'
  cmd_down "$work/fleet"
  # A killed runner's OpenSSH control masters outlive it: until ControlPersist (300 s idle) or
  # until their node is gone (ServerAliveInterval 15 s, 3 missed answers). Wait for that.
  local deadline=$((SECONDS + 90))
  while ((killed > 0 && SECONDS < deadline)) && procs_naming "$work/tmp" >/dev/null; do sleep 1; done
  ((killed == 0)) || log "the killed runners' ssh control masters were gone $((SECONDS + 90 - deadline)) s after down"
  check "no leftovers after down" cmd_leftovers "$work/fleet"
  # A failure halfway through `up` (after the first node) leaves nothing behind either.
  check "up fails when told to" eval '! KUPGRADE_FLEET_CONTROL_PLANES=1 KUPGRADE_FLEET_FAIL_AFTER=fleet-cp-1 "$0" up "$work/broken" 2 2>"$work/broken.log"'
  check "no leftovers after a failed up" cmd_leftovers "$work/broken"
  "$SCRIPTS/testenv.sh" down "$work/api"
  check "no process of the test is left" eval '! procs_naming "$work"'
  ((FAILURES == 0)) || die "$FAILURES check(s) failed"
  log "the fleet test passed in $((SECONDS - start)) s"
}

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
  test) cmd_test ;;
  -h | --help | help) usage 0 ;;
  *) usage ;;
esac
