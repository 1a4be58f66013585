//! The [`CommandRunner`] conformance suite.
//!
//! [`run_all`] runs every check; each is also public, to rerun one while debugging. The suite
//! needs a POSIX node (`sh`, `printf`, `cat`, `sleep`, `mktemp`, `yes`, `head`, `tr`, `wc`, `ls`,
//! `id`) and a directory on it where it may create files ([`Capabilities::scratch_dir`]). It
//! checks:
//!
//! - exit codes are kept (0, 1, 7, 255), for programs and for shell scripts;
//! - stderr is captured apart from stdout, or (where the backend says so) merged into it in
//!   the order it was written ([`StderrCapture`]);
//! - stdin is delivered byte for byte and then closed (EOF), and is empty when not given; input
//!   over the backend's limit ([`Capabilities::max_stdin`]) is refused before anything runs;
//! - arguments reach the program exactly (spaces, quotes, `$(...)`, backquotes, `;`, newlines,
//!   empty arguments, unicode) and nothing in them is executed;
//! - environment variables are honoured;
//! - a timeout kills the command and everything it started ([`RunnerError::TimedOut`]), which is
//!   verified by a background child that would have left a file behind;
//! - a missing program is [`RunnerError::NotFound`];
//! - output is bounded to `max_output` (the tail is kept, `truncated` is set) while every line
//!   is still streamed, in order, per stream, and (where the backend streams live) while the
//!   command runs;
//! - sudo is refused with [`RunnerError::Unsupported`], really goes through `sudo -n`, or
//!   changes nothing because every command already runs as the user sudo would give
//!   ([`SudoSupport`]);
//! - a command killed by a signal reports it the way the backend says it does;
//! - several commands run at once on one node;
//! - the tracking of commands (handles, looking for a command again, stopping it, the
//!   node-side lock), or its refusal ([`TrackingSupport`]; checks in
//!   [`super::tracking`]).
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::on_node::{
    BOUND, exists, fresh_dir, join2, nothing_survived, ok_text, out, outlived_by_a_child, run_ok,
};
use super::{BoxFuture, join_all};
use crate::NodeName;
use crate::ports::{
    CommandOutput, CommandRunner, CommandSpec, ExitStatus, LineSink, RunnerError, Stream,
    shell_quote,
};

pub use super::tracking::TrackingSupport;

/// What the backend under test can do; the suite checks each answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// An existing, writable directory on the node (absolute path) where the suite creates
    /// fresh subdirectories with `mktemp -d`.
    pub scratch_dir: String,
    /// How the backend treats [`Privilege::Sudo`](crate::ports::Privilege::Sudo).
    pub sudo: SudoSupport,
    /// How the backend reports a command killed by a signal.
    pub signals: SignalReport,
    /// True when lines reach the sink while the command is still running.
    pub streams_live: bool,
    /// How many commands the suite runs at once on one node (at least 2).
    pub concurrency: usize,
    /// The most standard input the backend carries, in bytes; more is refused with
    /// [`RunnerError::Unsupported`]. `None`: any amount (the suite sends 3 MiB).
    pub max_stdin: Option<usize>,
    /// Where the backend puts what a command writes to stderr.
    pub stderr: StderrCapture,
    /// Whether the backend tracks the commands it starts.
    pub tracking: TrackingSupport,
}

impl Capabilities {
    /// Sudo refused, signals reported by number, live streaming, 4 concurrent commands, any
    /// amount of stdin, stderr apart, commands tracked.
    pub fn new(scratch_dir: impl Into<String>) -> Self {
        Capabilities {
            scratch_dir: scratch_dir.into(),
            sudo: SudoSupport::Refused,
            signals: SignalReport::Number,
            streams_live: true,
            concurrency: 4,
            max_stdin: None,
            stderr: StderrCapture::Separate,
            tracking: TrackingSupport::Full,
        }
    }
    /// Sets how sudo is treated.
    pub fn sudo(mut self, sudo: SudoSupport) -> Self {
        self.sudo = sudo;
        self
    }
    /// Sets how signals are reported.
    pub fn signals(mut self, signals: SignalReport) -> Self {
        self.signals = signals;
        self
    }
    /// Sets whether lines stream while the command runs.
    pub fn streams_live(mut self, live: bool) -> Self {
        self.streams_live = live;
        self
    }
    /// Sets how many commands run at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    /// Sets the most standard input the backend carries.
    pub fn max_stdin(mut self, bytes: usize) -> Self {
        self.max_stdin = Some(bytes);
        self
    }
    /// Sets where stderr goes.
    pub fn stderr(mut self, stderr: StderrCapture) -> Self {
        self.stderr = stderr;
        self
    }
    /// Sets whether commands are tracked.
    pub fn tracking(mut self, tracking: TrackingSupport) -> Self {
        self.tracking = tracking;
        self
    }
}

/// Where a backend puts what a command writes to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StderrCapture {
    /// In [`CommandOutput::stderr`], and as [`Stream::Stderr`] lines.
    Separate,
    /// Merged into stdout in the order it was written ([`CommandOutput::stdout`],
    /// [`Stream::Stdout`] lines), with [`CommandOutput::stderr`] always empty: for transports
    /// that carry one stream, such as a container's log.
    MergedIntoStdout,
}

/// How a backend treats [`Privilege::Sudo`](crate::ports::Privilege::Sudo).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SudoSupport {
    /// Refuses it with [`RunnerError::Unsupported`], running nothing.
    Refused,
    /// Runs the command through `sudo -n`: there `id -u` prints `uid`, `SUDO_COMMAND` is set
    /// (as sudo does), and the spec's environment still reaches the command.
    Honoured {
        /// The user id commands run as under sudo (usually `"0"`).
        uid: String,
    },
    /// Every command already runs as `uid`, with or without sudo, so sudo is accepted and
    /// changes nothing (a command run on the host by a privileged pod is root already); the
    /// spec's environment still reaches the command.
    Implicit {
        /// The user id every command runs as (usually `"0"`).
        uid: String,
    },
}

/// How a backend reports a command killed by a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalReport {
    /// [`ExitStatus::Signal`] with the signal's number.
    Number,
    /// [`ExitStatus::Code`] of `128 + signal`, as a shell reports it (for backends whose
    /// transport does not carry signals, such as OpenSSH's multiplexing).
    ShellStatus,
}

/// Runs every check, in order.
pub async fn run_all(runner: &dyn CommandRunner, node: &NodeName, caps: &Capabilities) {
    exit_codes(runner, node).await;
    stderr_is_captured(runner, node, caps).await;
    stdin_is_delivered_and_closed(runner, node, caps).await;
    arguments_arrive_exactly(runner, node, caps).await;
    environment_is_honoured(runner, node).await;
    missing_program_is_not_found(runner, node).await;
    output_is_bounded(runner, node, caps).await;
    lines_stream_in_order(runner, node, caps).await;
    sudo(runner, node, caps).await;
    signals(runner, node, caps).await;
    concurrent_commands(runner, node, caps).await;
    timeout_kills_the_command(runner, node, caps).await;
    super::tracking::run_all(runner, node, caps).await;
}

/// A sink that records every line.
/// Lines a sink received, in arrival order.
type Recorded = Arc<Mutex<Vec<(Stream, String)>>>;

fn recording_sink() -> (LineSink, Recorded) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    let sink = LineSink::new(move |stream, line| {
        l.lock().unwrap().push((stream, line.to_string()));
    });
    (sink, lines)
}

fn of(lines: &[(Stream, String)], stream: Stream) -> Vec<String> {
    lines
        .iter()
        .filter(|(s, _)| *s == stream)
        .map(|(_, l)| l.clone())
        .collect()
}

/// Exit codes 0, 1, 7 and 255 come back unchanged, from programs and from scripts.
pub async fn exit_codes(runner: &dyn CommandRunner, node: &NodeName) {
    for code in [0, 1, 7, 255] {
        let script = format!("exit {code}");
        for spec in [
            CommandSpec::shell(script.clone()),
            CommandSpec::new("sh").args(["-c", &script]),
        ] {
            let o = out(runner, node, "exit_codes", &spec).await;
            assert_eq!(
                o.status,
                ExitStatus::Code(code),
                "conformance/exit_codes: `{spec}`"
            );
            assert_eq!(o.status.success(), code == 0);
            assert!(o.stdout.is_empty() && o.stderr.is_empty() && !o.truncated);
        }
    }
    let o = out(runner, node, "exit_codes", &CommandSpec::new("false")).await;
    assert_eq!(
        o.status,
        ExitStatus::Code(1),
        "conformance/exit_codes: `false`"
    );
}

/// Stdout and stderr are captured apart, or merged in the order they were written.
pub async fn stderr_is_captured(runner: &dyn CommandRunner, node: &NodeName, caps: &Capabilities) {
    let check = "stderr_is_captured";
    let spec =
        CommandSpec::shell("printf out1; printf err1 >&2; printf out2; printf 'err2\\n' >&2");
    let o = out(runner, node, check, &spec).await;
    let (stdout, stderr) = match caps.stderr {
        StderrCapture::Separate => ("out1out2", "err1err2\n"),
        StderrCapture::MergedIntoStdout => ("out1err1out2err2\n", ""),
    };
    assert_eq!(o.stdout_text(), stdout, "conformance/{check}: stdout");
    assert_eq!(o.stderr_text(), stderr, "conformance/{check}: stderr");
    assert_eq!(o.status, ExitStatus::Code(0));
    assert!(!o.truncated);
}

/// Stdin arrives byte for byte and is then closed; without stdin the command reads nothing.
/// As much input as the backend carries arrives whole (3 MiB, more than any pipe buffer,
/// when it has no limit); one byte more is refused, and nothing runs.
pub async fn stdin_is_delivered_and_closed(
    runner: &dyn CommandRunner,
    node: &NodeName,
    caps: &Capabilities,
) {
    let check = "stdin_is_delivered_and_closed";
    let mut input = b"first line\nsecond line\n\nno newline at the end: \xe2\x9c\x93".to_vec();
    input.extend(0..=255u8);
    // `cat` only ends at EOF: a runner that never closes stdin times out here.
    let o = out(
        runner,
        node,
        check,
        &CommandSpec::new("cat").stdin(input.clone()),
    )
    .await;
    assert_eq!(o.status, ExitStatus::Code(0), "conformance/{check}: cat");
    assert!(
        o.stdout == input,
        "conformance/{check}: stdin did not round-trip through cat"
    );

    // As much as the backend carries, while the command also writes.
    let most = caps.max_stdin.unwrap_or(3 << 20);
    assert!(
        most >= 1024,
        "conformance/{check}: max_stdin must be at least 1 KiB"
    );
    let o = out(
        runner,
        node,
        check,
        &CommandSpec::shell("wc -c | tr -d ' '").stdin(vec![b'k'; most]),
    )
    .await;
    assert_eq!(
        o.stdout_text(),
        format!("{most}\n"),
        "conformance/{check}: {most} bytes of stdin"
    );
    if let Some(max) = caps.max_stdin {
        let dir = fresh_dir(runner, node, caps, check).await;
        let ran = format!("{dir}/ran");
        let spec = CommandSpec::shell(format!("touch {}; cat >/dev/null", shell_quote(&ran)))
            .stdin(vec![b'k'; max + 1])
            .timeout(BOUND);
        match runner.run(node, &spec, &LineSink::none()).await {
            Err(RunnerError::Unsupported { .. }) => {}
            other => panic!(
                "conformance/{check}: {} bytes of stdin (over max_stdin) should be refused, gave {other:?}",
                max + 1
            ),
        }
        assert!(
            !exists(runner, node, check, &ran).await,
            "conformance/{check}: a command with too much stdin ran"
        );
    }

    let o = out(runner, node, check, &CommandSpec::new("cat")).await;
    assert_eq!(
        o.status,
        ExitStatus::Code(0),
        "conformance/{check}: cat without stdin"
    );
    assert!(
        o.stdout.is_empty(),
        "conformance/{check}: stdin was not empty"
    );

    let o = out(
        runner,
        node,
        check,
        &CommandSpec::new("cat").stdin(Vec::new()),
    )
    .await;
    assert!(
        o.stdout.is_empty() && o.status.success(),
        "conformance/{check}: empty stdin"
    );
}

/// Every argument reaches the program as one exact word, and nothing in one is run.
pub async fn arguments_arrive_exactly(
    runner: &dyn CommandRunner,
    node: &NodeName,
    caps: &Capabilities,
) {
    let check = "arguments_arrive_exactly";
    let dir = fresh_dir(runner, node, caps, check).await;
    let args: Vec<String> = vec![
        "plain".into(),
        "with space".into(),
        "  leading and trailing  ".into(),
        "it's".into(),
        "\"double\"".into(),
        format!("$(touch {dir}/dollar)"),
        format!("`touch {dir}/backquote`"),
        format!("a; touch {dir}/semicolon"),
        format!("x && touch {dir}/and | cat > {dir}/pipe"),
        "line one\nline two".into(),
        String::new(),
        "*".into(),
        "~".into(),
        "$HOME".into(),
        "back\\slash \\n".into(),
        "-n".into(),
        "tab\there".into(),
        "ünïcødé ☃ 日本語 🚀".into(),
        "'".into(),
        "\\'".into(),
    ];
    let forms = [
        CommandSpec::new("printf").arg("%s\\0").args(args.clone()),
        CommandSpec::shell("printf '%s\\0'").args(args.clone()),
    ];
    for spec in forms {
        let o = out(runner, node, check, &spec).await;
        assert_eq!(
            o.status,
            ExitStatus::Code(0),
            "conformance/{check}: `{spec}`: {}",
            o.stderr_text()
        );
        let text = String::from_utf8(o.stdout).expect("printf echoes valid UTF-8");
        let got: Vec<&str> = text.split_terminator('\0').collect();
        assert_eq!(got, args, "conformance/{check}: `{spec}`");
    }
    for f in ["dollar", "backquote", "semicolon", "and", "pipe"] {
        assert!(
            !exists(runner, node, check, &format!("{dir}/{f}")).await,
            "conformance/{check}: an argument was executed by a shell ({f})"
        );
    }

    // A program whose path has a space and a quote.
    let prog = format!("{dir}/my 'prog'");
    let make = format!(
        "printf '#!/bin/sh\\nprintf \"ran:%%s|\" \"$@\"\\n' > {p} && chmod +x {p}",
        p = shell_quote(&prog)
    );
    ok_text(runner, node, check, &CommandSpec::shell(make)).await;
    let text = ok_text(
        runner,
        node,
        check,
        &CommandSpec::new(prog).args(["a b", ""]),
    )
    .await;
    assert_eq!(
        text, "ran:a b|ran:|",
        "conformance/{check}: program path with a space"
    );
}

/// Environment variables reach the command, unexpanded, for programs and scripts.
pub async fn environment_is_honoured(runner: &dyn CommandRunner, node: &NodeName) {
    let check = "environment_is_honoured";
    let tricky = "spaces and 'quotes' \"too\" $HOME; $(false) `false` ünï\nnext";
    let script = r#"printf '%s|%s' "$KUPGRADE_A" "$KUPGRADE_B""#;
    for spec in [
        CommandSpec::new("sh").args(["-c", script]),
        CommandSpec::shell(script),
    ] {
        let spec = spec.env("KUPGRADE_A", "plain").env("KUPGRADE_B", tricky);
        let text = ok_text(runner, node, check, &spec).await;
        assert_eq!(
            text,
            format!("plain|{tricky}"),
            "conformance/{check}: `{spec}`"
        );
    }
    // A variable set twice takes the last value.
    let spec = CommandSpec::new("sh")
        .args(["-c", "printf %s \"$KUPGRADE_A\""])
        .env("KUPGRADE_A", "first")
        .env("KUPGRADE_A", "second");
    assert_eq!(
        ok_text(runner, node, check, &spec).await,
        "second",
        "conformance/{check}: last value wins"
    );
}

/// A program that does not exist is [`RunnerError::NotFound`] naming it and the node.
pub async fn missing_program_is_not_found(runner: &dyn CommandRunner, node: &NodeName) {
    let name = "kupgrade-conformance-no-such-program";
    for spec in [
        CommandSpec::new(name),
        CommandSpec::new(name).args(["--version", "x y"]),
    ] {
        match runner
            .run(node, &spec.clone().timeout(BOUND), &LineSink::none())
            .await
        {
            Err(RunnerError::NotFound { node: n, program }) => {
                assert_eq!(&n, node, "conformance/missing_program_is_not_found: node");
                assert_eq!(
                    program, name,
                    "conformance/missing_program_is_not_found: program"
                );
            }
            other => panic!("conformance/missing_program_is_not_found: `{spec}` gave {other:?}"),
        }
    }
}

/// Huge output keeps only the last `max_output` bytes of each stream and says so, while
/// every line still reaches the sink.
pub async fn output_is_bounded(runner: &dyn CommandRunner, node: &NodeName, caps: &Capabilities) {
    let check = "output_is_bounded";
    let max = 4096;
    let lines = 40_000; // 34 bytes each: 1.3 MiB
    let body = format!("yes 'kupgrade conformance filler' | head -n {lines}; echo END");

    let (sink, got) = recording_sink();
    let spec = CommandSpec::shell(body.clone()).max_output(max);
    let o = run_ok(runner, node, check, &spec, &sink).await;
    assert_eq!(o.status, ExitStatus::Code(0), "conformance/{check}: status");
    assert!(
        o.truncated,
        "conformance/{check}: stdout over max_output but not truncated"
    );
    assert_eq!(o.stdout.len(), max, "conformance/{check}: kept bytes");
    assert!(
        o.stdout_text()
            .ends_with("kupgrade conformance filler\nEND\n"),
        "conformance/{check}: the tail is kept"
    );
    assert!(o.stderr.is_empty());
    let got = of(&got.lock().unwrap(), Stream::Stdout);
    assert_eq!(
        got.len(),
        lines + 1,
        "conformance/{check}: every line is streamed"
    );
    assert_eq!(got.last().map(String::as_str), Some("END"));

    // The same on stderr (or in stdout, where stderr is merged into it).
    let spec = CommandSpec::shell(format!("{{ {body}; }} >&2")).max_output(max);
    let o = out(runner, node, check, &spec).await;
    let (kept, other) = match caps.stderr {
        StderrCapture::Separate => (&o.stderr, &o.stdout),
        StderrCapture::MergedIntoStdout => (&o.stdout, &o.stderr),
    };
    assert!(
        o.truncated && other.is_empty(),
        "conformance/{check}: stderr"
    );
    assert_eq!(kept.len(), max, "conformance/{check}: kept stderr bytes");
    assert!(
        kept.ends_with(b"filler\nEND\n"),
        "conformance/{check}: stderr tail"
    );

    // One 2 MB line with no newline at all.
    let spec =
        CommandSpec::shell("head -c 2000000 /dev/zero | tr '\\0' x; printf END").max_output(max);
    let o = out(runner, node, check, &spec).await;
    assert!(o.truncated, "conformance/{check}: long line");
    assert_eq!(o.stdout.len(), max);
    assert_eq!(
        o.stdout_text(),
        format!("{}END", "x".repeat(max - 3)),
        "conformance/{check}: long line tail"
    );

    // Exactly max_output bytes is not truncated.
    let spec = CommandSpec::shell(format!("head -c {max} /dev/zero | tr '\\0' y")).max_output(max);
    let o = out(runner, node, check, &spec).await;
    assert!(
        !o.truncated && o.stdout == vec![b'y'; max],
        "conformance/{check}: exactly max_output"
    );
}

/// Lines reach the sink in order per stream, the last one even without a newline, and (when
/// the backend streams live) while the command still runs.
pub async fn lines_stream_in_order(
    runner: &dyn CommandRunner,
    node: &NodeName,
    caps: &Capabilities,
) {
    let check = "lines_stream_in_order";
    let (sink, got) = recording_sink();
    let spec = CommandSpec::shell(
        "i=1; while [ $i -le 300 ]; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); done; printf 'no newline'",
    );
    let o = run_ok(runner, node, check, &spec, &sink).await;
    let got = got.lock().unwrap().clone();
    let (mut want_out, want_err): (Vec<String>, Vec<String>) = match caps.stderr {
        StderrCapture::Separate => (
            (1..=300).map(|i| format!("out {i}")).collect(),
            (1..=300).map(|i| format!("err {i}")).collect(),
        ),
        StderrCapture::MergedIntoStdout => (
            (1..=300)
                .flat_map(|i| [format!("out {i}"), format!("err {i}")])
                .collect(),
            Vec::new(),
        ),
    };
    want_out.push("no newline".into());
    assert_eq!(
        of(&got, Stream::Stdout),
        want_out,
        "conformance/{check}: stdout lines"
    );
    assert_eq!(
        of(&got, Stream::Stderr),
        want_err,
        "conformance/{check}: stderr lines"
    );
    assert_eq!(
        o.stdout_text(),
        want_out.join("\n"),
        "conformance/{check}: captured stdout"
    );

    let (sink, got) = recording_sink();
    if !caps.streams_live {
        let o = run_ok(
            runner,
            node,
            check,
            &CommandSpec::shell("echo first; echo second"),
            &sink,
        )
        .await;
        assert!(o.status.success());
        assert_eq!(
            of(&got.lock().unwrap(), Stream::Stdout),
            ["first", "second"]
        );
        return;
    }
    // The command prints a line, then waits until the suite has seen that line and answered.
    let dir = fresh_dir(runner, node, caps, check).await;
    let go = format!("{dir}/go");
    let waiting = CommandSpec::shell(format!(
        "echo first; i=0; while [ ! -e {go} ]; do sleep 0.1; i=$((i+1)); [ $i -gt 300 ] && exit 9; done; echo second",
        go = shell_quote(&go)
    ));
    let watcher = async {
        for _ in 0..300 {
            if of(&got.lock().unwrap(), Stream::Stdout)
                .iter()
                .any(|l| l == "first")
            {
                ok_text(
                    runner,
                    node,
                    check,
                    &CommandSpec::new("touch").arg(go.as_str()),
                )
                .await;
                return true;
            }
            ok_text(runner, node, check, &CommandSpec::new("sleep").arg("0.1")).await;
        }
        false
    };
    let command = run_ok(runner, node, check, &waiting, &sink);
    let (seen, o) = join2(Box::pin(watcher), Box::pin(command)).await;
    assert!(
        seen,
        "conformance/{check}: no line reached the sink while the command ran (set streams_live = false if the backend cannot stream)"
    );
    assert_eq!(
        o.status,
        ExitStatus::Code(0),
        "conformance/{check}: the waiting command"
    );
    assert_eq!(
        of(&got.lock().unwrap(), Stream::Stdout),
        ["first", "second"]
    );
}

/// Sudo is refused with [`RunnerError::Unsupported`], really runs through `sudo -n`, or
/// changes nothing because every command runs as the user sudo would give.
pub async fn sudo(runner: &dyn CommandRunner, node: &NodeName, caps: &Capabilities) {
    let check = "sudo";
    match &caps.sudo {
        SudoSupport::Refused => {
            for spec in [
                CommandSpec::new("id").sudo(),
                CommandSpec::shell("id").sudo(),
            ] {
                match runner
                    .run(node, &spec.clone().timeout(BOUND), &LineSink::none())
                    .await
                {
                    Err(RunnerError::Unsupported { .. }) => {}
                    other => {
                        panic!("conformance/{check}: `{spec}` should be refused, gave {other:?}")
                    }
                }
            }
        }
        SudoSupport::Honoured { uid } => {
            let text = ok_text(
                runner,
                node,
                check,
                &CommandSpec::new("id").arg("-u").sudo(),
            )
            .await;
            assert_eq!(text.trim(), uid, "conformance/{check}: id -u under sudo");
            let probe = CommandSpec::new("sh")
                .args([
                    "-c",
                    "printf '%s|%s' \"${SUDO_COMMAND:+set}\" \"$KUPGRADE_UNDER_SUDO\"",
                ])
                .env("KUPGRADE_UNDER_SUDO", "it's here")
                .sudo();
            let text = ok_text(runner, node, check, &probe).await;
            assert_eq!(
                text, "set|it's here",
                "conformance/{check}: the command did not run through sudo with its environment"
            );
            let text = ok_text(
                runner,
                node,
                check,
                &CommandSpec::shell("echo \"$((6*7))\"").sudo(),
            )
            .await;
            assert_eq!(text, "42\n", "conformance/{check}: a script under sudo");
        }
        SudoSupport::Implicit { uid } => {
            for spec in [
                CommandSpec::new("id").arg("-u"),
                CommandSpec::new("id").arg("-u").sudo(),
                CommandSpec::shell("id -u").sudo(),
            ] {
                let text = ok_text(runner, node, check, &spec).await;
                assert_eq!(text.trim(), uid, "conformance/{check}: `{spec}`");
            }
            let probe = CommandSpec::new("sh")
                .args(["-c", "printf '%s' \"$KUPGRADE_UNDER_SUDO\""])
                .env("KUPGRADE_UNDER_SUDO", "it's here")
                .sudo();
            let text = ok_text(runner, node, check, &probe).await;
            assert_eq!(
                text, "it's here",
                "conformance/{check}: the environment did not reach a sudo command"
            );
        }
    }
}

/// A command killed by a signal reports it as the backend says.
pub async fn signals(runner: &dyn CommandRunner, node: &NodeName, caps: &Capabilities) {
    for (name, number) in [("TERM", 15), ("KILL", 9)] {
        let spec = CommandSpec::new("sh").args(["-c", &format!("kill -{name} $$")]);
        let o = out(runner, node, "signals", &spec).await;
        let want = match caps.signals {
            SignalReport::Number => ExitStatus::Signal(number),
            SignalReport::ShellStatus => ExitStatus::Code(128 + number),
        };
        assert_eq!(o.status, want, "conformance/signals: `{spec}`");
        assert!(!o.status.success());
    }
}

/// Several commands run at the same time on one node: each waits until all have started.
pub async fn concurrent_commands(runner: &dyn CommandRunner, node: &NodeName, caps: &Capabilities) {
    let check = "concurrent_commands";
    let n = caps.concurrency.max(2);
    let dir = fresh_dir(runner, node, caps, check).await;
    let specs: Vec<CommandSpec> = (0..n)
        .map(|i| {
            CommandSpec::shell(format!(
                "touch {d}/started.{i}; t=0; while [ \"$(ls {d} | wc -l)\" -lt {n} ]; do sleep 0.05; t=$((t+1)); [ $t -gt 400 ] && exit 9; done; echo {i}",
                d = shell_quote(&dir)
            ))
        })
        .collect();
    let none = LineSink::none();
    let runs: Vec<BoxFuture<'_, CommandOutput>> = specs
        .iter()
        .map(|s| Box::pin(run_ok(runner, node, check, s, &none)) as BoxFuture<'_, _>)
        .collect();
    let outs = join_all(runs).await;
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(
            o.status,
            ExitStatus::Code(0),
            "conformance/{check}: command {i} of {n} never saw the others start (are commands on one node serialized?)"
        );
        assert_eq!(o.stdout_text(), format!("{i}\n"));
    }
}

/// A timeout kills the command and all it started, and says so.
pub async fn timeout_kills_the_command(
    runner: &dyn CommandRunner,
    node: &NodeName,
    caps: &Capabilities,
) {
    let check = "timeout_kills_the_command";
    let dir = fresh_dir(runner, node, caps, check).await;
    let after = Duration::from_secs(1);
    let spec = outlived_by_a_child(&dir).timeout(after);
    match runner.run(node, &spec, &LineSink::none()).await {
        Err(RunnerError::TimedOut {
            node: n,
            after: a,
            command,
        }) => {
            assert_eq!(&n, node, "conformance/{check}: node");
            assert_eq!(a, after, "conformance/{check}: after");
            assert_eq!(
                command,
                spec.to_shell_line(),
                "conformance/{check}: command"
            );
        }
        other => panic!("conformance/{check}: expected TimedOut, got {other:?}"),
    }
    assert!(
        exists(runner, node, check, &format!("{dir}/started")).await,
        "conformance/{check}: the command never started"
    );
    nothing_survived(runner, node, check, &dir, "timed-out").await;
}
