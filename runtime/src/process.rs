//! The last steps before a container process runs its program, shared by a container's
//! init and `exec`: user and groups, umask, the program's path, fd hygiene, execve.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Process, User};

/// The PATH used when the process's env has none (runc's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors in the final steps.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("process: {0:?} contains a NUL byte")]
    Nul(String),
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("{op}: {source}")]
    Sys { op: String, source: nix::Error },
}

fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> ProcessError {
    let op = op.into();
    move |source| ProcessError::Sys { op, source }
}

/// A program ready for execve.
#[derive(Debug)]
pub struct ExecTarget {
    pub path: CString,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
}

fn cstr(s: &str) -> Result<CString, ProcessError> {
    CString::new(s).map_err(|_| ProcessError::Nul(s.to_string()))
}

/// The PATH value in an env list, or the default. Pure.
pub fn path_of(env: &[String]) -> &str {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// Finds the program as execvp would, using `is_exec` to test candidates. Pure but for
/// the callback.
pub fn lookup(prog: &str, path: &str, is_exec: impl Fn(&Path) -> bool) -> Option<String> {
    if prog.contains('/') {
        return Some(prog.to_string());
    }
    path.split(':')
        .map(|d| if d.is_empty() { "." } else { d })
        .map(|d| format!("{d}/{prog}"))
        .find(|c| is_exec(Path::new(c)))
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Ok(m) => m.is_file() && m.permissions().mode() & 0o111 != 0,
        Err(_) => false,
    }
}

/// Resolves `process.args[0]` in the current root and builds the execve arguments.
pub fn exec_target(process: &Process) -> Result<ExecTarget, ProcessError> {
    let args = process.args().as_deref().unwrap_or_default();
    let prog = args
        .first()
        .ok_or_else(|| ProcessError::NotFound(String::new()))?;
    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let path = lookup(prog, path_of(&env), executable)
        .ok_or_else(|| ProcessError::NotFound(prog.clone()))?;
    Ok(ExecTarget {
        path: cstr(&path)?,
        args: args.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?,
        env: env.iter().map(|e| cstr(e)).collect::<Result<_, _>>()?,
    })
}

/// Sets supplementary groups, gid and uid (with capabilities kept across the uid change
/// so `capabilities::apply` can set them afterwards), and the umask.
pub fn set_user(user: &User) -> Result<(), ProcessError> {
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups is refused in a user namespace whose setgroups file says deny; only
    // call it when there is something to set or something to clear.
    match nix::unistd::setgroups(&gids) {
        Ok(()) => {}
        Err(nix::Error::EPERM) if gids.is_empty() => {}
        Err(e) => return Err(sys("setgroups")(e)),
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).map_err(sys(format!("setgid {}", user.gid())))?;
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).map_err(sys(format!("setuid {}", user.uid())))?;
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    Ok(())
}

/// Sets no_new_privs.
pub fn set_no_new_privs() -> Result<(), ProcessError> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(sys("set no_new_privs")(nix::Error::last()));
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec, so only stdio and the
/// preserved fds reach the container's program.
pub fn cloexec_from(first: u32) -> Result<(), ProcessError> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        return Err(sys("close_range")(nix::Error::last()));
    }
    Ok(())
}

/// Restores what Rust's runtime and berth changed in signal handling (SIGPIPE ignored,
/// a blocked mask), which execve would otherwise pass on.
pub fn reset_signals() {
    // SAFETY: plain signal syscalls on this single-threaded process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// execve; returns only on failure.
pub fn exec(t: &ExecTarget) -> ProcessError {
    let args: Vec<&CStr> = t.args.iter().map(|a| a.as_c_str()).collect();
    let env: Vec<&CStr> = t.env.iter().map(|a| a.as_c_str()).collect();
    match nix::unistd::execve(&t.path, &args, &env) {
        Err(e) => sys(format!(
            "exec {}",
            String::from_utf8_lossy(t.path.as_bytes())
        ))(e),
    }
}

/// chdir into the process's cwd (inside the container root).
pub fn chdir(cwd: &Path) -> Result<(), ProcessError> {
    nix::unistd::chdir(cwd).map_err(sys(format!(
        "chdir to cwd {:?}",
        String::from_utf8_lossy(cwd.as_os_str().as_bytes())
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_lookup_follows_execvp() {
        let exists = |p: &Path| p == Path::new("/bin/sh") || p == Path::new("/usr/bin/env");
        assert_eq!(
            lookup("sh", "/usr/bin:/bin", exists).as_deref(),
            Some("/bin/sh")
        );
        assert_eq!(
            lookup("env", "/usr/bin:/bin", exists).as_deref(),
            Some("/usr/bin/env")
        );
        assert_eq!(lookup("nope", "/usr/bin:/bin", exists), None);
        assert_eq!(lookup("./x", "/bin", exists).as_deref(), Some("./x"));
        assert_eq!(lookup("/abs/y", "", exists).as_deref(), Some("/abs/y"));
    }

    #[test]
    fn path_comes_from_env_or_default() {
        assert_eq!(path_of(&["A=b".into(), "PATH=/x".into()]), "/x");
        assert_eq!(path_of(&[]), DEFAULT_PATH);
    }
}
