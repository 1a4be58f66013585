//! Putting hooks into a plan: one hook step at each place a hook names, with the place's
//! facts in its environment.
//!
//! Places: the whole upgrade (its first and last step), each hop and each batch (as gates
//! see them, see `gate::insert::places`: a batch's hooks go around its snapshot and gate
//! steps, so `after: batch` runs once the batch's gates have passed), and each step of a
//! kind. At one spot, `before` hooks run from the widest place in (upgrade, hop, batch,
//! step) and `after` hooks from the narrowest out; hooks of one place in file order. Ids
//! are derived from the step they stand by (`v1.30.1/worker-1/hook-before-drain-notify`),
//! so they are stable for the same plan and hooks file.
use crate::plan::{Action, Executor, NodeList, OsCommands, Step, StepId, UpgradePlan};

use super::{Hook, HookPlace, HookSet, HookTarget, step_kind};
use crate::gate::GatePoint;

/// A spot hooks of `place` may take: its first and last step, id prefix, nodes.
struct Spot {
    place: HookPlace,
    start: usize,
    end: usize,
    prefix: String,
    nodes: NodeList,
}

fn rank(p: &HookPlace) -> u8 {
    match p {
        HookPlace::Upgrade => 0,
        HookPlace::Hop => 1,
        HookPlace::Batch => 2,
        HookPlace::Step(_) => 3,
    }
}

impl HookSet {
    /// Puts the hooks into `plan` (after its gates, if any: see the module documentation).
    /// The steps that followed a hook now wait for it.
    pub fn insert(&self, plan: &mut UpgradePlan) {
        if self.hooks.is_empty() || plan.steps.is_empty() {
            return;
        }
        let steps = std::mem::take(&mut plan.steps);
        let n = steps.len();
        let is_gate = |s: &Step| s.action.executor() == Executor::Gate;
        let mut spots = vec![Spot {
            place: HookPlace::Upgrade,
            start: 0,
            end: n - 1,
            prefix: format!("{}/upgrade", plan.target),
            nodes: NodeList::empty(),
        }];
        for (point, start, end, prefix) in crate::gate::insert::places(&steps) {
            let nodes = match point {
                GatePoint::Batch => steps[end].nodes.clone(),
                GatePoint::Hop => NodeList::empty(),
            };
            let (mut start, mut end) = (start, end);
            while end + 1 < n && is_gate(&steps[end + 1]) {
                end += 1;
            }
            while start > 0 && matches!(steps[start - 1].action, Action::GateBaseline { .. }) {
                start -= 1;
            }
            let place = match point {
                GatePoint::Batch => HookPlace::Batch,
                GatePoint::Hop => HookPlace::Hop,
            };
            spots.push(Spot {
                place,
                start,
                end,
                prefix,
                nodes,
            });
        }
        let wanted: Vec<&str> = (self.hooks.iter())
            .filter_map(|h| match h.when() {
                Some((_, HookPlace::Step(k))) => Some(k.as_str()),
                _ => None,
            })
            .collect();
        for (i, s) in steps.iter().enumerate() {
            if is_gate(s) || matches!(s.action, Action::Hook { .. }) {
                continue;
            }
            let kind = step_kind(&s.action.verb()).to_string();
            if !wanted.contains(&kind.as_str()) {
                continue;
            }
            let prefix = (s.id.as_str().rsplit_once('/'))
                .map_or(s.id.as_str(), |p| p.0)
                .to_string();
            spots.push(Spot {
                place: HookPlace::Step(kind),
                start: i,
                end: i,
                prefix,
                nodes: s.nodes.clone(),
            });
        }
        let mut before: Vec<Vec<(u8, Step)>> = vec![Vec::new(); n];
        let mut after: Vec<Vec<(u8, Step)>> = vec![Vec::new(); n];
        for spot in &spots {
            for hook in &self.hooks {
                let Some((when, place)) = hook.when() else {
                    continue;
                };
                if *place != spot.place {
                    continue;
                }
                let at = if when == "before" {
                    spot.start
                } else {
                    spot.end
                };
                let step = hook_step(plan, hook, when, spot, &steps[at]);
                let list = if when == "before" {
                    &mut before[at]
                } else {
                    &mut after[at]
                };
                list.push((rank(place), step));
            }
        }
        // Before a step in rank order, after it in reverse rank order (so an upgrade's hooks
        // enclose its hop's, which enclose its batch's).
        let before: Vec<Vec<Step>> = before
            .into_iter()
            .map(|mut b| {
                b.sort_by_key(|(r, _)| *r);
                b.into_iter().map(|(_, h)| h).collect()
            })
            .collect();
        let after: Vec<Vec<Step>> = after
            .into_iter()
            .map(|mut a| {
                a.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
                a.into_iter().map(|(_, h)| h).collect()
            })
            .collect();
        let out = crate::plan::splice(steps, before, after);
        plan.steps = out;
        plan.estimate.steps = plan.steps.len();
    }
}

/// The step of `hook`, `when` at `spot`, beside `anchor` (the step it runs before or after).
fn hook_step(plan: &UpgradePlan, hook: &Hook, when: &str, spot: &Spot, anchor: &Step) -> Step {
    let mut hook = hook.clone();
    let nodes = match hook.on {
        HookTarget::Nodes if !spot.nodes.is_empty() => spot.nodes.clone(),
        _ => {
            // A step without nodes of its own: the hook runs here.
            hook.on = HookTarget::Local;
            NodeList::empty()
        }
    };
    let goal = anchor.id.as_str().split('/').next().unwrap_or("");
    let names: Vec<&str> = spot.nodes.iter().map(|n| n.as_str()).collect();
    let mut env = vec![
        ("KUPGRADE_HOOK".to_string(), hook.name.clone()),
        (
            "KUPGRADE_POINT".to_string(),
            format!("{when} {}", spot.place),
        ),
        ("KUPGRADE_STEP".to_string(), anchor.id.to_string()),
        ("KUPGRADE_FROM".to_string(), plan.from.to_string()),
        ("KUPGRADE_TARGET".to_string(), plan.target.to_string()),
        ("KUPGRADE_VERSION".to_string(), goal.to_string()),
        ("KUPGRADE_NODES".to_string(), names.join(",")),
    ];
    // The hop whose version the anchor moves nodes to, counted from 1.
    if let Some(h) = plan.hops.iter().position(|h| h.to.to_string() == goal) {
        env.push(("KUPGRADE_HOP".to_string(), (h + 1).to_string()));
    }
    let commands = if nodes.is_empty() {
        Vec::new()
    } else {
        let mut oses: Vec<_> = (nodes.iter())
            .filter_map(|n| plan.node(n.as_str()).map(|p| p.os))
            .collect();
        oses.sort();
        oses.dedup();
        oses.into_iter()
            .map(|os| OsCommands {
                os,
                commands: vec![hook.spec(&env)],
                manual: None,
            })
            .collect()
    };
    let id = format!("{}/hook-{when}-{}-{}", spot.prefix, spot.place, hook.name);
    Step {
        id: StepId(id),
        hop: anchor.hop,
        phase: anchor.phase,
        nodes,
        idempotent: hook.repeatable,
        reason: format!(
            "hook {} {when} each {}{}",
            hook.name,
            spot.place,
            if hook.repeatable {
                ""
            } else {
                " (not safe to repeat)"
            }
        ),
        action: Action::Hook {
            hook: Box::new(hook),
            env,
        },
        commands,
        depends_on: Vec::new(),
        point_of_no_return: false,
        pre: Vec::new(),
        post: Vec::new(),
        duration_seconds: 0,
    }
}
