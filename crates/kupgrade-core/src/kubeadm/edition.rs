//! kubeadm's upgrade rules by release: which kubeadm decides by which edition ([`Edition`]).
use serde::{Deserialize, Serialize};

use crate::{KubeVersion, Minor};

/// One edition of the rules `kubeadm upgrade apply` enforces: what every kubeadm from
/// [`since`](Edition::since) until the next edition decides.
///
/// `kubeadm upgrade apply` has enforced the same checks, in the same order and with the same
/// mandatory and skippable lists, since kubeadm 1.16 (when a target equal to the minimum
/// control-plane version stopped being refused). What changed since is the kubelet skew:
///
/// | kubeadm | kubelets may be older than the target by | where it comes from |
/// |---|---|---|
/// | 1.16 to 1.28 | 1 minor | `MaximumAllowedMinorVersionKubeletSkew = 1` in `cmd/kubeadm/app/phases/upgrade/policy.go`; `MinimumKubeletVersion` one minor below kubeadm's |
/// | 1.29 and later | 3 minors | kubernetes/kubernetes#120825 (kubeadm's side of KEP 3935, "oldest node, newest control plane"); `MinimumKubeletVersion` three minors below |
///
/// What every edition shares: the control plane moves at most one minor up or down per
/// `upgrade apply` (mandatory; skippable for a pre-release target), the oldest control plane
/// kubeadm deploys is one minor below its own (`major.(minor - 1).0`), the kubelet check lists
/// every node's kubelet and compares minor numbers alone, and a pre-release is anything after
/// the patch (`--allow-experimental-upgrades`, or `--allow-release-candidate-upgrades` for
/// `-rc` tags).
///
/// ```
/// use kupgrade_core::kubeadm::Edition;
/// use kupgrade_core::KubeVersion;
///
/// let v = |s: &str| s.parse::<KubeVersion>().unwrap();
/// let kubeadm = v("v1.28.15");
/// let rules = Edition::of(&kubeadm);
/// assert_eq!(rules, Edition::FROM_1_16);
/// // kubeadm 1.28 objects to a 1.26 kubelet; 1.29 would not object to it for a 1.29 target.
/// assert!(rules.kubelet_too_old(&v("v1.26.15"), &kubeadm));
/// assert!(!Edition::of(&v("v1.29.0")).kubelet_too_old(&v("v1.26.15"), &v("v1.29.0")));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Edition {
    /// The first kubeadm minor that decides by these rules.
    pub since: Minor,
    /// How many minors a kubelet may be older than the target before kubeadm objects (a
    /// skippable finding: `--force` goes ahead anyway).
    pub max_kubelet_skew: u64,
}

impl Edition {
    /// kubeadm 1.16 to 1.28: kubelets at most one minor older than the target.
    pub const FROM_1_16: Edition = Edition {
        since: Minor::new(1, 16),
        max_kubelet_skew: 1,
    };

    /// kubeadm 1.29 and later: kubelets at most three minors older than the target.
    pub const FROM_1_29: Edition = Edition {
        since: Minor::new(1, 29),
        max_kubelet_skew: super::MAX_KUBELET_MINOR_SKEW,
    };

    /// Every edition, oldest first.
    pub const ALL: [Edition; 2] = [Edition::FROM_1_16, Edition::FROM_1_29];

    /// The edition a release build of kubeadm `kubeadm` decides by: the newest one whose
    /// [`since`](Edition::since) is not above its minor. A kubeadm older than 1.16 gets the
    /// oldest edition (those releases also refused a target equal to their minimum control
    /// plane, which is not modelled: nothing here plans for them).
    pub fn of(kubeadm: &KubeVersion) -> Edition {
        let minor = kubeadm.minor();
        Edition::ALL
            .iter()
            .rev()
            .find(|e| e.since <= minor)
            .copied()
            .unwrap_or(Edition::ALL[0])
    }

    /// Whether kubeadm objects to a kubelet at `kubelet` when upgrading to `target`: the
    /// target's minor number is more than [`max_kubelet_skew`](Edition::max_kubelet_skew)
    /// above the kubelet's (kubeadm compares minor numbers alone, not majors).
    pub fn kubelet_too_old(&self, kubelet: &KubeVersion, target: &KubeVersion) -> bool {
        target.minor_number() > kubelet.minor_number().saturating_add(self.max_kubelet_skew)
    }

    /// The oldest kubelet kubeadm `kubeadm` supports under this edition (kubeadm's
    /// `MinimumKubeletVersion`): `major.(minor - skew).0`, saturating at 0.
    pub fn minimum_kubelet(&self, kubeadm: &KubeVersion) -> KubeVersion {
        KubeVersion::new(
            kubeadm.major(),
            kubeadm.minor_number().saturating_sub(self.max_kubelet_skew),
            0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::v;

    #[test]
    fn each_kubeadm_minor_gets_its_edition() {
        for (kubeadm, edition) in [
            ("v1.10.13", Edition::FROM_1_16),
            ("v1.16.0", Edition::FROM_1_16),
            ("v1.24.17", Edition::FROM_1_16),
            ("v1.28.15", Edition::FROM_1_16),
            ("v1.29.0-rc.1", Edition::FROM_1_29),
            ("v1.29.0", Edition::FROM_1_29),
            ("v1.35.2", Edition::FROM_1_29),
            ("v2.0.0", Edition::FROM_1_29),
        ] {
            assert_eq!(Edition::of(&v(kubeadm)), edition, "{kubeadm}");
        }
        assert!(Edition::ALL.windows(2).all(|w| w[0].since < w[1].since));
    }

    #[test]
    fn the_kubelet_check_compares_minor_numbers() {
        let old = Edition::FROM_1_16;
        assert!(!old.kubelet_too_old(&v("v1.27.0"), &v("v1.28.15")));
        assert!(old.kubelet_too_old(&v("v1.26.15"), &v("v1.28.0")));
        let new = Edition::FROM_1_29;
        assert!(!new.kubelet_too_old(&v("v1.26.0"), &v("v1.29.15")));
        assert!(new.kubelet_too_old(&v("v1.25.16"), &v("v1.29.0")));
        // Minor numbers alone: a kubelet of another major is judged by its minor.
        assert!(!new.kubelet_too_old(&v("v0.29.0"), &v("v1.30.0")));
        assert!(!old.kubelet_too_old(&v("v1.30.0"), &v("v1.28.0")), "newer");
    }

    #[test]
    fn minimum_kubelets_by_edition() {
        assert_eq!(
            Edition::FROM_1_16.minimum_kubelet(&v("v1.28.3")),
            v("v1.27.0")
        );
        assert_eq!(
            Edition::FROM_1_29.minimum_kubelet(&v("v1.29.3")),
            v("v1.26.0")
        );
        assert_eq!(
            Edition::FROM_1_29.minimum_kubelet(&v("v1.2.0")),
            v("v1.0.0")
        );
    }

    #[test]
    fn serde_names() {
        assert_eq!(
            serde_json::to_string(&Edition::FROM_1_29).unwrap(),
            r#"{"since":"1.29","maxKubeletSkew":3}"#
        );
    }
}
