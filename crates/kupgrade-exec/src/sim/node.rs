//! What the rendered node commands do to a simulated node.
//!
//! Only the commands kupgrade renders are modelled, strictly: anything else exits 127, so a
//! change in the planner's commands shows up as a failing simulation rather than as a silent
//! success. [`exec`] parses a command ([`Command`]) and hands it to the rule of its program;
//! the rules check what the real tool would refuse, then apply their effect on the node
//! ([`install`], `upgrade_control_plane`, `restart_kubelet`). They follow the real tools:
//!
//! - Package managers, one rule per OS family (see [`super::packages`]): repository files,
//!   installs at a pinned version, holds, excludes and locks. Installing the kubelet package
//!   does not change the running kubelet.
//! - `kubeadm upgrade apply vX --yes` (control-plane node, kubeadm at least vX, at most one
//!   minor above the cluster's version) moves the node's control-plane static pods and stacked
//!   etcd (to the etcd kubeadm ships with the minor), records the cluster version, and moves
//!   the add-ons when no other control-plane node is left behind (always before kubeadm
//!   1.28). `kubeadm upgrade node` does the same on the other control-plane nodes (the last
//!   one moves the add-ons) and rewrites the kubelet configuration on workers.
//! - `systemctl restart kubelet` makes the node report the installed kubelet, NotReady for a
//!   while.
//! - `kubeadm config images pull --kubernetes-version vX` (pre-staging) records the pull.
//! - `mkdir`, `cp` (the configuration backup), `etcdctl snapshot save` and `tee` need root and
//!   record the files they write.
use std::time::Duration;

use kupgrade_core::plan::Package;
use kupgrade_core::plan::packages::DNF_REMOVE_DUPLICATES;
use kupgrade_core::ports::{CommandSpec, Privilege, Program};
use kupgrade_core::{Component, KubeVersion, Minor, NodeName};

use super::Inner;
use super::model::Timings;
use super::packages;

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
    pub(super) fn ok(stdout: impl Into<String>) -> Exec {
        Exec {
            stdout: stdout.into(),
            ..Exec::default()
        }
    }
    pub(super) fn changed(stdout: impl Into<String>) -> Exec {
        Exec {
            stdout: stdout.into(),
            changed: true,
            ..Exec::default()
        }
    }
    pub(super) fn fail(code: i32, stderr: impl Into<String>) -> Exec {
        Exec {
            code,
            stderr: stderr.into(),
            ..Exec::default()
        }
    }
}

/// A command as a simulated node receives it: a program and its arguments (kupgrade renders
/// no other shell text than the kubeadm version check and dnf's repair of duplicates, see
/// [`shell`]).
pub(super) struct Command<'a> {
    /// The program.
    pub program: &'a str,
    /// Its arguments.
    pub args: Vec<&'a str>,
    /// Run through sudo.
    pub root: bool,
    /// What it reads on standard input.
    pub stdin: &'a [u8],
}

impl<'a> Command<'a> {
    /// The command of `spec`, or the script of a shell command.
    fn parse(spec: &'a CommandSpec) -> Result<Command<'a>, &'a str> {
        match &spec.program {
            Program::Exec { program, args } => Ok(Command {
                program,
                args: args.iter().map(String::as_str).collect(),
                root: spec.privilege == Privilege::Sudo,
                stdin: spec.stdin.as_deref().unwrap_or_default(),
            }),
            Program::Shell { script } => Err(script),
        }
    }

    /// `then()` when run as root, else the refusal of a program that needs root.
    fn as_root(&self, then: impl FnOnce() -> Exec) -> Exec {
        if self.root {
            then()
        } else {
            Exec::fail(
                1,
                format!(
                    "{}: Permission denied (are you root? the command needs sudo)",
                    self.program
                ),
            )
        }
    }
}

/// How long `spec` takes, on a node whose package cache holds `downloaded`.
pub(crate) fn duration(
    spec: &CommandSpec,
    t: &Timings,
    downloaded: &std::collections::BTreeSet<(Package, KubeVersion)>,
) -> Duration {
    let Program::Exec { program, args } = &spec.program else {
        return t.command;
    };
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Some(d) = packages::duration(program, &a, t, downloaded) {
        return d;
    }
    match (program.as_str(), a.as_slice()) {
        ("kubeadm", ["upgrade", "apply", ..]) => t.kubeadm_apply,
        ("kubeadm", ["upgrade", "node", ..]) => t.kubeadm_node,
        ("kubeadm", ["upgrade", "plan", ..]) => t.kubeadm_plan,
        ("etcdctl", _) => t.etcd_snapshot,
        _ => t.command,
    }
}

/// Runs `spec` on `node` (which exists) at `now_ms`: parses it, and hands it to the rule of
/// its program.
pub(crate) fn exec(inner: &mut Inner, node: &NodeName, spec: &CommandSpec, now_ms: u64) -> Exec {
    let cmd = match Command::parse(spec) {
        Ok(cmd) => cmd,
        Err(script) => return shell(inner, node, spec, script),
    };
    match cmd.program {
        "mkdir" | "cp" | "etcdctl" | "tee" => files(inner, node, &cmd),
        "kubeadm" => kubeadm(inner, node, &cmd),
        "systemctl" => systemctl(inner, node, &cmd, now_ms),
        program => packages::exec(inner, node, &cmd).unwrap_or_else(|| unknown(program)),
    }
}

/// `mkdir -p`, the configuration backup (`cp -a -T /etc/kubernetes DEST`), the etcd
/// snapshot, and `tee` (of a package repository: see [`packages::write_repository`]).
fn files(inner: &mut Inner, node: &NodeName, cmd: &Command<'_>) -> Exec {
    match (cmd.program, cmd.args.as_slice()) {
        ("mkdir", ["-p", _dir]) => cmd.as_root(|| Exec::ok("")),
        ("cp", ["-a", "-T", "/etc/kubernetes", dest]) => cmd.as_root(|| file(inner, node, dest)),
        ("etcdctl", rest) => {
            let n = inner.node(node);
            if !n.is_control_plane() || n.versions.etcd.is_none() {
                return Exec::fail(
                    1,
                    "Error: dial tcp 127.0.0.1:2379: connect: connection refused",
                );
            }
            match rest {
                [.., "snapshot", "save", path] => cmd.as_root(|| file(inner, node, path)),
                _ => unknown(cmd.program),
            }
        }
        ("tee", [path]) if !cmd.root => Exec::fail(1, format!("tee: {path}: Permission denied")),
        ("tee", [path]) => packages::write_repository(inner, node, path, cmd.stdin)
            .unwrap_or_else(|| file(inner, node, path)),
        _ => unknown(cmd.program),
    }
}

/// `kubeadm upgrade plan|apply|node`.
fn kubeadm(inner: &mut Inner, node: &NodeName, cmd: &Command<'_>) -> Exec {
    match cmd.args.as_slice() {
        ["upgrade", "plan", version] => kubeadm_plan(inner, node, version),
        ["upgrade", "apply", version, flags @ ..] => {
            if !cmd.root {
                return Exec::fail(1, "[preflight] FATAL: user is not running as root");
            }
            if !flags.contains(&"--yes") && !flags.contains(&"-y") {
                return Exec::fail(
                    1,
                    "[upgrade/confirm] Are you sure you want to proceed? [y/N]: error: not a terminal",
                );
            }
            kubeadm_apply(inner, node, version)
        }
        ["upgrade", "node"] => {
            if !cmd.root {
                return Exec::fail(1, "[preflight] FATAL: user is not running as root");
            }
            kubeadm_node(inner, node)
        }
        ["config", "images", "pull", "--kubernetes-version", version] => {
            if !cmd.root {
                return Exec::fail(1, "[preflight] FATAL: user is not running as root");
            }
            images_pull(inner, node, version)
        }
        _ => unknown(cmd.program),
    }
}

/// `kubeadm config images pull --kubernetes-version vX` (pre-staging): the node's kubeadm
/// pulls the images of a released version; recorded in
/// [`Host::pulled`](super::model::Host), changing nothing else.
fn images_pull(inner: &mut Inner, node: &NodeName, version: &str) -> Exec {
    let v = match KubeVersion::parse(version) {
        Ok(v) if kupgrade_core::ReleaseCalendar::embedded().knows(&v) => v,
        _ => {
            return Exec::fail(
                1,
                format!("failed to pull image: invalid or unknown version {version:?}"),
            );
        }
    };
    let host = inner.host(node);
    if !host.installed.contains_key(&Package::Kubeadm) {
        return Exec::fail(127, "sh: 1: kubeadm: not found");
    }
    host.pulled.insert(v.clone());
    Exec::changed(format!(
        "[config/images] Pulled registry.k8s.io/kube-apiserver:{v}\n"
    ))
}

fn kubeadm_plan(inner: &mut Inner, node: &NodeName, version: &str) -> Exec {
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

/// `kubeadm upgrade apply VERSION --yes`, as root.
fn kubeadm_apply(inner: &mut Inner, node: &NodeName, version: &str) -> Exec {
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

/// `kubeadm upgrade node`, as root.
fn kubeadm_node(inner: &mut Inner, node: &NodeName) -> Exec {
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
        let Some(kubeadm) = inner.host(node).installed.get(&Package::Kubeadm).cloned() else {
            return Exec::fail(127, "sh: 1: kubeadm: not found");
        };
        inner.host(node).kubelet_config = Some(kubeadm.minor().min(target.minor()));
        Exec::changed("[upgrade] The configuration for this node was successfully updated!\n")
    }
}

/// `systemctl daemon-reload` and `systemctl restart kubelet`.
fn systemctl(inner: &mut Inner, node: &NodeName, cmd: &Command<'_>, now_ms: u64) -> Exec {
    match cmd.args.as_slice() {
        ["daemon-reload"] => cmd.as_root(|| Exec::ok("")),
        ["restart", "kubelet"] => {
            if !cmd.root {
                return Exec::fail(1, "Failed to restart kubelet.service: Access denied");
            }
            restart_kubelet(inner, node, now_ms);
            Exec::changed("")
        }
        _ => unknown(cmd.program),
    }
}

/// A program the simulated cluster does not model.
pub(super) fn unknown(program: &str) -> Exec {
    Exec::fail(
        127,
        format!("sh: 1: {program}: not found (the simulated cluster does not model this command)"),
    )
}

fn file(inner: &mut Inner, node: &NodeName, path: &str) -> Exec {
    inner.host(node).files.insert(path.to_string());
    Exec::changed("")
}

/// The shell scripts kupgrade renders: the repair of an interrupted dnf and the kubeadm version check.
fn shell(inner: &mut Inner, node: &NodeName, spec: &CommandSpec, script: &str) -> Exec {
    if script == DNF_REMOVE_DUPLICATES {
        // No simulated dnf is ever interrupted halfway: there is never a duplicate to remove.
        return if spec.privilege == Privilege::Sudo {
            Exec::ok("")
        } else {
            Exec::fail(
                1,
                "Error: This command has to be run with superuser privileges (under the root user on most systems).",
            )
        };
    }
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

/// Installs `wanted` on `node`: kubeadm and kubectl change at once, the kubelet package when
/// the kubelet restarts.
pub(super) fn install(
    inner: &mut Inner,
    node: &NodeName,
    wanted: Vec<(Package, KubeVersion)>,
) -> Exec {
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
        let running = inner.workload_pods_on(node);
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
