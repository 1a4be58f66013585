//! Snapshots of the plan for every bundled sample in every output format, on a fixed date.
//! Review changes with `cargo insta review` (or read the `.snap.new` files), never blindly.
use jiff::civil::{Date, date};
use kupgrade_core::inventory;
use kupgrade_core::plan::render::{self, Format};
use kupgrade_core::plan::{PlanOptions, PlanRequest, UpgradePlan};

/// Never the clock: 2024-06-01, when 1.30.1 was the newest release.
const DATE: Date = date(2024, 6, 1);

/// Each sample with the target its snapshots plan for (small enough to review).
const SAMPLES: [(&str, &str, &str); 7] = [
    (
        "ha",
        include_str!("../../../examples/clusters/ha.yaml"),
        "1.29",
    ),
    (
        "single-node",
        include_str!("../../../examples/clusters/single-node.yaml"),
        "stable",
    ),
    (
        "vendor-eks",
        include_str!("../../../examples/clusters/vendor-eks.yaml"),
        "stable",
    ),
    (
        "old-1.24",
        include_str!("../../../examples/clusters/old-1.24.yaml"),
        "1.27",
    ),
    (
        "mid-upgrade-docs-order",
        include_str!("../../../examples/clusters/mid-upgrade-docs-order.yaml"),
        "1.29",
    ),
    (
        "mid-upgrade",
        include_str!("../../../examples/clusters/mid-upgrade.yaml"),
        "1.29",
    ),
    (
        "mixed-os",
        include_str!("../../../examples/clusters/mixed-os.yaml"),
        "1.30",
    ),
];

fn plan(text: &str, file: &str, target: &str, options: PlanOptions) -> Result<UpgradePlan, String> {
    let state = inventory::parse(text, file).map_err(|e| e.to_string())?;
    PlanRequest::new(target.parse().map_err(|e| format!("{e}"))?, DATE)
        .options(options)
        .plan(&state)
        .map_err(|e| e.to_string())
}

fn extension(f: Format) -> &'static str {
    match f {
        Format::Text => "txt",
        Format::Markdown => "md",
        Format::Json => "json",
        Format::Yaml => "yaml",
        Format::Mermaid => "mmd",
        Format::Html => "html",
    }
}

/// The options of each pair of snapshots: the default (pre-staging) under the sample's name,
/// and `--no-prestage` under `NAME.no-prestage`. The `no-prestage` snapshots were copied from
/// the plans made before pre-staging existed: their steps, estimates and renderings are
/// those plans' byte for byte; only the options in JSON and YAML say more (`prestage: false`
/// and the two durations pre-staging added).
fn variants() -> [(PlanOptions, &'static str); 2] {
    [
        (PlanOptions::default(), ""),
        (
            PlanOptions {
                prestage: false,
                ..PlanOptions::default()
            },
            ".no-prestage",
        ),
    ]
}

#[test]
fn every_sample_in_every_format() {
    for (options, suffix) in variants() {
        for (name, text, target) in SAMPLES {
            let file = format!("{name}.yaml");
            match plan(text, &file, target, options.clone()) {
                Ok(p) => {
                    // The HTML page has its own snapshot, with the starting state (below).
                    for f in Format::ALL.into_iter().filter(|f| *f != Format::Html) {
                        insta::assert_snapshot!(
                            format!("{name}{suffix}.{}", extension(f)),
                            f.render(&p)
                        );
                    }
                }
                // A cluster that violates the policy now gets an error that names the rules.
                Err(e) if suffix.is_empty() => insta::assert_snapshot!(format!("{name}.error"), e),
                Err(e) => assert_eq!(
                    e,
                    plan(text, &file, target, PlanOptions::default()).unwrap_err()
                ),
            }
        }
    }
}

/// With `--no-prestage` a plan has no pre-stage step and no install counts less than its
/// download; with it, every install of a Debian or RHEL-like node at a packaged minor is
/// pre-staged, before its node's cordon.
#[test]
fn no_prestage_plans_have_no_prestage_steps() {
    use kupgrade_core::plan::Action;
    for (options, suffix) in variants() {
        for (name, text, target) in SAMPLES {
            let Ok(p) = plan(text, name, target, options.clone()) else {
                continue;
            };
            let d = &p.options.durations;
            let staged = p.steps.iter().filter(|s| s.action.is_prestage()).count();
            for s in &p.steps {
                if matches!(s.action, Action::InstallPackages { .. }) && suffix.is_empty() {
                    assert!(
                        s.duration_seconds == d.install_from_cache()
                            || s.duration_seconds == d.install_packages + d.download_packages,
                        "{name}: {}",
                        s.id
                    );
                } else if matches!(s.action, Action::InstallPackages { .. }) {
                    assert_eq!(
                        s.duration_seconds,
                        d.install_packages + d.download_packages,
                        "{name}{suffix}: {}",
                        s.id
                    );
                }
            }
            if suffix.is_empty() {
                assert!(staged > 0, "{name}: nothing pre-staged");
            } else {
                assert_eq!(staged, 0, "{name}{suffix}");
            }
        }
    }
}

/// The docs-order mid-upgrade sample violates the policy (kubeadm before 1.28 moved kube-proxy
/// early and cp-1's kubelet went first); tolerating that, the plan finishes the hop under way.
#[test]
fn mid_upgrade_sample_repaired() {
    let (name, text, target) = (
        "mid-upgrade",
        include_str!("../../../examples/clusters/mid-upgrade-docs-order.yaml"),
        "1.29",
    );
    for (options, suffix) in variants() {
        let options = PlanOptions {
            tolerate_initial_violations: true,
            ..options
        };
        let p = plan(text, &format!("{name}.yaml"), target, options).unwrap();
        for f in Format::ALL.into_iter().filter(|f| *f != Format::Html) {
            insta::assert_snapshot!(
                format!("{name}-repaired{suffix}.{}", extension(f)),
                f.render(&p)
            );
        }
    }
}

/// JSON and YAML read back to the same plan.
#[test]
fn json_and_yaml_round_trip() {
    for (name, text, target) in SAMPLES {
        let Ok(p) = plan(text, name, target, PlanOptions::default()) else {
            continue;
        };
        assert_eq!(
            render::from_json(&render::to_json(&p)).unwrap(),
            p,
            "{name}"
        );
        assert_eq!(
            render::from_yaml(&render::to_yaml(&p)).unwrap(),
            p,
            "{name}"
        );
    }
}

/// The HTML report of a small sample, with its starting state: timeline, version band.
#[test]
fn html_report_of_a_small_sample() {
    let (name, text, target) = (
        "old-1.24",
        include_str!("../../../examples/clusters/old-1.24.yaml"),
        "1.27",
    );
    let state = inventory::parse(text, "old-1.24.yaml").unwrap();
    let p = plan(text, "old-1.24.yaml", target, PlanOptions::default()).unwrap();
    let extras = render::HtmlExtras {
        start: Some(&state),
        readiness: None,
    };
    let mut page = String::new();
    render::html(&p, extras, &mut page).unwrap();
    insta::assert_snapshot!(format!("{name}.html"), page);
}
