//! Root, real kernel: `bench runtime` against runc reports medians, peak RSS, CSV
//! and SVG, and reports (not hides) a runtime that fails.

mod common;

use std::process::Command;

use common::TempDir;

#[test]
fn bench_runc_writes_report_csv_and_svg() {
    let t = TempDir::new("bench");
    let out_dir = t.0.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_berth-conformance"))
        .args([
            "bench",
            "runtime",
            "--runtime",
            "runc=runc",
            "--runtime",
            "other=runc",
        ])
        .args(["--iterations", "2", "--warmup", "1", "--out"])
        .arg(&out_dir)
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "median ms",
        "true_lifecycle",
        "sleep_detached",
        "true_run",
        "peak RSS MiB",
    ] {
        assert!(stdout.contains(want), "{want} missing:\n{stdout}");
    }
    let rss_line = stdout
        .lines()
        .find(|l| l.starts_with("runc ") && !l.contains("median"))
        .expect("runc RSS line");
    let create_mib: f64 = rss_line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("create RSS");
    assert!(create_mib > 0.5, "runc create peak RSS {create_mib} MiB");
    let csv = std::fs::read_to_string(out_dir.join("runtime.csv")).expect("csv");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "pass,runtime,scenario,iteration,step,wall_us,maxrss_kb"
    );
    // 2 runtimes x (2 timed + 3 RSS iterations): lifecycle 4+1 rows, detached 5+1,
    // run 1+1.
    assert_eq!(rows.len(), 1 + 2 * (2 + 3) * (5 + 6 + 2), "{csv}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with("time,other,true_lifecycle,1,delete,"))
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("rss,other,true_lifecycle,2,delete,"))
    );
    let svg = std::fs::read_to_string(out_dir.join("runtime.svg")).expect("svg");
    assert!(svg.starts_with("<svg") && svg.contains("sleep_detached"));
}

#[test]
fn bench_reports_a_failing_runtime() {
    let t = TempDir::new("bench-fail");
    let rt = t.script("failing", "#!/bin/sh\necho nope >&2\nexit 1\n");
    let out = Command::new(env!("CARGO_BIN_EXE_berth-conformance"))
        .args(["bench", "runtime", "--iterations", "1", "--runtime"])
        .arg(format!("bad={}", rt.display()))
        .output()
        .expect("run bench");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad true_lifecycle"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The RSS trampoline reports the measured command's own peak: a shell that fills
/// 64 MiB shows at least that, a static busybox `true` far less, and the exit
/// status passes through.
#[test]
fn maxrss_trampoline_measures_the_child_not_itself() {
    let t = TempDir::new("maxrss");
    let out = t.0.join("kb");
    let run = |prog: &str, args: &[&str]| {
        let status = Command::new(env!("CARGO_BIN_EXE_berth-conformance"))
            .arg("__maxrss")
            .arg(&out)
            .arg(prog)
            .args(args)
            .status()
            .expect("trampoline");
        let kb: u64 = std::fs::read_to_string(&out)
            .expect("trampoline output")
            .trim()
            .parse()
            .expect("a number");
        (status.code(), kb)
    };
    let (code, big) = run(
        "/bin/busybox",
        &[
            "sh",
            "-c",
            "x=$(head -c 67108864 /dev/zero | tr '\\0' a); exit 7",
        ],
    );
    assert_eq!(code, Some(7));
    assert!(big >= 64 * 1024, "64 MiB shell reported {big} KiB");
    let (code, small) = run("/bin/busybox", &["true"]);
    assert_eq!(code, Some(0));
    assert!(small < 4 * 1024, "busybox true reported {small} KiB");
}
