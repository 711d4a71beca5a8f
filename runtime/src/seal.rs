//! Runs berth from a binary nothing can write, so a process inside a container can never
//! open the host's `berth` for writing through /proc/PID/exe (CVE-2019-5736 class).
//!
//! The cheap way (as runc 1.2): re-exec from a private, detached, read-only overlayfs
//! mount of the binary's directory (no copy; a few syscalls). Where that is refused, the
//! fallback copies the binary into a sealed memfd.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Errors sealing the binary.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("seal runtime binary: {op}: {source}")]
    Sys {
        op: &'static str,
        source: std::io::Error,
    },
}

fn sys(op: &'static str) -> impl FnOnce(std::io::Error) -> SealError {
    move |source| SealError::Sys { op, source }
}

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether the running binary is already a sealed memfd or on a read-only overlay.
pub fn is_sealed() -> bool {
    let Ok(f) = File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS on a descriptor we own.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & SEALS == SEALS {
        return true;
    }
    match (
        nix::sys::statfs::fstatfs(&f),
        nix::sys::statvfs::fstatvfs(&f),
    ) {
        (Ok(fs), Ok(vfs)) => {
            fs.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC
                && vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY)
        }
        _ => false,
    }
}

/// Re-executes the current process from an unwritable view of its binary, unless it
/// already runs from one. `scratch` is a directory berth owns (the state root): an empty
/// directory inside it serves as the overlay's second layer. Returns only when already
/// sealed, or with an error.
pub fn ensure_sealed(scratch: &Path) -> Result<(), SealError> {
    if is_sealed() {
        return Ok(());
    }
    if let Some(fd) = overlay_view(scratch) {
        return exec_fd(fd.as_raw_fd());
    }
    let memfd = memfd_copy()?;
    exec_fd(memfd.as_raw_fd())
}

/// The running binary opened (O_PATH) from a detached read-only overlay of its directory.
fn overlay_view(scratch: &Path) -> Option<OwnedFd> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let dir = exe.parent()?.to_str()?;
    let name = exe.file_name()?;
    let empty = scratch.join(".seal-empty");
    std::fs::create_dir_all(&empty).ok()?;
    let empty = empty.to_str()?;
    let bad = |s: &str| s.contains([':', ',', '\\', '\n']);
    if bad(dir) || bad(empty) || empty.starts_with(dir) || dir.starts_with(empty) {
        return None;
    }
    // SAFETY: the new mount API on descriptors we own, with NUL-terminated strings that
    // outlive each call.
    unsafe {
        let fs = libc::syscall(
            libc::SYS_fsopen,
            c"overlay".as_ptr(),
            1, /* FSOPEN_CLOEXEC */
        );
        if fs < 0 {
            return None;
        }
        let fs = OwnedFd::from_raw_fd(fs as i32);
        let value = CString::new(format!("{dir}:{empty}")).ok()?;
        const FSCONFIG_SET_STRING: libc::c_uint = 1;
        const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
        if libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            c"lowerdir".as_ptr(),
            value.as_ptr(),
            0,
        ) < 0
        {
            return None;
        }
        if libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        ) < 0
        {
            return None;
        }
        const FSMOUNT_CLOEXEC: libc::c_uint = 1;
        const ATTRS: libc::c_uint = 0x1 | 0x2 | 0x4; // RDONLY | NOSUID | NODEV
        let mnt = libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, ATTRS);
        if mnt < 0 {
            return None;
        }
        let mnt = OwnedFd::from_raw_fd(mnt as i32);
        let name = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(name)).ok()?;
        let fd = libc::openat(
            mnt.as_raw_fd(),
            name.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return None;
        }
        Some(OwnedFd::from_raw_fd(fd))
    }
}

/// A sealed memfd holding a copy of the running binary.
fn memfd_copy() -> Result<OwnedFd, SealError> {
    let exe = File::open("/proc/self/exe").map_err(sys("open /proc/self/exe"))?;
    let len = exe.metadata().map_err(sys("stat /proc/self/exe"))?.len();
    // SAFETY: memfd_create with a static NUL-terminated name.
    let raw = unsafe {
        libc::memfd_create(
            c"berth".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if raw < 0 {
        return Err(sys("memfd_create")(std::io::Error::last_os_error()));
    }
    // SAFETY: memfd_create returned a new descriptor we now own.
    let memfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut left = len;
    while left > 0 {
        // SAFETY: sendfile between two descriptors we own, offset tracked by the kernel.
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                left as usize,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(sys("copy binary")(e));
        }
        if n == 0 {
            break;
        }
        left -= n as u64;
    }
    // SAFETY: F_ADD_SEALS on the memfd we own.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(sys("add seals")(std::io::Error::last_os_error()));
    }
    Ok(memfd)
}

/// execveat of `fd` with this process's argv and environment.
fn exec_fd(fd: i32) -> Result<(), SealError> {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())))
        .collect::<Result<_, _>>()
        .map_err(|e| sys("argv")(std::io::Error::other(e)))?;
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: execveat with NUL-terminated argv/envp arrays that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(sys("execveat sealed binary")(
        std::io::Error::last_os_error(),
    ))
}
