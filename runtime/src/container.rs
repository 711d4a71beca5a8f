//! The runtime's side of each lifecycle operation: create, start, kill, delete, exec,
//! pause and resume, on top of the state store, the cgroup manager and the init.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, Process, Spec};

use crate::cgroups::{self, Manager};
use crate::init::{self, InitError};
use crate::namespaces;
use crate::spec::{self, Bundle};
use crate::state::{self, ContainerState, Locked, StateRoot, Status};
use crate::sync::{self, Msg, SyncSocket};
use crate::{console, hooks};

/// Errors of lifecycle operations; each names the container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("container {id}: cgroup: {source}")]
    Cgroup {
        id: String,
        source: cgroups::CgroupError,
    },
    #[error("container {id}: {msg}")]
    Setup { id: String, msg: String },
    #[error("container {id} is {status}: {what}")]
    Status {
        id: String,
        status: &'static str,
        what: &'static str,
    },
    #[error("{0}")]
    Usage(String),
}

fn setup(id: &str, msg: impl std::fmt::Display) -> Error {
    Error::Setup {
        id: id.to_string(),
        msg: msg.to_string(),
    }
}

/// Options of `create` (and `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub systemd_cgroup: bool,
}

/// Undoes a half-made container unless disarmed: kills what was started, removes the
/// cgroup and the state directory.
struct CreateGuard<'a> {
    locked: Option<Locked>,
    cgroup: Option<&'a Manager>,
    pids: Vec<i32>,
}

impl CreateGuard<'_> {
    fn disarm(mut self) -> Locked {
        self.locked
            .take()
            .expect("guard holds the lock until disarmed")
    }
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        let Some(locked) = self.locked.take() else {
            return;
        };
        for &p in &self.pids {
            let _ = signal::kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        if let Some(cg) = self.cgroup {
            kill_cgroup(cg);
            let _ = destroy_cgroup(cg);
        }
        let _ = locked.remove();
    }
}

/// The devices a container may always use, appended after the spec's own rules as runc
/// does: mknod of any node (so device creation works under a deny-all), the default
/// devices, the pty devices, tun, and every device the spec itself creates.
const DEFAULT_DEVICE_RULES: &str = r#"[
    {"allow": true, "type": "c", "access": "m"},
    {"allow": true, "type": "b", "access": "m"},
    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": true, "type": "c", "major": 136, "access": "rwm"},
    {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
]"#;

/// The spec's resources with runc's default device rules added. Pure.
pub fn with_default_device_rules(
    linux: &oci_spec::runtime::Linux,
) -> oci_spec::runtime::LinuxResources {
    let mut r = linux.resources().clone().unwrap_or_default();
    let mut rules = r.devices().clone().unwrap_or_default();
    let defaults: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        serde_json::from_str(DEFAULT_DEVICE_RULES).expect("constant rules parse");
    rules.extend(defaults);
    for d in linux.devices().iter().flatten() {
        let typ = match d.typ() {
            oci_spec::runtime::LinuxDeviceType::B => "b",
            oci_spec::runtime::LinuxDeviceType::P => continue,
            _ => "c",
        };
        let rule = serde_json::json!({"allow": true, "type": typ, "major": d.major(), "minor": d.minor(), "access": "rwm"});
        rules.push(serde_json::from_value(rule).expect("rule fields are plain"));
    }
    r.set_devices(Some(rules));
    r
}

fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// The name of berth's user, for `state` and `list`: read from /etc/passwd as runc does
/// (moby/sys/user), not through glibc's NSS, which a static binary cannot load modules
/// for; `#UID` when the file does not name it.
fn owner() -> String {
    let uid = nix::unistd::getuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| passwd_name(&p, uid).map(str::to_string))
        .unwrap_or_else(|| format!("#{uid}"))
}

/// The first user name with `uid` in passwd(5) text; malformed lines are skipped.
fn passwd_name(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let (name, _pw, id) = (f.next()?, f.next()?, f.next()?);
        (!name.is_empty() && !name.starts_with(['+', '-', '#']) && id.parse() == Ok(uid))
            .then_some(name)
    })
}

/// Writes `pid` to `path` atomically, as runc does.
pub fn write_pid_file(path: &Path, pid: i32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("pid file has no name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, pid.to_string())?;
    std::fs::rename(&tmp, path)
}

fn run_hook_list(
    kind: &str,
    hooks: Option<&Vec<Hook>>,
    state: &serde_json::Value,
) -> Result<(), String> {
    match hooks {
        Some(h) if !h.is_empty() => {
            hooks::run_hooks(kind, h, state.to_string().as_bytes()).map_err(|e| e.to_string())
        }
        _ => Ok(()),
    }
}

fn reap(pid: Pid) -> Option<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Err(nix::Error::EINTR) => continue,
            Ok(s) => return Some(s),
            Err(_) => return None,
        }
    }
}

/// Creates a container: everything up to the init blocked on the exec FIFO.
pub fn create(root: &StateRoot, o: &CreateOpts) -> Result<ContainerState, Error> {
    state::validate_id(&o.id)?;
    let bundle = spec::load_bundle(&o.bundle)?;
    let id = o.id.as_str();
    if o.systemd_cgroup && !Path::new("/run/systemd/system").is_dir() {
        return Err(Error::Usage(
            "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system)".into(),
        ));
    }
    let process = bundle.spec.process().as_ref().expect("validated");
    let terminal = process.terminal().unwrap_or(false);
    match (terminal, &o.console_socket) {
        (true, None) => {
            return Err(Error::Usage(
                "process.terminal is true but no --console-socket was given".into(),
            ));
        }
        (false, Some(_)) => {
            return Err(Error::Usage(
                "--console-socket needs process.terminal to be true".into(),
            ));
        }
        _ => {}
    }
    let console = match &o.console_socket {
        Some(p) => Some(console::connect(p).map_err(|e| Error::Usage(e.to_string()))?),
        None => None,
    };
    let linux = bundle.spec.linux().as_ref().expect("validated");
    let cg_path = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let cgroup = if o.systemd_cgroup {
        Manager::new_systemd(cg_path.as_deref(), id)
    } else {
        Manager::new(cg_path.as_deref(), id)
    }
    .map_err(|source| Error::Cgroup {
        id: id.to_string(),
        source,
    })?;

    let locked = root.create(id)?;
    let mut guard = CreateGuard {
        locked: Some(locked),
        cgroup: None,
        pids: Vec::new(),
    };
    let cg_err = |source| Error::Cgroup {
        id: id.to_string(),
        source,
    };
    cgroup.create().map_err(cg_err)?;
    guard.cgroup = Some(&cgroup);
    cgroup
        .apply(&with_default_device_rules(linux))
        .map_err(cg_err)?;

    let mut st = ContainerState {
        id: id.to_string(),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        pid: 0,
        pid_start_time: 0,
        created: now_rfc3339(),
        owner: owner(),
        status: Status::Creating,
        cgroup: cgroup.clone(),
        config: bundle.spec.clone(),
        systemd_cgroup: o.systemd_cgroup,
    };
    let dir = guard.locked.as_ref().expect("armed").dir.clone();
    guard.locked.as_ref().expect("armed").save(&st)?;

    let fifo_path = dir.join(state::EXEC_FIFO);
    nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .map_err(|e| setup(id, format!("mkfifo {}: {e}", fifo_path.display())))?;
    let fifo: OwnedFd = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo_path)
        .map_err(|e| setup(id, format!("open {}: {e}", fifo_path.display())))?
        .into();

    let idmapped = crate::rootfs::idmap::IdmappedMounts::prepare(&bundle.spec, &bundle.dir)
        .map_err(|e| setup(id, e))?;
    let plan = namespaces::plan(linux);
    let (parent, child) = sync::pair().map_err(|e| setup(id, e))?;
    let lock_fd = guard.locked.as_ref().expect("armed").lock_fd();
    let stage1 = {
        let child = &child;
        let bundle: &Bundle = &bundle;
        let fifo = &fifo;
        let console = console.as_ref();
        let plan = &plan;
        init::fork_child(child, move || {
            // SAFETY: closes this child's copy of the state lock; the parent keeps its own.
            unsafe { libc::close(lock_fd) };
            init::stage1(
                init::Stage1 {
                    plan,
                    spec: &bundle.spec,
                    sock: child,
                },
                move || {
                    init::init(init::Init {
                        id,
                        spec: &bundle.spec,
                        bundle: &bundle.dir,
                        rootfs: &bundle.rootfs,
                        sock: child,
                        fifo,
                        console,
                        no_pivot: o.no_pivot,
                        idmapped: &idmapped,
                        no_new_keyring: o.no_new_keyring,
                        preserve_fds: o.preserve_fds,
                    })
                    .map(|never| match never {})
                },
            )
        })
        .map_err(|e| setup(id, format!("fork: {e}")))?
    };
    drop(child);
    drop(console);
    guard.pids.push(stage1.as_raw());

    let result = handshake(id, &parent, stage1, &plan, &bundle.spec, &cgroup, &mut st);
    let init_pid = st.pid;
    if init_pid > 0 {
        guard.pids.push(init_pid);
    }
    if let Err(e) = result {
        let _ = reap_nohang(stage1);
        return Err(e);
    }
    st.status = Status::Created;
    let locked = guard.locked.as_ref().expect("armed");
    locked.save(&st)?;
    if let Some(p) = &o.pid_file {
        write_pid_file(p, st.pid)
            .map_err(|e| setup(id, format!("pid file {}: {e}", p.display())))?;
    }
    drop(guard.disarm());
    Ok(st)
}

fn reap_nohang(pid: Pid) -> Option<WaitStatus> {
    waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)).ok()
}

#[allow(clippy::too_many_arguments)]
fn handshake(
    id: &str,
    sock: &SyncSocket,
    stage1: Pid,
    plan: &namespaces::NsPlan,
    spec: &Spec,
    cgroup: &Manager,
    st: &mut ContainerState,
) -> Result<(), Error> {
    let sync_err = |e: sync::SyncError| setup(id, e);
    cgroup
        .add_pid(stage1.as_raw())
        .map_err(|source| Error::Cgroup {
            id: id.to_string(),
            source,
        })?;
    sock.send(&Msg::Go).map_err(sync_err)?;
    if plan.new_user {
        sock.expect(Msg::UsernsReady, "UsernsReady")
            .map_err(sync_err)?;
        let linux = spec.linux().as_ref().expect("validated");
        namespaces::write_id_maps(
            stage1.as_raw(),
            linux.uid_mappings().as_deref().unwrap_or_default(),
            linux.gid_mappings().as_deref().unwrap_or_default(),
        )
        .map_err(|e| setup(id, e))?;
        sock.send(&Msg::MapsDone).map_err(sync_err)?;
    }
    let pid = match sock.recv().map_err(sync_err)? {
        Msg::InitPid(p) => p,
        other => return Err(setup(id, format!("sync: unexpected {other:?}"))),
    };
    st.pid = pid;
    st.pid_start_time = state::process_start_time(pid).unwrap_or(0);
    match reap(stage1) {
        Some(WaitStatus::Exited(_, 0)) => {}
        other => return Err(setup(id, format!("setup process ended with {other:?}"))),
    }
    // No state write here: until `Created` is saved, a create killed now leaves a
    // `creating` state whose cgroup holds the init, and `delete --force` kills the
    // cgroup's processes.
    sock.send(&Msg::Go).map_err(sync_err)?;

    sock.expect(Msg::RunHooks, "RunHooks").map_err(sync_err)?;
    let hook_state = st.hook_state(Status::Creating);
    if let Some(h) = spec.hooks() {
        #[allow(deprecated)]
        let prestart = h.prestart().as_ref();
        run_hook_list("prestart", prestart, &hook_state).map_err(|e| setup(id, e))?;
        run_hook_list("createRuntime", h.create_runtime().as_ref(), &hook_state)
            .map_err(|e| setup(id, e))?;
    }
    sock.send(&Msg::HooksDone(hook_state.to_string()))
        .map_err(sync_err)?;
    sock.expect(Msg::Ready, "Ready").map_err(sync_err)?;
    Ok(())
}

/// Starts a created container: opens the exec FIFO so its init runs the program.
pub fn start(root: &StateRoot, id: &str) -> Result<(), Error> {
    let locked = root.lock(id)?;
    let mut st = locked.load()?;
    let status = st.live_status(&locked.dir);
    if status != Status::Created {
        return Err(Error::Status {
            id: id.to_string(),
            status: status.as_str(),
            what: "only a created container can be started",
        });
    }
    let fifo_path = locked.dir.join(state::EXEC_FIFO);
    // The init holds the read side; opening the write side fails (ENXIO) if it is gone.
    let fifo = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo_path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => setup(id, "the container's init exited before start"),
            _ => setup(id, format!("open {}: {e}", fifo_path.display())),
        })?;
    nix::unistd::write(&fifo, b"0").map_err(|e| setup(id, format!("write exec fifo: {e}")))?;
    drop(fifo);
    let _ = std::fs::remove_file(&fifo_path);
    st.status = Status::Running;
    locked.save(&st)?;
    if let Some(h) = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststart().clone())
        && let Err(e) = run_hook_list("poststart", Some(&h), &st.hook_state(Status::Running))
    {
        eprintln!("berth: warning: container {id}: {e}");
    }
    Ok(())
}

/// Sends `sig` to the container's init, or with `all` to every process in its cgroup.
pub fn kill(root: &StateRoot, id: &str, sig: Signal, all: bool) -> Result<(), Error> {
    let st = root.load(id)?;
    let dir = root.dir(id)?;
    let status = st.live_status(&dir);
    if status == Status::Stopped {
        return Err(Error::Status {
            id: id.to_string(),
            status: status.as_str(),
            what: "container not running",
        });
    }
    if all {
        let pids = st.cgroup.pids().map_err(|source| Error::Cgroup {
            id: id.to_string(),
            source,
        })?;
        for p in pids {
            let _ = signal::kill(Pid::from_raw(p), sig);
        }
        if status == Status::Paused && sig == Signal::SIGKILL {
            let _ = st.cgroup.thaw();
        }
        return Ok(());
    }
    signal::kill(Pid::from_raw(st.pid), sig).map_err(|e| setup(id, format!("kill {sig}: {e}")))?;
    if status == Status::Paused && sig == Signal::SIGKILL {
        let _ = st.cgroup.thaw();
    }
    Ok(())
}

fn kill_cgroup(cg: &Manager) {
    let frozen = cg.is_frozen().unwrap_or(false);
    for _ in 0..3 {
        match cg.pids() {
            Ok(p) if !p.is_empty() => {
                for pid in p {
                    let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            _ => break,
        }
        if frozen {
            let _ = cg.thaw();
        }
    }
}

fn destroy_cgroup(cg: &Manager) -> Result<(), cgroups::CgroupError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match cg.destroy() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => {
                kill_cgroup(cg);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Deletes a container: refuses a running one unless `force`, which kills it first.
pub fn delete(root: &StateRoot, id: &str, force: bool) -> Result<(), Error> {
    let locked = match root.lock(id) {
        Ok(l) => l,
        Err(state::StateError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let st = match locked.load() {
        Ok(st) => st,
        // A state directory without a readable state (a create killed very early):
        // nothing else can be known, so remove it.
        Err(_) => {
            locked.remove()?;
            return Ok(());
        }
    };
    let status = st.live_status(&locked.dir);
    match status {
        Status::Stopped => {}
        Status::Created | Status::Creating => kill_and_wait(&st),
        Status::Running | Status::Paused if force => kill_and_wait(&st),
        Status::Running | Status::Paused => {
            return Err(Error::Status {
                id: id.to_string(),
                status: status.as_str(),
                what: "cannot delete a container that is not stopped (use --force)",
            });
        }
    }
    kill_cgroup(&st.cgroup);
    destroy_cgroup(&st.cgroup).map_err(|source| Error::Cgroup {
        id: id.to_string(),
        source,
    })?;
    if let Some(h) = st
        .config
        .hooks()
        .as_ref()
        .and_then(|h| h.poststop().clone())
        && let Err(e) = run_hook_list("poststop", Some(&h), &st.hook_state(Status::Stopped))
    {
        eprintln!("berth: warning: container {id}: {e}");
    }
    locked.remove()?;
    Ok(())
}

fn kill_and_wait(st: &ContainerState) {
    if st.init_alive() {
        let _ = signal::kill(Pid::from_raw(st.pid), Signal::SIGKILL);
    }
    kill_cgroup(&st.cgroup);
    let deadline = Instant::now() + Duration::from_secs(10);
    while st.init_alive() && Instant::now() < deadline {
        let _ = waitpid(
            Pid::from_raw(st.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Freezes a running container.
pub fn pause(root: &StateRoot, id: &str) -> Result<(), Error> {
    let locked = root.lock(id)?;
    let mut st = locked.load()?;
    let status = st.live_status(&locked.dir);
    if status != Status::Running {
        return Err(Error::Status {
            id: id.to_string(),
            status: status.as_str(),
            what: "only a running container can be paused",
        });
    }
    st.cgroup.freeze().map_err(|source| Error::Cgroup {
        id: id.to_string(),
        source,
    })?;
    st.status = Status::Paused;
    locked.save(&st)?;
    Ok(())
}

/// Thaws a paused container.
pub fn resume(root: &StateRoot, id: &str) -> Result<(), Error> {
    let locked = root.lock(id)?;
    let mut st = locked.load()?;
    let status = st.live_status(&locked.dir);
    if status != Status::Paused {
        return Err(Error::Status {
            id: id.to_string(),
            status: status.as_str(),
            what: "only a paused container can be resumed",
        });
    }
    st.cgroup.thaw().map_err(|source| Error::Cgroup {
        id: id.to_string(),
        source,
    })?;
    st.status = Status::Running;
    locked.save(&st)?;
    Ok(())
}

/// Options of `exec`.
#[derive(Debug, Default)]
pub struct ExecOpts {
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// `--cgroup`: the sub-cgroups to run in (default: the container's cgroup).
    pub cgroup: cgroups::sub::SubCgroups,
}

/// Starts `process` inside a running container; returns its PID. The caller waits for
/// it (foreground) or not (`--detach`).
pub fn exec(root: &StateRoot, id: &str, process: &Process, o: &ExecOpts) -> Result<i32, Error> {
    let st = root.load(id)?;
    let dir = root.dir(id)?;
    let status = st.live_status(&dir);
    if !matches!(status, Status::Running | Status::Created) {
        return Err(Error::Status {
            id: id.to_string(),
            status: status.as_str(),
            what: "cannot exec in a container that is not running",
        });
    }
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Usage("exec: no command given".into()));
    }
    let terminal = process.terminal().unwrap_or(false);
    if terminal && o.console_socket.is_none() {
        return Err(Error::Usage(
            "exec: a terminal needs --console-socket".into(),
        ));
    }
    let console: Option<UnixStream> = match &o.console_socket {
        Some(p) => Some(console::connect(p).map_err(|e| Error::Usage(e.to_string()))?),
        None => None,
    };
    let linux = st.config.linux().as_ref().expect("validated at create");
    let plan = namespaces::plan_exec(linux, st.pid);
    let spec = st.config.clone();
    let init_root = crate::exec::open_init_root(st.pid).map_err(|e| setup(id, e))?;
    let (parent, child) = sync::pair().map_err(|e| setup(id, e))?;
    let stage1 = {
        let child = &child;
        let plan = &plan;
        let console = console.as_ref();
        let spec = &spec;
        let init_root = &init_root;
        let parent_fd = parent.as_fd().as_raw_fd();
        init::fork_child(child, move || {
            // SAFETY: closes this child's copy of the parent's end, so the exec'd process
            // sees EOF if `berth exec` dies while it waits for an answer.
            unsafe { libc::close(parent_fd) };
            child
                .expect(Msg::Go, "Go")
                .map_err(|e| InitError(e.to_string()))?;
            namespaces::join(plan).map_err(|e| InitError(e.to_string()))?;
            crate::exec::enter_root(init_root.as_fd()).map_err(|e| InitError(e.to_string()))?;
            let pid = init::fork_child(child, move || {
                exec_child(spec, process, console, o.preserve_fds, child).map(|n| match n {})
            })
            .map_err(|e| InitError(format!("fork: {e}")))?;
            child
                .send(&Msg::InitPid(pid.as_raw()))
                .map_err(|e| InitError(e.to_string()))?;
            Ok(0)
        })
        .map_err(|e| setup(id, format!("fork: {e}")))?
    };
    drop(child);
    drop(console);
    let cleanup = |e: Error| {
        let _ = signal::kill(stage1, Signal::SIGKILL);
        let _ = reap(stage1);
        e
    };
    st.cgroup
        .add_pid_sub(stage1.as_raw(), &o.cgroup)
        .map_err(|source| {
            cleanup(Error::Cgroup {
                id: id.to_string(),
                source,
            })
        })?;
    parent.send(&Msg::Go).map_err(|e| cleanup(setup(id, e)))?;
    // The exec'd process runs as soon as it is forked: its seccomp fd may come first.
    let mut early_fd = None;
    let pid = loop {
        match parent.recv_with_fd() {
            Ok((Msg::InitPid(p), _)) => break p,
            Ok((Msg::SeccompFd, Some(fd))) if early_fd.is_none() => early_fd = Some(fd),
            Ok((other, _)) => {
                return Err(cleanup(setup(id, format!("sync: unexpected {other:?}"))));
            }
            Err(e) => return Err(cleanup(setup(id, e))),
        }
    };
    let _ = reap(stage1);
    drop(init_root);
    // The process execs (closing its end: EOF) or reports why it could not; on the way
    // it may hand over its seccomp notify fd for the agent.
    let fail = |e: Error| {
        let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        e
    };
    loop {
        let got = match early_fd.take() {
            Some(fd) => Ok((Msg::SeccompFd, Some(fd))),
            None => parent.recv_with_fd(),
        };
        match got {
            Err(sync::SyncError::Eof) => break,
            Err(e) => return Err(fail(setup(id, e))),
            Ok((Msg::SeccompFd, Some(fd))) => {
                let state = st.hook_state(status).to_string();
                crate::exec::send_listener(&spec, fd.as_fd(), state.as_bytes(), pid)
                    .map_err(|e| fail(setup(id, e)))?;
                drop(fd);
                parent
                    .send(&Msg::SeccompDone)
                    .map_err(|e| fail(setup(id, e)))?;
            }
            Ok((other, _)) => return Err(fail(setup(id, format!("sync: unexpected {other:?}")))),
        }
    }
    if let Some(p) = &o.pid_file {
        write_pid_file(p, pid).map_err(|e| setup(id, format!("pid file {}: {e}", p.display())))?;
    }
    Ok(pid)
}

fn exec_child(
    spec: &Spec,
    process: &Process,
    console: Option<&UnixStream>,
    preserve_fds: u32,
    sock: &SyncSocket,
) -> Result<std::convert::Infallible, InitError> {
    if let Some(sock) = console {
        let (master, slave) = console::open_pty().map_err(|e| InitError(e.to_string()))?;
        if let Some(b) = process.console_size() {
            console::set_size(master.as_raw_fd(), b.height() as u16, b.width() as u16)
                .map_err(|e| InitError(e.to_string()))?;
        }
        console::send_fd(sock, &slave, master.as_raw_fd()).map_err(|e| InitError(e.to_string()))?;
        drop(master);
        console::become_session_leader_on(&slave).map_err(|e| InitError(e.to_string()))?;
    }
    let sec = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(crate::seccomp::compile)
        .transpose()
        .map_err(|e| InitError(format!("linux.seccomp: {e}")))?;
    let nnp = process.no_new_privileges().unwrap_or(false);
    let (early, late) = if nnp { (None, sec) } else { (sec, None) };
    let load = |f: crate::seccomp::Filter| -> Result<(), InitError> {
        let listener = f
            .load()
            .map_err(|e| InitError(format!("load seccomp filter: {e}")))?;
        match listener {
            Some(fd) => {
                crate::exec::hand_listener_to_parent(sock, fd).map_err(|e| InitError(e.to_string()))
            }
            None => Ok(()),
        }
    };
    init::finish_process(process, early, load)?;
    let target = crate::process::exec_target(process).map_err(|e| InitError(e.to_string()))?;
    if let Some(f) = late {
        load(f)?;
    }
    crate::process::cloexec_from(3 + preserve_fds).map_err(|e| InitError(e.to_string()))?;
    crate::process::reset_signals();
    Err(InitError(crate::process::exec(&target).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_come_from_passwd_lines() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      broken line\n\
                      +nis:x:5::::\n\
                      :x:7:7::/:/bin/sh\n\
                      daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                      dup:x:1:1::/:/bin/sh\n\
                      bad:x:notanumber:1::/:/bin/sh\n";
        assert_eq!(passwd_name(passwd, 0), Some("root"));
        assert_eq!(passwd_name(passwd, 1), Some("daemon"), "the first one wins");
        assert_eq!(
            passwd_name(passwd, 5),
            None,
            "NIS compat lines are not names"
        );
        assert_eq!(passwd_name(passwd, 7), None, "an empty name is not a name");
        assert_eq!(passwd_name(passwd, 1000), None);
        assert_eq!(passwd_name("", 0), None);
    }

    #[test]
    fn default_device_rules_follow_the_spec_rules() {
        let linux: oci_spec::runtime::Linux = serde_json::from_value(serde_json::json!({
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "devices": [{"path": "/dev/k", "type": "c", "major": 1, "minor": 11}]
        }))
        .unwrap();
        let r = with_default_device_rules(&linux);
        let rules = r.devices().as_ref().unwrap();
        assert!(!rules[0].allow(), "the spec's deny-all stays first");
        assert!(
            rules
                .iter()
                .any(|d| d.allow() && d.major() == Some(1) && d.minor() == Some(3))
        );
        let last = rules.last().unwrap();
        assert_eq!((last.major(), last.minor()), (Some(1), Some(11)));
        assert_eq!(rules.len(), 1 + 12 + 1);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
}
