//! Reading a rules file (YAML or JSON) into a [`RulePolicy`], with errors that name the
//! file, the rule and the field.
use serde_yaml_ng::{Mapping, Value};

use super::*;
use crate::diagnostics::{self, Locator, Refused, Step, TopLevel, kind_of, short};

const RULE_KEYS: [&str; 4] = ["id", "severity", "description", "nodes"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    id: String,
    #[serde(default = "error")]
    severity: Severity,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    nodes: Option<NodeSelector>,
}

impl RulePolicy {
    /// A policy from rules built in code, checked like a file's (ids unique and well formed,
    /// components fit for the rule's kind).
    pub fn new(name: impl Into<String>, rules: Vec<Rule>) -> Result<Self, RulesError> {
        let policy = RulePolicy {
            name: name.into(),
            rules,
        };
        let mut problems = Vec::new();
        let indices: Vec<usize> = (0..policy.rules.len()).collect();
        policy.validate(&indices, &mut problems);
        RulesError::unless_any("<rules>", problems, policy)
    }

    /// Parses a rules file in YAML or JSON. `file` only names the source in messages. Every
    /// problem found is reported.
    pub fn parse(text: &str, file: &str) -> Result<Self, RulesError> {
        let fail = |problems: Vec<RuleProblem>| RulesError {
            file: file.to_string(),
            problems,
        };
        let mut problems = Vec::new();
        let mut top = TopLevel::read(text, "rules", API_VERSION, KIND, &mut problems)
            .map_err(|p| fail(vec![p]))?;
        let name = match top.map.remove("name") {
            None => "rules".to_string(),
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            Some(other) => {
                problems.push(top.problem(
                    "name",
                    format!("expected a non-empty string, found {}", short(&other)),
                ));
                "rules".to_string()
            }
        };
        let raw_rules = top.take_list("rules", &mut problems);
        let locator = top.finish(&["apiVersion", "kind", "name", "rules"], &mut problems);
        let mut rules = Vec::with_capacity(raw_rules.len());
        let mut indices = Vec::with_capacity(raw_rules.len());
        for (i, raw) in raw_rules.into_iter().enumerate() {
            match parse_rule(raw, i, &locator) {
                Ok(rule) => {
                    rules.push(rule);
                    indices.push(i);
                }
                Err(p) => problems.push(p),
            }
        }
        let policy = RulePolicy { name, rules };
        // The rules that did parse are checked too, so one pass reports every problem.
        let mut found = Vec::new();
        policy.validate(&indices, &mut found);
        for p in &mut found {
            if let Some(rule) = &p.entry {
                let path = p.field.as_deref().map(Step::of_field);
                p.location = rule_at(&locator, rule.index - 1, path.as_deref());
            }
        }
        problems.extend(found);
        problems.sort_by_key(|p| p.entry.as_ref().map_or(0, |r| r.index));
        RulesError::unless_any(file, problems, policy)
    }

    /// Checks the rules; `indices[i]` is rule `i`'s 0-based position in its file.
    fn validate(&self, indices: &[usize], out: &mut Vec<RuleProblem>) {
        if self.name.trim().is_empty() {
            out.push(FileProblem::new("a policy needs a name").in_field("name"));
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (&i, rule) in indices.iter().zip(&self.rules) {
            let entry = RuleEntry::new(i + 1, Some(rule.id.clone()));
            let mut bad = |field: &str, message: String| {
                out.push(
                    FileProblem::new(message)
                        .in_entry(entry.clone())
                        .in_field(field),
                );
            };
            if rule.id.is_empty() {
                bad("id", "an id cannot be empty".into());
            } else if let Some(c) = rule
                .id
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(*c)))
            {
                bad(
                    "id",
                    format!("{c:?} is not allowed (letters, digits, '-', '_', '.' and '/')"),
                );
            }
            if let Some(first) = seen.insert(&rule.id, i) {
                bad(
                    "id",
                    format!("used twice (rules {} and {})", first + 1, i + 1),
                );
            }
            let kind = rule.check.kind();
            let kubernetes_line = |field: &str, c: Component, bad: &mut dyn FnMut(&str, String)| {
                if c.version_line() == VersionLine::Own {
                    bad(
                        field,
                        format!(
                            "{c} has its own version numbers; a {kind} rule compares Kubernetes minors"
                        ),
                    );
                }
            };
            match &rule.check {
                Check::MaxLag(MaxLag { component, .. })
                | Check::SameMinor(SameMinor { component, .. }) => {
                    kubernetes_line("component", *component, &mut bad);
                }
                Check::NodeSkew(NodeSkew {
                    component, other, ..
                }) => {
                    kubernetes_line("component", *component, &mut bad);
                    kubernetes_line("other", *other, &mut bad);
                    if component == other {
                        bad("other", format!("compares {component} with itself"));
                    }
                }
                Check::MinorRange(r) => {
                    if r.min.is_none() && r.max.is_none() {
                        bad("min", "give min, max or both".into());
                    }
                    if let (Some(lo), Some(hi)) = (r.min, r.max)
                        && lo > hi
                    {
                        bad("max", format!("{hi} is older than min {lo}"));
                    }
                }
                Check::NotEndOfLife(r) => {
                    for (i, c) in r.components.iter().enumerate() {
                        if c.version_line() == VersionLine::Own {
                            bad(
                                &format!("components[{i}]"),
                                format!(
                                    "{c} has its own version numbers; the release calendar covers Kubernetes minors"
                                ),
                            );
                        }
                    }
                }
            }
            if rule.nodes.is_some() && rule.components() == [Component::CoreDns] {
                bad(
                    "nodes",
                    "coredns is a cluster add-on, not on any node; drop the selector".into(),
                );
            }
        }
    }
}

fn parse_rule(raw: Value, i: usize, locator: &Locator<'_>) -> Result<Rule, RuleProblem> {
    let id = raw
        .as_mapping()
        .and_then(|m| m.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let entry = RuleEntry::new(i + 1, id);
    let fail_at = |field: Option<String>, path: Option<&[Step]>, message: String| RuleProblem {
        location: rule_at(locator, i, path),
        entry: Some(entry.clone()),
        field,
        message,
    };
    let fail = |field: Option<&str>, message: String| {
        let path = field.map(Step::of_field);
        fail_at(field.map(str::to_string), path.as_deref(), message)
    };
    let refused = |r: Refused| {
        let path = r.field.is_some().then_some(&r.path[..]);
        fail_at(r.field, path, r.message)
    };
    let Value::Mapping(map) = raw else {
        return Err(fail(
            None,
            format!("expected a mapping, found {}", kind_of(&raw)),
        ));
    };
    let mut common = Mapping::new();
    let mut params = Mapping::new();
    let mut kind = None;
    for (k, v) in map {
        match k.as_str() {
            Some("kind") => kind = Some(v),
            Some(key) if RULE_KEYS.contains(&key) => {
                common.insert(k, v);
            }
            _ => {
                params.insert(k, v);
            }
        }
    }
    let kinds = Check::KINDS.join(", ");
    let kind = match kind {
        None => {
            return Err(fail(
                Some("kind"),
                format!("missing: say which kind of rule this is ({kinds})"),
            ));
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(fail(
                Some("kind"),
                format!("expected one of {kinds}, found {}", short(&other)),
            ));
        }
    };
    let c: Common = from_value(Value::Mapping(common)).map_err(refused)?;
    let params = Value::Mapping(params);
    let de = |r: Result<Check, Refused>| r.map_err(refused);
    let check = match kind.as_str() {
        "max-lag" => de(from_value(params).map(Check::MaxLag))?,
        "same-minor" => de(from_value(params).map(Check::SameMinor))?,
        "node-skew" => de(from_value(params).map(Check::NodeSkew))?,
        "minor-range" => de(from_value(params).map(Check::MinorRange))?,
        "not-end-of-life" => de(from_value(params).map(Check::NotEndOfLife))?,
        other => {
            return Err(fail(
                Some("kind"),
                format!("unknown kind {other:?}, expected one of {kinds}"),
            ));
        }
    };
    Ok(Rule {
        id: c.id,
        severity: c.severity,
        description: c.description,
        nodes: c.nodes,
        check,
    })
}

/// Deserializes `value`, keeping the path of the field at fault (`nodes.role`).
fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Refused> {
    diagnostics::from_value(value).map_err(|r| {
        // serde names the field in "missing field `x`"; say it the way the rest of the file does.
        match r.message.strip_prefix("missing field `") {
            Some(rest) if r.field.is_none() => {
                let name = rest.trim_end_matches('`').to_string();
                Refused {
                    path: vec![Step::key(&name)],
                    field: Some(name),
                    message: "missing".to_string(),
                }
            }
            _ => r,
        }
    })
}

/// Where rule `index` (0-based) writes the value at `path`, or where the rule begins (when
/// there is no path or nothing is written there). Rules in a list written inline (`rules:
/// [...]`, JSON) are not located, as in the first version of these messages.
fn rule_at(locator: &Locator<'_>, index: usize, path: Option<&[Step]>) -> Option<(usize, usize)> {
    let rules = [Step::key("rules")];
    if locator.is_inline(&rules) {
        return None;
    }
    let entry = [Step::key("rules"), Step::Index(index)];
    path.and_then(|path| locator.value(&[&entry[..], path].concat()))
        .or_else(|| locator.entry(&entry))
}
