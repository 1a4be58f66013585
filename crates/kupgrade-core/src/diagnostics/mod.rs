//! Problems in input files, said one way for every file kupgrade reads (inventories, rules
//! files, release calendars): `file:line:col: entry: field: message`.
//!
//! A [`FileProblem`] says where (line and column, where known), which entry (a node, a rule,
//! a minor: the file's [`Entry`] type), which field and what is wrong; a [`FileError`] holds
//! every problem found in one file and prints one per line:
//!
//! ```
//! use kupgrade_core::inventory;
//! let text = "nodes:\n  - name: cp-1\n    roles: [control-plane]\n    versions: { kubelet: v1.29.1, kube-apiserver: v1.29.1 }\n  - name: w-1\n    versions: { kubelet: 1.29.x }\n";
//! let err = inventory::parse(text, "inventory.yaml").unwrap_err();
//! let problem = &err.problems[0];
//! assert_eq!(problem.location, Some((6, 26)));
//! assert_eq!(problem.entry.as_ref().unwrap().to_string(), "node \"w-1\"");
//! assert_eq!(problem.field.as_deref(), Some("versions.kubelet"));
//! assert_eq!(
//!     err.to_string(),
//!     "inventory.yaml:6:26: node \"w-1\": versions.kubelet: \"1.29.x\" is not a version: \
//!      unexpected character 'x' in patch"
//! );
//! ```
//!
//! Positions are found by reading the source once, and only when a problem needs one (see
//! `locate`); before YAML is parsed, a linear pre-scan refuses lists and mappings nested deeper
//! than [`MAX_DEPTH`] (see `nesting`), so neither a hostile nor a badly broken file costs more
//! than time in proportion to its size.
use std::fmt;

use serde_yaml_ng::Value;

mod list_file;
mod locate;
mod nesting;

pub(crate) use list_file::{TopLevel, check_argv, check_named_entries, list_file, parse_list_file};
pub(crate) use locate::{Locator, Step};

/// The deepest lists and mappings (`[` and `{`) may be nested in an input file.
pub const MAX_DEPTH: usize = 128;

/// How a file's entries are named in its messages (`node "w-1"`, `rule 2 ("lag")`,
/// `minor 1.28`).
pub trait Entry: fmt::Display {
    /// Said before a field's path: nothing by default; the release calendar's messages say
    /// `field patches[1].version`.
    const FIELD_PREFIX: &'static str = "";
}

/// Which list an entry of a [`ListEntry`] stands in: the noun that names one entry in
/// messages and the list's key in its file.
pub trait ListKind {
    /// One entry (`gate`).
    const NOUN: &'static str;
    /// The list's top-level key (`gates`).
    const LIST: &'static str;
}

/// The entry of a list (a gates, hooks or rules file) a problem is about: its 1-based place in
/// the file and its name (a rule's id) when it has one. Said `gate 2 ("web")`, or `gate 2`;
/// `K` gives the noun ([`ListKind`]).
///
/// ```
/// use kupgrade_core::gate::GateEntry;
/// assert_eq!(GateEntry::new(2, Some("web".into())).to_string(), "gate 2 (\"web\")");
/// assert_eq!(GateEntry::new(2, None).to_string(), "gate 2");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry<K> {
    /// The entry's 1-based place in its file.
    pub index: usize,
    /// Its name (a rule's id), when it has one.
    pub name: Option<String>,
    kind: std::marker::PhantomData<K>,
}

impl<K> ListEntry<K> {
    /// The entry at 1-based `index`, named `name` when it has one.
    pub fn new(index: usize, name: Option<String>) -> Self {
        ListEntry {
            index,
            name,
            kind: std::marker::PhantomData,
        }
    }
}

impl<K: ListKind> fmt::Display for ListEntry<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{} {} ({n:?})", K::NOUN, self.index),
            None => write!(f, "{} {}", K::NOUN, self.index),
        }
    }
}

impl<K: ListKind> Entry for ListEntry<K> {}

/// One problem in an input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProblem<E> {
    /// 1-based line and column (in characters), where known.
    pub location: Option<(usize, usize)>,
    /// The entry at fault (a node, a rule, a minor), when the problem is inside one.
    pub entry: Option<E>,
    /// The field at fault, as a path inside the entry or the file (`versions.kubelet`,
    /// `roles[0]`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl<E> FileProblem<E> {
    /// A problem with the file as a whole, with no position.
    pub fn new(message: impl Into<String>) -> Self {
        FileProblem {
            location: None,
            entry: None,
            field: None,
            message: message.into(),
        }
    }

    /// The same problem at `location`.
    pub fn at(mut self, location: Option<(usize, usize)>) -> Self {
        self.location = location;
        self
    }

    /// The same problem in `entry`.
    pub fn in_entry(mut self, entry: E) -> Self {
        self.entry = Some(entry);
        self
    }

    /// The same problem in `field`.
    pub fn in_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl<E: Entry> FileProblem<E> {
    /// The problem as one line of a message about `file`: `file:line:col: entry: field:
    /// message`, each part said when known.
    pub fn display_in<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        InFile {
            file,
            problem: self,
        }
    }
}

/// [`FileProblem::display_in`].
struct InFile<'a, E> {
    file: &'a str,
    problem: &'a FileProblem<E>,
}

impl<E: Entry> fmt::Display for InFile<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.problem;
        f.write_str(self.file)?;
        if let Some((line, col)) = p.location {
            write!(f, ":{line}:{col}")?;
        }
        if let Some(entry) = &p.entry {
            write!(f, ": {entry}")?;
        }
        if let Some(field) = &p.field {
            write!(f, ": {}{field}", E::FIELD_PREFIX)?;
        }
        write!(f, ": {}", p.message)
    }
}

/// A file that could not be read: every problem found, one per line when printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError<E> {
    /// The file's name in messages.
    pub file: String,
    /// What is wrong, at least one.
    pub problems: Vec<FileProblem<E>>,
}

impl<E> FileError<E> {
    /// `value` when no problem was found, else the error of `file` with every problem.
    pub(crate) fn unless_any<T>(
        file: impl Into<String>,
        problems: Vec<FileProblem<E>>,
        value: T,
    ) -> Result<T, Self> {
        if problems.is_empty() {
            Ok(value)
        } else {
            Err(FileError {
                file: file.into(),
                problems,
            })
        }
    }
}

impl<E: Entry> fmt::Display for FileError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", p.display_in(&self.file))?;
        }
        Ok(())
    }
}

impl<E: Entry + fmt::Debug> std::error::Error for FileError<E> {}

/// A file that could not be read, for its first problem (the tables kupgrade ships and their
/// newer copies: a release calendar, a facts table): the file's name and the problem, printed
/// `origin:line:col: entry: field: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError<E> {
    origin: String,
    problem: FileProblem<E>,
}

impl<E> SourceError<E> {
    /// `problem`, in the file named `origin`.
    pub(crate) fn new(origin: &str, problem: FileProblem<E>) -> Self {
        SourceError {
            origin: origin.to_string(),
            problem,
        }
    }
    /// The name of the file, as given to the parser.
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// The entry at fault, when the problem is inside one.
    pub fn entry(&self) -> Option<&E> {
        self.problem.entry.as_ref()
    }
    /// The field at fault, as a path inside the entry or the file (`patches[2].version`).
    pub fn field(&self) -> Option<&str> {
        self.problem.field.as_deref()
    }
    /// Line and column (1-based) of the problem, where known: of a syntax error, or of the
    /// value at fault (of the entry, for a missing field).
    pub fn location(&self) -> Option<(usize, usize)> {
        self.problem.location
    }
    /// What is wrong.
    pub fn reason(&self) -> &str {
        &self.problem.message
    }
}

impl<E: Entry> fmt::Display for SourceError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.problem.display_in(&self.origin).fmt(f)
    }
}

impl<E: Entry + fmt::Debug> std::error::Error for SourceError<E> {}

/// Reads `text` as YAML (JSON is YAML) after [`MAX_DEPTH`]'s linear check; a syntax error is
/// a problem at its line and column.
pub(crate) fn parse_yaml<E>(text: &str) -> Result<Value, FileProblem<E>> {
    if let Some(at) = nesting::too_deep(text, MAX_DEPTH) {
        return Err(FileProblem::new(format!(
            "lists and mappings are nested more than {MAX_DEPTH} deep"
        ))
        .at(Some(at)));
    }
    serde_yaml_ng::from_str(text).map_err(|e| {
        let location = e.location().map(|l| (l.line(), l.column()));
        let message = e.to_string();
        // serde_yaml_ng appends " at line L column C"; the location is printed up front.
        let message = match message.find(" at line ") {
            Some(i) if location.is_some() => message[..i].to_string(),
            _ => message,
        };
        FileProblem::new(message).at(location)
    })
}

/// serde_json's message without the " at line L column C" it appends (the position is
/// printed up front).
pub(crate) fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) if e.line() > 0 => text[..i].to_string(),
        _ => text,
    }
}

/// Reads `text` as one JSON document of type `T`, and nothing after it. A syntax error is a
/// problem at the line and column where the parser stopped; a value that does not fit is a
/// problem at its field's path (`minors[2].patches`; none for the top level itself), with no
/// position (the caller may locate it).
pub(crate) fn json_document<T: serde::de::DeserializeOwned, E>(
    text: &str,
) -> Result<T, FileProblem<E>> {
    let syntax =
        |e: &serde_json::Error| FileProblem::new(json_message(e)).at(Some((e.line(), e.column())));
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(syntax(&inner));
            }
            let mut p = FileProblem::new(json_message(&inner));
            if path != "." {
                p = p.in_field(path);
            }
            return Err(p);
        }
    };
    de.end().map_err(|e| syntax(&e))?;
    Ok(value)
}

/// A value that did not deserialize: the field at fault as messages write it, the path to
/// it, and serde's message.
pub(crate) struct Refused {
    /// The field's path (`versions.kubelet`), when inside the value.
    pub field: Option<String>,
    /// The same path, step by step.
    pub path: Vec<Step>,
    /// What serde said.
    pub message: String,
}

/// Deserializes `value`, keeping the path of the field at fault.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Refused> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let field = (field != "." && !field.is_empty()).then_some(field);
        let path = Step::of_serde_path(e.path());
        Refused {
            field,
            path,
            message: e.into_inner().to_string(),
        }
    })
}

/// What kind of value `v` is, in words (`a list`).
pub(crate) fn kind_of(v: &Value) -> &'static str {
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

/// A string quoted, anything else by its kind.
pub(crate) fn short(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => kind_of(other).to_string(),
    }
}
