# shellcheck shell=bash disable=SC2016,SC2154  # sourced by scripts/fleet.sh, whose globals it reads
# fleet-test.sh - the fleet's end-to-end test (`scripts/fleet.sh test`): register the nodes on a
# test apiserver, upgrade them over SSH with `apply`, optionally kill the runner, check from outside.

# ------------------------------------------------------------------------------ lease
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

# verify_suse DIR ROOT NAME ADDR MINOR VERSION: the same for a zypper node.
verify_suse() {
  local dir=$1 r=$2 name=$3 addr=$4 minor=$5 v=$6 pkgs locks
  pkgs=$(chroot "$r" rpm -q --qf '%{NAME}=%{VERSION}-%{RELEASE} ' kubeadm kubectl kubelet)
  check "$name: rpm -q shows kubeadm, kubectl, kubelet at ${v#v}-150500.1.1 ($pkgs)" \
    test "$pkgs" = "kubeadm=${v#v}-150500.1.1 kubectl=${v#v}-150500.1.1 kubelet=${v#v}-150500.1.1 "
  check "$name: the repository file names v$minor" \
    grep -qx "baseurl=https://pkgs.k8s.io/core:/stable:/v$minor/rpm/" "$r/etc/zypp/repos.d/kubernetes.repo"
  check "$name: the node's kubelet was restarted by the run (its stub log)" \
    grep -qx 'systemctl restart kubelet' "$r/var/log/kupgrade-fleet/calls.log"
  # The locks hold: zypper lists the three packages.
  locks=$(fleet_ssh "$dir" "$addr" zypper --non-interactive locks 2>/dev/null | awk -F'|' '$1 ~ /^ *[0-9]+ *$/ {gsub(/ /, "", $2); print $2}' | sort | tr '\n' ' ')
  check "$name: zypper locks lists kubeadm, kubectl, kubelet ($locks)" test "$locks" = "kubeadm kubectl kubelet "
  check "$name: zypper fetched v$minor's signed repomd.xml from the repository server" eval \
    'grep -q "^$addr \"GET /core:/stable:/v$minor/rpm/repodata/repomd.xml " "$dir/repo-access.log" &&
      grep -q "^$addr \"GET /core:/stable:/v$minor/rpm/repodata/repomd.xml.asc " "$dir/repo-access.log"'
}

# verify DIR API MINOR VERSION: what the upgrade must leave, seen from outside the nodes.
verify() {
  local dir=$1 api=$2 minor=$3 v=$4 name addr ns r pkgs held nodes family
  while read -r name addr ns family; do
    r=$dir/nodes/$name/root
    if [[ $family == rpm ]]; then verify_rpm "$dir" "$r" "$name" "$addr" "$minor" "$v"; continue; fi
    if [[ $family == suse ]]; then verify_suse "$dir" "$r" "$name" "$addr" "$minor" "$v"; continue; fi
    pkgs=$(chroot "$r" dpkg-query -W -f='${Package}=${Version} ' kubeadm kubelet kubectl)
    check "$name: dpkg-query shows kubeadm, kubelet, kubectl at ${v#v}-1.1 ($pkgs)" \
      test "$pkgs" = "kubeadm=${v#v}-1.1 kubectl=${v#v}-1.1 kubelet=${v#v}-1.1 "
    held=$(chroot "$r" apt-mark showhold | tr '\n' ' ')
    check "$name: apt-mark showhold lists the three packages ($held)" test "$held" = "kubeadm kubectl kubelet "
    check "$name: the node's kubelet was restarted by the run (its stub log)" \
      grep -qx 'systemctl restart kubelet' "$r/var/log/kupgrade-fleet/calls.log"
    check "$name: apt fetched v$minor's signed InRelease from the repository server" \
      grep -q "^$addr \"GET /core:/stable:/v$minor/deb/InRelease " "$dir/repo-access.log"
    # Pre-staging (on by default): apt-get -o Dir::... install --download-only read v$minor's
    # index into a directory of its own and left the packages in apt's archive cache.
    check "$name: pre-staging downloaded kubelet ${v#v}-1.1 ahead with its own index of v$minor" \
      test -f "$r/var/cache/apt/archives/kubelet_${v#v}-1.1_amd64.deb" -a \
      -n "$(ls "$r/var/lib/kupgrade/prestage/v$minor/lists/" 2>/dev/null | grep InRelease)"
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

# The campaign's counts (fleet.sh test --faults N): per kind, the faults injected and the
# sessions that ended halted after one; overall, the sessions and resumes.
declare -A FAULTS_OF=() HALTS_OF=()
SESSIONS=0 RESUMES=0 REPEATS=0 RERUNS=0 ROUNDS=0 APPLY_PID=

# test_cleanup WORK: the EXIT trap of `test`: tear everything down, then fail the test if any
# namespace, link, mount or process of it is left (also after a failure or a signal).
test_cleanup() {
  local rc=$? work=$1 pid left=0
  trap - EXIT
  if [[ -n $APPLY_PID ]] && is_ours "$APPLY_PID" "$work"; then kill -KILL "$APPLY_PID" 2>/dev/null || true; fi
  cmd_down "$work/fleet"
  [[ ! -d $work/api ]] || "$SCRIPTS/testenv.sh" down "$work/api" || true
  # The OpenSSH control masters of killed runners (each would go 45 s after its node did).
  for pid in $(procs_naming "$work/tmp" | awk '/^process:/ {print $2}'); do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  cmd_leftovers "$work/fleet" >&2 || left=1
  if procs_naming "$work" >&2; then left=1; fi
  if ((left)); then
    log "error: the test left the above behind"
    rc=1
  fi
  if ((rc == 0)); then rm -rf "$work"; else log "the test failed (status $rc); its logs stay in $work"; fi
  exit "$rc"
}

# round_up WORK N: a fresh apiserver, seeded, and a fresh fleet at v1.28 on it.
round_up() {
  local work=$1 n=$2
  [[ ! -d $work/api ]] || "$SCRIPTS/testenv.sh" down "$work/api" >/dev/null
  rm -rf "$work/api" "$work"/up.journal*
  "$SCRIPTS/testenv.sh" up "$work/api" 2>&1 | tail -n1 >&2
  cmd_seed "$work/api" "$n"
  cmd_up "$work/fleet" "$n" "$work/api"
}

# interrupt_dnf DIR: leaves the first dnf node of DIR's fleet as a dnf killed halfway through
# the first hop's install leaves it: kubelet v1.29's package installed beside v1.28's (rpm
# installs a transaction's new packages before it erases the old ones; seen when a full disk
# failed a download mid-transaction). The run must repair that before it installs (dnf remove
# --duplicates): verify's `rpm -q` shows one version of each package at the end, and the
# node's kubelet reports one version after its restart.
interrupt_dnf() {
  local dir=$1 name addr family rpm twice
  while read -r name addr _ family; do
    [[ $family == rpm ]] || continue
    rpm=$(find "$REPO/www/core:/stable:/v1.29/rpm/x86_64" -name 'kubelet-1.29.*.rpm' | sort -V | tail -n1)
    [[ -n $rpm ]] || die "no kubelet v1.29 package in $REPO"
    cp "$rpm" "$dir/nodes/$name/root/tmp/kubelet.rpm"
    fleet_ssh "$dir" "$addr" rpm -i --nodeps --replacefiles --noscripts /tmp/kubelet.rpm ||
      die "$name: rpm -i of ${rpm##*/} beside the installed kubelet failed"
    rm -f "$dir/nodes/$name/root/tmp/kubelet.rpm"
    twice=$(fleet_ssh "$dir" "$addr" rpm -q kubelet | tr '\n' ' ')
    check "$name: rpm lists two kubelets before the run, as an interrupted dnf leaves them ($twice)" \
      test "$(wc -w <<<"$twice")" = 2
    return
  done <"$dir/nodes.list"
  log "no dnf node: the repair of an interrupted dnf is not exercised"
}

# run_round WORK KINDS...: apply (then --resume) until the target, injecting faults of KINDS
# (FAULTS_LEFT of them at most) at random moments; halted sessions must name the resume command.
run_round() {
  local work=$1 && shift
  local kinds=("$@") session=0 rc kind what delay killed last_kind out
  local args=("${APPLY_ARGS[@]}")
  while :; do
    session=$((session + 1)) SESSIONS=$((SESSIONS + 1))
    ((session <= 40)) || { check "round $ROUNDS reaches the target within 40 sessions" false; return 1; }
    wait_for_lease "$work/api"
    out=$work/r$ROUNDS-s$session.out
    "${APPLY[@]}" "${args[@]}" >"$out" 2>&1 &
    APPLY_PID=$! killed=0 last_kind=
    while ((FAULTS_LEFT > 0)) && kill -0 "$APPLY_PID" 2>/dev/null; do
      delay=$((500 + RANDOM % 5500))
      sleep_ms "$delay"
      kill -0 "$APPLY_PID" 2>/dev/null || break
      kind=${kinds[RANDOM % ${#kinds[@]}]}
      FAULTS_OF[$kind]=$((${FAULTS_OF[$kind]:-0} + 1)) FAULTS_LEFT=$((FAULTS_LEFT - 1))
      # In this shell (a subshell would draw from a reseeded RANDOM): the seed decides.
      inject "$kind" "$work/fleet" "$work/up.journal" "$APPLY_PID" "$((2 + RANDOM % 7))" "$RANDOM" >"$work/fault.out"
      what=$(<"$work/fault.out")
      log "fault $((FAULTS_TOTAL - FAULTS_LEFT))/$FAULTS_TOTAL (round $ROUNDS, session $session, after $delay ms): $kind: $what"
      last_kind=$kind
      [[ $kind != kill ]] || killed=1
    done
    rc=0 && wait "$APPLY_PID" || rc=$?
    APPLY_PID=
    ((rc != 0)) || break
    RESUMES=$((RESUMES + 1))
    if ((killed == 0)); then
      HALTS_OF[${last_kind:-none}]=$((${HALTS_OF[${last_kind:-none}]:-0} + 1))
      local cause="with no fault in it"
      [[ -z $last_kind ]] || cause="after a $last_kind fault"
      log "session $session halted (status $rc) $cause: $(grep -m1 '^outcome: ' "$out" | cut -c1-240)"
      check "the halted session names its step and node, and the command to resume it" \
        eval 'grep -q "^outcome: halted: .*/fleet-[a-z0-9-]*/" "$out" && grep -q "^resume with: .* --resume" "$out"'
    fi
    args=(--resume)
  done
  tail -n 3 "$out" >&2
}

# verify_round WORK TARGET: the fleet at the target, and nothing repeated that had succeeded.
verify_round() {
  local work=$1 target=$2 v reps kub reruns
  v=$(sed -n "s/.*\(v$target\.[0-9]*\).*/\1/p" "$work"/r"$ROUNDS"-s*.out | tail -n1)
  [[ -n $v ]] || die "apply's output names no v$target.x version"
  verify "$work/fleet" "$work/api" "$target" "$v"
  reps=$(repeats_in_journal "$work/up.journal")
  check "round $ROUNDS: the journal shows no task started again after it had finished${reps:+: $reps}" test -z "$reps"
  kub=$(kubeadm_runs "$work/fleet")
  reruns=$(awk '$1 == "rerun" {n += $2} END {print n + 0}' <<<"$kub")
  check "round $ROUNDS: no kubeadm upgrade ran again after it had succeeded on its node (stub logs)$(grep '^repeated' <<<"$kub" | tr '\n' ';')" \
    eval '! grep -q "^repeated" <<<"$kub"'
  local hops=$((${target#1.} - 28)) ok
  ok=$(cat "$work"/fleet/nodes/*/root/var/log/kupgrade-fleet/kubeadm.log | grep -c ' = 0$' || true)
  check "round $ROUNDS: kubeadm upgrade succeeded once per node and hop ($ok = $hops x $(wc -l <"$work/fleet/nodes.list"))" \
    test "$ok" = "$((hops * $(wc -l <"$work/fleet/nodes.list")))"
  # --gather-nodes ran the node-evidence commands (df, apt-cache madison, dnf list, zypper
  # search, grep, kubeadm certs check-expiration) over SSH, on real package managers, in every
  # session: every node gave its disk space, package sources and the versions its repository
  # offers, every control-plane node its etcd image, certificates and the kubelet's API server
  # (the nodes have no /sys: the cgroup version is the one fact they cannot give). A fault
  # may cut one session's gathering short: the best session of the round counts.
  local gathered nodes cps
  gathered=$(sed -n 's/^gathered \([0-9]*\) node fact(s).*/\1/p' "$work"/r"$ROUNDS"-s*.out | sort -n | tail -n1)
  nodes=$(wc -l <"$work/fleet/nodes.list") cps=$(grep -c '^fleet-cp-' "$work/fleet/nodes.list")
  check "round $ROUNDS: apply --gather-nodes read ${gathered:-no} node facts over SSH ($((3 * nodes + 3 * cps)) expected)" \
    test "${gathered:-0}" = "$((3 * nodes + 3 * cps))"
  REPEATS=$((REPEATS + $(grep -c . <<<"$reps" || true) + $(grep -c '^repeated' <<<"$kub" || true)))
  RERUNS=$((RERUNS + reruns))
}

summary() { # the campaign's table
  local kind
  printf '\n%-10s %7s %14s\n' kind faults "runs halted" >&2
  for kind in "${FAULT_KINDS[@]}"; do
    [[ -n ${FAULTS_OF[$kind]:-} ]] || continue
    printf '%-10s %7d %14d\n' "$kind" "${FAULTS_OF[$kind]}" "${HALTS_OF[$kind]:-0}" >&2
  done
  printf '%-10s %7d %14d\n' total "$((FAULTS_TOTAL - FAULTS_LEFT))" "$((RESUMES - ${FAULTS_OF[kill]:-0}))" >&2
  printf '%s\n' "upgrades (1.28 -> $1, each a fresh fleet): $ROUNDS" "sessions: $SESSIONS, resumed: $RESUMES" \
    "repeated non-idempotent steps (journal: task started after it finished; stub logs: kubeadm upgrade after it succeeded): $REPEATS" \
    "kubeadm upgrades run again after an attempt that never ended (killed with its node): $RERUNS" \
    "time: $2 s (seed $3)" >&2
}

cmd_test() {
  need_root
  local n=${KUPGRADE_FLEET_NODES:-5} start=$SECONDS target=${KUPGRADE_FLEET_TARGET:-1.31}
  local seed=${KUPGRADE_FLEET_SEED:-1} kind_csv=${KUPGRADE_FLEET_FAULT_KINDS:-$FAULT_KINDS_DEFAULT}
  FAULTS_TOTAL=${KUPGRADE_FLEET_FAULTS:-0}
  # KUPGRADE_FLEET_KILLS=K (the first knob): K runner kills.
  if [[ -z ${KUPGRADE_FLEET_FAULTS:-} && ${KUPGRADE_FLEET_KILLS:-0} != 0 ]]; then
    FAULTS_TOTAL=$KUPGRADE_FLEET_KILLS kind_csv=kill
  fi
  while (($#)); do
    case $1 in
      --faults) FAULTS_TOTAL=${2:-} && shift 2 ;;
      --seed) seed=${2:-} && shift 2 ;;
      --kinds) kind_csv=${2:-} && shift 2 ;;
      *) die "test: unknown argument '$1' (--faults N, --seed S, --kinds K,...)" ;;
    esac
  done
  [[ $FAULTS_TOTAL =~ ^[0-9]+$ ]] || die "--faults must be a number, not '$FAULTS_TOTAL'"
  [[ $seed =~ ^[0-9]+$ ]] || die "--seed must be a number, not '$seed'"
  local kind kind_list=()
  IFS=, read -r -a kind_list <<<"$kind_csv"
  for kind in "${kind_list[@]}"; do
    [[ " ${FAULT_KINDS[*]} " == *" $kind "* ]] || die "unknown fault kind '$kind' (kinds: ${FAULT_KINDS[*]})"
  done
  ((${#kind_list[@]})) || die "--kinds names no fault kind"
  FAULTS_LEFT=$FAULTS_TOTAL
  [[ -n ${CARGO_TARGET_DIR:-} ]] || log "warning: CARGO_TARGET_DIR is not set: cargo builds into the worktree"
  local work
  work=$(mktemp -d /tmp/kupgrade-fleet.XXXXXX)
  # shellcheck disable=SC2064
  trap "test_cleanup '$work'" EXIT
  # The example's binary itself (not `cargo run`), so that a SIGKILL reaches the runner.
  local built=$SECONDS
  (cd "$ROOT_DIR" && cargo build -q -p kupgrade-examples --example apply) || die "building the apply example failed"
  log "apply built in $((SECONDS - built)) s"
  local bin=${CARGO_TARGET_DIR:-$ROOT_DIR/target}/debug/examples/apply
  # TMPDIR: the SSH runner's control sockets; a killed runner leaves its directory behind, here.
  mkdir -p "$work/tmp"
  APPLY=(env "TMPDIR=$work/tmp" "$bin" --kubeconfig "$work/api/kubeconfig" --cluster "$work/fleet/hosts.yaml" --executor ssh
    --ssh-key "$work/fleet/id" --known-hosts "$work/fleet/known_hosts" --journal "$work/up.journal" --gather-nodes)
  APPLY_ARGS=(--target "$target" --date 2026-11-25 --allow-unsupported-target --drain-grace-period 0
    --drain-timeout 60)
  RANDOM=$seed
  local campaign=$SECONDS
  # One upgrade, and more (each on a fresh apiserver and fleet) while faults are left.
  while :; do
    ROUNDS=$((ROUNDS + 1))
    local round_start=$SECONDS
    round_up "$work" "$n"
    log "round $ROUNDS: fleet ready after $((SECONDS - round_start)) s"
    ((ROUNDS > 1)) || interrupt_dnf "$work/fleet"
    local before=$FAULTS_LEFT
    run_round "$work" "${kind_list[@]}" || break
    log "round $ROUNDS: at the target after $((SECONDS - round_start)) s, $((before - FAULTS_LEFT)) fault(s)"
    verify_round "$work" "$target"
    ((FAULTS_LEFT > 0 && before > FAULTS_LEFT)) || break
    cmd_down "$work/fleet"
  done
  check "the leftovers check sees a running fleet" eval '! cmd_leftovers "$work/fleet" >/dev/null 2>&1'
  cmd_down "$work/fleet"
  check "all $FAULTS_TOTAL fault(s) injected" test "$FAULTS_LEFT" = 0
  ((FAULTS_TOTAL == 0)) || summary "$target" "$((SECONDS - campaign))" "$seed"
  # A killed runner's OpenSSH control masters outlive it: until ControlPersist (300 s idle) or
  # until their node is gone (ServerAliveInterval 15 s, 3 missed answers). Wait for that.
  local deadline=$((SECONDS + 90))
  while ((${FAULTS_OF[kill]:-0} > 0 && SECONDS < deadline)) && procs_naming "$work/tmp" >/dev/null; do sleep 1; done
  ((${FAULTS_OF[kill]:-0} == 0)) || log "the killed runners' ssh control masters were gone $((SECONDS + 90 - deadline)) s after down"
  check "no leftovers after down" cmd_leftovers "$work/fleet"
  # A failure halfway through `up` (after the first node) leaves nothing behind either.
  check "up fails when told to" eval '! KUPGRADE_FLEET_CONTROL_PLANES=1 KUPGRADE_FLEET_FAIL_AFTER=fleet-cp-1 "$0" up "$work/broken" 2 2>"$work/broken.log"'
  check "no leftovers after a failed up" cmd_leftovers "$work/broken"
  "$SCRIPTS/testenv.sh" down "$work/api"
  check "no process of the test is left" eval '! procs_naming "$work"'
  ((FAILURES == 0)) || die "$FAILURES check(s) failed"
  log "the fleet test passed in $((SECONDS - start)) s"
}
