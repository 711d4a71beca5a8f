//! Runs a runtime's command line (runc's CLI) with a deadline, capturing stdout and
//! stderr through files (a detached container may keep its stdio open for ever, so
//! pipes read to EOF would hang).

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A runtime binary driven through runc's command line.
#[derive(Debug, Clone)]
pub struct Runtime {
    path: PathBuf,
    timeout: Duration,
}

/// What one runtime command did.
#[derive(Debug, Clone)]
pub struct Out {
    /// The command line, for messages.
    pub cmd: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it (and a foreground container) wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Out {
    /// The exit code as a shell reports it: the code, or 128 + the signal.
    pub fn code(&self) -> i32 {
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => -1,
        }
    }

    /// Fails unless the command exited 0.
    pub fn check(&self) -> anyhow::Result<&Self> {
        if self.code() != 0 {
            bail!(
                "`{}` exited {}: {}",
                self.cmd,
                self.code(),
                super::one_line(&self.stderr)
            );
        }
        Ok(self)
    }

    /// The stdout lines, trimmed.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().map(str::trim).collect()
    }
}

/// Where a command's standard input comes from (and descriptors passed beyond stdio).
#[derive(Debug, Clone, Default)]
pub enum Input {
    /// An empty file (not the host's /dev/null: a runtime may chown its stdio to
    /// the container's user).
    #[default]
    Null,
    /// This file.
    File(PathBuf),
    /// An empty stdin, and this file open (read-only) as descriptor 3.
    Fd3(PathBuf),
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Runtime {
    /// A runtime at `path` (a bare name is looked up in PATH); each command may take
    /// at most `timeout`.
    pub fn new(path: &Path, timeout: Duration) -> anyhow::Result<Self> {
        let resolved = if path.components().count() == 1 && !path.exists() {
            which(path).with_context(|| format!("runtime {} not found in PATH", path.display()))?
        } else {
            path.to_path_buf()
        };
        if !resolved.is_file() {
            bail!("runtime {} is not a file", resolved.display());
        }
        Ok(Runtime {
            path: std::fs::canonicalize(&resolved)
                .with_context(|| format!("resolving {}", resolved.display()))?,
            timeout,
        })
    }

    /// The runtime binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `RUNTIME --root ROOT ARGS...`, capturing its output into files in `scratch`.
    pub fn exec<S: AsRef<std::ffi::OsStr>>(
        &self,
        root: &Path,
        args: &[S],
        input: &Input,
        scratch: &Path,
    ) -> anyhow::Result<Out> {
        let mut argv: Vec<OsString> = vec!["--root".into(), root.as_os_str().to_owned()];
        argv.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self.exec_raw(&argv, input, scratch)
    }

    /// Runs the runtime with exactly these arguments (no `--root`).
    pub fn exec_raw(
        &self,
        argv: &[OsString],
        input: &Input,
        scratch: &Path,
    ) -> anyhow::Result<Out> {
        let cmd_text = format!(
            "{} {}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            argv.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let out_path = scratch.join(format!("cmd{n}.stdout"));
        let err_path = scratch.join(format!("cmd{n}.stderr"));
        let mut fds_to_close = Vec::new();
        let stdout = File::create(&out_path).with_context(|| out_path.display().to_string())?;
        let stderr = File::create(&err_path).with_context(|| err_path.display().to_string())?;
        let mut cmd = Command::new(&self.path);
        // Its own process group, so a timeout kills whatever it forked too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args(argv).stdout(stdout).stderr(stderr);
        let empty = scratch.join(format!("cmd{n}.stdin"));
        let empty_stdin = || -> anyhow::Result<File> {
            File::create(&empty).with_context(|| empty.display().to_string())?;
            File::open(&empty).with_context(|| empty.display().to_string())
        };
        match input {
            Input::Null => {
                cmd.stdin(empty_stdin()?);
            }
            Input::File(p) => {
                cmd.stdin(File::open(p).with_context(|| p.display().to_string())?);
            }
            Input::Fd3(p) => {
                cmd.stdin(empty_stdin()?);
                let f = File::open(p).with_context(|| p.display().to_string())?;
                let raw = std::os::fd::IntoRawFd::into_raw_fd(f);
                // SAFETY: the closure only calls dup2 (async-signal-safe) between fork
                // and exec; dup2 clears CLOEXEC on the new descriptor 3.
                unsafe {
                    std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                        if libc::dup2(raw, 3) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                fds_to_close.push(raw);
            }
        }
        let spawned = cmd.spawn();
        for fd in fds_to_close {
            // SAFETY: closing the descriptor we opened above and own.
            unsafe { libc::close(fd) };
        }
        let mut child = spawned.with_context(|| format!("spawning `{cmd_text}`"))?;
        let status =
            wait_deadline(&mut child, self.timeout).with_context(|| format!("`{cmd_text}`"))?;
        Ok(Out {
            cmd: cmd_text,
            status,
            stdout: read_lossy(&out_path)?,
            stderr: read_lossy(&err_path)?,
        })
    }
}

fn read_lossy(p: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(p).with_context(|| p.display().to_string())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Waits for `child`, killing it once `timeout` has passed.
pub fn wait_deadline(
    child: &mut std::process::Child,
    timeout: Duration,
) -> anyhow::Result<ExitStatus> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if start.elapsed() > timeout {
            if let Ok(pgid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on the process group the child leads.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {}s and was killed", timeout.as_secs());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Looks a bare command name up in PATH.
pub fn which(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
