//! Fuzzes the inventory parser: it never panics, and every input gives either a valid state
//! or a clear error (naming the file, at least one problem, each with a message). A valid
//! state passes `inventory::validate`, and written back as YAML or JSON it parses to the same
//! state.
#![no_main]

use kupgrade_core::inventory;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match inventory::parse(text, "fuzz.yaml") {
        Ok(state) => {
            inventory::validate(&state).expect("a parsed inventory is valid");
            let yaml = serde_yaml_ng::to_string(&state).expect("a state serializes to YAML");
            let again = inventory::parse(&yaml, "again.yaml")
                .unwrap_or_else(|e| panic!("re-serialized state does not parse:\n{yaml}\n{e}"));
            assert_eq!(again, state, "YAML round trip changed the state:\n{yaml}");
            let json = serde_json::to_string(&state).expect("a state serializes to JSON");
            let again = inventory::parse(&json, "again.json")
                .unwrap_or_else(|e| panic!("re-serialized state does not parse:\n{json}\n{e}"));
            assert_eq!(again, state, "JSON round trip changed the state:\n{json}");
        }
        Err(e) => {
            assert_eq!(e.file, "fuzz.yaml");
            assert!(!e.problems.is_empty(), "an error with no problem");
            for p in &e.problems {
                assert!(!p.message.is_empty(), "a problem with no message: {p:?}");
            }
            let shown = e.to_string();
            assert!(shown.starts_with("fuzz.yaml"), "{shown}");
        }
    }
});
