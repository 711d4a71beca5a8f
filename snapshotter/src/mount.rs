//! Mounting the [`Mount`]s a snapshotter returns.
//!
//! Long chains: mount(2) takes the overlay options as one data page (4096 bytes), which
//! containerd overflows near 128 layers of absolute lower dirs. When the options do
//! not fit, this module mounts the overlay with the new mount API instead (`fsopen`,
//! then one `fsconfig(FSCONFIG_SET_STRING, "lowerdir+", dir)` per layer, Linux ≥ 6.8),
//! so each lower dir is passed alone and only overlayfs' own stack limit (500 layers)
//! applies. containerd, when it consumes these mounts through the proxy plugin, applies
//! its own fix (relative lower dirs from their common parent, mounted from a child
//! that changed its working directory there).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::snapshots::Mount;

/// Longest option string mount(2) accepts in its data page (page size minus the NUL).
pub const MOUNT_DATA_LIMIT: usize = 4095;

/// Mount errors.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A mount type other than `bind` and `overlay`.
    #[error("mount type {0:?} not supported")]
    UnsupportedType(String),
    /// A path or option containing NUL.
    #[error("mount argument {0:?} contains NUL")]
    Nul(String),
    /// The kernel refused.
    #[error("{op} {target}: {source}")]
    Sys {
        /// The call that failed.
        op: String,
        /// Mount target.
        target: PathBuf,
        /// OS error.
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, MountError>;

/// How a [`Mount`] is to be performed (pure planning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountPlan {
    /// Bind mount (recursive when `recursive`), remounted read-only when `readonly`.
    Bind {
        /// Source path.
        source: String,
        /// `rbind` given.
        recursive: bool,
        /// `ro` given.
        readonly: bool,
    },
    /// Classic mount(2) with flags and one data string.
    Classic {
        /// Filesystem type.
        fstype: String,
        /// Source.
        source: String,
        /// MS_* flags from the options.
        flags: MsFlags,
        /// Remaining options, comma-joined.
        data: String,
    },
    /// Overlay through fsopen/fsconfig: `(key, value)` string parameters, lower dirs
    /// one by one, flags as mount attributes.
    Fsconfig {
        /// Parameters with values, in order (lower dirs as separate `lowerdir+`).
        params: Vec<(String, String)>,
        /// Mount read-only.
        readonly: bool,
    },
}

/// Turn a mount into the calls that perform it.
pub fn plan(m: &Mount) -> Result<MountPlan> {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    let mut recursive = false;
    for o in &m.options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "bind" => {}
            "rbind" => recursive = true,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            _ => data.push(o.clone()),
        }
    }
    match m.kind.as_str() {
        "bind" | "rbind" => Ok(MountPlan::Bind {
            source: m.source.clone(),
            recursive: recursive || m.kind == "rbind",
            readonly: flags.contains(MsFlags::MS_RDONLY),
        }),
        "overlay" => {
            let joined = data.join(",");
            if joined.len() <= MOUNT_DATA_LIMIT {
                return Ok(MountPlan::Classic {
                    fstype: "overlay".into(),
                    source: m.source.clone(),
                    flags,
                    data: joined,
                });
            }
            let mut params = Vec::new();
            for d in data {
                match d.split_once('=') {
                    Some(("lowerdir", dirs)) => params.extend(
                        dirs.split(':')
                            .map(|l| ("lowerdir+".to_string(), l.to_string())),
                    ),
                    Some((k, v)) => params.push((k.to_string(), v.to_string())),
                    None => params.push((d.clone(), String::new())),
                }
            }
            Ok(MountPlan::Fsconfig {
                params,
                readonly: flags.contains(MsFlags::MS_RDONLY),
            })
        }
        other => Err(MountError::UnsupportedType(other.to_string())),
    }
}

fn cstr(s: &[u8]) -> Result<CString> {
    CString::new(s).map_err(|_| MountError::Nul(String::from_utf8_lossy(s).into_owned()))
}

fn sys_err(op: impl Into<String>, target: &Path) -> impl FnOnce(io::Error) -> MountError + '_ {
    let op: String = op.into();
    move |source| MountError::Sys {
        op,
        target: target.to_owned(),
        source,
    }
}

/// Mount `mounts` in order on `target`; on failure, what was mounted is unmounted.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = plan(m).and_then(|p| perform(&p, target)) {
            for _ in 0..i {
                let _ = unmount(target);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Unmount `target` (one mount).
pub fn unmount(target: &Path) -> Result<()> {
    nix::mount::umount2(target, MntFlags::empty())
        .map_err(|e| sys_err("umount", target)(io::Error::from(e)))
}

fn perform(p: &MountPlan, target: &Path) -> Result<()> {
    match p {
        MountPlan::Bind {
            source,
            recursive,
            readonly,
        } => {
            let mut flags = MsFlags::MS_BIND;
            if *recursive {
                flags |= MsFlags::MS_REC;
            }
            nix::mount::mount(
                Some(source.as_str()),
                target,
                None::<&str>,
                flags,
                None::<&str>,
            )
            .map_err(|e| sys_err("bind mount", target)(e.into()))?;
            if *readonly {
                let r = nix::mount::mount(
                    None::<&str>,
                    target,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                );
                if let Err(e) = r {
                    let _ = unmount(target);
                    return Err(sys_err("remount ro", target)(e.into()));
                }
            }
            Ok(())
        }
        MountPlan::Classic {
            fstype,
            source,
            flags,
            data,
        } => nix::mount::mount(
            Some(source.as_str()),
            target,
            Some(fstype.as_str()),
            *flags,
            Some(data.as_str()),
        )
        .map_err(|e| sys_err(format!("mount {fstype}"), target)(e.into())),
        MountPlan::Fsconfig { params, readonly } => fsconfig_overlay(params, *readonly, target),
    }
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn fsconfig_overlay(params: &[(String, String)], readonly: bool, target: &Path) -> Result<()> {
    let fstype = cstr(b"overlay")?;
    // SAFETY: fsopen takes a NUL-terminated string and flags; returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    if fd < 0 {
        return Err(sys_err("fsopen overlay", target)(io::Error::last_os_error()));
    }
    // SAFETY: fd was just returned by fsopen and is owned by nobody else.
    let fs_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    for (k, v) in params {
        let key = cstr(k.as_bytes())?;
        let (cmd, val) = if v.is_empty() {
            (FSCONFIG_SET_FLAG, None)
        } else {
            (FSCONFIG_SET_STRING, Some(cstr(v.as_bytes())?))
        };
        let vptr = val.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: valid fs context fd, NUL-terminated key and value (or NULL for a flag).
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs_fd.as_raw_fd(),
                cmd,
                key.as_ptr(),
                vptr,
                0,
            )
        };
        if r < 0 {
            return Err(sys_err(format!("fsconfig {k}={v}"), target)(
                io::Error::last_os_error(),
            ));
        }
    }
    // SAFETY: valid fs context fd; no key or value for CMD_CREATE.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs_fd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(sys_err("fsconfig create overlay", target)(
            io::Error::last_os_error(),
        ));
    }
    let attrs = if readonly { MOUNT_ATTR_RDONLY } else { 0 };
    // SAFETY: valid, created fs context fd; returns a new mount fd or -1.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, fs_fd.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    if m < 0 {
        return Err(sys_err("fsmount overlay", target)(
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: m was just returned by fsmount and is owned by nobody else.
    let mnt_fd = unsafe { OwnedFd::from_raw_fd(m as i32) };
    let empty = cstr(b"")?;
    let tgt = cstr(target.as_os_str().as_bytes())?;
    // SAFETY: valid mount fd with an empty path (MOVE_MOUNT_F_EMPTY_PATH) moved onto a
    // NUL-terminated target path relative to the cwd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt_fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            tgt.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(sys_err("move_mount overlay", target)(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: &str, opts: &[&str]) -> Mount {
        Mount {
            kind: kind.into(),
            source: "src".into(),
            options: opts.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn plan_table() {
        assert_eq!(
            plan(&m("bind", &["ro", "rbind"])).unwrap(),
            MountPlan::Bind {
                source: "src".into(),
                recursive: true,
                readonly: true
            }
        );
        assert_eq!(
            plan(&m("bind", &["rw", "rbind"])).unwrap(),
            MountPlan::Bind {
                source: "src".into(),
                recursive: true,
                readonly: false
            }
        );
        assert_eq!(
            plan(&m(
                "overlay",
                &["workdir=/w", "upperdir=/u", "lowerdir=/a:/b"]
            ))
            .unwrap(),
            MountPlan::Classic {
                fstype: "overlay".into(),
                source: "src".into(),
                flags: MsFlags::empty(),
                data: "workdir=/w,upperdir=/u,lowerdir=/a:/b".into()
            }
        );
        assert!(matches!(
            plan(&m("nfs", &[])),
            Err(MountError::UnsupportedType(_))
        ));
    }

    #[test]
    fn long_chain_uses_fsconfig() {
        let lowers: Vec<String> = (0..200)
            .map(|i| format!("/var/lib/berth/snapshots/snapshots/{i}/fs"))
            .collect();
        let opt = format!("lowerdir={}", lowers.join(":"));
        assert!(opt.len() > MOUNT_DATA_LIMIT);
        let p = plan(&m("overlay", &["workdir=/w", "upperdir=/u", &opt, "ro"])).unwrap();
        let MountPlan::Fsconfig { params, readonly } = p else {
            panic!("expected fsconfig plan, got {p:?}");
        };
        assert!(readonly);
        assert_eq!(params.len(), 202);
        assert_eq!(params[0], ("workdir".into(), "/w".into()));
        assert_eq!(params[2], ("lowerdir+".into(), lowers[0].clone()));
        assert_eq!(params[201], ("lowerdir+".into(), lowers[199].clone()));
    }
}
