//! `berth-conformance bench`.

use std::process::ExitCode;

/// Arguments of `berth-conformance bench`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `berth-conformance bench`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("berth-conformance bench is not implemented yet")
}
