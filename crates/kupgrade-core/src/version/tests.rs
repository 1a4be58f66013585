use super::*;
use crate::testing::v;

#[test]
fn parses_the_forms_kubernetes_uses() {
    for (input, shown) in [
        ("v1.29.3", "v1.29.3"),
        ("1.29.3", "v1.29.3"),
        ("v1.30.0-alpha.1", "v1.30.0-alpha.1"),
        ("v1.30.0-beta.2", "v1.30.0-beta.2"),
        ("v1.30.0-rc.0", "v1.30.0-rc.0"),
        ("v1.30.0-alpha.1.123+4f8c2ab", "v1.30.0-alpha.1.123+4f8c2ab"),
        ("v1.29.3+k3s1", "v1.29.3+k3s1"),
        ("v1.29.3-eks-5e0fdde", "v1.29.3-eks-5e0fdde"),
        ("v1.28.9-gke.1000000", "v1.28.9-gke.1000000"),
        ("3.5.9-0", "v3.5.9-0"),
    ] {
        assert_eq!(v(input).to_string(), shown, "{input}");
    }
    assert_eq!(v("v1.30.0-rc.0").phase(), ReleasePhase::Rc);
    assert_eq!(v("v1.29.3-eks-5e0fdde").phase(), ReleasePhase::Stable);
    assert_eq!(v("v1.29.3-eks-5e0fdde").release(), v("1.29.3"));
    assert_eq!(v("v1.29.3+k3s1").build(), Some("k3s1"));
    assert_eq!(v("1.30.0-rc.1").to_plain_string(), "1.30.0-rc.1");
}

#[test]
fn errors_quote_the_input_and_say_where() {
    for (input, msg) in [
        (
            "1.29.x",
            r#""1.29.x" is not a version: unexpected character 'x' in patch"#,
        ),
        ("", r#""" is not a version: empty string"#),
        (
            "1.29",
            r#""1.29" is not a version: missing patch after minor"#,
        ),
        ("1", r#""1" is not a version: missing minor after major"#),
        (
            "v1.029.1",
            r#""v1.029.1" is not a version: leading zero in minor"#,
        ),
        (
            "1.2.3-",
            r#""1.2.3-" is not a version: empty pre-release or vendor suffix"#,
        ),
        (
            "1.2.3-rc..1",
            r#""1.2.3-rc..1" is not a version: empty identifier in pre-release or vendor suffix"#,
        ),
        (
            "1.2.3+a b",
            r#""1.2.3+a b" is not a version: unexpected character ' ' in build metadata"#,
        ),
        (
            " 1.2.3",
            r#"" 1.2.3" is not a version: leading or trailing whitespace"#,
        ),
        (
            "x1.2.3",
            r#""x1.2.3" is not a version: unexpected character 'x' in major"#,
        ),
        (
            "1.2.99999999999999999999",
            r#""1.2.99999999999999999999" is not a version: patch is too large"#,
        ),
    ] {
        assert_eq!(KubeVersion::parse(input).unwrap_err().to_string(), msg);
    }
    assert_eq!(KubeVersion::parse("1.29.x").unwrap_err().offset(), 5);
    assert_eq!(
        Minor::parse("4294967296.1").unwrap_err().to_string(),
        r#""4294967296.1" is not a minor: major is too large"#
    );
    let last = Minor::parse("1.18446744073709551615").unwrap();
    assert_eq!(last.next(), last);
    assert_eq!(Minor::new(1, 29).next(), Minor::new(1, 30));
    assert_eq!(
        KubeVersion::parse("65536.1.0").unwrap_err().to_string(),
        r#""65536.1.0" is not a version: major is too large"#
    );
    assert_eq!(KubeVersion::parse("65535.1.0").unwrap().major(), 65535);
}

#[test]
fn numbers_with_a_leading_zero_are_refused_where_semver_refuses_them() {
    for (input, msg, offset) in [
        (
            "v1.30.0-alpha.01",
            r#""v1.30.0-alpha.01" is not a version: leading zero in pre-release number"#,
            14,
        ),
        (
            "v1.30.0-rc.00",
            r#""v1.30.0-rc.00" is not a version: leading zero in pre-release number"#,
            11,
        ),
        (
            "v1.30.0-beta.1.007+abc",
            r#""v1.30.0-beta.1.007+abc" is not a version: leading zero in pre-release identifier "007""#,
            15,
        ),
        (
            "v01.30.0",
            r#""v01.30.0" is not a version: leading zero in major"#,
            1,
        ),
        (
            "1.30.00",
            r#""1.30.00" is not a version: leading zero in patch"#,
            5,
        ),
        (
            "1.2.4294967296",
            r#""1.2.4294967296" is not a version: patch is too large"#,
            4,
        ),
    ] {
        let err = KubeVersion::parse(input).unwrap_err();
        assert_eq!(err.to_string(), msg);
        assert_eq!(err.offset(), offset, "{input}");
    }
    // Zero itself, identifiers that are not all digits, vendor suffixes (etcd's image
    // revision, commit hashes) and build metadata keep parsing, and print as written.
    for text in [
        "v1.30.0-alpha.0",
        "v1.30.0-alpha.1.0",
        "v1.30.0-alpha.1.0a",
        "v3.5.9-0",
        "v1.29.3-eks-0123456",
        "v1.28.9-gke.0100",
        "v1.29.3+k3s.01",
        "v65535.18446744073709551615.4294967295",
    ] {
        assert_eq!(v(text).to_string(), text);
    }
    assert_eq!(
        Minor::parse("1.29.3").unwrap_err().to_string(),
        r#""1.29.3" is not a minor: a minor has no patch (write 1.29, not 1.29.3)"#
    );
}

#[test]
fn ordering_follows_the_documented_rules() {
    let sorted = [
        "v1.29.3",
        "v1.29.3+k3s1",
        "v1.29.3-eks-5e0fdde",
        "v1.29.3-gke.999",
        "v1.29.3-gke.1000",
        "v1.30.0-alpha.0",
        "v1.30.0-alpha.1",
        "v1.30.0-alpha.1.12",
        "v1.30.0-alpha.2",
        "v1.30.0-beta.0",
        "v1.30.0-rc.0",
        "v1.30.0-rc.1",
        "v1.30.0",
        "v1.30.1",
        "v1.31.0",
    ];
    for w in sorted.windows(2) {
        assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
    }
}

#[test]
fn versions_are_compact() {
    assert!(
        size_of::<KubeVersion>() <= 24,
        "{}",
        size_of::<KubeVersion>()
    );
    assert!(size_of::<Option<KubeVersion>>() <= 24);
    // Plain releases need no box; the textual parts share one.
    assert!(v("v1.29.3").extra.is_none());
    assert!(v("v1.29.3+k3s1").extra.is_some());
    assert_eq!(v("v1.29.3-eks-5e0fdde+b.1").release(), v("1.29.3"));
    assert!(v("v1.29.3-eks-5e0fdde").release().extra.is_none());
    assert_eq!(v("v1.30.0-rc.1+abc").release().to_string(), "v1.30.0-rc.1");
    assert_eq!(format!("[{:>10}]", v("1.2.3")), "[    v1.2.3]");
}

#[test]
fn serde_uses_strings() {
    let x = v("v1.28.9-gke.1000000");
    let json = serde_json::to_string(&x).unwrap();
    assert_eq!(json, r#""v1.28.9-gke.1000000""#);
    assert_eq!(serde_json::from_str::<KubeVersion>(&json).unwrap(), x);
    let err = serde_json::from_str::<KubeVersion>(r#""1.x""#).unwrap_err();
    assert!(
        err.to_string()
            .contains("unexpected character 'x' in minor"),
        "{err}"
    );
    assert_eq!(serde_json::to_string(&x.minor()).unwrap(), r#""1.28""#);
}

#[test]
fn semver_interop_keeps_vendor_builds_stable() {
    let s = v("v1.29.3-eks-5e0fdde").to_semver();
    assert!(s.pre.is_empty());
    assert_eq!(s.build.as_str(), "eks-5e0fdde");
    assert_eq!(v("v1.30.0-rc.1").to_semver().pre.as_str(), "rc.1");
}
