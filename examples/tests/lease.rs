//! Two runs never drive one cluster, through the `apply` program (the binary `cargo test`
//! builds) on one sandboxed node under the local executor, without a kubeconfig: the run lease
//! is the file `/var/lib/kupgrade/cluster.lease` on the control-plane node (in its sandbox).
//!
//! The node's `bin/` is its whole `PATH`: stub programs that log every call to `ROOT/cp-1/log`
//! and write what commands would write under `ROOT/cp-1/fs`; `mkdir` waits while the file
//! `ROOT/hold` exists, so a run can be held inside its first command (the backup directory);
//! `kubeadm upgrade plan` fails, so every run halts after its backup and its etcd snapshot,
//! before the point of no return (the downloads and image pulls ahead, pre-staging, succeed
//! and change nothing).
//!
//! - `a_second_run_is_refused_and_backups_stay_apart`: run A holds the cluster inside its
//!   first command; run B (another journal) is refused naming A (run id, pid, host, since
//!   when) before any node command runs (the stubs' log does not grow); A halts and gives the
//!   lease back, and run C then starts. A's and C's backups and snapshots lie under each run's
//!   own directory (`/var/backups/kupgrade/{run}`), and C did not write over A's.
//! - `a_killed_runs_lease_goes_to_its_resume_or_after_expiry_by_force`: a run SIGKILLed inside
//!   its first command keeps the lease: a new run is refused; its own `--resume` takes it back
//!   at once. Another killed run's lease: refused while it lasts, then refused as stale
//!   without `--force-lease`, taken with it (journaled as broken); a third's at once with
//!   `--force-lease=RUN`.
//! - `a_run_whose_lease_is_broken_stops_driving`: while run A waits inside a command, run B
//!   breaks A's lease by naming A's run; A finds out at its next renewal and aborts (its
//!   command killed, its session journaled as cancelled), and its end leaves B's lease alone.
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::example;

const INVENTORY: &str = r#"
name: leased
etcd: { mode: stacked }
addons: { kube-proxy: v1.28.9, coredns: v1.10.1 }
nodes:
  - name: cp-1
    roles: [control-plane]
    os: { family: debian }
    versions: { kubelet: v1.28.9, kubeadm: v1.28.9, kubectl: v1.28.9, kube-apiserver: v1.28.9,
                kube-controller-manager: v1.28.9, kube-scheduler: v1.28.9, etcd: 3.5.9-0 }
"#;

/// The stubs: `NAME BODY`, each after a line that logs the call.
const STUBS: &[(&str, &str)] = &[
    (
        "sudo",
        r#"[ "$1" = -n ] || { echo "stub sudo: called without -n" >&2; exit 1; }
shift
printf '%s\n' "$*" | tr '\n' ' ' >> "$R/sudo.log"; echo >> "$R/sudo.log"
exec "$@""#,
    ),
    (
        "mkdir",
        r#"while [ -e "$R/../hold" ]; do sleep 0.05; done
[ "$1" = -p ] && shift
for d; do /bin/mkdir -p "$R/fs$d"; done"#,
    ),
    (
        "cp",
        r#"[ "$1 $2" = "-a -T" ] || exit 1
/bin/mkdir -p "$R/fs$4" && /bin/cp -a -T "$R/fs$3" "$R/fs$4""#,
    ),
    (
        "etcdctl",
        r#"for last; do :; done
/bin/mkdir -p "$R/fs${last%/*}" && echo "snapshot of $(cat "$R/fs/etc/kubernetes/version")" > "$R/fs$last""#,
    ),
    (
        "kubeadm",
        r#"case "$1 $2" in
"version -o") echo "v$(cat "$R/state/kubeadm" 2>/dev/null || echo 1.28.9)" ;;
"config images") echo "[config/images] Pulled registry.k8s.io/kube-apiserver:$5" ;;
*) echo "stub kubeadm: $* (this test stops before kubeadm works)" >&2; exit 1 ;;
esac"#,
    ),
    (
        "kubectl",
        r#"[ "$1" = --kubeconfig ] && shift 2
node='{"metadata":{"name":"cp-1"},"spec":{},"status":{"nodeInfo":{"kubeletVersion":"v1.28.9"},"conditions":[{"type":"Ready","status":"True"}]}}'
case "$1 $2" in
"get nodes") echo "{\"items\":[$node]}" ;;
"get node") echo "$node" ;;
"get pods") echo '{"items":[]}' ;;
*) echo "stub kubectl: $*" >&2; exit 1 ;;
esac"#,
    ),
    // No static pod manifests on this node.
    ("grep", "exit 2"),
    (
        "tee",
        r#"/bin/mkdir -p "$R/fs${1%/*}" && cat > "$R/fs$1" && cat "$R/fs$1""#,
    ),
    (
        "apt-get",
        r#"while [ "$1" = -o ]; do shift 2; done
case "$1" in
update) echo "Reading package lists... Done" ;;
install) case " $* " in *" --download-only "*) exit 0 ;; esac
  for pin; do case $pin in kubeadm=*) v=${pin#*=}; echo "${v%-\*}" > "$R/state/kubeadm" ;; esac; done ;;
*) exit 100 ;;
esac"#,
    ),
    ("apt-mark", "exit 0"),
    ("dpkg", "exit 0"),
    ("systemctl", "exit 1"),
];

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("sb/cp-1");
        let bin = node.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, body) in STUBS {
            let path = bin.join(name);
            // sudo keeps a log of its own (every node command goes through it).
            let log = match *name {
                "sudo" => String::new(),
                _ => format!("printf '%s\\n' \"{name} $*\" >> \"$R/log\"\n"),
            };
            std::fs::write(
                &path,
                format!("#!/bin/sh\nR=\"$KUPGRADE_NODE_ROOT\"\n{log}{body}\n"),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        kupgrade_exec::node_env::provide_programs(&bin, kupgrade_exec::node_env::SANDBOX_PROGRAMS)
            .unwrap();
        std::fs::create_dir_all(node.join("fs/etc/kubernetes")).unwrap();
        std::fs::create_dir_all(node.join("state")).unwrap();
        std::fs::write(dir.path().join("inventory.yaml"), INVENTORY).unwrap();
        let s = Sandbox { dir };
        s.set_config("config before run A");
        s
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Back where the plan starts (kubeadm v1.28.9), as an operator leaves a node after a
    /// halted run.
    fn reset(&self) {
        let _ = std::fs::remove_file(self.path("sb/cp-1/state/kubeadm"));
    }

    /// What `cp -a -T /etc/kubernetes` copies and the stub snapshot names.
    fn set_config(&self, text: &str) {
        std::fs::write(self.path("sb/cp-1/fs/etc/kubernetes/version"), text).unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("sb/cp-1/log")).unwrap_or_default()
    }

    fn sudo_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("sb/cp-1/sudo.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Runs `apply` to its refusal and checks that no node command ran but the lease's own
    /// read (`sh -c SCRIPT kupgrade-lease DIR read`).
    fn refused(&self, journal: &str, extra: &[&str], what: &str) -> String {
        let (log, sudo) = (self.log(), self.sudo_log().len());
        let err = refused(&self.run(journal, extra), what);
        assert_eq!(self.log(), log, "{what}: a refused run ran a node command");
        for line in &self.sudo_log()[sudo..] {
            assert!(
                line.starts_with("env ")
                    && line.contains(" sh -c d=$1 op=$2 want=$3 ")
                    && line.contains(" kupgrade-lease ")
                    && line.contains("/var/lib/kupgrade read"),
                "{what}: a refused run ran more than the lease's read: {line}"
            );
        }
        err
    }

    fn hold(&self, yes: bool) {
        if yes {
            std::fs::write(self.path("sb/hold"), "").unwrap();
        } else {
            std::fs::remove_file(self.path("sb/hold")).unwrap();
        }
    }

    fn lease_file(&self) -> String {
        std::fs::read_to_string(self.path("sb/cp-1/var/lib/kupgrade/cluster.lease")).unwrap()
    }

    /// The holder line of the lease file (empty: nobody).
    fn holder(&self) -> String {
        self.lease_file()
            .lines()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }

    /// `apply` on this sandbox with `journal` and `extra` options.
    fn apply(&self, journal: &str, extra: &[&str]) -> Command {
        let mut c = example("apply");
        c.current_dir(self.dir.path())
            .args([
                "--cluster",
                "inventory.yaml",
                "--executor",
                "local",
                "--sandbox",
            ])
            .arg(self.path("sb"))
            .args(["--journal", journal, "--attempts", "1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !extra.contains(&"--resume") {
            c.args(["--target", "1.29", "--date", "2024-12-01"]);
        }
        c
    }

    fn run(&self, journal: &str, extra: &[&str]) -> Output {
        self.reset();
        self.apply(journal, extra).output().unwrap()
    }

    /// Starts `apply` and waits until it is inside its first `mkdir` (held there).
    fn start_held(&self, journal: &str, extra: &[&str]) -> Child {
        self.reset();
        self.hold(true);
        let mkdirs = |log: &str| log.lines().filter(|l| l.starts_with("mkdir ")).count();
        let before = mkdirs(&self.log());
        let mut child = self.apply(journal, extra).spawn().unwrap();
        let started = Instant::now();
        while mkdirs(&self.log()) == before {
            if started.elapsed() > Duration::from_secs(60) {
                child.kill().unwrap();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "{journal}: no mkdir after 60 s; log:\n{}\nstderr:\n{}",
                    self.log(),
                    text(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn records(&self, journal: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path(journal))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The journal's `lease-taken` records.
    fn lease_records(&self, journal: &str) -> Vec<serde_json::Value> {
        self.records(journal)
            .into_iter()
            .filter(|r| r["record"] == "lease-taken")
            .collect()
    }
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A run that halted after its backups (the stub `kubeadm upgrade plan` fails).
fn halted(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: expected a halt\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A run refused before it started: exit status 1, its message returned.
fn refused(out: &Output, what: &str) -> String {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: expected a refusal\n{err}"
    );
    err
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// The run id in a holder line (`RUN (pid PID on HOST)`).
fn run_of(holder: &str) -> String {
    holder.split(" (pid ").next().unwrap().to_string()
}

#[test]
fn a_second_run_is_refused_and_backups_stay_apart() {
    let sb = Sandbox::new();
    let a = sb.start_held("a.journal", &[]);
    let holder = sb.holder();
    assert!(
        holder.ends_with(&format!(" (pid {} on {})", a.id(), host())),
        "{holder}"
    );
    let run_a = run_of(&holder);

    // B, with its own journal: refused, naming A, before any node command.
    let err = sb.refused("b.journal", &[], "B while A runs");
    assert!(
        err.contains(&format!(
            "another run drives this cluster: cp-1:{}/sb/cp-1/var/lib/kupgrade/cluster.lease is held by run {holder} since ",
            sb.dir.path().display()
        )),
        "{err}"
    );
    assert!(err.contains(&format!("--force-lease={run_a}")), "{err}");

    // A goes on, halts at the repository step and gives the lease back.
    sb.hold(false);
    let out = a.wait_with_output().unwrap();
    halted(&out, "A");
    assert_eq!(sb.holder(), "", "A did not give the lease back");
    let taken = sb.lease_records("a.journal");
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0]["taking"]["how"], "free");
    assert_eq!(taken[0]["holder"], holder.as_str());
    assert_eq!(
        sb.records("a.journal")[1]["record"],
        "lease-taken",
        "the lease is journaled right after the run's start"
    );

    // C: a new run, a new journal, once A is over; the config has changed since A's backup.
    sb.set_config("config before run C");
    let out = sb.run("c.journal", &[]);
    halted(&out, "C");
    let run_c = run_of(sb.lease_records("c.journal")[0]["holder"].as_str().unwrap());
    assert_ne!(run_a, run_c);

    // Each run's backups under its own directory; A's still hold what A saw.
    let backups = sb.path("sb/cp-1/fs/var/backups/kupgrade");
    let mut runs: Vec<String> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    runs.sort();
    assert_eq!(runs, [run_a.clone(), run_c.clone()]);
    for (run, config) in [
        (&run_a, "config before run A"),
        (&run_c, "config before run C"),
    ] {
        let dir = backups.join(run);
        let files = walk(&dir);
        let copies: Vec<&PathBuf> = files.iter().filter(|p| p.ends_with("version")).collect();
        assert_eq!(copies.len(), 1, "{run}: {files:?}");
        assert_eq!(std::fs::read_to_string(copies[0]).unwrap(), config);
        let snapshots: Vec<&PathBuf> = files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "db"))
            .collect();
        assert_eq!(snapshots.len(), 1, "{run}: {files:?}");
        assert_eq!(
            std::fs::read_to_string(snapshots[0]).unwrap().trim(),
            format!("snapshot of {config}")
        );
    }
    // Every backup command named its own run's directory.
    for line in sb.log().lines().filter(|l| l.contains("/var/backups/")) {
        assert!(
            line.contains(&format!("/var/backups/kupgrade/{run_a}/"))
                || line.contains(&format!("/var/backups/kupgrade/{run_c}/"))
                || line.ends_with(&format!("/var/backups/kupgrade/{run_a}"))
                || line.ends_with(&format!("/var/backups/kupgrade/{run_c}")),
            "{line}"
        );
    }
}

#[test]
fn a_killed_runs_lease_goes_to_its_resume_or_after_expiry_by_force() {
    let sb = Sandbox::new();
    let short = ["--lease-duration", "3"];

    // D is killed inside its first command: its lease stays.
    let mut d = sb.start_held("d.journal", &short);
    let d_holder = sb.holder();
    d.kill().unwrap();
    d.wait().unwrap();
    sb.hold(false);
    assert_eq!(sb.holder(), d_holder);
    let err = sb.refused("e.journal", &short, "E while D's lease lasts");
    assert!(
        err.contains(&format!("is held by run {d_holder} since")),
        "{err}"
    );
    // D's own resume (same journal, same host) takes it back at once.
    let out = sb.run("d.journal", &["--resume"]);
    halted(&out, "D resumed");
    let taken = sb.lease_records("d.journal");
    assert_eq!(taken.len(), 2, "{taken:?}");
    assert_eq!(taken[1]["taking"]["how"], "own");
    assert_eq!(sb.holder(), "");

    // F is killed too: refused while its lease lasts, stale afterwards, taken by force.
    let mut f = sb.start_held("f.journal", &short);
    let f_holder = sb.holder();
    f.kill().unwrap();
    f.wait().unwrap();
    sb.hold(false);
    let err = sb.refused("g.journal", &short, "G before F's lease expired");
    assert!(err.contains("another run drives this cluster"), "{err}");
    std::thread::sleep(Duration::from_secs(4));
    let err = sb.refused("g.journal", &short, "G after F's lease expired");
    assert!(
        err.contains(&format!("was held by run {f_holder} since"))
            && err.contains("and expired at ")
            && err.contains("pass --force-lease to take the lease over"),
        "{err}"
    );
    let out = sb.run("g.journal", &["--force-lease"]);
    halted(&out, "G with --force-lease");
    assert!(
        text(&out.stderr).contains(&format!("took cp-1:{}", sb.dir.path().display())),
        "{}",
        text(&out.stderr)
    );
    let taken = sb.lease_records("g.journal");
    assert_eq!(taken[0]["taking"]["how"], "broken");
    assert_eq!(taken[0]["taking"]["from"]["holder"], f_holder.as_str());

    // H is killed with a long lease: --force-lease=RUN takes it at once.
    let mut h = sb.start_held("h.journal", &[]);
    let h_holder = sb.holder();
    h.kill().unwrap();
    h.wait().unwrap();
    sb.hold(false);
    let named = format!("--force-lease={}", run_of(&h_holder));
    let out = sb.run("i.journal", &[named.as_str()]);
    halted(&out, "I naming H's run");
    let taken = sb.lease_records("i.journal");
    assert_eq!(taken[0]["taking"]["how"], "broken");
    assert_eq!(taken[0]["taking"]["from"]["holder"], h_holder.as_str());
}

#[test]
fn a_run_whose_lease_is_broken_stops_driving() {
    let sb = Sandbox::new();
    let short = ["--lease-duration", "3"];
    let a = sb.start_held("a.journal", &short);
    let a_holder = sb.holder();
    let named = format!("--force-lease={}", run_of(&a_holder));
    let b = sb.start_held("b.journal", &[named.as_str()]);
    let b_holder = sb.holder();
    assert_ne!(a_holder, b_holder);
    // A renews every second: it finds the lease gone and aborts, while B still waits.
    let out = wait_for(a, Duration::from_secs(30), "A");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains(&format!(
            "is no longer this run's: run {b_holder} holds it since "
        )),
        "{err}"
    );
    assert!(err.contains("aborting the running steps"), "{err}");
    let records = sb.records("a.journal");
    let last = records.last().unwrap();
    assert_eq!(last["record"], "stopped", "{last}");
    assert!(last.to_string().contains("cancelled"), "{last}");
    assert_eq!(sb.holder(), b_holder, "A's end touched B's lease");
    sb.hold(false);
    halted(&b.wait_with_output().unwrap(), "B");
    let taken = sb.lease_records("b.journal");
    assert_eq!(taken[0]["taking"]["how"], "broken");
    assert_eq!(taken[0]["taking"]["from"]["holder"], a_holder.as_str());
}

/// Waits up to `limit` for `child` to end (killing it then, and failing).
fn wait_for(mut child: Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} did not end within {limit:?}:\n{}",
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
