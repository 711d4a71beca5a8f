//! `berth-conformance oci`.

use std::process::ExitCode;

/// Arguments of `berth-conformance oci`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `berth-conformance oci`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("berth-conformance oci is not implemented yet")
}
