//! Host mount-namespace tweaks for runtimes that refuse this host's cgroup layout.
//!
//! crun 1.8 refuses a v1/v2 hybrid whose v2 hierarchy holds a controller (hugetlb
//! here). `--private-unified` moves the whole suite (and every runtime it starts)
//! into a private mount namespace in which /sys/fs/cgroup/unified is unmounted, so
//! the runtime sees pure cgroup v1. The host's mounts are untouched.

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

/// Where the hybrid layout mounts its v2 hierarchy.
pub const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// Errors entering the private namespace.
#[derive(Debug, thiserror::Error)]
pub enum HostNsError {
    /// unshare(CLONE_NEWNS) failed.
    #[error("unshare(CLONE_NEWNS): {0}")]
    Unshare(nix::Error),
    /// Making / a recursive slave failed (without it the unmount would reach the host).
    #[error("making / a recursive slave mount: {0}")]
    Slave(nix::Error),
    /// Unmounting the v2 hierarchy failed.
    #[error("unmounting {UNIFIED}: {0}")]
    Umount(nix::Error),
}

/// Enters a new mount namespace (this process and all it spawns later) in which
/// /sys/fs/cgroup/unified is not mounted. Call before any other thread starts.
pub fn enter_private_unified() -> Result<(), HostNsError> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(HostNsError::Unshare)?;
    // A slave receives the host's mount events but sends none back, so the unmount
    // below stays in this namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(HostNsError::Slave)?;
    match umount2(UNIFIED, MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        // Nothing mounted there: already the layout we want.
        Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(e) => Err(HostNsError::Umount(e)),
    }
}
