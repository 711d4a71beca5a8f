//! `berth`: an OCI runtime with runc's command line. This file only parses arguments,
//! sets up logging, calls the library and turns errors into one line and an exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use berth_runtime::state::StateRoot;
use berth_runtime::{container, seal, signal, specgen};
use clap::{Parser, Subcommand};

mod run;

/// Default state root, one directory per container.
const DEFAULT_ROOT: &str = "/run/berth/runtime";

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "An OCI container runtime with runc's command line"
)]
struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write log entries to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the --log file: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: LogFormat,
    /// Log debug messages.
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to manage cgroups (needs systemd on the host).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility: checkpointing is not supported.
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    /// Accepted for runc compatibility ("auto", "true", "false").
    #[arg(long = "rootless", id = "global_rootless", hide = true)]
    global_rootless: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct CreateArgs {
    /// Path to the bundle directory (holding config.json).
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket to send the pty master to, when process.terminal is set.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// File to write the container's init PID to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for a rootfs on ramfs).
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass this many extra file descriptors (from 3) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Container id.
    id: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container (it waits for `start`).
    Create(CreateArgs),
    /// Run the created container's program.
    Start { id: String },
    /// Create and start a container.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait for the container to exit.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
        /// Accepted for runc compatibility.
        #[arg(long = "no-subreaper", hide = true)]
        no_subreaper: bool,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal to a container's init (or all its processes).
    Kill {
        /// Signal every process in the container.
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything it holds.
    Delete {
        /// Kill the container first if it runs.
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Run a new process inside a running container.
    Exec(Box<run::ExecArgs>),
    /// List the processes of a container.
    Ps {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Options passed to ps(1).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers.
    List {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Print a container's resource usage and events.
    Events {
        /// Print stats once and exit.
        #[arg(long)]
        stats: bool,
        /// Interval between stats in the stream, e.g. 5s.
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Change a container's resource limits.
    Update(Box<berth_runtime::cgroups::update::Args>),
    /// Print the features this runtime supports (runtime-spec features.md).
    Features,
    /// Write a default config.json.
    Spec {
        /// Directory to write config.json in.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for a container run by an unprivileged user.
        #[arg(long)]
        rootless: bool,
    },
}

/// Where log lines go besides stderr.
struct Logger {
    file: Option<std::fs::File>,
    json: bool,
}

impl Logger {
    fn error(&mut self, msg: &str) {
        eprintln!("berth: {msg}");
        if let Some(f) = &mut self.file {
            let line = if self.json {
                serde_json::json!({"level": "error", "msg": msg, "time": now()}).to_string()
            } else {
                format!("time=\"{}\" level=error msg={:?}", now(), msg)
            };
            let _ = writeln!(f, "{line}");
        }
    }
}

fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut log = Logger {
        file: cli.log.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        }),
        json: cli.log_format == LogFormat::Json,
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line: each cause once (many messages already quote their source).
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg = format!("{msg}: {c}");
                }
            }
            let msg = msg.replace('\n', " ");
            log.error(&msg);
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    // Commands that put a process into a container run from a sealed copy of berth.
    if matches!(cli.cmd, Cmd::Create(_) | Cmd::Run { .. } | Cmd::Exec(_)) {
        seal::ensure_sealed(&cli.root).context("seal")?;
    }
    let root = StateRoot::new(&cli.root);
    let create_opts = |a: CreateArgs| container::CreateOpts {
        id: a.id,
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: cli.systemd_cgroup,
    };
    match cli.cmd {
        Cmd::Create(a) => {
            container::create(&root, &create_opts(a))?;
        }
        Cmd::Start { id } => container::start(&root, &id)?,
        Cmd::Run {
            create,
            detach,
            keep,
            no_subreaper: _,
        } => return run::run(&root, create_opts(create), detach, keep),
        Cmd::State { id } => {
            let st = root.load(&id)?;
            let dir = root.dir(&id)?;
            println!("{}", serde_json::to_string_pretty(&st.to_oci_json(&dir))?);
        }
        Cmd::Kill { all, id, signal: s } => {
            let sig = signal::parse(&s)?;
            container::kill(&root, &id, sig, all)?;
        }
        Cmd::Delete { force, id } => container::delete(&root, &id, force)?,
        Cmd::Exec(a) => return run::exec(&root, *a),
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => run::ps(&root, &id, &format, &ps_args)?,
        Cmd::List { format, quiet } => list(&root, &format, quiet)?,
        Cmd::Pause { id } => container::pause(&root, &id)?,
        Cmd::Resume { id } => container::resume(&root, &id)?,
        Cmd::Events {
            stats,
            interval,
            id,
        } => run::events(&root, &id, stats, &interval)?,
        Cmd::Update(a) => run::update(&root, &a.id, &a)?,
        Cmd::Features => println!("{}", serde_json::to_string_pretty(&specgen::features())?),
        Cmd::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} already exists", path.display());
            }
            let spec = specgen::default_spec(rootless);
            std::fs::write(&path, serde_json::to_vec_pretty(&spec)?)
                .with_context(|| format!("write {}", path.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(root: &StateRoot, format: &str, quiet: bool) -> Result<()> {
    let mut rows = Vec::new();
    for id in root.list()? {
        let Ok(st) = root.load(&id) else { continue };
        rows.push(st.to_oci_json(&root.dir(&id)?));
    }
    if quiet {
        for r in &rows {
            println!("{}", r["id"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    match format {
        "json" => println!("{}", serde_json::to_string(&rows)?),
        "table" => {
            let mut out = vec![[
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for r in &rows {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                out.push([
                    s("id"),
                    r["pid"].to_string(),
                    s("status"),
                    s("bundle"),
                    s("created"),
                    s("owner"),
                ]);
            }
            let widths: Vec<usize> = (0..6)
                .map(|i| out.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            for r in out {
                let line: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                    .collect();
                println!("{}", line.join("   ").trim_end());
            }
        }
        other => bail!("unknown format {other:?}: use table or json"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn runc_style_invocations_parse() {
        for args in [
            &[
                "berth",
                "--root",
                "/r",
                "--log",
                "/l",
                "--log-format",
                "json",
                "create",
                "--bundle",
                "/b",
                "--pid-file",
                "/p",
                "c1",
            ][..],
            &[
                "berth",
                "--rootless",
                "false",
                "run",
                "-d",
                "-b",
                "/b",
                "c1",
            ],
            &["berth", "kill", "--all", "c1", "KILL"],
            &["berth", "exec", "-t", "-e", "A=1", "c1", "sh", "-c", "echo"],
            &["berth", "spec", "--rootless", "-b", "/b"],
            &["berth", "update", "--memory", "512m", "c1"],
            &["berth", "events", "--stats", "c1"],
            &["berth", "ps", "-f", "json", "c1"],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
}
