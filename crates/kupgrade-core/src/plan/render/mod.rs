//! Renderers: text for a terminal, a Markdown runbook, JSON and YAML (one versioned format),
//! and a Mermaid gantt chart. Same plan, same bytes.
mod json;
mod markdown;
mod mermaid;
mod text;

pub use json::{from_json, from_yaml, to_json, to_yaml};
pub use markdown::markdown;
pub use mermaid::mermaid;
pub use text::text;
