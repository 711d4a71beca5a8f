//! The suite's state and each case's context: a fresh `--root`, unique container
//! ids, bundles, and cleanup (kill, delete --force, unmount, cgroup rmdir) that runs
//! even when the case fails.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::bundle::{Bundle, RootfsTemplate, default_config};
use super::driver::{Input, Out, Runtime};

/// A case's way to say "the runtime declares this unsupported".
#[derive(Debug)]
pub struct Skip(pub String);

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "skipped: {}", self.0)
    }
}

impl std::error::Error for Skip {}

/// A feature a case needs that a runtime may declare unsupported in `features`.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    /// A namespace type (`features.linux.namespaces`).
    Namespace(&'static str),
    /// A seccomp action (`features.linux.seccomp.actions`).
    SeccompAction(&'static str),
}

/// What every case shares: the runtime, the scratch directory, the rootfs template
/// and the runtime's `features` document (when it has one).
pub struct Suite {
    runtime: Runtime,
    base: PathBuf,
    template: RootfsTemplate,
    features: Option<Value>,
    keep: bool,
}

impl Suite {
    /// Prepares the scratch directory and rootfs template, and asks the runtime for
    /// its `features`.
    pub fn new(runtime: Runtime, keep: bool) -> anyhow::Result<Self> {
        let base = std::env::temp_dir().join(format!("berth-oci-{}", std::process::id()));
        if base.exists() {
            std::fs::remove_dir_all(&base)?;
        }
        std::fs::create_dir_all(&base)?;
        let template = RootfsTemplate::build(&base.join("template"))?;
        let features = runtime
            .exec_raw(&["features".into()], &Input::Null, &base)
            .ok()
            .filter(|o| o.code() == 0)
            .and_then(|o| serde_json::from_str::<Value>(&o.stdout).ok());
        Ok(Suite {
            runtime,
            base,
            template,
            features,
            keep,
        })
    }

    /// The scratch directory holding every case's bundles and state.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Why `need` is unsupported, if the runtime's `features` says so. A runtime
    /// without `features` is assumed to support everything.
    pub fn unsupported(&self, need: Need) -> Option<String> {
        let f = self.features.as_ref()?;
        let (list, name, what) = match need {
            Need::Namespace(n) => (&f["linux"]["namespaces"], n, "namespaces"),
            Need::SeccompAction(a) => (&f["linux"]["seccomp"]["actions"], a, "seccomp actions"),
        };
        let list = list.as_array()?;
        if list.iter().any(|v| v.as_str() == Some(name)) {
            None
        } else {
            Some(format!("`features` does not list {name} in linux {what}"))
        }
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

static IDS: AtomicU64 = AtomicU64::new(0);

/// One case's context. Everything it creates is torn down by [`Ctx::finish`] or,
/// failing that, by `Drop`.
pub struct Ctx<'a> {
    suite: &'a Suite,
    /// This case's directory (bundles, scratch files).
    pub dir: PathBuf,
    /// This case's `--root`.
    pub root: PathBuf,
    ids: Vec<String>,
    mounts: Vec<PathBuf>,
    bundles: usize,
    done: bool,
}

impl<'a> Ctx<'a> {
    /// A fresh context for case `name`.
    pub fn new(suite: &'a Suite, name: &str) -> anyhow::Result<Self> {
        let dir = suite.base.join(name);
        let root = dir.join("state");
        std::fs::create_dir_all(&root).with_context(|| root.display().to_string())?;
        Ok(Ctx {
            suite,
            dir,
            root,
            ids: Vec::new(),
            mounts: Vec::new(),
            bundles: 0,
            done: false,
        })
    }

    /// A new bundle with a busybox rootfs and the default config, for a fresh id.
    pub fn bundle(&mut self) -> anyhow::Result<Bundle> {
        let id = format!(
            "oci{}-{}",
            std::process::id(),
            IDS.fetch_add(1, Ordering::Relaxed)
        );
        self.bundles += 1;
        let dir = self.dir.join(format!("bundle{}", self.bundles));
        let config = default_config(&cgroups_path(&id));
        let b = Bundle { dir, id, config };
        self.suite.template.populate(&b.rootfs())?;
        Ok(b)
    }

    /// A scratch path inside this case's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `RUNTIME --root ROOT ARGS`.
    pub fn rt(&self, args: &[&str]) -> anyhow::Result<Out> {
        self.suite
            .runtime
            .exec(&self.root, args, &Input::Null, &self.dir)
    }

    /// Runs `RUNTIME --root ROOT ARGS` with stdin from a file.
    pub fn rt_input(&self, args: &[&str], input: &Input) -> anyhow::Result<Out> {
        self.suite.runtime.exec(&self.root, args, input, &self.dir)
    }

    /// Records `id` for cleanup.
    pub fn track(&mut self, id: &str) {
        if !self.ids.iter().any(|i| i == id) {
            self.ids.push(id.to_string());
        }
    }

    /// Records a host mount to unmount at cleanup.
    pub fn track_mount(&mut self, p: &Path) {
        self.mounts.push(p.to_path_buf());
    }

    /// Writes the config and runs the container in the foreground (`run`).
    pub fn run(&mut self, b: &Bundle) -> anyhow::Result<Out> {
        self.run_input(b, &Input::Null)
    }

    /// As [`Ctx::run`] with stdin from a file.
    pub fn run_input(&mut self, b: &Bundle, input: &Input) -> anyhow::Result<Out> {
        b.write_config()?;
        self.track(&b.id);
        let dir = b.dir.to_string_lossy().into_owned();
        self.rt_input(&["run", "--bundle", &dir, &b.id], input)
    }

    /// Runs the container and fails unless `run` exits 0; returns its stdout.
    pub fn run_ok(&mut self, b: &Bundle) -> anyhow::Result<String> {
        let out = self.run(b)?;
        out.check()?;
        Ok(out.stdout)
    }

    /// Writes the config and `create`s the container (extra flags first).
    pub fn create(&mut self, b: &Bundle, extra: &[&str]) -> anyhow::Result<Out> {
        b.write_config()?;
        self.track(&b.id);
        let dir = b.dir.to_string_lossy().into_owned();
        let mut args = vec!["create", "--bundle", &dir];
        args.extend_from_slice(extra);
        args.push(&b.id);
        self.rt(&args)
    }

    /// Writes the config and starts the container detached (`run -d`), checked.
    pub fn run_detached(&mut self, b: &Bundle) -> anyhow::Result<Out> {
        b.write_config()?;
        self.track(&b.id);
        let dir = b.dir.to_string_lossy().into_owned();
        let out = self.rt(&["run", "-d", "--bundle", &dir, &b.id])?;
        out.check()?;
        Ok(out)
    }

    /// `state ID`, parsed.
    pub fn state(&self, id: &str) -> anyhow::Result<Value> {
        let out = self.rt(&["state", id])?;
        out.check()?;
        serde_json::from_str(&out.stdout)
            .with_context(|| format!("`state {id}` printed no JSON: {:?}", out.stdout))
    }

    /// The container's init pid from `state`.
    pub fn pid(&self, id: &str) -> anyhow::Result<i32> {
        let st = self.state(id)?;
        match st["pid"].as_i64() {
            Some(p) if p > 0 => Ok(i32::try_from(p)?),
            _ => bail!("`state {id}` has no positive pid: {st}"),
        }
    }

    /// Polls `state` until its status is `want` (at most `limit`).
    pub fn wait_status(&self, id: &str, want: &str, limit: Duration) -> anyhow::Result<()> {
        let mut last = String::new();
        let ok = poll(limit, || match self.state(id) {
            Ok(st) => {
                last = st["status"].to_string();
                st["status"] == want
            }
            Err(e) => {
                last = format!("{e:#}");
                false
            }
        });
        if !ok {
            bail!("status never became {want:?} (last: {last})");
        }
        Ok(())
    }

    /// Tears everything down; errors when something could not be removed.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.done = true;
        self.cleanup()
    }

    fn cleanup(&mut self) -> anyhow::Result<()> {
        for id in std::mem::take(&mut self.ids) {
            let _ = self.rt(&["kill", &id, "KILL"]);
            let _ = self.rt(&["delete", "--force", &id]);
            remove_cgroups(&cgroups_path(&id));
        }
        let mut problems = Vec::new();
        for m in std::mem::take(&mut self.mounts).into_iter().rev() {
            if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH)
                && e != nix::Error::EINVAL
                && e != nix::Error::ENOENT
            {
                problems.push(format!("unmounting {}: {e}", m.display()));
            }
        }
        if !self.suite.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("; "));
        }
        Ok(())
    }
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.cleanup();
        }
    }
}

/// The cgroupsPath the suite gives container `id`.
pub fn cgroups_path(id: &str) -> String {
    format!("/berth-oci-{id}")
}

/// Every cgroup hierarchy mounted under /sys/fs/cgroup (v1 controllers and v2).
pub fn hierarchies() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        out.push(base.to_path_buf());
        return out;
    }
    if let Ok(rd) = std::fs::read_dir(base) {
        for e in rd.flatten() {
            let p = e.path();
            if p.join("cgroup.procs").exists() && !p.is_symlink() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The existing cgroup directories for `cgpath` in every hierarchy.
pub fn cgroup_dirs(cgpath: &str) -> Vec<PathBuf> {
    let rel = cgpath.trim_start_matches('/');
    hierarchies()
        .into_iter()
        .map(|h| h.join(rel))
        .filter(|p| p.is_dir())
        .collect()
}

/// Removes what a (possibly broken) runtime left of a container's cgroups: kills
/// the processes still in them, then removes the directories.
fn remove_cgroups(cgpath: &str) {
    let dirs = cgroup_dirs(cgpath);
    if dirs.is_empty() {
        return;
    }
    for _ in 0..50 {
        let mut alive = false;
        for d in &dirs {
            for pid in procs_under(d) {
                alive = true;
                // SAFETY: kill(2) with a pid read from the container's own cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for d in dirs {
        rmdir_tree(&d);
    }
}

fn procs_under(d: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = std::fs::read_to_string(d.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|p| *p > 1)
        .collect();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(procs_under(&e.path()));
            }
        }
    }
    out
}

fn rmdir_tree(d: &Path) {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(d);
}

/// Calls `f` until it returns true or `limit` passes; true when it did.
pub fn poll(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
