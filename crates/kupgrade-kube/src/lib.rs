//! # kupgrade-kube
//!
//! The Kubernetes API adapter (work in progress).
