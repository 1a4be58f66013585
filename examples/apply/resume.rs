//! The command that resumes a session, as the summary prints it: built in one place from the
//! options given on the command line, every value quoted for a POSIX shell.
//!
//! A resume reads its plan from the journal's plan file, so it needs only the options that
//! decide what it reaches and how: [`RESUMED`]. Every other option is listed in
//! [`NOT_RESUMED`], and a test fails on an option in neither list, so a new option is
//! classified when it is added. Values are repeated as they were given (their raw text, so a
//! path that is not UTF-8 survives) and quoted with `kupgrade_core::escape::shell_word`: a
//! pasted `$(...)` or backtick stays text, and a control character is written as a `printf`
//! escape rather than reaching the terminal.
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory};

use super::Args;

/// The options a resume repeats (clap ids): what the run reaches and how it runs.
pub(crate) const RESUMED: &[&str] = &[
    "journal",
    "cluster",
    "kubeconfig",
    "context",
    "executor",
    "sim_state",
    "sim_speed",
    "ssh_user",
    "ssh_key",
    "known_hosts",
    "ssh_node_names",
    "kubectl_node",
    "pod_namespace",
    "pod_image",
    "pod_image_unpinned",
    "sandbox",
    "provider_create",
    "provider_find",
    "provider_remove",
    "provider_create_timeout",
    "provider_find_timeout",
    "provider_remove_timeout",
    "provider_join_timeout",
    "max_parallel",
    "attempts",
    "on_survivor",
    "survivor_timeout",
    // The readiness catalogue is evaluated again on resume, with the same evidence (a file,
    // or gathered anew from the cluster unless --no-gather).
    "evidence",
    "no_gather",
    "gather_nodes",
    "lease_duration",
    // The resumed session goes on with the same page.
    "report",
];

/// The options a resume leaves out besides the planning options (`planning::Planning`, which
/// a resume refuses: the plan and the policy come from beside the journal): one-off decisions
/// about tasks, and what only a first run or a dry run does. (Read by the test that every
/// option is classified.)
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const NOT_RESUMED: &[&str] = &[
    "plan",
    "rollback_plan",
    "report_only",
    "dry_run",
    "resume",
    "mark_done",
    "retry",
    "json_events",
    // Accepted findings are journaled: a resume keeps them without repeating the flag.
    "accept",
    // Taking a lease another run held is decided each time, never repeated by a pasted hint.
    "force_lease",
    // The release data (`common/releases.rs`) decides the plan, which a resume takes from
    // beside the journal: apply refuses these options beside --resume.
    "calendar",
    "kubeadm_versions",
    "live_releases",
    "release_base_url",
    "release_timeout",
];

/// The arguments after `--` of the resume command: each option of [`RESUMED`] given on the
/// command line, with its values as given, then `--resume`.
pub(crate) fn words(matches: &ArgMatches) -> Vec<OsString> {
    let command = Args::command();
    let mut out = Vec::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if !RESUMED.contains(&id) || matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let Some(long) = arg.get_long() else { continue };
        let flag = OsString::from(format!("--{long}"));
        match arg.get_action() {
            ArgAction::SetTrue => {
                if matches.get_flag(id) {
                    out.push(flag);
                }
            }
            _ => {
                for value in matches.get_raw(id).into_iter().flatten() {
                    out.push(flag.clone());
                    out.push(value.to_os_string());
                }
            }
        }
    }
    out.push("--resume".into());
    out
}

/// The resume command line for `words`, every word quoted for a POSIX shell.
pub(crate) fn line(words: &[OsString]) -> String {
    let mut line = String::from("cargo run --example apply --");
    for w in words {
        line.push(' ');
        line.push_str(&shell_os_word(w));
    }
    line
}

/// `word` quoted for a POSIX shell and a terminal; a word that is not UTF-8 is written whole
/// as `printf` octal escapes of its bytes.
fn shell_os_word(word: &OsStr) -> String {
    match word.to_str() {
        Some(text) => kupgrade_core::escape::shell_word(text).into_owned(),
        None => {
            let mut out = String::from("\"$(printf '");
            for b in word.as_bytes() {
                let _ = write!(out, "\\{b:03o}");
            }
            out.push_str("')\"");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;
    use std::path::Path;
    use std::process::Command;

    use clap::FromArgMatches;

    use super::*;

    fn parse(argv: &[OsString]) -> (Args, ArgMatches) {
        let matches = Args::command()
            .try_get_matches_from(std::iter::once(OsString::from("apply")).chain(argv.to_vec()))
            .unwrap_or_else(|e| panic!("{e}"));
        (Args::from_arg_matches(&matches).unwrap(), matches)
    }

    /// The words a POSIX shell makes of the resume line's arguments.
    fn through_sh(line: &str) -> Vec<OsString> {
        let args = line
            .strip_prefix("cargo run --example apply --")
            .expect("the resume line");
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0'{args}"))
            .output()
            .expect("run sh");
        assert!(out.status.success(), "{out:?}");
        let mut words: Vec<OsString> = out
            .stdout
            .split(|&b| b == 0)
            .map(|w| OsString::from_vec(w.to_vec()))
            .collect();
        assert_eq!(words.pop(), Some(OsString::new()));
        words
    }

    fn sh_syntax_ok(line: &str) -> bool {
        Command::new("sh")
            .args(["-n", "-c", line])
            .status()
            .expect("run sh -n")
            .success()
    }

    /// What a resume must repeat, field by field.
    fn reached(a: &Args) -> Vec<String> {
        vec![
            format!("{:?}", a.journal),
            format!("{:?}", a.cluster),
            format!("{:?}", a.kubeconfig),
            format!("{:?}", a.context),
            format!("{:?}", a.executor),
            format!("{:?}", a.sim_state),
            format!("{:?}", a.sim_speed),
            format!("{:?}", a.ssh_user),
            format!("{:?}", a.ssh_key),
            format!("{:?}", a.known_hosts),
            format!("{:?}", a.ssh_node_names),
            format!("{:?}", a.kubectl_node),
            format!("{:?}", a.pod_namespace),
            format!("{:?}", a.pod_image),
            format!("{:?}", a.pod_image_unpinned),
            format!("{:?}", a.sandbox),
            format!("{:?}", a.max_parallel),
            format!("{:?}", a.attempts),
        ]
    }

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_hint_is_quoted_complete_and_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let m = marker.display();
        let hostile_journal =
            format!("/tmp/j $(touch {m}) `touch {m}` 'q' \"d\"\n\u{1b}[2J\u{202e}.jsonl");
        let invocations: Vec<Vec<OsString>> = vec![
            os(&[
                "--journal",
                &hostile_journal,
                "--executor",
                "ssh",
                "--cluster",
                "hosts;$(id).yaml",
                "--ssh-user",
                "admin",
                "--ssh-key",
                "/keys/id key",
                "--known-hosts",
                "/keys/known_hosts'x",
                "--kubectl-node",
                "cp-1",
                "--max-parallel",
                "3",
                "--attempts",
                "2",
                "--target",
                "1.30",
                "--date",
                "2024-06-01",
                "--batch",
                "2",
            ]),
            os(&[
                "--journal=/tmp/up.journal",
                "--kubeconfig",
                "/k/admin conf",
                "--context",
                "prod|eu",
                "--executor",
                "pod",
                "--pod-namespace",
                "ns & co",
                "--pod-image",
                "registry.example/busybox:1.36",
                "--pod-image-unpinned",
                "--ssh-node-names",
            ]),
            os(&[
                "--journal",
                "j",
                "--executor",
                "local",
                "--sandbox",
                "/sb/$HOME",
            ]),
            os(&[
                "--journal",
                "j",
                "--sim-state",
                "/tmp/s.json",
                "--sim-speed",
                "0",
            ]),
            {
                // A path that is not UTF-8.
                let mut v = os(&["--journal"]);
                v.push(OsString::from_vec(b"/tmp/\xff\xfe j".to_vec()));
                v
            },
        ];
        for argv in invocations {
            let (original, matches) = parse(&argv);
            let words = words(&matches);
            let line = line(&words);
            assert!(
                !line
                    .chars()
                    .any(|c| kupgrade_core::escape::is_hidden(c) && c != '\n'),
                "{line:?}"
            );
            assert!(sh_syntax_ok(&line), "{line}");
            let pasted = through_sh(&line);
            assert_eq!(pasted, words, "{line}");
            let (resumed, _) = parse(&pasted);
            assert!(resumed.resume, "{line}");
            assert_eq!(reached(&resumed), reached(&original), "{line}");
            // Planning options stay out: the plan comes from the journal's plan file.
            for flag in ["--target", "--date", "--batch"] {
                assert!(!pasted.iter().any(|w| w == flag), "{line}");
            }
        }
        assert!(!Path::new(&marker).exists(), "a pasted value ran");
        let (_, matches) = parse(&os(&["--journal", "/tmp/a b"]));
        assert_eq!(
            line(&words(&matches)),
            "cargo run --example apply -- --journal '/tmp/a b' --resume"
        );
    }

    /// Every option is repeated by a resume, is a planning option, or is deliberately left
    /// out: a new option must be classified (does it change what the resume reaches, or how?).
    #[test]
    fn every_option_is_classified() {
        use clap::Args as _;
        let planning: Vec<String> =
            super::super::planning::Planning::augment_args(clap::Command::new("planning"))
                .get_arguments()
                .map(|a| a.get_id().to_string())
                .collect();
        for arg in Args::command().get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let classes = [
                RESUMED.contains(&id),
                NOT_RESUMED.contains(&id),
                planning.iter().any(|p| p == id),
            ];
            assert_eq!(
                classes.iter().filter(|&&c| c).count(),
                1,
                "option --{} ({id}) must be in exactly one of RESUMED, NOT_RESUMED \
                 (examples/apply/resume.rs) and the planning options",
                arg.get_long().unwrap_or(id)
            );
        }
        for id in RESUMED.iter().chain(NOT_RESUMED) {
            assert!(
                Args::command().get_arguments().any(|a| a.get_id() == *id),
                "{id} is not an option"
            );
        }
    }
}
