//! The finished plan: its nodes, estimate, components table and notes.
use std::borrow::Cow;
use std::collections::BTreeMap;

use foldhash::{HashMap, HashSet, HashSetExt};

use crate::{ClusterState, Component, EtcdTopology, KubeVersion, Node, NodeName, OsFamily, Role};

use super::Planner;
use crate::plan::Timeline;
use crate::plan::action::Action;
use crate::plan::fleet::Fleet;
use crate::plan::packages::FIRST_PACKAGED_MINOR;
use crate::plan::{
    API_VERSION, ComponentChange, KIND, PlanError, PlanNode, UpgradePlan, VersionCount,
};

impl Planner<'_, '_> {
    /// The plan, once every step is made: `start` is the cluster it starts from, `from` the
    /// oldest API server there.
    pub(super) fn finish(
        self,
        start: &ClusterState,
        from: KubeVersion,
    ) -> Result<UpgradePlan, PlanError> {
        if self.checker.has_tolerated() {
            let errors = self.req.policy.errors(&self.sim.to_state());
            if !errors.is_empty() {
                return Err(PlanError::EndsInvalid { violations: errors });
            }
        }
        let nodes = self.plan_nodes(start);
        // The run lets as many tasks run at once as the dependencies allow: the widest step,
        // or more where steps of different nodes run side by side.
        let widest = self.steps.iter().map(|s| s.nodes.len()).max().unwrap_or(0);
        let timeline = Timeline::of(&self.steps, usize::MAX, self.sim.start_cordoned());
        let max_parallel = widest.max(timeline.max_in_flight);
        let estimate = self.costs.estimate(&self.steps, &timeline);
        let notes = notes(start, &self);
        let components = components(start, &self.sim);
        Ok(UpgradePlan {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
            cluster: start.name.clone(),
            date: self.req.date,
            policy: self.req.policy.name().to_string(),
            from,
            target: self.target.clone(),
            options: self.req.options.clone(),
            hops: self.hops.clone(),
            components,
            nodes,
            max_parallel,
            steps: self.steps,
            estimate,
            transient: self.transient,
            notes,
            warnings: Vec::new(),
        })
    }

    /// The plan's nodes by name: those of `start` (their zones as the model found them) and
    /// those the plan provisions, each marked when the plan removes it.
    fn plan_nodes(&self, start: &ClusterState) -> Vec<PlanNode> {
        let mut order: Vec<usize> = (0..start.nodes.len()).collect();
        let name = |i: &usize| &start.nodes[*i].name;
        // Strictly ascending names need neither sorting nor removing repeats.
        if !order.is_sorted_by(|a, b| name(a) < name(b)) {
            order.sort_by(|a, b| name(a).cmp(name(b)));
            order.dedup_by(|a, b| name(a) == name(b));
        }
        let mut nodes: Vec<PlanNode> = order
            .iter()
            .map(|&i| plan_node(&start.nodes[i], false, self.sim.start_zone(i).cloned()))
            .collect();
        let mut removed: HashSet<&NodeName> = HashSet::new();
        let mut provisioned = Vec::new();
        for s in &self.steps {
            match &s.action {
                Action::ProvisionNodes { templates, .. } => {
                    for (name, t) in s.nodes.iter().zip(templates) {
                        provisioned.push((name, t));
                    }
                }
                Action::RemoveNodes => removed.extend(s.nodes.iter()),
                _ => {}
            }
        }
        if !provisioned.is_empty() {
            self.add_provisioned(start, &mut nodes, provisioned);
        }
        if !removed.is_empty() {
            for n in &mut nodes {
                n.removed = removed.contains(&n.name);
            }
        }
        nodes
    }

    /// Adds the nodes the plan provisions (name, template) to `nodes`, each like its
    /// template (in `start`, or as the plan left it), and keeps `nodes` sorted by name.
    fn add_provisioned(
        &self,
        start: &ClusterState,
        nodes: &mut Vec<PlanNode>,
        provisioned: Vec<(&NodeName, &NodeName)>,
    ) {
        let zone_key = &self.req.options.zone_key;
        let by_name: HashMap<&str, &Node> =
            start.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        for (name, t) in provisioned {
            let now = by_name
                .get(t.as_str())
                .map(|&n| Cow::Borrowed(n))
                .or_else(|| self.sim.node(t).map(Cow::Owned));
            let mut p = match now {
                Some(t) => plan_node(&t, true, zone(&t, zone_key)),
                None => PlanNode {
                    name: name.clone(),
                    role: Role::Worker,
                    os: OsFamily::default(),
                    zone: None,
                    kubelet: None,
                    provisioned: true,
                    removed: false,
                },
            };
            p.name = name.clone();
            nodes.push(p);
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes.dedup_by(|a, b| a.name == b.name);
    }
}

/// The table row of node `n` (`provisioned`: a new node, whose kubelet is not shown).
fn plan_node(n: &Node, provisioned: bool, zone: Option<String>) -> PlanNode {
    PlanNode {
        name: n.name.clone(),
        role: if n.is_control_plane() {
            Role::ControlPlane
        } else {
            Role::Worker
        },
        os: n.os.family,
        zone,
        kubelet: (!provisioned).then(|| n.kubelet().cloned()).flatten(),
        provisioned,
        removed: false,
    }
}

/// The zone of `n`: its label `key`.
fn zone(n: &Node, key: &str) -> Option<String> {
    n.labels.get(key).cloned()
}

/// Counts versions; clusters run few distinct ones, so a short list beats a map.
#[derive(Default)]
struct Tally<'a> {
    seen: Vec<(&'a KubeVersion, usize)>,
    last: usize,
}

impl<'a> Tally<'a> {
    fn add(&mut self, v: &'a KubeVersion, n: usize) {
        if let Some(e) = self.seen.get_mut(self.last)
            && e.0 == v
        {
            e.1 += n;
            return;
        }
        match self.seen.iter().position(|e| e.0 == v) {
            Some(i) => {
                self.seen[i].1 += n;
                self.last = i;
            }
            None => {
                self.seen.push((v, n));
                self.last = self.seen.len() - 1;
            }
        }
    }
    fn into_map(self) -> BTreeMap<KubeVersion, usize> {
        let mut m = BTreeMap::new();
        for (v, n) in self.seen {
            *m.entry(v.clone()).or_default() += n;
        }
        m
    }
}

/// The versions of component `c` in a cluster with these fields and nodes (each with how many
/// nodes are like it).
fn count<'a>(
    state: &'a ClusterState,
    nodes: impl Iterator<Item = (&'a Node, usize)>,
    c: Component,
) -> BTreeMap<KubeVersion, usize> {
    let mut m = Tally::default();
    match c {
        Component::CoreDns => {
            if let Some(v) = &state.addons.coredns {
                m.add(v, 1);
            }
        }
        Component::KubeProxy => {
            let mut any = false;
            for (node, n) in nodes {
                if let Some(v) = &node.versions.kube_proxy {
                    m.add(v, n);
                    any = true;
                }
            }
            if !any && let Some(v) = &state.addons.kube_proxy {
                m.add(v, 1);
            }
        }
        Component::Etcd if !matches!(state.etcd, EtcdTopology::Stacked) => {
            if let Some(v) = state.etcd_version() {
                m.add(v, 1);
            }
        }
        _ => {
            for (node, n) in nodes {
                if let Some(v) = node.versions.get(c) {
                    m.add(v, n);
                }
            }
        }
    }
    m.into_map()
}

/// The components table: each component's versions at the start, and the newest at the end
/// when they changed.
fn components(start: &ClusterState, end: &Fleet) -> Vec<ComponentChange> {
    Component::ALL
        .into_iter()
        .filter_map(|c| {
            let before = count(start, end.start(), c);
            if before.is_empty() {
                return None;
            }
            let after = count(
                end.shell(),
                end.present().map(|(_, k)| (&k.rep, k.count)),
                c,
            );
            let target = (after != before)
                .then(|| after.keys().next_back().cloned())
                .flatten();
            Some(ComponentChange {
                component: c,
                current: before
                    .into_iter()
                    .map(|(version, count)| VersionCount { version, count })
                    .collect(),
                target,
            })
        })
        .collect()
}

/// What the operator should know beyond the steps.
fn notes(start: &ClusterState, p: &Planner<'_, '_>) -> Vec<String> {
    let mut notes = Vec::new();
    let has_packages = p.steps.iter().any(|s| {
        matches!(
            s.action,
            Action::InstallPackages { .. } | Action::SwitchRepository { .. }
        )
    });
    if has_packages {
        notes.push("Package commands assume the nodes install Kubernetes from pkgs.k8s.io (the legacy apt.kubernetes.io and yum.kubernetes.io repositories were removed on 2024-03-04) with the apt keyring at /etc/apt/keyrings/kubernetes-apt-keyring.gpg.".to_string());
    }
    // The model's classes at the start say whether any node qualifies; only then are the
    // nodes themselves read (for names).
    let vendor_build = |n: &Node| {
        n.versions
            .iter()
            .any(|(_, v)| v.vendor().is_some() && v.major() == 1)
    };
    let classes = || p.sim.start().map(|(n, _)| n);
    if classes().any(vendor_build) {
        let vendor: Vec<&str> = start
            .nodes
            .iter()
            .filter(|n| vendor_build(n))
            .map(|n| n.name.as_str())
            .take(5)
            .collect();
        notes.push(format!(
            "Some nodes run vendor builds (for example {}): the commands install upstream packages, which is only right for self-managed kubeadm clusters; managed offerings upgrade through their provider.",
            vendor.join(", ")
        ));
    }
    if let EtcdTopology::External { .. } = start.etcd {
        notes.push("etcd is external: kubeadm neither snapshots nor upgrades it. Back it up, and upgrade it to the version each hop's kubeadm ships, with your etcd tooling.".to_string());
    }
    if p.sim.start_cordoned() > 0 {
        let cordoned: Vec<&str> = start
            .nodes
            .iter()
            .filter(|n| n.unschedulable)
            .map(|n| n.name.as_str())
            .take(5)
            .collect();
        notes.push(format!(
            "Nodes cordoned now (for example {}) are taken as cordoned by an interrupted upgrade: the plan finishes and uncordons them first.",
            cordoned.join(", ")
        ));
    }
    if classes().any(|n| n.os.family == OsFamily::Other) {
        notes.push("Some nodes have OS family \"other\": their package steps are described, not rendered as commands.".to_string());
    }
    if p.steps.iter().any(|s| s.commands.iter().any(|c| c.manual.is_some()) && matches!(&s.action, Action::InstallPackages { version, .. } if version.minor() < FIRST_PACKAGED_MINOR)) {
        notes.push(format!(
            "pkgs.k8s.io has no packages before v{}: steps through older minors need your own repository or mirror.",
            FIRST_PACKAGED_MINOR
        ));
    }
    if classes().any(|n| n.versions.cloud_controller_manager.is_some()) {
        notes.push("kubeadm does not upgrade the cloud-controller-manager: keep it in step with the control plane yourself.".to_string());
    }
    if !p.kubeadm_checked.is_empty() {
        notes.push(
            "kubeadm's version policy is checked as kubeadm 1.29 and later decide it.".to_string(),
        );
    }
    if p.checker.has_tolerated() {
        notes.push("The cluster violated the policy at the start; those violations were tolerated until the plan removed them.".to_string());
    }
    notes
}
