//! Capabilities, noNewPrivileges, seccomp, sysctl and file-descriptor hygiene
//! (runtime-spec config.md "Process", config-linux.md "Seccomp", "Sysctl").

use serde_json::{Value, json};

use super::{Case, case, expect_contains, expect_eq};
use crate::oci::check::{cap_mask, status_caps, status_field};
use crate::oci::ctx::{Ctx, Need};

pub fn cases() -> Vec<Case> {
    vec![
        case("caps_five_sets_root", caps_root),
        case("caps_ambient_non_root", caps_ambient),
        case("no_new_privileges_set", |c| nnp(c, true)),
        case("no_new_privileges_unset", |c| nnp(c, false)),
        case("seccomp_errno", seccomp_errno),
        case("seccomp_default_action", seccomp_default),
        Case {
            name: "seccomp_kill",
            needs: Some(Need::SeccompAction("SCMP_ACT_KILL")),
            run: seccomp_kill,
        },
        case("sysctl", sysctl),
        case("no_host_fd_leak", fd_leak),
        case("preserve_fds", preserve_fds),
    ]
}

const BND: &[&str] = &["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
const INH: &[&str] = &["CAP_KILL", "CAP_NET_BIND_SERVICE"];
const AMB: &[&str] = &["CAP_NET_BIND_SERVICE"];

fn set_caps(b: &mut crate::oci::bundle::Bundle) {
    b.set(
        &["process", "capabilities"],
        json!({"bounding": BND, "effective": BND, "permitted": BND,
               "inheritable": INH, "ambient": AMB}),
    );
    b.args(&["/bin/cat", "/proc/self/status"]);
}

fn expect_caps(status: &str, want: [(&str, &[&str]); 5]) -> anyhow::Result<()> {
    for (key, names) in want {
        let got = status_caps(status, key)?;
        let exp = cap_mask(names)?;
        if got != exp {
            anyhow::bail!("{key}: got {got:016x}, want {exp:016x} ({names:?})");
        }
    }
    Ok(())
}

/// As root, after execve the permitted and effective sets are bounding ∪
/// inheritable; each set must be exactly what the spec lists.
fn caps_root(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    set_caps(&mut b);
    let out = ctx.run_ok(&b)?;
    expect_caps(
        &out,
        [
            ("CapBnd", BND),
            ("CapPrm", BND),
            ("CapEff", BND),
            ("CapInh", INH),
            ("CapAmb", AMB),
        ],
    )
}

/// A non-root process keeps only its ambient capabilities across execve: proof the
/// runtime raised them (and kept capabilities across the uid change).
fn caps_ambient(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    set_caps(&mut b);
    b.set(&["process", "user"], json!({"uid": 1000, "gid": 1000}));
    let out = ctx.run_ok(&b)?;
    expect_caps(
        &out,
        [
            ("CapBnd", BND),
            ("CapPrm", AMB),
            ("CapEff", AMB),
            ("CapInh", INH),
            ("CapAmb", AMB),
        ],
    )
}

fn nnp(ctx: &mut Ctx, on: bool) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["process", "noNewPrivileges"], json!(on));
    b.args(&["/bin/cat", "/proc/self/status"]);
    let out = ctx.run_ok(&b)?;
    expect_eq(
        "NoNewPrivs",
        status_field(&out, "NoNewPrivs")?,
        if on { "1" } else { "0" },
    )
}

fn arches() -> Value {
    if cfg!(target_arch = "x86_64") {
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    } else if cfg!(target_arch = "aarch64") {
        json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
    } else {
        json!([])
    }
}

fn seccomp_errno(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(
        &["linux", "seccomp"],
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": arches(),
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
            ]
        }),
    );
    b.sh("mkdir /tmp/d; echo rc=$?; touch /tmp/f && echo touched");
    let out = ctx.run(&b)?;
    out.check()?;
    expect_eq("stdout", out.stdout.as_str(), "rc=1\ntouched\n")?;
    expect_contains("mkdir's error", &out.stderr, "Permission denied")
}

/// Everything busybox sh, cat and the runtime's last steps before execve need; the
/// default action (errno EPERM) covers the rest, including mkdir.
const ALLOWED: &[&str] = &[
    "read",
    "write",
    "open",
    "openat",
    "openat2",
    "close",
    "close_range",
    "stat",
    "fstat",
    "lstat",
    "newfstatat",
    "statx",
    "poll",
    "ppoll",
    "lseek",
    "mmap",
    "mprotect",
    "munmap",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigsuspend",
    "ioctl",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
    "access",
    "faccessat",
    "faccessat2",
    "pipe",
    "pipe2",
    "select",
    "pselect6",
    "sched_yield",
    "sched_getaffinity",
    "mremap",
    "madvise",
    "dup",
    "dup2",
    "dup3",
    "nanosleep",
    "clock_nanosleep",
    "getpid",
    "getppid",
    "gettid",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    "kill",
    "tkill",
    "tgkill",
    "uname",
    "fcntl",
    "getdents",
    "getdents64",
    "getcwd",
    "chdir",
    "fchdir",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "getgroups",
    "setgroups",
    "setuid",
    "setgid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
    "capget",
    "capset",
    "prctl",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "get_robust_list",
    "futex",
    "getrlimit",
    "setrlimit",
    "prlimit64",
    "sigaltstack",
    "rseq",
    "readlink",
    "readlinkat",
    "getrandom",
    "umask",
    "gettimeofday",
    "clock_gettime",
    "clock_getres",
    "time",
    "sysinfo",
    "times",
    "fstatfs",
    "statfs",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd2",
    "getpgrp",
    "getpgid",
    "setpgid",
    "getsid",
    "setsid",
    "socket",
    "connect",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "getsockname",
    "getpeername",
    "socketpair",
    "setsockopt",
    "getsockopt",
    "shutdown",
    "fchmod",
    "fchown",
    "chmod",
    "chown",
    "fchownat",
    "fchmodat",
    "mlock",
    "munlock",
    "membarrier",
    "restart_syscall",
    "seccomp",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "sethostname",
    "setdomainname",
    "personality",
    "getpriority",
    "setpriority",
    "sched_setaffinity",
    "tgkill",
    "signalfd4",
    "timerfd_create",
    "timerfd_settime",
    "nanosleep",
    "fadvise64",
    "sync",
    "fsync",
    "fdatasync",
    "keyctl",
    "inotify_init1",
    "inotify_add_watch",
    "mknodat",
    "linkat",
    "symlinkat",
    "unlinkat",
    "renameat",
    "renameat2",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "ftruncate",
    "truncate",
    "utimensat",
    "flock",
    "sendfile",
    "copy_file_range",
    "splice",
    "memfd_create",
    "pidfd_open",
    "pidfd_send_signal",
    "pidfd_getfd",
];

fn seccomp_default(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(
        &["linux", "seccomp"],
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": arches(),
            "syscalls": [{"names": ALLOWED, "action": "SCMP_ACT_ALLOW"}]
        }),
    );
    b.sh("mkdir /tmp/d; echo rc=$?; cat /etc/hostname");
    let out = ctx.run(&b)?;
    out.check()?;
    expect_eq("stdout", out.stdout.as_str(), "rc=1\nberth-oci\n")?;
    expect_contains("mkdir's error", &out.stderr, "Operation not permitted")
}

fn seccomp_kill(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(
        &["linux", "seccomp"],
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": arches(),
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]
        }),
    );
    b.args(&["/bin/mkdir", "/tmp/d"]);
    let out = ctx.run(&b)?;
    // Killed by SIGSYS: 128 + 31.
    expect_eq("exit status of `run`", out.code(), 128 + libc::SIGSYS)
}

fn sysctl(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(
        &["linux", "sysctl"],
        json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"}),
    );
    b.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax");
    let out = ctx.run_ok(&b)?;
    expect_eq("values", out.as_str(), "1\n12345\n")?;
    let host = std::fs::read_to_string("/proc/sys/kernel/msgmax")?;
    if host.trim() == "12345" {
        anyhow::bail!("kernel.msgmax changed on the host");
    }
    Ok(())
}

/// A descriptor the caller leaves open (no CLOEXEC) must not reach the container.
fn fd_leak(ctx: &mut Ctx) -> anyhow::Result<()> {
    let leak = ctx.path("leak");
    std::fs::write(&leak, "x")?;
    let c = std::ffi::CString::new(leak.as_os_str().as_encoded_bytes())?;
    // SAFETY: open(2) with a valid NUL-terminated path; the fd is closed below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        anyhow::bail!("open: {}", std::io::Error::last_os_error());
    }
    let mut b = ctx.bundle()?;
    b.sh("ls /proc/self/fd");
    let res = ctx.run_ok(&b);
    // SAFETY: closing the fd opened above, which nothing else owns.
    unsafe { libc::close(fd) };
    let out = res?;
    let mut fds: Vec<i32> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    fds.sort();
    // 0-2 and the directory ls itself opened.
    if fds.iter().any(|f| *f > 3) || !fds.starts_with(&[0, 1, 2]) {
        anyhow::bail!("descriptors in the container {fds:?} (leaked host fd was {fd})");
    }
    Ok(())
}

/// `--preserve-fds 1` passes descriptor 3 through to the container process.
fn preserve_fds(ctx: &mut Ctx) -> anyhow::Result<()> {
    let data = ctx.path("fd3");
    std::fs::write(&data, "through fd 3\n")?;
    let b = {
        let mut b = ctx.bundle()?;
        b.sh("cat <&3");
        b
    };
    b.write_config()?;
    ctx.track(&b.id);
    let dir = b.dir.to_string_lossy().into_owned();
    let out = ctx.rt_input(
        &["run", "--preserve-fds", "1", "--bundle", &dir, &b.id],
        &crate::oci::driver::Input::Fd3(data),
    )?;
    out.check()?;
    expect_eq("read from fd 3", out.stdout.as_str(), "through fd 3\n")
}
