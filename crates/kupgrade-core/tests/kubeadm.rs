//! kubeadm's upgrade verdicts, checked case for case against kubeadm's own test tables
//! (`cmd/kubeadm/app/phases/upgrade/policy_test.go`, `TestEnforceVersionPolicies`: the 1.29+
//! version with the n-3 kubelet skew, and the rows of the version before that differ from it)
//! and against real version combinations.
use kupgrade_core::kubeadm::{
    Edition, Finding, KubeletGroup, UpgradeRequest, VersionPolicyFindings,
    enforce_version_policies, minimum_control_plane_version, minimum_kubelet_version,
};
use kupgrade_core::{ClusterState, KubeVersion, Node, NodeName, inventory};

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}
fn node(s: &str) -> NodeName {
    NodeName::new(s).unwrap()
}

/// Which check a finding comes from, for compact tables.
fn ids(list: &[Finding]) -> Vec<&'static str> {
    list.iter()
        .map(|f| f.id().trim_start_matches("kubeadm/"))
        .collect()
}

#[derive(Clone, Copy, Default)]
struct Flags {
    experimental: bool,
    rc: bool,
}
const NONE: Flags = Flags {
    experimental: false,
    rc: false,
};
const EXP: Flags = Flags {
    experimental: true,
    rc: false,
};
const RC: Flags = Flags {
    experimental: false,
    rc: true,
};

/// One row: cluster, kubelet, kubeadm, target, flags, expected mandatory and skippable checks.
type Row<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Flags,
    &'a [&'a str],
    &'a [&'a str],
);

fn request(
    cluster: &str,
    kubelet: &str,
    kubeadm: &str,
    target: &str,
    flags: Flags,
) -> UpgradeRequest {
    UpgradeRequest::new(v(cluster), v(kubeadm), v(target))
        .with_kubelets([(node("node-1"), v(kubelet))])
        .allow_experimental_upgrades(flags.experimental)
        .allow_release_candidate_upgrades(flags.rc)
}

/// Checks each row: with `minimum` and `edition` as a kubeadm build without version
/// information decides (kubeadm's unit tests), or derived from the row's kubeadm as a release
/// build decides (`None`).
fn check_rows(rows: &[Row<'_>], minimum: Option<&str>, edition: Option<Edition>) {
    for (name, cluster, kubelet, kubeadm, target, flags, mandatory, skippable) in rows {
        let mut req = request(cluster, kubelet, kubeadm, target, *flags);
        req.minimum_control_plane = minimum.map(v);
        req.edition = edition;
        let got = enforce_version_policies(&req);
        assert_eq!(ids(&got.mandatory), *mandatory, "{name}: mandatory\n{got}");
        assert_eq!(ids(&got.skippable), *skippable, "{name}: skippable\n{got}");
    }
}

/// kubeadm's table (1.29 and later). Its unit tests run a kubeadm built without version
/// information, whose minimum control plane is the placeholder `v1.0.0-placeholder-version`,
/// by the rules of the branch it is built from; kubeadm's own variables there are: minimum
/// control plane and kubelet v1.3.0, current v1.4.0.
#[test]
fn kubeadm_policy_test_table() {
    let rows: &[Row<'_>] = &[
        (
            "minor upgrade",
            "v1.3.3",
            "v1.3.3",
            "v1.3.5",
            "v1.3.5",
            NONE,
            &[],
            &[],
        ),
        (
            "major upgrade",
            "v1.3.3",
            "v1.3.2",
            "v1.4.1",
            "v1.4.0",
            NONE,
            &[],
            &[],
        ),
        (
            "downgrade",
            "v1.3.3",
            "v1.3.0",
            "v1.3.3",
            "v1.3.2",
            NONE,
            &[],
            &[],
        ),
        (
            "same version upgrade",
            "v1.3.3",
            "v1.3.3",
            "v1.3.3",
            "v1.3.3",
            NONE,
            &[],
            &[],
        ),
        (
            "new version must be higher than v1.12.0",
            "v1.12.3",
            "v1.12.3",
            "v1.12.3",
            "v1.10.10",
            NONE,
            &["downgrade-skew"],
            &["kubeadm-newer-than-target"],
        ),
        (
            "upgrading two minor versions in one go is not supported",
            "v1.11.3",
            "v1.11.3",
            "v1.13.0",
            "v1.13.0",
            NONE,
            &["upgrade-skew"],
            &[],
        ),
        (
            "upgrading with n-3 kubelet is supported",
            "v1.14.3",
            "v1.12.3",
            "v1.15.0",
            "v1.15.0",
            NONE,
            &[],
            &[],
        ),
        (
            "upgrading with n-4 kubelet is not supported",
            "v1.14.3",
            "v1.11.3",
            "v1.15.0",
            "v1.15.0",
            NONE,
            &[],
            &["kubelet-skew"],
        ),
        (
            "downgrading two minor versions in one go is not supported",
            "v1.6.0",
            "v1.6.0",
            "v1.4.0",
            "v1.4.0",
            NONE,
            &["downgrade-skew"],
            &[],
        ),
        (
            "a newer patch than kubeadm may be forced",
            "v1.3.3",
            "v1.3.3",
            "v1.3.3",
            "v1.3.5",
            NONE,
            &[],
            &["target-patch-above-kubeadm"],
        ),
        (
            "a newer minor than kubeadm is never supported",
            "v1.3.3",
            "v1.3.3",
            "v1.3.3",
            "v1.4.0",
            NONE,
            &["target-minor-above-kubeadm"],
            &[],
        ),
        (
            "kubelets three minors behind the cluster are fine",
            "v1.13.0",
            "v1.10.8",
            "v1.13.0",
            "v1.13.0",
            NONE,
            &[],
            &[],
        ),
        (
            "kubelets four minors behind may be forced through",
            "v1.14.0",
            "v1.10.8",
            "v1.14.0",
            "v1.14.0",
            NONE,
            &[],
            &["kubelet-skew"],
        ),
        (
            "experimental upgrades supported if the flag is set",
            "v1.3.3",
            "v1.3.3",
            "v1.4.0-beta.1",
            "v1.4.0-beta.1",
            EXP,
            &[],
            &[],
        ),
        (
            "release candidates supported with the rc flag",
            "v1.3.3",
            "v1.3.3",
            "v1.4.0-rc.1",
            "v1.4.0-rc.1",
            RC,
            &[],
            &[],
        ),
        (
            "release candidates supported with the experimental flag",
            "v1.3.3",
            "v1.3.3",
            "v1.4.0-rc.1",
            "v1.4.0-rc.1",
            EXP,
            &[],
            &[],
        ),
        (
            "no experimental target without opting in (the rc flag is not enough)",
            "v1.3.3",
            "v1.3.3",
            "v1.4.0-beta.1",
            "v1.4.0-beta.1",
            RC,
            &[],
            &["unstable-target"],
        ),
        (
            "no release candidate without opting in",
            "v1.3.3",
            "v1.3.3",
            "v1.4.0-rc.1",
            "v1.4.0-rc.1",
            NONE,
            &[],
            &["unstable-target"],
        ),
        (
            "a newer minor kubeadm cannot upgrade an older cluster",
            "v1.3.3",
            "v1.3.3",
            "v1.4.0",
            "v1.3.6",
            NONE,
            &[],
            &["kubeadm-newer-than-target"],
        ),
        (
            "build metadata is ignored at the minimum control plane version",
            "v1.3.0",
            "v1.3.0",
            "v1.3.0+build",
            "v1.3.0+build",
            NONE,
            &[],
            &[],
        ),
    ];
    check_rows(rows, Some("v1.0.0"), Some(Edition::FROM_1_29));
    // A release-built kubeadm derives its minimum from its own version: the answers are the
    // same except where the target is below `kubeadm minor - 1`.
    let mut derived = rows.to_vec();
    derived[4].6 = &["minimum-control-plane", "downgrade-skew"];
    check_rows(&derived, None, Some(Edition::FROM_1_29));
}

/// Real combinations with the minimum a release build of kubeadm derives.
#[test]
fn real_versions() {
    let rows: &[Row<'_>] = &[
        (
            "the usual one-minor upgrade",
            "v1.29.5",
            "v1.29.5",
            "v1.30.2",
            "v1.30.2",
            NONE,
            &[],
            &[],
        ),
        (
            "kubelets at n-3 after the upgrade are fine",
            "v1.29.5",
            "v1.27.16",
            "v1.30.2",
            "v1.30.2",
            NONE,
            &[],
            &[],
        ),
        (
            "kubelets at n-4 after the upgrade need --force",
            "v1.29.5",
            "v1.26.15",
            "v1.30.2",
            "v1.30.2",
            NONE,
            &[],
            &["kubelet-skew"],
        ),
        (
            "a target below kubeadm minor - 1 is refused",
            "v1.29.1",
            "v1.29.1",
            "v1.31.0",
            "v1.29.9",
            NONE,
            &["minimum-control-plane"],
            &["kubeadm-newer-than-target"],
        ),
        (
            "exactly the minimum is allowed",
            "v1.30.0",
            "v1.30.0",
            "v1.31.0",
            "v1.30.0",
            NONE,
            &[],
            &["kubeadm-newer-than-target"],
        ),
        (
            "a release candidate of the minimum is below it",
            "v1.29.8",
            "v1.29.8",
            "v1.31.0",
            "v1.30.0-rc.1",
            RC,
            &["minimum-control-plane"],
            &["kubeadm-newer-than-target"],
        ),
        (
            "a two-minor jump to a pre-release is only skippable",
            "v1.28.5",
            "v1.28.5",
            "v1.30.0-rc.0",
            "v1.30.0-rc.0",
            RC,
            &[],
            &["upgrade-skew"],
        ),
        (
            "a pre-release of a newer minor than kubeadm is only skippable",
            "v1.29.0",
            "v1.29.0",
            "v1.29.4",
            "v1.30.0-beta.0",
            EXP,
            &[],
            &["target-minor-above-kubeadm"],
        ),
        (
            "kubeadm at an rc of the target's patch is older than the target",
            "v1.30.5",
            "v1.30.5",
            "v1.31.0-rc.1",
            "v1.31.0",
            NONE,
            &[],
            &["target-patch-above-kubeadm"],
        ),
        (
            "a vendor suffix is a pre-release to kubeadm",
            "v1.29.1",
            "v1.29.1",
            "v1.29.3",
            "v1.29.3-eks-5e0fdde",
            NONE,
            &[],
            &["unstable-target"],
        ),
        (
            "a pre-release two minors down and below the minimum",
            "v1.33.2",
            "v1.26.0",
            "v1.30.1",
            "v1.29.0-alpha.3",
            NONE,
            &["minimum-control-plane"],
            &[
                "downgrade-skew",
                "kubeadm-newer-than-target",
                "unstable-target",
            ],
        ),
    ];
    check_rows(rows, None, None);
}

/// The rows of kubeadm's table before 1.29 (kubelet skew 1) whose answers differ under the
/// n-3 kubelet skew, as a kubeadm built from that branch decides them: the first two are the
/// only such rows of the last table before 1.29 (every other row's kubelets are within one
/// minor of the target); the last two are rows kubernetes/kubernetes#120825 added for 1.29,
/// judged by the rules before it.
const PRE_1_29_ROWS: &[Row<'static>] = &[
    (
        // Before 1.29 its comments read "can't upgrade two minor versions" and "kubelet <->
        // apiserver skew too large": one mandatory, one skippable finding.
        "upgrading two minor versions in one go is not supported",
        "v1.11.3",
        "v1.11.3",
        "v1.13.0",
        "v1.13.0",
        NONE,
        &["upgrade-skew"],
        &["kubelet-skew"],
    ),
    (
        // Replaced in 1.29 by the "three minor version" row below (which moved the cluster,
        // kubeadm and target to v1.13.0); kubeadm 1.14's table had the same row at v1.13.3,
        // v1.12.8, v1.14.0.
        "the maximum skew between the cluster version and the kubelet versions should be one minor version. This may be forced through though.",
        "v1.12.0",
        "v1.10.8",
        "v1.12.0",
        "v1.12.0",
        NONE,
        &[],
        &["kubelet-skew"],
    ),
    (
        // 1.29's row, judged by the rules before it: n-3 kubelets needed --force.
        "upgrading with n-3 kubelet is supported",
        "v1.14.3",
        "v1.12.3",
        "v1.15.0",
        "v1.15.0",
        NONE,
        &[],
        &["kubelet-skew"],
    ),
    (
        // 1.29's row, likewise.
        "the maximum skew between the cluster version and the kubelet versions should be three minor version.",
        "v1.13.0",
        "v1.10.8",
        "v1.13.0",
        "v1.13.0",
        NONE,
        &[],
        &["kubelet-skew"],
    ),
];

/// The same rows as kubeadm 1.29 and later decide them.
const FROM_1_29_ANSWERS: &[(&[&str], &[&str])] =
    &[(&["upgrade-skew"], &[]), (&[], &[]), (&[], &[]), (&[], &[])];

#[test]
fn kubeadm_pre_1_29_policy_test_table() {
    check_rows(PRE_1_29_ROWS, Some("v1.0.0"), Some(Edition::FROM_1_16));
    // Every row differs under 1.29's rules, and only in the kubelet check.
    let mut now = PRE_1_29_ROWS.to_vec();
    for (row, (mandatory, skippable)) in now.iter_mut().zip(FROM_1_29_ANSWERS) {
        (row.6, row.7) = (mandatory, skippable);
    }
    check_rows(&now, Some("v1.0.0"), Some(Edition::FROM_1_29));
}

/// `v` with its minor moved by `by`.
fn shifted(v: &str, by: i64) -> String {
    let v: KubeVersion = v.parse().unwrap();
    let minor = v.minor_number().checked_add_signed(by).unwrap();
    format!("v{}.{minor}.{}", v.major(), v.patch())
}

/// Release builds of kubeadm 1.25 to 1.28 answer the pre-1.29 rows as kubeadm's pre-1.29
/// table does, the same rows moved to their own minor; 1.29 and later answer as 1.29's table.
#[test]
fn release_kubeadm_decides_by_its_own_edition() {
    for kubeadm_minor in 25..=32 {
        let rows: Vec<_> = PRE_1_29_ROWS
            .iter()
            .zip(FROM_1_29_ANSWERS)
            .map(|(row, now)| {
                let by = kubeadm_minor - v(row.3).minor_number() as i64;
                let [cluster, kubelet, kubeadm, target] =
                    [row.1, row.2, row.3, row.4].map(|x| shifted(x, by));
                let (mandatory, skippable) = if kubeadm_minor < 29 {
                    (row.6, row.7)
                } else {
                    *now
                };
                (
                    cluster, kubelet, kubeadm, target, mandatory, skippable, row.0,
                )
            })
            .collect();
        let rows: Vec<Row<'_>> = rows
            .iter()
            .map(|(c, kl, ka, t, m, s, name)| {
                (
                    *name,
                    c.as_str(),
                    kl.as_str(),
                    ka.as_str(),
                    t.as_str(),
                    NONE,
                    *m,
                    *s,
                )
            })
            .collect();
        check_rows(&rows, None, None);
    }
}

#[test]
fn every_check_in_kubeadm_order() {
    // Cluster 1.27, kubeadm 1.29.0, target 1.30.0-alpha.1 (pre-release: hard checks soften),
    // kubelets unknown.
    let req = UpgradeRequest::new(v("v1.27.3"), v("v1.29.0"), v("v1.30.0-alpha.1"))
        .with_kubelets_unknown();
    let got = enforce_version_policies(&req);
    assert_eq!(ids(&got.mandatory), Vec::<&str>::new());
    assert_eq!(
        ids(&got.skippable),
        [
            "kubelet-versions-unknown",
            "upgrade-skew",
            "target-minor-above-kubeadm",
            "unstable-target"
        ]
    );
    assert!(got.allows(true));
    assert!(!got.allows(false));
    // The same with a stable target: the hard checks are mandatory again.
    let req = UpgradeRequest {
        target: v("v1.30.0"),
        ..req
    };
    let got = enforce_version_policies(&req);
    assert_eq!(
        ids(&got.mandatory),
        ["upgrade-skew", "target-minor-above-kubeadm"]
    );
    assert_eq!(ids(&got.skippable), ["kubelet-versions-unknown"]);
    assert!(!got.allows(true));
}

#[test]
fn too_old_kubelets_are_grouped_by_version_with_their_nodes() {
    let req = UpgradeRequest::new(v("v1.29.5"), v("v1.30.2"), v("v1.30.2")).with_kubelets([
        (node("w-3"), v("v1.26.15")),
        (node("w-1"), v("v1.25.16")),
        (node("cp-1"), v("v1.29.5")),
        (node("w-2"), v("v1.26.15")),
        (node("w-4"), v("v1.27.0")),
    ]);
    let got = enforce_version_policies(&req);
    assert_eq!(
        got.skippable,
        [Finding::KubeletsTooOld {
            target: v("v1.30.2"),
            max_skew: 3,
            kubelets: vec![
                KubeletGroup {
                    version: v("v1.25.16"),
                    nodes: vec![node("w-1")],
                },
                KubeletGroup {
                    version: v("v1.26.15"),
                    nodes: vec![node("w-2"), node("w-3")],
                },
            ],
        }]
    );
    assert_eq!(
        got.to_string(),
        "skippable (--force): kubelets more than 3 minors older than target v1.30.2: \
         v1.25.16 on w-1; v1.26.15 on w-2, w-3\n"
    );
}

#[test]
fn kubeadm_1_28_objects_to_kubelets_two_minors_behind() {
    let req = UpgradeRequest::new(v("v1.27.16"), v("v1.28.15"), v("v1.28.15"))
        .with_kubelets([(node("cp-1"), v("v1.27.16")), (node("w-1"), v("v1.26.15"))]);
    assert_eq!(req.rules(), Edition::FROM_1_16);
    let got = enforce_version_policies(&req);
    assert_eq!(
        got.to_string(),
        "skippable (--force): kubelets more than 1 minor older than target v1.28.15: v1.26.15 on w-1\n"
    );
    let json = serde_json::to_string(&got.skippable[0]).unwrap();
    assert_eq!(
        json,
        r#"{"check":"kubelets_too_old","target":"v1.28.15","max_skew":1,"kubelets":[{"version":"v1.26.15","nodes":["w-1"]}]}"#
    );
    // Judged by 1.29's rules instead, nothing is wrong.
    let req = req.with_edition(Edition::FROM_1_29);
    assert!(enforce_version_policies(&req).is_clear());
}

#[test]
fn sentences_and_serde() {
    let cases = [
        (
            Finding::BelowMinimumControlPlane {
                target: v("v1.29.9"),
                minimum: v("v1.30.0"),
                kubeadm: v("v1.31.0"),
            },
            "target v1.29.9 is older than v1.30.0, the oldest control plane kubeadm v1.31.0 can deploy",
        ),
        (
            Finding::UpgradeSkewTooLarge {
                target: v("v1.30.2"),
                cluster: v("v1.28.9"),
            },
            "target v1.30.2 is more than 1 minor above the cluster (v1.28.9); kubeadm upgrades one minor at a time",
        ),
        (
            Finding::TargetMinorAboveKubeadm {
                target: v("v1.30.0"),
                kubeadm: v("v1.29.3"),
            },
            "target v1.30.0 is of a newer minor than kubeadm v1.29.3; install kubeadm 1.30 first",
        ),
        (
            Finding::KubeadmNewerThanTarget {
                kubeadm: v("v1.31.0"),
                target: v("v1.30.4"),
            },
            "kubeadm v1.31.0 only upgrades to Kubernetes 1.31, not to v1.30.4",
        ),
        (
            Finding::UnstableTargetNotAllowed {
                target: v("v1.31.0-rc.1"),
            },
            "target v1.31.0-rc.1 is a release candidate; it needs --allow-release-candidate-upgrades or --allow-experimental-upgrades",
        ),
        (
            Finding::UnstableTargetNotAllowed {
                target: v("v1.31.0-beta.0"),
            },
            "target v1.31.0-beta.0 is not a stable release; it needs --allow-experimental-upgrades",
        ),
    ];
    for (finding, text) in cases {
        assert_eq!(finding.to_string(), text);
    }
    let f = Finding::UnstableTargetNotAllowed {
        target: v("v1.31.0-rc.1"),
    };
    let json = serde_json::to_string(&f).unwrap();
    assert_eq!(
        json,
        r#"{"check":"unstable_target_not_allowed","target":"v1.31.0-rc.1"}"#
    );
    assert_eq!(serde_json::from_str::<Finding>(&json).unwrap(), f);
    assert_eq!(
        VersionPolicyFindings::default().to_string(),
        "kubeadm: no objections\n"
    );
}

#[test]
fn minimum_versions_follow_the_kubeadm_minor() {
    for (kubeadm, cp, kubelet) in [
        ("v1.29.0", "v1.28.0", "v1.26.0"),
        ("v1.31.4", "v1.30.0", "v1.28.0"),
        ("v1.34.0-rc.1", "v1.33.0", "v1.31.0"),
        ("v1.30.2+build", "v1.29.0", "v1.27.0"),
    ] {
        assert_eq!(
            minimum_control_plane_version(&v(kubeadm)),
            v(cp),
            "{kubeadm}"
        );
        assert_eq!(
            minimum_kubelet_version(&v(kubeadm)),
            v(kubelet),
            "{kubeadm}"
        );
    }
}

#[test]
fn request_for_a_cluster_state() {
    let text = r#"
nodes:
  - name: cp-1
    roles: [control-plane]
    versions: { kubelet: v1.29.5, kube-apiserver: v1.29.5 }
  - name: cp-2
    roles: [control-plane]
    versions: { kubelet: v1.28.9, kube-apiserver: v1.28.9 }
  - name: w-1
    versions: { kubelet: v1.26.3 }
"#;
    let state = inventory::parse(text, "inventory.yaml").unwrap();
    let req = UpgradeRequest::for_cluster(&state, v("v1.29.5"), v("v1.29.5")).unwrap();
    assert_eq!(req.cluster, v("v1.28.9"), "the oldest API server");
    assert_eq!(req.kubelets.as_ref().unwrap().len(), 3);
    assert!(enforce_version_policies(&req).is_clear());
    // 1.30 would leave w-1's kubelet four minors behind.
    let req = UpgradeRequest::for_cluster(&state, v("v1.30.1"), v("v1.30.1")).unwrap();
    assert_eq!(
        ids(&enforce_version_policies(&req).skippable),
        ["kubelet-skew"]
    );
    let no_cp = ClusterState::new(vec![Node::worker("w-1", v("v1.26.3")).unwrap()]);
    assert!(UpgradeRequest::for_cluster(&no_cp, v("v1.30.1"), v("v1.30.1")).is_none());
}
