//! What the rendered node commands do to a simulated node.
//!
//! Only the commands kupgrade renders are modelled, strictly: anything else exits 127, so a
//! change in the planner's commands shows up as a failing simulation rather than as a silent
//! success. The rules follow the real tools:
//!
//! - `tee` of the apt list or yum repository file points the node at the minor in its text;
//!   apt then needs `apt-get update` before it sees the new repository.
//! - `apt-get install pkg=1.29.3-*` / `dnf install pkg-1.29.3-*` succeed only for a released
//!   version of the minor the repository carries, only when the package is not held (apt) or
//!   excludes are lifted (`--disableexcludes=kubernetes`, dnf). Installing the kubelet package
//!   does not change the running kubelet.
//! - `kubeadm upgrade apply vX --yes` (control-plane node, kubeadm at least vX, at most one
//!   minor above the cluster's version) moves the node's control-plane static pods and stacked
//!   etcd (to the etcd kubeadm ships with the minor), records the cluster version, and moves
//!   the add-ons when no other control-plane node is left behind (always before kubeadm
//!   1.28). `kubeadm upgrade node` does the same on the other control-plane nodes (the last
//!   one moves the add-ons) and rewrites the kubelet configuration on workers.
//! - `systemctl restart kubelet` makes the node report the installed kubelet, NotReady for a
//!   while.
use std::time::Duration;

use kupgrade_core::plan::Package;
use kupgrade_core::ports::{CommandSpec, Privilege, Program};
use kupgrade_core::{Component, KubeVersion, Minor, NodeName, ReleaseCalendar};

use super::Inner;
use super::model::{PodKind, Repo, RepoKind, Timings};

const APT_LIST: &str = "/etc/apt/sources.list.d/kubernetes.list";
const YUM_REPO: &str = "/etc/yum.repos.d/kubernetes.repo";

/// What a command did.
#[derive(Debug, Default)]
pub(crate) struct Exec {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Whether the simulated world changed.
    pub changed: bool,
}

impl Exec {
    fn ok(stdout: impl Into<String>) -> Exec {
        Exec {
            stdout: stdout.into(),
            ..Exec::default()
        }
    }
    fn changed(stdout: impl Into<String>) -> Exec {
        Exec {
            stdout: stdout.into(),
            changed: true,
            ..Exec::default()
        }
    }
    fn fail(code: i32, stderr: impl Into<String>) -> Exec {
        Exec {
            code,
            stderr: stderr.into(),
            ..Exec::default()
        }
    }
}

/// How long `spec` takes.
pub(crate) fn duration(spec: &CommandSpec, t: &Timings) -> Duration {
    match &spec.program {
        Program::Exec { program, args } => {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            match (program.as_str(), a.as_slice()) {
                ("apt-get", ["update", ..]) => t.apt_update,
                ("apt-get" | "dnf", ["install", ..]) => t.install,
                ("kubeadm", ["upgrade", "apply", ..]) => t.kubeadm_apply,
                ("kubeadm", ["upgrade", "node", ..]) => t.kubeadm_node,
                ("kubeadm", ["upgrade", "plan", ..]) => t.kubeadm_plan,
                ("etcdctl", _) => t.etcd_snapshot,
                _ => t.command,
            }
        }
        Program::Shell { .. } => t.command,
    }
}

/// Runs `spec` on `node` (which exists) at `now_ms`.
pub(crate) fn exec(inner: &mut Inner, node: &NodeName, spec: &CommandSpec, now_ms: u64) -> Exec {
    let (program, args) = match &spec.program {
        Program::Exec { program, args } => (program.as_str(), args.clone()),
        Program::Shell { script } => return shell(inner, node, script),
    };
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let root = spec.privilege == Privilege::Sudo;
    let needs_root = |e: Exec| {
        if root {
            e
        } else {
            Exec::fail(
                1,
                format!("{program}: Permission denied (are you root? the command needs sudo)"),
            )
        }
    };
    let family = inner.node(node).os.family;
    match (program, a.as_slice()) {
        ("mkdir", ["-p", _dir]) => needs_root(Exec::ok("")),
        ("cp", ["-a", "-T", "/etc/kubernetes", dest]) => {
            let dest = dest.to_string();
            needs_root(file(inner, node, dest))
        }
        ("etcdctl", rest) => {
            let n = inner.node(node);
            if !n.is_control_plane() || n.versions.etcd.is_none() {
                return Exec::fail(
                    1,
                    "Error: dial tcp 127.0.0.1:2379: connect: connection refused",
                );
            }
            match rest {
                [.., "snapshot", "save", path] => {
                    let path = path.to_string();
                    needs_root(file(inner, node, path))
                }
                _ => unknown(program),
            }
        }
        ("tee", [path]) => {
            let text =
                String::from_utf8_lossy(spec.stdin.as_deref().unwrap_or_default()).into_owned();
            if !root {
                return Exec::fail(1, format!("tee: {path}: Permission denied"));
            }
            let kind = match *path {
                APT_LIST => RepoKind::Apt,
                YUM_REPO => RepoKind::Yum,
                _ => return file(inner, node, path.to_string()),
            };
            let Some(minor) = repo_minor(&text) else {
                return Exec::fail(
                    1,
                    format!("sim: {path}: no pkgs.k8s.io repository in {text:?}"),
                );
            };
            let host = inner.host(node);
            // The file is written either way; only the package manager of the node's family
            // reads it.
            if RepoKind::of(family) == Some(kind) {
                host.repo = Some(Repo {
                    kind,
                    minor,
                    fresh: kind == RepoKind::Yum,
                });
            }
            Exec::changed(text)
        }
        ("apt-get" | "apt-mark", _) if family != kupgrade_core::OsFamily::Debian => {
            Exec::fail(127, format!("sh: 1: {program}: not found"))
        }
        ("dnf", _) if family != kupgrade_core::OsFamily::Rhel => {
            Exec::fail(127, format!("sh: 1: {program}: not found"))
        }
        ("apt-get", ["update"]) => {
            if !root {
                return Exec::fail(
                    100,
                    "E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)",
                );
            }
            if let Some(r) = &mut inner.host(node).repo {
                r.fresh = true;
            }
            Exec::ok(
                "Hit:1 https://pkgs.k8s.io/core:/stable:/ InRelease\nReading package lists... Done\n",
            )
        }
        ("apt-mark", [verb @ ("hold" | "unhold"), pkgs @ ..]) => {
            if !root {
                return Exec::fail(
                    1,
                    "E: Could not create temporary file for /var/lib/dpkg/status - (13: Permission denied)",
                );
            }
            let mut out = String::new();
            for p in pkgs {
                let Some(pkg) = package(p) else {
                    return Exec::fail(100, format!("E: Unable to locate package {p}"));
                };
                let host = inner.host(node);
                if *verb == "hold" {
                    host.held.insert(pkg);
                    out.push_str(&format!("{p} set on hold.\n"));
                } else {
                    host.held.remove(&pkg);
                    out.push_str(&format!("Canceled hold on {p}.\n"));
                }
            }
            Exec::changed(out)
        }
        ("apt-get", ["install", "-y", pins @ ..]) => {
            if !root {
                return Exec::fail(
                    100,
                    "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)",
                );
            }
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
            let host = inner.host(node);
            for (pkg, v, name, version) in &wanted {
                let repo_ok = host
                    .repo
                    .as_ref()
                    .is_some_and(|r| r.kind == RepoKind::Apt && r.fresh && r.minor == v.minor());
                if !repo_ok || !released(v) {
                    return Exec::fail(
                        100,
                        format!("E: Version '{version}' for '{name}' was not found"),
                    );
                }
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
        ("dnf", ["install", "-y", rest @ ..]) => {
            if !root {
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
                let host = inner.host(node);
                let repo_ok = host
                    .repo
                    .as_ref()
                    .is_some_and(|r| r.kind == RepoKind::Yum && r.minor == v.minor());
                if !lifted || !repo_ok || !released(&v) {
                    return Exec::fail(1, format!("Error: Unable to find a match: {arg}"));
                }
                wanted.push((pkg, v));
            }
            install(inner, node, wanted)
        }
        ("kubeadm", ["upgrade", "plan", version]) => {
            let Ok(v) = KubeVersion::parse(version) else {
                return Exec::fail(
                    1,
                    format!("[upgrade/versions] FATAL: invalid version {version:?}"),
                );
            };
            if let Err(e) = kubeadm_can_reach(inner, node, &v) {
                return e;
            }
            let cluster = inner.cluster_version();
            Exec::ok(format!(
                "[upgrade/versions] Cluster version: {}\n[upgrade/versions] Target version: {v}\nYou can now apply the upgrade by executing the following command:\n\n\tkubeadm upgrade apply {v}\n",
                cluster.map_or("unknown".into(), |c| c.to_string())
            ))
        }
        ("kubeadm", ["upgrade", "apply", version, flags @ ..]) => {
            if !root {
                return Exec::fail(1, "[preflight] FATAL: user is not running as root");
            }
            if !flags.contains(&"--yes") && !flags.contains(&"-y") {
                return Exec::fail(
                    1,
                    "[upgrade/confirm] Are you sure you want to proceed? [y/N]: error: not a terminal",
                );
            }
            let Ok(v) = KubeVersion::parse(version) else {
                return Exec::fail(
                    1,
                    format!("[upgrade/version] FATAL: invalid version {version:?}"),
                );
            };
            if !inner.node(node).is_control_plane() {
                return Exec::fail(
                    1,
                    "couldn't create a Kubernetes client from file \"/etc/kubernetes/admin.conf\": no such file or directory",
                );
            }
            if let Err(e) = kubeadm_can_reach(inner, node, &v) {
                return e;
            }
            if let Some(c) = inner.cluster_version() {
                if v.release() < c.release() {
                    return Exec::fail(
                        1,
                        format!(
                            "[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n\t- Specified version to upgrade to \"{v}\" is equal to or lower than the cluster version \"{c}\". Downgrades are not supported yet"
                        ),
                    );
                }
                if v.minor_number() > c.minor_number() + 1 {
                    return Exec::fail(
                        1,
                        format!(
                            "[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n\t- Specified version to upgrade to \"{v}\" is too high; kubeadm can upgrade only 1 minor version at a time"
                        ),
                    );
                }
            }
            inner.state.kubeadm_config = Some(v.clone());
            upgrade_control_plane(inner, node, &v);
            Exec::changed(format!(
                "[upgrade/apply] Upgrading your Static Pod-hosted control plane to version \"{v}\"...\n[upgrade/successful] SUCCESS! Your cluster was upgraded to \"{v}\". Enjoy!\n"
            ))
        }
        ("kubeadm", ["upgrade", "node"]) => {
            if !root {
                return Exec::fail(1, "[preflight] FATAL: user is not running as root");
            }
            let Some(target) = inner.cluster_version() else {
                return Exec::fail(1, "unable to fetch the kubeadm-config ConfigMap");
            };
            if inner.node(node).is_control_plane() {
                if let Err(e) = kubeadm_can_reach(inner, node, &target) {
                    return e;
                }
                upgrade_control_plane(inner, node, &target);
                Exec::changed(format!(
                    "[upgrade] Upgrading your Static Pod-hosted control plane instance to version \"{target}\"...\n[upgrade] The control plane instance for this node was successfully updated!\n"
                ))
            } else {
                let Some(kubeadm) = inner.host(node).installed.get(&Package::Kubeadm).cloned()
                else {
                    return Exec::fail(127, "sh: 1: kubeadm: not found");
                };
                inner.host(node).kubelet_config = Some(kubeadm.minor().min(target.minor()));
                Exec::changed(
                    "[upgrade] The configuration for this node was successfully updated!\n",
                )
            }
        }
        ("systemctl", ["daemon-reload"]) => needs_root(Exec::ok("")),
        ("systemctl", ["restart", "kubelet"]) => {
            if !root {
                return Exec::fail(1, "Failed to restart kubelet.service: Access denied");
            }
            restart_kubelet(inner, node, now_ms);
            Exec::changed("")
        }
        _ => unknown(program),
    }
}

fn unknown(program: &str) -> Exec {
    Exec::fail(
        127,
        format!("sh: 1: {program}: not found (the simulated cluster does not model this command)"),
    )
}

fn file(inner: &mut Inner, node: &NodeName, path: String) -> Exec {
    inner.host(node).files.insert(path);
    Exec::changed("")
}

/// The shell scripts kupgrade renders: only the kubeadm version check.
fn shell(inner: &mut Inner, node: &NodeName, script: &str) -> Exec {
    let Some(want) = script.strip_prefix("test \"$(kubeadm version -o short)\" = ") else {
        return Exec::fail(
            127,
            format!("sim: cannot run script {script:?} (the simulated cluster does not model it)"),
        );
    };
    let want = want.trim_matches('\'');
    match inner.host(node).installed.get(&Package::Kubeadm) {
        Some(v) if v.to_string() == want => Exec::ok(""),
        Some(_) => Exec::fail(1, ""),
        None => Exec::fail(127, "sh: 1: kubeadm: not found"),
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

/// `1.29.3-*` or `1.30.0~rc.1-*` as a version.
fn pin_version(pin: &str) -> Option<KubeVersion> {
    let base = pin.strip_suffix("-*")?;
    KubeVersion::parse(&base.replacen('~', "-", 1)).ok()
}

fn released(v: &KubeVersion) -> bool {
    ReleaseCalendar::embedded().knows(v)
}

/// The minor of a pkgs.k8s.io repository in an apt line or a yum file.
fn repo_minor(text: &str) -> Option<Minor> {
    let rest = &text[text.find("/core:/stable:/v")? + "/core:/stable:/v".len()..];
    let end = rest.find('/')?;
    Minor::parse(&rest[..end]).ok()
}

fn install(inner: &mut Inner, node: &NodeName, wanted: Vec<(Package, KubeVersion)>) -> Exec {
    let mut out = String::new();
    for (pkg, v) in wanted {
        let host = inner.host(node);
        host.installed.insert(pkg, v.clone());
        out.push_str(&format!(
            "Setting up {} ({}-1.1) ...\n",
            pkg.name(),
            v.to_plain_string()
        ));
        // kubeadm and kubectl are binaries: the node reports them at once. The kubelet
        // package changes what runs only when the kubelet restarts.
        if pkg != Package::Kubelet {
            let n = inner.node_mut(node);
            if let Some(slot) = n.versions.slot_mut(pkg.component()) {
                *slot = Some(v);
            }
        }
    }
    Exec::changed(out)
}

/// kubeadm refuses targets newer than itself.
fn kubeadm_can_reach(inner: &mut Inner, node: &NodeName, v: &KubeVersion) -> Result<(), Exec> {
    match inner.host(node).installed.get(&Package::Kubeadm) {
        None => Err(Exec::fail(127, "sh: 1: kubeadm: not found")),
        Some(k) if k.release() < v.release() => Err(Exec::fail(
            1,
            format!(
                "[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n\t- Specified version to upgrade to \"{v}\" is higher than the kubeadm version \"{k}\". Upgrade kubeadm first using the tool you used to install kubeadm"
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// What `kubeadm upgrade apply|node` does to a control-plane node, and the add-ons when this
/// node is the last to move (or always, before kubeadm 1.28).
fn upgrade_control_plane(inner: &mut Inner, node: &NodeName, v: &KubeVersion) {
    let stacked = matches!(
        inner.state.cluster.etcd,
        kupgrade_core::EtcdTopology::Stacked
    );
    let etcd = kupgrade_core::bundled::bundled(v.minor()).and_then(|b| b.etcd.clone());
    let n = inner.node_mut(node);
    n.versions.kube_apiserver = Some(v.clone());
    for c in [Component::KubeControllerManager, Component::KubeScheduler] {
        if let Some(slot) = n.versions.slot_mut(c)
            && slot.is_some()
        {
            *slot = Some(v.clone());
        }
    }
    if stacked
        && let (Some(e), Some(cur)) = (&etcd, &mut n.versions.etcd)
        && *e > *cur
    {
        *cur = e.clone();
    }
    inner.host(node).kubelet_config = Some(v.minor());
    let kubeadm = inner
        .host(node)
        .installed
        .get(&Package::Kubeadm)
        .cloned()
        .unwrap_or_else(|| v.clone());
    let behind = inner.control_plane().any(|c| {
        c.versions
            .kube_apiserver
            .as_ref()
            .is_some_and(|a| a.release() < v.release())
    });
    if kubeadm.minor() < Minor::new(1, 28) || !behind {
        let addons = &mut inner.state.cluster.addons;
        if addons.kube_proxy.is_some() {
            addons.kube_proxy = Some(v.clone());
        }
        let coredns = kupgrade_core::bundled::bundled(v.minor()).and_then(|b| b.coredns.clone());
        if let (Some(new), Some(cur)) = (coredns, &mut addons.coredns)
            && new > *cur
        {
            *cur = new;
        }
        for n in &mut inner.state.cluster.nodes {
            n.versions.kube_proxy = None;
        }
    }
}

fn restart_kubelet(inner: &mut Inner, node: &NodeName, now_ms: u64) {
    let Some(installed) = inner.host(node).installed.get(&Package::Kubelet).cloned() else {
        return;
    };
    let before = inner.node(node).versions.kubelet.clone();
    let ready_ms = inner.timings.kubelet_ready.as_millis() as u64;
    if before.as_ref().map(KubeVersion::minor) != Some(installed.minor()) {
        let running = inner
            .state
            .pods
            .iter()
            .filter(|p| {
                p.node.as_ref() == Some(node)
                    && matches!(p.kind, PodKind::Replicated | PodKind::Unreplicated)
            })
            .count();
        if running > 0 {
            inner.problem(format!(
                "the kubelet on {node} moved to {installed} while {running} workload pod(s) ran there (the node was not drained)"
            ));
        }
        if inner
            .host(node)
            .kubelet_config
            .is_some_and(|m| m < installed.minor())
        {
            inner.problem(format!(
                "the kubelet on {node} moved to {installed} before `kubeadm upgrade node` rewrote its configuration"
            ));
        }
    }
    if let Some(api) = inner.apiserver_min()
        && installed.minor() > api.minor()
    {
        let api = api.clone();
        inner.problem(format!(
            "the kubelet on {node} runs {installed}, newer than the API server {api}"
        ));
    }
    inner.node_mut(node).versions.kubelet = Some(installed);
    inner.host(node).ready_at_ms = Some(now_ms + ready_ms);
    inner.restarting.insert(node.clone());
}
