//! The names of replacement nodes (`worker-1-v1-30-10`) and the base names they share, and
//! where backups go.
use crate::ports::RUN_TOKEN;
use crate::{KubeVersion, NodeName};

/// The name without a replacement suffix (`-v1-30-10`).
pub(super) fn base_name(name: &NodeName) -> String {
    let s = name.as_str();
    let (first, rest) = s.split_once('.').map_or((s, ""), |(a, b)| (a, b));
    let base = strip_version_suffix(first);
    if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{rest}")
    }
}

fn strip_version_suffix(label: &str) -> &str {
    // `-v` followed by at least three dash-separated numbers, at the end.
    if let Some(i) = label.rfind("-v") {
        let tail = &label[i + 2..];
        let parts: Vec<&str> = tail.split('-').collect();
        if parts.len() >= 3
            && parts[..3]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && parts[3..]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
            && i > 0
        {
            return &label[..i];
        }
    }
    label
}

/// The name of the node that replaces `old` at `version`: the first DNS label gets a
/// `-v1-30-10` suffix (an earlier suffix is replaced), shortened to fit 63 characters.
#[cfg(test)]
fn replacement_name(old: &NodeName, version: &KubeVersion) -> Option<NodeName> {
    replacement_with(old, &replacement_suffix(version))
}

/// The suffix of replacements at `version` (`-v1-30-10`).
pub(super) fn replacement_suffix(version: &KubeVersion) -> String {
    format!(
        "-v{}",
        version
            .to_plain_string()
            .replace(['.', '+'], "-")
            .to_ascii_lowercase()
    )
}

/// The name of the node that replaces `old` at the version whose suffix
/// ([`replacement_suffix`]) is `suffix`: the first DNS label gets the suffix (an earlier one
/// is replaced), shortened to fit 63 characters.
pub(super) fn replacement_with(old: &NodeName, suffix: &str) -> Option<NodeName> {
    let s = old.as_str();
    let (first, rest) = s.split_once('.').map_or((s, ""), |(a, b)| (a, b));
    let base = strip_version_suffix(first);
    let keep = 63usize.checked_sub(suffix.len())?;
    let base = base[..base.len().min(keep)].trim_end_matches('-');
    let name = if rest.is_empty() {
        format!("{base}{suffix}")
    } else {
        format!("{base}{suffix}.{rest}")
    };
    NodeName::new(&name).ok()
}

/// Where a backup or snapshot called `name` goes under the directory `dir`: in the run's own
/// directory, named by [`RUN_TOKEN`] (the run puts its id there), so that no run writes over
/// what an earlier run kept.
pub(super) fn backup_path(dir: &str, name: &str) -> String {
    format!("{}/{RUN_TOKEN}/{name}", dir.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_names() {
        let v: KubeVersion = "v1.30.10".parse().unwrap();
        let n = |s: &str| NodeName::new(s).unwrap();
        assert_eq!(
            replacement_name(&n("worker-1"), &v).unwrap().as_str(),
            "worker-1-v1-30-10"
        );
        assert_eq!(
            replacement_name(&n("worker-1-v1-29-3"), &v)
                .unwrap()
                .as_str(),
            "worker-1-v1-30-10"
        );
        assert_eq!(
            replacement_name(&n("ip-10-0-2-20.ec2.internal"), &v)
                .unwrap()
                .as_str(),
            "ip-10-0-2-20-v1-30-10.ec2.internal"
        );
        let long = n(&"a".repeat(63));
        let r = replacement_name(&long, &v).unwrap();
        assert_eq!(r.as_str().len(), 63);
        assert!(r.as_str().ends_with("-v1-30-10"));
        assert_eq!(base_name(&n("worker-1-v1-30-10")), "worker-1");
        assert_eq!(base_name(&n("v1-2-3")), "v1-2-3");
    }
}
