//! `berth-conformance oci`: the OCI runtime suite.
//!
//! Drives any runtime through runc's command line only (create/start/state/kill/
//! delete/run/exec/ps/list/pause/resume/events/update), builds its own busybox
//! bundles, and checks each runtime-spec field from inside the container.
//! One line per case, then `N passed, N failed` (`, N skipped`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

pub mod bundle;
mod cases;
pub mod check;
pub mod ctx;
pub mod driver;
pub mod hostns;

use ctx::{Ctx, Skip, Suite};
use driver::Runtime;

/// Arguments of `berth-conformance oci`.
#[derive(clap::Args)]
pub struct Args {
    /// The runtime binary (runc's command line), e.g. /usr/sbin/runc or target/release/berth.
    #[arg(long)]
    runtime: PathBuf,
    /// Run only the cases whose name contains this substring.
    #[arg(long)]
    filter: Option<String>,
    /// Keep the bundles and state directories of every case (printed at the end).
    #[arg(long)]
    keep: bool,
    /// Re-enter a private mount namespace in which /sys/fs/cgroup/unified is unmounted
    /// (for runtimes such as crun 1.8 that refuse a v1/v2 hybrid with controllers on v2).
    #[arg(long)]
    private_unified: bool,
    /// Seconds any one runtime command may take before it is killed and the case fails.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// List the case names and exit.
    #[arg(long)]
    list: bool,
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The runtime did what the spec says.
    Pass,
    /// It did not; the reason says what was seen.
    Fail(String),
    /// The runtime declares the feature unsupported (reason says how).
    Skip(String),
}

/// Runs `berth-conformance oci`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let all = cases::all();
    if args.list {
        for c in &all {
            println!("{}", c.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.private_unified {
        hostns::enter_private_unified().context("--private-unified")?;
    }
    let runtime = Runtime::new(&args.runtime, std::time::Duration::from_secs(args.timeout))?;
    let suite = Suite::new(runtime, args.keep)?;
    let mut tally = Tally::default();
    let mut out = std::io::stdout().lock();
    for case in all
        .iter()
        .filter(|c| args.filter.as_deref().is_none_or(|f| c.name.contains(f)))
    {
        let verdict = run_case(&suite, case);
        writeln!(out, "{}", verdict_line(case.name, &verdict))?;
        out.flush()?;
        tally.add(&verdict);
    }
    writeln!(out, "{}", tally.summary())?;
    if args.keep {
        writeln!(out, "# kept: {}", suite.base().display())?;
    }
    Ok(if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_case(suite: &Suite, case: &cases::Case) -> Verdict {
    let mut ctx = match Ctx::new(suite, case.name) {
        Ok(c) => c,
        Err(e) => return Verdict::Fail(format!("setting up the case: {e:#}")),
    };
    if let Some(feature) = case.needs
        && let Some(reason) = suite.unsupported(feature)
    {
        return Verdict::Skip(reason);
    }
    let result = (case.run)(&mut ctx);
    let cleanup = ctx.finish();
    match result {
        Ok(()) => match cleanup {
            Ok(()) => Verdict::Pass,
            Err(e) => Verdict::Fail(format!("cleanup: {e:#}")),
        },
        Err(e) => match e.downcast_ref::<Skip>() {
            Some(s) => Verdict::Skip(s.0.clone()),
            None => Verdict::Fail(one_line(&format!("{e:#}"))),
        },
    }
}

/// Folds a message onto one line so each case keeps one output line.
pub fn one_line(s: &str) -> String {
    let joined: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    joined.join(" | ")
}

/// The output line of one case: `ok NAME`, `FAIL NAME: reason` or `skip NAME: reason`.
pub fn verdict_line(name: &str, v: &Verdict) -> String {
    match v {
        Verdict::Pass => format!("ok {name}"),
        Verdict::Fail(r) => format!("FAIL {name}: {}", one_line(r)),
        Verdict::Skip(r) => format!("skip {name}: {}", one_line(r)),
    }
}

/// Counts of each verdict.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases skipped because the runtime declares the feature unsupported.
    pub skipped: usize,
}

impl Tally {
    /// Counts one verdict.
    pub fn add(&mut self, v: &Verdict) {
        match v {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail(_) => self.failed += 1,
            Verdict::Skip(_) => self.skipped += 1,
        }
    }

    /// The closing line: `N passed, N failed` and `, N skipped` when any were skipped.
    pub fn summary(&self) -> String {
        let mut s = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            s.push_str(&format!(", {} skipped", self.skipped));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines() {
        let table = [
            ((3, 0, 0), "3 passed, 0 failed"),
            ((0, 2, 0), "0 passed, 2 failed"),
            ((5, 1, 2), "5 passed, 1 failed, 2 skipped"),
        ];
        for ((p, f, s), want) in table {
            let t = Tally {
                passed: p,
                failed: f,
                skipped: s,
            };
            assert_eq!(t.summary(), want);
        }
    }

    #[test]
    fn tally_counts_each_verdict() {
        let mut t = Tally::default();
        for v in [
            Verdict::Pass,
            Verdict::Fail("x".into()),
            Verdict::Skip("y".into()),
            Verdict::Pass,
        ] {
            t.add(&v);
        }
        assert_eq!(
            t,
            Tally {
                passed: 2,
                failed: 1,
                skipped: 1
            }
        );
    }

    #[test]
    fn verdict_lines_stay_on_one_line() {
        assert_eq!(verdict_line("a", &Verdict::Pass), "ok a");
        assert_eq!(
            verdict_line("b", &Verdict::Fail("line1\n\n  line2 \n".into())),
            "FAIL b: line1 | line2"
        );
        assert_eq!(
            verdict_line("c", &Verdict::Skip("no time ns".into())),
            "skip c: no time ns"
        );
    }
}
