//! Seccomp: turns `linux.seccomp` into a BPF filter and installs it
//! (runtime-spec `config-linux.md#seccomp`).
//!
//! [`compile`] is pure validation and translation into a [`Filter`] value; [`Filter::load`]
//! is the thin part that builds the BPF program with libseccomp and installs it with the
//! `seccomp(2)` syscall itself, so every filter flag works whatever libseccomp version is
//! installed. Behaviour follows runc:
//! - syscall names this libseccomp does not know are ignored;
//! - rules whose action equals the default action are skipped;
//! - conditions on the same argument become separate rules (any may match);
//! - `SCMP_ACT_KILL` means kill-thread; `ERRNO` or `TRACE` without `errnoRet` gives `EPERM`;
//! - syscalls numbered above every syscall the profile names fail with `ENOSYS`, so libc
//!   falls back from syscalls newer than the profile (see [`enosys`]), unless the default
//!   action lets them run.
//!
//! Order in the container's init (the caller's job): without `noNewPrivileges`, load the
//! filter while the process still holds `CAP_SYS_ADMIN` (before dropping capabilities);
//! with it, set `PR_SET_NO_NEW_PRIVS` and load as late as possible, right before `execve`.

pub mod enosys;
mod runtime_default;

pub use runtime_default::{runtime_default, runtime_default_for_caps};

use std::collections::HashSet;
use std::io::{IoSlice, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

/// `EPERM`, what runc returns for `SCMP_ACT_ERRNO` / `SCMP_ACT_TRACE` without `errnoRet`.
const DEFAULT_ERRNO: u16 = libc::EPERM as u16;
/// A syscall has at most six arguments.
const MAX_SYSCALL_ARGS: usize = 6;
/// Rule count above which libseccomp's binary-tree optimisation is asked for (as runc).
const OPTIMIZE_ABOVE_RULES: usize = 32;

// Flags of seccomp(SECCOMP_SET_MODE_FILTER) (linux/seccomp.h).
const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_LOG: libc::c_uint = 1 << 1;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_uint = 1 << 2;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_uint = 1 << 3;
const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_uint = 1 << 5;

/// Errors of the seccomp module; each names the offending entry of `linux.seccomp`.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// `SCMP_ACT_NOTIFY` as `defaultAction` would also trap the runtime's own writes.
    #[error("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action")]
    NotifyAsDefault,
    /// `SCMP_ACT_NOTIFY` on `write` would hang the runtime before the agent gets the fd.
    #[error(
        "linux.seccomp.syscalls[{index}]: SCMP_ACT_NOTIFY cannot be used for the write syscall"
    )]
    NotifyOnWrite {
        /// Index of the entry in `syscalls`.
        index: usize,
    },
    /// A rule uses `SCMP_ACT_NOTIFY` but there is nobody to send the listener fd to.
    #[error("linux.seccomp.syscalls[{index}]: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")]
    NotifyWithoutListener {
        /// Index of the entry in `syscalls`.
        index: usize,
    },
    /// An entry of `syscalls` has no names.
    #[error("linux.seccomp.syscalls[{index}]: names is empty")]
    NoNames {
        /// Index of the entry in `syscalls`.
        index: usize,
    },
    /// An entry of `syscalls` has an empty name.
    #[error("linux.seccomp.syscalls[{index}]: empty syscall name")]
    EmptyName {
        /// Index of the entry in `syscalls`.
        index: usize,
    },
    /// An argument condition names an argument past the sixth.
    #[error(
        "linux.seccomp.syscalls[{index}].args[{arg}]: index {value} is out of range (a syscall has arguments 0 to 5)"
    )]
    ArgIndex {
        /// Index of the entry in `syscalls`.
        index: usize,
        /// Index of the condition in `args`.
        arg: usize,
        /// The offending argument index.
        value: usize,
    },
    /// An errno value does not fit in the 16 bits of SECCOMP_RET_DATA.
    #[error("linux.seccomp.{field}: errno {value} is out of range (0 to 65535)")]
    ErrnoRange {
        /// `defaultErrnoRet` or `syscalls[N].errnoRet`.
        field: String,
        /// The offending value.
        value: u32,
    },
    /// libseccomp refused something while building the filter.
    #[error("seccomp: {context}: {source}")]
    Libseccomp {
        /// What was being done, naming the entry.
        context: String,
        /// libseccomp's error.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// A system call failed while exporting or installing the filter.
    #[error("seccomp: {op}: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The errno.
        #[source]
        source: nix::errno::Errno,
    },
    /// Sending the listener fd to the seccomp agent failed.
    #[error("seccomp: sending the listener fd to {path}: {source}")]
    Listener {
        /// `listenerPath`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The container state given for the agent is not valid JSON.
    #[error("seccomp: container state for the seccomp agent is not valid JSON: {0}")]
    StateJson(#[source] serde_json::Error),
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, SeccompError>;

/// What the kernel does when a rule (or the default) matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Kill the calling thread (`SCMP_ACT_KILL`, `SCMP_ACT_KILL_THREAD`).
    KillThread,
    /// Kill the whole process (`SCMP_ACT_KILL_PROCESS`).
    KillProcess,
    /// Send SIGSYS (`SCMP_ACT_TRAP`).
    Trap,
    /// Fail the syscall with this errno (`SCMP_ACT_ERRNO`).
    Errno(u16),
    /// Notify a ptrace tracer with this value (`SCMP_ACT_TRACE`).
    Trace(u16),
    /// Let the syscall run (`SCMP_ACT_ALLOW`).
    Allow,
    /// Let it run and log it (`SCMP_ACT_LOG`).
    Log,
    /// Ask the user-space agent on the listener fd (`SCMP_ACT_NOTIFY`).
    Notify,
}

impl Action {
    fn to_scmp(self) -> ScmpAction {
        match self {
            Action::KillThread => ScmpAction::KillThread,
            Action::KillProcess => ScmpAction::KillProcess,
            Action::Trap => ScmpAction::Trap,
            Action::Errno(e) => ScmpAction::Errno(i32::from(e)),
            Action::Trace(v) => ScmpAction::Trace(v),
            Action::Allow => ScmpAction::Allow,
            Action::Log => ScmpAction::Log,
            Action::Notify => ScmpAction::Notify,
        }
    }
}

/// Comparison of one syscall argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `SCMP_CMP_NE`
    NotEqual,
    /// `SCMP_CMP_LT`
    Less,
    /// `SCMP_CMP_LE`
    LessOrEqual,
    /// `SCMP_CMP_EQ`
    Equal,
    /// `SCMP_CMP_GE`
    GreaterEqual,
    /// `SCMP_CMP_GT`
    Greater,
    /// `SCMP_CMP_MASKED_EQ`: `(arg & mask) == value`; the spec's `value` is the mask and
    /// `valueTwo` the value, as libseccomp and runc read them.
    MaskedEqual(u64),
}

/// One argument condition of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition {
    /// Argument index, 0 to 5.
    pub index: u32,
    /// The comparison.
    pub op: CompareOp,
    /// The value compared against (for `MaskedEqual`, the value after masking).
    pub value: u64,
}

impl Condition {
    fn to_scmp(self) -> ScmpArgCompare {
        let op = match self.op {
            CompareOp::NotEqual => ScmpCompareOp::NotEqual,
            CompareOp::Less => ScmpCompareOp::Less,
            CompareOp::LessOrEqual => ScmpCompareOp::LessOrEqual,
            CompareOp::Equal => ScmpCompareOp::Equal,
            CompareOp::GreaterEqual => ScmpCompareOp::GreaterEqual,
            CompareOp::Greater => ScmpCompareOp::Greater,
            CompareOp::MaskedEqual(mask) => ScmpCompareOp::MaskedEqual(mask),
        };
        ScmpArgCompare::new(self.index, op, self.value)
    }
}

/// One rule of the filter: a syscall, an action and the conditions that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Syscall name as written in the spec.
    pub name: String,
    /// Index of the `syscalls` entry it came from (for error messages).
    pub entry: usize,
    /// What happens when it matches.
    pub action: Action,
    /// Conditions, all of which must hold (empty: unconditional).
    pub conditions: Vec<Condition>,
}

/// Filter flags (`linux.seccomp.flags`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `SECCOMP_FILTER_FLAG_LOG`
    pub log: bool,
    /// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`
    pub spec_allow: bool,
    /// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (only meaningful with a listener; ignored
    /// without `SCMP_ACT_NOTIFY` rules, since the kernel accepts it only with one).
    pub wait_killable_recv: bool,
}

/// A validated, translated seccomp filter, ready to [`load`](Filter::load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Action when no rule matches.
    pub default_action: Action,
    /// Extra architectures besides the native one.
    pub architectures: Vec<ScmpArch>,
    /// Filter flags.
    pub flags: Flags,
    /// Rules, in spec order.
    pub rules: Vec<Rule>,
    /// Syscall names this libseccomp does not know, ignored as runc does.
    pub ignored_syscalls: Vec<String>,
    /// Syscalls listed with the default action itself: no rule is needed, but they count
    /// as known to the profile for the `ENOSYS` stub.
    pub redundant_syscalls: Vec<String>,
}

/// Maps a spec action and its `errnoRet` to an [`Action`]; `field` names the entry.
pub fn translate_action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    field: &str,
) -> Result<Action> {
    let errno = |v: Option<u32>| -> Result<u16> {
        match v {
            None => Ok(DEFAULT_ERRNO),
            Some(v) => u16::try_from(v).map_err(|_| SeccompError::ErrnoRange {
                field: field.to_string(),
                value: v,
            }),
        }
    };
    // errnoRet on any other action is ignored, as runc does.
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            Action::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => Action::KillProcess,
        LinuxSeccompAction::ScmpActTrap => Action::Trap,
        LinuxSeccompAction::ScmpActErrno => Action::Errno(errno(errno_ret)?),
        LinuxSeccompAction::ScmpActTrace => Action::Trace(errno(errno_ret)?),
        LinuxSeccompAction::ScmpActAllow => Action::Allow,
        LinuxSeccompAction::ScmpActLog => Action::Log,
        LinuxSeccompAction::ScmpActNotify => Action::Notify,
    })
}

/// Maps a spec architecture to libseccomp's.
pub fn translate_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// Maps a spec operator (with the condition's `value` and `valueTwo`) to a [`Condition`].
pub fn translate_condition(
    index: u32,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
) -> Condition {
    let (op, value) = match op {
        LinuxSeccompOperator::ScmpCmpNe => (CompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (CompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (CompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (CompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (CompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (CompareOp::Greater, value),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (CompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    };
    Condition { index, op, value }
}

/// Whether this host's libseccomp can build filters for `arch`.
pub fn arch_supported(arch: Arch) -> bool {
    let arch = translate_arch(arch);
    let Ok(mut ctx) = ScmpFilterContext::new(ScmpAction::Allow) else {
        return false;
    };
    match ctx.is_arch_present(arch) {
        Ok(true) => true,
        _ => ctx.add_arch(arch).is_ok(),
    }
}

/// Whether libseccomp knows this syscall name (on any architecture it supports).
pub fn syscall_known(name: &str) -> bool {
    ScmpSyscall::from_name(name).is_ok()
}

/// Validates `linux.seccomp` and translates it into a [`Filter`]; loads nothing.
pub fn compile(spec: &LinuxSeccomp) -> Result<Filter> {
    let default_action = translate_action(
        spec.default_action(),
        spec.default_errno_ret(),
        "defaultErrnoRet",
    )?;
    if default_action == Action::Notify {
        return Err(SeccompError::NotifyAsDefault);
    }

    let mut architectures = Vec::new();
    for arch in spec.architectures().iter().flatten() {
        let arch = translate_arch(*arch);
        if !architectures.contains(&arch) {
            architectures.push(arch);
        }
    }

    let mut flags = Flags::default();
    for flag in spec.flags().iter().flatten() {
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => flags.log = true,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flags.spec_allow = true,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                flags.wait_killable_recv = true
            }
            // The container's init is single-threaded when the filter is loaded, and
            // other threads end at execve anyway: nothing to synchronise (runc does the same).
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {}
        }
    }

    let mut rules = Vec::new();
    let mut ignored_syscalls = Vec::new();
    let mut redundant_syscalls = Vec::new();
    for (index, entry) in spec.syscalls().iter().flatten().enumerate() {
        if entry.names().is_empty() {
            return Err(SeccompError::NoNames { index });
        }
        let action = translate_action(
            entry.action(),
            entry.errno_ret(),
            &format!("syscalls[{index}].errnoRet"),
        )?;
        if action == Action::Notify {
            if entry.names().iter().any(|n| n == "write") {
                return Err(SeccompError::NotifyOnWrite { index });
            }
            if spec.listener_path().is_none() {
                return Err(SeccompError::NotifyWithoutListener { index });
            }
        }
        let mut conditions = Vec::new();
        for (arg, cond) in entry.args().iter().flatten().enumerate() {
            if cond.index() >= MAX_SYSCALL_ARGS {
                return Err(SeccompError::ArgIndex {
                    index,
                    arg,
                    value: cond.index(),
                });
            }
            conditions.push(translate_condition(
                cond.index() as u32,
                cond.op(),
                cond.value(),
                cond.value_two(),
            ));
        }
        for name in entry.names() {
            if name.is_empty() {
                return Err(SeccompError::EmptyName { index });
            }
            if !syscall_known(name) {
                if !ignored_syscalls.contains(name) {
                    ignored_syscalls.push(name.clone());
                }
                continue;
            }
            if action == default_action {
                // Redundant, and libseccomp refuses it.
                if !redundant_syscalls.contains(name) {
                    redundant_syscalls.push(name.clone());
                }
                continue;
            }
            rules.extend(split_conditions(name, index, action, &conditions));
        }
    }

    Ok(Filter {
        default_action,
        architectures,
        flags,
        rules,
        ignored_syscalls,
        redundant_syscalls,
    })
}

/// One rule with all conditions (ANDed), unless two conditions test the same argument:
/// libseccomp cannot AND those, so (as runc) each becomes its own rule.
fn split_conditions(name: &str, entry: usize, action: Action, conds: &[Condition]) -> Vec<Rule> {
    let mut seen = HashSet::new();
    let repeated = conds.iter().any(|c| !seen.insert(c.index));
    let rule = |conditions: Vec<Condition>| Rule {
        name: name.to_string(),
        entry,
        action,
        conditions,
    };
    if repeated {
        conds.iter().map(|c| rule(vec![*c])).collect()
    } else {
        vec![rule(conds.to_vec())]
    }
}

impl Filter {
    /// Whether any rule asks for `SCMP_ACT_NOTIFY` (so loading yields a listener fd).
    pub fn uses_notify(&self) -> bool {
        self.rules.iter().any(|r| r.action == Action::Notify)
    }

    /// The `seccomp(2)` flags this filter is installed with.
    pub fn kernel_flags(&self) -> libc::c_uint {
        let mut flags = 0;
        if self.flags.log {
            flags |= SECCOMP_FILTER_FLAG_LOG;
        }
        if self.flags.spec_allow {
            flags |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
        }
        if self.uses_notify() {
            flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
            if self.flags.wait_killable_recv {
                flags |= SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
            }
        }
        flags
    }

    /// Builds the libseccomp context for this filter (no kernel state is changed).
    fn context(&self) -> Result<ScmpFilterContext> {
        let lib = |context: String| move |source| SeccompError::Libseccomp { context, source };
        let mut ctx = ScmpFilterContext::new(self.default_action.to_scmp())
            .map_err(lib("linux.seccomp.defaultAction".into()))?;
        for arch in &self.architectures {
            let present = ctx
                .is_arch_present(*arch)
                .map_err(lib(format!("linux.seccomp.architectures: {arch:?}")))?;
            if !present {
                ctx.add_arch(*arch).map_err(lib(format!(
                    "linux.seccomp.architectures: {arch:?} is not supported by libseccomp"
                )))?;
            }
        }
        if self.rules.len() > OPTIMIZE_ABOVE_RULES {
            // Older libseccomp lacks the binary tree; the filter is still correct without it.
            let _ = ctx.set_ctl_optimize(2);
        }
        for rule in &self.rules {
            let what = || format!("linux.seccomp.syscalls[{}] ({})", rule.entry, rule.name);
            let nr = ScmpSyscall::from_name(&rule.name).map_err(lib(what()))?;
            let conds: Vec<ScmpArgCompare> = rule.conditions.iter().map(|c| c.to_scmp()).collect();
            if conds.is_empty() {
                ctx.add_rule(rule.action.to_scmp(), nr)
            } else {
                ctx.add_rule_conditional(rule.action.to_scmp(), nr, &conds)
            }
            .map_err(lib(what()))?;
        }
        Ok(ctx)
    }

    /// The BPF program (array of `struct sock_filter`, 8 bytes each) for this filter:
    /// runc's `ENOSYS` stub (see [`enosys`]) followed by libseccomp's program.
    pub fn to_bpf(&self) -> Result<Vec<u8>> {
        let mut bpf = enosys::to_bytes(&enosys::stub(self));
        bpf.extend(self.libseccomp_bpf()?);
        Ok(bpf)
    }

    /// libseccomp's BPF program for this filter, without the `ENOSYS` stub.
    pub fn libseccomp_bpf(&self) -> Result<Vec<u8>> {
        let ctx = self.context()?;
        // SAFETY: memfd_create with a static NUL-terminated name and valid flags.
        let raw = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(SeccompError::Sys {
                op: "memfd_create",
                source: nix::errno::Errno::last(),
            });
        }
        // SAFETY: raw is a fresh fd we own.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        ctx.export_bpf(&file)
            .map_err(|source| SeccompError::Libseccomp {
                context: "exporting the BPF program".into(),
                source,
            })?;
        let io = |e: std::io::Error| SeccompError::Sys {
            op: "reading the exported BPF program",
            source: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        };
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut bpf = Vec::new();
        file.read_to_end(&mut bpf).map_err(io)?;
        Ok(bpf)
    }

    /// Installs the filter on the calling thread. Needs `no_new_privs` or `CAP_SYS_ADMIN`.
    /// Returns the notify listener fd when a rule uses `SCMP_ACT_NOTIFY`.
    pub fn load(self) -> Result<Option<OwnedFd>> {
        let mut bpf = self.to_bpf()?;
        let insn = std::mem::size_of::<libc::sock_filter>();
        if bpf.is_empty()
            || !bpf.len().is_multiple_of(insn)
            || bpf.len() / insn > usize::from(u16::MAX)
        {
            return Err(SeccompError::Sys {
                op: "libseccomp exported a malformed BPF program",
                source: nix::errno::Errno::EINVAL,
            });
        }
        let prog = libc::sock_fprog {
            len: (bpf.len() / insn) as u16,
            filter: bpf.as_mut_ptr().cast::<libc::sock_filter>(),
        };
        let flags = self.kernel_flags();
        // SAFETY: prog points at `len` sock_filter structs that live in `bpf` for the
        // duration of the call; the kernel copies the program.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc < 0 {
            let errno = nix::errno::Errno::last();
            return Err(SeccompError::Sys {
                op: match errno {
                    nix::errno::Errno::EACCES => {
                        "loading the filter (needs noNewPrivileges or CAP_SYS_ADMIN)"
                    }
                    nix::errno::Errno::EINVAL => {
                        "loading the filter (a flag is not supported by this kernel)"
                    }
                    _ => "loading the filter",
                },
                source: errno,
            });
        }
        if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
            let fd = i32::try_from(rc).map_err(|_| SeccompError::Sys {
                op: "seccomp returned an invalid listener fd",
                source: nix::errno::Errno::EBADF,
            })?;
            // SAFETY: with NEW_LISTENER the kernel returns a new fd owned by us.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // The kernel sets O_CLOEXEC on the listener already; make sure.
            nix::fcntl::fcntl(
                &fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(|source| SeccompError::Sys {
                op: "setting CLOEXEC on the listener fd",
                source,
            })?;
            Ok(Some(fd))
        } else {
            Ok(None)
        }
    }
}

/// The JSON runc sends with the listener fd (runtime-spec `ContainerProcessState`).
pub fn container_process_state(
    pid: i32,
    listener_metadata: Option<&str>,
    state_json: &[u8],
) -> Result<Vec<u8>> {
    let state: serde_json::Value =
        serde_json::from_slice(state_json).map_err(SeccompError::StateJson)?;
    let mut msg = serde_json::json!({
        "ociVersion": oci_spec::runtime::VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(meta) = listener_metadata {
        msg["metadata"] = serde_json::Value::String(meta.to_string());
    }
    serde_json::to_vec(&msg).map_err(SeccompError::StateJson)
}

/// Sends the listener fd to the seccomp agent at `listener_path` over SCM_RIGHTS, with
/// runc's `containerProcessState` JSON as the message; the pid is the one in `state_json`.
pub fn send_listener_fd(
    listener_path: &Path,
    listener_metadata: Option<&str>,
    fd: BorrowedFd<'_>,
    state_json: &[u8],
) -> Result<()> {
    let pid = pid_of_state(state_json)?;
    send_listener_fd_for_pid(listener_path, listener_metadata, fd, state_json, pid)
}

/// The `pid` of a runtime-spec state JSON (0 when absent).
pub fn pid_of_state(state_json: &[u8]) -> Result<i32> {
    Ok(serde_json::from_slice::<serde_json::Value>(state_json)
        .map_err(SeccompError::StateJson)?
        .get("pid")
        .and_then(serde_json::Value::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or(0))
}

/// As [`send_listener_fd`], for a process other than the container's init (`exec`).
pub fn send_listener_fd_for_pid(
    listener_path: &Path,
    listener_metadata: Option<&str>,
    fd: BorrowedFd<'_>,
    state_json: &[u8],
    pid: i32,
) -> Result<()> {
    let stream = UnixStream::connect(listener_path).map_err(|source| SeccompError::Listener {
        path: listener_path.to_path_buf(),
        source,
    })?;
    send_listener_fd_on(
        &stream,
        listener_path,
        listener_metadata,
        fd,
        state_json,
        pid,
    )
}

/// Connects to the seccomp agent of `spec` when a rule uses `SCMP_ACT_NOTIFY`: the
/// container's init does it before `pivot_root`, while the host path is reachable.
pub fn connect_agent(spec: &LinuxSeccomp) -> Result<Option<UnixStream>> {
    let notify = spec
        .syscalls()
        .iter()
        .flatten()
        .any(|s| s.action() == LinuxSeccompAction::ScmpActNotify);
    match spec.listener_path() {
        Some(path) if notify => {
            UnixStream::connect(path)
                .map(Some)
                .map_err(|source| SeccompError::Listener {
                    path: path.clone(),
                    source,
                })
        }
        _ => Ok(None),
    }
}

/// As [`send_listener_fd_for_pid`], on a connection made earlier ([`connect_agent`]).
pub fn send_listener_fd_on(
    stream: &UnixStream,
    listener_path: &Path,
    listener_metadata: Option<&str>,
    fd: BorrowedFd<'_>,
    state_json: &[u8],
    pid: i32,
) -> Result<()> {
    let msg = container_process_state(pid, listener_metadata, state_json)?;
    let err = |source: std::io::Error| SeccompError::Listener {
        path: listener_path.to_path_buf(),
        source,
    };
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(&msg)];
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| err(e.into()))?;
    if sent != msg.len() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write: {sent} of {} bytes", msg.len()),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSeccomp;

    fn spec(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).expect("test spec parses")
    }

    #[test]
    fn actions_translate_like_runc() {
        use LinuxSeccompAction::*;
        let cases: &[(LinuxSeccompAction, Option<u32>, Action)] = &[
            (ScmpActKill, None, Action::KillThread),
            (ScmpActKillThread, None, Action::KillThread),
            (ScmpActKillProcess, None, Action::KillProcess),
            (ScmpActTrap, None, Action::Trap),
            (ScmpActErrno, None, Action::Errno(1)),
            (ScmpActErrno, Some(38), Action::Errno(38)),
            (ScmpActErrno, Some(0), Action::Errno(0)),
            (ScmpActTrace, None, Action::Trace(1)),
            (ScmpActTrace, Some(7), Action::Trace(7)),
            (ScmpActAllow, None, Action::Allow),
            (ScmpActAllow, Some(5), Action::Allow),
            (ScmpActLog, None, Action::Log),
            (ScmpActNotify, None, Action::Notify),
        ];
        for (a, e, want) in cases {
            assert_eq!(
                translate_action(*a, *e, "f").expect("valid"),
                *want,
                "{a:?} {e:?}"
            );
        }
        let err = translate_action(ScmpActErrno, Some(70000), "syscalls[3].errnoRet")
            .expect_err("errno too big");
        assert!(err.to_string().contains("syscalls[3].errnoRet"), "{err}");
        assert!(err.to_string().contains("70000"), "{err}");
    }

    #[test]
    fn operators_translate() {
        use LinuxSeccompOperator::*;
        let cases: &[(LinuxSeccompOperator, u64, Option<u64>, CompareOp, u64)] = &[
            (ScmpCmpNe, 1, None, CompareOp::NotEqual, 1),
            (ScmpCmpLt, 2, None, CompareOp::Less, 2),
            (ScmpCmpLe, 3, Some(9), CompareOp::LessOrEqual, 3),
            (ScmpCmpEq, 4, None, CompareOp::Equal, 4),
            (ScmpCmpGe, 5, None, CompareOp::GreaterEqual, 5),
            (ScmpCmpGt, 6, None, CompareOp::Greater, 6),
            (
                ScmpCmpMaskedEq,
                0x7e020000,
                Some(0),
                CompareOp::MaskedEqual(0x7e020000),
                0,
            ),
            (
                ScmpCmpMaskedEq,
                0xff,
                Some(0x10),
                CompareOp::MaskedEqual(0xff),
                0x10,
            ),
            (ScmpCmpMaskedEq, 0xff, None, CompareOp::MaskedEqual(0xff), 0),
        ];
        for (op, v, v2, want_op, want_v) in cases {
            let c = translate_condition(2, *op, *v, *v2);
            assert_eq!(
                c,
                Condition {
                    index: 2,
                    op: *want_op,
                    value: *want_v
                },
                "{op:?}"
            );
        }
    }

    #[test]
    fn arches_translate() {
        let cases = [
            (Arch::ScmpArchNative, ScmpArch::Native),
            (Arch::ScmpArchX86, ScmpArch::X86),
            (Arch::ScmpArchX86_64, ScmpArch::X8664),
            (Arch::ScmpArchX32, ScmpArch::X32),
            (Arch::ScmpArchArm, ScmpArch::Arm),
            (Arch::ScmpArchAarch64, ScmpArch::Aarch64),
            (Arch::ScmpArchMips64n32, ScmpArch::Mips64N32),
            (Arch::ScmpArchPpc64le, ScmpArch::Ppc64Le),
            (Arch::ScmpArchS390x, ScmpArch::S390X),
            (Arch::ScmpArchRiscv64, ScmpArch::Riscv64),
        ];
        for (a, want) in cases {
            assert_eq!(translate_arch(a), want);
        }
    }

    #[test]
    fn compile_cases() {
        struct Case {
            name: &'static str,
            json: serde_json::Value,
            check: fn(&Filter),
        }
        let cases = [
            Case {
                name: "default errno and rules",
                json: serde_json::json!({
                    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
                    "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                              "SECCOMP_FILTER_FLAG_TSYNC"],
                    "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]
                }),
                check: |f| {
                    assert_eq!(f.default_action, Action::Errno(38));
                    assert_eq!(f.architectures, vec![ScmpArch::X8664, ScmpArch::X86]);
                    assert_eq!(
                        f.flags,
                        Flags {
                            log: true,
                            spec_allow: true,
                            wait_killable_recv: false
                        }
                    );
                    assert_eq!(f.rules.len(), 2);
                    assert_eq!(f.rules[1].name, "write");
                    assert_eq!(
                        f.kernel_flags(),
                        SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW
                    );
                },
            },
            Case {
                name: "unknown syscalls ignored, rules equal to default skipped",
                json: serde_json::json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [
                        {"names": ["no_such_syscall_berth", "getcwd"], "action": "SCMP_ACT_ERRNO"},
                        {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
                    ]
                }),
                check: |f| {
                    assert_eq!(
                        f.ignored_syscalls,
                        vec!["no_such_syscall_berth".to_string()]
                    );
                    assert_eq!(f.rules.len(), 1);
                    assert_eq!(f.rules[0].action, Action::Errno(1));
                },
            },
            Case {
                name: "conditions on distinct args are ANDed in one rule",
                json: serde_json::json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                        "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                                 {"index": 1, "value": 255, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]}]
                }),
                check: |f| {
                    assert_eq!(f.rules.len(), 1);
                    assert_eq!(f.rules[0].conditions.len(), 2);
                    assert_eq!(f.rules[0].conditions[1].op, CompareOp::MaskedEqual(255));
                    assert_eq!(f.rules[0].conditions[1].value, 3);
                },
            },
            Case {
                name: "conditions on the same arg become separate rules",
                json: serde_json::json!({
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                                 {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                                 {"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}]}]
                }),
                check: |f| {
                    assert_eq!(f.rules.len(), 3);
                    assert!(f.rules.iter().all(|r| r.conditions.len() == 1));
                },
            },
            Case {
                name: "notify gives a listener flag",
                json: serde_json::json!({
                    "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                    "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
                }),
                check: |f| {
                    assert!(f.uses_notify());
                    assert_eq!(
                        f.kernel_flags(),
                        SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
                    );
                },
            },
            Case {
                name: "wait-killable without notify is dropped",
                json: serde_json::json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"}]
                }),
                check: |f| {
                    assert!(!f.uses_notify());
                    assert_eq!(f.kernel_flags(), 0);
                    assert_eq!(f.rules[0].action, Action::KillProcess);
                },
            },
        ];
        for case in cases {
            let f = compile(&spec(case.json)).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            (case.check)(&f);
            // Every accepted filter must also build into BPF (no kernel change).
            let bpf = f.to_bpf().unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert!(
                !bpf.is_empty() && bpf.len().is_multiple_of(8),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn compile_errors_name_the_entry() {
        let cases = [
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}),
                "defaultAction",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_LOG"},
                                 {"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
                "syscalls[1]",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
                "listenerPath",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}),
                "syscalls[0]: names is empty",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["read", ""], "action": "SCMP_ACT_ERRNO"}]}),
                "syscalls[0]: empty syscall name",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
                "syscalls[0].args[0]: index 6",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 65536}),
                "defaultErrnoRet",
            ),
        ];
        for (json, want) in cases {
            let err = compile(&spec(json.clone())).expect_err(&json.to_string());
            assert!(err.to_string().contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn unsupported_arch_fails_when_building() {
        // Debian 12's libseccomp 2.5 has no LoongArch: the error names the architecture.
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_LOONGARCH64"]
        })))
        .expect("valid spec");
        let err = f
            .to_bpf()
            .expect_err("libseccomp 2.5 cannot build LoongArch filters");
        assert!(err.to_string().contains("Loongarch64"), "{err}");
    }

    #[test]
    fn process_state_message_is_runc_shaped() {
        let state =
            br#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":42,"bundle":"/b"}"#;
        let msg = container_process_state(42, Some("meta"), state).expect("valid");
        let v: serde_json::Value = serde_json::from_slice(&msg).expect("json");
        assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(v["pid"], 42);
        assert_eq!(v["metadata"], "meta");
        assert_eq!(v["state"]["id"], "c1");
        assert!(container_process_state(1, None, b"not json").is_err());
        let no_meta = container_process_state(1, None, state).expect("valid");
        let v: serde_json::Value = serde_json::from_slice(&no_meta).expect("json");
        assert!(v.get("metadata").is_none());
    }
}
