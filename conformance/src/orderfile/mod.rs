//! `berth-conformance orderfile`: writes the symbol ordering file that lays out
//! `berth`'s code (runtime/berth.order, read by runtime/build.rs).
//!
//! Why: every `berth` invocation is a fresh process, and the kernel maps 64 KiB of the
//! binary around each code page it touches (fault-around). The functions a command
//! runs are a few hundred scattered over megabytes of code, so most of a command's RSS
//! was text it never ran. Placing the functions that the container lifecycle runs
//! first, in the order they first run, packs them into few windows. (Browsers and
//! Android ship order files for the same reason.)
//!
//! How: it runs a lifecycle workload (every runtime command against a busybox bundle)
//! with an unstripped release build of berth under a function-entry tracer
//! (`trace.rs`), and writes the functions that ran, one symbol per line: those that
//! ran in the most commands first (start-up, argument parsing, loading the state),
//! then in the order they first ran.
//! A stale file (after a toolchain or dependency update renames symbols) costs memory,
//! never correctness: the linker ignores names it does not know.

mod elf;
mod trace;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};

use crate::oci::bundle::RootfsTemplate;

/// Arguments of `berth-conformance orderfile`.
#[derive(clap::Args)]
pub struct Args {
    /// An unstripped release build of berth
    /// (`CARGO_PROFILE_RELEASE_STRIP=false cargo build --release -p berth-runtime`).
    #[arg(long)]
    berth: PathBuf,
    /// Where to write the ordering file (runtime/berth.order).
    #[arg(long, required_unless_present = "check", conflicts_with = "check")]
    out: Option<PathBuf>,
    /// Instead of tracing, check that this ordering file still names the functions
    /// of `--berth` (a toolchain, dependency or version change renames symbols);
    /// fails below 90%.
    #[arg(long)]
    check: Option<PathBuf>,
}

/// Below this share of known names, an ordering file is stale.
const FRESH_PERCENT: usize = 90;

/// Share (percent) of the names in `order` that are among `funcs`, and the count.
pub fn fresh_percent(order: &str, funcs: &[elf::Function]) -> (usize, usize, usize) {
    let names: std::collections::HashSet<&str> = funcs.iter().map(|f| f.name.as_str()).collect();
    let listed: Vec<&str> = order.lines().filter(|l| !l.is_empty()).collect();
    let found = listed.iter().filter(|l| names.contains(*l)).count();
    let pct = if listed.is_empty() {
        0
    } else {
        found * 100 / listed.len()
    };
    (pct, found, listed.len())
}

/// Runs the workload under the tracer and writes the ordering file.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let image =
        std::fs::read(&args.berth).with_context(|| format!("reading {}", args.berth.display()))?;
    let funcs = elf::functions(&image).with_context(|| args.berth.display().to_string())?;
    if let Some(order) = &args.check {
        let text = std::fs::read_to_string(order)
            .with_context(|| format!("reading {}", order.display()))?;
        let (pct, found, listed) = fresh_percent(&text, &funcs);
        println!(
            "{}: {found} of {listed} names are functions of {} ({pct}%)",
            order.display(),
            args.berth.display()
        );
        if pct < FRESH_PERCENT {
            bail!(
                "{} is stale (below {FRESH_PERCENT}%): regenerate it with scripts/orderfile.sh",
                order.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let out = args.out.context("--out or --check is required")?;
    let total = funcs.len();
    let mut tracer = trace::Tracer::new(&args.berth, funcs)?;
    let scratch = tempdir()?;
    let result = workload(&mut tracer, &args.berth, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    let mut text = String::new();
    let mut bytes = 0;
    for f in tracer.order() {
        text.push_str(&f.name);
        text.push('\n');
        bytes += f.size;
    }
    let n = text.lines().count();
    if n == 0 {
        bail!("the workload ran no function of {}", args.berth.display());
    }
    std::fs::write(&out, text).with_context(|| out.display().to_string())?;
    println!(
        "{n} of {total} functions ran ({} KiB of code); wrote {}",
        bytes / 1024,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("berth-orderfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    Ok(dir)
}

/// Every runtime command a node runs, each traced: the create/start/state/kill/delete
/// lifecycle, foreground and detached run, exec, ps, list, pause, resume, events,
/// update, spec, features, and the common errors.
fn workload(tracer: &mut trace::Tracer, berth: &Path, dir: &Path) -> anyhow::Result<()> {
    let template = RootfsTemplate::build(&dir.join("template"))?;
    let bundle = |name: &str, args: &[&str]| template.plain_bundle(dir, name, args);
    let sleep = bundle("sleep", &["/bin/sleep", "1000"])?;
    let truth = bundle("true", &["/bin/true"])?;
    let root = dir.join("state");
    let spec_dir = dir.join("spec");
    std::fs::create_dir_all(&spec_dir)?;
    let id = format!("order-{}", std::process::id());
    let b = |s: &Path| s.to_string_lossy().into_owned();
    let (sleep, truth, spec_dir) = (b(&sleep), b(&truth), b(&spec_dir));
    // (arguments, whether it must succeed)
    let steps: Vec<(Vec<&str>, bool)> = vec![
        (vec!["create", "--bundle", &sleep, &id], true),
        (vec!["state", &id], true),
        (vec!["start", &id], true),
        (vec!["state", &id], true),
        (vec!["exec", &id, "/bin/true"], true),
        (vec!["ps", &id], true),
        (vec!["events", "--stats", &id], true),
        (vec!["update", "--pids-limit", "100", &id], true),
        (vec!["pause", &id], true),
        (vec!["resume", &id], true),
        (vec!["list"], true),
        (vec!["kill", &id, "KILL"], true),
        (vec!["delete", "--force", &id], true),
        (vec!["run", "--bundle", &truth, &id], true),
        (vec!["run", "--detach", "--bundle", &sleep, &id], true),
        (vec!["kill", &id], true),
        (vec!["delete", "--force", &id], true),
        (vec!["create", "--bundle", &truth, &id], true),
        (vec!["start", &id], true),
        (vec!["delete", "--force", &id], true),
        (vec!["state", &id], false),
        (vec!["spec", "--bundle", &spec_dir], true),
        (vec!["features"], true),
    ];
    for (args, must) in steps {
        let mut cmd = Command::new(berth);
        cmd.arg("--root")
            .arg(&root)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let code = tracer.run(&mut cmd)?;
        if must && code != 0 {
            bail!("berth {}: exit {code}", args.join(" "));
        }
        if !must && code == 0 {
            bail!("berth {}: succeeded, expected an error", args.join(" "));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_counts_known_names() {
        let f = |name: &str| elf::Function {
            addr: 0x1000,
            size: 1,
            name: name.to_string(),
        };
        let funcs = [
            f("main"),
            f("_ZN5berth4main17h0123456789abcdefE"),
            f("memcpy"),
        ];
        assert_eq!(fresh_percent("main\nmemcpy\n", &funcs), (100, 2, 2));
        assert_eq!(fresh_percent("main\ngone\n\n", &funcs), (50, 1, 2));
        assert_eq!(fresh_percent("", &funcs), (0, 0, 0));
    }
}
