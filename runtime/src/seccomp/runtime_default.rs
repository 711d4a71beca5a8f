//! The built-in default profile: Kubernetes `RuntimeDefault`, with the semantics of
//! containerd's and moby's documented default profile. Everything not listed fails with
//! `EPERM`; a few syscalls are allowed only with the capability that governs them, and
//! namespace-creating `clone` flags and `clone3` are refused without `CAP_SYS_ADMIN`.
//! Written for x86_64 and aarch64 (with their 32-bit compat ABIs). As in containerd,
//! `ptrace` is allowed (kernels from 4.8 on confine it properly) and `io_uring_*` is not
//! (as in current moby and containerd 2); as in moby, `socket(AF_VSOCK)` is refused.

use oci_spec::runtime::{Capabilities, Capability, LinuxSeccomp};
use serde_json::{Value, json};

/// Syscalls every container may make.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "ptrace",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// `personality(2)` personas a container may switch to: PER_LINUX, PER_LINUX32,
/// UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query).
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET`: the namespace flags
/// `clone` may not carry without `CAP_SYS_ADMIN` (the low byte of clone's flags is the
/// exit signal, so CLONE_NEWTIME cannot be tested there).
const CLONE_NAMESPACE_FLAGS: u64 = 0x7e02_0000;

/// Syscalls allowed only when the container holds the given capability.
const BY_CAPABILITY: &[(Capability, &[&str])] = &[
    (Capability::DacReadSearch, &["open_by_handle_at"]),
    (
        Capability::SysAdmin,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysChroot, &["chroot"]),
    (
        Capability::SysModule,
        &["delete_module", "init_module", "finit_module"],
    ),
    (Capability::SysPacct, &["acct"]),
    (
        Capability::SysPtrace,
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    (Capability::SysRawio, &["iopl", "ioperm"]),
    (
        Capability::SysTime,
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    (Capability::SysTtyConfig, &["vhangup"]),
    (
        Capability::SysNice,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    (Capability::Syslog, &["syslog"]),
    (Capability::Bpf, &["bpf"]),
    (Capability::Perfmon, &["perf_event_open"]),
];

/// containerd's default capability set for containers (what `RuntimeDefault` assumes
/// when [`runtime_default`] is asked without a spec).
pub const DEFAULT_CONTAINER_CAPS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

fn arch_list() -> Vec<&'static str> {
    if cfg!(target_arch = "aarch64") {
        vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else {
        vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    }
}

fn arch_syscalls() -> &'static [&'static str] {
    if cfg!(target_arch = "aarch64") {
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ]
    } else {
        &["arch_prctl", "modify_ldt"]
    }
}

/// Kubernetes `RuntimeDefault` for a container with containerd's default capabilities.
pub fn runtime_default() -> LinuxSeccomp {
    let caps: Capabilities = DEFAULT_CONTAINER_CAPS.iter().copied().collect();
    runtime_default_for_caps(&caps)
}

/// Kubernetes `RuntimeDefault` for a container whose bounding set is `bounding`: the
/// capability-gated syscalls are added for the capabilities it holds, as containerd does.
pub fn runtime_default_for_caps(bounding: &Capabilities) -> LinuxSeccomp {
    let allow = |names: Vec<&str>| json!({"names": names, "action": "SCMP_ACT_ALLOW"});
    let mut syscalls: Vec<Value> = vec![allow(ALLOWED.to_vec())];
    syscalls.push(allow(arch_syscalls().to_vec()));
    syscalls.push(json!({
        "names": ["socket"], "action": "SCMP_ACT_ALLOW",
        // every address family but AF_VSOCK (40)
        "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]
    }));
    for persona in PERSONALITIES {
        syscalls.push(json!({
            "names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}]
        }));
    }
    let mut gated: Vec<&str> = Vec::new();
    for (cap, names) in BY_CAPABILITY {
        if bounding.contains(cap) {
            for name in *names {
                if !gated.contains(name) && !ALLOWED.contains(name) {
                    gated.push(name);
                }
            }
        }
    }
    if !gated.is_empty() {
        syscalls.push(allow(gated));
    }
    if !bounding.contains(&Capability::SysAdmin) {
        syscalls.push(json!({
            "names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                      "op": "SCMP_CMP_MASKED_EQ"}]
        }));
        // clone3's flags live in memory seccomp cannot read: make libc fall back to clone.
        syscalls.push(json!({
            "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS
        }));
    }
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": arch_list(),
        "syscalls": syscalls,
    });
    serde_json::from_value(profile).expect("the built-in RuntimeDefault profile is valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::{Action, CompareOp, compile};

    fn rules_for<'a>(f: &'a crate::seccomp::Filter, name: &str) -> Vec<&'a crate::seccomp::Rule> {
        f.rules.iter().filter(|r| r.name == name).collect()
    }

    #[test]
    fn default_profile_compiles_and_builds() {
        let f = compile(&runtime_default()).expect("compiles");
        assert_eq!(f.default_action, Action::Errno(libc::EPERM as u16));
        assert!(f.rules.len() > 300, "{}", f.rules.len());
        let bpf = f.to_bpf().expect("builds");
        assert!(!bpf.is_empty());
    }

    #[test]
    fn default_profile_gates_by_capability() {
        let f = compile(&runtime_default()).expect("compiles");
        for name in [
            "mount",
            "unshare",
            "setns",
            "kcmp",
            "process_vm_readv",
            "reboot",
            "bpf",
            "clone3",
            "name_to_handle_at",
            "io_uring_setup",
        ] {
            assert!(
                rules_for(&f, name)
                    .iter()
                    .all(|r| r.action != Action::Allow),
                "{name} must not be allowed without its capability"
            );
        }
        assert_eq!(
            rules_for(&f, "clone3")[0].action,
            Action::Errno(libc::ENOSYS as u16)
        );
        let clone = rules_for(&f, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(
            clone[0].conditions[0].op,
            CompareOp::MaskedEqual(CLONE_NAMESPACE_FLAGS)
        );
        assert_eq!(
            rules_for(&f, "chroot").len(),
            1,
            "SYS_CHROOT is a default cap"
        );
        assert_eq!(rules_for(&f, "personality").len(), PERSONALITIES.len());

        let mut admin: Capabilities = DEFAULT_CONTAINER_CAPS.iter().copied().collect();
        admin.insert(Capability::SysAdmin);
        admin.insert(Capability::SysPtrace);
        let f = compile(&runtime_default_for_caps(&admin)).expect("compiles");
        for name in ["mount", "unshare", "setns", "kcmp", "clone", "clone3"] {
            let rules = rules_for(&f, name);
            assert!(
                rules.len() == 1
                    && rules[0].action == Action::Allow
                    && rules[0].conditions.is_empty(),
                "{name} must be allowed outright with CAP_SYS_ADMIN/PTRACE: {rules:?}"
            );
        }
    }
}
