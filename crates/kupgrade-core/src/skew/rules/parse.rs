//! Reading a rules file (YAML or JSON) into a [`RulePolicy`], with errors that name the
//! file, the rule and the field.
use super::*;

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
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(RulesError {
                file: "<rules>".into(),
                problems,
            })
        }
    }

    /// Parses a rules file in YAML or JSON. `file` only names the source in messages. Every
    /// problem found is reported.
    pub fn parse(text: &str, file: &str) -> Result<Self, RulesError> {
        let fail = |problems: Vec<RuleProblem>| RulesError {
            file: file.to_string(),
            problems,
        };
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
            let location = e.location().map(|l| (l.line(), l.column()));
            let message = e.to_string();
            let message = match message.find(" at line ") {
                Some(i) if location.is_some() => message[..i].to_string(),
                _ => message,
            };
            fail(vec![problem(location, None, None, message)])
        })?;
        let locator = Locator::new(text);
        let mut top = match value {
            Value::Mapping(m) => m,
            Value::Null => return Err(fail(vec![problem(None, None, None, "the file is empty")])),
            other => {
                return Err(fail(vec![problem(
                    None,
                    None,
                    None,
                    format!(
                        "expected a mapping with a `rules` list, found {}",
                        kind_of(&other)
                    ),
                )]));
            }
        };
        let mut problems = Vec::new();
        for (key, want) in [("apiVersion", API_VERSION), ("kind", KIND)] {
            if let Some(v) = top.remove(key)
                && v.as_str() != Some(want)
            {
                problems.push(problem(
                    locator.top_key(key),
                    None,
                    Some(key.into()),
                    format!("expected {want:?}, found {}", short(&v)),
                ));
            }
        }
        let name = match top.remove("name") {
            None => "rules".to_string(),
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            Some(other) => {
                problems.push(problem(
                    locator.top_key("name"),
                    None,
                    Some("name".into()),
                    format!("expected a non-empty string, found {}", short(&other)),
                ));
                "rules".to_string()
            }
        };
        let raw_rules = match top.remove("rules") {
            Some(Value::Sequence(s)) => s,
            Some(Value::Null) => Vec::new(),
            Some(other) => {
                problems.push(problem(
                    locator.top_key("rules"),
                    None,
                    Some("rules".into()),
                    format!("expected a list of rules, found {}", kind_of(&other)),
                ));
                Vec::new()
            }
            None => {
                problems.push(problem(
                    None,
                    None,
                    Some("rules".into()),
                    "missing: a rules file lists its rules",
                ));
                Vec::new()
            }
        };
        for (key, _) in top {
            let key = short(&key);
            problems.push(problem(
                None,
                None,
                None,
                format!(
                    "unknown field {key}, expected one of `apiVersion`, `kind`, `name`, `rules`"
                ),
            ));
        }
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
            if let Some((n, _)) = &p.rule {
                p.location = locator.rule_field(n - 1, p.field.as_deref());
            }
        }
        problems.extend(found);
        problems.sort_by_key(|p| p.rule.as_ref().map_or(0, |r| r.0));
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(fail(problems))
        }
    }

    /// Checks the rules; `indices[i]` is rule `i`'s 0-based position in its file.
    fn validate(&self, indices: &[usize], out: &mut Vec<RuleProblem>) {
        if self.name.trim().is_empty() {
            out.push(problem(
                None,
                None,
                Some("name".into()),
                "a policy needs a name",
            ));
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (&i, rule) in indices.iter().zip(&self.rules) {
            let at = Some((i + 1, Some(rule.id.clone())));
            let mut bad = |field: &str, message: String| {
                out.push(problem(None, at.clone(), Some(field.into()), message));
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
    let at = Some((i + 1, id.clone()));
    let locate = |field: Option<&str>| locator.rule_field(i, field);
    let fail = |field: Option<&str>, message: String| RuleProblem {
        location: locate(field),
        rule: at.clone(),
        field: field.map(str::to_string),
        message,
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
    let c: Common =
        from_value(Value::Mapping(common)).map_err(|(field, msg)| fail(field.as_deref(), msg))?;
    let params = Value::Mapping(params);
    let de = |r: Result<Check, (Option<String>, String)>| {
        r.map_err(|(field, msg)| fail(field.as_deref(), msg))
    };
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
fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, (Option<String>, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != "." && !path.is_empty()).then_some(path);
        let message = e.into_inner().to_string();
        // serde names the field in "missing field `x`"; say it the way the rest of the file does.
        match message.strip_prefix("missing field `") {
            Some(rest) if field.is_none() => {
                let name = rest.trim_end_matches('`').to_string();
                (Some(name), "missing".to_string())
            }
            _ => (field, message),
        }
    })
}

fn problem(
    location: Option<(usize, usize)>,
    rule: Option<(usize, Option<String>)>,
    field: Option<String>,
    message: impl Into<String>,
) -> RuleProblem {
    RuleProblem {
        location,
        rule,
        field,
        message: message.into(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => kind_of(other).to_string(),
    }
}

/// Finds where a rule and its fields are written: the line that gives the rule's id, then the
/// first line of that rule with the field's key.
struct Locator<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Self {
        Locator {
            lines: text.lines().collect(),
        }
    }

    fn top_key(&self, key: &str) -> Option<(usize, usize)> {
        self.lines.iter().enumerate().find_map(|(i, line)| {
            let rest = line.strip_prefix(key)?.trim_start().strip_prefix(':')?;
            Some((i + 1, line.len() - rest.trim_start().len() + 1))
        })
    }

    /// Where `key: value` is written on `line`, as the column of the value.
    fn value_col(line: &str, key: &str) -> Option<usize> {
        let mut from = 0;
        while let Some(pos) = line[from..].find(key) {
            let at = from + pos;
            let before = line[..at].chars().last();
            let after = &line[at + key.len()..];
            let after = after.strip_prefix('"').unwrap_or(after);
            if before.is_none_or(|c| " {,\"'\t-".contains(c))
                && let Some(rest) = after.trim_start().strip_prefix(':')
            {
                return Some(line.len() - rest.trim_start().len() + 1);
            }
            from = at + key.len();
        }
        None
    }

    /// The lines of each entry of the top-level `rules:` list written in block style
    /// (`start..end`); empty when the list is written inline.
    fn entries(&self) -> Vec<(usize, usize)> {
        let indent = |l: &str| l.len() - l.trim_start().len();
        let skip = |l: &str| l.trim().is_empty() || l.trim_start().starts_with('#');
        let Some(top) = self.lines.iter().position(|l| {
            l.strip_prefix("rules")
                .is_some_and(|r| r.trim() == ":" || r.trim_start().starts_with(": #"))
        }) else {
            return Vec::new();
        };
        let mut out: Vec<(usize, usize)> = Vec::new();
        let mut item_indent = None;
        for (i, line) in self.lines.iter().enumerate().skip(top + 1) {
            if skip(line) {
                continue;
            }
            let at = indent(line);
            let dash = line.trim_start().starts_with('-');
            match item_indent {
                None if dash => item_indent = Some(at),
                None => break,
                Some(n) if at < n || (at == n && !dash) => break,
                _ => {}
            }
            if dash && Some(at) == item_indent {
                if let Some(last) = out.last_mut() {
                    last.1 = i;
                }
                out.push((i, i + 1));
            } else if let Some(last) = out.last_mut() {
                last.1 = i + 1;
            }
        }
        out
    }

    /// Where rule `index` (0-based) writes `field` (its last part), or where the rule starts.
    fn rule_field(&self, index: usize, field: Option<&str>) -> Option<(usize, usize)> {
        let (start, end) = *self.entries().get(index)?;
        let first = self.lines[start];
        let entry_col = first.len() - first.trim_start_matches([' ', '-', '{']).len() + 1;
        let Some(field) = field else {
            return Some((start + 1, entry_col));
        };
        let key = field.rsplit('.').next().unwrap_or(field);
        let key = key.split('[').next().unwrap_or(key);
        (start..end)
            .find_map(|i| Self::value_col(self.lines[i], key).map(|col| (i + 1, col)))
            .or(Some((start + 1, entry_col)))
    }
}
