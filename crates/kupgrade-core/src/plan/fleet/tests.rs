use proptest::prelude::*;

use super::*;
use crate::plan::{PlanOptions, PlanRequest, Simulation, Strategy, Target, WorkerPacing};
use crate::skew::{Context, SkewPolicy, UpstreamPolicy, Violation};
use crate::testing;

/// A state's nodes by name, without what the planner's model leaves out (SSH targets).
fn by_name(state: &ClusterState) -> Vec<Node> {
    let mut nodes: Vec<Node> = state.nodes.iter().cloned().collect();
    for n in &mut nodes {
        n.ssh = None;
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    nodes
}

/// The upstream policy without its label declaration: every label counts.
struct Opaque(UpstreamPolicy);

impl SkewPolicy for Opaque {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn check_cluster(&self, cx: &Context<'_>, out: &mut Vec<Violation>) {
        self.0.check_cluster(cx, out)
    }
    fn check_node(&self, cx: &Context<'_>, node: &Node, out: &mut Vec<Violation>) {
        self.0.check_node(cx, node, out)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Every step of a plan leaves the class model and the node-by-node simulation in the
    /// same state: the same nodes with the same versions, labels, cordons and readiness,
    /// the same cluster-wide fields, and the same summary; a step whose change is not
    /// modelled changes neither. With a label of its own on every node and every label
    /// counting, each node is a class of its own, and classes left without members are
    /// used again.
    #[test]
    fn the_class_model_agrees_with_the_simulation(
        state in testing::cluster_state_satisfying(UpstreamPolicy::new(), 1..=12),
        hops in 0u64..=3,
        replace in any::<bool>(),
        deferred in any::<bool>(),
        all_labels in any::<bool>(),
        hostnames in any::<bool>(),
    ) {
        let mut state = state;
        if hostnames {
            for node in state.nodes.iter_mut() {
                let name = node.name.to_string();
                node.labels.insert("kubernetes.io/hostname".into(), name);
            }
        }
        let minor = state.apiserver_max().expect("a control plane").minor();
        let target = Target::Minor(crate::Minor::new(minor.major(), minor.minor() + hops));
        let options = PlanOptions {
            strategy: if replace { Strategy::Replace } else { Strategy::InPlace },
            batch: crate::plan::BatchSize::Count(2),
            allow_unsupported_target: true,
            worker_pacing: Some(if deferred { WorkerPacing::Deferred } else { WorkerPacing::EveryHop }),
            ..PlanOptions::default()
        };
        let request = || {
            PlanRequest::new(target.clone(), jiff::civil::date(2026, 11, 25)).options(options.clone())
        };
        let Ok(plan) = request().plan(&state) else {
            return Ok(());
        };
        // Which labels count changes how nodes are grouped, never the plan.
        let opaque = Opaque(UpstreamPolicy::new());
        let again = request().policy(&opaque).plan(&state).expect("the same plan");
        prop_assert_eq!(
            crate::plan::render::to_json(&plan),
            crate::plan::render::to_json(&again)
        );
        let mut sim = Simulation::new(state.clone());
        // Every label counting, or none (as for the upstream policy): nodes stay whole.
        let keys = if all_labels { LabelKeys::All } else { LabelKeys::none() };
        let mut fleet = Fleet::new(&state, crate::cluster::ZONE_LABEL, replace, &keys);
        prop_assert_eq!(by_name(&fleet.to_state()), by_name(sim.state()));
        for step in &plan.steps {
            let e = sim.apply(step).expect("the plan replays");
            let f = fleet.apply(step).expect("the plan replays on classes");
            // A change that is not modelled changes neither model (the planner neither
            // simulates nor checks it again).
            if !step.action.change().is_modelled() {
                prop_assert!(e.is_none() && f.is_none(), "step {} changed a model", step.id);
            }
            let (a, b) = (fleet.to_state(), sim.state());
            prop_assert_eq!(by_name(&a), by_name(b), "after step {}", step.id);
            prop_assert_eq!(&a.addons, &b.addons);
            prop_assert_eq!(&a.kubectl, &b.kubectl);
            prop_assert_eq!(fleet.cordoned(), sim.cordoned());
            let (s, t) = (fleet.summary(), sim.summary());
            prop_assert_eq!((s.apiserver_min, s.apiserver_max), (t.apiserver_min, t.apiserver_max));
            prop_assert_eq!(s.control_plane.len(), t.control_plane.len());
            let counted: usize = fleet.present().map(|(_, c)| c.count).sum();
            prop_assert_eq!(counted, fleet.len());
            // No class is kept twice: live classes are distinct.
            let live: Vec<&Class> = fleet.present().map(|(_, c)| c).collect();
            for (i, c) in live.iter().enumerate() {
                for d in &live[i + 1..] {
                    prop_assert!(!(c.labels == d.labels && same(c, &d.rep, d.labels)), "a class is kept twice");
                }
            }
        }
    }
}
