//! `berth-conformance images`: build the fixture images as an OCI layout, push them to a
//! registry, and serve tokens for a registry that requires bearer auth.

use std::path::PathBuf;
use std::process::ExitCode;

pub mod fixtures;
pub mod layer;
pub mod layout;
pub mod push;
pub mod token;

/// Arguments of `berth-conformance images`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Write the fixture images into the OCI layout DIR (ref names: busybox, user-uid,
    /// user-name, user-group, entrypoint, httpd, layers, zstd, docker-schema2, multiarch,
    /// and large with --large).
    Build {
        /// The OCI layout directory (created if missing).
        dir: PathBuf,
        /// Also build the large (about 220 MB, 4000 files) image for `bench pull`.
        #[arg(long)]
        large: bool,
    },
    /// Push every image of the layout DIR to REGISTRY as berth/NAME:latest (plain HTTP).
    Push {
        /// The OCI layout directory.
        dir: PathBuf,
        /// Registry address, host:port.
        #[arg(long)]
        registry: String,
        /// user:password for a registry behind token or basic auth.
        #[arg(long)]
        creds: Option<String>,
        /// Blobs up to this many bytes go up in one request, bigger ones in chunks of it.
        #[arg(long, default_value_t = push::DEFAULT_CHUNK)]
        chunk_size: usize,
    },
    /// Serve registry bearer tokens (docker-registry `auth: token`) on LISTEN.
    TokenServer(token::Args),
}

/// Runs `berth-conformance images`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Cmd::Build { dir, large } => {
            let names = fixtures::build_all(&dir, large)?;
            for n in names {
                println!("{n}");
            }
        }
        Cmd::Push {
            dir,
            registry,
            creds,
            chunk_size,
        } => {
            push::check_layout(&dir)?;
            for r in push::Pusher::new(&registry, creds, chunk_size).push_layout(&dir)? {
                println!("{registry}/{r}");
            }
        }
        Cmd::TokenServer(a) => token::serve(a)?,
    }
    Ok(ExitCode::SUCCESS)
}
