//! [`check_policy`]: the library's invariants run against any policy.
use super::*;

/// An invariant a policy broke, with the state that shows it.
#[derive(Clone, Debug)]
pub struct PolicyCheckError {
    /// Which invariant, and how it failed.
    pub reason: String,
    /// The smallest state proptest found that shows it, when it got that far.
    pub state: Option<Box<ClusterState>>,
}

impl fmt::Display for PolicyCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        if let Some(state) = &self.state {
            let yaml = serde_yaml_ng::to_string(state).unwrap_or_else(|e| e.to_string());
            write!(f, "\nthe state, as an inventory:\n{yaml}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyCheckError {}

/// Runs the library's invariants against `policy` on 256 generated states (a fixed seed, so
/// every run checks the same states) and panics with the smallest failing state, written as an
/// inventory. For use in a `#[test]`; see [`check_policy_with`] to choose the runner.
///
/// The invariants: evaluation is deterministic; `evaluate` equals `check_cluster` followed by
/// `check_node` for each node; `errors` is `evaluate`'s errors; the violations do not depend on
/// the order of the nodes; every violation names an existing node (or none), and `check_node`
/// only the node it was given; and a node's violations do not change when another worker
/// changes (per-node rules depend only on the node and the [`Summary`]); and labels the policy
/// does not read ([`SkewPolicy::label_keys`]) do not change a node's verdicts.
pub fn check_policy<P: SkewPolicy + ?Sized>(policy: &P) {
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config.clone(),
        TestRng::deterministic_rng(config.rng_algorithm),
    );
    if let Err(e) = check_policy_with(policy, &mut runner) {
        panic!("policy {:?} breaks an invariant: {e}", policy.name());
    }
}

/// [`check_policy`] with your own runner (cases, seed, shrinking limits).
pub fn check_policy_with<P: SkewPolicy + ?Sized>(
    policy: &P,
    runner: &mut TestRunner,
) -> Result<(), PolicyCheckError> {
    let strategy = cluster_state(1..=12).prop_flat_map(|state| {
        let order = Just((0..state.nodes.len()).collect::<Vec<_>>()).prop_shuffle();
        (
            Just(state),
            order,
            any::<Index>(),
            stable_version(),
            any::<bool>(),
        )
    });
    runner
        .run(&strategy, |(state, order, pick, new_kubelet, relabel)| {
            invariants(policy, &state, &order, pick, new_kubelet, relabel)
        })
        .map_err(|e| match e {
            TestError::Abort(why) => PolicyCheckError {
                reason: format!("the check was aborted: {why}"),
                state: None,
            },
            TestError::Fail(why, (state, ..)) => PolicyCheckError {
                reason: why.message().to_string(),
                state: Some(Box::new(state)),
            },
        })
}

/// A label no policy is expected to read, added to nodes to see that verdicts ignore it.
const UNREAD_LABEL: &str = "example.com/kupgrade-check-policy";

/// A sortable key for comparing violations as multisets.
fn sorted(mut v: Vec<Violation>) -> Vec<Violation> {
    v.sort_by_cached_key(|x| serde_json::to_string(x).unwrap_or_default());
    v
}

fn invariants<P: SkewPolicy + ?Sized>(
    policy: &P,
    state: &ClusterState,
    order: &[usize],
    pick: Index,
    new_kubelet: KubeVersion,
    relabel: bool,
) -> Result<(), TestCaseError> {
    let summary = Summary::of(state);
    let cx = Context {
        state,
        summary: &summary,
    };
    let (all, per_node) = answers_agree(policy, &cx)?;
    unread_labels_do_not_matter(policy, &cx, &per_node)?;
    let mut reordered = state.clone();
    reordered.nodes = order.iter().map(|&i| state.nodes[i].clone()).collect();
    prop_assert_eq!(
        sorted(all),
        sorted(policy.evaluate(&reordered)),
        "the violations change when the nodes are listed in another order"
    );
    a_worker_changes_only_itself(policy, state, &per_node, pick, new_kubelet, relabel)
}

/// `evaluate` is deterministic, equals `check_cluster` then `check_node` per node, `errors`
/// is its errors, and violations name only the node checked and nodes that exist. Returns
/// `evaluate`'s answer and each node's own violations.
fn answers_agree<P: SkewPolicy + ?Sized>(
    policy: &P,
    cx: &Context<'_>,
) -> Result<(Vec<Violation>, Vec<Vec<Violation>>), TestCaseError> {
    let state = cx.state;
    let all = policy.evaluate(state);
    prop_assert_eq!(
        &all,
        &policy.evaluate(state),
        "evaluate gave different answers for the same state"
    );
    let mut parts = Vec::new();
    policy.check_cluster(cx, &mut parts);
    let mut per_node = Vec::with_capacity(state.nodes.len());
    for node in &state.nodes {
        let mut out = Vec::new();
        policy.check_node(cx, node, &mut out);
        for v in &out {
            prop_assert!(
                v.node.is_none() || v.node.as_ref() == Some(&node.name),
                "check_node for node {:?} reported a violation on node {:?}: {}",
                node.name.as_str(),
                v.node.as_ref().map(NodeName::as_str),
                v
            );
        }
        parts.extend(out.iter().cloned());
        per_node.push(out);
    }
    prop_assert_eq!(
        &all,
        &parts,
        "evaluate differs from check_cluster followed by check_node for each node"
    );

    let mut errors = all.clone();
    errors.retain(|v| v.severity == Severity::Error);
    prop_assert_eq!(
        &policy.errors(state),
        &errors,
        "errors differs from the errors among evaluate's violations"
    );

    for v in &all {
        if let Some(name) = &v.node {
            prop_assert!(
                state.node(name.as_str()).is_some(),
                "a violation names node {:?}, which is not in the cluster: {}",
                name.as_str(),
                v
            );
        }
    }
    Ok((all, per_node))
}

/// Labels the policy does not read (see `SkewPolicy::label_keys`) must not change verdicts:
/// each node is checked again with other values for them (and one more), and without them.
fn unread_labels_do_not_matter<P: SkewPolicy + ?Sized>(
    policy: &P,
    cx: &Context<'_>,
    per_node: &[Vec<Violation>],
) -> Result<(), TestCaseError> {
    let keys = policy.label_keys();
    let verdicts = |v: &[Violation]| -> Vec<(String, Severity, Component)> {
        v.iter()
            .map(|x| (x.rule.to_string(), x.severity, x.component))
            .collect()
    };
    for (i, node) in cx.state.nodes.iter().enumerate() {
        let unread: Vec<String> = node
            .labels
            .keys()
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect();
        let mut relabelled = node.clone();
        for k in &unread {
            relabelled.labels.insert(k.clone(), "relabelled".into());
        }
        if !keys.contains(UNREAD_LABEL) {
            relabelled
                .labels
                .insert(UNREAD_LABEL.into(), node.name.to_string());
        }
        let mut unlabelled = node.clone();
        for k in &unread {
            unlabelled.labels.remove(k);
        }
        for other in [relabelled, unlabelled] {
            let mut out = Vec::new();
            policy.check_node(cx, &other, &mut out);
            prop_assert_eq!(
                verdicts(&out),
                verdicts(&per_node[i]),
                "node {:?}'s violations changed with labels the policy does not read (label_keys: {:?})",
                node.name.as_str(),
                keys
            );
        }
    }
    Ok(())
}

/// Change one worker (versions, and its zone when `relabel`): every other node's per-node
/// violations must stay the same.
fn a_worker_changes_only_itself<P: SkewPolicy + ?Sized>(
    policy: &P,
    state: &ClusterState,
    per_node: &[Vec<Violation>],
    pick: Index,
    new_kubelet: KubeVersion,
    relabel: bool,
) -> Result<(), TestCaseError> {
    let workers: Vec<usize> = (0..state.nodes.len())
        .filter(|&i| !state.nodes[i].is_control_plane())
        .collect();
    if workers.is_empty() {
        return Ok(());
    }
    let j = *pick.get(&workers);
    let mut changed = state.clone();
    {
        let w = &mut changed.nodes[j];
        w.versions.kubelet = Some(new_kubelet.clone());
        w.versions.kube_proxy = Some(new_kubelet.clone());
        w.versions.kubeadm = Some(new_kubelet);
        if relabel {
            w.labels.insert(ZONE_LABEL.into(), "zone-moved".into());
        }
    }
    let summary = Summary::of(&changed);
    let cx = Context {
        state: &changed,
        summary: &summary,
    };
    for (i, node) in changed.nodes.iter().enumerate() {
        if i == j {
            continue;
        }
        let mut out = Vec::new();
        policy.check_node(&cx, node, &mut out);
        prop_assert_eq!(
            &out,
            &per_node[i],
            "node {:?}'s violations changed when worker {:?} changed: per-node rules must depend only on the node and the summary",
            node.name.as_str(),
            changed.nodes[j].name.as_str()
        );
    }
    Ok(())
}
