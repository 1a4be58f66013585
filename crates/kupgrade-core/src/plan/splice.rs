//! Putting steps into a finished plan (gates, hooks) without breaking its dependency graph.
//!
//! The planner's steps do not form one chain: control-plane kubelets and worker batches run
//! side by side, so a step may wait for one several places before it. A step put *before*
//! step S takes over what S waited for, and S waits for it; a step put *after* step E waits for
//! E, and every later step that waited for E waits for it instead. Several steps at one place
//! form a chain, in order.
use foldhash::{HashMap, HashMapExt};

use super::step::{Step, StepId};

/// `steps` with `before[i]` put before step `i` and `after[i]` after it (each list in order);
/// the inserted steps' own `depends_on` are replaced as the [module](self) says.
pub(crate) fn splice(
    steps: Vec<Step>,
    mut before: Vec<Vec<Step>>,
    mut after: Vec<Vec<Step>>,
) -> Vec<Step> {
    let extra: usize = before.iter().chain(&after).map(Vec::len).sum();
    let mut out = Vec::with_capacity(steps.len() + extra);
    // What a step that waited for an original step waits for now.
    let mut alias: HashMap<StepId, StepId> = HashMap::new();
    for (i, mut step) in steps.into_iter().enumerate() {
        for d in &mut step.depends_on {
            if let Some(now) = alias.get(d) {
                *d = now.clone();
            }
        }
        let mut waits = std::mem::take(&mut step.depends_on);
        for mut b in before.get_mut(i).map(std::mem::take).unwrap_or_default() {
            b.depends_on = waits;
            waits = vec![b.id.clone()];
            out.push(b);
        }
        step.depends_on = waits;
        let id = step.id.clone();
        out.push(step);
        let mut last = id.clone();
        for mut a in after.get_mut(i).map(std::mem::take).unwrap_or_default() {
            a.depends_on = vec![last];
            last = a.id.clone();
            out.push(a);
        }
        if last != id {
            alias.insert(id, last);
        }
    }
    out
}

/// Test support: checks what [`splice`] promises of `plan`, whose inserted steps are its gate,
/// gate-baseline and hook steps.
#[cfg(test)]
pub(crate) fn assert_spliced(plan: &super::UpgradePlan) {
    use super::Action;
    let steps = &plan.steps;
    let at: HashMap<&StepId, usize> = steps.iter().enumerate().map(|(i, s)| (&s.id, i)).collect();
    for (i, s) in steps.iter().enumerate() {
        for d in &s.depends_on {
            assert!(
                at.get(d).is_some_and(|&j| j < i),
                "{} waits for {d}, not an earlier step",
                s.id
            );
        }
    }
    let inserted = |s: &Step| {
        matches!(
            s.action,
            Action::Gate { .. } | Action::GateBaseline { .. } | Action::Hook { .. }
        )
    };
    for (k, x) in steps.iter().enumerate().filter(|(_, s)| inserted(s)) {
        let before_next = steps
            .get(k + 1)
            .is_some_and(|n| n.depends_on == [x.id.clone()]);
        let after_prev = k > 0 && x.depends_on == [steps[k - 1].id.clone()];
        assert!(
            before_next || after_prev,
            "{} is neither before its next step nor after its previous one",
            x.id
        );
        if after_prev && !inserted(&steps[k - 1]) {
            // Nothing else waits for the step it follows: they wait for it (or a later one).
            let e = &steps[k - 1].id;
            for s in steps.iter().filter(|s| s.id != x.id) {
                assert!(
                    !s.depends_on.contains(e),
                    "{} waits for {e}, not for {} after it",
                    s.id,
                    x.id
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, NodeList, Phase};

    fn step(id: &str, deps: &[&str]) -> Step {
        Step {
            id: StepId(id.into()),
            hop: Some(0),
            phase: Phase::Workers,
            nodes: NodeList::empty(),
            action: Action::Uncordon,
            commands: Vec::new(),
            depends_on: deps.iter().map(|d| StepId((*d).into())).collect(),
            idempotent: true,
            point_of_no_return: false,
            pre: Vec::new(),
            post: Vec::new(),
            duration_seconds: 1,
            reason: String::new(),
        }
    }

    fn deps(steps: &[Step], id: &str) -> Vec<String> {
        let s = steps.iter().find(|s| s.id.as_str() == id).unwrap();
        s.depends_on.iter().map(|d| d.0.clone()).collect()
    }

    /// Two lanes (a kubelet beside a worker batch, both after `apply`), a step before the
    /// worker and one after it: the one before takes over the worker's wait, the one after
    /// holds what waited for the worker, and the kubelet's lane is left alone.
    #[test]
    fn steps_put_in_keep_the_lanes_they_join() {
        let steps = vec![
            step("apply", &[]),
            step("kubelet", &["apply"]),
            step("worker", &["apply"]),
            step("next", &["worker", "kubelet"]),
        ];
        let mut before = vec![Vec::new(); 4];
        let mut after = vec![Vec::new(); 4];
        before[2].push(step("snapshot", &["junk"]));
        after[2].push(step("gate-1", &[]));
        after[2].push(step("gate-2", &[]));
        let out = splice(steps, before, after);
        let ids: Vec<&str> = out.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "apply", "kubelet", "snapshot", "worker", "gate-1", "gate-2", "next"
            ]
        );
        assert_eq!(deps(&out, "snapshot"), ["apply"]);
        assert_eq!(deps(&out, "worker"), ["snapshot"]);
        assert_eq!(deps(&out, "kubelet"), ["apply"]);
        assert_eq!(deps(&out, "gate-1"), ["worker"]);
        assert_eq!(deps(&out, "gate-2"), ["gate-1"]);
        assert_eq!(deps(&out, "next"), ["gate-2", "kubelet"]);
    }
}
