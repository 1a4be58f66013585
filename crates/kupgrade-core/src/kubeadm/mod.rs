//! kubeadm's own verdicts: what `kubeadm upgrade apply` decides about a target version before
//! it touches anything, by the rules of the kubeadm release doing the upgrade.
//!
//! kubeadm sorts what it finds into two lists. **Mandatory** findings stop the upgrade, full
//! stop. **Skippable** ones stop it too unless the operator passes `--force`. This module
//! reproduces that decision from plain values, so a plan can be checked against kubeadm before
//! it runs ([`enforce_version_policies`]), together with kubeadm's own bounds
//! ([`minimum_control_plane_version`], [`minimum_kubelet_version`]).
//!
//! The rules differ by kubeadm release: an [`Edition`] holds what changed (kubelets one minor
//! older than the target at most before kubeadm 1.29, three from 1.29), and a request is judged
//! by the edition of its kubeadm version unless it names one ([`UpgradeRequest::with_edition`]).
//!
//! The checks, in kubeadm's order:
//!
//! | Finding | When | List |
//! |---|---|---|
//! | [`Finding::KubeletVersionsUnknown`] | the kubelet versions could not be read | skippable |
//! | [`Finding::BelowMinimumControlPlane`] | target older than `kubeadm minor - 1`.0 | mandatory |
//! | [`Finding::UpgradeSkewTooLarge`] | target minor > cluster minor + 1 | mandatory; skippable for a pre-release target |
//! | [`Finding::DowngradeSkewTooLarge`] | target minor < cluster minor - 1 | mandatory; skippable for a pre-release target |
//! | [`Finding::TargetMinorAboveKubeadm`] | target newer than kubeadm and of a newer minor | mandatory; skippable for a pre-release target |
//! | [`Finding::TargetPatchAboveKubeadm`] | target newer than kubeadm, same (or older) minor | skippable |
//! | [`Finding::KubeadmNewerThanTarget`] | kubeadm's major or minor above the target's | skippable |
//! | [`Finding::UnstableTargetNotAllowed`] | pre-release target without the matching `--allow-*-upgrades` flag | skippable |
//! | [`Finding::KubeletsTooOld`] | some kubelet more minors below the target than the edition allows (1 before kubeadm 1.29, 3 from 1.29) | skippable |
//!
//! Comparing as kubeadm does: versions are ordered by semantic-version rules with build
//! metadata ignored, the minor checks look at the minor numbers alone (not the major), and a
//! suffix after the patch is a pre-release to kubeadm, vendor suffixes included
//! (`v1.29.3-eks-5e0fdde` is "unstable" to kubeadm, unlike everywhere else in this crate).
//! kubeadm's unsigned arithmetic would wrap for a `1.0.x` cluster or a kubeadm below 1.3; here
//! it saturates at 0 instead (no real kubeadm release is affected).
//!
//! ```
//! use kupgrade_core::kubeadm::{enforce_version_policies, Finding, UpgradeRequest};
//! use kupgrade_core::KubeVersion;
//!
//! let v = |s: &str| s.parse::<KubeVersion>().unwrap();
//! // kubeadm 1.30.2 asked to take a 1.28 cluster to 1.30.2: two minors at once.
//! let request = UpgradeRequest::new(v("v1.28.9"), v("v1.30.2"), v("v1.30.2"));
//! let findings = enforce_version_policies(&request);
//! assert!(matches!(findings.mandatory[..], [Finding::UpgradeSkewTooLarge { .. }]));
//! assert!(!findings.allows(true), "--force does not help");
//!
//! // kubeadm 1.28 takes a 1.27 cluster to 1.28 only with --force while a kubelet runs 1.26.
//! let request = UpgradeRequest::new(v("v1.27.16"), v("v1.28.15"), v("v1.28.15"))
//!     .with_kubelets([("w-1".parse()?, v("v1.26.15"))]);
//! let findings = enforce_version_policies(&request);
//! assert!(matches!(findings.skippable[..], [Finding::KubeletsTooOld { max_skew: 1, .. }]));
//! assert!(findings.allows(true) && !findings.allows(false));
//! # Ok::<(), kupgrade_core::NodeNameError>(())
//! ```
use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ClusterState, KubeVersion, NodeName};

mod edition;
mod order;

pub use edition::Edition;
use order::{pre_release, semver_cmp};

/// How many minors kubeadm upgrades the control plane in one go.
pub const MAX_UPGRADE_MINOR_SKEW: u64 = 1;
/// How many minors kubeadm downgrades the control plane in one go.
pub const MAX_DOWNGRADE_MINOR_SKEW: u64 = 1;
/// How many minors a kubelet may lag the control plane in a kubeadm cluster, kubeadm 1.29 and
/// later (one before: see [`Edition`]).
pub const MAX_KUBELET_MINOR_SKEW: u64 = 3;

/// The oldest control-plane version this kubeadm can deploy: `major.(minor - 1).0`
/// (kubeadm's `MinimumControlPlaneVersion`, derived from its own version).
///
/// ```
/// use kupgrade_core::kubeadm::minimum_control_plane_version;
/// let kubeadm = "v1.31.4".parse()?;
/// assert_eq!(minimum_control_plane_version(&kubeadm).to_string(), "v1.30.0");
/// # Ok::<(), kupgrade_core::VersionError>(())
/// ```
pub fn minimum_control_plane_version(kubeadm: &KubeVersion) -> KubeVersion {
    skewed(kubeadm, 1)
}

/// The oldest kubelet this kubeadm supports (kubeadm's `MinimumKubeletVersion`):
/// `major.(minor - 3).0` from kubeadm 1.29, `major.(minor - 1).0` before ([`Edition`]).
///
/// ```
/// use kupgrade_core::kubeadm::minimum_kubelet_version;
/// let kubeadm = "v1.31.4".parse()?;
/// assert_eq!(minimum_kubelet_version(&kubeadm).to_string(), "v1.28.0");
/// let kubeadm = "v1.28.15".parse()?;
/// assert_eq!(minimum_kubelet_version(&kubeadm).to_string(), "v1.27.0");
/// # Ok::<(), kupgrade_core::VersionError>(())
/// ```
pub fn minimum_kubelet_version(kubeadm: &KubeVersion) -> KubeVersion {
    Edition::of(kubeadm).minimum_kubelet(kubeadm)
}

fn skewed(v: &KubeVersion, minors_back: u64) -> KubeVersion {
    KubeVersion::new(v.major(), v.minor_number().saturating_sub(minors_back), 0)
}

/// What `kubeadm upgrade apply` is asked to do, as kubeadm sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeRequest {
    /// The cluster version: what the API server reports.
    pub cluster: KubeVersion,
    /// The version of the kubeadm binary doing the upgrade.
    pub kubeadm: KubeVersion,
    /// Every node's kubelet version; `None` when they could not be read (kubeadm then skips
    /// the kubelet check and reports that instead).
    pub kubelets: Option<Vec<(NodeName, KubeVersion)>>,
    /// The version to upgrade to.
    pub target: KubeVersion,
    /// `--allow-experimental-upgrades`: any pre-release target is fine.
    pub allow_experimental_upgrades: bool,
    /// `--allow-release-candidate-upgrades`: `-rc` targets are fine.
    pub allow_release_candidate_upgrades: bool,
    /// The minimum control-plane version to enforce. `None` (the normal case) derives it from
    /// the kubeadm version as a release build does ([`minimum_control_plane_version`]);
    /// a kubeadm built without version information (dev builds, kubeadm's own unit tests) uses
    /// the placeholder `v1.0.0` instead.
    pub minimum_control_plane: Option<KubeVersion>,
    /// The rules to judge by. `None` (the normal case): the edition of the kubeadm version, as
    /// a release build decides ([`Edition::of`]). kubeadm's own unit tests run one build's
    /// rules against made-up kubeadm versions; naming the edition does the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edition: Option<Edition>,
}

impl UpgradeRequest {
    /// A request with no kubelets listed yet (an empty list, not an unknown one) and neither
    /// `--allow-*-upgrades` flag.
    pub fn new(cluster: KubeVersion, kubeadm: KubeVersion, target: KubeVersion) -> Self {
        UpgradeRequest {
            cluster,
            kubeadm,
            kubelets: Some(Vec::new()),
            target,
            allow_experimental_upgrades: false,
            allow_release_candidate_upgrades: false,
            minimum_control_plane: None,
            edition: None,
        }
    }

    /// The rules this request is judged by: the edition it names, else its kubeadm's.
    pub fn rules(&self) -> Edition {
        self.edition.unwrap_or_else(|| Edition::of(&self.kubeadm))
    }

    /// Judges by `edition` whatever the kubeadm version.
    pub fn with_edition(mut self, edition: Edition) -> Self {
        self.edition = Some(edition);
        self
    }

    /// The request for a cluster state: the cluster version is the oldest API server's (the
    /// one kubeadm may be answered by), the kubelets are every node's. `None` when no node
    /// reports a kube-apiserver version.
    pub fn for_cluster(
        state: &ClusterState,
        kubeadm: KubeVersion,
        target: KubeVersion,
    ) -> Option<Self> {
        let cluster = state.apiserver_min()?.clone();
        let kubelets = state
            .nodes
            .iter()
            .filter_map(|n| n.kubelet().map(|k| (n.name.clone(), k.clone())))
            .collect();
        Some(UpgradeRequest {
            kubelets: Some(kubelets),
            ..UpgradeRequest::new(cluster, kubeadm, target)
        })
    }

    /// Sets the kubelet versions, node by node.
    pub fn with_kubelets(
        mut self,
        kubelets: impl IntoIterator<Item = (NodeName, KubeVersion)>,
    ) -> Self {
        self.kubelets = Some(kubelets.into_iter().collect());
        self
    }

    /// Marks the kubelet versions as unknown (kubeadm could not list them).
    pub fn with_kubelets_unknown(mut self) -> Self {
        self.kubelets = None;
        self
    }

    /// Sets `--allow-experimental-upgrades`.
    pub fn allow_experimental_upgrades(mut self, yes: bool) -> Self {
        self.allow_experimental_upgrades = yes;
        self
    }

    /// Sets `--allow-release-candidate-upgrades`.
    pub fn allow_release_candidate_upgrades(mut self, yes: bool) -> Self {
        self.allow_release_candidate_upgrades = yes;
        self
    }
}

/// Kubelets of one version that are too old for the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeletGroup {
    /// The kubelet version.
    pub version: KubeVersion,
    /// The nodes running it, sorted.
    pub nodes: Vec<NodeName>,
}

/// One thing kubeadm objects to. Whether it is mandatory or skippable is given by the list it
/// is in ([`VersionPolicyFindings`]); the variant says what and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Finding {
    /// The kubelet versions could not be read, so their check was skipped.
    KubeletVersionsUnknown,
    /// The target is older than the oldest control plane this kubeadm can deploy.
    BelowMinimumControlPlane {
        /// The target version.
        target: KubeVersion,
        /// The oldest version kubeadm accepts.
        minimum: KubeVersion,
        /// The kubeadm version it derives from.
        kubeadm: KubeVersion,
    },
    /// The target is more than one minor above the cluster: kubeadm upgrades one minor at a
    /// time.
    UpgradeSkewTooLarge {
        /// The target version.
        target: KubeVersion,
        /// The cluster version.
        cluster: KubeVersion,
    },
    /// The target is more than one minor below the cluster: kubeadm downgrades one minor at a
    /// time.
    DowngradeSkewTooLarge {
        /// The target version.
        target: KubeVersion,
        /// The cluster version.
        cluster: KubeVersion,
    },
    /// The target is of a newer minor than kubeadm itself, which cannot know how to set it up.
    TargetMinorAboveKubeadm {
        /// The target version.
        target: KubeVersion,
        /// The kubeadm version.
        kubeadm: KubeVersion,
    },
    /// The target is a newer patch than kubeadm: upgrade kubeadm first (possible with
    /// `--force`, not recommended).
    TargetPatchAboveKubeadm {
        /// The target version.
        target: KubeVersion,
        /// The kubeadm version.
        kubeadm: KubeVersion,
    },
    /// kubeadm is of a newer minor (or major) than the target: a kubeadm only upgrades to its
    /// own minor.
    KubeadmNewerThanTarget {
        /// The kubeadm version.
        kubeadm: KubeVersion,
        /// The target version.
        target: KubeVersion,
    },
    /// The target is a pre-release and the matching `--allow-*-upgrades` flag was not given.
    UnstableTargetNotAllowed {
        /// The target version.
        target: KubeVersion,
    },
    /// Some kubelets are more minors older than the target than kubeadm's edition allows.
    KubeletsTooOld {
        /// The target version.
        target: KubeVersion,
        /// How many minors older the edition allows ([`Edition::max_kubelet_skew`]).
        max_skew: u64,
        /// The kubelets at fault, oldest version first.
        kubelets: Vec<KubeletGroup>,
    },
}

impl Finding {
    /// A stable identifier for the check (`kubeadm/upgrade-skew`).
    pub fn id(&self) -> &'static str {
        match self {
            Finding::KubeletVersionsUnknown => "kubeadm/kubelet-versions-unknown",
            Finding::BelowMinimumControlPlane { .. } => "kubeadm/minimum-control-plane",
            Finding::UpgradeSkewTooLarge { .. } => "kubeadm/upgrade-skew",
            Finding::DowngradeSkewTooLarge { .. } => "kubeadm/downgrade-skew",
            Finding::TargetMinorAboveKubeadm { .. } => "kubeadm/target-minor-above-kubeadm",
            Finding::TargetPatchAboveKubeadm { .. } => "kubeadm/target-patch-above-kubeadm",
            Finding::KubeadmNewerThanTarget { .. } => "kubeadm/kubeadm-newer-than-target",
            Finding::UnstableTargetNotAllowed { .. } => "kubeadm/unstable-target",
            Finding::KubeletsTooOld { .. } => "kubeadm/kubelet-skew",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::KubeletVersionsUnknown => {
                f.write_str("the kubelet versions could not be read, so their skew was not checked")
            }
            Finding::BelowMinimumControlPlane {
                target,
                minimum,
                kubeadm,
            } => write!(
                f,
                "target {target} is older than {minimum}, the oldest control plane kubeadm {kubeadm} can deploy"
            ),
            Finding::UpgradeSkewTooLarge { target, cluster } => write!(
                f,
                "target {target} is more than {MAX_UPGRADE_MINOR_SKEW} minor above the cluster ({cluster}); kubeadm upgrades one minor at a time"
            ),
            Finding::DowngradeSkewTooLarge { target, cluster } => write!(
                f,
                "target {target} is more than {MAX_DOWNGRADE_MINOR_SKEW} minor below the cluster ({cluster}); kubeadm downgrades one minor at a time"
            ),
            Finding::TargetMinorAboveKubeadm { target, kubeadm } => write!(
                f,
                "target {target} is of a newer minor than kubeadm {kubeadm}; install kubeadm {} first",
                target.minor()
            ),
            Finding::TargetPatchAboveKubeadm { target, kubeadm } => write!(
                f,
                "target {target} is newer than kubeadm {kubeadm}; upgrade kubeadm first"
            ),
            Finding::KubeadmNewerThanTarget { kubeadm, target } => write!(
                f,
                "kubeadm {kubeadm} only upgrades to Kubernetes {}, not to {target}",
                kubeadm.minor()
            ),
            Finding::UnstableTargetNotAllowed { target } => {
                if target.phase() == crate::ReleasePhase::Rc {
                    write!(
                        f,
                        "target {target} is a release candidate; it needs --allow-release-candidate-upgrades or --allow-experimental-upgrades"
                    )
                } else {
                    write!(
                        f,
                        "target {target} is not a stable release; it needs --allow-experimental-upgrades"
                    )
                }
            }
            Finding::KubeletsTooOld {
                target,
                max_skew,
                kubelets,
            } => {
                let minors = if *max_skew == 1 { "minor" } else { "minors" };
                write!(
                    f,
                    "kubelets more than {max_skew} {minors} older than target {target}:"
                )?;
                for (i, g) in kubelets.iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    let nodes: Vec<&str> = g.nodes.iter().map(NodeName::as_str).collect();
                    write!(f, "{sep}{} on {}", g.version, nodes.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// kubeadm's answer: findings that stop the upgrade outright, and findings `--force` skips.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionPolicyFindings {
    /// Findings that stop the upgrade whatever the flags.
    pub mandatory: Vec<Finding>,
    /// Findings that stop the upgrade unless `--force` is given.
    pub skippable: Vec<Finding>,
}

impl VersionPolicyFindings {
    /// True when kubeadm finds nothing to object to.
    pub fn is_clear(&self) -> bool {
        self.mandatory.is_empty() && self.skippable.is_empty()
    }
    /// Whether kubeadm would go ahead, with or without `--force`.
    pub fn allows(&self, force: bool) -> bool {
        self.mandatory.is_empty() && (force || self.skippable.is_empty())
    }
}

impl fmt::Display for VersionPolicyFindings {
    /// One line per finding: `mandatory: ...` or `skippable (--force): ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clear() {
            return writeln!(f, "kubeadm: no objections");
        }
        for m in &self.mandatory {
            writeln!(f, "mandatory: {m}")?;
        }
        for s in &self.skippable {
            writeln!(f, "skippable (--force): {s}")?;
        }
        Ok(())
    }
}

/// What kubeadm decides before `kubeadm upgrade apply`, by the request's
/// [rules](UpgradeRequest::rules); see the [module docs](self) for every check.
pub fn enforce_version_policies(request: &UpgradeRequest) -> VersionPolicyFindings {
    let UpgradeRequest {
        cluster,
        kubeadm,
        kubelets,
        target,
        ..
    } = request;
    let rules = request.rules();
    let mut out = VersionPolicyFindings::default();
    let unstable = pre_release(target).is_some();
    // A finding kubeadm softens to skippable when the target is a pre-release.
    let hard = |out: &mut VersionPolicyFindings, finding: Finding| {
        if unstable {
            out.skippable.push(finding);
        } else {
            out.mandatory.push(finding);
        }
    };

    if kubelets.is_none() {
        out.skippable.push(Finding::KubeletVersionsUnknown);
    }

    let minimum = request
        .minimum_control_plane
        .clone()
        .unwrap_or_else(|| minimum_control_plane_version(kubeadm));
    if semver_cmp(target, &minimum) == Ordering::Less {
        out.mandatory.push(Finding::BelowMinimumControlPlane {
            target: target.clone(),
            minimum,
            kubeadm: kubeadm.clone(),
        });
    }

    let (t, c, k) = (
        target.minor_number(),
        cluster.minor_number(),
        kubeadm.minor_number(),
    );
    if t > c.saturating_add(MAX_UPGRADE_MINOR_SKEW) {
        hard(
            &mut out,
            Finding::UpgradeSkewTooLarge {
                target: target.clone(),
                cluster: cluster.clone(),
            },
        );
    }
    if t < c.saturating_sub(MAX_DOWNGRADE_MINOR_SKEW) {
        hard(
            &mut out,
            Finding::DowngradeSkewTooLarge {
                target: target.clone(),
                cluster: cluster.clone(),
            },
        );
    }

    if semver_cmp(kubeadm, target) == Ordering::Less {
        if t > k {
            hard(
                &mut out,
                Finding::TargetMinorAboveKubeadm {
                    target: target.clone(),
                    kubeadm: kubeadm.clone(),
                },
            );
        } else {
            out.skippable.push(Finding::TargetPatchAboveKubeadm {
                target: target.clone(),
                kubeadm: kubeadm.clone(),
            });
        }
    }

    if kubeadm.major() > target.major() || k > t {
        out.skippable.push(Finding::KubeadmNewerThanTarget {
            kubeadm: kubeadm.clone(),
            target: target.clone(),
        });
    }

    if let Some(pre) = pre_release(target) {
        let rc_allowed = pre.starts_with("rc") && request.allow_release_candidate_upgrades;
        if !request.allow_experimental_upgrades && !rc_allowed {
            out.skippable.push(Finding::UnstableTargetNotAllowed {
                target: target.clone(),
            });
        }
    }

    if let Some(kubelets) = kubelets
        && let Some(finding) = kubelets_too_old(&rules, kubelets, target)
    {
        out.skippable.push(finding);
    }
    out
}

/// The kubelets `rules` find too old for `target`, grouped by version (oldest first, each
/// group's nodes sorted); none when every kubelet is recent enough.
fn kubelets_too_old(
    rules: &Edition,
    kubelets: &[(NodeName, KubeVersion)],
    target: &KubeVersion,
) -> Option<Finding> {
    let mut groups: Vec<KubeletGroup> = Vec::new();
    for (node, version) in kubelets {
        if !rules.kubelet_too_old(version, target) {
            continue;
        }
        match groups.iter_mut().find(|g| &g.version == version) {
            Some(g) => g.nodes.push(node.clone()),
            None => groups.push(KubeletGroup {
                version: version.clone(),
                nodes: vec![node.clone()],
            }),
        }
    }
    if groups.is_empty() {
        return None;
    }
    groups.sort_by(|a, b| a.version.cmp(&b.version));
    for g in &mut groups {
        g.nodes.sort();
    }
    Some(Finding::KubeletsTooOld {
        target: target.clone(),
        max_skew: rules.max_kubelet_skew,
        kubelets: groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::v;

    #[test]
    fn minimums_follow_the_kubeadm_minor() {
        assert_eq!(
            minimum_control_plane_version(&v("v1.29.0-rc.1")),
            v("v1.28.0")
        );
        assert_eq!(minimum_kubelet_version(&v("v1.29.15")), v("v1.26.0"));
        assert_eq!(minimum_kubelet_version(&v("v1.28.15")), v("v1.27.0"));
        assert_eq!(
            minimum_kubelet_version(&v("v1.2.0")),
            v("v1.1.0"),
            "the oldest edition"
        );
    }
}
