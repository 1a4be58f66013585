//! Strategies for versions and minors.
use super::*;

/// The version `text` spells, for tests and examples written by hand (`v("v1.29.3")`).
///
/// # Panics
/// When `text` is not a version.
pub fn v(text: &str) -> KubeVersion {
    KubeVersion::parse(text).unwrap_or_else(|e| panic!("{text:?} is not a version: {e}"))
}

/// A Kubernetes minor `1.0` to `1.40`.
pub fn minor() -> impl Strategy<Value = Minor> {
    (0u64..=40).prop_map(|m| Minor::new(1, m))
}

/// A version number: mostly small, sometimes anywhere in `u32` (the largest patch a version
/// holds).
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..40, 1 => any::<u32>().prop_map(u64::from)]
}

/// A major number: mostly small, sometimes anywhere in `u16` (the largest a version holds).
fn major() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..40, 1 => any::<u16>().prop_map(u64::from)]
}

/// A stable release with no suffix: `v1.M.P` with M up to 40.
pub fn stable_version() -> impl Strategy<Value = KubeVersion> {
    (0u64..=40, 0u64..=30).prop_map(|(m, p)| KubeVersion::new(1, m, p))
}

/// Any version the grammar allows: stable, pre-release (`-alpha.1`, `-rc.0`, `-beta.2.12`),
/// vendor builds (`-eks-5e0fdde`, `-gke.1000000`, `-0`) and build metadata (`+k3s1`), with
/// numbers from small to the largest a version holds.
pub fn version() -> impl Strategy<Value = KubeVersion> {
    version_text().prop_map(|s| KubeVersion::parse(&s).expect("generated version text parses"))
}

/// The text of a valid version, spelled with or without the leading `v`.
pub fn version_text() -> impl Strategy<Value = String> {
    let pre = (
        prop_oneof![Just("alpha"), Just("beta"), Just("rc")],
        proptest::option::of(0u64..20),
        // Further identifiers start with a letter (else they would be the number), and
        // numeric ones have no leading zero (the parser refuses `alpha.1.01`, as semver does).
        proptest::option::of("[a-z][a-z0-9]{0,3}(\\.([a-z][a-z0-9]{0,3}|[1-9][0-9]{0,3}|0)){0,2}"),
    )
        .prop_map(|(phase, n, rest)| {
            let mut s = format!("-{phase}");
            if let Some(n) = n {
                s.push_str(&format!(".{n}"));
            }
            if let Some(rest) = rest {
                s.push('.');
                s.push_str(&rest);
            }
            s
        });
    let vendor = prop_oneof![
        "eks-[0-9a-f]{7}",
        "eksbuild\\.[0-9]{1,2}",
        "gke\\.[0-9]{1,7}",
        "[0-9]{1,2}",
        "[a-z][a-zA-Z0-9]{0,6}([-.][a-zA-Z0-9]{1,6}){0,2}",
    ]
    .prop_filter("a pre-release phase is not a vendor", |s| {
        let head = s.split('.').next().unwrap_or_default();
        !matches!(head, "alpha" | "beta" | "rc")
    })
    .prop_map(|s| format!("-{s}"));
    let suffix = prop_oneof![
        3 => Just(String::new()),
        2 => pre,
        2 => vendor,
    ];
    let build = proptest::option::weighted(0.2, "[a-zA-Z0-9]{1,6}(\\.[a-zA-Z0-9]{1,6}){0,2}");
    (any::<bool>(), major(), number(), number(), suffix, build).prop_map(
        |(v, major, minor, patch, suffix, build)| {
            let mut s = format!(
                "{}{major}.{minor}.{patch}{suffix}",
                if v { "v" } else { "" }
            );
            if let Some(b) = build {
                s.push('+');
                s.push_str(&b);
            }
            s
        },
    )
}
