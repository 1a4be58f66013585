//! [`AllOf`]: several policies that must all pass.
use super::{Context, LabelKeys, Severity, SkewPolicy, Summary, Violation};
use crate::{ClusterState, Node};

/// Several policies that must all pass; violations of each are reported.
///
/// `evaluate` and `errors` ask each member for its own answer (so a member's faster way, such
/// as [`UpstreamPolicy`](super::UpstreamPolicy)'s on large clusters, is used) and give them in
/// the trait's order: every member's cluster-wide violations, then node by node, member by
/// member within a node. A member whose answer does not have that shape (a policy whose
/// `evaluate` is not `check_cluster` then `check_node` for each node) has its violations kept
/// together instead, member after member.
pub struct AllOf {
    name: String,
    policies: Vec<Box<dyn SkewPolicy>>,
}

impl AllOf {
    /// Combines `policies`.
    pub fn new(policies: Vec<Box<dyn SkewPolicy>>) -> Self {
        let name = policies
            .iter()
            .map(|p| p.name().to_string())
            .collect::<Vec<_>>()
            .join("+");
        AllOf { name, policies }
    }

    /// The members' answers (`errors` or `evaluate`), in the trait's order.
    fn combine(&self, state: &ClusterState, only_errors: bool) -> Vec<Violation> {
        let answer = |p: &dyn SkewPolicy| {
            if only_errors {
                p.errors(state)
            } else {
                p.evaluate(state)
            }
        };
        if let [one] = &self.policies[..] {
            return answer(one.as_ref());
        }
        let answers: Vec<Vec<Violation>> =
            self.policies.iter().map(|p| answer(p.as_ref())).collect();
        // How many of each answer are cluster-wide: the trait puts them first.
        let summary = Summary::of(state);
        let cx = Context {
            state,
            summary: &summary,
        };
        let mut cluster = Vec::with_capacity(self.policies.len());
        let mut scratch = Vec::new();
        for p in &self.policies {
            scratch.clear();
            p.check_cluster(&cx, &mut scratch);
            cluster.push(if only_errors {
                scratch
                    .iter()
                    .filter(|v| v.severity == Severity::Error)
                    .count()
            } else {
                scratch.len()
            });
        }
        interleave(&state.nodes, answers, &cluster).unwrap_or_else(|answers| answers.concat())
    }
}

/// `answers` (one per member, the first `cluster[k]` of answer `k` cluster-wide, then node by
/// node) merged: the cluster-wide ones of every member, then for each node of `nodes` the
/// violations of each member on it. The answers back when they do not have that shape, or
/// when two nodes in a row share a name (whose violation is whose could not be told).
fn interleave(
    nodes: &[Node],
    answers: Vec<Vec<Violation>>,
    cluster: &[usize],
) -> Result<Vec<Violation>, Vec<Vec<Violation>>> {
    if !fits(nodes, &answers, cluster) {
        return Err(answers);
    }
    let mut out = Vec::with_capacity(answers.iter().map(Vec::len).sum());
    let mut rest: Vec<_> = answers
        .into_iter()
        .zip(cluster)
        .map(|(answer, &n)| {
            let mut answer = answer.into_iter();
            out.extend(answer.by_ref().take(n));
            answer.peekable()
        })
        .collect();
    for node in nodes {
        for answer in &mut rest {
            while let Some(v) = answer.next_if(|v| v.node.as_ref() == Some(&node.name)) {
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// Whether [`interleave`] takes every violation of `answers`, in order.
fn fits(nodes: &[Node], answers: &[Vec<Violation>], cluster: &[usize]) -> bool {
    if answers.iter().zip(cluster).any(|(a, &n)| n > a.len()) {
        return false;
    }
    let mut at = cluster.to_vec();
    let mut previous = None;
    for node in nodes {
        if previous == Some(&node.name) {
            return false;
        }
        previous = Some(&node.name);
        for (answer, i) in answers.iter().zip(&mut at) {
            while answer
                .get(*i)
                .is_some_and(|v| v.node.as_ref() == Some(&node.name))
            {
                *i += 1;
            }
        }
    }
    answers.iter().zip(&at).all(|(a, &i)| i == a.len())
}

#[deny(clippy::missing_trait_methods)]
impl SkewPolicy for AllOf {
    fn name(&self) -> &str {
        &self.name
    }
    fn check_cluster(&self, cx: &Context<'_>, out: &mut Vec<Violation>) {
        for p in &self.policies {
            p.check_cluster(cx, out);
        }
    }
    fn label_keys(&self) -> LabelKeys {
        self.policies
            .iter()
            .fold(LabelKeys::none(), |keys, p| keys.union(p.label_keys()))
    }
    fn check_node(&self, cx: &Context<'_>, node: &Node, out: &mut Vec<Violation>) {
        for p in &self.policies {
            p.check_node(cx, node, out);
        }
    }
    fn evaluate(&self, state: &ClusterState) -> Vec<Violation> {
        self.combine(state, false)
    }
    fn errors(&self, state: &ClusterState) -> Vec<Violation> {
        self.combine(state, true)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Minor;
    use crate::skew::UpstreamPolicy;
    use crate::skew::rules::RulePolicy;
    use crate::testing::{cluster_state, rule_policy};

    /// The trait's default answer: every member's cluster-wide rules, then node by node.
    fn by_default(all: &AllOf, state: &ClusterState) -> Vec<Violation> {
        let summary = Summary::of(state);
        let cx = Context {
            state,
            summary: &summary,
        };
        let mut out = Vec::new();
        all.check_cluster(&cx, &mut out);
        for node in &state.nodes {
            all.check_node(&cx, node, &mut out);
        }
        out
    }

    fn same_as_default(all: &AllOf, state: &ClusterState) -> Result<(), TestCaseError> {
        let mut want = by_default(all, state);
        prop_assert!(all.evaluate(state) == want, "evaluate");
        want.retain(|v| v.severity == Severity::Error);
        prop_assert!(all.errors(state) == want, "errors");
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// The members' own answers, merged, are the default's answer, in its order.
        #[test]
        fn members_answers_come_in_the_default_order(
            policy in rule_policy(),
            state in cluster_state(1..=24),
        ) {
            same_as_default(&policy.clone().with_upstream(), &state)?;
            let reversed = AllOf::new(vec![Box::new(policy), Box::new(UpstreamPolicy::new())]);
            same_as_default(&reversed, &state)?;
        }
    }

    /// On a cluster large enough for the upstream policy's threads: the same order too.
    #[test]
    fn large_clusters_come_in_the_default_order() {
        let n = UpstreamPolicy::PARALLEL_FROM + 1_000;
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                if i % 5_000 == 0 {
                    let apiserver = if i == 5_000 { 30 } else { 31 };
                    let v = Minor::new(1, apiserver).with_patch(2);
                    return Node::control_plane(&format!("cp-{i}"), v, None).unwrap();
                }
                let m = 26 + (i * 7 % 6) as u64;
                let mut w =
                    Node::worker(&format!("w-{i}"), Minor::new(1, m).with_patch(1)).unwrap();
                w.versions.kubectl = Some(Minor::new(1, m + (i % 2) as u64).with_patch(0));
                w
            })
            .collect();
        let state = ClusterState::new(nodes);
        let rules = RulePolicy::parse(
            "rules:\n  - { id: lag, kind: max-lag, component: kubelet, minors: 1 }\n  - { id: kubectl, severity: warning, kind: same-minor, component: kubectl, apiserver: oldest }\n",
            "r.yaml",
        )
        .unwrap();
        let all = AllOf::new(vec![
            Box::new(UpstreamPolicy::new().with_threads(3)),
            Box::new(rules),
        ]);
        let v = all.evaluate(&state);
        assert!(v.len() > 10_000, "{}", v.len());
        same_as_default(&all, &state).unwrap();
    }
}
