//! dnf on a simulated RHEL-like node: `dnf install -y pkg-1.29.3-*` installs a pinned version
//! the repository carries, only with `--disableexcludes=kubernetes` (the repository file
//! excludes the packages). dnf reads a changed repository file on its next run. With
//! `--downloadonly` and the `kubernetes` repository's `baseurl` set for the command
//! (`--setopt=kubernetes.baseurl=...`), it downloads the pins of that URL's minor into the
//! cache (pre-staging, recorded in [`Host::downloaded`](super::super::model::Host)), whatever
//! the repository file says, and installs nothing.
use std::time::Duration;

use kupgrade_core::NodeName;

use super::super::Inner;
use super::super::model::{RepoKind, Timings};
use super::super::node::{Command, Exec, install, unknown};
use super::{Downloaded, carries, install_time, package, pin_version, released, repo_minor};

/// `dnf install` takes its own time: a download only [`Timings::download`], an install of
/// pins all downloaded ahead that less.
pub(super) fn duration(
    program: &str,
    args: &[&str],
    t: &Timings,
    downloaded: &Downloaded,
) -> Option<Duration> {
    match (program, args) {
        ("dnf", ["install", rest @ ..]) if rest.contains(&"--downloadonly") => Some(t.download),
        ("dnf", ["install", rest @ ..]) => {
            let pins = rest
                .iter()
                .filter(|a| !a.starts_with('-'))
                .map(|a| pinned(a));
            Some(install_time(t, downloaded, pins))
        }
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
    let base = rest
        .iter()
        .find_map(|a| a.strip_prefix("--setopt=kubernetes.baseurl="));
    if rest.contains(&"--downloadonly") {
        return download(inner, node, rest, lifted, base);
    }
    if base.is_some() {
        return Exec::fail(
            1,
            "sim: a baseurl set for an install (pre-staging only downloads)",
        );
    }
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

/// `pkg-1.29.3-*` as a package and version.
fn pinned(arg: &str) -> Option<(kupgrade_core::plan::Package, kupgrade_core::KubeVersion)> {
    ["kubelet", "kubeadm", "kubectl"].iter().find_map(|name| {
        let version = arg.strip_prefix(name)?.strip_prefix('-')?;
        Some((package(name)?, pin_version(version)?))
    })
}

/// `dnf install -y --downloadonly --disableexcludes=kubernetes
/// --setopt=kubernetes.baseurl=URL ... PKG-PIN...`: the pins of `URL`'s minor go into the
/// cache; nothing is installed and the repository file is not read.
fn download(
    inner: &mut Inner,
    node: &NodeName,
    rest: &[&str],
    lifted: bool,
    base: Option<&str>,
) -> Exec {
    let Some(minor) = base.and_then(repo_minor) else {
        return Exec::fail(1, "sim: a pre-staging download without the minor's baseurl");
    };
    let mut got = Vec::new();
    for arg in rest.iter().filter(|a| !a.starts_with("--")) {
        match pinned(arg) {
            Some((p, v)) if lifted && v.minor() == minor && released(&v) => got.push((p, v)),
            _ => return Exec::fail(1, format!("Error: Unable to find a match: {arg}")),
        }
    }
    let host = inner.host(node);
    for g in got {
        host.downloaded.insert(g);
    }
    Exec::changed(
        "The downloaded packages were saved in cache until the next successful transaction.\n",
    )
}
