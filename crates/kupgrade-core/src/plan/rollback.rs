//! Rollback runbooks: what undoing an upgrade means at one position of its run.
//!
//! Before a hop's `kubeadm upgrade apply` (its point of no return) the run has changed only
//! package repositories and packages (kubeadm first): undoing is ordinary, safe, repeatable
//! steps — each node's repository and packages back to what they were — rendered with the
//! same commands as the plan's and executable by the same runners ([`RollbackPlan::steps`]).
//!
//! After it, kubeadm cannot downgrade: going back is the documented disaster-recovery path of
//! kubeadm clusters (every control-plane node's etcd restored from the snapshot the plan took
//! before that apply, `/etc/kubernetes` from its copy, packages and kubelets back, the nodes
//! upgraded since drained and downgraded), which [`RollbackPlan::recovery`] writes down with
//! the files' names and is never run by kupgrade.
//!
//! ```
//! # use kupgrade_core::plan::{PlanRequest, rollback::{RollbackKind, rollback}};
//! # let text = "nodes:\n  - name: cp-1\n    roles: [control-plane]\n    versions: { kubelet: v1.29.10, kubeadm: v1.29.10, kubectl: v1.29.10, kube-apiserver: v1.29.10, kube-controller-manager: v1.29.10, kube-scheduler: v1.29.10, etcd: 3.5.10-0 }\n";
//! # let cluster = kupgrade_core::inventory::parse(text, "cluster.yaml").unwrap();
//! let plan = PlanRequest::new("1.30".parse().unwrap(), jiff::civil::date(2025, 3, 1))
//!     .plan(&cluster)
//!     .unwrap();
//! // Nothing has run: nothing to undo.
//! assert_eq!(rollback(&plan, None, |_, _| false).kind, RollbackKind::NothingToUndo);
//! // Everything has run: past the point of no return, only disaster recovery goes back.
//! let after = rollback(&plan, Some("1733000000000-0a1b2c3d"), |_, _| true);
//! assert_eq!(after.kind, RollbackKind::DisasterRecovery);
//! assert!(after.steps.is_empty());
//! ```
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ports::RUN_TOKEN;
use crate::{KubeVersion, Minor, NodeName};

use super::UpgradePlan;
use super::action::Action;
use super::packages::node_commands;
use super::step::{NodeList, Package, Phase, Step, StepId};
use crate::OsFamily;

/// What undoing means at a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackKind {
    /// The run has changed nothing that needs undoing (checks and backups only).
    NothingToUndo,
    /// Before any point of no return: ordinary steps undo it.
    Ordinary,
    /// Past a `kubeadm upgrade apply`: only the disaster-recovery path goes back.
    DisasterRecovery,
}

/// The disaster-recovery path back to the state before one hop's `kubeadm upgrade apply`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// The hop whose point of no return was passed (an index into the plan's hops).
    pub hop: usize,
    /// The control-plane version before that hop: where the recovery lands.
    pub back_to: KubeVersion,
    /// The hop's target.
    pub hop_to: KubeVersion,
    /// The etcd snapshot taken before the hop's apply, on each control-plane node.
    pub snapshot: Option<String>,
    /// The copy of `/etc/kubernetes` taken before it, on each control-plane node.
    pub config_backup: Option<String>,
    /// The control-plane nodes (etcd members) to restore.
    pub control_plane: Vec<NodeName>,
    /// The nodes whose packages moved past `back_to` (drain, downgrade, uncordon).
    pub downgrade: Vec<NodeName>,
    /// The procedure, in order, in words and commands.
    pub procedure: Vec<String>,
    /// Earlier hops whose points of no return were also passed: going back further needs
    /// their snapshots (hop, snapshot file).
    pub earlier: Vec<(usize, String)>,
}

/// What undoing the run means at one position of its journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackPlan {
    /// The cluster's name, when known.
    pub cluster: Option<String>,
    /// The plan's starting version.
    pub from: KubeVersion,
    /// The plan's target.
    pub target: KubeVersion,
    /// How many of the plan's steps had started (done or in flight) at this position.
    pub started: usize,
    /// How many steps the plan has.
    pub total: usize,
    /// What undoing means here.
    pub kind: RollbackKind,
    /// For [`RollbackKind::Ordinary`]: the steps that undo the run, in order. Safe to run
    /// and to run again (each sets a repository or exact package versions).
    pub steps: Vec<Step>,
    /// For [`RollbackKind::DisasterRecovery`]: the documented way back, never run by kupgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
}

/// A node's repository and package versions, as the run leaves them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NodePackages {
    os: OsFamily,
    repository: Minor,
    versions: BTreeMap<Package, KubeVersion>,
}

/// The rollback of `plan` at the position where `started(step, node)` tells which tasks had
/// started (done, or in flight and so possibly done: a rollback assumes the worst). `run`
/// is the run's id, which names its backup files (the plan's paths hold a placeholder).
///
/// A node's packages before the plan are taken as its kubelet's version at the start
/// (kubeadm clusters install kubeadm, kubelet and kubectl together), and its repository as
/// that version's minor; the plan's own package steps give every later version.
pub fn rollback(
    plan: &UpgradePlan,
    run: Option<&str>,
    started: impl Fn(&StepId, Option<&NodeName>) -> bool,
) -> RollbackPlan {
    let touched = |s: &Step| match s.nodes.is_empty() {
        true => started(&s.id, None),
        false => s.nodes.iter().any(|n| started(&s.id, Some(n))),
    };
    let started_count = plan.steps.iter().filter(|s| touched(s)).count();
    let mut out = RollbackPlan {
        cluster: plan.cluster.clone(),
        from: plan.from.clone(),
        target: plan.target.clone(),
        started: started_count,
        total: plan.steps.len(),
        kind: RollbackKind::NothingToUndo,
        steps: Vec::new(),
        recovery: None,
    };
    // The hop the run is in: the last one with a started step.
    let Some(hop) = plan
        .steps
        .iter()
        .filter(|s| touched(s))
        .filter_map(|s| s.hop)
        .max()
    else {
        return out;
    };
    let last_apply = plan
        .steps
        .iter()
        .rposition(|s| s.point_of_no_return && touched(s));
    if let Some(apply) = last_apply {
        out.recovery = Some(recovery(plan, run, apply, &touched, &started));
        if plan.steps[apply].hop == Some(hop) {
            out.kind = RollbackKind::DisasterRecovery;
            return out;
        }
    }
    // Before this hop's apply: its changes undo with ordinary steps (an earlier hop's way
    // back stays the recovery above).
    out.steps = ordinary(plan, hop, &started);
    if !out.steps.is_empty() {
        out.kind = RollbackKind::Ordinary;
    }
    out
}

/// The packages of every node at the start, by the rule of [`rollback`].
fn at_start(plan: &UpgradePlan) -> BTreeMap<NodeName, NodePackages> {
    plan.nodes
        .iter()
        .filter(|n| !n.provisioned)
        .map(|n| {
            let v = n.kubelet.clone().unwrap_or_else(|| plan.from.clone());
            let versions = [Package::Kubeadm, Package::Kubelet, Package::Kubectl]
                .into_iter()
                .map(|p| (p, v.clone()))
                .collect();
            let packages = NodePackages {
                os: n.os,
                repository: v.minor(),
                versions,
            };
            (n.name.clone(), packages)
        })
        .collect()
}

/// Applies the package effect of `step` on `node` to `state`.
fn take(state: &mut NodePackages, step: &Step) {
    match &step.action {
        Action::SwitchRepository { minor } => state.repository = *minor,
        Action::InstallPackages { packages, version } => {
            for p in packages {
                state.versions.insert(*p, version.clone());
            }
        }
        _ => {}
    }
}

/// Ordinary undo steps: every node whose repository or packages the started tasks of `hop`
/// changed, back to what it had when the hop began. Nodes that need the same undo share a
/// step.
fn ordinary(
    plan: &UpgradePlan,
    hop: usize,
    started: &impl Fn(&StepId, Option<&NodeName>) -> bool,
) -> Vec<Step> {
    let (was, is) = packages_around_hop(plan, hop, started);
    let mut groups = UndoGroups::default();
    for (node, is) in &is {
        if let Some(was) = was.get(node) {
            groups.undo(node, is, was);
        }
    }
    let mut steps: Vec<Step> = Vec::new();
    for group in groups.in_order() {
        let step = undo_step(plan, group, steps.last());
        steps.push(step);
    }
    steps
}

/// Each node's packages when `hop` began, and, for the nodes whose packages the started
/// tasks of `hop` changed, as those tasks leave them.
fn packages_around_hop(
    plan: &UpgradePlan,
    hop: usize,
    started: &impl Fn(&StepId, Option<&NodeName>) -> bool,
) -> (
    BTreeMap<NodeName, NodePackages>,
    BTreeMap<NodeName, NodePackages>,
) {
    let mut start = at_start(plan);
    let mut now = BTreeMap::new();
    let from = plan.hops.get(hop).map_or(&plan.from, |h| &h.from);
    for step in &plan.steps {
        // A step of this hop moving a node to a version the control plane already runs
        // (workers catching up) finishes the hop before: it is not undone here.
        let beyond = match &step.action {
            Action::SwitchRepository { minor } => *minor > from.minor(),
            Action::InstallPackages { version, .. } => version > from,
            _ => continue,
        };
        let ours = step.hop == Some(hop) && beyond;
        let earlier = step.hop.is_some_and(|h| h <= hop) && !ours;
        for node in step.nodes.iter().filter(|n| started(&step.id, Some(n))) {
            if earlier {
                if let Some(state) = start.get_mut(node) {
                    take(state, step);
                }
            } else if ours {
                let state = now
                    .entry(node.clone())
                    .or_insert_with(|| start.get(node).cloned());
                if let Some(state) = state {
                    take(state, step);
                }
            }
        }
    }
    let now = now.into_iter().filter_map(|(n, s)| Some((n, s?))).collect();
    (start, now)
}

/// One undo action and the nodes that need it.
struct UndoGroup {
    action: Action,
    /// Where it goes: repositories (0) before packages (1).
    order: u8,
    nodes: Vec<NodeName>,
    /// The nodes' OS families, each once, in the order met.
    oses: Vec<OsFamily>,
}

/// The undo actions of every node, nodes that need the same action in one group.
#[derive(Default)]
struct UndoGroups(Vec<UndoGroup>);

impl UndoGroups {
    /// Adds what takes `node` (of `was.os`) from `is` back to `was`: its repository first
    /// (the old versions are installed from it), then one install per version it goes back
    /// to.
    fn undo(&mut self, node: &NodeName, is: &NodePackages, was: &NodePackages) {
        if is == was {
            return;
        }
        if is.repository != was.repository {
            let action = Action::SwitchRepository {
                minor: was.repository,
            };
            self.add(action, 0, node, was.os);
        }
        let mut back: BTreeMap<&KubeVersion, Vec<Package>> = BTreeMap::new();
        for (p, v) in &was.versions {
            if is.versions.get(p) != Some(v) {
                back.entry(v).or_default().push(*p);
            }
        }
        for (version, packages) in back {
            let action = Action::InstallPackages {
                packages,
                version: version.clone(),
            };
            self.add(action, 1, node, was.os);
        }
    }

    fn add(&mut self, action: Action, order: u8, node: &NodeName, os: OsFamily) {
        match self
            .0
            .iter_mut()
            .find(|g| g.action == action && g.order == order)
        {
            Some(g) => {
                g.nodes.push(node.clone());
                if !g.oses.contains(&os) {
                    g.oses.push(os);
                }
            }
            None => self.0.push(UndoGroup {
                action,
                order,
                nodes: vec![node.clone()],
                oses: vec![os],
            }),
        }
    }

    /// The groups, repositories first, each kind in the order met.
    fn in_order(mut self) -> Vec<UndoGroup> {
        self.0.sort_by_key(|g| g.order);
        self.0
    }
}

/// The step that carries out `group`, after `previous`.
fn undo_step(plan: &UpgradePlan, group: UndoGroup, previous: Option<&Step>) -> Step {
    let UndoGroup {
        action,
        nodes,
        oses,
        ..
    } = group;
    let id = StepId(format!(
        "rollback/{}/{}",
        match nodes.as_slice() {
            [one] => one.to_string(),
            many => format!("{}-nodes", many.len()),
        },
        action.verb()
    ));
    let commands = oses
        .iter()
        .filter_map(|os| node_commands(&action, *os))
        .collect();
    let reason = match &action {
        Action::SwitchRepository { minor } => {
            format!("the repository back to v{minor}, where the old packages are")
        }
        _ => "the packages back to the versions the node had when the hop began".to_string(),
    };
    Step {
        id,
        hop: None,
        phase: Phase::ControlPlane,
        nodes: NodeList::new(nodes),
        commands,
        depends_on: previous.map(|s| s.id.clone()).into_iter().collect(),
        idempotent: true,
        point_of_no_return: false,
        pre: Vec::new(),
        post: Vec::new(),
        duration_seconds: plan.options.durations.of(&action),
        reason,
        action,
    }
}

/// The disaster-recovery path back to before the apply at step `apply`.
fn recovery(
    plan: &UpgradePlan,
    run: Option<&str>,
    apply: usize,
    touched: &impl Fn(&Step) -> bool,
    started: &impl Fn(&StepId, Option<&NodeName>) -> bool,
) -> Recovery {
    let hop = plan.steps[apply].hop.unwrap_or(0);
    let (back_to, hop_to) = plan.hops.get(hop).map_or_else(
        || (plan.from.clone(), plan.target.clone()),
        |h| (h.from.clone(), h.to.clone()),
    );
    let file = |path: &str| match run {
        Some(run) => path.replace(RUN_TOKEN, run),
        None => path.to_string(),
    };
    // The backups taken before each apply: the latest of each kind before it and after the
    // apply before it (an older copy holds an older version's files).
    let backup_before = |at: usize, etcd: bool| {
        let since = plan.steps[..at]
            .iter()
            .rposition(|s| s.point_of_no_return)
            .map_or(0, |p| p + 1);
        plan.steps[since..at]
            .iter()
            .rev()
            .find_map(|s| match &s.action {
                Action::EtcdSnapshot { path } if etcd => Some(file(path)),
                Action::BackupConfig { path } if !etcd => Some(file(path)),
                _ => None,
            })
    };
    let snapshot = backup_before(apply, true);
    let config_backup = backup_before(apply, false);
    let control_plane: Vec<NodeName> = plan
        .nodes
        .iter()
        .filter(|n| n.role == crate::Role::ControlPlane && !n.removed)
        .map(|n| n.name.clone())
        .collect();
    // Nodes whose packages moved past `back_to` by a started task.
    let mut downgrade: Vec<NodeName> = Vec::new();
    for step in &plan.steps {
        if let Action::InstallPackages { version, .. } = &step.action
            && version > &back_to
        {
            for n in step.nodes.iter().filter(|n| started(&step.id, Some(n))) {
                if !downgrade.contains(n) {
                    downgrade.push(n.clone());
                }
            }
        }
    }
    let earlier = plan.steps[..apply]
        .iter()
        .enumerate()
        .filter(|(_, s)| s.point_of_no_return && touched(s))
        .filter_map(|(i, s)| Some((s.hop.unwrap_or(0), backup_before(i, true)?)))
        .collect();
    let snap = snapshot
        .as_deref()
        .unwrap_or("(no snapshot in the plan for this hop: your own backup)");
    let kubeadm_copy = "the copy kubeadm made at this hop's apply (/etc/kubernetes/tmp/kubeadm-backup-manifests-<time>, the static pod manifests only)";
    let conf = config_backup.as_deref().unwrap_or(kubeadm_copy);
    let names = |list: &[NodeName]| {
        list.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let minor = back_to.minor();
    let procedure = vec![
        format!(
            "This is disaster recovery: kubeadm does not support downgrades, and every change made through the API since the snapshot (objects, leases, secrets) is lost. Stop every workload deployment first; consider going forward (resume) instead."
        ),
        format!(
            "On every control-plane node ({}): stop the kubelet (`systemctl stop kubelet`) and move the static pod manifests out of /etc/kubernetes/manifests, so no API server or etcd runs.",
            names(&control_plane)
        ),
        format!(
            "On every control-plane node: restore etcd from {snap} with `etcdutl snapshot restore {snap} --data-dir /var/lib/etcd-restored --name <node> --initial-cluster <every member> --initial-advertise-peer-urls https://<node-ip>:2380`, then replace /var/lib/etcd with it (all members from the same snapshot)."
        ),
        format!(
            "On every control-plane node: restore /etc/kubernetes from {conf}{}: the manifests and certificates of {back_to}.",
            match &config_backup {
                Some(c) => format!(" (`cp -a -T {c} /etc/kubernetes`)"),
                None => String::new(),
            }
        ),
        format!(
            "On every node whose packages moved ({}): point the package repository back at v{minor} and install kubeadm, kubelet and kubectl at {back_to} (with `--allow-downgrades` on apt), hold them again.",
            if downgrade.is_empty() {
                "none".to_string()
            } else {
                names(&downgrade)
            }
        ),
        "On every control-plane node: start the kubelet; wait until etcd, kube-apiserver, kube-controller-manager and kube-scheduler run the old version and every node is Ready.".to_string(),
        format!(
            "Workers whose kubelet moved past {back_to}: drain each, downgrade as above, restart the kubelet, uncordon (a kubelet newer than the API server breaks the skew policy)."
        ),
        "Check: `kubectl version`, `kubectl get nodes -o wide` and `kupgrade check` show every component at or below the old version.".to_string(),
    ];
    Recovery {
        hop,
        back_to,
        hop_to,
        snapshot,
        config_backup,
        control_plane,
        downgrade,
        procedure,
        earlier,
    }
}

impl RollbackPlan {
    /// The runbook as text for a terminal (also Markdown-friendly).
    pub fn text(&self) -> String {
        let mut o = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut o, false);
        o
    }

    /// The runbook in Markdown.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = self.write_text(&mut o, true);
        o
    }

    fn write_text(&self, o: &mut dyn fmt::Write, md: bool) -> fmt::Result {
        let name = self.cluster.as_deref().unwrap_or("cluster");
        let (h1, h2, item) = match md {
            true => ("# ", "## ", "1. "),
            false => ("", "", "  "),
        };
        writeln!(
            o,
            "{h1}Rollback of {name} ({} to {}) after {} of {} steps",
            self.from, self.target, self.started, self.total
        )?;
        writeln!(o)?;
        match self.kind {
            RollbackKind::NothingToUndo => {
                writeln!(
                    o,
                    "Nothing to undo: the run has changed no repository, package or component yet (its backups stay where they are)."
                )?;
            }
            RollbackKind::Ordinary => {
                writeln!(
                    o,
                    "Before this hop's point of no return: these ordinary steps put every repository and package the hop moved back (safe to run again)."
                )?;
                writeln!(o)?;
                writeln!(o, "{h2}Steps")?;
                for (i, step) in self.steps.iter().enumerate() {
                    let nodes = step
                        .nodes
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    writeln!(
                        o,
                        "{}{}. {} on {nodes}: {}",
                        if md { "" } else { item },
                        i + 1,
                        step.action.describe(),
                        step.reason
                    )?;
                    for c in &step.commands {
                        for spec in &c.commands {
                            let fence = if md { "`" } else { "" };
                            writeln!(o, "{item}   {}: {fence}{}{fence}", c.os, spec)?;
                        }
                    }
                }
                if let Some(r) = &self.recovery {
                    writeln!(o)?;
                    writeln!(
                        o,
                        "{h2}Further back\n{item}Hop {} (to {}) passed its point of no return: going back to {} is disaster recovery from {} (see `apply --rollback-plan` on a journal stopped in that hop for the procedure).",
                        r.hop + 1,
                        r.hop_to,
                        r.back_to,
                        r.snapshot.as_deref().unwrap_or("your own etcd backup")
                    )?;
                }
            }
            RollbackKind::DisasterRecovery => {
                let Some(r) = &self.recovery else {
                    return Ok(());
                };
                writeln!(
                    o,
                    "DISASTER RECOVERY: hop {} (to {}) passed its point of no return (`kubeadm upgrade apply`). Going back to {} means restoring etcd and /etc/kubernetes; kupgrade does not run this.",
                    r.hop + 1,
                    r.hop_to,
                    r.back_to
                )?;
                writeln!(o)?;
                writeln!(
                    o,
                    "{h2}Files\n{item}etcd snapshot: {}\n{item}/etc/kubernetes copy: {}",
                    r.snapshot.as_deref().unwrap_or("none in the plan"),
                    r.config_backup
                        .as_deref()
                        .unwrap_or("none in the plan since the previous hop (kubeadm's own copy of the manifests, see below)")
                )?;
                writeln!(o)?;
                writeln!(o, "{h2}Procedure")?;
                for (i, p) in r.procedure.iter().enumerate() {
                    writeln!(o, "{}{}. {p}", if md { "" } else { item }, i + 1)?;
                }
                if !r.earlier.is_empty() {
                    writeln!(o)?;
                    writeln!(o, "{h2}Further back")?;
                    for (hop, snap) in &r.earlier {
                        writeln!(o, "{item}before hop {}: {snap}", hop + 1)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The runbook as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a rollback plan serializes") + "\n"
    }

    /// The runbook as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a rollback plan serializes")
    }
}
