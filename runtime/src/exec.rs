//! The parts of `exec` that differ from a container's init: entering the init's root
//! (a `--no-pivot` container's root is a chroot, which joining the mount namespace
//! does not give) and handing the seccomp notify fd of the exec'd process to the
//! agent at `linux.seccomp.listenerPath`, a host path, through the parent, as runc does.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use nix::unistd::{chroot, fchdir};
use oci_spec::runtime::Spec;

use crate::seccomp;
use crate::sync::{Msg, SyncError, SyncSocket};

/// Errors of exec's own steps.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The init's root directory could not be opened.
    #[error("open the container's root {path}: {source}")]
    OpenRoot {
        /// `/proc/<init>/root`.
        path: PathBuf,
        /// The errno.
        source: nix::Error,
    },
    /// `fchdir` or `chroot` into the container's root failed.
    #[error("enter the container's root ({step}): {source}")]
    EnterRoot {
        /// Which call.
        step: &'static str,
        /// The errno.
        source: nix::Error,
    },
    /// The exec'd process has a listener fd but the spec names no agent.
    #[error("linux.seccomp: SCMP_ACT_NOTIFY needs listenerPath")]
    NoListenerPath,
    /// Sending the listener fd to the agent failed.
    #[error("linux.seccomp.listenerPath: {0}")]
    Listener(#[from] seccomp::SeccompError),
    /// The handshake with the parent failed.
    #[error("seccomp listener handshake: {0}")]
    Sync(#[from] SyncError),
}

/// Opens the container init's root directory (`/proc/<pid>/root`), from the host,
/// before any namespace is joined.
pub fn open_init_root(init_pid: i32) -> Result<OwnedFd, ExecError> {
    let path = PathBuf::from(format!("/proc/{init_pid}/root"));
    open(
        &path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| ExecError::OpenRoot { path, source })
}

/// Makes `root` (from [`open_init_root`]) this process's root and working directory.
/// Called after joining the container's mount namespace, so the chroot lands on the
/// same mount the init sees as `/`, whether it pivoted or (`--no-pivot`) chrooted.
pub fn enter_root(root: BorrowedFd<'_>) -> Result<(), ExecError> {
    fchdir(root).map_err(|source| ExecError::EnterRoot {
        step: "fchdir",
        source,
    })?;
    chroot(".").map_err(|source| ExecError::EnterRoot {
        step: "chroot",
        source,
    })?;
    nix::unistd::chdir("/").map_err(|source| ExecError::EnterRoot {
        step: "chdir /",
        source,
    })
}

/// In the exec'd process: sends the notify fd to the parent and waits until the parent
/// has handed it to the agent.
pub fn hand_listener_to_parent(sock: &SyncSocket, fd: OwnedFd) -> Result<(), ExecError> {
    sock.send_with_fd(&Msg::SeccompFd, fd.as_fd())?;
    drop(fd);
    sock.expect(Msg::SeccompDone, "SeccompDone")?;
    Ok(())
}

/// In the parent: hands the exec'd process's notify fd to the agent of `spec`, with
/// runc's `containerProcessState` (the container's `state`, the process's `pid`).
pub fn send_listener(
    spec: &Spec,
    fd: BorrowedFd<'_>,
    state_json: &[u8],
    pid: i32,
) -> Result<(), ExecError> {
    let sec = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let path = sec
        .and_then(|s| s.listener_path().as_ref())
        .ok_or(ExecError::NoListenerPath)?;
    let meta = sec.and_then(|s| s.listener_metadata().as_deref());
    seccomp::send_listener_fd_for_pid(path, meta, fd, state_json, pid)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_without_listener_path_is_refused() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}
        }))
        .unwrap();
        let (r, _w) = nix::unistd::pipe().unwrap();
        assert!(matches!(
            send_listener(&spec, r.as_fd(), b"{}", 1),
            Err(ExecError::NoListenerPath)
        ));
    }

    #[test]
    fn a_missing_init_is_a_clear_error() {
        let e = open_init_root(i32::MAX).unwrap_err();
        assert!(
            e.to_string().contains(&format!("/proc/{}/root", i32::MAX)),
            "{e}"
        );
    }
}
