//! Peak RSS of one command, measured without the measurer's own memory.
//!
//! `wait4`'s `ru_maxrss` covers every address space a process had, and on `execve`
//! the kernel folds the old one's high-water mark in. A child spawned straight from
//! the benchmark (vfork + exec) therefore reports at least the benchmark's own peak.
//! So the benchmark runs each measured command through this trampoline: a fresh
//! `berth-conformance __maxrss OUT PROG ARGS...` process, small because it has just
//! started, forks (a new process, so a new high-water record) and execs PROG in the
//! child, then writes the child's `ru_maxrss` (KiB) to OUT and exits with its status.
//! What it copies into the child at fork is the floor below which nothing can be
//! seen; [`floor_kb`] measures it with a static busybox.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};

/// The hidden first argument that selects the trampoline.
pub const TRAMPOLINE: &str = "__maxrss";

/// The trampoline's main, before any argument parsing or thread: `args` are
/// `OUT PROG ARGS...`.
pub fn trampoline(args: &[OsString]) -> ExitCode {
    match run_trampoline(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth-conformance {TRAMPOLINE}: {e:#}");
            ExitCode::from(125)
        }
    }
}

fn run_trampoline(args: &[OsString]) -> anyhow::Result<ExitCode> {
    let [out, prog, rest @ ..] = args else {
        bail!("usage: {TRAMPOLINE} OUT PROG [ARGS...]");
    };
    let cstr = |s: &OsString| CString::new(s.as_bytes()).context("argument holds a NUL byte");
    let prog_c = cstr(prog)?;
    let mut argv = vec![prog_c.clone()];
    for a in rest {
        argv.push(cstr(a)?);
    }
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    // SAFETY: single-threaded here (called first thing in main); the child only
    // calls async-signal-safe execvp and _exit on pointers prepared before fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: argv_ptrs is NUL-terminated and points into live CStrings.
        unsafe {
            libc::execvp(prog_c.as_ptr(), argv_ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 overwrites it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 on our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            bail!("wait4: {e}");
        }
    }
    std::fs::write(Path::new(out), ru.ru_maxrss.to_string())
        .with_context(|| format!("writing {}", Path::new(out).display()))?;
    Ok(exit_code(status))
}

/// The exit code a shell would give for a wait status.
pub fn exit_code(status: i32) -> ExitCode {
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        125
    };
    ExitCode::from(u8::try_from(code).unwrap_or(125))
}

/// A command that runs `prog` through the trampoline, writing its peak RSS to `out`.
pub fn command(prog: &Path, out: &Path) -> anyhow::Result<Command> {
    let me = std::env::current_exe().context("finding berth-conformance's own path")?;
    let mut c = Command::new(me);
    c.arg(TRAMPOLINE).arg(out).arg(prog);
    Ok(c)
}

/// Reads what the trampoline wrote.
pub fn read(out: &Path) -> anyhow::Result<u64> {
    let t = std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    let kb = t
        .trim()
        .parse()
        .with_context(|| format!("{} holds {t:?}", out.display()))?;
    let _ = std::fs::remove_file(out);
    Ok(kb)
}

/// The trampoline's floor: the peak RSS it reports for a static busybox `true`.
pub fn floor_kb(scratch: &Path) -> anyhow::Result<u64> {
    let out = scratch.join("maxrss-floor");
    let status = command(Path::new("/bin/busybox"), &out)?
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running busybox true through the trampoline")?;
    if !status.success() {
        bail!("busybox true through the trampoline failed: {status}");
    }
    read(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(0), ExitCode::from(0));
        assert_eq!(exit_code(3 << 8), ExitCode::from(3));
        assert_eq!(exit_code(libc::SIGKILL), ExitCode::from(137));
    }

    #[test]
    fn trampoline_refuses_missing_arguments() {
        assert!(run_trampoline(&[]).is_err());
        assert!(run_trampoline(&["out".into()]).is_err());
    }
}
