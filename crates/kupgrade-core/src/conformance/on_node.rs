//! What the command-runner suites ask of the node under test: run a command and require it
//! to work, make a fresh directory, look for a file, and see that nothing outlived a command
//! ended early. Shared by [`super::command_runner`] and [`super::tracking`].
use std::time::Duration;

use super::command_runner::Capabilities;
use super::{BoxFuture, join_all};
use crate::NodeName;
use crate::ports::{CommandOutput, CommandRunner, CommandSpec, ExitStatus, LineSink, shell_quote};

/// Generous bound for commands that should end at once, so a broken backend fails instead
/// of hanging the suite.
pub(super) const BOUND: Duration = Duration::from_secs(60);

pub(super) async fn run_ok(
    runner: &dyn CommandRunner,
    node: &NodeName,
    check: &str,
    spec: &CommandSpec,
    lines: &LineSink,
) -> CommandOutput {
    let spec = if spec.timeout.is_none() {
        spec.clone().timeout(BOUND)
    } else {
        spec.clone()
    };
    match runner.run(node, &spec, lines).await {
        Ok(out) => out,
        Err(e) => panic!("conformance/{check}: `{spec}` failed: {e}"),
    }
}

pub(super) async fn out(
    runner: &dyn CommandRunner,
    node: &NodeName,
    check: &str,
    spec: &CommandSpec,
) -> CommandOutput {
    run_ok(runner, node, check, spec, &LineSink::none()).await
}

/// Runs `spec` and requires exit code 0; returns stdout as text.
pub(super) async fn ok_text(
    runner: &dyn CommandRunner,
    node: &NodeName,
    check: &str,
    spec: &CommandSpec,
) -> String {
    let o = out(runner, node, check, spec).await;
    assert_eq!(
        o.status,
        ExitStatus::Code(0),
        "conformance/{check}: `{spec}` failed; stderr: {}",
        o.stderr_text()
    );
    o.stdout_text()
}

/// A new empty directory on the node.
pub(super) async fn fresh_dir(
    runner: &dyn CommandRunner,
    node: &NodeName,
    caps: &Capabilities,
    check: &str,
) -> String {
    let template = format!("{}/{check}.XXXXXX", caps.scratch_dir.trim_end_matches('/'));
    let dir = ok_text(
        runner,
        node,
        check,
        &CommandSpec::new("mktemp").args(["-d", &template]),
    )
    .await;
    let dir = dir.trim_end_matches('\n').to_string();
    assert!(
        dir.starts_with(caps.scratch_dir.trim_end_matches('/')),
        "conformance/{check}: mktemp printed {dir:?}"
    );
    dir
}

/// True when `path` exists on the node.
pub(super) async fn exists(
    runner: &dyn CommandRunner,
    node: &NodeName,
    check: &str,
    path: &str,
) -> bool {
    let o = out(
        runner,
        node,
        check,
        &CommandSpec::new("test").args(["-e", path]),
    )
    .await;
    match o.status {
        ExitStatus::Code(0) => true,
        ExitStatus::Code(1) => false,
        s => panic!("conformance/{check}: `test -e {path}` ended with {s}"),
    }
}

/// A command that would outlive an early end: it touches `started` in `dir`, starts a
/// background child that touches `late` at 3 s, and sleeps 60 s in the foreground before it
/// touches `foreground` ([`nothing_survived`] looks for both).
pub(super) fn outlived_by_a_child(dir: &str) -> CommandSpec {
    let d = shell_quote(dir);
    CommandSpec::shell(format!(
        "touch {d}/started; ( sleep 3; touch {d}/late ) & echo running; sleep 60; touch {d}/foreground"
    ))
}

/// After a command was ended early (`how`: timed out, stopped), outlives its background
/// child's 3 s deadline and requires that neither that child nor the foreground wrote its
/// file (`late`, `foreground` in `dir`); then requires the runner to still run a command.
pub(super) async fn nothing_survived(
    runner: &dyn CommandRunner,
    node: &NodeName,
    check: &str,
    dir: &str,
    how: &str,
) {
    ok_text(runner, node, check, &CommandSpec::new("sleep").arg("3")).await;
    for f in ["late", "foreground"] {
        assert!(
            !exists(runner, node, check, &format!("{dir}/{f}")).await,
            "conformance/{check}: a process of the {how} command survived and wrote {f}"
        );
    }
    assert_eq!(
        ok_text(runner, node, check, &CommandSpec::new("echo").arg("alive")).await,
        "alive\n",
        "conformance/{check}: the runner works after a {how} command"
    );
}

/// Runs two futures at once and returns both outputs, in order.
pub(super) async fn join2<'a, A: Send + 'a, B: Send + 'a>(
    a: BoxFuture<'a, A>,
    b: BoxFuture<'a, B>,
) -> (A, B) {
    enum Either<A, B> {
        A(A),
        B(B),
    }
    let futs: Vec<BoxFuture<'a, Either<A, B>>> = vec![
        Box::pin(async move { Either::A(a.await) }),
        Box::pin(async move { Either::B(b.await) }),
    ];
    let mut outs = join_all(futs).await.into_iter();
    match (outs.next(), outs.next()) {
        (Some(Either::A(a)), Some(Either::B(b))) => (a, b),
        _ => unreachable!("join_all keeps order"),
    }
}
