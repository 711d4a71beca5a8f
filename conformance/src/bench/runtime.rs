//! `berth-conformance bench runtime`: container lifecycle latency and peak memory of
//! OCI runtimes side by side (berth, runc, crun), alternating runtimes per
//! iteration after a warm-up. Prints medians, ratios to crun and runc, and each
//! runtime's peak RSS per subcommand (wait4's ru_maxrss); writes CSV and an SVG.
//! A benchmark reports; it never fails on numbers.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::maxrss;
use crate::oci::bundle::RootfsTemplate;

/// Arguments of `berth-conformance bench runtime`.
#[derive(clap::Args)]
pub struct Args {
    /// A runtime as NAME=PATH (or a bare PATH, named after its file); repeat for each.
    #[arg(long = "runtime", required = true)]
    runtimes: Vec<String>,
    /// Measured iterations per runtime and scenario.
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    /// Unmeasured warm-up iterations per runtime and scenario.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Iterations per runtime and scenario of the separate peak-RSS pass (each
    /// command run through the `__maxrss` trampoline, see bench/maxrss.rs).
    #[arg(long, default_value_t = 3)]
    rss_iterations: usize,
    /// Directory for runtime.csv and runtime.svg.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run in a private mount namespace without /sys/fs/cgroup/unified (crun 1.8 on
    /// a v1/v2 hybrid host); see `berth-conformance oci --help`.
    #[arg(long)]
    private_unified: bool,
}

/// The measured scenarios.
pub const SCENARIOS: [Scenario; 3] = [Scenario::Lifecycle, Scenario::Detached, Scenario::Run];

/// One measured scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// create, start, wait for /bin/true to exit, delete.
    Lifecycle,
    /// run -d sleep, state, kill, wait, delete.
    Detached,
    /// foreground `run` of /bin/true.
    Run,
}

impl Scenario {
    /// Its name in output and CSV.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Lifecycle => "true_lifecycle",
            Scenario::Detached => "sleep_detached",
            Scenario::Run => "true_run",
        }
    }
}

/// One timed runtime command (or the wait for the container's exit).
#[derive(Debug, Clone)]
pub struct Step {
    /// Subcommand name (`create`, `start`, ..., `wait`).
    pub step: &'static str,
    /// Wall time.
    pub wall: Duration,
    /// Peak RSS of the runtime process in KiB (0 for `wait`).
    pub maxrss_kb: u64,
}

/// One measured iteration.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Runtime name.
    pub runtime: String,
    /// Scenario.
    pub scenario: Scenario,
    /// Iteration number (0-based).
    pub iteration: usize,
    /// Its steps in order.
    pub steps: Vec<Step>,
}

impl Sample {
    /// Wall time of the whole scenario.
    pub fn total(&self) -> Duration {
        self.steps.iter().map(|s| s.wall).sum()
    }
}

/// Parses `NAME=PATH` or a bare path.
pub fn parse_runtime(spec: &str) -> anyhow::Result<(String, PathBuf)> {
    let (name, path) = match spec.split_once('=') {
        Some((n, p)) => (n.to_string(), PathBuf::from(p)),
        None => {
            let p = PathBuf::from(spec);
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (n, p)
        }
    };
    if name.is_empty() || path.as_os_str().is_empty() {
        bail!("--runtime {spec:?}: want NAME=PATH");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("--runtime {spec:?}: the name may hold only letters, digits, - and _");
    }
    Ok((name, path))
}

/// The median of some durations (the mean of the two middle ones for an even count).
pub fn median(mut v: Vec<Duration>) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    })
}

/// Medians per (runtime, scenario) of the totals.
pub fn medians(samples: &[Sample]) -> BTreeMap<(String, Scenario), Duration> {
    let mut by: BTreeMap<(String, Scenario), Vec<Duration>> = BTreeMap::new();
    for s in samples {
        by.entry((s.runtime.clone(), s.scenario))
            .or_default()
            .push(s.total());
    }
    by.into_iter()
        .filter_map(|(k, v)| median(v).map(|m| (k, m)))
        .collect()
}

/// Peak RSS (KiB) per (runtime, subcommand).
pub fn peak_rss(samples: &[Sample]) -> BTreeMap<(String, &'static str), u64> {
    let mut out: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for s in samples {
        for st in s.steps.iter().filter(|st| st.step != "wait") {
            let e = out.entry((s.runtime.clone(), st.step)).or_default();
            *e = (*e).max(st.maxrss_kb);
        }
    }
    out
}

/// The CSV text: one row per step plus a `total` row per sample, for the timing
/// pass (`time`: wall_us counts) and the RSS pass (`rss`: maxrss_kb counts).
pub fn csv(samples: &[Sample], rss_samples: &[Sample]) -> String {
    let mut s = String::from("pass,runtime,scenario,iteration,step,wall_us,maxrss_kb\n");
    let passes = samples
        .iter()
        .map(|x| ("time", x))
        .chain(rss_samples.iter().map(|x| ("rss", x)));
    for (pass, x) in passes {
        for st in &x.steps {
            s.push_str(&format!(
                "{pass},{},{},{},{},{},{}\n",
                x.runtime,
                x.scenario.name(),
                x.iteration,
                st.step,
                st.wall.as_micros(),
                st.maxrss_kb
            ));
        }
        s.push_str(&format!(
            "{pass},{},{},{},total,{},\n",
            x.runtime,
            x.scenario.name(),
            x.iteration,
            x.total().as_micros()
        ));
    }
    s
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.private_unified {
        crate::oci::hostns::enter_private_unified().context("--private-unified")?;
    }
    let mut runtimes = Vec::new();
    for spec in &args.runtimes {
        let (name, path) = parse_runtime(spec)?;
        let rt = crate::oci::driver::Runtime::new(&path, Duration::from_secs(60))?;
        if runtimes.iter().any(|(n, _): &(String, PathBuf)| *n == name) {
            bail!("runtime name {name} given twice");
        }
        runtimes.push((name, rt.path().to_path_buf()));
    }
    become_subreaper()?;
    let work = Workdir::new()?;
    let bench = Bench::new(&work.0)?;
    println!(
        "bench runtime: {} iterations after {} warm-up, alternating {}",
        args.iterations,
        args.warmup,
        runtimes
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut samples = Vec::new();
    for scenario in SCENARIOS {
        for i in 0..args.warmup + args.iterations {
            for (name, path) in &runtimes {
                let steps = bench
                    .once(path, scenario)
                    .with_context(|| format!("{name} {} iteration {i}", scenario.name()))?;
                if i >= args.warmup {
                    samples.push(Sample {
                        runtime: name.clone(),
                        scenario,
                        iteration: i - args.warmup,
                        steps,
                    });
                }
            }
        }
    }
    bench.measure_rss.set(true);
    let mut rss_samples = Vec::new();
    for scenario in SCENARIOS {
        for i in 0..args.rss_iterations {
            for (name, path) in &runtimes {
                let steps = bench
                    .once(path, scenario)
                    .with_context(|| format!("{name} {} RSS iteration {i}", scenario.name()))?;
                rss_samples.push(Sample {
                    runtime: name.clone(),
                    scenario,
                    iteration: i,
                    steps,
                });
            }
        }
    }
    let floor = maxrss::floor_kb(&work.0)?;
    let names: Vec<String> = runtimes.iter().map(|(n, _)| n.clone()).collect();
    print!("{}", report(&names, &samples, &rss_samples));
    println!(
        "(peak RSS from wait4 through a fresh trampoline process; it cannot see below {:.1} MiB, what it reports for a static busybox `true`)",
        floor as f64 / 1024.0
    );
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)?;
        let csv_path = dir.join("runtime.csv");
        std::fs::write(&csv_path, csv(&samples, &rss_samples))?;
        let svg_path = dir.join("runtime.svg");
        chart(&svg_path, &names, &samples, &rss_samples)?;
        println!("wrote {} and {}", csv_path.display(), svg_path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The printed report: medians and ratios of the timing pass, peak RSS of the RSS
/// pass.
pub fn report(names: &[String], samples: &[Sample], rss_samples: &[Sample]) -> String {
    let med = medians(samples);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut s = String::new();
    s.push_str(&format!("{:<16}", "median ms"));
    for n in names {
        s.push_str(&format!("{n:>10}"));
    }
    s.push('\n');
    for sc in SCENARIOS {
        s.push_str(&format!("{:<16}", sc.name()));
        for n in names {
            match med.get(&(n.clone(), sc)) {
                Some(d) => s.push_str(&format!("{:>10.1}", ms(*d))),
                None => s.push_str(&format!("{:>10}", "-")),
            }
        }
        s.push('\n');
    }
    if names.iter().any(|n| n == "berth") {
        for peer in ["crun", "runc"] {
            if !names.iter().any(|n| n == peer) {
                continue;
            }
            for sc in SCENARIOS {
                if let (Some(b), Some(p)) = (
                    med.get(&("berth".to_string(), sc)),
                    med.get(&(peer.to_string(), sc)),
                ) {
                    s.push_str(&format!(
                        "ratio berth/{peer} {:<16} {:.2}\n",
                        sc.name(),
                        ms(*b) / ms(*p)
                    ));
                }
            }
        }
    } else if names.iter().any(|n| n == "runc") && names.iter().any(|n| n == "crun") {
        for sc in SCENARIOS {
            if let (Some(r), Some(c)) = (
                med.get(&("runc".to_string(), sc)),
                med.get(&("crun".to_string(), sc)),
            ) {
                s.push_str(&format!(
                    "ratio runc/crun {:<16} {:.2}\n",
                    sc.name(),
                    ms(*r) / ms(*c)
                ));
            }
        }
    }
    let rss = peak_rss(rss_samples);
    let steps = ["create", "start", "run", "state", "kill", "delete"];
    s.push_str(&format!("{:<16}", "peak RSS MiB"));
    for st in steps {
        s.push_str(&format!("{st:>8}"));
    }
    s.push('\n');
    for n in names {
        s.push_str(&format!("{n:<16}"));
        for st in steps {
            match rss.get(&(n.clone(), st)) {
                Some(kb) => s.push_str(&format!("{:>8.1}", *kb as f64 / 1024.0)),
                None => s.push_str(&format!("{:>8}", "-")),
            }
        }
        s.push('\n');
    }
    s
}

/// A scratch directory removed on drop.
struct Workdir(PathBuf);

impl Workdir {
    fn new() -> anyhow::Result<Self> {
        let d = std::env::temp_dir().join(format!("berth-bench-{}", std::process::id()));
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        std::fs::create_dir_all(&d)?;
        Ok(Workdir(d))
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Bench {
    dir: PathBuf,
    true_bundle: PathBuf,
    sleep_bundle: PathBuf,
    seq: std::cell::Cell<u64>,
    /// Whether commands run through the peak-RSS trampoline.
    measure_rss: std::cell::Cell<bool>,
}

impl Bench {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        let template = RootfsTemplate::build(&dir.join("template"))?;
        let mk = |name: &str, args: &[&str]| template.plain_bundle(dir, name, args);
        Ok(Bench {
            dir: dir.to_path_buf(),
            true_bundle: mk("true", &["/bin/true"])?,
            sleep_bundle: mk("sleep", &["/bin/sleep", "1000"])?,
            seq: std::cell::Cell::new(0),
            measure_rss: std::cell::Cell::new(false),
        })
    }

    fn once(&self, rt: &Path, scenario: Scenario) -> anyhow::Result<Vec<Step>> {
        let n = self.seq.get();
        self.seq.set(n + 1);
        let id = format!("bench{}-{n}", std::process::id());
        let root = self.dir.join(format!("root{n}"));
        let pid_file = self.dir.join(format!("pid{n}"));
        let guard = Cleanup {
            rt,
            root: &root,
            id: &id,
        };
        let g =
            |a: &[&Path]| -> Vec<OsString> { a.iter().map(|p| p.as_os_str().to_owned()).collect() };
        let mut steps = Vec::new();
        match scenario {
            Scenario::Lifecycle => {
                let mut a = vec!["create".into(), "--bundle".into()];
                a.extend(g(&[&self.true_bundle]));
                a.extend([
                    "--pid-file".into(),
                    pid_file.as_os_str().to_owned(),
                    id.clone().into(),
                ]);
                steps.push(self.timed(rt, &root, "create", &a)?);
                let pid = read_pid(&pid_file)?;
                steps.push(self.timed(rt, &root, "start", &["start".into(), id.clone().into()])?);
                steps.push(wait_exit(pid)?);
                steps.push(self.timed(
                    rt,
                    &root,
                    "delete",
                    &["delete".into(), id.clone().into()],
                )?);
            }
            Scenario::Detached => {
                let mut a = vec!["run".into(), "-d".into(), "--bundle".into()];
                a.extend(g(&[&self.sleep_bundle]));
                a.extend([
                    "--pid-file".into(),
                    pid_file.as_os_str().to_owned(),
                    id.clone().into(),
                ]);
                steps.push(self.timed(rt, &root, "run", &a)?);
                let pid = read_pid(&pid_file)?;
                steps.push(self.timed(rt, &root, "state", &["state".into(), id.clone().into()])?);
                steps.push(self.timed(
                    rt,
                    &root,
                    "kill",
                    &["kill".into(), id.clone().into(), "KILL".into()],
                )?);
                steps.push(wait_exit(pid)?);
                steps.push(self.timed(
                    rt,
                    &root,
                    "delete",
                    &["delete".into(), id.clone().into()],
                )?);
            }
            Scenario::Run => {
                let mut a = vec!["run".into(), "--bundle".into()];
                a.extend(g(&[&self.true_bundle]));
                a.push(id.clone().into());
                steps.push(self.timed(rt, &root, "run", &a)?);
            }
        }
        drop(guard);
        reap_strays();
        Ok(steps)
    }
}

/// Kills and deletes the container whatever happened.
struct Cleanup<'a> {
    rt: &'a Path,
    root: &'a Path,
    id: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.rt)
            .arg("--root")
            .arg(self.root)
            .args(["delete", "--force", self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(self.root);
    }
}

fn read_pid(p: &Path) -> anyhow::Result<i32> {
    let t = std::fs::read_to_string(p).with_context(|| format!("pid file {}", p.display()))?;
    let pid: i32 = t
        .trim()
        .parse()
        .with_context(|| format!("pid file holds {t:?}"))?;
    let _ = std::fs::remove_file(p);
    Ok(pid)
}

impl Bench {
    /// Runs the runtime with `--root ROOT ARGS`, stdio to /dev/null. In the timing
    /// pass it returns the wall time; in the RSS pass the peak RSS, measured through
    /// the trampoline (whose wall time is not used).
    fn timed(
        &self,
        rt: &Path,
        root: &Path,
        step: &'static str,
        args: &[OsString],
    ) -> anyhow::Result<Step> {
        let rss_out = self.dir.join("maxrss");
        let mut cmd = if self.measure_rss.get() {
            maxrss::command(rt, &rss_out)?
        } else {
            Command::new(rt)
        };
        let start = Instant::now();
        let mut child = cmd
            .arg("--root")
            .arg(root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {}", rt.display()))?;
        let status = child.wait().context("waiting for the runtime")?;
        let wall = start.elapsed();
        if !status.success() {
            bail!("`{} {step}` failed ({status})", rt.display());
        }
        let maxrss_kb = if self.measure_rss.get() {
            maxrss::read(&rss_out)?
        } else {
            0
        };
        Ok(Step {
            step,
            wall,
            maxrss_kb,
        })
    }
}

fn wait4(pid: i32) -> anyhow::Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 overwrites it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 on our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            return Ok((status, ru));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            bail!("wait4({pid}): {e}");
        }
    }
}

/// Waits for the container process to exit: as subreaper we inherit it once the
/// runtime has exited, so wait4 works; otherwise poll /proc.
fn wait_exit(pid: i32) -> anyhow::Result<Step> {
    let start = Instant::now();
    match wait4(pid) {
        Ok(_) => {}
        Err(_) => {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Path::new(&format!("/proc/{pid}")).exists() {
                if Instant::now() > deadline {
                    bail!("container process {pid} did not exit");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    Ok(Step {
        step: "wait",
        wall: start.elapsed(),
        maxrss_kb: 0,
    })
}

fn become_subreaper() -> anyhow::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        bail!(
            "PR_SET_CHILD_SUBREAPER: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Reaps container processes reparented to us that nobody waited for.
fn reap_strays() {
    loop {
        let mut status = 0;
        // SAFETY: non-blocking waitpid with a valid out-pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
}

/// Draws median wall time per scenario and peak RSS per runtime.
fn chart(
    path: &Path,
    names: &[String],
    samples: &[Sample],
    rss_samples: &[Sample],
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let med = medians(samples);
    let rss = peak_rss(rss_samples);
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
    ];
    let k = u32::try_from(names.len())?;
    let root = SVGBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (top, bottom) = root.split_vertically(440);
    let panels = top.split_evenly((1, SCENARIOS.len()));
    let label = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let draw_bars = |area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
                     title: &str,
                     unit: &str,
                     values: Vec<f64>|
     -> anyhow::Result<()> {
        let ymax = values.iter().cloned().fold(0.0, f64::max).max(1e-3) * 1.2;
        let mut c = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .build_cartesian_2d((0u32..k).into_segmented(), 0f64..ymax)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&label)
            .y_desc(unit)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        c.draw_series(values.iter().enumerate().map(|(i, v)| {
            let i = u32::try_from(i).unwrap_or(0);
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                colors[i as usize % colors.len()].filled(),
            );
            r.set_margin(0, 0, 8, 8);
            r
        }))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    };
    for (sc, area) in SCENARIOS.iter().zip(panels.iter()) {
        let vals = names
            .iter()
            .map(|n| {
                med.get(&(n.clone(), *sc))
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
            })
            .collect();
        draw_bars(area, &format!("{} (median)", sc.name()), "ms", vals)?;
    }
    let vals = names
        .iter()
        .map(|n| {
            rss.iter()
                .filter(|((r, _), _)| r == n)
                .map(|(_, kb)| *kb as f64 / 1024.0)
                .fold(0.0, f64::max)
        })
        .collect();
    draw_bars(&bottom, "peak RSS of any subcommand", "MiB", vals)?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn sample(rt: &str, sc: Scenario, steps: &[(&'static str, u64, u64)]) -> Sample {
        Sample {
            runtime: rt.into(),
            scenario: sc,
            iteration: 0,
            steps: steps
                .iter()
                .map(|(s, w, r)| Step {
                    step: s,
                    wall: ms(*w),
                    maxrss_kb: *r,
                })
                .collect(),
        }
    }

    #[test]
    fn runtime_specs() {
        let table = [
            ("berth=/x/berth", Some(("berth", "/x/berth"))),
            ("runc=runc", Some(("runc", "runc"))),
            ("/usr/bin/crun", Some(("crun", "/usr/bin/crun"))),
            ("=x", None),
            ("a b=x", None),
            ("n=", None),
        ];
        for (spec, want) in table {
            let got = parse_runtime(spec).ok();
            assert_eq!(
                got.as_ref()
                    .map(|(n, p)| (n.as_str(), p.to_str().unwrap_or(""))),
                want,
                "{spec}"
            );
        }
    }

    #[test]
    fn medians_odd_even_empty() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![ms(5), ms(1), ms(3)]), Some(ms(3)));
        assert_eq!(
            median(vec![ms(4), ms(1), ms(3), ms(2)]),
            Some(Duration::from_micros(2500))
        );
    }

    #[test]
    fn aggregates_and_csv() {
        let samples = vec![
            sample("crun", Scenario::Run, &[("run", 10, 3000)]),
            sample("crun", Scenario::Run, &[("run", 30, 3500)]),
            sample("crun", Scenario::Run, &[("run", 20, 3100)]),
            sample("berth", Scenario::Run, &[("run", 9, 2000)]),
            sample(
                "berth",
                Scenario::Lifecycle,
                &[
                    ("create", 5, 2100),
                    ("start", 1, 1500),
                    ("wait", 2, 0),
                    ("delete", 1, 1000),
                ],
            ),
        ];
        let med = medians(&samples);
        assert_eq!(med[&("crun".to_string(), Scenario::Run)], ms(20));
        assert_eq!(med[&("berth".to_string(), Scenario::Lifecycle)], ms(9));
        let rss = peak_rss(&samples);
        assert_eq!(rss[&("crun".to_string(), "run")], 3500);
        assert_eq!(rss[&("berth".to_string(), "create")], 2100);
        assert!(!rss.contains_key(&("berth".to_string(), "wait")));
        let rss_only = vec![sample("berth", Scenario::Run, &[("run", 40, 1234)])];
        let text = csv(&samples, &rss_only);
        assert!(text.starts_with("pass,runtime,scenario,iteration,step,wall_us,maxrss_kb\n"));
        assert!(text.contains("time,berth,true_lifecycle,0,create,5000,2100\n"));
        assert!(text.contains("time,berth,true_lifecycle,0,total,9000,\n"));
        assert!(text.contains("rss,berth,true_run,0,run,40000,1234\n"));
        let rep = report(&["berth".into(), "crun".into()], &samples, &rss_only);
        assert!(rep.contains("1.2"), "peak RSS from the RSS pass: {rep}");
        assert!(rep.contains("ratio berth/crun true_run"), "{rep}");
        assert!(rep.contains("0.45"), "9ms/20ms: {rep}");
    }

    #[test]
    fn chart_is_written() {
        let dir = std::env::temp_dir().join(format!("berth-bench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let samples = vec![
            sample("runc", Scenario::Run, &[("run", 12, 9000)]),
            sample("crun", Scenario::Run, &[("run", 10, 3000)]),
        ];
        let p = dir.join("c.svg");
        chart(&p, &["runc".into(), "crun".into()], &samples, &samples).expect("chart");
        let svg = std::fs::read_to_string(&p).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("true_run"));
        assert!(svg.contains("runc") && svg.contains("crun"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
