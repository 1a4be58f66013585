#!/usr/bin/env bash
# testenv.sh - real servers for kupgrade's integration tests, all on 127.0.0.1.
#
# Usage:
#   scripts/testenv.sh packages     install the missing Debian packages (starts no service)
#   scripts/testenv.sh apiserver    build kube-apiserver v1.20.2 once into the cache
#   scripts/testenv.sh kubectl      unpack Debian's kubectl v1.20.2 once into the cache
#   scripts/testenv.sh up DIR       start etcd + kube-apiserver; write DIR/kubeconfig,
#                                   DIR/kubeconfig-limited and DIR/env (source it)
#   scripts/testenv.sh down DIR     stop exactly the processes recorded in DIR (idempotent)
#   scripts/testenv.sh sshd-check   check that sshd accepts a throwaway loopback config
#
# Environment: KUPGRADE_CACHE_DIR (default /var/cache/kupgrade) holds the built binaries;
# KUPGRADE_READY_TIMEOUT (default 60) bounds each wait in `up`, in seconds.
# Background: /work/shared/testenv.md (why Go 1.19, the reflect2 swap, the apiserver flags).
set -euo pipefail

readonly K8S_VERSION=v1.20.2
readonly CACHE_DIR=${KUPGRADE_CACHE_DIR:-/var/cache/kupgrade}
readonly APISERVER_DIR=$CACHE_DIR/kube-apiserver-$K8S_VERSION
readonly APISERVER_BIN=$APISERVER_DIR/kube-apiserver
readonly KUBECTL_DIR=$CACHE_DIR/kubectl-$K8S_VERSION
readonly KUBECTL_BIN=$KUBECTL_DIR/kubectl
readonly READY_TIMEOUT=${KUPGRADE_READY_TIMEOUT:-60}
readonly GO_ROOT=/usr/lib/go-1.19   # Debian's Go 1.19: new enough, old enough for k8s 1.20
readonly REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
# chromium: the HTML plan report is rendered headless in the tests (examples/tests/html_report.rs).
readonly PACKAGES=(openssh-server openssh-client etcd-server etcd-client curl openssl iproute2
  make golang-1.19-go golang-1.19-src rsync golang-github-modern-go-reflect2-dev chromium)

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '4,11s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
need() { local c; for c; do command -v "$c" >/dev/null || die "'$c' not found; run: $0 packages"; done; }

# ---------------------------------------------------------------------------- packages
cmd_packages() {
  local start=$SECONDS p missing=()
  for p in "${PACKAGES[@]}"; do
    # shellcheck disable=SC2016  # ${Status} is dpkg-query's field, not a shell variable
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
  done
  if ((${#missing[@]})); then
    # Maintainer scripts must not start sshd on :22 or etcd on :2379. The image has a
    # policy-rc.d that forbids it; where it is absent, put one in place for this install only.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    log "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  log "packages ready in $((SECONDS - start)) s"
  install -d -m 755 /run/sshd   # sshd's privilege-separation dir; nothing else creates it here
}

# A private apt setup under WORK for Debian's main archive (deb or deb-src lines): /etc/apt
# is never touched. Sets APTO, the options that select it, and updates its lists.
APTO=()
private_apt() {
  local work=$1 kind=$2 uri codename
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  mkdir -p "$work"/apt/{lists/partial,cache/archives/partial,sources.list.d}
  echo "$kind [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${uri:-http://deb.debian.org/debian} $codename main" \
    >"$work/apt/sources.list"
  APTO=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=$work/apt/sources.list.d"
    -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o APT::Sandbox::User=root)
  apt-get "${APTO[@]}" update -qq
}

# --------------------------------------------------------------------------- the cache
# cached BIN: whether the binary BIN is in the cache. It counts as there only if its checksum
# file BIN.sha256 (written last) matches.
cached() { [[ -f $1.sha256 ]] && (cd "${1%/*}" && sha256sum --status -c "${1##*/}.sha256"); }

# in_cache BIN: true when BIN is cached (said in the log); else takes the cache's lock for BIN,
# waiting while another run holds it, and is true when that run made BIN meanwhile. False: BIN
# is to be made, under the lock (held until this script ends).
in_cache() {
  local bin=$1 name=${1##*/} fd
  if cached "$bin"; then log "$name cached: $bin"; return 0; fi
  mkdir -p "$CACHE_DIR"
  exec {fd}>"$CACHE_DIR/$name-$K8S_VERSION.lock"
  flock -n "$fd" || { log "another run is making $name; waiting"; flock "$fd"; }
  if cached "$bin"; then log "$name made by a concurrent run"; return 0; fi
  return 1
}

# --------------------------------------------------------------------------- apiserver
cmd_apiserver() {
  if in_cache "$APISERVER_BIN"; then return; fi
  need apt-get rsync make curl
  [[ -x $GO_ROOT/bin/go && -d $REFLECT2_SRC ]] || die "Go 1.19 or reflect2 missing; run: $0 packages"
  local start=$SECONDS work src k build_log=$APISERVER_DIR.build.log
  work=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
  # shellcheck disable=SC2064  # expand $work now: it is local
  trap "chmod -R u+w '$work' 2>/dev/null; rm -rf '$work'" EXIT
  private_apt "$work" deb-src
  mkdir -p "$work"/{src,home}
  log "downloading the kubernetes source package"
  (cd "$work/src" && apt-get "${APTO[@]}" source --download-only -qq kubernetes)
  src=$(compgen -G "$work/src/kubernetes_*really${K8S_VERSION#v}.orig.tar.gz" | head -n1) ||
    die "no kubernetes ${K8S_VERSION} orig tarball in: $(ls "$work/src")"
  tar -xzf "$src" -C "$work/src"
  k=$(compgen -G "$work/src/kubernetes-${K8S_VERSION#v}" | head -n1) || die "unexpected tarball layout"
  log "source ready after $((SECONDS - start)) s"

  # The vendored reflect2 v1.0.1 panics under Go >= 1.18 (POST of a Pod: nil deref in
  # reflect2.Type2); Debian's 1.0.2 is API-compatible and fixes it.
  rm -rf "$k/vendor/github.com/modern-go/reflect2" && mkdir "$k/vendor/github.com/modern-go/reflect2"
  cp "$REFLECT2_SRC"/*.go "$REFLECT2_SRC"/*.s "$k/vendor/github.com/modern-go/reflect2/"

  # k8s 1.20 builds in GOPATH mode and generates code first, so `make`, not `go build`.
  log "building kube-apiserver (about 4 min on 2 cores; log: $build_log)"
  if ! (
    unset GOFLAGS GOPATH GOCACHE GOBIN GO111MODULE
    export GOROOT=$GO_ROOT HOME=$work/home CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=off
    export PATH=$GOROOT/bin:$PATH
    cd "$k" && make WHAT=cmd/kube-apiserver
  ) >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    die "kube-apiserver build failed"
  fi
  "$k/_output/bin/kube-apiserver" --version | grep -qx "Kubernetes $K8S_VERSION" ||
    die "built binary reports: $("$k/_output/bin/kube-apiserver" --version)"

  # Install: binary first under a temporary name, checksum (the "done" marker) last.
  mkdir -p "$APISERVER_DIR" && rm -f "$APISERVER_BIN.sha256"
  cp "$k/_output/bin/kube-apiserver" "$APISERVER_BIN.tmp" && mv -f "$APISERVER_BIN.tmp" "$APISERVER_BIN"
  (cd "$APISERVER_DIR" && sha256sum kube-apiserver >.sha256.tmp && mv -f .sha256.tmp kube-apiserver.sha256)
  chmod -R u+w "$work" && rm -rf "$work" && trap - EXIT
  log "kube-apiserver $K8S_VERSION built in $((SECONDS - start)) s: $APISERVER_BIN"
}

# ----------------------------------------------------------------------------- kubectl
# Debian's kubernetes-client (kubectl, built from the same source as the test apiserver) is
# unpacked into the cache, not installed: its /usr/bin/kubectl clashes with other kubectl
# packages (Google Cloud SDK's `kubectl` owns that path on some machines), and the tests want
# this version whatever else is installed (cached as the apiserver is: `in_cache`).
cmd_kubectl() {
  if in_cache "$KUBECTL_BIN"; then return; fi
  need apt-get dpkg-deb sha256sum
  local start=$SECONDS work deb
  work=$(mktemp -d "$CACHE_DIR/kubectl.XXXXXX")
  # shellcheck disable=SC2064  # expand $work now: it is local
  trap "rm -rf '$work'" EXIT
  private_apt "$work" deb
  (cd "$work" && apt-get "${APTO[@]}" download -qq kubernetes-client)
  deb=$(compgen -G "$work/kubernetes-client_*really${K8S_VERSION#v}-*.deb" | head -n1) ||
    die "no kubernetes-client ${K8S_VERSION} package in: $(ls "$work")"
  dpkg-deb -x "$deb" "$work/root"
  "$work/root/usr/bin/kubectl" version --client --short | grep -qx "Client Version: $K8S_VERSION" ||
    die "the unpacked kubectl reports: $("$work/root/usr/bin/kubectl" version --client --short)"
  mkdir -p "$KUBECTL_DIR" && rm -f "$KUBECTL_BIN.sha256"
  cp "$work/root/usr/bin/kubectl" "$KUBECTL_BIN.tmp" && mv -f "$KUBECTL_BIN.tmp" "$KUBECTL_BIN"
  (cd "$KUBECTL_DIR" && sha256sum kubectl >.sha256.tmp && mv -f .sha256.tmp kubectl.sha256)
  rm -rf "$work" && trap - EXIT
  log "kubectl $K8S_VERSION ready in $((SECONDS - start)) s: $KUBECTL_BIN"
}

# ---------------------------------------------------------------------------- up / down
# N distinct TCP ports that nothing on this machine uses now, below the ephemeral range.
free_ports() {
  local used port picked=()
  used=" $(ss -Htan | awk '{sub(/.*:/, "", $4); print $4}' | sort -u | tr '\n' ' ') "
  while ((${#picked[@]} < $1)); do
    port=$((20000 + RANDOM % 12000))
    [[ $used == *" $port "* || " ${picked[*]} " == *" $port "* ]] || picked+=("$port")
  done
  echo "${picked[@]}"
}

# True if PID is alive and is one that `up` started for DIR (its command line names DIR/).
# Guards against PID reuse; a zombie has an empty cmdline and counts as gone.
is_ours() {
  [[ $1 =~ ^[0-9]+$ && -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2/"
}

# Run until the command succeeds or the deadline passes; fail early if a server died.
wait_for() {
  local what=$1 dir=$2 deadline=$((SECONDS + READY_TIMEOUT)) name && shift 2
  until "$@"; do
    for name in etcd apiserver; do
      if [[ -f $dir/$name.pid ]] && ! is_ours "$(<"$dir/$name.pid")" "$dir"; then
        fail_up "$dir" "$name exited while waiting for $what"
      fi
    done
    ((SECONDS < deadline)) || fail_up "$dir" "$what not reached within $READY_TIMEOUT s"
    sleep 0.3
  done
}

fail_up() {   # fail_up DIR MESSAGE: show the end of both logs, stop what runs, exit 1
  local f
  for f in "$1"/etcd.log "$1"/apiserver.log; do log "--- end of $f"; tail -n 25 "$f" >&2 || true; done
  cmd_down "$1"
  die "$2"
}

start_bg() {   # start_bg DIR NAME CMD...: detached, logs to DIR/NAME.log, PID to DIR/NAME.pid
  local dir=$1 name=$2 pid i && shift 2
  setsid "$@" </dev/null >"$dir/$name.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/$name.pid"
  # Until the child execs, its command line is this script's, and is_ours would take a server
  # still starting for one that exited: wait (briefly) for the exec, or for the child's end.
  for ((i = 0; i < 50; i++)); do
    { is_ours "$pid" "$dir" || ! kill -0 "$pid" 2>/dev/null; } && break
    sleep 0.1
  done
}

write_kubeconfig() {   # write_kubeconfig FILE USER TOKEN URL CA (YAML flow style, one user)
  (umask 077 && cat >"$1") <<EOF
apiVersion: v1
kind: Config
clusters: [{name: kupgrade-test, cluster: {server: "$4", certificate-authority: "$5"}}]
users: [{name: $2, user: {token: $3}}]
contexts: [{name: $2, context: {cluster: kupgrade-test, user: $2}}]
current-context: $2
EOF
}

cmd_up() {
  local dir=$1 p_etcd p_peer p_metrics p_api admin_tok limited_tok url etcd_url start=$SECONDS
  cmd_apiserver
  cmd_kubectl
  need etcd curl openssl ss setsid
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd -P)
  cmd_down "$dir"   # an earlier `up` on the same DIR is replaced, not doubled
  rm -rf "$dir/etcd-data" "$dir/certs" && install -d -m 700 "$dir/certs"
  read -r p_etcd p_peer p_metrics p_api < <(free_ports 4)
  etcd_url=http://127.0.0.1:$p_etcd url=https://127.0.0.1:$p_api
  start_bg "$dir" etcd etcd --name kupgrade-test --data-dir "$dir/etcd-data" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$p_peer" --initial-advertise-peer-urls "http://127.0.0.1:$p_peer" \
    --initial-cluster "kupgrade-test=http://127.0.0.1:$p_peer" --listen-metrics-urls "http://127.0.0.1:$p_metrics"

  # Fresh credentials per run: service-account keys, an admin token, and a token for user
  # "limited" (no groups, so RBAC refuses it nearly everything).
  admin_tok=$(openssl rand -hex 24) limited_tok=$(openssl rand -hex 24)
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  (umask 077 && printf '%s,admin,admin,"system:masters"\n%s,limited,limited\n' \
    "$admin_tok" "$limited_tok" >"$dir/tokens.csv")
  wait_for "etcd health" "$dir" curl -fsS -o /dev/null --max-time 2 "$etcd_url/health"

  # No controller-manager runs, so no default ServiceAccount exists: without disabling
  # the ServiceAccount admission plugin every Pod creation would be rejected.
  start_bg "$dir" apiserver "$APISERVER_BIN" --etcd-servers="$etcd_url" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$p_api" --insecure-port=0 \
    --cert-dir="$dir/certs" --token-auth-file="$dir/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$dir/sa.pub" --service-account-signing-key-file="$dir/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --disable-admission-plugins=ServiceAccount \
    --allow-privileged=true   # as kubeadm sets it; kupgrade-kube's node-command pods are privileged
  local auth=(-H "Authorization: Bearer $admin_tok" --cacert "$dir/certs/apiserver.crt" --max-time 3)
  wait_for "apiserver /readyz" "$dir" curl -fs -o /dev/null "${auth[@]}" "$url/readyz"   # 500 until ready
  wait_for "RBAC bootstrap" "$dir" curl -fs -o /dev/null "${auth[@]}" \
    "$url/apis/rbac.authorization.k8s.io/v1/clusterroles/cluster-admin"

  # The self-signed cert the apiserver wrote (apiserver.crt) is the CA; rustls accepts it.
  write_kubeconfig "$dir/kubeconfig" admin "$admin_tok" "$url" "$dir/certs/apiserver.crt"
  write_kubeconfig "$dir/kubeconfig-limited" limited "$limited_tok" "$url" "$dir/certs/apiserver.crt"
  printf 'export %s=%q\n' >"$dir/env" \
    KUPGRADE_TEST_KUBECONFIG "$dir/kubeconfig" KUPGRADE_TEST_KUBECONFIG_LIMITED "$dir/kubeconfig-limited" \
    KUPGRADE_TEST_APISERVER_URL "$url" KUPGRADE_TEST_ETCD_ENDPOINT "$etcd_url" KUPGRADE_TEST_KUBECTL "$KUBECTL_BIN" \
    KUPGRADE_TEST_ETCD_PID "$(<"$dir/etcd.pid")" KUPGRADE_TEST_APISERVER_PID "$(<"$dir/apiserver.pid")"
  log "ready in $((SECONDS - start)) s: apiserver $url, etcd $etcd_url; source $dir/env"
}

cmd_down() {
  local dir=$1 name pid i
  [[ -d $dir ]] || return 0
  dir=$(cd "$dir" && pwd -P)
  for name in apiserver etcd; do   # apiserver first: it depends on etcd
    [[ -f $dir/$name.pid ]] || continue
    pid=$(<"$dir/$name.pid")
    if is_ours "$pid" "$dir"; then
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do is_ours "$pid" "$dir" || break; sleep 0.1; done
      is_ours "$pid" "$dir" && { log "$name ($pid) ignored TERM: KILL"; kill -KILL "$pid" 2>/dev/null || true; }
      log "stopped $name ($pid)"
    fi
    rm -f "$dir/$name.pid"
  done
  rm -f "$dir/env"
}

# --------------------------------------------------------------------------- sshd-check
cmd_sshd_check() {
  [[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd missing; run: $0 packages"
  need ssh-keygen ss
  install -d -m 755 /run/sshd
  local d port
  d=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$d'" EXIT
  port=$(free_ports 1)
  ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
  printf '%s\n' "ListenAddress 127.0.0.1" "Port $port" "HostKey $d/host_key" "PidFile $d/sshd.pid" \
    "AuthorizedKeysFile $d/authorized_keys" "PermitRootLogin prohibit-password" \
    "PasswordAuthentication no" "KbdInteractiveAuthentication no" "StrictModes no" >"$d/sshd_config"
  /usr/sbin/sshd -t -f "$d/sshd_config" || die "sshd -t rejected the throwaway config"
  log "sshd-check ok: $(ssh -V 2>&1)"
}

case ${1:-} in
  packages) cmd_packages ;;
  apiserver) cmd_apiserver ;;
  kubectl) cmd_kubectl ;;
  up) [[ $# -eq 2 ]] || usage; cmd_up "$2" ;;
  down) [[ $# -eq 2 ]] || usage; cmd_down "$2" ;;
  sshd-check) cmd_sshd_check ;;
  -h | --help | help) usage 0 ;;
  *) usage ;;
esac
