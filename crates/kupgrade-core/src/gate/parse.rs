//! Reading a gates file (YAML or JSON) into a [`GateSet`], with errors that name the file,
//! the gate and the field, at the line and column where it is written (the reading every
//! list file shares: `diagnostics::parse_list_file`).
use super::*;
use crate::diagnostics::{ListEntry, parse_list_file};

impl GateSet {
    /// Parses a gates file in YAML or JSON. `file` only names the source in messages. Every
    /// problem found is reported.
    pub fn parse(text: &str, file: &str) -> Result<Self, GatesError> {
        let gates =
            parse_list_file::<Gate, GateEntry>(text, file, API_VERSION, KIND, |parsed, out| {
                GateSet {
                    gates: parsed.to_vec(),
                }
                .validate(out)
            })?;
        Ok(GateSet { gates })
    }
}

impl ListEntry for GateEntry {
    const LIST: &'static str = "gates";

    fn new(index: usize, name: Option<String>) -> Self {
        GateEntry { index, name }
    }

    fn index(&self) -> usize {
        self.index
    }

    fn index_mut(&mut self) -> &mut usize {
        &mut self.index
    }
}
