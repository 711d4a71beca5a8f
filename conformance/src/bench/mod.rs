//! `berth-conformance bench`: side-by-side benchmarks; each prints medians and ratios
//! against the peer measured in the same run, and never fails a test.

use std::process::ExitCode;

use clap::Subcommand;

pub mod maxrss;
mod pull;
mod runtime;
mod stream;

/// Arguments of `berth-conformance bench`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand)]
enum Which {
    /// Container lifecycle: berth against runc and crun.
    Runtime(runtime::Args),
    /// Image pull and unpack: berth against containerd.
    Pull(pull::Args),
    /// Streaming throughput and latency against a plain loopback copy.
    Stream(stream::Args),
}

/// Runs the chosen benchmark.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.which {
        Which::Runtime(a) => runtime::run(a),
        Which::Pull(a) => pull::run(a),
        Which::Stream(a) => stream::run(a),
    }
}
