//! dnf on a simulated RHEL-like node: `dnf install -y pkg-1.29.3-*` installs a pinned version
//! the repository carries, only with `--disableexcludes=kubernetes` (the repository file
//! excludes the packages). dnf reads a changed repository file on its next run.
use std::time::Duration;

use kupgrade_core::NodeName;

use super::super::Inner;
use super::super::model::{RepoKind, Timings};
use super::super::node::{Command, Exec, install, unknown};
use super::{carries, package, pin_version, released};

/// `dnf install` takes its own time.
pub(super) fn duration(program: &str, args: &[&str], t: &Timings) -> Option<Duration> {
    match (program, args) {
        ("dnf", ["install", ..]) => Some(t.install),
        _ => None,
    }
}

/// `dnf install -y PKG-PIN... [--disableexcludes=kubernetes]`.
pub(super) fn exec(inner: &mut Inner, node: &NodeName, cmd: &Command<'_>) -> Exec {
    let ["install", "-y", rest @ ..] = cmd.args.as_slice() else {
        return unknown(cmd.program);
    };
    if !cmd.root {
        return Exec::fail(
            1,
            "Error: This command has to be run with superuser privileges (under the root user on most systems).",
        );
    }
    let lifted = rest.contains(&"--disableexcludes=kubernetes");
    let mut wanted = Vec::new();
    for arg in rest.iter().filter(|a| !a.starts_with("--")) {
        let parsed = ["kubelet", "kubeadm", "kubectl"].iter().find_map(|name| {
            let version = arg.strip_prefix(name)?.strip_prefix('-')?;
            Some((package(name)?, pin_version(version)?))
        });
        let Some((pkg, v)) = parsed else {
            return Exec::fail(1, format!("Error: Unable to find a match: {arg}"));
        };
        if !lifted || !carries(inner, node, RepoKind::Yum, v.minor()) || !released(&v) {
            return Exec::fail(1, format!("Error: Unable to find a match: {arg}"));
        }
        wanted.push((pkg, v));
    }
    install(inner, node, wanted)
}
