//! `berth-conformance bench pull`: pull and unpack one image from a registry with berth
//! (`berth-pull`) and with Debian's containerd (`ctr images pull`, overlayfs snapshotter,
//! its own config and root), alternating, with fresh stores and dropped page caches before
//! every run; plus a plain `tar -x` of the same layers on the same disk as the unpack
//! baseline. Prints medians, the berth/containerd time ratio and unpack rates, and writes
//! a CSV of every run. Needs root (drop_caches, overlay mounts).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Arguments of `berth-conformance bench pull` (boxed: they are many).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    opts: Box<Opts>,
}

/// The options of `berth-conformance bench pull`.
#[derive(clap::Args)]
struct Opts {
    /// Registry holding the image (host:port, plain HTTP).
    #[arg(long)]
    registry: String,
    /// Repository:tag on that registry.
    #[arg(long, default_value = "berth/large:latest")]
    image: String,
    /// OCI layout the image was pushed from (for the `tar -x` baseline).
    #[arg(long)]
    layout: PathBuf,
    /// Ref name of the image in that layout.
    #[arg(long, default_value = "large")]
    layout_ref: String,
    /// Runs per tool.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// berth's pull CLI (default: `berth-pull` next to this program, else on PATH).
    #[arg(long)]
    berth_pull: Option<PathBuf>,
    /// containerd binary.
    #[arg(long, default_value = "/usr/bin/containerd")]
    containerd: PathBuf,
    /// ctr binary.
    #[arg(long, default_value = "/usr/bin/ctr")]
    ctr: PathBuf,
    /// Scratch directory (stores of both tools and the tar target; same disk for all).
    #[arg(long, default_value = "/var/tmp/berth-bench-pull")]
    work: PathBuf,
    /// Where to write the CSV of every run.
    #[arg(long, default_value = "bench-pull.csv")]
    csv: PathBuf,
    /// Where to write an SVG bar chart of the medians.
    #[arg(long, default_value = "bench-pull.svg")]
    svg: PathBuf,
}

/// One measured run.
#[derive(Debug, Clone)]
struct Run {
    run: usize,
    tool: &'static str,
    seconds: f64,
    unpack_seconds: Option<f64>,
}

fn drop_caches() -> anyhow::Result<()> {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n")
        .context("drop page caches (bench pull must run as root)")
}

fn fresh_dir(p: &Path) -> anyhow::Result<()> {
    if p.exists() {
        // containerd may leave overlay mounts under its root if it died; umount first.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(p)
            .stderr(Stdio::null())
            .status();
        std::fs::remove_dir_all(p).with_context(|| format!("remove {}", p.display()))?;
    }
    std::fs::create_dir_all(p).with_context(|| format!("create {}", p.display()))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn default_berth_pull() -> PathBuf {
    if let Ok(me) = std::env::current_exe()
        && let Some(dir) = me.parent()
    {
        let p = dir.join("berth-pull");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("berth-pull")
}

fn run_berth(bin: &Path, root: &Path, reference: &str) -> anyhow::Result<(f64, Option<f64>)> {
    let start = Instant::now();
    let out = Command::new(bin)
        .arg("--root")
        .arg(root)
        .arg(reference)
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "berth-pull failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("berth-pull output is not JSON")?;
    Ok((secs, v["unpack_seconds"].as_f64()))
}

/// A containerd daemon with its own root, state and socket; killed on drop.
struct Containerd {
    child: Child,
    socket: PathBuf,
}

impl Containerd {
    fn start(bin: &Path, ctr: &Path, dir: &Path) -> anyhow::Result<Containerd> {
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [debug]\n  address = \"{sock}.debug\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                sock = socket.display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("containerd.log"))?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let d = Containerd { child, socket };
        for _ in 0..200 {
            let ok = Command::new(ctr)
                .arg("--address")
                .arg(&d.socket)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(d);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "containerd did not come up; see {}/containerd.log",
            dir.display()
        )
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn run_containerd(a: &Opts, dir: &Path, reference: &str) -> anyhow::Result<f64> {
    let d = Containerd::start(&a.containerd, &a.ctr, dir)?;
    drop_caches()?;
    let start = Instant::now();
    let out = Command::new(&a.ctr)
        .arg("--address")
        .arg(&d.socket)
        .args([
            "-n",
            "bench",
            "images",
            "pull",
            "--plain-http",
            "--snapshotter",
            "overlayfs",
        ])
        .arg(reference)
        .output()
        .context("run ctr images pull")?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "ctr pull failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    drop(d);
    Ok(secs)
}

/// Layer blob paths and media types of `ref_name` in an OCI layout.
fn layout_layers(layout: &Path, ref_name: &str) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("index.json")).context("read layout index.json")?,
    )?;
    let entry = index["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter().find(|e| {
                e["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(ref_name)
            })
        })
        .with_context(|| format!("no {ref_name} in {}", layout.display()))?;
    let blob = |d: &str| -> anyhow::Result<PathBuf> {
        let hex = d
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
            .with_context(|| format!("bad digest {d}"))?;
        Ok(layout.join("blobs/sha256").join(hex))
    };
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(blob(
        entry["digest"].as_str().context("entry without digest")?,
    )?)?)?;
    m["layers"]
        .as_array()
        .context("manifest without layers")?
        .iter()
        .map(|l| {
            Ok((
                blob(l["digest"].as_str().context("layer without digest")?)?,
                l["mediaType"].as_str().unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

fn uncompressed_size(layers: &[(PathBuf, String)]) -> anyhow::Result<u64> {
    let mut total = 0;
    for (p, mt) in layers {
        let f = std::fs::File::open(p)?;
        let mut r: Box<dyn std::io::Read> = if mt.ends_with("zstd") {
            Box::new(zstd::stream::read::Decoder::new(f)?)
        } else if mt.ends_with("gzip") {
            Box::new(flate2::read::GzDecoder::new(f))
        } else {
            Box::new(f)
        };
        total += std::io::copy(&mut r, &mut std::io::sink())?;
    }
    Ok(total)
}

fn run_tar(layers: &[(PathBuf, String)], dir: &Path) -> anyhow::Result<f64> {
    drop_caches()?;
    let start = Instant::now();
    for (p, mt) in layers {
        let flag = if mt.ends_with("zstd") {
            "--zstd"
        } else if mt.ends_with("gzip") {
            "-z"
        } else {
            "--no-auto-compress"
        };
        let st = Command::new("tar")
            .args(["-x", flag, "-f"])
            .arg(p)
            .arg("-C")
            .arg(dir)
            .status()
            .context("run tar")?;
        anyhow::ensure!(st.success(), "tar -x {} failed", p.display());
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Runs `berth-conformance bench pull`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let a = *args.opts;
    anyhow::ensure!(a.runs >= 1, "--runs must be at least 1");
    let berth = a.berth_pull.clone().unwrap_or_else(default_berth_pull);
    let reference = format!("{}/{}", a.registry, a.image);
    let layers = layout_layers(&a.layout, &a.layout_ref)?;
    let bytes = uncompressed_size(&layers)?;
    let mut runs = Vec::new();
    for i in 0..a.runs {
        for tool in if i % 2 == 0 {
            ["berth", "containerd"]
        } else {
            ["containerd", "berth"]
        } {
            let dir = a.work.join(tool);
            fresh_dir(&dir)?;
            let r = if tool == "berth" {
                drop_caches()?;
                let (s, u) = run_berth(&berth, &dir, &reference)?;
                Run {
                    run: i,
                    tool: "berth",
                    seconds: s,
                    unpack_seconds: u,
                }
            } else {
                Run {
                    run: i,
                    tool: "containerd",
                    seconds: run_containerd(&a, &dir, &reference)?,
                    unpack_seconds: None,
                }
            };
            eprintln!("run {i} {tool}: {:.3}s", r.seconds);
            runs.push(r);
            fresh_dir(&dir)?;
        }
        let tdir = a.work.join("tar");
        fresh_dir(&tdir)?;
        let s = run_tar(&layers, &tdir)?;
        eprintln!("run {i} tar -x: {s:.3}s");
        runs.push(Run {
            run: i,
            tool: "tar-x",
            seconds: s,
            unpack_seconds: Some(s),
        });
        fresh_dir(&tdir)?;
    }
    let _ = std::fs::remove_dir_all(&a.work);

    let mut csv = String::from("run,tool,seconds,unpack_seconds\n");
    for r in &runs {
        csv.push_str(&format!(
            "{},{},{:.4},{}\n",
            r.run,
            r.tool,
            r.seconds,
            r.unpack_seconds
                .map(|u| format!("{u:.4}"))
                .unwrap_or_default()
        ));
    }
    std::fs::write(&a.csv, &csv).with_context(|| format!("write {}", a.csv.display()))?;

    let med = |tool: &str, unpack: bool| {
        let mut v: Vec<f64> = runs
            .iter()
            .filter(|r| r.tool == tool)
            .filter_map(|r| {
                if unpack {
                    r.unpack_seconds
                } else {
                    Some(r.seconds)
                }
            })
            .collect();
        median(&mut v)
    };
    let (b, c, t, bu) = (
        med("berth", false),
        med("containerd", false),
        med("tar-x", false),
        med("berth", true),
    );
    let mb = bytes as f64 / 1e6;
    println!(
        "image {reference}: {} layers, {mb:.1} MB uncompressed, {} runs each",
        layers.len(),
        a.runs
    );
    println!(
        "pull+unpack median: berth {b:.3}s  containerd {c:.3}s  ratio berth/containerd {:.2}",
        b / c
    );
    println!(
        "unpack rate: berth {:.1} MB/s  tar -x {:.1} MB/s  ratio {:.2}",
        mb / bu,
        mb / t,
        (mb / bu) / (mb / t)
    );
    let chart = svg_chart(
        &format!(
            "pull + unpack of {} ({mb:.0} MB), median of {} runs",
            a.image, a.runs
        ),
        &[
            ("berth pull", b),
            ("containerd pull", c),
            ("berth unpack", bu),
            ("tar -x", t),
        ],
    );
    std::fs::write(&a.svg, chart).with_context(|| format!("write {}", a.svg.display()))?;
    println!("csv: {}  svg: {}", a.csv.display(), a.svg.display());
    Ok(ExitCode::SUCCESS)
}

/// A horizontal bar chart of (label, seconds).
fn svg_chart(title: &str, bars: &[(&str, f64)]) -> String {
    let max = bars
        .iter()
        .map(|b| b.1)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let (w, row) = (640.0, 28.0);
    let h = 40.0 + row * bars.len() as f64 + 10.0;
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <text x=\"10\" y=\"22\" font-weight=\"bold\">{}</text>\n",
        esc(title)
    );
    for (i, (label, v)) in bars.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        let len = if v.is_finite() { v / max * 380.0 } else { 0.0 };
        out.push_str(&format!(
            "<text x=\"10\" y=\"{ty}\">{}</text><rect x=\"150\" y=\"{y}\" width=\"{len:.1}\" height=\"18\" fill=\"{color}\"/>\
             <text x=\"{tx:.1}\" y=\"{ty}\">{v:.3} s</text>\n",
            esc(label),
            ty = y + 14.0,
            tx = 156.0 + len,
            color = if label.starts_with("berth") { "#2b6cb0" } else { "#a0aec0" },
        ));
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_every_bar_and_escapes_text() {
        let svg = svg_chart("a <b>", &[("berth", 1.0), ("peer", 2.0), ("nan", f64::NAN)]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("a &lt;b&gt;"));
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("2.000 s"));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
