//! `berth-conformance bench stream` (being written).

use std::process::ExitCode;

/// Arguments of `berth-conformance bench stream`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `berth-conformance bench stream`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("berth-conformance bench stream is not implemented yet")
}
