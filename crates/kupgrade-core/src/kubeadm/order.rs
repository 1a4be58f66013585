//! Versions ordered as kubeadm orders them: semantic-version rules, build metadata ignored,
//! every suffix after the patch a pre-release (vendor suffixes included).
use std::cmp::Ordering;

use crate::KubeVersion;

/// The pre-release part as kubeadm's semantic versions see it: a pre-release tag or a vendor
/// suffix.
pub(super) fn pre_release(v: &KubeVersion) -> Option<String> {
    v.pre_release()
        .map(ToString::to_string)
        .or_else(|| v.vendor().map(str::to_string))
}

/// Semantic-version order with build metadata ignored, vendor suffixes as pre-releases.
pub(super) fn semver_cmp(a: &KubeVersion, b: &KubeVersion) -> Ordering {
    (a.major(), a.minor_number(), a.patch())
        .cmp(&(b.major(), b.minor_number(), b.patch()))
        .then_with(|| match (pre_release(a), pre_release(b)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => cmp_pre(&x, &y),
        })
}

/// Semantic-version 2.0 pre-release precedence: dot-separated identifiers, numeric ones
/// numerically and below alphanumeric ones, a longer list above its prefix.
fn cmp_pre(a: &str, b: &str) -> Ordering {
    let mut xs = a.split('.');
    let mut ys = b.split('.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
                let o = match (numeric(x), numeric(y)) {
                    (true, true) => x
                        .trim_start_matches('0')
                        .len()
                        .cmp(&y.trim_start_matches('0').len())
                        .then_with(|| x.trim_start_matches('0').cmp(y.trim_start_matches('0'))),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::v;

    #[test]
    fn semver_order_as_kubeadm_sees_it() {
        let sorted = [
            "v1.30.0-alpha.1",
            "v1.30.0-alpha.2",
            "v1.30.0-alpha.10",
            "v1.30.0-beta.0",
            "v1.30.0-eks-1",
            "v1.30.0-rc.0",
            "v1.30.0-rc.1",
            "v1.30.0",
            "v1.30.1",
        ];
        for w in sorted.windows(2) {
            assert_eq!(semver_cmp(&v(w[0]), &v(w[1])), Ordering::Less, "{w:?}");
            assert_eq!(semver_cmp(&v(w[1]), &v(w[0])), Ordering::Greater, "{w:?}");
        }
        assert_eq!(
            semver_cmp(&v("v1.30.0+build"), &v("v1.30.0")),
            Ordering::Equal
        );
        assert_eq!(cmp_pre("rc.1", "rc.1.5"), Ordering::Less);
    }
}
