//! `berth-conformance bench runtime` (being written).

use std::process::ExitCode;

/// Arguments of `berth-conformance bench runtime`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `berth-conformance bench runtime`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("berth-conformance bench runtime is not implemented yet")
}
