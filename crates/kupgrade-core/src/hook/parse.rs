//! Reading a hooks file (YAML or JSON) into a [`HookSet`], with errors that name the file,
//! the hook and the field, at the line and column where it is written (the reading every
//! list file shares: `diagnostics::parse_list_file`).
use super::*;
use crate::diagnostics::{ListEntry, parse_list_file};

impl HookSet {
    /// Parses a hooks file in YAML or JSON. `file` only names the source in messages. Every
    /// problem found is reported.
    pub fn parse(text: &str, file: &str) -> Result<Self, HooksError> {
        let hooks =
            parse_list_file::<Hook, HookEntry>(text, file, API_VERSION, KIND, |parsed, out| {
                HookSet {
                    hooks: parsed.to_vec(),
                }
                .validate(out)
            })?;
        Ok(HookSet { hooks })
    }
}

impl ListEntry for HookEntry {
    const LIST: &'static str = "hooks";

    fn new(index: usize, name: Option<String>) -> Self {
        HookEntry { index, name }
    }

    fn index(&self) -> usize {
        self.index
    }

    fn index_mut(&mut self) -> &mut usize {
        &mut self.index
    }
}
