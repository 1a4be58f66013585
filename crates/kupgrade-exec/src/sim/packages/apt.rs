//! apt on a simulated Debian or Ubuntu node: `apt-get update` reads a changed source list;
//! `apt-get install -y pkg=1.29.3-*` installs a pinned version the repository carries, and
//! refuses to change a package held with `apt-mark hold`. With `-o Dir::...` options naming a
//! source list and an index under the pre-staging directory (and nothing else),
//! `apt-get update` reads that list and `apt-get install -y --download-only
//! --allow-change-held-packages pkg=PIN...` downloads the pins of the list's minor into the
//! cache (recorded in [`Host::downloaded`](super::super::model::Host)), leaving the node's
//! own repository, index, holds and packages as they are.
use std::time::Duration;

use kupgrade_core::plan::packages::PRESTAGE_DIR;
use kupgrade_core::{Minor, NodeName};

use super::super::Inner;
use super::super::model::{RepoKind, Timings};
use super::super::node::{Command, Exec, install, unknown};
use super::{Downloaded, carries, install_time, package, pin_version, refresh, released};

/// `apt-get update` and `apt-get install` take their own time: a download only
/// [`Timings::download`], an install of pins all downloaded ahead that less.
pub(super) fn duration(
    program: &str,
    args: &[&str],
    t: &Timings,
    downloaded: &Downloaded,
) -> Option<Duration> {
    match (program, options(args).1) {
        ("apt-get", ["update", ..]) => Some(t.apt_update),
        ("apt-get", ["install", rest @ ..]) if rest.contains(&"--download-only") => {
            Some(t.download)
        }
        ("apt-get", ["install", rest @ ..]) => {
            let pins = rest.iter().filter(|a| !a.starts_with('-')).map(|pin| {
                let (name, v) = pin.split_once('=')?;
                Some((package(name)?, pin_version(v)?))
            });
            Some(install_time(t, downloaded, pins))
        }
        _ => None,
    }
}

/// The `-o NAME=VALUE` options before the verb, and the rest.
fn options<'a, 'b>(args: &'b [&'a str]) -> (Vec<&'a str>, &'b [&'a str]) {
    let mut opts = Vec::new();
    let mut rest = args;
    while let ["-o", opt, tail @ ..] = rest {
        opts.push(*opt);
        rest = tail;
    }
    (opts, rest)
}

/// `dpkg --triggers-only --pending` (nothing is ever left half done here), `apt-get update`,
/// `apt-mark hold|unhold PKG...`, `apt-get install -y PKG=PIN...`, and the pre-staging forms
/// of `apt-get update` and `apt-get install --download-only`.
pub(super) fn exec(inner: &mut Inner, node: &NodeName, cmd: &Command<'_>) -> Exec {
    if cmd.program == "apt-get" {
        let (opts, rest) = options(&cmd.args);
        if !opts.is_empty() {
            return prestage(inner, node, cmd, &opts, rest);
        }
    }
    match (cmd.program, cmd.args.as_slice()) {
        ("dpkg", ["--triggers-only", "--pending"]) => {
            if !cmd.root {
                return Exec::fail(
                    2,
                    "dpkg: error: requested operation requires superuser privilege",
                );
            }
            Exec::ok("")
        }
        ("apt-get", ["update"]) => {
            if !cmd.root {
                return Exec::fail(
                    100,
                    "E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)",
                );
            }
            refresh(inner, node);
            Exec::ok(
                "Hit:1 https://pkgs.k8s.io/core:/stable:/ InRelease\nReading package lists... Done\n",
            )
        }
        ("apt-mark", [verb @ ("hold" | "unhold"), pkgs @ ..]) => {
            if !cmd.root {
                return Exec::fail(
                    1,
                    "E: Could not create temporary file for /var/lib/dpkg/status - (13: Permission denied)",
                );
            }
            mark(inner, node, *verb == "hold", pkgs)
        }
        ("apt-get", ["install", "-y", pins @ ..]) => {
            if !cmd.root {
                return Exec::fail(
                    100,
                    "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)",
                );
            }
            install_pinned(inner, node, pins)
        }
        _ => unknown(cmd.program),
    }
}

/// `apt-mark hold|unhold PKG...`.
fn mark(inner: &mut Inner, node: &NodeName, hold: bool, pkgs: &[&str]) -> Exec {
    let mut out = String::new();
    for p in pkgs {
        let Some(pkg) = package(p) else {
            return Exec::fail(100, format!("E: Unable to locate package {p}"));
        };
        let host = inner.host(node);
        if hold {
            host.held.insert(pkg);
            out.push_str(&format!("{p} set on hold.\n"));
        } else {
            host.held.remove(&pkg);
            out.push_str(&format!("Canceled hold on {p}.\n"));
        }
    }
    Exec::changed(out)
}

/// `apt-get install -y PKG=PIN...`, as root.
fn install_pinned(inner: &mut Inner, node: &NodeName, pins: &[&str]) -> Exec {
    let mut wanted = Vec::new();
    for pin in pins {
        let Some((name, version)) = pin.split_once('=') else {
            return Exec::fail(100, format!("sim: unpinned install of {pin}"));
        };
        let (Some(pkg), Some(v)) = (package(name), pin_version(version)) else {
            return Exec::fail(
                100,
                format!("E: Version '{version}' for '{name}' was not found"),
            );
        };
        wanted.push((pkg, v, name, version));
    }
    for (pkg, v, name, version) in &wanted {
        if !carries(inner, node, RepoKind::Apt, v.minor()) || !released(v) {
            return Exec::fail(
                100,
                format!("E: Version '{version}' for '{name}' was not found"),
            );
        }
        let host = inner.host(node);
        if host.held.contains(pkg) && host.installed.get(pkg) != Some(v) {
            return Exec::fail(
                100,
                "E: Held packages were changed and -y was used without --allow-change-held-packages.",
            );
        }
    }
    install(
        inner,
        node,
        wanted.into_iter().map(|(p, v, ..)| (p, v)).collect(),
    )
}

/// `apt-get -o ... update` and `apt-get -o ... install -y --download-only
/// --allow-change-held-packages PKG=PIN...` with pre-staging's own source list: the options
/// must name a source list `.../vMINOR/sources.list` under the pre-staging directory written
/// before (`tee`), a parts directory and an index beside it, and no package caches; the pins
/// must be released versions of that minor. The download changes no hold, no installed
/// package and not the node's repository.
fn prestage(
    inner: &mut Inner,
    node: &NodeName,
    cmd: &Command<'_>,
    opts: &[&str],
    rest: &[&str],
) -> Exec {
    let dir = format!("{PRESTAGE_DIR}/v");
    let mut list = None;
    for opt in opts {
        let Some((name, value)) = opt.split_once('=') else {
            return Exec::fail(
                100,
                format!("E: Option {opt}: Configuration item specification must have an =<val>."),
            );
        };
        let ours = value.starts_with(&dir);
        match name {
            "Dir::Etc::SourceList" if ours => list = Some(value),
            "Dir::Etc::SourceParts" | "Dir::State::Lists" if ours => {}
            "Dir::Cache::pkgcache" | "Dir::Cache::srcpkgcache" if value.is_empty() => {}
            _ => return Exec::fail(100, format!("sim: apt option {opt} is not pre-staging's")),
        }
    }
    let Some(list) = list else {
        return Exec::fail(100, "sim: pre-staging apt-get without its own source list");
    };
    let minor = list
        .strip_prefix(&dir)
        .and_then(|r| r.strip_suffix("/sources.list"))
        .and_then(|m| Minor::parse(m).ok());
    let Some(minor) = minor.filter(|_| inner.host(node).files.contains(list)) else {
        return Exec::fail(
            100,
            format!("E: The list of sources could not be read. ({list})"),
        );
    };
    if !cmd.root {
        return Exec::fail(
            100,
            "E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)",
        );
    }
    match rest {
        ["update"] => Exec::ok(
            "Hit:1 https://pkgs.k8s.io/core:/stable:/ InRelease\nReading package lists... Done\n",
        ),
        [
            "install",
            "-y",
            "--download-only",
            "--allow-change-held-packages",
            pins @ ..,
        ] => {
            let mut got = Vec::new();
            for pin in pins {
                let parsed = pin
                    .split_once('=')
                    .and_then(|(name, v)| Some((package(name)?, pin_version(v)?)));
                match parsed {
                    Some((p, v)) if v.minor() == minor && released(&v) => got.push((p, v)),
                    _ => {
                        return Exec::fail(100, format!("E: Version '{pin}' was not found"));
                    }
                }
            }
            let host = inner.host(node);
            let mut out = String::new();
            for (p, v) in got {
                out.push_str(&format!("Get: {} {v}\n", p.name()));
                host.downloaded.insert((p, v));
            }
            out.push_str("Download complete and in download only mode\n");
            Exec::changed(out)
        }
        _ => unknown(cmd.program),
    }
}
