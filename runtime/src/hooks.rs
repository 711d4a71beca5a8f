//! Lifecycle hooks (runtime-spec `config.md#posix-platform-hooks`): each hook is run with
//! its `path`, `args` (argv, including argv\[0\]) and `env`, the container state JSON on
//! stdin, and killed (with everything in its process group) when its `timeout` passes.
//!
//! As in runc, a hook without `env` inherits the runtime's environment. Only stdin,
//! stdout and stderr reach the hook: every other descriptor is marked close-on-exec in
//! the child before `execve`, whatever its origin. A hook that closes stdin unread is
//! fine, provided SIGPIPE is ignored in the caller (Rust binaries ignore it at startup).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

/// How much of a failing hook's stderr goes into the error.
const STDERR_TAIL: usize = 4096;
/// `close_range` flag: mark close-on-exec instead of closing.
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Errors of the hooks module; each names the hook kind, its index and path.
#[derive(Debug, thiserror::Error)]
pub enum HooksError {
    /// `path` is not absolute, as the spec requires.
    #[error("{kind} hook {index} ({path}): path must be absolute")]
    RelativePath {
        /// Hook kind, e.g. `createRuntime`.
        kind: String,
        /// Index in that kind's list.
        index: usize,
        /// The hook's path.
        path: String,
    },
    /// `timeout` is zero or negative.
    #[error("{kind} hook {index} ({path}): timeout {timeout} must be greater than zero")]
    BadTimeout {
        /// Hook kind.
        kind: String,
        /// Index in that kind's list.
        index: usize,
        /// The hook's path.
        path: String,
        /// The value given.
        timeout: i64,
    },
    /// The hook could not be started.
    #[error("{kind} hook {index} ({path}): cannot run: {source}")]
    Spawn {
        /// Hook kind.
        kind: String,
        /// Index in that kind's list.
        index: usize,
        /// The hook's path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The hook ran past its timeout and was killed.
    #[error("{kind} hook {index} ({path}): timed out after {timeout}s and was killed{stderr}")]
    Timeout {
        /// Hook kind.
        kind: String,
        /// Index in that kind's list.
        index: usize,
        /// The hook's path.
        path: String,
        /// The timeout in seconds.
        timeout: i64,
        /// `; stderr: ...` tail, or empty.
        stderr: String,
    },
    /// The hook exited non-zero or was killed by a signal.
    #[error("{kind} hook {index} ({path}): {status}{stderr}")]
    Failed {
        /// Hook kind.
        kind: String,
        /// Index in that kind's list.
        index: usize,
        /// The hook's path.
        path: String,
        /// `exit status N` or `killed by signal N`.
        status: String,
        /// `; stderr: ...` tail, or empty.
        stderr: String,
    },
    /// Talking to the hook (pipes, poll, wait) failed.
    #[error("{kind} hook {index} ({path}): {op}: {source}")]
    Io {
        /// Hook kind.
        kind: String,
        /// Index in that kind's list.
        index: usize,
        /// The hook's path.
        path: String,
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, HooksError>;

/// Runs `hooks` in order, each with `state_json` on stdin; stops at the first failure.
/// `kind` (e.g. `createRuntime`) only names the hooks in errors.
pub fn run_hooks(kind: &str, hooks: &[Hook], state_json: &[u8]) -> Result<()> {
    for (index, hook) in hooks.iter().enumerate() {
        run_hook(kind, index, hook, state_json)?;
    }
    Ok(())
}

/// Splits `KEY=VALUE` entries; an entry without `=` is skipped (it cannot be passed on).
pub fn parse_env(env: &[String]) -> Vec<(&str, &str)> {
    env.iter().filter_map(|e| e.split_once('=')).collect()
}

/// Keeps the last `max` bytes of everything pushed.
#[derive(Debug, Default)]
struct Tail {
    buf: Vec<u8>,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        if self.buf.len() > STDERR_TAIL {
            let cut = self.buf.len() - STDERR_TAIL;
            self.buf.drain(..cut);
        }
    }

    fn describe(&self) -> String {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            format!("; stderr: {text}")
        }
    }
}

/// Formats an exit status as runc does: `exit status N` or `killed by signal N`.
pub fn describe_status(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => format!("{status}"),
    }
}

fn run_hook(kind: &str, index: usize, hook: &Hook, state: &[u8]) -> Result<()> {
    let path = hook.path().display().to_string();
    let ids = || (kind.to_string(), index, path.clone());
    if !hook.path().is_absolute() {
        let (kind, index, path) = ids();
        return Err(HooksError::RelativePath { kind, index, path });
    }
    let timeout = match hook.timeout() {
        Some(t) if t <= 0 => {
            let (kind, index, path) = ids();
            return Err(HooksError::BadTimeout {
                kind,
                index,
                path,
                timeout: t,
            });
        }
        Some(t) => Some(t),
        None => None,
    };
    let io = |op: &'static str| {
        let (kind, index, path) = ids();
        move |source: std::io::Error| HooksError::Io {
            kind,
            index,
            path,
            op,
            source,
        }
    };

    let mut cmd = Command::new(hook.path());
    if let Some((argv0, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(argv0).args(rest);
    }
    if let Some(env) = hook.env() {
        cmd.env_clear();
        cmd.envs(parse_env(env));
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure only makes the async-signal-safe close_range syscall.
    unsafe {
        cmd.pre_exec(|| {
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| {
        let (kind, index, path) = ids();
        HooksError::Spawn {
            kind,
            index,
            path,
            source,
        }
    })?;
    let pid = child.id() as libc::pid_t;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    for fd in [
        stdin.as_ref().map(|f| f.as_raw_fd()),
        stdout.as_ref().map(|f| f.as_raw_fd()),
        stderr.as_ref().map(|f| f.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(fd).map_err(io("setting a pipe non-blocking"))?;
    }
    // SAFETY: pidfd_open on our own unreaped child; the result is checked.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        let err = std::io::Error::last_os_error();
        kill_group(pid);
        let _ = child.wait();
        return Err(io("pidfd_open")(err));
    }
    // SAFETY: pidfd_open returned a new fd that we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };

    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut written = 0usize;
    let mut err_tail = Tail::default();
    let mut scratch = [0u8; 8192];
    let mut exited = false;
    while !exited {
        let mut fds = vec![libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let slot = |f: Option<RawFd>, ev: libc::c_short, fds: &mut Vec<libc::pollfd>| {
            f.map(|fd| {
                fds.push(libc::pollfd {
                    fd,
                    events: ev,
                    revents: 0,
                });
                fds.len() - 1
            })
        };
        let in_slot = slot(
            stdin.as_ref().map(|f| f.as_raw_fd()),
            libc::POLLOUT,
            &mut fds,
        );
        let out_slot = slot(
            stdout.as_ref().map(|f| f.as_raw_fd()),
            libc::POLLIN,
            &mut fds,
        );
        let err_slot = slot(
            stderr.as_ref().map(|f| f.as_raw_fd()),
            libc::POLLIN,
            &mut fds,
        );
        let wait_ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    kill_group(pid);
                    let _ = child.wait();
                    let (kind, index, path) = ids();
                    return Err(HooksError::Timeout {
                        kind,
                        index,
                        path,
                        timeout: timeout.unwrap_or(0),
                        stderr: err_tail.describe(),
                    });
                }
                i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX)
            }
        };
        // SAFETY: fds is a valid array of pollfd of the given length.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == ErrorKind::Interrupted {
                continue;
            }
            kill_group(pid);
            let _ = child.wait();
            return Err(io("poll")(err));
        }
        if let Some(i) = in_slot
            && fds[i].revents != 0
            && let Some(pipe) = stdin.as_mut()
        {
            match pipe.write(&state[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // The hook closed stdin without reading it all: its business.
                Err(_) => written = state.len(),
            }
            if written >= state.len() {
                stdin = None;
            }
        }
        if let Some(i) = out_slot
            && fds[i].revents != 0
            && drain(&mut stdout, &mut scratch, |_| {})
        {
            stdout = None;
        }
        if let Some(i) = err_slot
            && fds[i].revents != 0
            && drain(&mut stderr, &mut scratch, |d| err_tail.push(d))
        {
            stderr = None;
        }
        exited = fds[0].revents != 0;
    }
    // Collect what the hook wrote before exiting; descendants still holding the pipes
    // open are not waited for.
    drain(&mut stderr, &mut scratch, |d| err_tail.push(d));
    drop((stdin, stdout, stderr));
    let status = child.wait().map_err(io("waiting for the hook"))?;
    if status.success() {
        return Ok(());
    }
    let (kind, index, path) = ids();
    Err(HooksError::Failed {
        kind,
        index,
        path,
        status: describe_status(status),
        stderr: err_tail.describe(),
    })
}

/// Reads what is available without blocking; returns true at end of file or on error.
fn drain<R: Read>(pipe: &mut Option<R>, buf: &mut [u8], mut sink: impl FnMut(&[u8])) -> bool {
    let Some(r) = pipe.as_mut() else {
        return true;
    };
    loop {
        match r.read(buf) {
            Ok(0) => return true,
            Ok(n) => sink(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a pipe fd we own, with valid commands.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// SIGKILL to the hook's process group (it leads its own group).
fn kill_group(pid: libc::pid_t) {
    // SAFETY: kill with a negative pid signals the group the hook leads; failure (the
    // group is already gone) is harmless.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_entries_split_on_first_equals() {
        let env = vec![
            "A=1".to_string(),
            "B=x=y".to_string(),
            "NOEQUALS".to_string(),
            "E=".to_string(),
        ];
        assert_eq!(parse_env(&env), vec![("A", "1"), ("B", "x=y"), ("E", "")]);
    }

    #[test]
    fn tail_keeps_the_end() {
        let mut t = Tail::default();
        assert_eq!(t.describe(), "");
        t.push(&vec![b'a'; STDERR_TAIL]);
        t.push(b"the end\n");
        assert_eq!(t.buf.len(), STDERR_TAIL);
        assert!(t.describe().ends_with("the end"));
    }

    #[test]
    fn bad_hooks_are_refused_before_running() {
        let cases = [
            (
                serde_json::json!({"path": "relative/hook"}),
                "prestart hook 0 (relative/hook): path must be absolute",
            ),
            (
                serde_json::json!({"path": "/bin/true", "timeout": 0}),
                "timeout 0 must be greater than zero",
            ),
            (
                serde_json::json!({"path": "/bin/true", "timeout": -3}),
                "timeout -3 must be greater than zero",
            ),
            (
                serde_json::json!({"path": "/nonexistent/berth-hook"}),
                "prestart hook 0 (/nonexistent/berth-hook): cannot run",
            ),
        ];
        for (json, want) in cases {
            let hook: Hook = serde_json::from_value(json).expect("hook parses");
            let err = run_hooks("prestart", &[hook], b"{}").expect_err(want);
            assert!(err.to_string().contains(want), "{err}");
        }
    }
}
