//! # kupgrade-exec
//!
//! Runs kupgrade plans (work in progress).
