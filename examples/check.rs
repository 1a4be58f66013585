//! `cargo run --example check [-- FILE]`: reads an inventory and prints its component versions
//! and skew report.
use anyhow::Context;
use clap::Parser;
use kupgrade_core::skew::{self, SkewPolicy, UpstreamPolicy};

/// Check a cluster inventory against the version skew policy.
#[derive(Parser)]
struct Args {
    /// The inventory file (YAML or JSON).
    #[arg(default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/clusters/ha.yaml"))]
    file: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file))?;
    let cluster = kupgrade_core::inventory::parse(&text, &args.file)?;
    for node in &cluster.nodes {
        println!("{}", node.name);
        for (c, v) in node.versions.iter() {
            println!("  {c:<24} {v}");
        }
    }
    print!("{}", skew::report(&UpstreamPolicy::new().evaluate(&cluster)));
    Ok(())
}
