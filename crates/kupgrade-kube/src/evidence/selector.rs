//! Label selectors (`matchLabels` and `matchExpressions`), matched as the API server does.
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// True when `labels` match `selector`. `empty_matches_all` says what a selector with no
/// terms means: every pod for `policy/v1` budgets, none for `policy/v1beta1` ones.
pub(crate) fn matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
    empty_matches_all: bool,
) -> bool {
    let match_labels = selector.match_labels.as_ref();
    let exprs = selector.match_expressions.as_deref().unwrap_or_default();
    if match_labels.is_none_or(|m| m.is_empty()) && exprs.is_empty() {
        return empty_matches_all;
    }
    if let Some(m) = match_labels
        && m.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    exprs.iter().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    })
}
