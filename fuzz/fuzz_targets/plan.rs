//! Fuzzes the planner: arbitrary inventory text and target give a valid plan or a clear error,
//! never a panic and never an invalid plan.
//!
//! Input: the first line is the target (`1.31`, `v1.30.2`, `stable`, anything), the second
//! line's bytes pick options, the rest is the inventory. A plan is replayed step by step with a
//! full policy check after each one; it must end with every node at the target, every node
//! uncordoned, and render in every format; JSON and YAML must read back to the same plan.
#![no_main]

use jiff::civil::date;
use kupgrade_core::plan::render::{self, Format};
use kupgrade_core::plan::{
    BatchSize, PlanError, PlanOptions, PlanRequest, Simulation, Strategy, WorkerPacing,
};
use kupgrade_core::skew::{SkewPolicy, UpstreamPolicy};
use kupgrade_core::{KubeVersion, inventory};
use libfuzzer_sys::fuzz_target;

fn options(bits: &[u8]) -> PlanOptions {
    let b = |i: usize| bits.get(i).copied().unwrap_or(0);
    PlanOptions {
        strategy: if b(0) & 1 == 1 {
            Strategy::Replace
        } else {
            Strategy::InPlace
        },
        worker_pacing: match b(1) % 3 {
            0 => None,
            1 => Some(WorkerPacing::EveryHop),
            _ => Some(WorkerPacing::Deferred),
        },
        batch: if b(2) & 1 == 1 {
            BatchSize::Percent(1 + b(3) % 100)
        } else {
            BatchSize::Count(1 + u32::from(b(3) % 8))
        },
        max_per_zone: (b(4) & 1 == 1).then_some(BatchSize::Count(1 + u32::from(b(5) % 3))),
        max_surge: 1 + u32::from(b(6) % 4),
        patch_first: b(7) & 1 == 1,
        allow_unsupported_target: b(8) & 1 == 1,
        allow_unknown_versions: b(8) & 2 == 2,
        allow_prerelease: b(8) & 4 == 4,
        tolerate_initial_violations: b(8) & 8 == 8,
        allow_not_ready: b(8) & 16 == 16,
        ..PlanOptions::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let (Some(target), Some(bits), Some(inventory_text)) =
        (lines.next(), lines.next(), lines.next())
    else {
        return;
    };
    let Ok(target) = target.parse() else {
        return;
    };
    let Ok(state) = inventory::parse(inventory_text, "fuzz.yaml") else {
        return;
    };
    let options = options(bits.as_bytes());
    let tolerate = options.tolerate_initial_violations;
    let policy = UpstreamPolicy::new();
    match PlanRequest::new(target, date(2026, 11, 25))
        .options(options)
        .plan(&state)
    {
        Ok(plan) => {
            let mut sim = Simulation::new(state.clone());
            for step in &plan.steps {
                sim.apply(step)
                    .unwrap_or_else(|e| panic!("the plan does not replay: {e}"));
                if !tolerate {
                    let errors = policy.errors(sim.state());
                    assert!(
                        errors.is_empty(),
                        "invalid after step {}: {errors:?}",
                        step.id
                    );
                }
            }
            let end = sim.into_state();
            assert!(policy.errors(&end).is_empty(), "the plan ends invalid");
            for n in &end.nodes {
                let k = n.kubelet().map(KubeVersion::release);
                assert!(
                    k.as_ref().is_some_and(|k| k >= &plan.target),
                    "node {} ends at {k:?}, not {}",
                    n.name,
                    plan.target
                );
                assert!(!n.unschedulable, "node {} ends cordoned", n.name);
            }
            for f in Format::ALL {
                assert!(!f.render(&plan).is_empty());
            }
            assert_eq!(render::from_json(&render::to_json(&plan)).unwrap(), plan);
            assert_eq!(render::from_yaml(&render::to_yaml(&plan)).unwrap(), plan);
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            if let PlanError::Blocked { .. } = e {
                assert!(e.rule().is_some(), "a blocked plan names its rule: {e}");
            }
            assert!(!matches!(e, PlanError::Internal(_)), "internal error: {e}");
        }
    }
});
