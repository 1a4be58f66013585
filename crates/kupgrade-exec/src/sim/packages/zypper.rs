//! zypper on a simulated openSUSE or SLES node. Every command must run with the global
//! `--non-interactive` (otherwise zypper waits at a prompt); then:
//!
//! - `zypper refresh [kubernetes]` reads a changed repository file;
//! - `zypper addlock|removelock PKG...` lock and unlock packages;
//! - `zypper install [--oldpackage] PKG=VERSION...` installs a version the repository
//!   carries (else exit 104, capability not found), refuses to change a locked package (exit
//!   4, a solver problem), and, without `--oldpackage`, installs nothing in place of a newer
//!   installed version (exit 0, as zypper does: it only says so).
//!
//! Signing keys are not modelled (`--gpg-auto-import-keys` is accepted).
use std::time::Duration;

use kupgrade_core::NodeName;
use kupgrade_core::plan::packages::ZYPPER_REPO_ALIAS;

use super::super::Inner;
use super::super::model::{RepoKind, Timings};
use super::super::node::{Command, Exec, install};
use super::{carries, package, package_version, refresh, released};

/// A zypper command line: global options, the command, its arguments.
struct Line<'a> {
    /// `--non-interactive` (`-n`) was given.
    non_interactive: bool,
    /// The command (`install`, `in`, ...).
    command: &'a str,
    /// Its options and arguments.
    args: &'a [&'a str],
}

/// Splits `args` at the command; `Err` names an unknown global option.
fn parse<'a>(args: &'a [&'a str]) -> Result<Option<Line<'a>>, &'a str> {
    let mut non_interactive = false;
    for (i, a) in args.iter().enumerate() {
        match *a {
            "--non-interactive" | "-n" => non_interactive = true,
            "--gpg-auto-import-keys" => {}
            option if option.starts_with('-') => return Err(option),
            command => {
                return Ok(Some(Line {
                    non_interactive,
                    command,
                    args: &args[i + 1..],
                }));
            }
        }
    }
    Ok(None)
}

/// `zypper refresh` and `zypper install` take their own time.
/// (zypper is not pre-staged: its installs always download.)
pub(super) fn duration(
    _program: &str,
    args: &[&str],
    t: &Timings,
    _downloaded: &super::Downloaded,
) -> Option<Duration> {
    match parse(args).ok()??.command {
        "refresh" | "ref" => Some(t.apt_update),
        "install" | "in" => Some(t.install),
        _ => None,
    }
}

/// `zypper --non-interactive [--gpg-auto-import-keys] COMMAND ARGS...`.
pub(super) fn exec(inner: &mut Inner, node: &NodeName, cmd: &Command<'_>) -> Exec {
    let line = match parse(&cmd.args) {
        Ok(Some(line)) => line,
        Ok(None) => return Exec::fail(2, "zypper: no command given"),
        Err(option) => return Exec::fail(2, format!("Unknown option '{option}'")),
    };
    if !line.non_interactive {
        return Exec::fail(
            1,
            format!(
                "sim: zypper {} without --non-interactive waits at a prompt",
                line.command
            ),
        );
    }
    if !cmd.root {
        return Exec::fail(
            5,
            "Root privileges are required to run this command (the command needs sudo).",
        );
    }
    match line.command {
        "refresh" | "ref" => refresh_repository(inner, node, line.args),
        "addlock" | "al" => lock(inner, node, true, line.args),
        "removelock" | "rl" => lock(inner, node, false, line.args),
        "install" | "in" => install_exact(inner, node, line.args),
        other => Exec::fail(
            2,
            format!("sim: zypper {other}: the simulated cluster does not model it"),
        ),
    }
}

/// `zypper refresh [ALIAS...]`: no alias refreshes every repository.
fn refresh_repository(inner: &mut Inner, node: &NodeName, aliases: &[&str]) -> Exec {
    if let Some(other) = aliases.iter().find(|a| **a != ZYPPER_REPO_ALIAS) {
        return Exec::fail(
            3,
            format!("Repository '{other}' not found by its alias, number, or URI."),
        );
    }
    refresh(inner, node);
    Exec::ok(
        "Retrieving repository 'Kubernetes' metadata ...[done]\nBuilding repository 'Kubernetes' cache ...[done]\nSpecified repositories have been refreshed.\n",
    )
}

/// `zypper addlock|removelock PKG...`.
fn lock(inner: &mut Inner, node: &NodeName, add: bool, names: &[&str]) -> Exec {
    let mut pkgs = Vec::new();
    for name in names {
        let Some(pkg) = package(name) else {
            return Exec::fail(
                1,
                format!("sim: lock of {name:?}: only kubelet, kubeadm and kubectl are modelled"),
            );
        };
        pkgs.push(pkg);
    }
    let held = &mut inner.host(node).held;
    for pkg in pkgs {
        if add {
            held.insert(pkg);
        } else {
            held.remove(&pkg);
        }
    }
    Exec::changed(if add {
        "Specified lock has been successfully added.\n".to_string()
    } else {
        format!("{} lock(s) have been successfully removed.\n", names.len())
    })
}

/// `zypper install [--oldpackage] PKG=VERSION...`.
fn install_exact(inner: &mut Inner, node: &NodeName, args: &[&str]) -> Exec {
    let oldpackage = args.contains(&"--oldpackage");
    if let Some(option) = args
        .iter()
        .find(|a| a.starts_with('-') && **a != "--oldpackage")
    {
        return Exec::fail(2, format!("sim: zypper install {option}: not modelled"));
    }
    let mut wanted = Vec::new();
    let mut older = String::new();
    for cap in args.iter().filter(|a| !a.starts_with('-')) {
        let Some((name, edition)) = cap.split_once('=') else {
            return Exec::fail(1, format!("sim: unpinned install of {cap}"));
        };
        let not_found = || Exec::fail(104, format!("No provider of '{cap}' found."));
        let (Some(pkg), Some(v)) = (package(name), package_version(edition)) else {
            return not_found();
        };
        if !carries(inner, node, RepoKind::Zypper, v.minor()) || !released(&v) {
            return not_found();
        }
        let host = inner.host(node);
        let installed = host.installed.get(&pkg);
        if installed == Some(&v) {
            continue;
        }
        if host.held.contains(&pkg) {
            let from = installed.map_or(String::new(), |i| format!("-{}", i.to_plain_string()));
            return Exec::fail(
                4,
                format!("Problem: 1: the installed {name}{from} is locked\n"),
            );
        }
        if !oldpackage && installed.is_some_and(|i| *i > v) {
            older.push_str(&format!(
                "The selected package '{name}-{edition}' has lower version than the installed one. Use 'zypper install --oldpackage {cap}' to force installation of the package.\n"
            ));
            continue;
        }
        wanted.push((pkg, v));
    }
    if wanted.is_empty() {
        return Exec::ok(older + "Nothing to do.\n");
    }
    install(inner, node, wanted)
}
