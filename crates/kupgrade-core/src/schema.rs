//! The JSON Schemas of kupgrade's file formats (inventory, rules, plan), generated from the
//! types and checked in under `schema/`; one test keeps every checked-in file in sync.
use schemars::JsonSchema;
use serde_json::{Value, json};

/// A file format's header: the `apiVersion` and `kind` fields serde does not see (each file's
/// reader checks them by hand), with the words the schema says of each.
pub(crate) struct Header {
    /// The `apiVersion` a file declares.
    pub api_version: &'static str,
    /// What the schema says of `apiVersion`.
    pub api_version_doc: &'static str,
    /// The `kind` a file declares.
    pub kind: &'static str,
    /// What the schema says of `kind`.
    pub kind_doc: &'static str,
}

/// The JSON Schema of `T` with `header`'s fields among its properties and `extra` set at the
/// top (`title`, `$id`), pretty-printed with a final newline: the checked-in file's text.
pub(crate) fn schema_json<T: JsonSchema>(header: &Header, extra: &[(&str, &str)]) -> String {
    let mut schema = schemars::schema_for!(T);
    if let Some(props) = schema
        .as_object_mut()
        .and_then(|o| o.get_mut("properties"))
        .and_then(Value::as_object_mut)
    {
        props.insert(
            "apiVersion".into(),
            json!({ "const": header.api_version, "description": header.api_version_doc }),
        );
        props.insert(
            "kind".into(),
            json!({ "const": header.kind, "description": header.kind_doc }),
        );
    }
    if let Some(o) = schema.as_object_mut() {
        for (key, value) in extra {
            o.insert((*key).into(), (*value).into());
        }
    }
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    /// A checked-in schema: its file under `schema/`, the text compiled in, and how to
    /// generate it afresh.
    type Row = (&'static str, &'static str, fn() -> String);

    /// Every checked-in schema.
    const SCHEMAS: [Row; 5] = [
        (
            "gates.schema.json",
            crate::gate::SCHEMA,
            crate::gate::schema_json,
        ),
        (
            "hooks.schema.json",
            crate::hook::SCHEMA,
            crate::hook::schema_json,
        ),
        (
            "inventory.schema.json",
            crate::inventory::SCHEMA,
            crate::inventory::schema_json,
        ),
        (
            "plan.schema.json",
            crate::plan::SCHEMA,
            crate::plan::schema_json,
        ),
        (
            "rules.schema.json",
            crate::skew::rules::SCHEMA,
            crate::skew::rules::schema_json,
        ),
    ];

    /// The checked-in schemas match the types, and every file under `schema/` is one of them.
    /// `KUPGRADE_BLESS=1 cargo test -p kupgrade-core schemas_are_in_sync` rewrites the stale
    /// ones.
    #[test]
    #[allow(clippy::disallowed_methods)]
    fn schemas_are_in_sync() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schema");
        let bless = std::env::var_os("KUPGRADE_BLESS").is_some();
        let mut stale = Vec::new();
        for (file, checked_in, generate) in SCHEMAS {
            let fresh = generate();
            if fresh == checked_in {
                continue;
            }
            if bless {
                std::fs::write(format!("{dir}/{file}"), &fresh).unwrap();
            } else {
                stale.push(format!("schema/{file}"));
            }
        }
        assert!(
            stale.is_empty(),
            "{} out of date: run `KUPGRADE_BLESS=1 cargo test -p kupgrade-core schemas_are_in_sync` and review the diff",
            stale.join(", ")
        );
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = SCHEMAS.iter().map(|(file, ..)| *file).collect();
        assert_eq!(
            on_disk, listed,
            "every file under schema/ needs a row in SCHEMAS"
        );
    }
}
