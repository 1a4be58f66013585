//! The small remote wrapper around every command, and the marker it prints.
//!
//! OpenSSH's server starts each command (without a terminal) as a new session whose leader is
//! the user's login shell, so the shell's `$$` is the process group of everything the command
//! starts. The wrapper line
//!
//! ```text
//! : TOKEN && [cd DIR &&] [PATH=PREFIX[:"$PATH"] && export PATH &&] printf '\036kupgrade-pgid %s\n' $$ && sh -c LINE; exit $?
//! ```
//!
//! names the session with a token no other command carries (the `:` builtin does nothing; the
//! token stays in the login shell's command line, `/proc/PGID/cmdline`, so a later process
//! tells this group from one that reuses its id), reports the group on the first line of
//! stdout (the runner strips it), then runs the
//! command line under `sh` (as [`Program::Shell`](kupgrade_core::ports::Program::Shell)
//! promises) as a child, not with `exec`, so the login shell stays the group leader and reports
//! a signal death as `128 + signal`. On timeout the runner kills the group with
//! `kill -KILL -PGID` over the same connection (`kill -KILL -- -PGID` is refused by dash's
//! `kill`). A missing marker means the set-up failed
//! (for example the working directory does not exist) and nothing ran.
//!
//! Why not `timeout --signal=KILL N cmd` on the node instead: the client would no longer own
//! the deadline (a cancelled run, Ctrl-C, could not stop the command), the command's own exit
//! status 137 or 124 would be indistinguishable from a timeout, and it needs GNU coreutils'
//! `timeout` on every node. Killing the group from the client covers the timeout and the
//! cancellation with one mechanism; it needs only a POSIX shell's `kill`.
use kupgrade_core::ports::{CommandSpec, RunnerError, shell_quote};

use crate::NodeEnv;

/// What the wrapper prints before the process group id.
pub(crate) const MARKER: &[u8] = b"\x1ekupgrade-pgid ";

/// Output the login shell's start-up files may print before the marker, at most.
pub(crate) const MAX_PRELUDE: usize = 64 * 1024;

/// The line sent to the node for `spec`, naming the session with `token` (letters, digits and
/// `-` only: [`crate::groups::new_token`]).
pub(crate) fn remote_line(
    env: &NodeEnv,
    spec: &CommandSpec,
    token: &str,
) -> Result<String, RunnerError> {
    let mut spec = spec.clone();
    if !env.env.is_empty() {
        let mut vars = env.env.clone();
        vars.append(&mut spec.env);
        spec.env = vars;
    }
    let mut steps = vec![format!(": {}", shell_quote(token))];
    if let Some(dir) = &env.dir {
        let dir = dir.to_str().ok_or_else(|| RunnerError::Unsupported {
            what: format!("use the non-UTF-8 directory {}", dir.display()),
        })?;
        steps.push(format!("cd {}", shell_quote(dir)));
    }
    if !env.path_prefix.is_empty() || env.path_only {
        let mut dirs = Vec::new();
        for d in &env.path_prefix {
            match d.to_str() {
                Some(s) if !s.contains(':') => dirs.push(s),
                _ => {
                    return Err(RunnerError::Unsupported {
                        what: format!("put {} in PATH", d.display()),
                    });
                }
            }
        }
        let inherited = if env.path_only { "" } else { ":\"$PATH\"" };
        steps.push(format!("PATH={}{inherited}", shell_quote(&dirs.join(":"))));
        steps.push("export PATH".to_string());
    }
    steps.push(r"printf '\036kupgrade-pgid %s\n' $$".to_string());
    steps.push(format!("sh -c {}", shell_quote(&spec.to_shell_line())));
    Ok(format!("{}; exit $?", steps.join(" && ")))
}

/// What the start of stdout says so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Marker {
    /// Not complete yet.
    Pending,
    /// The process group, and where the command's own output starts.
    Found { pgid: u32, rest: usize },
    /// Not a marker: the login shell printed too much, or garbage.
    Invalid,
}

/// Looks for the marker line in the first bytes of stdout.
pub(crate) fn find_marker(prelude: &[u8]) -> Marker {
    let Some(start) = prelude.windows(MARKER.len()).position(|w| w == MARKER) else {
        return if prelude.len() > MAX_PRELUDE {
            Marker::Invalid
        } else {
            Marker::Pending
        };
    };
    let digits = &prelude[start + MARKER.len()..];
    let Some(end) = digits.iter().position(|&b| b == b'\n') else {
        return if digits.len() > 20 {
            Marker::Invalid
        } else {
            Marker::Pending
        };
    };
    match std::str::from_utf8(&digits[..end])
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
    {
        Some(pgid) if pgid > 1 => Marker::Found {
            pgid,
            rest: start + MARKER.len() + end + 1,
        },
        _ => Marker::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line() {
        let spec = CommandSpec::new("echo").arg("a b");
        assert_eq!(
            remote_line(&NodeEnv::new(), &spec, "kupgrade-1-2-3").unwrap(),
            r": kupgrade-1-2-3 && printf '\036kupgrade-pgid %s\n' $$ && sh -c 'echo '\''a b'\'''; exit $?"
        );
    }

    #[test]
    fn node_env_goes_first_and_spec_env_wins() {
        let env = NodeEnv::new()
            .dir("/srv/node 1")
            .path_prefix("/srv/bin")
            .env("A", "node");
        let spec = CommandSpec::new("true").env("A", "spec").sudo();
        assert_eq!(
            remote_line(&env, &spec, "t").unwrap(),
            r#": t && cd '/srv/node 1' && PATH=/srv/bin:"$PATH" && export PATH && printf '\036kupgrade-pgid %s\n' $$ && sh -c 'sudo -n env A=node A=spec true'; exit $?"#
        );
    }

    #[test]
    fn a_strict_sandbox_replaces_the_path() {
        let env = NodeEnv::new().path_prefix("/srv/n1/bin").path_only();
        assert_eq!(
            remote_line(&env, &CommandSpec::new("true"), "t").unwrap(),
            r": t && PATH=/srv/n1/bin && export PATH && printf '\036kupgrade-pgid %s\n' $$ && sh -c true; exit $?"
        );
        let nothing = NodeEnv::new().path_only();
        assert!(
            remote_line(&nothing, &CommandSpec::new("true"), "t")
                .unwrap()
                .starts_with(": t && PATH='' && export PATH && ")
        );
    }

    #[test]
    fn path_entries_with_colons_are_refused() {
        let env = NodeEnv::new().path_prefix("/a:b");
        assert!(matches!(
            remote_line(&env, &CommandSpec::new("true"), "t"),
            Err(RunnerError::Unsupported { .. })
        ));
    }

    #[test]
    fn marker_parsing() {
        assert_eq!(find_marker(b""), Marker::Pending);
        assert_eq!(find_marker(b"\x1ekupgrade-pgid 12"), Marker::Pending);
        assert_eq!(
            find_marker(b"\x1ekupgrade-pgid 1234\nhello"),
            Marker::Found {
                pgid: 1234,
                rest: 20
            }
        );
        assert_eq!(
            find_marker(b"motd noise\n\x1ekupgrade-pgid 77\n"),
            Marker::Found { pgid: 77, rest: 29 }
        );
        assert_eq!(find_marker(b"\x1ekupgrade-pgid x\n"), Marker::Invalid);
        assert_eq!(find_marker(b"\x1ekupgrade-pgid 1\n"), Marker::Invalid);
        assert_eq!(find_marker(&vec![b'x'; MAX_PRELUDE + 1]), Marker::Invalid);
    }
}
