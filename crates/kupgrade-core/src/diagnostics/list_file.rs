//! Files made of `apiVersion`, `kind` and one list of entries (gates, hooks): the reading
//! they share, so each kind only says what its entries are and how they are checked.
use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};

use super::{
    FileError, FileProblem, ListEntry, ListKind, Locator, Step, from_value, kind_of, parse_yaml,
    short,
};

/// Parses `text` (YAML or JSON; `file` names it in messages): the top level must be
/// `apiVersion: api_version`, `kind: kind` and the list, each entry a `T`. `validate` checks
/// the entries that parsed (its problems count them among those: they are moved to their
/// places in the file). Every problem found is reported.
pub(crate) fn parse_list_file<T: DeserializeOwned, K: ListKind>(
    text: &str,
    file: &str,
    api_version: &str,
    kind: &str,
    validate: impl FnOnce(&[T], &mut Vec<FileProblem<ListEntry<K>>>),
) -> Result<Vec<T>, FileError<ListEntry<K>>> {
    let list = K::LIST;
    let fail = |problems: Vec<FileProblem<ListEntry<K>>>| FileError {
        file: file.to_string(),
        problems,
    };
    let mut problems = Vec::new();
    let mut top =
        TopLevel::read(text, list, api_version, kind, &mut problems).map_err(|p| fail(vec![p]))?;
    let raw = top.take_list(list, &mut problems);
    let locator = top.finish(&["apiVersion", "kind", list], &mut problems);
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
                    .in_entry(ListEntry::new(i + 1, name));
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
            let i = indices[entry.index - 1];
            entry.index = i + 1;
            let path = p.field.as_deref().map(Step::of_field).unwrap_or_default();
            p.location = entry_at(i, &path);
        }
    }
    problems.extend(found);
    problems.sort_by_key(|p| p.entry.as_ref().map_or(0, |e| e.index));
    FileError::unless_any(file, problems, parsed)
}

/// Checks each of `entries` with `check`, which gets the entry and a reporter of its problems
/// (`bad(field, message)`), after the checks every named entry of a list file shares: it has
/// a name, of at most 63 lower-case letters, digits and '-', used once in the file.
pub(crate) fn check_named_entries<T, K: ListKind + Clone>(
    entries: &[T],
    name: impl Fn(&T) -> &str,
    out: &mut Vec<FileProblem<ListEntry<K>>>,
    mut check: impl FnMut(&T, &mut dyn FnMut(&str, String)),
) {
    let mut seen = std::collections::HashMap::new();
    for (i, item) in entries.iter().enumerate() {
        let n = name(item);
        let entry = ListEntry::new(i + 1, Some(n.to_string()));
        let mut bad = |field: &str, message: String| {
            out.push(
                FileProblem::new(message)
                    .in_entry(entry.clone())
                    .in_field(field),
            );
        };
        if n.is_empty() {
            bad("name", format!("a {} needs a name", K::NOUN));
        } else if n.len() > 63 {
            bad("name", "at most 63 characters".into());
        } else if let Some(c) = n
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            bad(
                "name",
                format!("{c:?} is not allowed (lower-case letters, digits and '-')"),
            );
        }
        if let Some(first) = seen.insert(n, i) {
            bad(
                "name",
                format!("used twice ({} {} and {})", K::LIST, first + 1, i + 1),
            );
        }
        check(item, &mut bad);
    }
}

/// Reports a command's `argv` (at `field`) that names no program or holds a NUL byte.
pub(crate) fn check_argv(bad: &mut dyn FnMut(&str, String), field: &str, argv: &[String]) {
    if argv.is_empty() || argv[0].is_empty() {
        bad(field, "name the program to run".into());
    } else if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
        bad(
            &format!("{field}[{i}]"),
            "a NUL byte cannot be passed".into(),
        );
    }
}

/// What a list file's set and its entry share: `$set::new` (entries checked like a file's,
/// documented by the doc comment given), `$set::parse` (a file of them, through
/// [`parse_list_file`]) and the [`ListKind`] impl of `$kind`, the marker of its entries.
/// `$set` keeps its entries in the field `$field`; a function
/// `validate(&[$item], &mut Vec<FileProblem<ListEntry<$kind>>>)` and the constants
/// `API_VERSION` and `KIND` must be in scope; `$noun` names one entry (`gate`), `$list` the
/// list (`gates`).
macro_rules! list_file {
    (
        $(#[doc = $new_doc:literal])*
        $set:ident { $field:ident: $item:ty }, $kind:ident, $error:ident, $noun:literal, $list:literal
    ) => {
        impl $set {
            $(#[doc = $new_doc])*
            pub fn new($field: Vec<$item>) -> Result<Self, $error> {
                let mut problems = Vec::new();
                validate(&$field, &mut problems);
                $crate::diagnostics::FileError::unless_any(
                    concat!("<", $list, ">"),
                    problems,
                    $set { $field },
                )
            }

            #[doc = concat!("Parses a ", $list, " file in YAML or JSON. `file` only names the source in")]
            /// messages. Every problem found is reported.
            pub fn parse(text: &str, file: &str) -> Result<Self, $error> {
                let $field = $crate::diagnostics::parse_list_file::<$item, $kind>(
                    text,
                    file,
                    API_VERSION,
                    KIND,
                    validate,
                )?;
                Ok($set { $field })
            }
        }

        impl $crate::diagnostics::ListKind for $kind {
            const NOUN: &'static str = $noun;
            const LIST: &'static str = $list;
        }
    };
}
pub(crate) use list_file;

/// The top level of a file made of `apiVersion`, `kind` and a list: its mapping, the keys
/// not read yet, and where each of them stands in the text.
pub(crate) struct TopLevel<'t> {
    /// The keys not taken yet.
    pub(crate) map: Mapping,
    /// Places in the file's text.
    pub(crate) locator: Locator<'t>,
}

impl<'t> TopLevel<'t> {
    /// Reads `text` as a mapping (`list` names its list in the message when it is not one),
    /// taking out `apiVersion` and `kind`: one that is not `api_version` or `kind` is a
    /// problem in `problems`. A file that is no mapping at all is the error.
    pub(crate) fn read<E>(
        text: &'t str,
        list: &str,
        api_version: &str,
        kind: &str,
        problems: &mut Vec<FileProblem<E>>,
    ) -> Result<Self, FileProblem<E>> {
        let map = match parse_yaml(text)? {
            Value::Mapping(m) => m,
            Value::Null => return Err(FileProblem::new("the file is empty")),
            other => {
                return Err(FileProblem::new(format!(
                    "expected a mapping with a `{list}` list, found {}",
                    kind_of(&other)
                )));
            }
        };
        let mut top = TopLevel {
            map,
            locator: Locator::new(text),
        };
        for (key, want) in [("apiVersion", api_version), ("kind", kind)] {
            if let Some(v) = top.map.remove(key)
                && v.as_str() != Some(want)
            {
                problems.push(top.problem(key, format!("expected {want:?}, found {}", short(&v))));
            }
        }
        Ok(top)
    }

    /// A problem with the top-level `key`, placed at its value.
    pub(crate) fn problem<E>(&self, key: &str, message: String) -> FileProblem<E> {
        FileProblem::new(message)
            .at(self.locator.value(&[Step::key(key)]))
            .in_field(key)
    }

    /// Takes out the list `list` (empty when it is null); a missing list or a value that is
    /// not one is a problem, and reads as empty.
    pub(crate) fn take_list<E>(
        &mut self,
        list: &str,
        problems: &mut Vec<FileProblem<E>>,
    ) -> Vec<Value> {
        match self.map.remove(list) {
            Some(Value::Sequence(s)) => s,
            Some(Value::Null) => Vec::new(),
            Some(other) => {
                problems.push(self.problem(
                    list,
                    format!("expected a list of {list}, found {}", kind_of(&other)),
                ));
                Vec::new()
            }
            None => {
                problems.push(
                    FileProblem::new(format!("missing: a {list} file lists its {list}"))
                        .in_field(list),
                );
                Vec::new()
            }
        }
    }

    /// Reports every key not taken as unknown (`expected` are the keys the file may have),
    /// leaving the locator.
    pub(crate) fn finish<E>(
        self,
        expected: &[&str],
        problems: &mut Vec<FileProblem<E>>,
    ) -> Locator<'t> {
        let expected: Vec<String> = expected.iter().map(|k| format!("`{k}`")).collect();
        for (key, _) in self.map {
            problems.push(FileProblem::new(format!(
                "unknown field {}, expected one of {}",
                short(&key),
                expected.join(", ")
            )));
        }
        self.locator
    }
}
