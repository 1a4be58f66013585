//! LocalRunner: the conformance suite, and what is particular to it (sandboxes, sudo policy,
//! cancellation, commands that die with a killed runner, handles found from another process,
//! node-side locks in sandboxes).
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kupgrade_core::NodeName;
use kupgrade_core::conformance::command_runner::{
    self, Capabilities, SudoSupport, TrackingSupport,
};
use kupgrade_core::ports::{
    CommandHandle, CommandRunner, CommandRunnerExt, CommandSpec, HandleSink, LineSink, Liveness,
    NodeLock, RunnerError, Tracking,
};
use kupgrade_exec::{LocalRunner, NodeEnv};
use support::fixtures::node_bins;
use support::{alive, uid, write_script, write_stub_sudo};

fn node(name: &str) -> NodeName {
    name.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms() {
    let scratch = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    write_stub_sudo(bin.path());
    // A strict sandbox: the stub sudo and the harmless programs the suite runs, nothing else.
    kupgrade_exec::node_env::provide_programs(
        bin.path(),
        kupgrade_exec::node_env::SANDBOX_PROGRAMS,
    )
    .unwrap();
    let bin_dir = bin.path().to_path_buf();
    let locks = scratch.path().join("locks");
    let runner = LocalRunner::new().allow_sudo().with_node_env(move |_| {
        NodeEnv::new()
            .path_prefix(bin_dir.clone())
            .path_only()
            .lock_dir(locks.clone())
    });
    let caps = Capabilities::new(scratch.path().to_str().unwrap())
        .sudo(SudoSupport::Honoured { uid: uid() });
    command_runner::run_all(&runner, &node("local-1"), &caps).await;
}

/// A runner that only runs: it refuses a lock (`Tracking::refuse_lock`), reports no handle and
/// keeps the port's defaults for `probe` and `stop`.
struct Untracked(LocalRunner);

#[async_trait::async_trait]
impl CommandRunner for Untracked {
    async fn run_tracked(
        &self,
        node: &NodeName,
        spec: &CommandSpec,
        lines: &LineSink,
        tracking: &Tracking,
    ) -> Result<kupgrade_core::ports::CommandOutput, RunnerError> {
        tracking.refuse_lock()?;
        self.0.run(node, spec, lines).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_without_tracking_conforms_by_refusing_it() {
    let scratch = tempfile::tempdir().unwrap();
    let caps = Capabilities::new(scratch.path().to_str().unwrap())
        .sudo(SudoSupport::Refused)
        .tracking(TrackingSupport::None);
    command_runner::run_all(&Untracked(LocalRunner::new()), &node("local-1"), &caps).await;
}

#[tokio::test]
async fn refuses_sudo_unless_allowed() {
    let scratch = tempfile::tempdir().unwrap();
    let caps = Capabilities::new(scratch.path().to_str().unwrap()).sudo(SudoSupport::Refused);
    command_runner::sudo(&LocalRunner::new(), &node("local-1"), &caps).await;
    let e = LocalRunner::new()
        .output(&node("local-1"), &CommandSpec::new("true").sudo())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "this runner cannot run commands with sudo (LocalRunner refuses Privilege::Sudo unless \
         built with LocalRunner::allow_sudo())"
    );
}

#[tokio::test]
async fn each_node_runs_in_its_own_sandbox() {
    let root = tempfile::tempdir().unwrap();
    for (n, bin) in node_bins(root.path(), &["cp-1", "w-1"]) {
        write_script(
            &bin,
            "kubeadm",
            &format!("echo \"kubeadm stub of {n} in $(pwd) root=$KUPGRADE_NODE_ROOT x=$X\"\n"),
        );
    }
    let sandboxes = root.path().to_path_buf();
    let runner = LocalRunner::new().with_node_env(move |n| NodeEnv::sandbox(&sandboxes, n));
    for n in ["cp-1", "w-1"] {
        let out = runner
            .output(
                &node(n),
                &CommandSpec::new("kubeadm").arg("version").env("X", "1"),
            )
            .await
            .unwrap();
        let dir = root.path().join(n);
        assert_eq!(
            out.stdout_text(),
            format!(
                "kubeadm stub of {n} in {d} root={d} x=1\n",
                d = dir.display()
            )
        );
    }
}

/// A strict sandbox finds programs in its bin/ only: a command without a stub fails as not
/// found instead of running the machine's program (as root, under a real sudo), and sudo
/// itself is the sandbox's or none. The prefix mode, which is not a sandbox, still finds them.
#[tokio::test]
async fn a_strict_sandbox_runs_only_what_it_provides() {
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("w-1").join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    write_script(&bin, "kubeadm", "echo stub kubeadm\n");
    let sandboxes = root.path().to_path_buf();
    let strict = LocalRunner::new()
        .allow_sudo()
        .with_node_env(move |n| NodeEnv::sandbox(&sandboxes, n));
    for spec in [
        CommandSpec::new("echo").arg("ok"),
        CommandSpec::new("apt-get").arg("update").sudo(),
        CommandSpec::new("kubeadm").arg("version").sudo(),
    ] {
        let e = strict.output(&node("w-1"), &spec).await.unwrap_err();
        assert!(matches!(e, RunnerError::NotFound { .. }), "{e:?}");
    }
    // With a stub sudo and the usual harmless programs provided, the stubs run, and an
    // unknown program still is not found, directly or through sh or env.
    write_stub_sudo(&bin);
    kupgrade_exec::node_env::provide_programs(&bin, kupgrade_exec::node_env::SANDBOX_PROGRAMS)
        .unwrap();
    let out = strict
        .output(
            &node("w-1"),
            &CommandSpec::new("kubeadm").arg("version").sudo(),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "stub kubeadm\n");
    let e = strict
        .output(
            &node("w-1"),
            &CommandSpec::new("apt-get").arg("update").sudo(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RunnerError::NotFound { program, .. } if program == "apt-get"),
        "{e:?}"
    );
    let out = strict
        .output(
            &node("w-1"),
            &CommandSpec::shell("command -v apt-get || echo none; echo \"$PATH\""),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), format!("none\n{}\n", bin.display()));

    // The prefix mode puts the stubs before the machine's PATH: not a sandbox.
    let sandboxes = root.path().to_path_buf();
    let over = LocalRunner::new().with_node_env(move |n| NodeEnv::sandbox_over_path(&sandboxes, n));
    let out = over
        .output(&node("w-1"), &CommandSpec::new("echo").arg("ok"))
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "ok\n");
}

#[tokio::test]
async fn a_missing_working_directory_is_named() {
    let runner =
        LocalRunner::new().with_node_env(|_| NodeEnv::new().dir("/nonexistent/kupgrade-sandbox"));
    let e = runner
        .output(&node("w-1"), &CommandSpec::new("true"))
        .await
        .unwrap_err();
    assert!(matches!(e, RunnerError::Other { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "running a command on node w-1 failed: the working directory \
         /nonexistent/kupgrade-sandbox set for this node does not exist"
    );
}

#[tokio::test]
async fn dropping_the_run_kills_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let spec = CommandSpec::shell(format!(
        "sleep 300 & echo $! > '{}'; wait",
        pid_file.display()
    ));
    let runner = LocalRunner::new();
    let n = node("w-1");
    let sink = LineSink::none();
    // No timeout in the spec: the caller gives up instead (as Ctrl-C would).
    let run = runner.run(&n, &spec, &sink);
    let gave_up = tokio::time::timeout(Duration::from_millis(500), run).await;
    assert!(gave_up.is_err(), "the command should still be running");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for _ in 0..100 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the background sleep {pid} survived the cancelled run");
}

#[tokio::test]
async fn lines_are_streamed_even_when_the_capture_is_tiny() {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    let sink = LineSink::new(move |_, l| g.lock().unwrap().push(l.to_string()));
    let out = LocalRunner::new()
        .run(
            &node("w-1"),
            &CommandSpec::shell("seq 1 1000").max_output(10),
            &sink,
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "\n999\n1000\n");
    assert!(out.truncated);
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1000);
    assert_eq!(got[0], "1");
    assert_eq!(got[999], "1000");
}

/// The demo sandboxes provide the same harmless programs as the tests' sandboxes.
#[test]
fn the_demo_sandboxes_provide_the_same_programs() {
    let script = include_str!("../../../scripts/demo-sandboxes.sh");
    let start = script
        .find("SANDBOX_PROGRAMS=(")
        .expect("SANDBOX_PROGRAMS in demo-sandboxes.sh")
        + "SANDBOX_PROGRAMS=(".len();
    let end = start + script[start..].find(')').unwrap();
    let listed: Vec<&str> = script[start..end].split_whitespace().collect();
    assert_eq!(listed, kupgrade_exec::node_env::SANDBOX_PROGRAMS);
}

// ---- lifetimes ----------------------------------------------------------------------------

const CHILD: &str = "KUPGRADE_LOCAL_CHILD";

/// Not a test by itself: the child process of the lifetime tests (it returns at once unless
/// `KUPGRADE_LOCAL_CHILD` is set). It runs one command in the sandbox given, prints the
/// command's handle as a JSON line, and waits for the command (or to be killed).
#[test]
fn local_child() {
    let Ok(how) = std::env::var(CHILD) else {
        return;
    };
    let root = std::path::PathBuf::from(std::env::var("KUPGRADE_LOCAL_ROOT").unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let bin = root.join("bin");
        let runner = LocalRunner::new()
            .allow_sudo()
            .with_node_env(move |_| NodeEnv::new().path_prefix(bin.clone()));
        let mut spec = CommandSpec::shell(format!(
            "echo $$ > {r}/cmd.pid; sleep 300 & echo $! > {r}/bg.pid; wait",
            r = root.display()
        ));
        if how == "sudo" {
            spec = spec.sudo();
        }
        let tracking = Tracking::new().started(HandleSink::new(|h| {
            println!("HANDLE {}", serde_json::to_string(&h).unwrap());
        }));
        let _ = runner
            .run_tracked(&node("w-1"), &spec, &LineSink::none(), &tracking)
            .await;
    });
}

/// Starts the child with `how` (`plain`, `sudo`) in `root`; returns it, the handle it
/// printed, and the pids of its command and of the command's background child.
fn start_child(how: &str, root: &Path) -> (std::process::Child, CommandHandle, u32, u32) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["local_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, how)
        .env("KUPGRADE_LOCAL_ROOT", root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let handle = loop {
        let line = lines.next().expect("the child printed no handle").unwrap();
        if let Some((_, json)) = line.split_once("HANDLE ") {
            break serde_json::from_str::<CommandHandle>(json).unwrap();
        }
    };
    let pid = |f: &str| -> u32 {
        for _ in 0..500 {
            if let Ok(t) = std::fs::read_to_string(root.join(f))
                && let Ok(p) = t.trim().parse()
            {
                return p;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{f} never written")
    };
    let (cmd, bg) = (pid("cmd.pid"), pid("bg.pid"));
    // Keep reading (and dropping) the child's stdout so it never blocks.
    std::thread::spawn(move || for _ in lines {});
    (child, handle, cmd, bg)
}

fn wait_dead(pids: &[u32], what: &str) {
    for _ in 0..300 {
        if pids.iter().all(|p| !alive(*p)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    // Do not leave them behind: they are ours (their pids came from files we watched).
    for p in &left {
        let _ = Command::new("kill")
            .args(["-KILL", &p.to_string()])
            .status();
    }
    panic!("{what}: processes {left:?} outlived it by 3 s");
}

fn sandbox() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("bin")).unwrap();
    write_stub_sudo(&root.path().join("bin"));
    root
}

#[test]
fn commands_die_with_a_runner_killed_by_sigkill() {
    for how in ["plain", "sudo"] {
        let root = sandbox();
        let (mut child, handle, cmd, bg) = start_child(how, root.path());
        assert!(alive(cmd) && alive(bg), "{how}: the command is not running");
        assert!(
            matches!(handle, CommandHandle::Local { privileged, .. } if privileged == (how == "sudo")),
            "{how}: {handle:?}"
        );
        // SIGKILL, by the id of the process this test started.
        child.kill().unwrap();
        child.wait().unwrap();
        wait_dead(
            &[cmd, bg],
            &format!("{how}: the runner killed with SIGKILL"),
        );
    }
}

#[tokio::test]
async fn another_process_finds_and_stops_a_command_by_its_handle() {
    let root = sandbox();
    let (mut child, handle, cmd, bg) = start_child("sudo", root.path());
    let bin = root.path().join("bin");
    let other = LocalRunner::new()
        .allow_sudo()
        .with_node_env(move |_| NodeEnv::new().path_prefix(bin.clone()));
    let n = node("w-1");
    assert_eq!(other.probe(&n, &handle).await.unwrap(), Liveness::Running);
    other.stop(&n, &handle).await.unwrap();
    wait_dead(&[cmd, bg], "stop()");
    // The supervisor, killed too, is gone once its parent (the child) has reaped it.
    let mut ended = false;
    for _ in 0..300 {
        if other.probe(&n, &handle).await.unwrap() == Liveness::Ended {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ended, "the stopped group is still found running");
    // The child's run ended with its command.
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    // A handle whose id now names another process is not taken for the command.
    if let CommandHandle::Local { privileged, .. } = handle {
        let impostor = CommandHandle::Local {
            pgid: std::process::id(),
            token: "kupgrade-not-this-one".into(),
            privileged,
        };
        assert_eq!(other.probe(&n, &impostor).await.unwrap(), Liveness::Ended);
        other.stop(&n, &impostor).await.unwrap();
    }
}

/// A sandbox node whose `kubeadm` stub logs when each copy starts and ends.
fn logging_sandbox(root: &Path, node: &str) {
    let bin = root.join(node).join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    write_stub_sudo(&bin);
    kupgrade_exec::node_env::provide_programs(&bin, kupgrade_exec::node_env::SANDBOX_PROGRAMS)
        .unwrap();
    write_script(
        &bin,
        "kubeadm",
        "echo \"start $$\" >> \"$KUPGRADE_NODE_ROOT/log\"; sleep 1; echo \"end $$\" >> \"$KUPGRADE_NODE_ROOT/log\"\n",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_a_step_never_overlap_on_a_sandbox_node() {
    let root = tempfile::tempdir().unwrap();
    logging_sandbox(root.path(), "cp-1");
    // Two runners, as two processes would have: only the lock on the node keeps them apart.
    let runner = |r: &Path| {
        let r = r.to_path_buf();
        LocalRunner::new()
            .allow_sudo()
            .with_node_env(move |n| NodeEnv::sandbox(&r, n))
    };
    let (a, b) = (runner(root.path()), runner(root.path()));
    let n = node("cp-1");
    let spec = CommandSpec::new("kubeadm")
        .args(["upgrade", "apply", "v1.29.15", "--yes"])
        .sudo()
        .timeout(Duration::from_secs(60));
    let lock = |holder: &str, wait: u64| {
        Tracking::new().lock(NodeLock::for_step(
            "f00d",
            "v1.29.15/cp-1/kubeadm-upgrade-apply",
            Some("cp-1"),
            Duration::from_secs(wait),
            holder,
        ))
    };
    let none = LineSink::none();
    let (ta, tb) = (lock("run A", 60), lock("run B", 60));
    let (ra, rb) = tokio::join!(
        a.run_tracked(&n, &spec, &none, &ta),
        b.run_tracked(&n, &spec, &none, &tb)
    );
    assert!(ra.unwrap().status.success() && rb.unwrap().status.success());
    let log = std::fs::read_to_string(root.path().join("cp-1/log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(
        lines[0].starts_with("start") && lines[1].starts_with("end"),
        "the copies overlapped:\n{log}"
    );
    assert!(
        root.path().join("cp-1/run/kupgrade").is_dir(),
        "the lock is not in the sandbox"
    );

    // A copy that cannot get the lock in time runs nothing and names the holder.
    let (th, tl) = (lock("run A (pid 1) on ops-1", 60), lock("run B", 1));
    let holding = CommandSpec::shell("sleep 3").sudo();
    let late = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.run_tracked(&n, &spec, &none, &tl).await
    };
    let (held, refused) = tokio::join!(b.run_tracked(&n, &holding, &none, &th), late);
    assert!(held.unwrap().status.success());
    match refused {
        Err(RunnerError::Locked { node: at, message }) => {
            assert_eq!(at, n);
            assert!(message.contains("run A (pid 1) on ops-1"), "{message}");
            assert!(message.contains("still held after 1s"), "{message}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let log = std::fs::read_to_string(root.path().join("cp-1/log")).unwrap();
    assert_eq!(log.lines().count(), 4, "the refused copy ran:\n{log}");
}

#[tokio::test]
async fn handles_and_output_arrive_in_order() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let (g1, g2) = (got.clone(), got.clone());
    let lines = LineSink::new(move |_, l| g1.lock().unwrap().push(format!("line {l}")));
    let tracking = Tracking::new().started(HandleSink::new(move |h| {
        g2.lock().unwrap().push(format!("handle {h}"))
    }));
    LocalRunner::new()
        .run_tracked(
            &node("w-1"),
            &CommandSpec::new("echo").arg("x"),
            &lines,
            &tracking,
        )
        .await
        .unwrap();
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with("handle process group "), "{got:?}");
    assert_eq!(got[1], "line x");
}
