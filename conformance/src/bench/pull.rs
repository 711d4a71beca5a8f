//! `berth-conformance bench pull` (being written).

use std::process::ExitCode;

/// Arguments of `berth-conformance bench pull`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `berth-conformance bench pull`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("berth-conformance bench pull is not implemented yet")
}
