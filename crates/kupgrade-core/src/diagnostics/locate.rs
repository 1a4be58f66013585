//! Where a value is written in a YAML or JSON source: one reading of the source gives every
//! position, so locating many problems costs a lookup each, not a scan each.
use std::cell::OnceCell;
use std::collections::HashMap;

use granit_parser::{Event, Parser, StructureStyle};

/// One step of a path into a document: a mapping's key or a list's index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// The value of this key.
    Key(String),
    /// The element at this 0-based index.
    Index(usize),
}

impl Step {
    /// A key.
    pub(crate) fn key(key: &str) -> Step {
        Step::Key(key.to_string())
    }

    /// The steps of a field path as messages write it (`nodes.role`, `components[1]`): keys
    /// separated by dots, indexes in brackets. Only for paths whose keys hold no dot; serde's
    /// paths come step by step ([`Step::of_serde_path`]).
    pub(crate) fn of_field(field: &str) -> Vec<Step> {
        let mut steps = Vec::new();
        for part in field.split('.') {
            let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
            if !key.is_empty() {
                steps.push(Step::key(key));
            }
            for index in indexes.split('[') {
                if let Ok(i) = index.trim_end_matches(']').parse() {
                    steps.push(Step::Index(i));
                }
            }
        }
        steps
    }

    /// The steps of a path serde reports (up to a step it could not name).
    pub(crate) fn of_serde_path(path: &serde_path_to_error::Path) -> Vec<Step> {
        use serde_path_to_error::Segment;
        path.iter()
            .map_while(|s| match s {
                Segment::Seq { index } => Some(Step::Index(*index)),
                Segment::Map { key } => Some(Step::Key(key.clone())),
                Segment::Enum { variant } => Some(Step::Key(variant.clone())),
                Segment::Unknown => None,
            })
            .collect()
    }
}

/// Finds where values are written in a YAML or JSON source.
///
/// The source is read the first time a position is asked for (a file without problems is
/// never read a second time); every answer after that is a few lookups, however many
/// problems the file has and wherever they are. A source that does not read to the end (it
/// was refused before) gives positions for what was read.
pub(crate) struct Locator<'a> {
    text: &'a str,
    index: OnceCell<Index>,
}

/// Every node of a document and how to reach it from its parent.
#[derive(Default)]
struct Index {
    /// The nodes in document order; the first is the root.
    nodes: Vec<Written>,
    /// Node `child` is the value at key or index `step` of node `parent`.
    children: HashMap<(usize, Step), usize>,
}

/// Where a node is written.
struct Written {
    /// 1-based line and column of its first character.
    at: (usize, usize),
    /// Where its first key is written, for a mapping that has one.
    first_key: Option<(usize, usize)>,
    /// Whether it is a list or mapping written inline (`[a, b]`, `{a: b}`).
    inline: bool,
}

impl<'a> Locator<'a> {
    /// A locator for `text` (not read yet).
    pub(crate) fn new(text: &'a str) -> Self {
        Locator {
            text,
            index: OnceCell::new(),
        }
    }

    fn node(&self, path: &[Step]) -> Option<&Written> {
        let index = self.index.get_or_init(|| Index::of(self.text));
        let mut at = 0;
        index.nodes.first()?;
        for step in path {
            at = *index.children.get(&(at, step.clone()))?;
        }
        index.nodes.get(at)
    }

    /// Where the value at `path` is written. An element of a list is pointed at through its
    /// list: indexes at the end of the path are left out (`roles[0]` is where `roles` is).
    pub(crate) fn value(&self, path: &[Step]) -> Option<(usize, usize)> {
        let keyed = path
            .iter()
            .rposition(|s| matches!(s, Step::Key(_)))
            .map_or(0, |i| i + 1);
        self.node(&path[..keyed]).map(|w| w.at)
    }

    /// Where the entry at `path` begins: its first key when it is a mapping, else its value.
    pub(crate) fn entry(&self, path: &[Step]) -> Option<(usize, usize)> {
        self.node(path).map(|w| w.first_key.unwrap_or(w.at))
    }

    /// Whether the list or mapping at `path` is written inline.
    pub(crate) fn is_inline(&self, path: &[Step]) -> bool {
        self.node(path).is_some_and(|w| w.inline)
    }
}

/// What the reader of a list or mapping expects next.
enum Open {
    /// An element of the list at `node`; `next` is its index.
    List { node: usize, next: usize },
    /// A key of the mapping at `node` (`key: None`), or the value of `key` (`Some(None)` for
    /// a key that is not a scalar, which no path names).
    Map {
        node: usize,
        key: Option<Option<String>>,
    },
}

impl Index {
    /// Reads the first document of `text`.
    fn of(text: &str) -> Index {
        let mut index = Index::default();
        let mut open: Vec<Open> = Vec::new();
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else {
                break;
            };
            let at = (span.start.line(), span.start.col() + 1);
            let (scalar, style) = match event {
                Event::Scalar(value, ..) => (Some(value), None),
                Event::Alias(_) => (None, None),
                Event::SequenceStart(style, ..) | Event::MappingStart(style, ..) => (
                    None,
                    Some((style, matches!(event, Event::MappingStart(..)))),
                ),
                Event::SequenceEnd | Event::MappingEnd => {
                    open.pop();
                    continue;
                }
                Event::DocumentEnd => break,
                _ => continue,
            };
            let node = index.nodes.len();
            index.nodes.push(Written {
                at,
                first_key: None,
                inline: style.is_some_and(|(s, _)| s == StructureStyle::Flow),
            });
            match open.last_mut() {
                None if node > 0 => break, // a second root: not one document
                None => {}
                Some(Open::List { node: list, next }) => {
                    index.children.insert((*list, Step::Index(*next)), node);
                    *next += 1;
                }
                Some(Open::Map { node: map, key }) => match key.take() {
                    None => {
                        let map = *map;
                        *key = Some(scalar.map(|k| k.into_owned()));
                        index.nodes[map].first_key.get_or_insert(at);
                    }
                    Some(Some(k)) => {
                        index.children.entry((*map, Step::Key(k))).or_insert(node);
                    }
                    Some(None) => {}
                },
            }
            if let Some((_, is_map)) = style {
                open.push(if is_map {
                    Open::Map { node, key: None }
                } else {
                    Open::List { node, next: 0 }
                });
            }
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(field: &str) -> Vec<Step> {
        Step::of_field(field)
    }

    #[test]
    fn finds_values_entries_and_styles_in_block_flow_and_json() {
        let text = "kind: x\nnodes:\n  - name: \"a\"\n    roles: [cp, {a: b}]\n  - {name: b, v: {k: 1}}\n  - ? complex\n    : 2\n    after: 3\n\"j\": {\"k\": [1, 2]}\n";
        let l = Locator::new(text);
        assert_eq!(l.value(&path("kind")), Some((1, 7)));
        assert_eq!(l.value(&path("nodes[0].name")), Some((3, 11)));
        assert_eq!(l.value(&path("nodes[0].roles[1]")), Some((4, 12)));
        assert_eq!(l.value(&path("nodes[0].roles[1].a")), Some((4, 21)));
        assert_eq!(l.entry(&path("nodes[0]")), Some((3, 5)));
        assert_eq!(l.entry(&path("nodes[1]")), Some((5, 6)));
        assert!(l.is_inline(&path("nodes[1]")));
        assert!(!l.is_inline(&path("nodes")));
        assert_eq!(l.value(&path("nodes[1].v.k")), Some((5, 22)));
        assert_eq!(l.value(&path("nodes[2].after")), Some((8, 12)));
        assert_eq!(l.value(&path("j.k")), Some((9, 12)));
        assert_eq!(l.entry(&path("j.k[1]")), Some((9, 16)));
        assert_eq!(l.value(&path("nodes[7]")), Some((3, 3)));
        assert_eq!(l.entry(&path("nodes[7]")), None);
        assert_eq!(l.value(&path("missing")), None);
    }

    #[test]
    fn a_broken_source_gives_what_was_read() {
        let l = Locator::new("a: 1\nb: [\n");
        assert_eq!(l.value(&path("a")), Some((1, 4)));
        assert_eq!(Locator::new("").value(&[]), None);
        assert_eq!(Locator::new("").entry(&path("x[0]")), None);
    }

    #[test]
    fn columns_count_characters() {
        let l = Locator::new("zoné: é\nnext: 1\n");
        assert_eq!(l.value(&path("zoné")), Some((1, 7)));
        assert_eq!(l.value(&path("next")), Some((2, 7)));
    }

    #[test]
    fn field_paths_read_as_steps() {
        assert_eq!(
            path("nodes.labels[2][0].x"),
            vec![
                Step::key("nodes"),
                Step::key("labels"),
                Step::Index(2),
                Step::Index(0),
                Step::key("x")
            ]
        );
        assert_eq!(path("[3]"), vec![Step::Index(3)]);
    }
}
