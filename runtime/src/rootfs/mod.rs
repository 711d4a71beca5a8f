//! The container's root filesystem: mounts, devices, /dev symlinks, pivot_root, masked
//! and read-only paths (runtime-spec `config.md` "Root" and "Mounts", `config-linux.md`
//! "Devices", "Rootfs Mount Propagation", "Masked Paths", "Readonly Paths").
//!
//! [`plan`] turns the spec into values; [`prepare`], [`pivot`] and [`finalize`] apply
//! them from the container's init process, in its new mount namespace. Every path inside
//! the rootfs is opened with openat2(`RESOLVE_IN_ROOT`) from a rootfs directory fd and
//! mounted on through its fd, so no symlink in the rootfs can send a mount outside it.

mod apply;
pub mod cgroup;
pub mod idmap;
pub mod options;
pub mod plan;
mod resolve;
mod sys;

use std::path::{Path, PathBuf};

use nix::errno::Errno;

pub use options::{MountOptions, parse_options};
pub use plan::{DeviceNode, MountKind, MountOp, Phase, PlannedMount};

/// What the rootfs setup needs to know.
#[derive(Debug, Clone, Copy)]
pub struct RootfsConfig<'a> {
    /// The container's spec.
    pub spec: &'a oci_spec::runtime::Spec,
    /// Absolute host path of the root filesystem.
    pub rootfs: &'a Path,
    /// Absolute host path of the bundle (relative bind sources are relative to it).
    pub bundle: &'a Path,
    /// `--no-pivot`: `MS_MOVE` + `chroot` instead of `pivot_root`.
    pub no_pivot: bool,
    /// The pty slave to bind at `/dev/console` when `process.terminal` is set.
    pub console_slave: Option<&'a Path>,
    /// The ID-mapped mounts made on the host for this container ([`idmap`]).
    pub idmapped: Option<&'a idmap::IdmappedMounts>,
}

/// Errors of the rootfs setup.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A path in the spec is not acceptable.
    #[error("{what} {path:?}: {reason}")]
    InvalidPath {
        /// Which field.
        what: String,
        /// The path as given.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// A mount option is not acceptable.
    #[error("mount {destination}: option {option:?}: {reason}")]
    InvalidOption {
        /// The mount's destination.
        destination: String,
        /// The option.
        option: String,
        /// Why.
        reason: &'static str,
    },
    /// A mount entry is not acceptable.
    #[error("mount {destination}: {reason}")]
    InvalidMount {
        /// The mount's destination.
        destination: String,
        /// Why.
        reason: String,
    },
    /// A spec field is not acceptable.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Something berth does not do (yet).
    #[error("not implemented: {what}")]
    NotImplemented {
        /// What.
        what: String,
    },
    /// A bind mount's source cannot be opened.
    #[error("mount {destination}: source {src:?}: {errno}")]
    SourceMissing {
        /// The mount's destination.
        destination: PathBuf,
        /// The source path.
        src: PathBuf,
        /// The error.
        errno: Errno,
    },
    /// The kernel does not know a filesystem type.
    #[error("mount {destination}: unknown filesystem type {fstype:?}")]
    UnknownType {
        /// The mount's destination.
        destination: PathBuf,
        /// The type.
        fstype: String,
    },
    /// A mount syscall failed.
    #[error("mount {destination}: {step}: {errno}")]
    Mount {
        /// The mount's destination (inside the container).
        destination: PathBuf,
        /// Which step.
        step: &'static str,
        /// The error.
        errno: Errno,
    },
    /// A path inside the rootfs cannot be resolved or created.
    #[error("rootfs path {path:?}: {step}: {errno}")]
    Resolve {
        /// The path inside the container.
        path: PathBuf,
        /// Which step.
        step: &'static str,
        /// The error.
        errno: Errno,
    },
    /// /dev/null in the container is not the real null device: masking refused.
    #[error("{path:?} is not the null device (char 1:3); refusing to mask with it")]
    NotDevNull {
        /// The path checked.
        path: PathBuf,
    },
    /// A device node cannot be created.
    #[error("device {path:?}: {step}: {errno}")]
    Device {
        /// The device path inside the container.
        path: PathBuf,
        /// Which step.
        step: &'static str,
        /// The error.
        errno: Errno,
    },
    /// Reading host state (mountinfo, /proc/self/cgroup) failed or it made no sense.
    #[error("host {what}: {reason}")]
    Host {
        /// What was read.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// pivot_root or the move/chroot failed.
    #[error("pivot into {rootfs:?}: {step}: {errno}")]
    Pivot {
        /// The rootfs.
        rootfs: PathBuf,
        /// Which step.
        step: &'static str,
        /// The error.
        errno: Errno,
    },
}

/// The result type of this module.
pub type Result<T, E = RootfsError> = std::result::Result<T, E>;

/// The whole rootfs setup as values (pure; reads nothing from the host).
pub fn plan(cfg: &RootfsConfig) -> Result<Vec<MountOp>> {
    plan::plan(cfg)
}

/// In the new mount namespace: root propagation, the rootfs bound on itself, every spec
/// mount, devices, /dev symlinks, /dev/pts + ptmx, /dev/console.
pub fn prepare(cfg: &RootfsConfig) -> Result<()> {
    let ops = plan(cfg)?;
    apply::run_prepare(cfg, ops.iter().filter(|o| o.phase() == Phase::Prepare))
}

/// `pivot_root` into the rootfs (old root detached) or, with `no_pivot`, `MS_MOVE` +
/// `chroot`; then `chdir("/")`. Run after the createContainer hooks.
pub fn pivot(cfg: &RootfsConfig) -> Result<()> {
    let ops = plan(cfg)?;
    for op in ops.iter().filter(|o| o.phase() == Phase::Pivot) {
        apply::run_pivot(cfg, op)?;
    }
    Ok(())
}

/// After [`pivot`]: final rootfs propagation, readonlyPaths, maskedPaths, a read-only
/// /dev when asked, and the read-only root.
pub fn finalize(cfg: &RootfsConfig) -> Result<()> {
    let ops = plan(cfg)?;
    apply::run_finalize(ops.iter().filter(|o| o.phase() == Phase::Finalize))
}

/// Binds `slave` (a pty slave path as the caller sees it now) at `/dev/console` of the
/// root `root_dir` (`/` after the pivot), resolving inside that root.
pub fn mount_console(root_dir: &Path, slave: &Path) -> Result<()> {
    apply::mount_console_in(root_dir, slave)
}
