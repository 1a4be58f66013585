//! Shared fixtures for kupgrade's criterion benchmarks (see `benches/`).
