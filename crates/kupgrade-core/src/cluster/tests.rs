use super::*;

#[test]
fn node_names_follow_rfc_1123() {
    for ok in ["w-1", "cp1.example.com", "a", "1node"] {
        assert!(NodeName::new(ok).is_ok(), "{ok}");
    }
    for (bad, why) in [
        ("", "it is empty"),
        (
            "W-1",
            "'W' is not allowed (only lowercase letters, digits, '-' and '.')",
        ),
        ("-w", "a label starts or ends with '-'"),
        ("a..b", "it has an empty label between dots"),
        (
            "a;rm -rf /",
            "';' is not allowed (only lowercase letters, digits, '-' and '.')",
        ),
        (
            "w_1",
            "'_' is not allowed (only lowercase letters, digits, '-' and '.')",
        ),
    ] {
        assert_eq!(NodeName::new(bad).unwrap_err().reason, why, "{bad}");
    }
    assert!(NodeName::new(&"a".repeat(64)).is_err());
    assert!(NodeName::new(&["a"; 128].join(".")).is_err());
}

#[test]
fn short_and_long_names_behave_alike() {
    use std::collections::HashSet;
    // 22 bytes fit inline, 23 do not: both kinds compare, order, hash and print by text.
    let short = NodeName::new("ip-10-0-1-10.internal").unwrap();
    let edge = NodeName::new("ip-10-0-1-10.internal0").unwrap();
    let long = NodeName::new("ip-10-0-1-10.ec2.internal").unwrap();
    assert!(matches!(edge.0, Name::Inline { .. }));
    assert!(matches!(long.0, Name::Shared(_)));
    assert_eq!(edge.as_str(), "ip-10-0-1-10.internal0");
    assert_eq!(long.as_str(), "ip-10-0-1-10.ec2.internal");
    assert!(short < edge && long < short);
    assert_eq!(long.clone(), long);
    let set: HashSet<NodeName> = [short.clone(), edge.clone(), long.clone(), edge.clone()].into();
    assert_eq!(set.len(), 3);
    assert!(set.contains(&NodeName::new("ip-10-0-1-10.ec2.internal").unwrap()));
    assert_eq!(
        format!("{long} {edge:?}"),
        r#"ip-10-0-1-10.ec2.internal "ip-10-0-1-10.internal0""#
    );
    assert_eq!(String::from(short), "ip-10-0-1-10.internal");
    assert_eq!(
        serde_json::to_string(&long).unwrap(),
        r#""ip-10-0-1-10.ec2.internal""#
    );
    assert!(size_of::<NodeName>() <= 24 && size_of::<Option<NodeName>>() <= 24);
}

/// Large clusters are read node by node (skew checks, plans, a runner's state reads): a
/// node's size is the memory each pass streams through.
#[test]
fn nodes_are_compact() {
    assert!(
        size_of::<NodeVersions>() <= 9 * 24,
        "{}",
        size_of::<NodeVersions>()
    );
    assert!(size_of::<Node>() <= 296, "{}", size_of::<Node>());
}

/// `OsFamily::ALL` lists every variant (the schema lists what serde accepts), and each
/// displays as its serde name.
#[test]
fn os_family_all_is_every_family() {
    let schema = serde_json::to_value(schemars::schema_for!(OsFamily)).unwrap();
    let names: Vec<&str> = schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["const"].as_str().unwrap())
        .collect();
    let all: Vec<String> = OsFamily::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(names, all);
    for os in OsFamily::ALL {
        assert_eq!(serde_json::to_value(os).unwrap(), os.to_string());
    }
}

#[test]
fn nodes_behind_kube_proxy_are_those_at_another_release_than_the_target() {
    let v = |s: &str| -> KubeVersion { s.parse().unwrap() };
    let names = |state: &ClusterState, target: Option<&KubeVersion>| -> Vec<String> {
        state
            .nodes_behind_kube_proxy(target)
            .map(|(n, running)| format!("{}={running}", n.name))
            .collect()
    };
    let mut state = ClusterState::new(vec![
        Node::control_plane("cp-1", v("v1.30.2"), None).unwrap(),
        Node::worker("w-1", v("v1.30.2")).unwrap(),
        Node::worker("w-2", v("v1.29.6")).unwrap(),
        Node::worker("w-3", v("v1.30.2")).unwrap(),
    ]);
    // No DaemonSet version and no target: nothing to be behind.
    assert!(names(&state, None).is_empty());
    state.node_mut("w-2").unwrap().versions.kube_proxy = Some(v("v1.29.6"));
    assert!(names(&state, None).is_empty());

    state.addons.kube_proxy = Some(v("v1.30.2"));
    // A node's own value wins over the DaemonSet's; a vendor build of the target's
    // release is at it; a node ahead of the target is listed too.
    state.node_mut("w-3").unwrap().versions.kube_proxy = Some(v("v1.30.2-eks-1a2b3c"));
    state.node_mut("cp-1").unwrap().versions.kube_proxy = Some(v("v1.31.0"));
    assert_eq!(names(&state, None), ["cp-1=v1.31.0", "w-2=v1.29.6"]);
    // An explicit target: nodes without their own value run the DaemonSet's version.
    assert_eq!(
        names(&state, Some(&v("v1.29.6"))),
        ["cp-1=v1.31.0", "w-1=v1.30.2", "w-3=v1.30.2-eks-1a2b3c"]
    );
    // Patch releases differ: another release.
    assert_eq!(
        names(&state, Some(&v("v1.30.3"))),
        [
            "cp-1=v1.31.0",
            "w-1=v1.30.2",
            "w-2=v1.29.6",
            "w-3=v1.30.2-eks-1a2b3c"
        ]
    );
}

#[test]
fn versions_by_component() {
    let v: KubeVersion = "v1.28.9".parse().unwrap();
    let cp = Node::control_plane("cp-1", v.clone(), Some("3.5.9-0".parse().unwrap())).unwrap();
    assert_eq!(cp.versions.get(Component::KubeApiserver), Some(&v));
    assert_eq!(cp.versions.get(Component::CoreDns), None);
    assert_eq!(cp.versions.iter().count(), 7);
    let state = ClusterState::new(vec![
        cp,
        Node::worker("w-1", "v1.27.3".parse().unwrap()).unwrap(),
    ]);
    assert_eq!(state.control_plane_minor(), Some(Minor::new(1, 28)));
    assert_eq!(state.kubelet_min().unwrap().to_string(), "v1.27.3");
    assert_eq!(state.etcd_version().unwrap().to_string(), "v3.5.9-0");
}
