//! The container side of `create` and `exec`: what the forked children do, in order.
//!
//! `create`: the runtime forks *stage 1*, which joins and creates namespaces (waiting for
//! the parent to write id maps when it made a user namespace), then forks the *init* into
//! the new PID namespace and exits. The init builds the rootfs, runs createContainer
//! hooks, pivots, sets up the terminal, hostname, sysctls, masked paths, limits, user and
//! capabilities, reports ready, and blocks on the exec FIFO until `start`.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::namespaces::{self, NsPlan};
use crate::sync::{Msg, SyncSocket};
use crate::{capabilities, console, hooks, process, rlimits, rootfs, seccomp};

/// An error inside a container's setup, sent to the parent as text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InitError(pub String);

macro_rules! ctx {
    ($what:expr) => {
        |e| InitError(format!("{}: {}", $what, e))
    };
}

/// Runs `f` in a forked child that never returns: its result becomes the exit code, and
/// an error is first sent to the parent over `sock`.
pub fn fork_child(
    sock: &SyncSocket,
    f: impl FnOnce() -> Result<i32, InitError>,
) -> Result<nix::unistd::Pid, nix::Error> {
    // SAFETY: berth is single-threaded when it forks (no threads are ever started), so
    // the child may run ordinary Rust code; it leaves only through _exit.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(child),
        nix::unistd::ForkResult::Child => {
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(Ok(code)) => code,
                Ok(Err(e)) => {
                    let _ = sock.send(&Msg::Error(e.0));
                    1
                }
                Err(_) => {
                    let _ = sock.send(&Msg::Error("container setup panicked".into()));
                    2
                }
            };
            // SAFETY: leave the child without running the parent's destructors or atexit.
            unsafe { libc::_exit(code) }
        }
    }
}

/// What stage 1 needs.
pub struct Stage1<'a> {
    pub plan: &'a NsPlan,
    pub spec: &'a Spec,
    pub sock: &'a SyncSocket,
}

/// Stage 1: namespaces, then fork the init (which runs `init`) and report its PID.
pub fn stage1(s: Stage1, init: impl FnOnce() -> Result<i32, InitError>) -> Result<i32, InitError> {
    s.sock
        .expect(Msg::Go, "Go")
        .map_err(ctx!("wait for parent"))?;
    namespaces::join(s.plan).map_err(|e| InitError(e.to_string()))?;
    if s.plan.new_user {
        namespaces::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
            .map_err(|e| InitError(e.to_string()))?;
        s.sock.send(&Msg::UsernsReady).map_err(ctx!("sync"))?;
        s.sock
            .expect(Msg::MapsDone, "MapsDone")
            .map_err(ctx!("wait for id maps"))?;
        become_root_in_userns()?;
    } else if s
        .plan
        .join
        .iter()
        .any(|(t, _)| *t == LinuxNamespaceType::User)
    {
        become_root_in_userns()?;
    }
    namespaces::unshare(s.plan.unshare).map_err(|e| InitError(e.to_string()))?;
    if s.plan
        .unshare
        .contains(namespaces::flag(LinuxNamespaceType::Time))
        && let Some(linux) = s.spec.linux()
    {
        namespaces::write_time_offsets(linux).map_err(|e| InitError(e.to_string()))?;
    }
    let pid = fork_child(s.sock, init).map_err(ctx!("fork container init"))?;
    s.sock
        .send(&Msg::InitPid(pid.as_raw()))
        .map_err(ctx!("sync"))?;
    Ok(0)
}

fn become_root_in_userns() -> Result<(), InitError> {
    let root_u = nix::unistd::Uid::from_raw(0);
    let root_g = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root_g, root_g, root_g).map_err(ctx!(
        "setgid 0 in the user namespace (is container gid 0 mapped?)"
    ))?;
    nix::unistd::setresuid(root_u, root_u, root_u).map_err(ctx!(
        "setuid 0 in the user namespace (is container uid 0 mapped?)"
    ))?;
    Ok(())
}

/// What the container's init needs.
pub struct Init<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub sock: &'a SyncSocket,
    /// The read side of the exec FIFO (non-blocking), opened by the runtime.
    pub fifo: &'a OwnedFd,
    pub console: Option<&'a UnixStream>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// ID-mapped mounts the runtime made on the host, to move into place.
    pub idmapped: &'a rootfs::idmap::IdmappedMounts,
}

/// The container's init, up to `execve` of the user's program.
pub fn init(a: Init) -> Result<Infallible, InitError> {
    // Stage 1 reports our PID on the same socket; wait until the parent has it, so our
    // messages never overtake that one.
    a.sock
        .expect(Msg::Go, "Go")
        .map_err(ctx!("wait for parent"))?;
    let process = a
        .spec
        .process()
        .as_ref()
        .expect("validated: process present");
    let linux = a.spec.linux().as_ref().expect("validated: linux present");
    let has_new = |t| {
        linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == t && n.path().is_none())
    };
    // Not dumpable: nothing in the container may ptrace this process or read its
    // descriptors while it waits in the created state.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };

    if has_new(LinuxNamespaceType::Network) {
        loopback_up().map_err(ctx!("bring up lo"))?;
    }
    let cfg = rootfs::RootfsConfig {
        spec: a.spec,
        rootfs: a.rootfs,
        bundle: a.bundle,
        no_pivot: a.no_pivot,
        console_slave: None,
        idmapped: Some(a.idmapped),
    };
    rootfs::prepare(&cfg).map_err(ctx!("rootfs"))?;

    a.sock.send(&Msg::RunHooks).map_err(ctx!("sync"))?;
    let state = match a.sock.recv().map_err(ctx!("sync"))? {
        Msg::HooksDone(state) => state,
        other => return Err(InitError(format!("sync: unexpected {other:?}"))),
    };
    if let Some(h) = a
        .spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().clone())
    {
        hooks::run_hooks("createContainer", &h, state.as_bytes())
            .map_err(ctx!("createContainer hook"))?;
    }

    // The seccomp agent's socket is a host path: connect while it is still reachable.
    let agent = match a.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(sec) => seccomp::connect_agent(sec).map_err(ctx!("linux.seccomp"))?,
        None => None,
    };
    rootfs::pivot(&cfg).map_err(ctx!("pivot_root"))?;

    if process.terminal().unwrap_or(false) {
        let sock = a
            .console
            .ok_or_else(|| InitError("process.terminal needs --console-socket".into()))?;
        setup_terminal(process, sock)?;
    }
    if let Some(h) = a.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).map_err(ctx!("sethostname"))?;
    }
    if let Some(d) = a.spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        // SAFETY: setdomainname reads len bytes of a live buffer.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(InitError(format!(
                "setdomainname: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    for (k, v) in linux.sysctl().iter().flatten() {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        std::fs::write(&path, v.as_bytes())
            .map_err(|e| InitError(format!("sysctl {k}={v}: {e}")))?;
    }
    rootfs::finalize(&cfg).map_err(ctx!("rootfs"))?;

    if !a.no_new_keyring {
        join_session_keyring(a.id)?;
    }
    if let Some(p) = linux.personality() {
        crate::sched::set_personality(p).map_err(|e| InitError(e.to_string()))?;
    }
    if let Some(adj) = process.oom_score_adj() {
        rlimits::set_oom_score_adj(None, adj).map_err(ctx!("process.oomScoreAdj"))?;
    }
    let sec = a
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(seccomp::compile)
        .transpose()
        .map_err(ctx!("linux.seccomp"))?;
    let (early_seccomp, late_seccomp) = if process.no_new_privileges().unwrap_or(false) {
        (None, sec)
    } else {
        (sec, None)
    };
    finish_process(process, early_seccomp, |f| {
        load_seccomp(f, a.spec, state.as_bytes(), agent.as_ref())
    })?;
    let target = process::exec_target(process).map_err(|e| InitError(e.to_string()))?;

    a.sock.send(&Msg::Ready).map_err(ctx!("sync"))?;
    wait_for_start(a.fifo)?;

    if let Some(h) = a
        .spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().clone())
    {
        hooks::run_hooks("startContainer", &h, state.as_bytes())
            .map_err(ctx!("startContainer hook"))?;
    }
    if let Some(f) = late_seccomp {
        load_seccomp(f, a.spec, state.as_bytes(), agent.as_ref())?;
    }
    process::cloexec_from(3 + a.preserve_fds).map_err(|e| InitError(e.to_string()))?;
    process::reset_signals();
    Err(InitError(process::exec(&target).to_string()))
}

/// Blocks until `start` writes its byte into the exec FIFO (whose read side we hold).
fn wait_for_start(fifo: &OwnedFd) -> Result<(), InitError> {
    loop {
        let mut fds = [nix::poll::PollFd::new(
            fifo.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(InitError(format!("wait on exec fifo: {e}"))),
            Ok(_) => {}
        }
        let mut b = [0u8; 1];
        match nix::unistd::read(fifo, &mut b) {
            Ok(1) => return Ok(()),
            // No writer yet (or a writer that went away without writing): keep waiting.
            Ok(_) | Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(e) => return Err(InitError(format!("read exec fifo: {e}"))),
        }
    }
}

/// rlimits, no_new_privs, the early seccomp filter, user and capabilities, cwd: the
/// steps an init and an exec'd process share, in runc's order. `load_early` loads the
/// early seccomp filter and hands its listener fd on (the init to the agent, exec'd
/// processes to their parent).
pub fn finish_process(
    process: &Process,
    early_seccomp: Option<seccomp::Filter>,
    load_early: impl FnOnce(seccomp::Filter) -> Result<(), InitError>,
) -> Result<(), InitError> {
    if let Some(r) = process.rlimits().as_deref().filter(|r| !r.is_empty()) {
        rlimits::apply(r).map_err(ctx!("process.rlimits"))?;
    }
    if let Some(io) = process.io_priority() {
        crate::sched::set_ioprio(io.class(), io.priority())
            .map_err(|e| InitError(e.to_string()))?;
    }
    if let Some(s) = process.scheduler() {
        crate::sched::set_scheduler(s).map_err(|e| InitError(e.to_string()))?;
    }
    if process.no_new_privileges().unwrap_or(false) {
        process::set_no_new_privs().map_err(|e| InitError(e.to_string()))?;
    }
    if let Some(f) = early_seccomp {
        load_early(f)?;
    }
    if let Some(c) = process.capabilities() {
        capabilities::apply_bounding(c).map_err(ctx!("process.capabilities"))?;
    }
    process::set_user(process.user()).map_err(|e| InitError(e.to_string()))?;
    if let Some(c) = process.capabilities() {
        // Ambient capabilities the kernel refuses are skipped, as runc does.
        capabilities::apply_after_setuid(c).map_err(ctx!("process.capabilities"))?;
    }
    process::chdir(process.cwd()).map_err(|e| InitError(e.to_string()))?;
    Ok(())
}

fn load_seccomp(
    f: seccomp::Filter,
    spec: &Spec,
    state: &[u8],
    agent: Option<&UnixStream>,
) -> Result<(), InitError> {
    let listener = f.load().map_err(ctx!("load seccomp filter"))?;
    if let Some(fd) = listener {
        let sec = spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .expect("a listener fd comes from a seccomp config");
        let path = sec
            .listener_path()
            .as_ref()
            .ok_or_else(|| InitError("linux.seccomp: SCMP_ACT_NOTIFY needs listenerPath".into()))?;
        let meta = sec.listener_metadata().as_deref();
        match agent {
            Some(stream) => {
                let pid = seccomp::pid_of_state(state).map_err(ctx!("send seccomp listener"))?;
                seccomp::send_listener_fd_on(stream, path, meta, fd.as_fd(), state, pid)
            }
            None => seccomp::send_listener_fd(path, meta, fd.as_fd(), state),
        }
        .map_err(ctx!("send seccomp listener"))?;
    }
    Ok(())
}

/// Creates the pty inside the container, hands the master to the console socket, binds
/// the slave on /dev/console and makes it our stdio and controlling terminal.
fn setup_terminal(process: &Process, sock: &UnixStream) -> Result<(), InitError> {
    let (master, slave) = console::open_pty().map_err(|e| InitError(e.to_string()))?;
    if let Some(b) = process.console_size() {
        console::set_size(
            master.as_raw_fd(),
            b.height().min(u16::MAX as u64) as u16,
            b.width().min(u16::MAX as u64) as u16,
        )
        .map_err(|e| InitError(e.to_string()))?;
    }
    bind_dev_console(&slave)?;
    console::send_fd(sock, &slave, master.as_raw_fd()).map_err(|e| InitError(e.to_string()))?;
    drop(master);
    console::become_session_leader_on(&slave).map_err(|e| InitError(e.to_string()))?;
    Ok(())
}

fn bind_dev_console(slave: &str) -> Result<(), InitError> {
    let console = Path::new("/dev/console");
    if std::fs::symlink_metadata(console).is_err() {
        File::create(console).map_err(|e| InitError(format!("create /dev/console: {e}")))?;
    }
    nix::mount::mount(
        Some(slave),
        console,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(ctx!("bind pty on /dev/console"))
}

/// Brings the loopback interface of a new network namespace up, as runc does.
fn loopback_up() -> Result<(), String> {
    // SAFETY: a datagram socket only used for interface ioctls, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: ifreq is plain data; the name fits; the ioctls read and write it.
    let res = unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(std::io::Error::last_os_error().to_string())
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
                Err(std::io::Error::last_os_error().to_string())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    res
}

/// Joins a new session keyring named after the container, as runc does, so containers
/// do not share the host's keys.
fn join_session_keyring(id: &str) -> Result<(), InitError> {
    let name = CString::new(format!("_ses.{id}")).expect("validated ids have no NUL");
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl with a NUL-terminated name that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        // Kernels without keys, or that refuse it in a user namespace: runc goes on too.
        if !matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::EACCES) | Some(libc::EPERM)
        ) {
            return Err(InitError(format!("join session keyring: {e}")));
        }
    }
    Ok(())
}
