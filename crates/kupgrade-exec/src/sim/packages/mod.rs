//! What the package managers' commands do to a simulated node: one rule per OS family, each in
//! a file of its own. Repository paths and the programs of each family come from the family
//! files of [`kupgrade_core::plan::packages`], so they are written once.
//!
//! - `tee` of a family's repository file points a node of that family at the minor in its
//!   text; the file is written on any node, but other families' package managers do not read
//!   it. Some package managers read the change only after a refresh ([`RepoKind`]).
//! - A package manager's program does not exist on another family's nodes (exit 127).
//! - Installs succeed only for a released version of the minor the node's repository carries,
//!   and only when the family's hold, exclude or lock is lifted (see each rule).
use std::time::Duration;

use kupgrade_core::plan::Package;
use kupgrade_core::plan::packages::managers;
use kupgrade_core::{KubeVersion, Minor, NodeName, OsFamily, ReleaseCalendar};

use super::Inner;
use super::model::{Repo, RepoKind, Timings};
use super::node::{Command, Exec};

mod apt;
mod dnf;
mod zypper;

/// A family's simulated package manager.
struct Rule {
    /// Runs one of the family's programs on a node of the family.
    exec: fn(&mut Inner, &NodeName, &Command<'_>) -> Exec,
    /// How long a command of one of its programs takes, when not like any other command, on
    /// a node whose cache holds the package versions given.
    duration: fn(&str, &[&str], &Timings, &Downloaded) -> Option<Duration>,
}

/// The rule of `family`'s package manager.
fn rule(family: OsFamily) -> Option<Rule> {
    match family {
        OsFamily::Debian => Some(Rule {
            exec: apt::exec,
            duration: apt::duration,
        }),
        OsFamily::Rhel => Some(Rule {
            exec: dnf::exec,
            duration: dnf::duration,
        }),
        OsFamily::Suse => Some(Rule {
            exec: zypper::exec,
            duration: zypper::duration,
        }),
        OsFamily::Other => None,
    }
}

/// The family whose package manager `program` belongs to.
fn owner(program: &str) -> Option<OsFamily> {
    managers()
        .find(|m| m.programs().contains(&program))
        .map(|m| m.family())
}

/// How long `program args` takes, when it is a package manager's command with a duration of
/// its own, on a node whose cache holds `downloaded`.
pub(super) fn duration(
    program: &str,
    args: &[&str],
    t: &Timings,
    downloaded: &Downloaded,
) -> Option<Duration> {
    (rule(owner(program)?)?.duration)(program, args, t, downloaded)
}

/// The package versions in a node's cache ([`Host::downloaded`](super::model::Host)).
type Downloaded = std::collections::BTreeSet<(Package, KubeVersion)>;

/// An install of `pins` (each a package and version, `None` when not one) takes
/// [`Timings::install`] less [`Timings::download`] when every pin was downloaded ahead.
fn install_time(
    t: &Timings,
    downloaded: &Downloaded,
    mut pins: impl Iterator<Item = Option<(Package, KubeVersion)>>,
) -> Duration {
    let cached = pins.all(|p| p.is_some_and(|p| downloaded.contains(&p)));
    if cached {
        t.install.saturating_sub(t.download)
    } else {
        t.install
    }
}

/// Runs `cmd` when its program is a package manager's, else `None`.
pub(super) fn exec(inner: &mut Inner, node: &NodeName, cmd: &Command<'_>) -> Option<Exec> {
    let family = owner(cmd.program)?;
    if inner.node(node).os.family != family {
        return Some(Exec::fail(
            127,
            format!("sh: 1: {}: not found", cmd.program),
        ));
    }
    Some((rule(family)?.exec)(inner, node, cmd))
}

/// `tee PATH` (as root) with `stdin`, when `PATH` is a family's repository file, else `None`.
pub(super) fn write_repository(
    inner: &mut Inner,
    node: &NodeName,
    path: &str,
    stdin: &[u8],
) -> Option<Exec> {
    let family = managers().find(|m| m.repository_path() == path)?.family();
    let kind = RepoKind::of(family)?;
    let text = String::from_utf8_lossy(stdin).into_owned();
    let Some(minor) = repo_minor(&text) else {
        return Some(Exec::fail(
            1,
            format!("sim: {path}: no pkgs.k8s.io repository in {text:?}"),
        ));
    };
    // The file is written either way; only the package manager of the node's family reads it.
    if inner.node(node).os.family == family {
        inner.host(node).repo = Some(Repo {
            kind,
            minor,
            fresh: !kind.needs_refresh(),
        });
    }
    Some(Exec::changed(text))
}

/// The minor of a pkgs.k8s.io repository in a repository file's text.
pub(super) fn repo_minor(text: &str) -> Option<Minor> {
    let rest = &text[text.find("/core:/stable:/v")? + "/core:/stable:/v".len()..];
    let end = rest.find('/')?;
    Minor::parse(&rest[..end]).ok()
}

/// Whether `node`'s package manager of `kind` sees `minor`'s repository (refreshed since it
/// changed).
fn carries(inner: &mut Inner, node: &NodeName, kind: RepoKind, minor: Minor) -> bool {
    inner
        .host(node)
        .repo
        .as_ref()
        .is_some_and(|r| r.kind == kind && r.fresh && r.minor == minor)
}

/// Marks `node`'s repository as read by its package manager.
fn refresh(inner: &mut Inner, node: &NodeName) {
    if let Some(r) = &mut inner.host(node).repo {
        r.fresh = true;
    }
}

fn package(name: &str) -> Option<Package> {
    match name {
        "kubelet" => Some(Package::Kubelet),
        "kubeadm" => Some(Package::Kubeadm),
        "kubectl" => Some(Package::Kubectl),
        _ => None,
    }
}

/// `1.29.3` or `1.30.0~rc.1` (a package version as Debian and RPM write it) as a version.
fn package_version(version: &str) -> Option<KubeVersion> {
    KubeVersion::parse(&version.replacen('~', "-", 1)).ok()
}

/// `1.29.3-*` or `1.30.0~rc.1-*` (a pin of any package revision) as a version.
fn pin_version(pin: &str) -> Option<KubeVersion> {
    package_version(pin.strip_suffix("-*")?)
}

/// Whether pkgs.k8s.io has `v` (the calendar knows every release).
fn released(v: &KubeVersion) -> bool {
    ReleaseCalendar::embedded().knows(v)
}
