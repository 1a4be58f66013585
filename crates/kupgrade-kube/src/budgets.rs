//! Which PodDisruptionBudgets cover a pod, to name them when they block a drain.
//!
//! The budgets of the pod's namespace are listed as `policy/v1` (falling back to
//! `policy/v1beta1` on servers that serve only that) and their label selectors matched against
//! the pod's labels, as the eviction code of the API server does. The two versions differ on
//! one point: an empty selector matches every pod in `policy/v1` and no pod in
//! `policy/v1beta1`.
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Client;
use serde::Deserialize;

use crate::error::status_code;
use crate::eviction::PolicyVersion;

#[derive(Deserialize)]
struct BudgetList {
    #[serde(default)]
    items: Vec<Budget>,
}

#[derive(Deserialize)]
struct Budget {
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<BudgetSpec>,
}

#[derive(Deserialize)]
struct BudgetSpec {
    #[serde(default)]
    selector: Option<LabelSelector>,
}

/// The budgets of one namespace, as listed.
pub(crate) struct Budgets {
    /// Listed as policy/v1 (empty selectors select everything).
    v1: bool,
    items: Vec<Budget>,
}

impl Budgets {
    /// The names of the budgets whose selector matches `labels`, sorted.
    pub(crate) fn covering(&self, labels: &BTreeMap<String, String>) -> Vec<String> {
        let mut names: Vec<String> = self
            .items
            .iter()
            .filter(|b| {
                selector_matches(
                    b.spec.as_ref().and_then(|s| s.selector.as_ref()),
                    labels,
                    self.v1,
                )
            })
            .filter_map(|b| b.metadata.name.clone())
            .collect();
        names.sort();
        names
    }
}

/// Lists the budgets in `namespace`, as `first` and then the other policy version if the
/// server does not serve `first`.
pub(crate) async fn list_budgets(
    client: &Client,
    first: PolicyVersion,
    namespace: &str,
) -> Result<Budgets, kube::Error> {
    let order = match first {
        PolicyVersion::V1 => [PolicyVersion::V1, PolicyVersion::V1beta1],
        PolicyVersion::V1beta1 => [PolicyVersion::V1beta1, PolicyVersion::V1],
    };
    let mut last = None;
    for v in order {
        let url = format!(
            "/apis/{}/namespaces/{namespace}/poddisruptionbudgets",
            v.api_version()
        );
        let req = http::Request::get(url)
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        match client.request::<BudgetList>(req).await {
            Ok(list) => {
                return Ok(Budgets {
                    v1: v == PolicyVersion::V1,
                    items: list.items,
                });
            }
            Err(e) if status_code(&e) == Some(404) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("two versions were tried"))
}

/// Whether `selector` selects an object with `labels`. A missing selector selects nothing; an
/// empty one selects everything when `empty_matches_all` (policy/v1) and nothing otherwise
/// (the matching itself: [`crate::evidence::selector::matches`]).
pub(crate) fn selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
    empty_matches_all: bool,
) -> bool {
    selector.is_some_and(|s| crate::evidence::selector::matches(s, labels, empty_matches_all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn match_labels_and_expressions() {
        let pod = labels(&[("app", "web"), ("tier", "front")]);
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                req("tier", "In", &["front", "edge"]),
                req("canary", "DoesNotExist", &[]),
                req("app", "NotIn", &["db"]),
                req("tier", "Exists", &[]),
            ]),
        };
        assert!(selector_matches(Some(&sel), &pod, true));
        let other = labels(&[("app", "web"), ("tier", "back")]);
        assert!(!selector_matches(Some(&sel), &other, true));
        let canary = labels(&[("app", "web"), ("tier", "front"), ("canary", "1")]);
        assert!(!selector_matches(Some(&sel), &canary, true));
        let bad_op = LabelSelector {
            match_expressions: Some(vec![req("app", "Like", &["web"])]),
            ..LabelSelector::default()
        };
        assert!(!selector_matches(Some(&bad_op), &pod, true));
    }

    #[test]
    fn empty_and_missing_selectors_differ_by_version() {
        let pod = labels(&[("app", "web")]);
        assert!(!selector_matches(None, &pod, true));
        let empty = LabelSelector::default();
        assert!(selector_matches(Some(&empty), &pod, true));
        assert!(!selector_matches(Some(&empty), &pod, false));
    }
}
