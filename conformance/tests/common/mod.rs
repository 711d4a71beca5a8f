//! Runs `berth-conformance oci` and parses its output.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One case's verdict as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Ok,
    Fail(String),
    Skip(String),
}

/// A finished suite run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub cases: BTreeMap<String, Line>,
    pub summary: String,
    pub stdout: String,
    pub stderr: String,
    pub pid: u32,
}

impl Run {
    pub fn count(&self, f: impl Fn(&Line) -> bool) -> usize {
        self.cases.values().filter(|l| f(l)).count()
    }

    pub fn failed(&self) -> Vec<&str> {
        self.cases
            .iter()
            .filter(|(_, l)| matches!(l, Line::Fail(_)))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    pub fn verdict(&self, name: &str) -> &Line {
        self.cases
            .get(name)
            .unwrap_or_else(|| panic!("no line for case {name}:\n{}", self.stdout))
    }
}

/// Runs the suite binary with these arguments.
pub fn suite(args: &[&str]) -> Run {
    let child = Command::new(env!("CARGO_BIN_EXE_berth-conformance"))
        .arg("oci")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth-conformance");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait berth-conformance");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut cases = BTreeMap::new();
    let mut summary = String::new();
    for l in stdout.lines() {
        if let Some(n) = l.strip_prefix("ok ") {
            cases.insert(n.to_string(), Line::Ok);
        } else if let Some(r) = l.strip_prefix("FAIL ") {
            let (n, why) = r.split_once(": ").expect("FAIL NAME: reason");
            cases.insert(n.to_string(), Line::Fail(why.to_string()));
        } else if let Some(r) = l.strip_prefix("skip ") {
            let (n, why) = r.split_once(": ").expect("skip NAME: reason");
            cases.insert(n.to_string(), Line::Skip(why.to_string()));
        } else if l.contains(" passed, ") {
            summary = l.to_string();
        } else if !l.starts_with("# ") {
            panic!("unexpected output line {l:?}");
        }
    }
    Run {
        code: out.status.code().unwrap_or(-1),
        cases,
        summary,
        stdout,
        stderr,
        pid,
    }
}

/// The closing line the counts must produce.
pub fn expected_summary(run: &Run) -> String {
    let p = run.count(|l| *l == Line::Ok);
    let f = run.count(|l| matches!(l, Line::Fail(_)));
    let s = run.count(|l| matches!(l, Line::Skip(_)));
    let mut want = format!("{p} passed, {f} failed");
    if s > 0 {
        want.push_str(&format!(", {s} skipped"));
    }
    want
}

/// Every case name, from `--list`.
pub fn all_cases() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-conformance"))
        .args(["oci", "--runtime", "/bin/true", "--list"])
        .output()
        .expect("list");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("berth-conf-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }

    /// Writes an executable script.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.join(name);
        std::fs::write(&p, body).expect("write script");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Cgroup directories a suite run with pid `pid` left behind.
pub fn leftover_cgroups(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("berth-oci-oci{pid}-");
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return out;
    };
    for h in rd.flatten() {
        if let Ok(inner) = std::fs::read_dir(h.path()) {
            for e in inner.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    out.push(e.path());
                }
            }
        }
    }
    out
}

/// The suite's scratch directory for run `pid`.
pub fn scratch(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("berth-oci-{pid}"))
}

/// Whether `p` exists.
pub fn exists(p: &Path) -> bool {
    p.exists()
}
