//! Tier 1: `apiserver_requested_deprecated_apis` from an API server's `/metrics`
//! (the Prometheus text format), and the window it covers (`process_start_time_seconds`).
use std::collections::BTreeMap;

use jiff::Timestamp;
use kupgrade_core::readiness::ApiRequest;

/// The metric an API server counts deprecated requests in (since 1.19).
pub const DEPRECATED_APIS_METRIC: &str = "apiserver_requested_deprecated_apis";
/// The metric that says when the server started counting.
pub const START_TIME_METRIC: &str = "process_start_time_seconds";

/// One sample of the Prometheus text format: `name{label="value",...} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsSample {
    /// The metric's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// Parses the samples of the metrics whose names are in `wanted` (the Prometheus text
/// format, 0.0.4); comments and other metrics are skipped. A malformed line of a wanted
/// metric is an error naming its line number.
pub fn parse_metrics(text: &str, wanted: &[&str]) -> Result<Vec<MetricsSample>, String> {
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !wanted.contains(&name) {
            continue;
        }
        let at = |m: &str| format!("/metrics line {}: {m}: {line}", i + 1);
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let (parsed, after) = parse_labels(inner).map_err(|m| at(&m))?;
            labels = parsed;
            rest = after;
        }
        let value = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| at("no value"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse::<f64>()
                .map_err(|_| at("the value is not a number"))?,
        };
        samples.push(MetricsSample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(samples)
}

/// Parses `a="x",b="y"}` and returns the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("a label has no '='")?;
        let key = s[..eq].trim().to_string();
        let body = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("a label value is not quoted")?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("a label value is not closed".into()),
                },
                Some((j, '"')) => break j,
                Some((_, c)) => value.push(c),
                None => return Err("a label value is not closed".into()),
            }
        };
        labels.insert(key, value);
        s = &body[end + 1..];
    }
}

/// The deprecated APIs that `api_server`'s metrics counted requests for, with the window
/// (`since`) from its start time. Samples at zero are skipped (a counter reset).
pub(crate) fn deprecated_requests(api_server: &str, text: &str) -> Result<Vec<ApiRequest>, String> {
    let samples = parse_metrics(text, &[DEPRECATED_APIS_METRIC, START_TIME_METRIC])?;
    let since = samples
        .iter()
        .find(|s| s.name == START_TIME_METRIC)
        .and_then(|s| Timestamp::from_second(s.value as i64).ok());
    let mut out = Vec::new();
    for s in samples.iter().filter(|s| s.name == DEPRECATED_APIS_METRIC) {
        if s.value <= 0.0 {
            continue;
        }
        let label = |k: &str| s.labels.get(k).map(String::as_str).unwrap_or_default();
        let (group, version) = (label("group"), label("version"));
        if version.is_empty() || label("resource").is_empty() {
            return Err(format!(
                "/metrics: a {DEPRECATED_APIS_METRIC} sample has no version or resource label"
            ));
        }
        let non_empty = |k: &str| Some(label(k).to_string()).filter(|v| !v.is_empty());
        let request = ApiRequest {
            api_server: api_server.to_string(),
            group_version: if group.is_empty() {
                version.to_string()
            } else {
                format!("{group}/{version}")
            },
            resource: label("resource").to_string(),
            subresource: non_empty("subresource"),
            removed_release: non_empty("removed_release"),
            since,
        };
        if !out.contains(&request) {
            out.push(request);
        }
    }
    Ok(out)
}
