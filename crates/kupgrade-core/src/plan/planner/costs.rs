//! What the plan costs, counted as steps join it: drains per node, nodes out at once, nodes
//! replaced; the estimate at the end.
use foldhash::{HashMap, HashMapExt};

use crate::NodeName;

use crate::plan::Timeline;
use crate::plan::action::Action;
use crate::plan::estimate::{Estimate, ratio_percent};
use crate::plan::step::Step;

/// The plan's costs so far. Every step that joins the plan is counted once, after the model
/// took it.
pub(super) struct Costs {
    /// Drains per node by position, for batches whose positions stay put (in place).
    drains_at: Vec<usize>,
    /// Drains per node by name, for batches whose positions move (replacing).
    drains: HashMap<NodeName, usize>,
    /// The most nodes cordoned at once, the start included.
    max_unavailable: usize,
    /// Nodes removed (each replaced by a new one).
    replaced: usize,
}

impl Costs {
    /// No steps yet, `cordoned` nodes cordoned at the start.
    pub(super) fn new(cordoned: usize) -> Self {
        Costs {
            drains_at: Vec::new(),
            drains: HashMap::new(),
            max_unavailable: cordoned,
            replaced: 0,
        }
    }

    /// Counts `step`, whose nodes are at positions `at` when they stay put; `cordoned`:
    /// the nodes cordoned once it is done.
    pub(super) fn count(&mut self, step: &Step, at: Option<&[usize]>, cordoned: usize) {
        match &step.action {
            Action::Drain { .. } => match at {
                Some(at) => {
                    for &i in at {
                        if self.drains_at.len() <= i {
                            self.drains_at.resize(i + 1, 0);
                        }
                        self.drains_at[i] += 1;
                    }
                }
                None => {
                    for n in &step.nodes {
                        *self.drains.entry(n.clone()).or_default() += 1;
                    }
                }
            },
            Action::RemoveNodes => self.replaced += step.nodes.len(),
            _ => {}
        }
        self.max_unavailable = self.max_unavailable.max(cordoned);
    }

    /// The estimate of a plan of `steps`, counted here, scheduled as `timeline` says.
    pub(super) fn estimate(&self, steps: &[Step], timeline: &Timeline) -> Estimate {
        let bound = Timeline::lower_bound(steps);
        Estimate {
            total_seconds: timeline.makespan,
            lower_bound_seconds: bound,
            bound_ratio_percent: ratio_percent(timeline.makespan, bound),
            steps: steps.len(),
            drains: self.drains.values().sum::<usize>() + self.drains_at.iter().sum::<usize>(),
            max_drains_per_node: self
                .drains
                .values()
                .chain(&self.drains_at)
                .copied()
                .max()
                .unwrap_or(0),
            max_unavailable: self.max_unavailable.max(timeline.max_unavailable),
            nodes_replaced: self.replaced,
        }
    }
}
