//! LocalRunner: the conformance suite, and what is particular to it (sandboxes, sudo policy,
//! cancellation).
mod support;

use std::time::Duration;

use kupgrade_core::NodeName;
use kupgrade_core::conformance::command_runner::{self, Capabilities, SudoSupport};
use kupgrade_core::ports::{CommandRunner, CommandRunnerExt, CommandSpec, LineSink, RunnerError};
use kupgrade_exec::{LocalRunner, NodeEnv};
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
    let runner = LocalRunner::new()
        .allow_sudo()
        .with_node_env(move |_| NodeEnv::new().path_prefix(bin_dir.clone()).path_only());
    let caps = Capabilities::new(scratch.path().to_str().unwrap())
        .sudo(SudoSupport::Honoured { uid: uid() });
    command_runner::run_all(&runner, &node("local-1"), &caps).await;
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
    for n in ["cp-1", "w-1"] {
        let bin = root.path().join(n).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
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
