//! Reading a hooks file (YAML or JSON) into a [`HookSet`], with errors that name the file,
//! the hook and the field, at the line and column where it is written.
use serde_yaml_ng::Value;

use super::*;
use crate::diagnostics::{self, Locator, Step, kind_of, short};

impl HookSet {
    /// Parses a hooks file in YAML or JSON. `file` only names the source in messages. Every
    /// problem found is reported.
    pub fn parse(text: &str, file: &str) -> Result<Self, HooksError> {
        let fail = |problems: Vec<HookProblem>| HooksError {
            file: file.to_string(),
            problems,
        };
        let value = diagnostics::parse_yaml(text).map_err(|p| fail(vec![p]))?;
        let locator = Locator::new(text);
        let mut top = match value {
            Value::Mapping(m) => m,
            Value::Null => return Err(fail(vec![FileProblem::new("the file is empty")])),
            other => {
                return Err(fail(vec![FileProblem::new(format!(
                    "expected a mapping with a `hooks` list, found {}",
                    kind_of(&other)
                ))]));
            }
        };
        let mut problems = Vec::new();
        let top_level = |key: &str, message: String| {
            FileProblem::new(message)
                .at(locator.value(&[Step::key(key)]))
                .in_field(key)
        };
        for (key, want) in [("apiVersion", API_VERSION), ("kind", KIND)] {
            if let Some(v) = top.remove(key)
                && v.as_str() != Some(want)
            {
                problems.push(top_level(
                    key,
                    format!("expected {want:?}, found {}", short(&v)),
                ));
            }
        }
        let raw = match top.remove("hooks") {
            Some(Value::Sequence(s)) => s,
            Some(Value::Null) => Vec::new(),
            Some(other) => {
                problems.push(top_level(
                    "hooks",
                    format!("expected a list of hooks, found {}", kind_of(&other)),
                ));
                Vec::new()
            }
            None => {
                problems.push(
                    FileProblem::new("missing: a hooks file lists its hooks").in_field("hooks"),
                );
                Vec::new()
            }
        };
        for (key, _) in top {
            problems.push(FileProblem::new(format!(
                "unknown field {}, expected one of `apiVersion`, `kind`, `hooks`",
                short(&key)
            )));
        }
        let entry_at = |i: usize, path: &[Step]| {
            let entry = [Step::key("hooks"), Step::Index(i)];
            locator
                .value(&[&entry[..], path].concat())
                .or_else(|| locator.entry(&entry))
        };
        let mut hooks = Vec::with_capacity(raw.len());
        let mut indices = Vec::with_capacity(raw.len());
        for (i, raw) in raw.into_iter().enumerate() {
            let name = raw
                .get("name")
                .and_then(Value::as_str)
                .map(ToString::to_string);
            match diagnostics::from_value::<Hook>(raw) {
                Ok(g) => {
                    hooks.push(g);
                    indices.push(i);
                }
                Err(r) => {
                    let mut p = FileProblem::new(r.message)
                        .at(entry_at(i, &r.path))
                        .in_entry(HookEntry { index: i + 1, name });
                    p.field = r.field;
                    problems.push(p);
                }
            }
        }
        // The hooks that did parse are checked too, so one pass reports every problem.
        let set = HookSet { hooks };
        let mut found = Vec::new();
        set.validate(&mut found);
        for p in &mut found {
            if let Some(entry) = &mut p.entry {
                // `validate` counts the hooks that parsed; the file counts them all.
                let i = indices[entry.index - 1];
                entry.index = i + 1;
                let path = p.field.as_deref().map(Step::of_field).unwrap_or_default();
                p.location = entry_at(i, &path);
            }
        }
        problems.extend(found);
        problems.sort_by_key(|p| p.entry.as_ref().map_or(0, |e| e.index));
        if problems.is_empty() {
            Ok(set)
        } else {
            Err(fail(problems))
        }
    }
}
