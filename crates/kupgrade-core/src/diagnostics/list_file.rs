//! Files made of `apiVersion`, `kind` and one list of entries (gates, hooks): the reading
//! they share, so each kind only says what its entries are and how they are checked.
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use super::{Entry, FileError, FileProblem, Locator, Step, from_value, kind_of, parse_yaml, short};

/// An entry of a list file: how its list and its entries are named, and its place in the file.
pub(crate) trait ListEntry: Entry + Sized {
    /// The top-level key of the list (`gates`).
    const LIST: &'static str;
    /// The entry at 1-based `index`, named `name` when it has one.
    fn new(index: usize, name: Option<String>) -> Self;
    /// Its 1-based place in the file.
    fn index(&self) -> usize;
    /// The same, to move it.
    fn index_mut(&mut self) -> &mut usize;
}

/// Parses `text` (YAML or JSON; `file` names it in messages): the top level must be
/// `apiVersion: api_version`, `kind: kind` and the list, each entry a `T`. `validate` checks
/// the entries that parsed (its problems count them among those: they are moved to their
/// places in the file). Every problem found is reported.
pub(crate) fn parse_list_file<T: DeserializeOwned, E: ListEntry>(
    text: &str,
    file: &str,
    api_version: &str,
    kind: &str,
    validate: impl FnOnce(&[T], &mut Vec<FileProblem<E>>),
) -> Result<Vec<T>, FileError<E>> {
    let list = E::LIST;
    let fail = |problems: Vec<FileProblem<E>>| FileError {
        file: file.to_string(),
        problems,
    };
    let value = parse_yaml(text).map_err(|p| fail(vec![p]))?;
    let locator = Locator::new(text);
    let mut top = match value {
        Value::Mapping(m) => m,
        Value::Null => return Err(fail(vec![FileProblem::new("the file is empty")])),
        other => {
            return Err(fail(vec![FileProblem::new(format!(
                "expected a mapping with a `{list}` list, found {}",
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
    for (key, want) in [("apiVersion", api_version), ("kind", kind)] {
        if let Some(v) = top.remove(key)
            && v.as_str() != Some(want)
        {
            problems.push(top_level(
                key,
                format!("expected {want:?}, found {}", short(&v)),
            ));
        }
    }
    let raw = match top.remove(list) {
        Some(Value::Sequence(s)) => s,
        Some(Value::Null) => Vec::new(),
        Some(other) => {
            problems.push(top_level(
                list,
                format!("expected a list of {list}, found {}", kind_of(&other)),
            ));
            Vec::new()
        }
        None => {
            problems.push(
                FileProblem::new(format!("missing: a {list} file lists its {list}")).in_field(list),
            );
            Vec::new()
        }
    };
    for (key, _) in top {
        problems.push(FileProblem::new(format!(
            "unknown field {}, expected one of `apiVersion`, `kind`, `{list}`",
            short(&key)
        )));
    }
    let entry_at = |i: usize, path: &[Step]| {
        let entry = [Step::key(list), Step::Index(i)];
        locator
            .value(&[&entry[..], path].concat())
            .or_else(|| locator.entry(&entry))
    };
    let mut parsed = Vec::with_capacity(raw.len());
    let mut indices = Vec::with_capacity(raw.len());
    for (i, raw) in raw.into_iter().enumerate() {
        let name = raw
            .get("name")
            .and_then(Value::as_str)
            .map(ToString::to_string);
        match from_value::<T>(raw) {
            Ok(t) => {
                parsed.push(t);
                indices.push(i);
            }
            Err(r) => {
                let mut p = FileProblem::new(r.message)
                    .at(entry_at(i, &r.path))
                    .in_entry(E::new(i + 1, name));
                p.field = r.field;
                problems.push(p);
            }
        }
    }
    // The entries that did parse are checked too, so one pass reports every problem.
    let mut found = Vec::new();
    validate(&parsed, &mut found);
    for p in &mut found {
        if let Some(entry) = &mut p.entry {
            // `validate` counts the entries that parsed; the file counts them all.
            let i = indices[*entry.index_mut() - 1];
            *entry.index_mut() = i + 1;
            let path = p.field.as_deref().map(Step::of_field).unwrap_or_default();
            p.location = entry_at(i, &path);
        }
    }
    problems.extend(found);
    problems.sort_by_key(|p| p.entry.as_ref().map_or(0, E::index));
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(fail(problems))
    }
}
