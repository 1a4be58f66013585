# shellcheck shell=bash disable=SC2154  # sourced by scripts/fleet.sh, whose globals it reads
# fleet-faults.sh - the faults of the fleet's campaign (`scripts/fleet.sh test --faults N`): each
# is injected into a running fleet, held for some seconds and lifted again, while `apply` runs.
#
#   sshd       SIGKILL the node's sshd (its PID 1: every session and command on the node dies
#              with it, as on a crash), start it again after HOLD s
#   link       the node's link down for HOLD s (`ip link set eth0 down` in its namespace)
#   repo500    the repository server answers every request with HTTP 500 for HOLD s
#   repostall  the repository server holds every request for HOLD s
#   disk       a full 256 KiB tmpfs over the directory the node's package manager downloads
#              into (/var/cache/apt/archives, /var/cache/dnf, /var/cache/zypp/packages), for HOLD s
#   dpkg       the next `dpkg --unpack` on any Debian node is SIGKILLed once dpkg has journaled
#              a change (it waits up to HOLD s for one): dpkg is left interrupted
#   kill       SIGKILL the runner (the resumed session waits for its lease: ~60 s each)
# The node of a node fault is the one the run works on (the journal's last started task), else
# a random one.

readonly FAULT_KINDS=(sshd link repo500 repostall disk dpkg kill)
# shellcheck disable=SC2034  # read by scripts/fleet-test.sh
readonly FAULT_KINDS_DEFAULT=sshd,link,repo500,repostall,disk,dpkg

# node_info DIR NAME: NODE_ADDR, NODE_NS, NODE_FAMILY and NODE_DIR of a node of DIR's fleet.
node_info() {
  local name
  read -r name NODE_ADDR NODE_NS NODE_FAMILY < <(awk -v n="$2" '$1 == n' "$1/nodes.list") || true
  [[ ${name:-} == "$2" ]] || die "no node $2 in $1/nodes.list"
  NODE_DIR=$1/nodes/$2
}

# journal_query WHAT JOURNAL: reads the journal's records (an unreadable line skipped) and
# prints, for WHAT busy, the node of its last task-started record (nothing if none); for WHAT
# repeats, the tasks started again after they had finished well (a line each).
journal_query() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
what, journal = sys.argv[1], sys.argv[2]

def records():
    for line in open(journal, errors="replace"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        yield r.get("kind", r) if isinstance(r.get("kind"), dict) else r

if what == "busy":
    node = ""
    for r in records():
        if r.get("record") == "task-started" and r.get("node"):
            node = r["node"]
    print(node)
elif what == "repeats":
    done = set()
    for r in records():
        key = (r.get("step"), r.get("node"))
        if r.get("record") == "task-started" and key in done:
            print("%s on %s started again after it had finished" % key)
        end = r.get("end") or {}
        if r.get("record") == "task-finished" and end.get("kind") in ("succeeded", "already-done"):
            done.add(key)
else:
    sys.exit("journal_query: unknown question %r" % what)
EOF
}

# busy_node JOURNAL: the node of the journal's last task-started record (nothing if none).
busy_node() {
  [[ -f $1 ]] || return 0
  journal_query busy "$1"
}

sleep_ms() { sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"; }

# fault_node DIR JOURNAL R: the node a node fault hits (R: a random number, for when the
# journal names none).
fault_node() {
  local busy nodes
  busy=$(busy_node "$2")
  if [[ -n $busy ]] && awk '{print $1}' "$1/nodes.list" | grep -qx -- "$busy"; then echo "$busy"; return; fi
  mapfile -t nodes < <(awk '{print $1}' "$1/nodes.list")
  echo "${nodes[$3 % ${#nodes[@]}]}"
}

# node_pid1 DIR NAME: the host PID of the node's PID 1 (its sshd).
node_pid1() {
  node_info "$1" "$2"
  local pid
  pid=$(<"$NODE_DIR/sshd.pid")
  is_ours "$pid" "$1" || return 1
  ps -o pid= --ppid "$pid" | tr -d ' ' | head -n1
}

fault_sshd() { # fault_sshd DIR NAME HOLD
  local pid i
  node_info "$1" "$2"
  pid=$(<"$NODE_DIR/sshd.pid")
  is_ours "$pid" "$1" && kill -KILL "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    [[ -z $(ip netns pids "$NODE_NS" 2>/dev/null) ]] && break
    sleep 0.1
  done
  sleep "$3"
  node_start "$NODE_DIR" "$NODE_NS"
  wait_for "sshd of $2 after its restart" fleet_ssh "$1" "$NODE_ADDR" true
}

fault_link() { # fault_link DIR NAME HOLD
  node_info "$1" "$2"
  ip -n "$NODE_NS" link set eth0 down
  sleep "$3"
  ip -n "$NODE_NS" link set eth0 up
}

fault_repo() { # fault_repo DIR MODE HOLD
  echo "$2" >"$1/repo-fault"
  sleep "$3"
  rm -f "$1/repo-fault"
}

fault_disk() { # fault_disk DIR NAME HOLD
  local pid1 path
  pid1=$(node_pid1 "$1" "$2") || { log "fault: $2 has no running init"; return 0; }
  node_info "$1" "$2" # here: node_pid1's ran in the subshell above
  case $NODE_FAMILY in
    rpm) path=/var/cache/dnf ;;
    suse) path=/var/cache/zypp/packages ;;
    *) path=/var/cache/apt/archives ;;
  esac
  path=$NODE_DIR/root$path
  # In the node's own mount namespace (a mount made here would not reach it).
  # shellcheck disable=SC2016  # $1 is the inner shell's
  nsenter -t "$pid1" -m -- sh -c 'mount -t tmpfs -o size=256k,mode=755 kupgrade-fleet-full "$1" &&
    mkdir -p "$1/partial" && { dd if=/dev/zero of="$1/full" bs=64k 2>/dev/null || true; }' sh "$path"
  sleep "$3"
  # The node may have died meanwhile (an sshd fault): its mounts went with it.
  nsenter -t "$pid1" -m -- umount -l "$path" 2>/dev/null || true
}

# fault_dpkg DIR WINDOW: SIGKILL the first `dpkg --unpack` on a Debian node of DIR's fleet once
# it has journaled a change in /var/lib/dpkg/updates; prints "NODE PENDING" (PENDING: the
# journal entries dpkg left), or nothing when no unpack began within WINDOW s.
fault_dpkg() {
  local args=() name ns family
  while read -r name _ ns family; do
    [[ $family == deb ]] && args+=("$name" "$ns" "$1/nodes/$name/root")
  done <"$1/nodes.list"
  python3 - "$2" "${args[@]}" <<'EOF'
import os, signal, sys, time
window, rest = float(sys.argv[1]), sys.argv[2:]
nodes = {}
for i in range(0, len(rest), 3):
    nodes[os.stat("/run/netns/" + rest[i + 1]).st_ino] = (rest[i], rest[i + 2])
deadline = time.monotonic() + window

def pending(root):
    try:
        return [f for f in os.listdir(root + "/var/lib/dpkg/updates") if f.isdigit()]
    except OSError:
        return []

while time.monotonic() < deadline:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if open("/proc/%s/comm" % pid).read().strip() != "dpkg":
                continue
            if b"--unpack" not in open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0"):
                continue
            ino = int(os.readlink("/proc/%s/ns/net" % pid)[5:-1])
        except (OSError, ValueError):
            continue
        if ino not in nodes:
            continue
        name, root = nodes[ino]
        while time.monotonic() < deadline and not pending(root) and os.path.exists("/proc/" + pid):
            time.sleep(0.0005)
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
        time.sleep(0.2)
        print(name, len(pending(root)))
        sys.exit(0)
    time.sleep(0.003)
EOF
}

# inject KIND DIR JOURNAL RUNNER-PID HOLD R: one fault, held HOLD s and lifted (R: a random
# number); prints what it did.
inject() {
  local kind=$1 dir=$2 journal=$3 runner=$4 hold=$5 node out
  case $kind in
    sshd | link | disk)
      node=$(fault_node "$dir" "$journal" "$6")
      echo "$node down ${hold}s"
      "fault_$kind" "$dir" "$node" "$hold" ;;
    repo500) echo "HTTP 500 for ${hold}s"; fault_repo "$dir" 500 "$hold" ;;
    repostall) echo "requests held for ${hold}s"; fault_repo "$dir" stall "$hold" ;;
    dpkg)
      out=$(fault_dpkg "$dir" 40)
      if [[ -n $out ]]; then echo "dpkg --unpack killed on ${out% *} (${out#* } dpkg journal entries left)"; else echo "no dpkg --unpack within 40 s"; fi ;;
    kill) kill -KILL "$runner" 2>/dev/null && echo "runner killed" || echo "the run had ended" ;;
    *) die "unknown fault kind '$kind' (kinds: ${FAULT_KINDS[*]})" ;;
  esac
}

# repeats_in_journal JOURNAL: tasks started again after they had finished well (a line each).
repeats_in_journal() { journal_query repeats "$1"; }

# kubeadm_runs DIR: per node, from its kubeadm.log: "repeated" lines (an upgrade started again
# after the same version's upgrade ended well), and the count of upgrades run again after an
# attempt that never ended (killed with its node or session) as "rerun N".
kubeadm_runs() {
  local name ns family
  while read -r name _ ns family; do
    awk -v node="$name" '
      $1 == "start" { k = $2 " " $3 " " $4; if (ok[k]) print "repeated: " node ": kubeadm " k " ran again after it succeeded"; if (open[k]) rerun++; open[k] = 1 }
      $1 == "end" { k = $2 " " $3 " " $4; open[k] = 0; if ($NF == "0") ok[k] = 1 }
      END { print "rerun " rerun + 0 }' "$1/nodes/$name/root/var/log/kupgrade-fleet/kubeadm.log" 2>/dev/null || echo "rerun 0"
  done <"$1/nodes.list"
}
