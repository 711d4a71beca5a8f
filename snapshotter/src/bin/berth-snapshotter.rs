//! `berth-snapshotter`: berth's overlay snapshotter served as containerd's snapshots
//! gRPC API on a unix socket, for containerd's proxy plugins:
//!
//! ```toml
//! [proxy_plugins.berth]
//!   type = "snapshot"
//!   address = "/run/berth/snapshotter.sock"
//! ```
//!
//! Serves until SIGTERM or SIGINT, then removes its socket.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_snapshotter::Snapshotter;
use berth_snapshotter::grpc::{DEFAULT_ADDRESS, bind, serve};
use berth_snapshotter::snapshots::DEFAULT_ROOT;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

/// Serve berth's snapshotter to containerd (proxy plugin of type "snapshot").
#[derive(Debug, Parser)]
#[command(name = "berth-snapshotter", version)]
struct Args {
    /// Directory holding the snapshots and their metadata.
    #[arg(long, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Unix socket to serve on (containerd's proxy_plugins address).
    #[arg(long, default_value = DEFAULT_ADDRESS)]
    address: PathBuf,
}

/// Removes the socket when the server stops, however it stops.
struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("handle SIGINT")?;
        let root = args.root.clone();
        let snapshotter = tokio::task::spawn_blocking(move || Snapshotter::open(&root))
            .await
            .context("open the snapshotter")?
            .with_context(|| format!("open snapshotter root {}", args.root.display()))?;
        let listener = bind(&args.address)?;
        let _socket = SocketGuard(args.address.clone());
        let listener = tokio::net::UnixListener::from_std(listener)
            .with_context(|| format!("listen on {}", args.address.display()))?;
        eprintln!(
            "berth-snapshotter: serving {} on {}",
            args.root.display(),
            args.address.display()
        );
        serve(snapshotter, listener, async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
        .await
        .context("serve")
    })
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-snapshotter: {e:#}");
            ExitCode::FAILURE
        }
    }
}
