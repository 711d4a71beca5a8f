//! Runs berth from a sealed, anonymous copy of its binary, so nothing inside a container
//! can open the host's `berth` for writing through /proc/PID/exe (CVE-2019-5736 class).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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

/// Whether the running binary is already a sealed memfd.
pub fn is_sealed() -> bool {
    let Ok(f) = File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS on a descriptor we own.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Re-executes the current process from a sealed memfd copy of its binary, unless it
/// already runs from one. Returns only when already sealed (or on error).
pub fn ensure_sealed() -> Result<(), SealError> {
    if is_sealed() {
        return Ok(());
    }
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
            memfd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(sys("execveat sealed copy")(std::io::Error::last_os_error()))
}
