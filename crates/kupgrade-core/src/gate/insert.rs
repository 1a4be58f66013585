//! Putting gates into a plan: a gate step after each batch and/or hop, and a regression
//! gate's snapshot step before what it judges.
//!
//! A batch ends at a step that gives nodes back to the workloads or takes them away for good
//! (uncordon, remove); it starts at the first of the steps just before on the same nodes. A
//! hop is the steps whose ids name its version (`v1.30.1/...`: its control plane, then the
//! nodes catching up to it), pre-flight and the final check left out. Step ids are derived from the step a
//! gate follows (`v1.30.1/worker-1+4/gate-web`, `v1.30.1/hop/gate-web`), so they are stable
//! for the same plan and gates file.
use crate::plan::{Action, NodeList, Phase, Step, StepId, UpgradePlan};

use super::{Gate, GatePoint, GateSet};

/// Where one gate goes: after step `end`, with its snapshot before step `start`.
struct Placement<'g> {
    gate: &'g Gate,
    start: usize,
    end: usize,
    /// The id prefix (`v1.30.1/worker-1+4`, `v1.30.1/hop`).
    prefix: String,
    point: GatePoint,
}

impl GateSet {
    /// Puts the gates into `plan`: after each batch and/or hop as each gate says, with the
    /// snapshot step of a regression gate before the batch or hop it judges. The steps that
    /// followed a gate now wait for it. A plan without batches or hops (nothing to upgrade)
    /// gets no gate.
    pub fn insert(&self, plan: &mut UpgradePlan) {
        if self.gates.is_empty() {
            return;
        }
        let steps = std::mem::take(&mut plan.steps);
        let places = places(&steps);
        let mut placements: Vec<Placement<'_>> = Vec::new();
        for (point, start, end, prefix) in places {
            for gate in self.gates.iter().filter(|g| g.after.contains(&point)) {
                placements.push(Placement {
                    gate,
                    start,
                    end,
                    prefix: prefix.clone(),
                    point,
                });
            }
        }
        // Which placements start and end at each step (in file order, batches before hops).
        let mut starts: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
        let mut ends: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
        for (k, p) in placements.iter().enumerate() {
            starts[p.start].push(k);
            ends[p.end].push(k);
        }
        let mut before: Vec<Vec<Step>> = vec![Vec::new(); steps.len()];
        let mut after: Vec<Vec<Step>> = vec![Vec::new(); steps.len()];
        for (i, step) in steps.iter().enumerate() {
            for p in starts[i].iter().map(|&k| &placements[k]) {
                if let Some(regression) = &p.gate.regression {
                    before[i].push(gate_step(
                        step,
                        format!("{}/baseline-{}", p.prefix, p.gate.name),
                        Action::GateBaseline {
                            gate: p.gate.name.clone(),
                            regression: regression.clone(),
                        },
                        format!(
                            "gate {}: the workloads before the {} it judges",
                            p.gate.name,
                            point_word(p.point)
                        ),
                    ));
                }
            }
            for p in ends[i].iter().map(|&k| &placements[k]) {
                let baseline = p
                    .gate
                    .regression
                    .as_ref()
                    .map(|_| StepId(format!("{}/baseline-{}", p.prefix, p.gate.name)));
                after[i].push(gate_step(
                    step,
                    format!("{}/gate-{}", p.prefix, p.gate.name),
                    Action::Gate {
                        gate: Box::new(p.gate.clone()),
                        baseline,
                    },
                    format!(
                        "gate {} after each {}: {}",
                        p.gate.name,
                        point_word(p.point),
                        p.gate.describe()
                    ),
                ));
            }
        }
        // Each gate waits for what it follows, and what followed waits for the gate.
        let mut out = crate::plan::splice(steps, before, after);
        hold_behind_gates(&mut out);
        plan.steps = out;
        plan.estimate.steps = plan.steps.len();
    }
}

/// A gate holds the run, not only its own lane: every step listed after a gate that would not
/// wait for it otherwise (a worker batch beside the control-plane kubelets) waits for it too,
/// so no other node is drained while the workloads the gate watches are unhealthy.
fn hold_behind_gates(steps: &mut [Step]) {
    let at: foldhash::HashMap<StepId, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i))
        .collect();
    let mut gate: Option<(usize, StepId)> = None;
    for (i, step) in steps.iter_mut().enumerate() {
        if let Some((g, id)) = &gate {
            let behind = step
                .depends_on
                .iter()
                .any(|d| at.get(d).is_some_and(|&j| j >= *g));
            if !behind {
                step.depends_on.push(id.clone());
            }
        }
        if matches!(step.action, Action::Gate { .. }) {
            gate = Some((i, step.id.clone()));
        }
    }
}

/// The batches and hops of `steps`: (which, first step, last step, id prefix), batches
/// first, each in plan order. A batch ends at an uncordon or a removal with nodes and starts
/// at the first of the steps just before it on the same nodes (in the same hop); a hop is
/// the steps whose ids name its version, pre-flight and the final check left out. Pre-stage
/// steps, which run ahead on a lane of their own, start neither.
pub(crate) fn places(steps: &[Step]) -> Vec<(GatePoint, usize, usize, String)> {
    let mut places = Vec::new();
    for (end, step) in steps.iter().enumerate() {
        let batch_end =
            matches!(step.action, Action::Uncordon | Action::RemoveNodes) && !step.nodes.is_empty();
        if batch_end {
            let mut start = end;
            // Pre-stage steps on the same nodes run ahead of the batch, not in it.
            while start > 0
                && steps[start - 1].nodes == step.nodes
                && steps[start - 1].hop == step.hop
                && !steps[start - 1].action.is_prestage()
            {
                start -= 1;
            }
            let prefix = step
                .id
                .as_str()
                .rsplit_once('/')
                .map_or(step.id.as_str(), |p| p.0)
                .to_string();
            places.push((GatePoint::Batch, start, end, prefix));
        }
    }
    // Hops by goal (the first part of a step's id): a hop ends at the last step moving
    // something to its version (its control plane, then the nodes catching up), before
    // the final check; it starts at its first step after the pre-flight ones.
    let goal = |s: &Step| s.id.as_str().split('/').next().unwrap_or("").to_string();
    let counted = |s: &Step| s.phase != Phase::Verify;
    let last = steps.iter().rposition(counted);
    for (end, step) in steps.iter().enumerate() {
        if !counted(step) || step.phase == Phase::Preflight {
            continue;
        }
        let g = goal(step);
        let next = steps[end + 1..].iter().find(|s| counted(s));
        if next.is_some_and(|n| goal(n) == g) || Some(end) > last {
            continue;
        }
        let start = (steps.iter())
            .position(|s| {
                goal(s) == g && s.phase != Phase::Preflight && counted(s) && !s.action.is_prestage()
            })
            .unwrap_or(end);
        places.push((GatePoint::Hop, start, end, format!("{g}/hop")));
    }
    places
}

fn point_word(p: GatePoint) -> &'static str {
    match p {
        GatePoint::Batch => "batch",
        GatePoint::Hop => "hop",
    }
}

/// A gate's step beside `near` (same hop and phase); its dependencies are set where it is
/// put in.
fn gate_step(near: &Step, id: String, action: Action, reason: String) -> Step {
    Step {
        id: StepId(id),
        hop: near.hop,
        phase: near.phase,
        nodes: NodeList::empty(),
        action,
        commands: Vec::new(),
        depends_on: Vec::new(),
        idempotent: true,
        point_of_no_return: false,
        pre: Vec::new(),
        post: Vec::new(),
        duration_seconds: 0,
        reason,
    }
}
