//! Where a value sits in a JSON text, for error messages that name the line: the release
//! calendar and the kubeadm version table point at the entry and field at fault.
use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// The 1-based line and column of the value at `path` (`minors[3].patches[2].version`, the
/// form `serde_path_to_error` prints; `.` or empty for the whole text) in `text`. When the path
/// goes further than the text (a missing field), the deepest value found is answered; `None`
/// only when `text` is not JSON.
pub(crate) fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let mut at: &RawValue = serde_json::from_str(text).ok()?;
    for segment in segments(path) {
        let next = match segment {
            Segment::Key(key) => serde_json::from_str::<BTreeMap<String, &RawValue>>(at.get())
                .ok()
                .and_then(|mut map| map.remove(key)),
            Segment::Index(i) => serde_json::from_str::<Vec<&RawValue>>(at.get())
                .ok()
                .and_then(|list| list.get(i).copied()),
        };
        match next {
            Some(n) => at = n,
            None => break,
        }
    }
    Some(position(text, at.get()))
}

/// The 1-based line and column (in characters) where `part`, a slice of `text`, starts.
fn position(text: &str, part: &str) -> (usize, usize) {
    let offset = (part.as_ptr() as usize)
        .saturating_sub(text.as_ptr() as usize)
        .min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[2].c` as `a`, `b`, `[2]`, `c`; a segment that is neither is skipped.
fn segments(path: &str) -> impl Iterator<Item = Segment<'_>> {
    path.split('.').filter(|s| !s.is_empty()).flat_map(|part| {
        let (key, rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        let key = (!key.is_empty()).then_some(Segment::Key(key));
        let indices = rest
            .split(['[', ']'])
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok().map(Segment::Index));
        key.into_iter().chain(indices)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_indices_and_stops_at_the_deepest_value_found() {
        let text = "{\n  \"minors\": [\n    {\"minor\": \"1.28\",\n     \"patches\": [{\"version\": \"x\"}]}\n  ]\n}";
        assert_eq!(locate(text, "."), Some((1, 1)));
        assert_eq!(locate(text, "minors"), Some((2, 13)));
        assert_eq!(locate(text, "minors[0]"), Some((3, 5)));
        assert_eq!(locate(text, "minors[0].minor"), Some((3, 15)));
        assert_eq!(locate(text, "minors[0].patches[0].version"), Some((4, 30)));
        // A missing field: the entry that lacks it.
        assert_eq!(locate(text, "minors[0].released"), Some((3, 5)));
        assert_eq!(locate(text, "minors[7]"), Some((2, 13)));
        assert_eq!(locate("{", "."), None);
    }

    #[test]
    fn columns_count_characters() {
        let text = "{\"é\": 1, \"b\": 2}";
        assert_eq!(locate(text, "b"), Some((1, 15)));
    }
}
