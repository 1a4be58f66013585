//! SshRunner against a real OpenSSH server on 127.0.0.1 (see support/sshd.rs): the
//! conformance suite, host-key refusal, connection reuse, remote kills.
mod support;

use std::path::Path;
use std::time::Duration;

use kupgrade_core::conformance::command_runner::{self, Capabilities, SignalReport, SudoSupport};
use kupgrade_core::ports::{CommandRunner, CommandRunnerExt, CommandSpec, LineSink, RunnerError};
use kupgrade_core::{NodeName, SshTarget};
use kupgrade_exec::{NodeEnv, SshConfig, SshRunner};
use support::fixtures::node_bins;
use support::sshd::Sshd;
use support::{processes_with, uid, write_script, write_stub_sudo};

fn node(name: &str) -> NodeName {
    name.parse().unwrap()
}

fn target(sshd: &Sshd) -> SshTarget {
    SshTarget {
        host: Some("127.0.0.1".into()),
        port: Some(sshd.port()),
        user: Some(sshd.user().to_string()),
    }
}

/// The test sshd (`None` when there is none here: the test passes, saying so) and a folder
/// for the runner's state.
fn start() -> Option<(Sshd, tempfile::TempDir)> {
    Some((Sshd::start()?, tempfile::tempdir().unwrap()))
}

/// A config that reaches `sshd` with its key and known_hosts, keeping state in `state`.
fn config(sshd: &Sshd, state: &Path) -> SshConfig {
    SshConfig::new()
        .identity_file(sshd.client_key())
        .known_hosts_file(sshd.known_hosts())
        .state_dir(state)
}

/// The message of the error running `true` on node `name`, reached at `target` with `config`,
/// fails with, and the error: a refusal (nothing ran) of the kind `kind` (`Connect`, `Auth`,
/// `HostKey` or `Invalid`) that names the node.
async fn true_fails(
    config: SshConfig,
    name: &str,
    target: SshTarget,
    kind: &str,
) -> (String, RunnerError) {
    let runner = SshRunner::new(config)
        .unwrap()
        .with_target(node(name), target);
    let e = runner
        .output(&node(name), &CommandSpec::new("true"))
        .await
        .unwrap_err();
    let (found, n, message) = match &e {
        RunnerError::Connect { node, message, .. } => ("Connect", node, message),
        RunnerError::Auth { node, message } => ("Auth", node, message),
        RunnerError::HostKey { node, message } => ("HostKey", node, message),
        RunnerError::Invalid { node, message } => ("Invalid", node, message),
        _ => panic!("expected {kind}, got {e:?}"),
    };
    assert_eq!((found, n.as_str()), (kind, name), "{e:?}");
    (message.clone(), e)
}

fn ssh_runner(sshd: &Sshd, state: &Path, nodes: &[&str]) -> SshRunner {
    let r = SshRunner::new(config(sshd, state)).unwrap();
    r.with_targets(nodes.iter().map(|n| (node(n), target(sshd))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_over_a_real_sshd() {
    let Some(sshd) = Sshd::start() else { return };
    write_stub_sudo(&sshd.bin_dir());
    let state = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap(); // the "remote" node is this machine
    // Node-side locks in the scratch directory, not this machine's /run.
    let locks = scratch.path().join("locks");
    let runner = ssh_runner(&sshd, state.path(), &["node-1"])
        .with_node_env(move |_| NodeEnv::new().lock_dir(locks.clone()));
    let caps = Capabilities::new(scratch.path().to_str().unwrap())
        .sudo(SudoSupport::Honoured { uid: uid() })
        .signals(SignalReport::ShellStatus);
    command_runner::run_all(&runner, &node("node-1"), &caps).await;
    // Every command of the suite, including the concurrent ones and the kills, went over one
    // connection.
    assert_eq!(sshd.accepted_logins(), 1, "{}", sshd.log());
    runner.close().await;
}

#[tokio::test]
async fn unknown_host_key_is_refused() {
    let Some((sshd, state)) = start() else { return };
    let empty = state.path().join("known_hosts_empty");
    std::fs::write(&empty, "").unwrap();
    let config = config(&sshd, state.path()).known_hosts_file(&empty);
    let (message, e) = true_fails(config.clone(), "w-1", target(&sshd), "HostKey").await;
    let dest = format!("{}@127.0.0.1:{}", sshd.user(), sshd.port());
    assert!(
        message.starts_with(&format!(
            "{dest} presented a host key that is not in {}, and unknown host keys are refused. \
             Nothing was run.",
            empty.display()
        )),
        "{message}"
    );
    assert!(
        message.contains("SshConfig::accept_new_host_keys()"),
        "{message}"
    );
    assert!(
        message.contains(&format!("ssh-keyscan -p {} 127.0.0.1", sshd.port())),
        "{message}"
    );
    assert!(
        message.contains("No ED25519 host key is known for"),
        "{message}"
    );
    assert!(
        e.to_string()
            .starts_with("host key of node w-1 not trusted: "),
        "{e}"
    );
    assert_eq!(sshd.accepted_logins(), 0, "nothing may log in");
    assert_eq!(
        std::fs::read_to_string(&empty).unwrap(),
        "",
        "known_hosts must not change"
    );

    // Trust on first use is an explicit opt-in; it records the key.
    let runner = SshRunner::new(config.accept_new_host_keys())
        .unwrap()
        .with_target(node("w-1"), target(&sshd));
    let out = runner
        .output(&node("w-1"), &CommandSpec::new("echo").arg("in"))
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "in\n");
    // (Debian's ssh_config hashes host names, so compare the key itself.)
    let recorded = std::fs::read_to_string(&empty).unwrap();
    let host_key = std::fs::read_to_string(sshd.dir().join("host_key.pub")).unwrap();
    let blob = host_key.split_whitespace().nth(1).unwrap();
    assert!(
        recorded
            .trim_end()
            .ends_with(&format!("ssh-ed25519 {blob}")),
        "{recorded}"
    );
}

#[tokio::test]
async fn changed_host_key_is_refused_even_with_accept_new() {
    let Some((sshd, state)) = start() else { return };
    let other = state.path().join("other_host_key");
    sshd.keygen(&other);
    let wrong = state.path().join("known_hosts_wrong");
    sshd.write_known_hosts(&wrong, &other.with_extension("pub"));
    for config in [
        config(&sshd, state.path()).known_hosts_file(&wrong),
        config(&sshd, state.path())
            .known_hosts_file(&wrong)
            .accept_new_host_keys(),
    ] {
        let (message, _) = true_fails(config, "cp-1", target(&sshd), "HostKey").await;
        assert!(
            message.contains(&format!(
                "presented a host key that does NOT match the one recorded for it in {}",
                wrong.display()
            )),
            "{message}"
        );
        assert!(
            message.contains(&format!(
                "ssh-keygen -R '[127.0.0.1]:{}' -f {}",
                sshd.port(),
                wrong.display()
            )),
            "{message}"
        );
    }
    assert_eq!(sshd.accepted_logins(), 0);
}

#[tokio::test]
async fn an_unauthorized_key_is_an_auth_error() {
    let Some((sshd, state)) = start() else { return };
    let stranger = state.path().join("stranger");
    sshd.keygen(&stranger);
    let config = config(&sshd, state.path()).identity_file(&stranger);
    let (message, _) = true_fails(config, "w-2", target(&sshd), "Auth").await;
    assert!(
        message.contains("Permission denied (publickey)"),
        "{message}"
    );
    assert!(message.contains("authorized_keys"), "{message}");
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let Some((sshd, state)) = start() else { return };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let closed = SshTarget {
        port: Some(port),
        ..target(&sshd)
    };
    let (message, _) = true_fails(config(&sshd, state.path()), "w-3", closed, "Connect").await;
    assert!(message.contains("Connection refused"), "{message}");
}

/// ssh refusing its own configuration (an option it does not know) or arguments (a time it
/// cannot take) is reported with what ssh said, as a setting to fix: not as an unreachable
/// node, nor as a missing ssh client.
#[tokio::test]
async fn ssh_refusing_its_options_is_reported_with_its_words() {
    let Some((sshd, state)) = start() else { return };
    for (config, said) in [
        (
            config(&sshd, state.path()).ssh_option("Bogus", "yes"),
            "Bad configuration option: bogus",
        ),
        (
            config(&sshd, state.path()).connect_timeout(Duration::from_secs(1 << 40)),
            "invalid time value",
        ),
    ] {
        let (message, _) = true_fails(config, "w-1", target(&sshd), "Invalid").await;
        let dest = format!("{}@127.0.0.1:{}", sshd.user(), sshd.port());
        assert!(
            message.starts_with(&format!(
                "ssh refused its arguments or configuration for {dest}, so nothing was run (ssh: "
            )),
            "{message}"
        );
        assert!(message.contains(said), "{message}");
        assert!(!message.contains("openssh-client"), "{message}");
    }
    assert_eq!(sshd.accepted_logins(), 0);
}

/// A target built in code is checked like an inventory's: a user or host that could reach a
/// shell through ssh's configuration (`%r`, `%h` in a `ProxyCommand`) never reaches ssh.
#[tokio::test]
async fn a_hostile_target_never_reaches_ssh() {
    let Some((sshd, state)) = start() else { return };
    let marker = state.path().join("pwned");
    let proxy = format!("sh -c 'touch {}; nc %h %p'", marker.display());
    let conf = config(&sshd, state.path()).ssh_option("ProxyCommand", proxy);
    for (field, t) in [
        (
            "user",
            SshTarget {
                user: Some(format!("x$(touch {})", marker.display())),
                ..target(&sshd)
            },
        ),
        (
            "host",
            SshTarget {
                host: Some("127.0.0.1;id".into()),
                ..target(&sshd)
            },
        ),
    ] {
        let (message, _) = true_fails(conf.clone(), "w-1", t, "Invalid").await;
        assert!(
            message.starts_with(&format!("its SSH target's {field}: ")),
            "{message}"
        );
        assert!(message.ends_with("; nothing was run"), "{message}");
    }
    assert!(!marker.exists(), "the ProxyCommand ran");
    // A default user from the configuration is held to the same rule.
    let e = SshRunner::new(config(&sshd, state.path()).user("a`id`")).unwrap_err();
    assert!(
        e.to_string()
            .contains("user: \"a`id`\" is not a POSIX user name"),
        "{e}"
    );
}

/// Refusals (ssh's own, a host key, a bad target) fail the step at once: the driver does not
/// retry what trying again cannot fix.
#[tokio::test]
async fn refusals_are_not_retried() {
    use std::sync::Arc;

    use kupgrade_core::plan::PlanRequest;
    use kupgrade_core::run::{FailureKind, Finished, RetryPolicy, Run, RunOptions, StopReason};
    use kupgrade_core::skew::UpstreamPolicy;
    use kupgrade_exec::driver::Driver;
    use kupgrade_exec::sim::SimCluster;

    let Some((sshd, state)) = start() else { return };
    let cluster = kupgrade_core::inventory::parse(
        "nodes:\n  - name: solo\n    roles: [control-plane]\n    versions: { kubelet: v1.28.9, \
         kubeadm: v1.28.9, kube-apiserver: v1.28.9, kube-controller-manager: v1.28.9, \
         kube-scheduler: v1.28.9, etcd: 3.5.9-0 }\n",
        "solo.yaml",
    )
    .unwrap();
    let plan = Arc::new(
        PlanRequest::new("1.29".parse().unwrap(), jiff::civil::date(2024, 6, 1))
            .plan(&cluster)
            .unwrap(),
    );
    let empty = state.path().join("known_hosts_empty");
    std::fs::write(&empty, "").unwrap();
    let cases = [
        (
            config(&sshd, state.path()).ssh_option("Bogus", "yes"),
            target(&sshd),
        ),
        (
            config(&sshd, state.path()).known_hosts_file(&empty),
            target(&sshd),
        ),
        (
            config(&sshd, state.path()),
            SshTarget {
                user: Some("Root".into()),
                ..target(&sshd)
            },
        ),
    ];
    for (config, t) in cases {
        let runner = SshRunner::new(config).unwrap().with_target(node("solo"), t);
        let sim = Arc::new(SimCluster::new(cluster.clone()));
        let mut run = Run::new(
            plan.clone(),
            Arc::new(UpstreamPolicy::new()),
            RunOptions {
                max_parallel: None,
                retry: RetryPolicy {
                    max_attempts: 5,
                    ..RetryPolicy::default()
                },
            },
        )
        .unwrap();
        let mut journal = Vec::new();
        let out = Driver::new(Arc::new(runner), sim)
            .drive(&mut run, &mut journal)
            .await
            .unwrap();
        let Finished::Halted(report) = &out else {
            panic!("expected a halt, got {out}")
        };
        assert_eq!(report.reason, StopReason::StepFailed, "{report}");
        let c = run.counts();
        assert_eq!((c.retried, c.failed), (0, 1), "{report}");
        let failure = journal
            .iter()
            .find_map(|r| match &r.kind {
                kupgrade_core::run::RecordKind::TaskFinished {
                    end: kupgrade_core::run::TaskEnd::Failed { failure, .. },
                    ..
                } => Some(failure.clone()),
                _ => None,
            })
            .expect("a failed task in the journal");
        assert_eq!(failure.kind, FailureKind::Refused, "{failure}");
    }
    assert_eq!(sshd.accepted_logins(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_per_node_reused_and_reopened() {
    let Some((sshd, state)) = start() else { return };
    let runner = ssh_runner(&sshd, state.path(), &["a", "b"]);
    let mut runs = Vec::new();
    for i in 0..24 {
        let (runner, n) = (runner.clone(), node(if i % 2 == 0 { "a" } else { "b" }));
        runs.push(tokio::spawn(async move {
            runner
                .output(&n, &CommandSpec::new("echo").arg(i.to_string()))
                .await
                .unwrap()
                .stdout_text()
        }));
    }
    for (i, r) in runs.into_iter().enumerate() {
        assert_eq!(r.await.unwrap(), format!("{i}\n"));
    }
    assert_eq!(
        sshd.accepted_logins(),
        2,
        "one login per node: {}",
        sshd.log()
    );
    let masters = control_sockets(state.path());
    assert_eq!(masters.len(), 2, "{masters:?}");

    // Ask node a's master to exit, as an idle timeout would: the next command reconnects.
    let status = std::process::Command::new("ssh")
        .arg("-S")
        .arg(&masters[0])
        .args(["-O", "exit", "x"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    for n in ["a", "b"] {
        let out = runner
            .output(&node(n), &CommandSpec::new("echo").arg(n))
            .await
            .unwrap();
        assert_eq!(out.stdout_text(), format!("{n}\n"));
    }
    assert_eq!(
        sshd.accepted_logins(),
        3,
        "exactly one reconnection: {}",
        sshd.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_refused_by_max_sessions_are_retried() {
    // The server allows 2 sessions per connection; the runner tries 6 commands at once.
    let Some(sshd) = Sshd::start_with(&["MaxSessions 2"]) else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let runner = SshRunner::new(config(&sshd, state.path()).max_sessions_per_node(6))
        .unwrap()
        .with_target(node("w-1"), target(&sshd));
    let mut runs = Vec::new();
    for i in 0..6 {
        let runner = runner.clone();
        runs.push(tokio::spawn(async move {
            let spec = CommandSpec::shell(format!("sleep 0.2; echo {i}"));
            runner.output(&node("w-1"), &spec).await
        }));
    }
    for (i, r) in runs.into_iter().enumerate() {
        assert_eq!(r.await.unwrap().unwrap().stdout_text(), format!("{i}\n"));
    }
    assert_eq!(sshd.accepted_logins(), 1);
}

#[tokio::test]
async fn dropping_the_runner_closes_its_connections() {
    let Some((sshd, state)) = start() else { return };
    let runner = ssh_runner(&sshd, state.path(), &["a", "b"]);
    for n in ["a", "b"] {
        runner
            .output(&node(n), &CommandSpec::new("true"))
            .await
            .unwrap();
    }
    let closed = || sshd.log().matches("Disconnected from user").count();
    assert_eq!(closed(), 0);
    drop(runner);
    for _ in 0..250 {
        if closed() == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "connections still open after the runner was dropped: {}",
        sshd.log()
    );
}

#[tokio::test]
async fn sessions_start_with_an_empty_home() {
    // The harness's SetEnv gives sessions an empty HOME, so the login shell reads no start-up
    // files (root's ~/.bashrc here exports PYENV_ROOT and costs ~120 ms).
    let Some((sshd, state)) = start() else { return };
    let runner = ssh_runner(&sshd, state.path(), &["w-1"]);
    let spec = CommandSpec::shell("printf '%s|%s|%s' \"$HOME\" \"${PYENV_ROOT-unset}\" \"$PATH\"");
    let out = runner.output(&node("w-1"), &spec).await.unwrap();
    assert_eq!(
        out.stdout_text(),
        format!(
            "{}|unset|{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            sshd.home().display(),
            sshd.bin_dir().display()
        )
    );
}

#[tokio::test]
async fn login_shell_noise_is_discarded_or_reported() {
    let Some((sshd, state)) = start() else { return };
    let runner = ssh_runner(&sshd, state.path(), &["w-1"]);
    // bash reads ~/.bashrc for commands run by sshd: make it talk.
    let bashrc = sshd.home().join(".bashrc");
    std::fs::write(&bashrc, "echo 'Welcome to node w-1'\n").unwrap();
    let plain = std::process::Command::new("ssh")
        .args(sshd.ssh_args())
        .args(["127.0.0.1", "echo hi"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        "Welcome to node w-1\nhi\n"
    );
    let out = runner
        .output(&node("w-1"), &CommandSpec::new("echo").arg("hi"))
        .await
        .unwrap();
    assert_eq!(
        out.stdout_text(),
        "hi\n",
        "the greeting is not the command's output"
    );

    // Far too much noise: kupgrade cannot tell where the command's output starts, and says so.
    std::fs::write(&bashrc, "head -c 100000 /dev/zero | tr '\\0' x\n").unwrap();
    let e = runner
        .output(&node("w-1"), &CommandSpec::new("echo").arg("hi"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(
            "kupgrade's start marker was not in the first 64 KiB of output (do the login \
             shell's start-up files print that much?); the command may have run (exit status 0)"
        ),
        "{e}"
    );
}

/// The control sockets under the runner's state directory.
fn control_sockets(state: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for private in std::fs::read_dir(state).unwrap().flatten() {
        for conn in std::fs::read_dir(private.path()).unwrap().flatten() {
            let master = conn.path().join("master");
            if master.exists() {
                found.push(master);
            }
        }
    }
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_remote_process_group() {
    let Some((sshd, state)) = start() else { return };
    let runner = ssh_runner(&sshd, state.path(), &["w-1"]);
    // Both the command's child and grandchild carry a tag we can find in /proc.
    let tag = format!("31{}", sshd.port());
    let spec = CommandSpec::shell(format!("sh -c 'sleep {tag}1' & sleep {tag}2; true"))
        .timeout(Duration::from_millis(800));
    let e = runner.output(&node("w-1"), &spec).await.unwrap_err();
    assert!(matches!(e, RunnerError::TimedOut { .. }), "{e:?}");
    for _ in 0..100 {
        if processes_with(&format!("sleep {tag}")).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "remote processes survived the timeout: {:?}",
        processes_with(&format!("sleep {tag}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_kills_the_remote_process_group() {
    let Some((sshd, state)) = start() else { return };
    let runner = ssh_runner(&sshd, state.path(), &["w-1"]);
    let tag = format!("32{}", sshd.port());
    let spec = CommandSpec::shell(format!("echo started; sleep {tag}"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let sink = LineSink::new(move |_, _| {
        if let Some(tx) = tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
    });
    let n = node("w-1");
    {
        let run = runner.run(&n, &spec, &sink);
        tokio::select! {
            r = run => panic!("the command ended: {r:?}"),
            _ = rx => {} // started: give up on it, as Ctrl-C would
        }
    }
    for _ in 0..200 {
        if processes_with(&format!("sleep {tag}")).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the remote command survived the cancelled run");
}

#[tokio::test]
async fn node_env_sandboxes_work_remotely() {
    let Some((sshd, state)) = start() else { return };
    let root = tempfile::tempdir().unwrap();
    for (n, bin) in node_bins(root.path(), &["cp-1", "w-1"]) {
        write_script(
            &bin,
            "kubeadm",
            &format!("echo \"stub of {n} in $(pwd) root=$KUPGRADE_NODE_ROOT\"\n"),
        );
        // The wrapper runs the command line with `sh` and sets the node's variables with
        // `env`, both found in the strict PATH.
        kupgrade_exec::node_env::provide_programs(&bin, &["sh", "env"]).unwrap();
    }
    let sandboxes = root.path().to_path_buf();
    let runner = ssh_runner(&sshd, state.path(), &["cp-1", "w-1"])
        .with_node_env(move |n| NodeEnv::sandbox(&sandboxes, n));
    for n in ["cp-1", "w-1"] {
        let out = runner
            .output(&node(n), &CommandSpec::new("kubeadm").arg("version"))
            .await
            .unwrap();
        let d = root.path().join(n);
        assert_eq!(
            out.stdout_text(),
            format!("stub of {n} in {d} root={d}\n", d = d.display())
        );
    }

    // Nothing else of the node is reachable by name: not its sudo, not its programs.
    for program in ["apt-get", "sudo"] {
        let e = runner
            .output(&node("w-1"), &CommandSpec::new(program).arg("--version"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, RunnerError::NotFound { program: p, .. } if p == program),
            "{e:?}"
        );
    }

    let broken = ssh_runner(&sshd, state.path(), &["w-9"])
        .with_node_env(|_| NodeEnv::new().dir("/nonexistent/kupgrade-sandbox"));
    let e = broken
        .output(&node("w-9"), &CommandSpec::new("true"))
        .await
        .unwrap_err();
    let RunnerError::Other { message, .. } = &e else {
        panic!("expected Other, got {e:?}")
    };
    assert!(
        message.starts_with("the command did not start"),
        "{message}"
    );
    assert!(
        message.contains("/nonexistent/kupgrade-sandbox"),
        "{message}"
    );
}

#[tokio::test]
async fn a_node_made_by_a_provider_is_reached_at_the_target_its_create_command_reports() {
    use kupgrade_core::ports::NodeProvider;
    let Some((sshd, state)) = start() else { return };
    let runner = SshRunner::new(config(&sshd, state.path())).unwrap();
    let new = node("w-1-v1-30-6");
    // Unknown before: reached at its node name, which does not resolve.
    let before = runner.output(&new, &CommandSpec::shell("echo hello")).await;
    assert!(
        before.as_ref().map_or(true, |o| !o.status.success()),
        "{before:?}"
    );
    let learner = runner.clone();
    let provider = kupgrade_exec::CommandProvider::new(
        CommandSpec::shell(
            r#"printf '{"name": "%s", "ssh": {"host": "127.0.0.1", "port": %s, "user": "%s"}}' "$KUPGRADE_NODE" "$PORT" "$SSH_USER""#,
        ),
        CommandSpec::shell("true"),
    )
    .env("PORT", sshd.port().to_string())
    .env("SSH_USER", sshd.user())
    .on_ssh_target(move |n, t| learner.learn_target(n, t));
    let template = kupgrade_core::Node::worker("w-1", "v1.29.10".parse().unwrap()).unwrap();
    provider
        .provision(&new, &template, &"v1.30.6".parse().unwrap())
        .await
        .unwrap();
    let out = runner
        .output(&new, &CommandSpec::shell("echo hello"))
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout_text().trim(), "hello");
    runner.close().await;
}

/// A shell script that walks up from itself to the first process whose parent is `sshd`
/// (the login shell that runs the command) and kills it, or (with `up_to_sshd`) the sshd
/// process above it, which serves the connection: every channel of it goes with it.
fn kill_ancestor(up_to_sshd: bool) -> String {
    let (which, then) = if up_to_sshd {
        ("$pp", "sleep 30")
    } else {
        ("$p", "")
    };
    format!(
        "p=$$; while [ \"$p\" -gt 1 ]; do \
         pp=$(cut -d' ' -f4 /proc/$p/stat); \
         case $(cat /proc/$pp/comm) in sshd|sshd-session) kill -9 \"{which}\"; break;; esac; \
         p=$pp; done; {then}"
    )
}

/// `echo` on `n` through `runner` answers afterwards, `sshd` having accepted `logins` logins
/// in all (`why`).
async fn echo_answers(runner: &SshRunner, n: &NodeName, sshd: &Sshd, logins: usize, why: &str) {
    let out = runner
        .output(n, &CommandSpec::new("echo").arg("back"))
        .await;
    assert_eq!(out.unwrap().stdout_text(), "back\n");
    assert_eq!(sshd.accepted_logins(), logins, "{why}: {}", sshd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_mid_command_is_unreachable_and_reopened() {
    let Some((sshd, state)) = start() else { return };
    let runner = ssh_runner(&sshd, state.path(), &["w-1"]);
    let n = node("w-1");
    let spec = CommandSpec::shell(kill_ancestor(true)).timeout(Duration::from_secs(20));
    let e = runner.output(&n, &spec).await.unwrap_err();
    // Its fate is unknown and the node may be down: what a reboot or a restarting sshd
    // looks like, so the run waits for the node (`--unreachable-wait`) instead of halting.
    assert!(matches!(e, RunnerError::Connect { .. }), "{e:?}");
    assert!(
        e.to_string().contains("may or may not have finished"),
        "{e}"
    );
    echo_answers(&runner, &n, &sshd, 2, "a new connection").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_killed_by_a_signal_keeps_its_connection() {
    let Some((sshd, state)) = start() else { return };
    let runner = ssh_runner(&sshd, state.path(), &["w-1"]);
    let n = node("w-1");
    let e = runner
        .output(&n, &CommandSpec::shell(kill_ancestor(false)))
        .await
        .unwrap_err();
    assert!(!matches!(e, RunnerError::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains("signal"), "{e}");
    echo_answers(&runner, &n, &sshd, 1, "the same connection").await;
}
