//! cgroups for one container, on v1, v2 and the v1/v2 hybrid layout.
//!
//! berth writes cgroupfs directly, as runc does. The `cgroups-rs` crate was
//! not used: it picks v1 or v2 for the whole host by the filesystem type of
//! /sys/fs/cgroup, so on a hybrid host it takes only the v1 mounts and cannot
//! find a controller bound to the v2 hierarchy (hugetlb on this project's hosts).
//!
//! Layout detection and path checks are in [`layout`], the translation of
//! `linux.resources` into file writes in [`plan`], device rules in
//! [`devices`], statistics in [`stats`], and `berth update`'s flags in [`update`].
//! Reference: runtime-spec `config-linux.md` "Control groups".

#![warn(missing_docs)]

pub mod devices;
pub mod layout;
pub mod plan;
pub mod stats;
pub mod sub;
pub mod update;

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use layout::{CgroupPath, Layout, Mode};
pub use plan::warnings;
pub use stats::Stats;

/// Errors of the cgroup manager.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A feature berth does not have.
    #[error("cgroups: {0} is not implemented yet")]
    Unimplemented(&'static str),
    /// The host layout could not be read.
    #[error("cgroups: reading the host's cgroup layout: {0}")]
    Layout(#[from] layout::LayoutError),
    /// `linux.cgroupsPath` (or the container id) was refused.
    #[error(transparent)]
    Path(#[from] layout::PathError),
    /// A systemd-style path without `--systemd-cgroup`.
    #[error(
        "linux.cgroupsPath {0:?} is a systemd \"slice:prefix:name\" path; it needs --systemd-cgroup"
    )]
    SystemdNotRequested(String),
    /// `--systemd-cgroup` on a host where systemd is not running.
    #[error(
        "linux.cgroupsPath {0:?}: --systemd-cgroup was given but systemd is not running on this host"
    )]
    SystemdNotRunning(String),
    /// A resource value the host cannot take.
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// An `exec --cgroup` value refused or not placeable.
    #[error(transparent)]
    Sub(#[from] sub::SubCgroupError),
    /// Writing a resource file failed; names the spec field.
    #[error("linux.resources.{field}: writing {value:?} to {path}: {source}")]
    Write {
        /// The spec field.
        field: &'static str,
        /// The cgroup file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file for a field does not exist: the kernel or the hierarchy lacks it.
    #[error("linux.resources.{field} is not supported on this host ({path} does not exist)")]
    NotSupported {
        /// The spec field.
        field: &'static str,
        /// The missing file.
        path: PathBuf,
    },
    /// Another cgroupfs operation failed.
    #[error("cgroups: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The freezer did not reach the wanted state.
    #[error("cgroups: {path} did not become {state}")]
    FreezeTimeout {
        /// The cgroup.
        path: PathBuf,
        /// "frozen" or "thawed".
        state: &'static str,
    },
    /// Loading or attaching the v2 device filter failed.
    #[error(transparent)]
    Bpf(#[from] devices::BpfError),
}

type Result<T> = std::result::Result<T, CgroupError>;

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { op, path, source }
}

/// One container's cgroup, resolved in every hierarchy of this host.
///
/// It records the directories themselves, so a later berth command (another
/// process, possibly in another cgroup) finds the same cgroup from state.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manager {
    /// The cgroup path as resolved, for messages (`/berth/<id>`, `a/b`).
    path: String,
    /// The host layout when the manager was made.
    mode: Mode,
    /// v1 controller → the container's cgroup directory in its hierarchy.
    v1: BTreeMap<String, PathBuf>,
    /// The container's v2 cgroup directory, when cgroup2 is mounted.
    v2: Option<PathBuf>,
    /// The v2 mount point (the top of the `cgroup.subtree_control` chain).
    v2_mount: Option<PathBuf>,
    /// Controllers the v2 hierarchy offers.
    v2_controllers: BTreeSet<String>,
}

impl Manager {
    /// Resolves `cgroups_path` (spec `linux.cgroupsPath`; default `/berth/<id>`)
    /// with the cgroupfs driver. A systemd `slice:prefix:name` path is refused
    /// here: it needs [`Manager::new_systemd`].
    pub fn new(cgroups_path: Option<&str>, id: &str) -> Result<Manager> {
        let path = match cgroups_path {
            None | Some("") => CgroupPath::default_for(id)?,
            Some(raw) if raw.contains(':') => {
                return Err(CgroupError::SystemdNotRequested(raw.to_string()));
            }
            Some(raw) => CgroupPath::parse(raw)?,
        };
        Manager::for_host(&path)
    }

    /// Resolves `cgroups_path` for `--systemd-cgroup`: the `slice:prefix:name`
    /// form (default `system.slice:berth:<id>`), expanded to the cgroup systemd
    /// would give that scope. Refused when systemd is not running.
    ///
    /// The cgroup is made directly in cgroupfs: no transient unit is registered
    /// with systemd over D-Bus.
    pub fn new_systemd(cgroups_path: Option<&str>, id: &str) -> Result<Manager> {
        let raw = cgroups_path
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("system.slice:berth:{id}"));
        if !systemd_running(Path::new("/run/systemd/system")) {
            return Err(CgroupError::SystemdNotRunning(raw));
        }
        let path = layout::systemd_path(&raw, id)?;
        Manager::for_host(&path)
    }

    fn for_host(path: &CgroupPath) -> Result<Manager> {
        let layout = Layout::current().map_err(io("read", Path::new("/proc/self/mountinfo")))?;
        let v2_controllers = match &layout.v2 {
            Some((mnt, _)) => {
                let f = mnt.join("cgroup.controllers");
                std::fs::read_to_string(&f)
                    .map_err(io("read", &f))?
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            }
            None => BTreeSet::new(),
        };
        Ok(Manager::from_layout(&layout, path, v2_controllers))
    }

    /// The manager for `path` on a host with `layout` (pure; used by tests).
    pub fn from_layout(
        layout: &Layout,
        path: &CgroupPath,
        v2_controllers: BTreeSet<String>,
    ) -> Manager {
        let v1 = layout
            .v1
            .keys()
            .filter(|c| !c.starts_with("name="))
            .filter_map(|c| Some((c.clone(), layout.v1_dir(c, path)?)))
            .collect();
        Manager {
            path: path.display(),
            mode: layout.mode(),
            v1,
            v2: layout.v2_dir(path),
            v2_mount: layout.v2.as_ref().map(|(m, _)| m.clone()),
            v2_controllers,
        }
    }

    /// The cgroup path as resolved (`/berth/<id>` by default).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The host layout the manager was made for.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The container's directory in the v1 hierarchy of `controller`.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1.get(controller).map(PathBuf::as_path)
    }

    /// The container's directory in the v2 hierarchy.
    pub fn v2_dir(&self) -> Option<&Path> {
        self.v2.as_deref()
    }

    /// Every distinct directory of the container's cgroup (co-mounted v1
    /// controllers share one), v1 first.
    pub fn dirs(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for d in self
            .v1
            .values()
            .map(PathBuf::as_path)
            .chain(self.v2.as_deref())
        {
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// The directory used to list processes and read the freezer state.
    fn primary(&self) -> Option<&Path> {
        ["pids", "freezer", "memory", "cpu", "devices"]
            .iter()
            .find_map(|c| self.v1_dir(c))
            .or(self.v2.as_deref())
            .or_else(|| self.v1.values().next().map(PathBuf::as_path))
    }

    /// What [`plan::plan`] may use on this host.
    fn available(&self) -> plan::Available {
        plan::Available {
            v1: self.v1.keys().cloned().collect(),
            v2: self.v2.as_ref().map(|_| self.v2_controllers.clone()),
        }
    }

    /// Creates the cgroup in every hierarchy (idempotent). On failure, a cgroup
    /// this call made is removed again.
    pub fn create(&self) -> Result<()> {
        let existed = self.primary().is_some_and(Path::exists);
        let res = self.create_inner();
        if res.is_err() && !existed {
            let _ = self.destroy();
        }
        res
    }

    fn create_inner(&self) -> Result<()> {
        for dir in self.dirs() {
            std::fs::create_dir_all(dir).map_err(io("mkdir", dir))?;
            if !dir.is_dir() {
                return Err(CgroupError::Io {
                    op: "mkdir",
                    path: dir.to_path_buf(),
                    source: std::io::Error::from(ErrorKind::NotADirectory),
                });
            }
        }
        if let Some(dir) = self.v1_dir("cpuset") {
            // A new v1 cpuset starts with no CPUs and no memory nodes: fill each
            // level from its parent, or no process could join it.
            for level in levels(dir) {
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let f = level.join(file);
                    let cur = std::fs::read_to_string(&f).map_err(io("read", &f))?;
                    if cur.trim().is_empty()
                        && let Some(parent) = level.parent()
                    {
                        let pf = parent.join(file);
                        let v = std::fs::read_to_string(&pf).map_err(io("read", &pf))?;
                        std::fs::write(&f, v.trim()).map_err(io("write", &f))?;
                    }
                }
            }
        }
        if let (Some(dir), Some(mnt)) = (&self.v2, &self.v2_mount) {
            // Delegate the controllers down the path: each ancestor enables what
            // it has in its own subtree_control.
            let mut cur = mnt.clone();
            let rel = dir.strip_prefix(mnt).unwrap_or(Path::new(""));
            for comp in rel.components() {
                let f = cur.join("cgroup.controllers");
                let have = std::fs::read_to_string(&f).map_err(io("read", &f))?;
                let sc = cur.join("cgroup.subtree_control");
                for c in have
                    .split_whitespace()
                    .filter(|c| self.v2_controllers.contains(*c))
                {
                    // A controller an ancestor cannot delegate (internal
                    // processes, threaded) is left off; a field needing it
                    // then fails naming the field.
                    let _ = std::fs::write(&sc, format!("+{c}"));
                }
                cur.push(comp);
            }
        }
        Ok(())
    }

    /// Writes the spec's resource limits. Fields that are accepted but have no
    /// effect are listed by [`warnings`].
    pub fn apply(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let ops = plan::plan(resources, &self.available())?;
        for op in ops {
            match op {
                plan::Op::Write {
                    target,
                    file,
                    value,
                    field,
                } => {
                    let dir = self.target_dir(&target, field)?;
                    write_field(&dir.join(&file), &value, field)?;
                }
                plan::Op::WriteIfPresent {
                    target,
                    file,
                    value,
                    field,
                } => {
                    let path = self.target_dir(&target, field)?.join(&file);
                    if path.exists() {
                        write_field(&path, &value, field)?;
                    }
                }
                plan::Op::WriteFirstPresent {
                    target,
                    choices,
                    field,
                } => {
                    let dir = self.target_dir(&target, field)?;
                    let Some((file, value)) = choices.iter().find(|(f, _)| dir.join(f).exists())
                    else {
                        return Err(CgroupError::NotSupported {
                            field,
                            path: dir.join(choices.first().map_or("", |c| c.0.as_str())),
                        });
                    };
                    write_field(&dir.join(file), value, field)?;
                }
                plan::Op::V1MemoryAndSwap { limit, swap } => {
                    self.v1_memory_and_swap(limit, swap)?
                }
                plan::Op::V2DeviceFilter(rules) => {
                    let dir = self.target_dir(&plan::Target::V2, "devices")?;
                    devices::attach_filter(dir, &rules)?;
                }
            }
        }
        Ok(())
    }

    /// Writes new limits to a running container (`berth update`): as
    /// [`Manager::apply`], but device rules are left as they are, as runc's
    /// update does (rewriting a v1 list would briefly deny every device).
    pub fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let mut r = resources.clone();
        r.set_devices(None);
        self.apply(&r)
    }

    fn target_dir(&self, target: &plan::Target, field: &'static str) -> Result<&Path> {
        let dir = match target {
            plan::Target::V1(c) => self.v1_dir(c),
            plan::Target::V2 => self.v2.as_deref(),
        };
        dir.ok_or(CgroupError::Plan(plan::PlanError::NoController {
            field,
            controller: match target {
                plan::Target::V1(c) => c,
                plan::Target::V2 => "v2",
            },
        }))
    }

    fn v1_memory_and_swap(&self, limit: Option<i64>, swap: Option<i64>) -> Result<()> {
        let dir = self.target_dir(&plan::Target::V1("memory"), "memory.limit")?;
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        let swap = match swap {
            Some(-1) if !memsw.exists() => None,
            Some(_) if !memsw.exists() => {
                return Err(CgroupError::NotSupported {
                    field: "memory.swap",
                    path: memsw,
                });
            }
            s => s,
        };
        let limit_file = dir.join("memory.limit_in_bytes");
        let current_memsw: i64 = match swap {
            Some(_) => std::fs::read_to_string(&memsw)
                .map_err(io("read", &memsw))?
                .trim()
                .parse()
                .unwrap_or(i64::MAX),
            None => i64::MAX,
        };
        // The kernel keeps memory.limit <= memsw.limit: raise memsw first when
        // the new memory limit is above the current memsw.
        let swap_first = match (limit, swap) {
            (Some(l), Some(_)) => l == -1 || l > current_memsw,
            _ => false,
        };
        if swap_first && let Some(s) = swap {
            write_field(&memsw, &s.to_string(), "memory.swap")?;
        }
        if let Some(l) = limit {
            write_field(&limit_file, &l.to_string(), "memory.limit")?;
        }
        if !swap_first && let Some(s) = swap {
            write_field(&memsw, &s.to_string(), "memory.swap")?;
        }
        Ok(())
    }

    /// Moves `pid` into the cgroup, in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        if pid <= 0 {
            return Err(CgroupError::Io {
                op: "add pid to",
                path: PathBuf::from(&self.path),
                source: std::io::Error::from(ErrorKind::InvalidInput),
            });
        }
        for dir in self.dirs() {
            let f = dir.join("cgroup.procs");
            std::fs::write(&f, pid.to_string()).map_err(io("write", &f))?;
        }
        Ok(())
    }

    /// Every process in the cgroup and its descendants (empty if the cgroup
    /// does not exist).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        if let Some(dir) = self.primary() {
            collect_pids(dir, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Whether the cgroup exists (its directory in the main hierarchy).
    pub fn exists(&self) -> bool {
        self.primary().is_some_and(Path::exists)
    }

    /// Sends `signal` to every process of the cgroup and its descendants
    /// (`kill --all`, `delete --force`). The cgroup is frozen meanwhile, as
    /// runc does, so no process forks out of the signal's reach; it is left
    /// as it was found (a paused container stays paused).
    pub fn signal_all(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        let was_frozen = self.is_frozen().unwrap_or(false);
        let froze = !was_frozen && self.freeze().is_ok();
        let mut res = Ok(());
        match self.pids() {
            Ok(pids) => {
                for pid in pids {
                    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
                        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                        Err(e) => {
                            res = Err(CgroupError::Io {
                                op: "signal a process of",
                                path: PathBuf::from(&self.path),
                                source: e.into(),
                            });
                        }
                    }
                }
            }
            Err(e) => res = Err(e),
        }
        if froze {
            self.thaw()?;
        }
        res
    }

    /// Freezes every process of the cgroup and waits until the kernel reports
    /// it frozen (v1 `freezer.state`, v2 `cgroup.freeze`).
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    /// Thaws the cgroup.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let state = if frozen { "frozen" } else { "thawed" };
        let (file, value) = match (self.v1_dir("freezer"), &self.v2) {
            (Some(d), _) => (
                d.join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
            ),
            (None, Some(d)) => (d.join("cgroup.freeze"), if frozen { "1" } else { "0" }),
            (None, None) => {
                return Err(CgroupError::Unimplemented(
                    "a freezer on a host without one",
                ));
            }
        };
        for attempt in 0..2000u32 {
            // v1 may stay FREEZING while a task sits in vfork; writing again retries.
            if attempt % 10 == 0 {
                std::fs::write(&file, value).map_err(io("write", &file))?;
            }
            if self.is_frozen()? == frozen {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(u64::from(attempt.min(10))));
        }
        if frozen {
            let _ = self.set_frozen(false);
        }
        Err(CgroupError::FreezeTimeout {
            path: file.parent().unwrap_or(&file).to_path_buf(),
            state,
        })
    }

    /// Whether the cgroup is frozen (v1 `FROZEN`; v2 `frozen 1` in cgroup.events).
    pub fn is_frozen(&self) -> Result<bool> {
        if let Some(d) = self.v1_dir("freezer") {
            let f = d.join("freezer.state");
            let s = std::fs::read_to_string(&f).map_err(io("read", &f))?;
            return Ok(s.trim() == "FROZEN");
        }
        if let Some(d) = &self.v2 {
            let f = d.join("cgroup.events");
            let s = std::fs::read_to_string(&f).map_err(io("read", &f))?;
            return Ok(stats::flat_keyed(&s).get("frozen") == Some(&1));
        }
        Ok(false)
    }

    /// Removes the cgroup, and any cgroup made below it, from every hierarchy;
    /// waits briefly for exiting processes (EBUSY). A missing cgroup is fine.
    pub fn destroy(&self) -> Result<()> {
        let mut first = None;
        for dir in self.dirs() {
            if let Err(e) = remove_tree(dir) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Resource usage, as runc's `events --stats` reports it.
    pub fn stats(&self) -> Result<Stats> {
        let primary = self.primary().ok_or(CgroupError::Unimplemented(
            "stats without any cgroup hierarchy",
        ))?;
        if !primary.exists() {
            return Err(CgroupError::Io {
                op: "stat",
                path: primary.to_path_buf(),
                source: std::io::Error::from(ErrorKind::NotFound),
            });
        }
        let reader = |dir: PathBuf| move |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        let v2 = self.v2.as_ref().map(|d| reader(d.clone()));
        let v2_has = |c: &str| self.v2_controllers.contains(c);
        let v1 = |c: &str| self.v1_dir(c).map(|d| reader(d.to_path_buf()));
        let mut s = Stats::default();

        let (cpu, acct) = (v1("cpu"), v1("cpuacct"));
        if cpu.is_some() || acct.is_some() {
            s.cpu = stats::v1_cpu(
                cpu.as_ref().map(|r| r as stats::Read),
                acct.as_ref().map(|r| r as stats::Read),
            );
        } else if let Some(r) = &v2 {
            s.cpu = stats::v2_cpu(r);
        }
        if let Some(r) = v1("memory") {
            s.memory = stats::v1_memory(&r);
        } else if let Some(r) = v2.as_ref().filter(|_| v2_has("memory")) {
            s.memory = stats::v2_memory(r);
        }
        if let Some(r) = v1("pids") {
            s.pids = stats::pids(&r);
        } else if let Some(r) = v2.as_ref().filter(|_| v2_has("pids")) {
            s.pids = stats::pids(r);
        }
        if let Some(r) = v1("blkio") {
            s.blkio = stats::v1_blkio(&r);
        } else if let Some(r) = v2.as_ref().filter(|_| v2_has("io")) {
            s.blkio = stats::v2_io(r);
        }
        let sizes = hugepage_sizes();
        if let Some(r) = v1("hugetlb") {
            s.hugetlb = stats::hugetlb(&r, false, &sizes);
        } else if let Some(r) = v2.as_ref().filter(|_| v2_has("hugetlb")) {
            s.hugetlb = stats::hugetlb(r, true, &sizes);
        }
        Ok(s)
    }

    /// How many processes of the cgroup the OOM killer has killed (v1
    /// `memory.oom_control` `oom_kill`, v2 `memory.events`).
    pub fn oom_kill_count(&self) -> Result<u64> {
        let f = match (self.v1_dir("memory"), &self.v2) {
            (Some(d), _) => d.join("memory.oom_control"),
            (None, Some(d)) if self.v2_controllers.contains("memory") => d.join("memory.events"),
            _ => {
                return Err(CgroupError::Unimplemented(
                    "OOM counts without a memory controller",
                ));
            }
        };
        let text = std::fs::read_to_string(&f).map_err(io("read", &f))?;
        Ok(stats::oom_kills(&text))
    }
}

/// A file descriptor that becomes readable when the cgroup may have had an OOM
/// event (v1: an eventfd registered on `memory.oom_control`; v2: inotify on
/// `memory.events`). After a wake-up, compare [`Manager::oom_kill_count`].
#[derive(Debug)]
pub struct OomWatch {
    fd: std::os::fd::OwnedFd,
    /// v1: the oom_control file must stay open for the registration to live.
    _control: Option<std::fs::File>,
}

impl std::os::fd::AsFd for OomWatch {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl OomWatch {
    /// Blocks until the next notification and consumes it. On v1 the kernel
    /// also signals when the cgroup is removed.
    pub fn wait(&self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a buffer we own, of the length given.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

fn owned(fd: libc::c_int, what: &'static str, path: &Path) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 0 {
        return Err(io(what, path)(std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

impl Manager {
    /// Starts watching the cgroup for OOM events.
    pub fn oom_watch(&self) -> Result<OomWatch> {
        use std::os::fd::AsRawFd;
        if let Some(d) = self.v1_dir("memory") {
            let control_path = d.join("memory.oom_control");
            let control = std::fs::File::open(&control_path).map_err(io("open", &control_path))?;
            // SAFETY: eventfd(2) takes no pointers.
            let efd = owned(
                unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) },
                "eventfd for",
                &control_path,
            )?;
            let ec = d.join("cgroup.event_control");
            std::fs::write(&ec, format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()))
                .map_err(io("write", &ec))?;
            return Ok(OomWatch {
                fd: efd,
                _control: Some(control),
            });
        }
        match &self.v2 {
            Some(d) if self.v2_controllers.contains("memory") => {
                let events = d.join("memory.events");
                let cpath = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
                    .map_err(|_| io("watch", &events)(ErrorKind::InvalidInput.into()))?;
                // SAFETY: inotify_init1(2) takes no pointers.
                let ifd = owned(
                    unsafe { libc::inotify_init1(libc::IN_CLOEXEC) },
                    "inotify for",
                    &events,
                )?;
                // SAFETY: cpath is a valid NUL-terminated path for the call's duration.
                let wd = unsafe {
                    libc::inotify_add_watch(ifd.as_raw_fd(), cpath.as_ptr(), libc::IN_MODIFY)
                };
                if wd < 0 {
                    return Err(io("watch", &events)(std::io::Error::last_os_error()));
                }
                Ok(OomWatch {
                    fd: ifd,
                    _control: None,
                })
            }
            _ => Err(CgroupError::Unimplemented(
                "OOM events without a memory controller",
            )),
        }
    }
}

/// Whether systemd runs as the init system (its documented check:
/// `/run/systemd/system` is a directory).
pub fn systemd_running(marker: &Path) -> bool {
    marker.is_dir()
}

/// `dir` and each ancestor below its mount point, top first.
fn levels(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        // Stop at the hierarchy root: its parent is not a cgroup.
        if !d.parent().is_some_and(|p| p.join("cgroup.procs").exists()) {
            break;
        }
        out.push(d.to_path_buf());
        cur = d.parent();
    }
    out.reverse();
    out
}

fn write_field(path: &Path, value: &str, field: &'static str) -> Result<()> {
    std::fs::write(path, value).map_err(|source| {
        if source.kind() == ErrorKind::NotFound {
            CgroupError::NotSupported {
                field,
                path: path.to_path_buf(),
            }
        } else {
            CgroupError::Write {
                field,
                path: path.to_path_buf(),
                value: value.to_string(),
                source,
            }
        }
    })
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let f = dir.join("cgroup.procs");
    let text = match std::fs::read_to_string(&f) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("read", &f)(e)),
    };
    out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    for sub in subdirs(dir)? {
        collect_pids(&sub, out)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list", dir)(e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(io("list", dir))?;
        if ent.file_type().map_err(io("list", dir))?.is_dir() {
            out.push(ent.path());
        }
    }
    Ok(out)
}

/// Removes a cgroup directory bottom-up, retrying briefly on EBUSY.
fn remove_tree(dir: &Path) -> Result<()> {
    for sub in subdirs(dir)? {
        remove_tree(&sub)?;
    }
    let mut last = None;
    for attempt in 0..100u64 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(attempt.min(20) + 1));
            }
            Err(e) => return Err(io("rmdir", dir)(e)),
        }
    }
    Err(io("rmdir", dir)(last.unwrap_or_else(|| {
        std::io::Error::from_raw_os_error(libc::EBUSY)
    })))
}

/// The huge page sizes the kernel offers, in cgroup notation (`2MB`, `1GB`).
pub fn hugepage_sizes() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| stats::page_size_name(&e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MI: &str = "\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn manager_round_trips_through_state_json() {
        let layout = Layout::parse(HYBRID_MI, "0::/\n").expect("layout");
        let path = CgroupPath::parse("/berth/c1").expect("path");
        let m = Manager::from_layout(&layout, &path, ["hugetlb".to_string()].into());
        assert_eq!(m.mode(), Mode::Hybrid);
        assert_eq!(
            m.v1_dir("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/berth/c1"))
        );
        assert_eq!(m.v1_dir("name=systemd"), None);
        assert_eq!(
            m.v2_dir(),
            Some(Path::new("/sys/fs/cgroup/unified/berth/c1"))
        );
        // cpu and cpuacct share one directory.
        assert_eq!(m.dirs().len(), 3);
        let json = serde_json::to_string(&m).expect("serialize");
        let back: Manager = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, m);
        let avail = m.available();
        assert!(avail.v1.contains("cpuacct"));
        assert_eq!(avail.v2, Some(["hugetlb".to_string()].into()));
    }

    #[test]
    fn systemd_paths_need_the_flag() {
        let err = Manager::new(Some("system.slice:berth:c1"), "c1").expect_err("systemd form");
        assert!(err.to_string().contains("linux.cgroupsPath"), "{err}");
        assert!(err.to_string().contains("--systemd-cgroup"), "{err}");
        assert!(!systemd_running(Path::new(
            "/nonexistent/run/systemd/system"
        )));
    }

    #[test]
    fn hostile_paths_refused_before_touching_the_host() {
        for p in ["../../etc", "/a/../../b", "/", "/a/cgroup.procs", "a\nb"] {
            let err = Manager::new(Some(p), "c1").expect_err(p);
            assert!(err.to_string().contains("cgroupsPath"), "{p:?}: {err}");
        }
        assert!(Manager::new(None, "../x").is_err());
    }
}
