//! Workers: which move before a hop or at the end, grouped by the steps they need, in
//! batches.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use crate::skew::{Context, Severity, Summary};
use crate::{ClusterState, KubeVersion, Minor, Node, OsFamily};

use super::Planner;
use super::names::{replacement_suffix, replacement_with};
use super::steps::Batch;
use crate::plan::batch::{self, Item};
use crate::plan::step::Phase;
use crate::plan::{AddonsAt, Hop, PlanError, Strategy, WorkerPacing};

/// A worker to batch: its position and OS family.
type Worker = Item<(usize, OsFamily)>;

/// What the nodes of a batch have in common: everything that decides their steps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Head {
    /// How far the nodes got already (an interrupted plan): 0 cordoned, 1 kubeadm done but
    /// not cordoned yet, 2 untouched. Nodes under way go first, so that planning again
    /// mid-way continues with them.
    pub(super) progress: u8,
    /// Cordoned nodes (an interrupted upgrade) go first.
    pub(super) cordoned: bool,
    /// Replace strategy: the replacement already exists.
    pub(super) has_replacement: bool,
    pub(super) kubelet: Option<KubeVersion>,
    pub(super) kubeadm: Option<KubeVersion>,
}

impl Head {
    /// The head of `n`'s class, its nodes cordoned or not.
    pub(super) fn of(n: &Node, cordoned: bool) -> Self {
        Head {
            progress: if cordoned { 0 } else { 2 },
            cordoned,
            has_replacement: false,
            kubelet: n.kubelet().map(KubeVersion::release),
            kubeadm: n.versions.kubeadm.as_ref().map(KubeVersion::release),
        }
    }
    /// The minor the nodes' package repository points at: the minor of their kubeadm (or
    /// kubelet). Derived from the state alone, so planning again agrees with the plan.
    pub(super) fn repo(&self) -> Minor {
        self.kubeadm
            .as_ref()
            .or(self.kubelet.as_ref())
            .map_or(Minor::new(0, 0), KubeVersion::minor)
    }
    fn order(&self) -> (u8, bool, &Option<KubeVersion>, &Option<KubeVersion>) {
        (
            self.progress,
            !self.has_replacement,
            &self.kubelet,
            &self.kubeadm,
        )
    }
}

/// Why a group of workers moves now.
#[derive(Clone)]
pub(super) enum Why {
    EveryHop { next: KubeVersion },
    CatchUp { next: KubeVersion, rule: String },
    Final { deferred: bool },
}

impl Planner<'_, '_> {
    /// Before the control plane moves to `hop.to`: finish cordoned workers; then, kubeadm's
    /// way, bring every worker to the control plane's version, or (deferred) only those the
    /// policy would no longer allow once it has moved.
    ///
    /// Deciding this before a hop (rather than after the previous one) keeps the decision a
    /// function of the state alone, so that planning again mid-way agrees with the plan.
    pub(super) fn before_hop(&mut self, hop: &Hop) -> Result<(), PlanError> {
        let Some(now) = self.sim.summary().apiserver_min.map(|v| v.release()) else {
            return Ok(());
        };
        // Add-ons and control-plane kubelets left behind (or cordoned mid-window) catch up
        // first.
        self.ensure_addons(&now)?;
        self.control_plane_kubelets(&now)?;
        if self.opts().pacing() == WorkerPacing::EveryHop {
            return self.workers_to(
                &now,
                |_| true,
                Why::EveryHop {
                    next: hop.to.clone(),
                },
            );
        }
        let (failing, rule) = self.probe(hop);
        self.workers_to(
            &now,
            |k| failing[k as usize],
            Why::CatchUp {
                next: hop.to.clone(),
                rule: rule.unwrap_or_else(|| "in flight".to_string()),
            },
        )
    }

    /// The classes of workers that would break the policy while or after the control plane
    /// moves to `hop.to` (indexed by class), and the rule the first of those workers by name
    /// would break.
    fn probe(&self, hop: &Hop) -> (Vec<bool>, Option<String>) {
        let v = &hop.to;
        let state = self.sim.shell();
        let mut cp: Vec<Node> = self.sim.control_plane().to_vec();
        cp.sort_by(|a, b| a.name.cmp(&b.name));
        let moved = self.addons_for(v);
        let mut addons_moved = state.addons.clone();
        if let Some(kp) = &moved.kube_proxy {
            addons_moved.kube_proxy = Some(kp.clone());
        }
        if let Some(dns) = &moved.coredns {
            addons_moved.coredns = Some(dns.clone());
        }
        let mut mid = ClusterState {
            name: None,
            etcd: state.etcd.clone(),
            addons: if hop.addons_at == AddonsAt::Apply {
                addons_moved.clone()
            } else {
                state.addons.clone()
            },
            kubectl: state.kubectl.clone(),
            nodes: cp.clone().into(),
        };
        if let Some(first) = mid.nodes.first_mut() {
            first.versions.kube_apiserver = Some(v.clone());
        }
        let mut end = ClusterState {
            addons: addons_moved,
            kubectl: state.kubectl.as_ref().map(|k| k.clone().max(v.clone())),
            nodes: cp.into(),
            ..mid.clone()
        };
        for n in &mut end.nodes {
            n.versions.kube_apiserver = Some(v.clone());
        }
        let probes = [(Summary::of(&mid), &mid), (Summary::of(&end), &end)];
        let fleet = &self.sim;
        let mut rules: Vec<Option<String>> = vec![None; fleet.class_count()];
        let mut buf = Vec::new();
        for (k, class) in fleet.present() {
            if class.rep.is_control_plane() {
                continue;
            }
            for (summary, st) in &probes {
                let cx = Context { state: st, summary };
                self.req.policy.check_node(&cx, &class.rep, &mut buf);
                let bad = buf.iter().find(|x| x.severity == Severity::Error);
                if let Some(bad) = bad {
                    rules[k as usize] = Some(bad.rule.to_string());
                }
                buf.clear();
                if rules[k as usize].is_some() {
                    break;
                }
            }
        }
        let first = (0..fleet.len())
            .filter(|&i| rules[fleet.class_of(i) as usize].is_some())
            .min_by(|&a, &b| fleet.name(a).cmp(fleet.name(b)));
        let rule = first.and_then(|i| rules[fleet.class_of(i) as usize].clone());
        (rules.iter().map(Option::is_some).collect(), rule)
    }

    /// Moves the workers `select` picks (and every cordoned one) that run older than `goal`
    /// to `goal`, group by group (nodes that need the same steps), in batches.
    pub(super) fn workers_to(
        &mut self,
        goal: &KubeVersion,
        select: impl Fn(u32) -> bool,
        why: Why,
    ) -> Result<(), PlanError> {
        let replace = self.opts().strategy == Strategy::Replace;
        let max_per_zone = self.opts().max_per_zone;
        let totals = &self.zone_totals;
        let fleet = &self.sim;
        let zone_names = fleet.zone_names();
        let mut work: Vec<(Head, Vec<Batch>)> = Vec::new();
        {
            // Replacements at `goal` that exist already: nodes whose name carries its suffix
            // (none, unless a run was interrupted mid-way).
            let suffix = replacement_suffix(goal);
            let names: HashSet<&str> = if replace {
                (0..fleet.len())
                    .map(|i| fleet.name(i).as_str())
                    .filter(|n| n.contains(suffix.as_str()))
                    .collect()
            } else {
                HashSet::new()
            };
            let mut groups: Vec<(Head, Vec<Worker>)> = Vec::new();
            let mut index: HashMap<Head, usize> = HashMap::new();
            // Per class: whether its kubelet is behind `goal` and picked (None: no kubelet),
            // and (in place) the group of its nodes, cordoned or not.
            const UNSEEN: u8 = 0;
            const NO_KUBELET: u8 = 1;
            const PICKED: u8 = 2;
            const BEHIND: u8 = 3;
            const CURRENT: u8 = 4;
            let mut verdict = vec![UNSEEN; fleet.class_count()];
            let mut group_of = vec![[usize::MAX; 2]; fleet.class_count()];
            let mut cp = fleet.control_plane_positions().iter().copied().peekable();
            for at in 0..fleet.len() {
                // Control-plane positions come in order: no need to look at the node's roles.
                if cp.peek() == Some(&at) {
                    cp.next();
                    continue;
                }
                let k = fleet.class_of(at);
                let class = fleet.class(k);
                let node = &class.rep;
                if verdict[k as usize] == UNSEEN {
                    verdict[k as usize] = match node.kubelet() {
                        None => NO_KUBELET,
                        Some(kubelet) if kubelet.release() < *goal => {
                            if select(k) {
                                PICKED
                            } else {
                                BEHIND
                            }
                        }
                        Some(_) => CURRENT,
                    };
                }
                let v = verdict[k as usize];
                if v == NO_KUBELET {
                    continue;
                }
                let behind = v != CURRENT;
                let cordoned = fleet.is_cordoned(at);
                let name = fleet.name(at);
                let has_replacement = replace
                    && !names.is_empty()
                    && replacement_with(name, &suffix).is_some_and(|r| names.contains(r.as_str()));
                if !(cordoned || has_replacement || v == PICKED) {
                    continue;
                }
                if replace && !behind && !cordoned {
                    continue;
                }
                let item = Item {
                    zone: class.zone,
                    node: (at, node.os.family),
                };
                if !replace && group_of[k as usize][usize::from(cordoned)] != usize::MAX {
                    groups[group_of[k as usize][usize::from(cordoned)]]
                        .1
                        .push(item);
                    continue;
                }
                let head = if replace {
                    Head {
                        progress: u8::from(!cordoned),
                        cordoned,
                        has_replacement,
                        kubelet: None,
                        kubeadm: None,
                    }
                } else {
                    let mut head = Head::of(node, cordoned);
                    if !head.cordoned && head.kubeadm.as_ref().is_some_and(|k| k >= goal) {
                        head.progress = 1;
                    }
                    head
                };
                let g = *index.entry(head.clone()).or_insert_with(|| {
                    groups.push((head, Vec::new()));
                    groups.len() - 1
                });
                if !replace {
                    group_of[k as usize][usize::from(cordoned)] = g;
                }
                groups[g].1.push(item);
            }
            groups.sort_by(|a, b| a.0.order().cmp(&b.0.order()));
            let cap = |z: u32| match max_per_zone {
                Some(b) => b.of(totals
                    .get(zone_names.get(z as usize).unwrap_or(&None))
                    .copied()
                    .unwrap_or(1)),
                None => usize::MAX,
            };
            for (head, mut items) in groups {
                // The state is in zone order, unless replacements moved nodes.
                if replace {
                    batch::sort_by_zone(&mut items, zone_names, |a, b| {
                        fleet.name(a.0).cmp(fleet.name(b.0))
                    });
                }
                // Names now: replacing moves nodes as the windows go.
                let batches = batch::batches(items, self.batch_size, cap)
                    .into_iter()
                    .map(|members| Batch::at(fleet, members, self.positions))
                    .collect();
                work.push((head, batches));
            }
        }
        let count: usize = work.iter().map(|w| w.1.len()).sum();
        let mut i = 0;
        for (head, batches) in work {
            for batch in batches {
                i += 1;
                let why = self.why_text(&why, goal, i, count, batch.nodes.len());
                if replace {
                    self.replace_window(&batch, &head, goal, why)?;
                } else {
                    self.in_place_window(Phase::Workers, &batch, head.clone(), goal, false, why)?;
                }
            }
        }
        Ok(())
    }

    fn why_text(&self, why: &Why, goal: &KubeVersion, i: usize, n: usize, size: usize) -> String {
        let what = match why {
            Why::EveryHop { next } => format!(
                "workers follow the control plane to {goal} before it moves on to {next}, one minor at a time (kubeadm's way)"
            ),
            Why::CatchUp { next, rule } if rule != "in flight" => format!(
                "the policy would not allow these kubelets once the control plane moves to {next} ({rule}): they catch up to {goal} first"
            ),
            Why::CatchUp { .. } => {
                format!("these nodes were cordoned mid-upgrade: they finish at {goal} first")
            }
            Why::Final { deferred: true } => format!(
                "workers move to {goal}, deferred as long as the policy allowed (fewest drains)"
            ),
            Why::Final { deferred: false } => format!("workers move to {goal}"),
        };
        format!(
            "{what}; batch {i} of {n} ({size} node{} at once)",
            if size == 1 { "" } else { "s" }
        )
    }
}
