//! Root integration tests of the process-security modules on the real kernel: seccomp,
//! capabilities, rlimits, oomScoreAdj, hooks, and the generated default spec run by runc.
//!
//! Everything that changes the calling process (a seccomp filter, capabilities, limits)
//! runs in a forked child that only does that work and `_exit`s with a code; the parent
//! asserts. Run with `cargo nextest run -p berth-runtime --test secure` (one process per
//! test) or `cargo test -p berth-runtime --test secure -- --test-threads=1`.

use std::collections::HashSet;
use std::io::{IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use berth_runtime::{capabilities, hooks, rlimits, seccomp, specgen};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};
use oci_spec::runtime::{Hook, LinuxCapabilities, LinuxSeccomp, PosixRlimit};

// ---------------------------------------------------------------- fixtures

/// Runs the tests of this file one at a time even under `cargo test`'s thread pool, so
/// no other test thread is busy (holding allocator locks) when one forks.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A temporary directory removed on drop, even when the test fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "berth-secure-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Forks; the child runs `work` and `_exit`s 0 on Ok, 1 (after printing the reason) on
/// Err, 101 on panic. Returns the child's wait status.
fn in_child(work: impl FnOnce() -> Result<(), String>) -> WaitStatus {
    // SAFETY: the child only runs `work` and then `_exit`s; the test process is otherwise
    // idle while a test runs (nextest: one test per process).
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
                Ok(Ok(())) => 0,
                Ok(Err(msg)) => {
                    let _ = writeln!(std::io::stderr(), "child: {msg}");
                    1
                }
                Err(_) => 101,
            };
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
    }
}

fn assert_child_ok(status: WaitStatus) {
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "child failed: {status:?} (its reason is on stderr above)"
    );
}

fn no_new_privs() -> Result<(), String> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1) with the required zero arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(format!("PR_SET_NO_NEW_PRIVS: {}", Errno::last()));
    }
    Ok(())
}

fn seccomp_spec(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).expect("test seccomp spec parses")
}

fn raw_errno(rc: libc::c_long) -> Option<Errno> {
    if rc < 0 { Some(Errno::last()) } else { None }
}

// ---------------------------------------------------------------- seccomp

#[test]
fn seccomp_errno_blocks_chosen_syscalls_only() {
    let _serial = serial();
    let spec = seccomp_spec(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOTTY},
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["no_such_syscall_berth"], "action": "SCMP_ACT_KILL"},
            // getpriority(PRIO_PGRP, who) with (who & 0xff00) == 0x1200 fails with EXDEV
            {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
             "args": [{"index": 0, "value": libc::PRIO_PGRP, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 0xff00, "valueTwo": 0x1200, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }));
    let dir = TempDir::new("errno");
    let target = dir.path().join("made-by-child");
    let status = in_child(|| {
        no_new_privs()?;
        let filter = seccomp::compile(&spec).map_err(|e| e.to_string())?;
        if filter.ignored_syscalls != ["no_such_syscall_berth"] {
            return Err(format!("ignored: {:?}", filter.ignored_syscalls));
        }
        let fd = filter.load().map_err(|e| e.to_string())?;
        if fd.is_some() {
            return Err("a listener fd without NOTIFY rules".into());
        }
        match nix::unistd::getcwd() {
            Err(Errno::ENOTTY) => {}
            other => return Err(format!("getcwd: {other:?}, want ENOTTY")),
        }
        match nix::unistd::mkdir(&target, nix::sys::stat::Mode::from_bits_truncate(0o755)) {
            Err(Errno::EPERM) => {}
            other => return Err(format!("mkdir: {other:?}, want EPERM (default errnoRet)")),
        }
        // SAFETY: plain getpriority syscalls with integer arguments.
        let (hit, other_who, other_which) = unsafe {
            (
                raw_errno(libc::syscall(
                    libc::SYS_getpriority,
                    libc::PRIO_PGRP,
                    0x1234,
                )),
                raw_errno(libc::syscall(libc::SYS_getpriority, libc::PRIO_PGRP, 0)),
                raw_errno(libc::syscall(
                    libc::SYS_getpriority,
                    libc::PRIO_PROCESS,
                    0x1234,
                )),
            )
        };
        if hit != Some(Errno::EXDEV) {
            return Err(format!("getpriority(PGRP, 0x1234): {hit:?}, want EXDEV"));
        }
        if other_who.is_some() {
            return Err(format!("getpriority(PGRP, 0) must work: {other_who:?}"));
        }
        if other_which == Some(Errno::EXDEV) {
            return Err("getpriority(PROCESS, 0x1234) must not match".into());
        }
        // Everything else still works.
        let _ = nix::unistd::getpid();
        std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
        Ok(())
    });
    assert_child_ok(status);
    assert!(!target.exists(), "mkdir must have been blocked");
}

#[test]
fn seccomp_loads_without_no_new_privs_as_root_with_cap_sys_admin() {
    let _serial = serial();
    let spec = seccomp_spec(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}]
    }));
    let status = in_child(|| {
        seccomp::compile(&spec)
            .and_then(|f| f.load())
            .map_err(|e| e.to_string())?;
        match nix::unistd::getcwd() {
            Err(Errno::ENOSYS) => Ok(()),
            other => Err(format!("getcwd: {other:?}, want ENOSYS")),
        }
    });
    assert_child_ok(status);
}

#[test]
fn seccomp_kill_process_kills() {
    let _serial = serial();
    let spec = seccomp_spec(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_KILL_PROCESS"}]
    }));
    let status = in_child(|| {
        no_new_privs()?;
        seccomp::compile(&spec)
            .and_then(|f| f.load())
            .map_err(|e| e.to_string())?;
        let _ = nix::unistd::getcwd();
        Err("still alive after getcwd".into())
    });
    assert!(
        matches!(status, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
        "want death by SIGSYS, got {status:?}"
    );
}

#[test]
fn seccomp_runtime_default_blocks_privileged_syscalls() {
    let _serial = serial();
    let spec = seccomp::runtime_default();
    let status = in_child(|| {
        no_new_privs()?;
        seccomp::compile(&spec)
            .and_then(|f| f.load())
            .map_err(|e| e.to_string())?;
        let mnt = nix::mount::mount(
            Some("tmpfs"),
            "/mnt",
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
        if mnt != Err(Errno::EPERM) {
            return Err(format!("mount: {mnt:?}, want EPERM"));
        }
        let unshare = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS);
        if unshare != Err(Errno::EPERM) {
            return Err(format!("unshare: {unshare:?}, want EPERM"));
        }
        // SAFETY: clone3 with a NULL argument; the filter answers before the kernel reads it.
        let clone3 = unsafe { raw_errno(libc::syscall(libc::SYS_clone3, 0usize, 0usize)) };
        if clone3 != Some(Errno::ENOSYS) {
            return Err(format!("clone3: {clone3:?}, want ENOSYS"));
        }
        // Syscalls newer than the profile (mseal is 462 on x86_64 and aarch64) and
        // numbers no kernel has answer ENOSYS, so libc falls back, as under runc.
        for nr in [462 as libc::c_long, 1000] {
            // SAFETY: syscalls the filter refuses before the kernel looks at arguments.
            let got = unsafe { raw_errno(libc::syscall(nr, 0usize, 0usize, 0usize)) };
            if got != Some(Errno::ENOSYS) {
                return Err(format!("syscall {nr}: {got:?}, want ENOSYS"));
            }
        }
        // fork (clone without namespace flags) and ordinary work still work.
        // SAFETY: the grandchild only _exits.
        match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
            ForkResult::Child => unsafe { libc::_exit(7) },
            ForkResult::Parent { child } => match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 7)) => {}
                other => return Err(format!("grandchild: {other:?}")),
            },
        }
        nix::unistd::getcwd().map_err(|e| format!("getcwd: {e}"))?;
        Ok(())
    });
    assert_child_ok(status);
}

/// Receives one message with one fd from a connected unix stream.
fn recv_with_fd(sock: RawFd) -> (Vec<u8>, OwnedFd) {
    let mut buf = vec![0u8; 65536];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .expect("recvmsg from the runtime");
    let mut fd = None;
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS gave us a new fd that we own.
            fd = fds.first().map(|f| unsafe { OwnedFd::from_raw_fd(*f) });
        }
    }
    let n = msg.bytes;
    buf.truncate(n);
    (buf, fd.expect("an fd came with the message"))
}

#[test]
fn seccomp_notify_hands_a_working_listener_to_the_agent() {
    let _serial = serial();
    use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
    let dir = TempDir::new("notify");
    let sock = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).expect("bind agent socket");
    let target = dir.path().join("made-by-child");
    let spec = seccomp_spec(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "meta-1",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    // SAFETY: as in_child; the child only does the filter work and _exits.
    let child = match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let work = || -> Result<i32, String> {
                no_new_privs()?;
                let fd = seccomp::compile(&spec)
                    .and_then(|f| f.load())
                    .map_err(|e| e.to_string())?
                    .ok_or("no listener fd")?;
                let state = serde_json::json!({"ociVersion": "1.1.0", "id": "notify-test",
                    "status": "creating", "pid": std::process::id(), "bundle": "/b"});
                seccomp::send_listener_fd(
                    &sock,
                    Some("meta-1"),
                    fd.as_fd(),
                    state.to_string().as_bytes(),
                )
                .map_err(|e| e.to_string())?;
                drop(fd);
                let mode = nix::sys::stat::Mode::from_bits_truncate(0o755);
                if nix::unistd::mkdir(&target, mode) != Err(Errno::EXDEV) {
                    return Ok(2);
                }
                // The agent answers success without creating anything.
                if nix::unistd::mkdir(&target, mode).is_err() {
                    return Ok(3);
                }
                Ok(0)
            };
            let code = match work() {
                Ok(c) => c,
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "child: {e}");
                    1
                }
            };
            // SAFETY: end the child without running the parent's handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };
    // Kill the child if an assertion below fails, so nothing is left blocked.
    struct Reap(nix::unistd::Pid, bool);
    impl Drop for Reap {
        fn drop(&mut self) {
            if !self.1 {
                let _ = nix::sys::signal::kill(self.0, Signal::SIGKILL);
                let _ = waitpid(self.0, None);
            }
        }
    }
    let mut reap = Reap(child, false);

    let (conn, _) = listener
        .accept()
        .expect("the runtime connects to the agent");
    let (msg, notify_fd) = recv_with_fd(conn.as_raw_fd());
    let state: serde_json::Value = serde_json::from_slice(&msg).expect("state JSON");
    assert_eq!(state["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(state["metadata"], "meta-1");
    assert_eq!(state["pid"], child.as_raw());
    assert_eq!(state["state"]["id"], "notify-test");

    let answers = [
        ScmpNotifResp::new_error(0, -libc::EXDEV, ScmpNotifRespFlags::empty()),
        ScmpNotifResp::new_val(0, 0, ScmpNotifRespFlags::empty()),
    ];
    for mut answer in answers {
        let req = ScmpNotifReq::receive(notify_fd.as_raw_fd()).expect("a notification");
        assert_eq!(req.pid, child.as_raw() as u32);
        let name = req.data.syscall.get_name().expect("syscall name");
        assert!(name == "mkdir" || name == "mkdirat", "notified for {name}");
        answer.id = req.id;
        answer.respond(notify_fd.as_raw_fd()).expect("respond");
    }
    let status = waitpid(child, None).expect("waitpid");
    reap.1 = true;
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "child: {status:?}"
    );
    assert!(
        !target.exists(),
        "the agent, not the kernel, answered mkdir"
    );
}

// ---------------------------------------------------------------- capabilities

fn status_masks() -> Result<[u64; 5], String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let mut out = [u64::MAX; 5];
    for (i, key) in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"]
        .iter()
        .enumerate()
    {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .ok_or(format!("{key} missing"))?;
        let hex = line[key.len()..].trim();
        out[i] = u64::from_str_radix(hex, 16).map_err(|e| format!("{key} {hex}: {e}"))?;
    }
    Ok(out)
}

fn bits(names: &[&str]) -> u64 {
    names.iter().fold(0, |m, n| {
        let cap = capabilities::parse(n).expect("known cap");
        m | capabilities::to_kernel(cap).expect("kernel cap").bitmask()
    })
}

fn test_caps() -> LinuxCapabilities {
    serde_json::from_value(serde_json::json!({
        "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE", "SETUID", "CAP_SETGID"],
        "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_CHOWN"],
        "ambient": ["CAP_CHOWN"]
    }))
    .expect("caps parse")
}

fn check_masks() -> Result<(), String> {
    let got = status_masks()?;
    let want = [
        bits(&["CAP_CHOWN"]),
        bits(&["CAP_KILL", "CAP_CHOWN"]),
        bits(&["CAP_KILL"]),
        bits(&[
            "CAP_KILL",
            "CAP_CHOWN",
            "CAP_NET_BIND_SERVICE",
            "CAP_SETUID",
            "CAP_SETGID",
        ]),
        bits(&["CAP_CHOWN"]),
    ];
    if got != want {
        return Err(format!("Inh/Prm/Eff/Bnd/Amb: got {got:x?}, want {want:x?}"));
    }
    Ok(())
}

#[test]
fn capabilities_applied_show_in_proc_status() {
    let _serial = serial();
    let caps = test_caps();
    let status = in_child(|| {
        let refused = capabilities::apply(&caps).map_err(|e| e.to_string())?;
        if !refused.is_empty() {
            return Err(format!("ambient refused: {refused:?}"));
        }
        check_masks()
    });
    assert_child_ok(status);
}

#[test]
fn capabilities_survive_a_switch_to_a_non_root_user() {
    let _serial = serial();
    let caps = test_caps();
    let status = in_child(|| {
        capabilities::apply_bounding(&caps).map_err(|e| e.to_string())?;
        capabilities::keep_caps_before_setuid().map_err(|e| e.to_string())?;
        let id = nix::unistd::Gid::from_raw(1000);
        nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
        nix::unistd::setresgid(id, id, id).map_err(|e| format!("setresgid: {e}"))?;
        let id = nix::unistd::Uid::from_raw(1000);
        nix::unistd::setresuid(id, id, id).map_err(|e| format!("setresuid: {e}"))?;
        let refused = capabilities::apply_after_setuid(&caps).map_err(|e| e.to_string())?;
        if !refused.is_empty() {
            return Err(format!("ambient refused: {refused:?}"));
        }
        if nix::unistd::geteuid().as_raw() != 1000 {
            return Err("still root".into());
        }
        check_masks()
    });
    assert_child_ok(status);
}

#[test]
fn ambient_without_inheritable_is_reported_not_fatal() {
    let _serial = serial();
    // runc spec's default: ambient listed, inheritable not; runc warns and goes on.
    let caps: LinuxCapabilities = serde_json::from_value(serde_json::json!({
        "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
        "ambient": ["CAP_KILL"]
    }))
    .expect("caps parse");
    let status = in_child(|| {
        let refused = capabilities::apply(&caps).map_err(|e| e.to_string())?;
        if refused != ["CAP_KILL"] {
            return Err(format!("refused: {refused:?}"));
        }
        let got = status_masks()?;
        if got[4] != 0 || got[2] != bits(&["CAP_KILL"]) {
            return Err(format!("masks {got:x?}"));
        }
        Ok(())
    });
    assert_child_ok(status);
}

// ---------------------------------------------------------------- rlimits, oom

fn drop_sys_resource() -> Result<(), String> {
    // Root here lacks CAP_SYS_RESOURCE; make sure the test means the same elsewhere.
    caps::drop(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .map_err(|e| e.to_string())
}

fn rlimit(typ: &str, soft: u64, hard: u64) -> PosixRlimit {
    serde_json::from_value(serde_json::json!({"type": typ, "soft": soft, "hard": hard}))
        .expect("rlimit parses")
}

#[test]
fn rlimit_lowered_applies_and_raised_hard_limit_errors_cleanly() {
    let _serial = serial();
    let status = in_child(|| {
        drop_sys_resource()?;
        rlimits::apply(&[
            rlimit("RLIMIT_NOFILE", 64, 128),
            rlimit("RLIMIT_CORE", 0, 0),
        ])
        .map_err(|e| e.to_string())?;
        let got = rlimits::current(libc::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
        if got != (64, 128) {
            return Err(format!("NOFILE is {got:?}"));
        }
        let err = rlimits::apply(&[rlimit("RLIMIT_NOFILE", 64, 256)])
            .err()
            .ok_or("raising the hard limit succeeded")?
            .to_string();
        for want in [
            "RLIMIT_NOFILE",
            "hard=256",
            "current soft=64 hard=128",
            "CAP_SYS_RESOURCE",
        ] {
            if !err.contains(want) {
                return Err(format!("error {err:?} lacks {want:?}"));
            }
        }
        Ok(())
    });
    assert_child_ok(status);
}

#[test]
fn negative_oom_score_adj_errors_cleanly() {
    let _serial = serial();
    let status = in_child(|| {
        drop_sys_resource()?;
        rlimits::set_oom_score_adj(None, 300).map_err(|e| e.to_string())?;
        let now = std::fs::read_to_string("/proc/self/oom_score_adj").map_err(|e| e.to_string())?;
        if now.trim() != "300" {
            return Err(format!("oom_score_adj is {now}"));
        }
        let err = rlimits::set_oom_score_adj(None, -500)
            .err()
            .ok_or("a negative oom_score_adj was accepted")?
            .to_string();
        if !err.contains("-500") || !err.contains("CAP_SYS_RESOURCE") {
            return Err(format!("unclear error: {err}"));
        }
        let pid = nix::unistd::getpid().as_raw();
        rlimits::set_oom_score_adj(Some(pid), 400).map_err(|e| e.to_string())?;
        let now = std::fs::read_to_string("/proc/self/oom_score_adj").map_err(|e| e.to_string())?;
        if now.trim() != "400" {
            return Err(format!("oom_score_adj by pid is {now}"));
        }
        Ok(())
    });
    assert_child_ok(status);
}

// ---------------------------------------------------------------- hooks

fn hook(json: serde_json::Value) -> Hook {
    serde_json::from_value(json).expect("hook parses")
}

#[test]
fn hooks_get_state_on_stdin_args_env_and_no_leaked_fds() {
    let _serial = serial();
    let dir = TempDir::new("hooks");
    let d = dir.path().display().to_string();
    // A descriptor without CLOEXEC at a known number must not reach the hook.
    let leak = std::fs::File::open("/proc/self/status").expect("open");
    // SAFETY: dup2 onto an unused descriptor number; closed below.
    let leaked = unsafe { libc::dup2(leak.as_raw_fd(), 77) };
    assert_eq!(leaked, 77);
    let script = format!(
        "cat > {d}/state; echo \"$0|$1|$2\" > {d}/args; env > {d}/env; ls /proc/self/fd > {d}/fds"
    );
    let hooks = [
        hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", script, "hook-argv0", "one", "two words"],
            "env": ["HOOKVAR=hello=world", "PATH=/usr/bin:/bin"],
            "timeout": 30
        })),
        hook(serde_json::json!({"path": "/bin/true"})),
    ];
    let state = br#"{"ociVersion":"1.1.0","id":"c1","status":"creating","pid":1,"bundle":"/b"}"#;
    let result = hooks::run_hooks("createRuntime", &hooks, state);
    // SAFETY: closing the descriptor dup2 made above.
    unsafe { libc::close(77) };
    result.expect("hooks succeed");

    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).expect(f);
    assert_eq!(read("state").as_bytes(), state);
    assert_eq!(read("args").trim(), "hook-argv0|one|two words");
    let env = read("env");
    assert!(env.lines().any(|l| l == "HOOKVAR=hello=world"), "{env}");
    assert!(
        !env.lines().any(|l| l.starts_with("CARGO")),
        "the hook's env is exactly the spec's: {env}"
    );
    let fds: HashSet<String> = read("fds").lines().map(str::to_string).collect();
    let want: HashSet<String> = ["0", "1", "2", "3"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        fds, want,
        "only stdio (and ls's own directory fd) in the hook"
    );
}

#[test]
fn failing_hook_error_names_it_and_carries_stderr() {
    let _serial = serial();
    let dir = TempDir::new("hookfail");
    let marker = dir.path().join("second-ran");
    let hooks = [
        hook(serde_json::json!({"path": "/bin/sh",
            "args": ["sh", "-c", "echo first line >&2; echo boom on stderr >&2; exit 3"]})),
        hook(serde_json::json!({"path": "/bin/touch", "args": ["touch", marker]})),
    ];
    let err = hooks::run_hooks("poststart", &hooks, b"{}")
        .expect_err("exit 3 is a failure")
        .to_string();
    assert!(err.contains("poststart hook 0 (/bin/sh)"), "{err}");
    assert!(err.contains("exit status 3"), "{err}");
    assert!(err.contains("boom on stderr"), "{err}");
    assert!(!marker.exists(), "hooks after a failure do not run");

    let err = hooks::run_hooks(
        "prestart",
        &[hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "kill -9 $$"]}),
        )],
        b"{}",
    )
    .expect_err("killed hook")
    .to_string();
    assert!(err.contains("killed by signal 9"), "{err}");
}

#[test]
fn hook_past_its_timeout_is_killed_with_its_children() {
    let _serial = serial();
    let dir = TempDir::new("hooktimeout");
    let pidfile = dir.path().join("sleeper.pid");
    let script = format!("sleep 1000 & echo $! > {}; wait", pidfile.display());
    let err = hooks::run_hooks(
        "createContainer",
        &[hook(serde_json::json!({
            "path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 1
        }))],
        b"{}",
    )
    .expect_err("the hook sleeps past its timeout")
    .to_string();
    assert!(err.contains("createContainer hook 0"), "{err}");
    assert!(err.contains("timed out after 1s"), "{err}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    // The background sleeper was in the hook's process group: it dies too (it may linger
    // briefly as a zombie until init reaps it).
    let mut alive = true;
    for _ in 0..500 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().map(str::trim).unwrap_or("");
        if stat.is_empty() || state.starts_with('Z') {
            alive = false;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!alive, "the hook's child {pid} survived the timeout");
}

// ---------------------------------------------------------------- spec, features

/// Deletes the runc container even when the test fails.
struct RuncContainer<'a> {
    root: &'a Path,
    id: String,
}

impl Drop for RuncContainer<'_> {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(self.root)
            .args(["delete", "--force", &self.id])
            .output();
    }
}

fn busybox_rootfs(rootfs: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox missing: install Debian's busybox-static (apt-get install -y busybox-static)"
    );
    std::fs::create_dir_all(rootfs.join("bin")).expect("rootfs/bin");
    for d in ["proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("rootfs dir");
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
    for applet in [
        "sh", "hostname", "grep", "cat", "test", "ls", "unshare", "mount", "mkdir",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).expect("symlink");
    }
}

/// Writes `berth spec` (rootless or not) into a busybox bundle, swaps in a checking
/// command (no terminal in a test; everything else as generated) and runs it with runc.
fn run_default_spec_with_runc(rootless: bool, check: &str) {
    run_spec_with_runc(rootless, check, |_| {});
}

/// As [`run_default_spec_with_runc`], after `adjust` edits the generated spec.
fn run_spec_with_runc(rootless: bool, check: &str, adjust: impl FnOnce(&mut serde_json::Value)) {
    assert!(
        Command::new("runc").arg("--version").output().is_ok(),
        "runc missing: install Debian's runc (apt-get install -y runc)"
    );
    let dir = TempDir::new("runc");
    let bundle = dir.path().join("bundle");
    busybox_rootfs(&bundle.join("rootfs"));
    let mut spec = serde_json::to_value(specgen::default_spec(rootless)).expect("serialise");
    spec["process"]["terminal"] = serde_json::json!(false);
    adjust(&mut spec);
    let script = format!(
        "{check} || {{ hostname >&2; cat /proc/self/status /proc/self/uid_map >&2; exit 1; }}"
    );
    spec["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&spec).expect("json"),
    )
    .expect("write config.json");
    let root = dir.path().join("runc-root");
    let container = RuncContainer {
        root: &root,
        id: format!("berth-secure-{}-{rootless}", std::process::id()),
    };
    let out = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .arg("run")
        .arg("--bundle")
        .arg(&bundle)
        .arg(&container.id)
        .output()
        .expect("run runc");
    assert!(
        out.status.success(),
        "runc rejected or failed the default spec (rootless={rootless}): {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The three default capabilities (KILL, NET_BIND_SERVICE, AUDIT_WRITE) and NNP.
const DEFAULT_PROCESS_CHECK: &str = "test \"$(hostname)\" = berth && grep -q '^CapBnd:\t0000000020000420$' /proc/self/status && grep -q '^CapEff:\t0000000020000420$' /proc/self/status && grep -q '^NoNewPrivs:\t1$' /proc/self/status";

#[test]
fn default_spec_is_run_by_runc() {
    let _serial = serial();
    run_default_spec_with_runc(false, DEFAULT_PROCESS_CHECK);
}

#[test]
fn rootless_default_spec_is_run_by_runc() {
    let _serial = serial();
    let uid = nix::unistd::geteuid().as_raw();
    let check = format!("{DEFAULT_PROCESS_CHECK} && grep -Eq '^ +0 +{uid} +1$' /proc/self/uid_map");
    run_default_spec_with_runc(true, &check);
}

#[test]
fn features_and_spec_round_trip_through_oci_spec() {
    let _serial = serial();
    let spec = specgen::default_spec(true);
    let text = serde_json::to_string(&spec).expect("serialise");
    let back: oci_spec::runtime::Spec = serde_json::from_str(&text).expect("parse");
    assert_eq!(spec, back);
    let uid = nix::unistd::geteuid().as_raw();
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["linux"]["uidMappings"][0]["hostID"], uid);
    let f: oci_spec::runtime::Features =
        serde_json::from_value(specgen::features()).expect("features schema");
    assert!(f.hooks().as_ref().is_some_and(|h| h.len() == 6));
}

#[test]
fn every_seccomp_action_behaves_on_the_kernel() {
    let _serial = serial();
    // (action, errnoRet, expected outcome of getcwd in the child)
    enum Want {
        Works,
        Fails(Errno),
        DiesBy(Signal),
    }
    let cases: &[(&str, Option<i32>, Want)] = &[
        ("SCMP_ACT_ALLOW", None, Want::Works),
        ("SCMP_ACT_LOG", None, Want::Works),
        (
            "SCMP_ACT_ERRNO",
            Some(libc::EROFS),
            Want::Fails(Errno::EROFS),
        ),
        ("SCMP_ACT_ERRNO", None, Want::Fails(Errno::EPERM)),
        // without a tracer attached the kernel fails the syscall with ENOSYS
        ("SCMP_ACT_TRACE", Some(5), Want::Fails(Errno::ENOSYS)),
        ("SCMP_ACT_TRAP", None, Want::DiesBy(Signal::SIGSYS)),
        ("SCMP_ACT_KILL", None, Want::DiesBy(Signal::SIGSYS)),
        ("SCMP_ACT_KILL_THREAD", None, Want::DiesBy(Signal::SIGSYS)),
        ("SCMP_ACT_KILL_PROCESS", None, Want::DiesBy(Signal::SIGSYS)),
    ];
    for (action, errno_ret, want) in cases {
        let mut rule = serde_json::json!({"names": ["getcwd"], "action": action});
        if let Some(e) = errno_ret {
            rule["errnoRet"] = serde_json::json!(e);
        }
        let spec = seccomp_spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]
        }));
        let status = in_child(|| {
            no_new_privs()?;
            seccomp::compile(&spec)
                .and_then(|f| f.load())
                .map_err(|e| e.to_string())?;
            match (nix::unistd::getcwd(), want) {
                (Ok(_), Want::Works) => Ok(()),
                (Err(e), Want::Fails(w)) if e == *w => Ok(()),
                (got, _) => Err(format!("{action}: getcwd gave {got:?}")),
            }
        });
        match want {
            Want::DiesBy(sig) => assert!(
                matches!(status, WaitStatus::Signaled(_, s, _) if s == *sig),
                "{action}: {status:?}"
            ),
            _ => assert!(
                matches!(status, WaitStatus::Exited(_, 0)),
                "{action}: {status:?}"
            ),
        }
    }
}

#[test]
fn hooks_take_a_large_state_whether_they_read_it_or_not() {
    let _serial = serial();
    let dir = TempDir::new("hookbig");
    let count = dir.path().join("count");
    // Larger than a pipe buffer: the runtime must not block on a hook that ignores it.
    let mut state = b"{\"pad\":\"".to_vec();
    state.extend(std::iter::repeat_n(b'x', 1 << 20));
    state.extend(b"\"}");
    let hooks = [
        hook(serde_json::json!({"path": "/bin/true", "timeout": 60})),
        hook(serde_json::json!({"path": "/bin/sh",
            "args": ["sh", "-c", format!("wc -c > {}", count.display())], "timeout": 60})),
    ];
    hooks::run_hooks("prestart", &hooks, &state).expect("both hooks succeed");
    let n: usize = std::fs::read_to_string(&count)
        .expect("count")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(n, state.len());
}

#[test]
fn capability_the_runtime_lacks_is_a_clear_error() {
    let _serial = serial();
    let caps: LinuxCapabilities = serde_json::from_value(serde_json::json!({
        "bounding": ["CAP_KILL", "CAP_SYS_RESOURCE"],
        "effective": ["CAP_KILL", "CAP_SYS_RESOURCE"],
        "permitted": ["CAP_KILL", "CAP_SYS_RESOURCE"]
    }))
    .expect("caps parse");
    let status = in_child(|| {
        // Make the test mean the same on hosts whose root holds CAP_SYS_RESOURCE.
        drop_sys_resource()?;
        caps::drop(
            None,
            caps::CapSet::Permitted,
            caps::Capability::CAP_SYS_RESOURCE,
        )
        .map_err(|e| e.to_string())?;
        let err = capabilities::apply(&caps)
            .err()
            .ok_or("capset granted a capability the process lacks")?
            .to_string();
        if !err.contains("the runtime lacks CAP_SYS_RESOURCE") {
            return Err(format!("unclear error: {err}"));
        }
        Ok(())
    });
    assert_child_ok(status);
}

#[test]
fn runtime_default_profile_runs_a_shell_under_runc() {
    let _serial = serial();
    // The built-in RuntimeDefault, given to runc: a shell works (fork, exec, files), the
    // filter is on, and privileged syscalls are refused.
    let profile = serde_json::to_value(seccomp::runtime_default()).expect("serialise");
    let check = "grep -q '^Seccomp:\t2$' /proc/self/status && ls / >/dev/null && \
                 (cat /proc/self/status | grep -q '^Name') && mkdir /tmp/x && \
                 ! unshare -U true 2>/dev/null && ! mount -t tmpfs t /tmp/x 2>/dev/null";
    run_spec_with_runc(false, check, |spec| {
        spec["linux"]["seccomp"] = profile;
        spec["root"]["readonly"] = serde_json::json!(false);
    });
}
