//! `berth-pull`: pull one image into a berth store from the command line (for the pull
//! benchmark and for trying registries by hand; berthd uses the library directly).
//!
//! ```text
//! berth-pull --root DIR [--hosts-dir DIR] [--platform os/arch[/variant]]
//!            [--user USER:PASSWORD] [--concurrency N] REFERENCE
//! ```
//! Prints one JSON line: reference, target, chain_id, size, the seconds spent applying
//! layers (`unpack_seconds`, overlapping the downloads) and in total.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use berth_snapshotter::pull::{PullOptions, Stores, pull};
use berth_snapshotter::remote::{Credentials, Platform, Progress};
use berth_snapshotter::{ContentStore, MetaStore, Snapshotter};

struct Args {
    root: PathBuf,
    reference: String,
    opts: PullOptions,
}

fn parse_args() -> Result<Args, String> {
    let mut root = None;
    let mut reference = None;
    let mut opts = PullOptions::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--root" => root = Some(PathBuf::from(value("--root")?)),
            "--hosts-dir" => opts.hosts_dir = Some(PathBuf::from(value("--hosts-dir")?)),
            "--platform" => {
                let p = value("--platform")?;
                opts.platform =
                    Platform::parse(&p).ok_or_else(|| format!("bad --platform {p:?}"))?;
            }
            "--user" => {
                let u = value("--user")?;
                let (username, password) =
                    u.split_once(':').ok_or("--user must be USER:PASSWORD")?;
                opts.credentials = Credentials::Basic {
                    username: username.into(),
                    password: password.into(),
                };
            }
            "--concurrency" => {
                opts.max_concurrent_downloads = value("--concurrency")?
                    .parse()
                    .map_err(|_| "--concurrency must be a number")?;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: berth-pull --root DIR [--hosts-dir DIR] [--platform P] \
                            [--user U:P] [--concurrency N] REFERENCE"
                        .into(),
                );
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => {
                if reference.replace(s.to_owned()).is_some() {
                    return Err("only one REFERENCE".into());
                }
            }
        }
    }
    Ok(Args {
        root: root.ok_or("--root is required")?,
        reference: reference.ok_or("REFERENCE is required")?,
        opts,
    })
}

fn run(args: Args) -> Result<String, String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let stores = Stores {
        content: Arc::new(ContentStore::open(args.root.join("content")).map_err(|x| e(&x))?),
        snapshotter: Arc::new(Snapshotter::open(args.root.join("snapshots")).map_err(|x| e(&x))?),
        meta: MetaStore::open(args.root.join("meta.redb")).map_err(|x| e(&x))?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|x| e(&x))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut opts = args.opts;
    opts.progress = Some(tx);
    let start = Instant::now();
    // Add up the time spent applying layers (it overlaps the downloads).
    let watcher = rt.spawn(async move {
        let mut micros = 0u64;
        while let Some(ev) = rx.recv().await {
            if let Progress::LayerUnpacked { micros: m, .. } = ev {
                micros += m;
            }
        }
        micros
    });
    let result = rt.block_on(pull(&stores, &args.reference, &opts));
    let total = start.elapsed().as_secs_f64();
    drop(opts);
    let rec = result.map_err(|x| e(&x))?;
    let unpack = rt.block_on(watcher).map_err(|x| e(&x))? as f64 / 1e6;
    Ok(serde_json::json!({
        "reference": rec.name,
        "target": rec.target.to_string(),
        "chain_id": rec.chain_id,
        "size": rec.size,
        "unpack_seconds": unpack,
        "total_seconds": total,
    })
    .to_string())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(m) => {
            eprintln!("berth-pull: {m}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(m) => {
            eprintln!("berth-pull: {m}");
            ExitCode::FAILURE
        }
    }
}
