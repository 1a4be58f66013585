//! Incremental policy checking: after each simulated step, re-check only what it changed.
//!
//! This relies on the contract documented on [`SkewPolicy`]: `check_cluster` depends only on
//! the control-plane nodes and the cluster-wide fields (add-ons, etcd, the operators'
//! kubectl), `check_node` only on its node's versions, roles and labels, the [`Summary`] and
//! the add-ons, and neither on whether a node is cordoned. So:
//!
//! - a step that changes versions on worker nodes re-runs `check_node` for the classes those
//!   nodes are in now (see `fleet.rs`), once per class until the summary or the add-ons change;
//! - a step that only cordons or uncordons re-runs nothing;
//! - a step that changes a control-plane node also re-runs `check_cluster`, and `check_node`
//!   for every class when the summary (the oldest and newest API server) changed;
//! - a step that changes the operators' kubectl re-runs `check_cluster`;
//! - a step that changes the add-ons re-runs everything.
//!
//! With violations tolerated at the start (tolerance is per node), nodes are judged one by
//! one instead.
use std::collections::{HashMap, HashSet};

use crate::skew::{Context, Severity, SkewPolicy, SmolStr, Summary, Violation};
use crate::{Component, NodeName};

use super::fleet::Fleet;
use super::simulate::Effect;

type Key = (SmolStr, Component, Option<NodeName>);

fn key(v: &Violation) -> Key {
    (v.rule.clone(), v.component, v.node.clone())
}

/// Violations present at the start that the caller chose to tolerate. They may persist but
/// never come back once gone, and nothing new may appear.
#[derive(Default)]
struct Tolerated {
    cluster: HashSet<Key>,
    nodes: HashMap<NodeName, HashSet<Key>>,
}

pub(crate) struct Checker<'a> {
    policy: &'a dyn SkewPolicy,
    summary: Summary,
    /// With tolerated violations every node is judged on its own (tolerance is per node);
    /// without, one node per class.
    tolerated: Option<Tolerated>,
    /// Per class number: the generation of the class judged and whether its nodes pass under
    /// the current summary and add-ons (`None`: not judged since they last changed).
    passes: Vec<Option<(u32, bool)>>,
    buf: Vec<Violation>,
    /// The rule whose violations are accepted while a transient window is open (none
    /// outside one); every other rule is checked as usual.
    accepted: Option<SmolStr>,
}

impl<'a> Checker<'a> {
    /// Checks the starting state in full. Without `tolerate`, any error is returned (all of
    /// them, node by node); with it, the errors found become the tolerated set.
    pub(crate) fn start(
        policy: &'a dyn SkewPolicy,
        fleet: &Fleet,
        tolerate: bool,
    ) -> Result<Self, Vec<Violation>> {
        let summary = fleet.summary();
        let cx = Context {
            state: fleet.shell(),
            summary: &summary,
        };
        let mut checker = Checker {
            policy,
            summary: summary.clone(),
            tolerated: None,
            passes: Vec::new(),
            buf: Vec::new(),
            accepted: None,
        };
        // One check per class; only the nodes of failing classes are judged one by one.
        policy.check_cluster(&cx, &mut checker.buf);
        let mut cluster: Vec<Violation> = checker
            .buf
            .drain(..)
            .filter(|v| v.severity == Severity::Error)
            .collect();
        let mut failing = vec![false; fleet.class_count()];
        for (k, class) in fleet.present() {
            failing[k as usize] = checker.first_error(&cx, &class.rep).is_some();
        }
        if cluster.is_empty() && !failing.contains(&true) {
            return Ok(checker);
        }
        let mut tolerated = Tolerated {
            cluster: cluster.iter().map(key).collect(),
            nodes: HashMap::new(),
        };
        let mut all = std::mem::take(&mut cluster);
        for i in 0..fleet.len() {
            if !failing[fleet.class_of(i) as usize] {
                continue;
            }
            let node = fleet.node_at(i);
            policy.check_node(&cx, &node, &mut checker.buf);
            for v in checker.buf.drain(..) {
                if v.severity == Severity::Error {
                    tolerated
                        .nodes
                        .entry(node.name.clone())
                        .or_default()
                        .insert(key(&v));
                    all.push(v);
                }
            }
        }
        if all.is_empty() {
            // A policy that failed a class but no member of it (against its contract): judge
            // node by node from here on.
            checker.tolerated = Some(tolerated);
            return Ok(checker);
        }
        if !tolerate {
            return Err(all);
        }
        checker.tolerated = Some(tolerated);
        Ok(checker)
    }

    /// True while some tolerated violation from the start persists.
    pub(crate) fn has_tolerated(&self) -> bool {
        self.tolerated
            .as_ref()
            .is_some_and(|t| !t.cluster.is_empty() || t.nodes.values().any(|s| !s.is_empty()))
    }

    fn first_error(&mut self, cx: &Context<'_>, node: &crate::Node) -> Option<Violation> {
        self.policy.check_node(cx, node, &mut self.buf);
        strip(&mut self.buf, self.accepted.as_ref());
        take_first_error(&mut self.buf)
    }

    /// Opens a transient window: from now on violations of `rule` are accepted (and every
    /// verdict kept so far is forgotten), then the whole state is checked again.
    pub(crate) fn open_window(&mut self, fleet: &Fleet, rule: &str) -> Result<(), Box<Violation>> {
        self.accepted = Some(SmolStr::new(rule));
        self.passes.clear();
        self.after(fleet, everything(), &[])
    }

    /// While a window is open: the first violation of the accepted rule the state still
    /// has, checked in full (the cluster, and one node per class); `None` when it holds again.
    pub(crate) fn accepted_violation(&mut self, fleet: &Fleet) -> Option<Violation> {
        let rule = self.accepted.clone()?;
        let summary = fleet.summary();
        let cx = Context {
            state: fleet.shell(),
            summary: &summary,
        };
        let is_it = |v: &Violation| v.severity == Severity::Error && v.rule == rule;
        self.policy.check_cluster(&cx, &mut self.buf);
        let mut found = self.buf.drain(..).find(is_it);
        for (_, class) in fleet.present() {
            if found.is_some() {
                break;
            }
            self.policy.check_node(&cx, &class.rep, &mut self.buf);
            found = self.buf.drain(..).find(is_it);
        }
        self.buf.clear();
        found
    }

    /// Closes the window: the accepted rule is checked again like every other, on the whole
    /// state.
    pub(crate) fn close_window(&mut self, fleet: &Fleet) -> Result<(), Box<Violation>> {
        self.accepted = None;
        self.passes.clear();
        self.after(fleet, everything(), &[])
    }

    /// Re-checks what `effect` says a step changed; `at` are the positions of the nodes it
    /// changed or added. Returns the first new error.
    pub(crate) fn after(
        &mut self,
        fleet: &Fleet,
        effect: Effect,
        at: &[usize],
    ) -> Result<(), Box<Violation>> {
        let mut all_nodes = effect.addons;
        let cluster = effect.control_plane || effect.addons || effect.cluster_fields;
        if effect.control_plane || effect.addons {
            let summary = fleet.summary();
            all_nodes |= summary != self.summary;
            self.summary = summary;
        }
        if all_nodes {
            self.passes.clear();
        }
        let summary = self.summary.clone();
        let cx = Context {
            state: fleet.shell(),
            summary: &summary,
        };
        if self.tolerated.is_some() {
            return self.after_node_by_node(fleet, &cx, cluster, all_nodes, effect, at);
        }
        if cluster {
            self.policy.check_cluster(&cx, &mut self.buf);
            strip(&mut self.buf, self.accepted.as_ref());
            if let Some(v) = take_first_error(&mut self.buf) {
                return Err(Box::new(v));
            }
        }
        if self.passes.len() < fleet.class_count() {
            self.passes.resize(fleet.class_count(), None);
        }
        if all_nodes {
            let present: Vec<u32> = fleet.present().map(|(k, _)| k).collect();
            for k in present {
                self.judge_class(fleet, &cx, k, None)?;
            }
        } else if effect.nodes {
            for &(k, i) in fleet.touched() {
                self.judge_class(fleet, &cx, k, Some(i))?;
            }
        }
        Ok(())
    }

    /// Judges class `k` (once while the summary and add-ons stay put); a failure is reported
    /// on a member, the one at `at` when given.
    fn judge_class(
        &mut self,
        fleet: &Fleet,
        cx: &Context<'_>,
        k: u32,
        at: Option<usize>,
    ) -> Result<(), Box<Violation>> {
        let class = fleet.class(k);
        if self.passes[k as usize] == Some((class.generation, true)) {
            return Ok(());
        }
        let pass = self.first_error(cx, &class.rep).is_none();
        self.passes[k as usize] = Some((class.generation, pass));
        if pass {
            return Ok(());
        }
        let at = at.or_else(|| (0..fleet.len()).find(|&i| fleet.class_of(i) == k));
        let v = at.and_then(|i| self.first_error(cx, &fleet.node_at(i)));
        Err(Box::new(v.unwrap_or_else(|| {
            Violation::new(
                "internal",
                Severity::Error,
                Component::Kubelet,
                crate::KubeVersion::new(0, 0, 0),
                SmolStr::default(),
                "a class of nodes failed but no member reproduces it",
            )
        })))
    }

    /// With tolerated violations: every changed node (or every node) on its own.
    fn after_node_by_node(
        &mut self,
        fleet: &Fleet,
        cx: &Context<'_>,
        cluster: bool,
        all_nodes: bool,
        effect: Effect,
        at: &[usize],
    ) -> Result<(), Box<Violation>> {
        let Checker {
            policy,
            tolerated,
            buf,
            accepted,
            ..
        } = self;
        if cluster {
            policy.check_cluster(cx, buf);
            strip(buf, accepted.as_ref());
            let r = judge(tolerated, None, buf);
            buf.clear();
            r?;
        }
        let mut check = |i: usize| {
            let node = fleet.node_at(i);
            policy.check_node(cx, &node, buf);
            strip(buf, accepted.as_ref());
            let r = judge(tolerated, Some(&node.name), buf);
            buf.clear();
            r
        };
        if all_nodes {
            for i in 0..fleet.len() {
                check(i)?;
            }
        } else if effect.nodes {
            for &i in at {
                check(i)?;
            }
        }
        Ok(())
    }
}

/// Every part of the state changed: checks it all again.
fn everything() -> Effect {
    Effect {
        nodes: true,
        control_plane: true,
        addons: true,
        cluster_fields: true,
        ..Effect::default()
    }
}

/// Drops the violations of the `accepted` rule from `found`.
fn strip(found: &mut Vec<Violation>, accepted: Option<&SmolStr>) {
    if let Some(rule) = accepted {
        found.retain(|v| v.rule != *rule);
    }
}

/// The first error among `found`, which is emptied.
fn take_first_error(found: &mut Vec<Violation>) -> Option<Violation> {
    let at = found.iter().position(|v| v.severity == Severity::Error);
    let bad = at.map(|i| found.swap_remove(i));
    found.clear();
    bad
}

/// Judges the full set of violations of one scope (the cluster, or one node).
fn judge(
    tolerated: &mut Option<Tolerated>,
    node: Option<&NodeName>,
    found: &[Violation],
) -> Result<(), Box<Violation>> {
    let Some(t) = tolerated else {
        return match found.iter().find(|v| v.severity == Severity::Error) {
            Some(v) => Err(Box::new(v.clone())),
            None => Ok(()),
        };
    };
    let mut errors = found
        .iter()
        .filter(|v| v.severity == Severity::Error)
        .peekable();
    let set = match node {
        None => &mut t.cluster,
        Some(n) => {
            if errors.peek().is_none() {
                t.nodes.remove(n);
                return Ok(());
            }
            match t.nodes.get_mut(n) {
                Some(set) => set,
                None => return errors.next().map_or(Ok(()), |v| Err(Box::new(v.clone()))),
            }
        }
    };
    let mut now = HashSet::new();
    for v in errors {
        let k = key(v);
        if !set.contains(&k) {
            return Err(Box::new(v.clone()));
        }
        now.insert(k);
    }
    set.retain(|k| now.contains(k));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::action::Action;
    use crate::plan::step::{NodeList, Package, Phase, Step, StepId};
    use crate::skew::{LabelKeys, UpstreamPolicy};
    use crate::{ClusterState, KubeVersion, Node};

    fn v(text: &str) -> KubeVersion {
        text.parse().unwrap()
    }

    fn install_kubelet(node: &str, version: &str) -> Step {
        Step {
            id: StepId(format!("{version}/{node}/install")),
            hop: None,
            phase: Phase::Workers,
            nodes: NodeList::new(vec![node.parse().unwrap()]),
            action: Action::InstallPackages {
                packages: vec![Package::Kubelet],
                version: v(version),
            },
            commands: Vec::new(),
            depends_on: Vec::new(),
            idempotent: true,
            point_of_no_return: false,
            pre: Vec::new(),
            post: Vec::new(),
            duration_seconds: 0,
            reason: String::new(),
        }
    }

    /// A class number that stands for other content now (a node's own class changed, or a
    /// freed number used again) is judged again: a verdict kept for the content it had
    /// before must not pass the new one.
    #[test]
    fn a_class_number_with_new_content_is_judged_again() {
        let mut cp = Node::control_plane("cp-1", v("v1.31.4"), None).unwrap();
        cp.labels
            .insert("kubernetes.io/hostname".into(), "cp-1".into());
        let mut w = Node::worker("w-1", v("v1.31.4")).unwrap();
        w.labels
            .insert("kubernetes.io/hostname".into(), "w-1".into());
        let state = ClusterState::new(vec![cp, w]);
        // Every label counting: each node is a class of its own.
        let mut fleet = Fleet::new(&state, crate::ZONE_LABEL, false, &LabelKeys::All);
        let policy = UpstreamPolicy::new();
        let mut checker = Checker::start(&policy, &fleet, false).unwrap();
        let w = fleet.position(&"w-1".parse().unwrap()).unwrap();
        let mut step = |fleet: &mut Fleet, version: &str| {
            let effect = fleet
                .apply_at(&install_kubelet("w-1", version), &[w])
                .unwrap();
            let class = fleet.class_of(w);
            (checker.after(fleet, effect, &[w]), class)
        };
        let (ok, first) = step(&mut fleet, "v1.30.1");
        assert!(ok.is_ok());
        let (ok, _) = step(&mut fleet, "v1.29.1");
        assert!(ok.is_ok());
        // Four minors behind: the kubelet is too old, in the class number judged above.
        let (bad, reused) = step(&mut fleet, "v1.27.1");
        assert_eq!(reused, first, "the node's own class changes in place");
        assert!(ok_or_rule(bad).contains("kubelet"));
    }

    /// The same with a class of two nodes: its number is freed when both move on, and used
    /// again for the next class made.
    #[test]
    fn a_freed_class_number_used_again_is_judged_again() {
        let cp = Node::control_plane("cp-1", v("v1.31.4"), None).unwrap();
        let workers = ["w-1", "w-2"].map(|n| Node::worker(n, v("v1.31.4")).unwrap());
        let mut nodes = vec![cp];
        nodes.extend(workers);
        let state = ClusterState::new(nodes);
        let mut fleet = Fleet::new(&state, crate::ZONE_LABEL, false, &LabelKeys::All);
        let policy = UpstreamPolicy::new();
        let mut checker = Checker::start(&policy, &fleet, false).unwrap();
        let at: Vec<usize> = ["w-1", "w-2"]
            .map(|n| fleet.position(&n.parse().unwrap()).unwrap())
            .to_vec();
        let mut step = |fleet: &mut Fleet, version: &str| {
            let mut install = install_kubelet("w-1", version);
            install.nodes = NodeList::new(vec!["w-1".parse().unwrap(), "w-2".parse().unwrap()]);
            let effect = fleet.apply_at(&install, &at).unwrap();
            let class = fleet.class_of(at[0]);
            assert_eq!(class, fleet.class_of(at[1]));
            (checker.after(fleet, effect, &at), class)
        };
        let (ok, first) = step(&mut fleet, "v1.30.1");
        assert!(ok.is_ok());
        let (ok, second) = step(&mut fleet, "v1.29.1");
        assert!(ok.is_ok());
        assert_ne!(second, first);
        let (bad, reused) = step(&mut fleet, "v1.27.1");
        assert_eq!(reused, first, "the freed class number is used again");
        assert!(ok_or_rule(bad).contains("kubelet"));
    }

    fn ok_or_rule(r: Result<(), Box<Violation>>) -> String {
        match r {
            Ok(()) => "passed".into(),
            Err(v) => format!("{} on {:?}", v.rule, v.node),
        }
    }
}
