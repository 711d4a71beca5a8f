//! berth-conformance: conformance suites, fixture images and benchmarks.
//! Talks to the other parts of berth only through their public interfaces.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod images;
mod oci;
mod orderfile;

#[derive(Parser)]
#[command(name = "berth-conformance", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the OCI runtime suite against a runtime's command line.
    Oci(oci::Args),
    /// Side-by-side benchmarks against peer tools.
    Bench(bench::Args),
    /// Build and push the fixture images.
    Images(images::Args),
    /// Write berth's symbol ordering file from a traced lifecycle workload.
    Orderfile(orderfile::Args),
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == bench::maxrss::TRAMPOLINE) {
        return bench::maxrss::trampoline(&args[2..]);
    }
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Oci(a) => oci::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Images(a) => images::run(a),
        Cmd::Orderfile(a) => orderfile::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth-conformance: {e:#}");
            ExitCode::FAILURE
        }
    }
}
