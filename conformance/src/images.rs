//! `berth-conformance images`.

use std::process::ExitCode;

/// Arguments of `berth-conformance images`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `berth-conformance images`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("berth-conformance images is not implemented yet")
}
