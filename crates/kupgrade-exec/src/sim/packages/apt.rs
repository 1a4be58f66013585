//! apt on a simulated Debian or Ubuntu node: `apt-get update` reads a changed source list;
//! `apt-get install -y pkg=1.29.3-*` installs a pinned version the repository carries, and
//! refuses to change a package held with `apt-mark hold`.
use std::time::Duration;

use kupgrade_core::NodeName;

use super::super::Inner;
use super::super::model::{RepoKind, Timings};
use super::super::node::{Command, Exec, install, unknown};
use super::{carries, package, pin_version, refresh, released};

/// `apt-get update` and `apt-get install` take their own time.
pub(super) fn duration(program: &str, args: &[&str], t: &Timings) -> Option<Duration> {
    match (program, args) {
        ("apt-get", ["update", ..]) => Some(t.apt_update),
        ("apt-get", ["install", ..]) => Some(t.install),
        _ => None,
    }
}

/// `dpkg --triggers-only --pending` (nothing is ever left half done here), `apt-get update`,
/// `apt-mark hold|unhold PKG...`, `apt-get install -y PKG=PIN...`.
pub(super) fn exec(inner: &mut Inner, node: &NodeName, cmd: &Command<'_>) -> Exec {
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
