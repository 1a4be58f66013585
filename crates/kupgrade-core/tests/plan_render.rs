//! What the renderers say about the plan agrees with the plan: every section of the Markdown
//! runbook and of the Mermaid chart that names a version holds only steps that move nodes to
//! that version.
use jiff::civil::{Date, date};
use kupgrade_core::plan::render::{markdown, mermaid};
use kupgrade_core::plan::{PlanOptions, PlanRequest, UpgradePlan, WorkerPacing};
use kupgrade_core::{KubeVersion, inventory};

const DATE: Date = date(2024, 6, 1);

/// Every sample that plans, kubeadm's way and with deferred workers.
fn plans() -> Vec<(String, UpgradePlan)> {
    let samples = [
        (
            "ha",
            include_str!("../../../examples/clusters/ha.yaml"),
            "1.30",
        ),
        (
            "mid-upgrade",
            include_str!("../../../examples/clusters/mid-upgrade.yaml"),
            "1.30",
        ),
        (
            "old-1.24",
            include_str!("../../../examples/clusters/old-1.24.yaml"),
            "1.27",
        ),
        (
            "vendor-eks",
            include_str!("../../../examples/clusters/vendor-eks.yaml"),
            "stable",
        ),
        (
            "mixed-os",
            include_str!("../../../examples/clusters/mixed-os.yaml"),
            "1.30",
        ),
    ];
    let mut out = Vec::new();
    for (name, text, target) in samples {
        let state = inventory::parse(text, name).unwrap();
        for pacing in [None, Some(WorkerPacing::Deferred)] {
            let options = PlanOptions {
                worker_pacing: pacing,
                ..PlanOptions::default()
            };
            let plan = PlanRequest::new(target.parse().unwrap(), DATE)
                .options(options)
                .plan(&state)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            out.push((format!("{name} ({pacing:?})"), plan));
        }
    }
    out
}

/// The version a step moves nodes to: the first part of its id (`v1.29.4/worker-4/cordon`).
fn goal(id: &str) -> &str {
    id.split('/').next().unwrap()
}

/// The mid-upgrade sample used to show "Hop 2 (v1.29.5): workers" above the workers' move to
/// v1.29.4 (the catch-up before hop 2 belongs to hop 1).
#[test]
fn markdown_sections_name_the_version_their_steps_move_to() {
    let mut checked = 0;
    for (name, plan) in plans() {
        let text = markdown(&plan);
        let mut heading: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some(title) = line.strip_prefix("### ") {
                // `Hop 2 (v1.29.5): workers` or `Before hop 1: workers to v1.24.17`.
                let version = match (title.find('('), title.find(')')) {
                    (Some(a), Some(b)) if title.starts_with("Hop ") => {
                        Some(title[a + 1..b].to_string())
                    }
                    _ => title.rsplit_once(" to ").map(|(_, v)| v.to_string()),
                };
                heading = version.map(|v| (title.to_string(), v));
            } else if let Some(rest) = line.strip_prefix("Step `")
                && let Some((title, version)) = &heading
            {
                let id = rest.trim_end_matches("`.");
                assert_eq!(goal(id), version, "{name}: step {id} under {title:?}");
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} steps checked");
}

#[test]
fn mermaid_sections_name_the_version_their_steps_move_to() {
    let mut checked = 0;
    for (name, plan) in plans() {
        let text = mermaid(&plan);
        let mut section: Option<String> = None;
        for line in text.lines().map(str::trim) {
            if let Some(title) = line.strip_prefix("section ") {
                section = title
                    .split(' ')
                    .next()
                    .filter(|w| w.parse::<KubeVersion>().is_ok())
                    .map(str::to_string);
            } else if let Some(version) = &section
                && let Some((_, tags)) = line.rsplit_once(" :")
            {
                // `:crit, s12, start, end`: s12 is the 12th step.
                let n: usize = tags
                    .split(", ")
                    .find_map(|t| t.strip_prefix('s')?.parse().ok())
                    .unwrap();
                let id = plan.steps[n - 1].id.as_str();
                assert_eq!(goal(id), version, "{name}: step {id} in section {version}");
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} steps checked");
}
