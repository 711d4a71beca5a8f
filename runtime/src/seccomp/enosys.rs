//! The `ENOSYS` stub runc puts in front of every seccomp filter.
//!
//! A profile written before a syscall existed cannot name it, so the default action
//! (usually `EPERM`) would answer it, and libc would not fall back to an older syscall as
//! it does on `ENOSYS`. Like runc, berth prepends a few BPF instructions that, for each
//! architecture of the filter it knows (x86_64, x32, i386, aarch64, arm), return `ENOSYS`
//! for syscall numbers above the highest one the profile names; everything else goes on
//! to libseccomp's program unchanged. No stub is added when the default action lets
//! syscalls run (`ALLOW`, `LOG`, `TRACE`), as in runc.

use libseccomp::{ScmpArch, ScmpSyscall};

use super::{Action, Filter};

// Classic BPF opcodes used by the stub (linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// `AUDIT_ARCH_*` values the kernel puts in `seccomp_data.arch`.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
/// x32 syscalls carry this bit in their number on the x86_64 audit arch.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// `SECCOMP_RET_ERRNO | ENOSYS`.
const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant.
    pub k: u32,
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// Highest syscall number the profile names, per audit arch (x86_64 split by ABI).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Limits {
    x86_64: Option<u32>,
    x32: Option<u32>,
    i386: Option<u32>,
    aarch64: Option<u32>,
    arm: Option<u32>,
}

fn highest(names: &[&str], arch: ScmpArch) -> Option<u32> {
    names
        .iter()
        .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
        .map(ScmpSyscall::as_raw_syscall)
        .filter(|nr| *nr >= 0)
        .map(|nr| nr as u32)
        .max()
}

fn limits(filter: &Filter) -> Limits {
    let mut names: Vec<&str> = filter.rules.iter().map(|r| r.name.as_str()).collect();
    names.extend(filter.redundant_syscalls.iter().map(String::as_str));
    let mut arches = vec![ScmpArch::native()];
    arches.extend(filter.architectures.iter().map(|a| match a {
        ScmpArch::Native => ScmpArch::native(),
        other => *other,
    }));
    let mut l = Limits::default();
    for arch in arches {
        let slot = match arch {
            ScmpArch::X8664 => &mut l.x86_64,
            ScmpArch::X32 => &mut l.x32,
            ScmpArch::X86 => &mut l.i386,
            ScmpArch::Aarch64 => &mut l.aarch64,
            ScmpArch::Arm => &mut l.arm,
            _ => continue,
        };
        *slot = highest(&names, arch);
    }
    l
}

/// Jump offset from the instruction at `pc` to `target`.
fn rel(pc: usize, target: usize) -> u8 {
    u8::try_from(target - pc - 1).expect("the ENOSYS stub is far shorter than 255 instructions")
}

/// The stub for `filter` (empty when none is needed); prepend it to libseccomp's program.
pub fn stub(filter: &Filter) -> Vec<Insn> {
    if matches!(
        filter.default_action,
        Action::Allow | Action::Log | Action::Trace(_)
    ) {
        return Vec::new();
    }
    let l = limits(filter);
    // Each block: its audit arch and checks on the syscall number, as
    // (test x32 bit?, limit) pairs.
    enum Block {
        Plain(u32, u32),
        X86_64 {
            native: Option<u32>,
            x32: Option<u32>,
        },
    }
    let mut blocks = Vec::new();
    if l.x86_64.is_some() || l.x32.is_some() {
        blocks.push(Block::X86_64 {
            native: l.x86_64,
            x32: l.x32,
        });
    }
    for (arch, max) in [
        (AUDIT_ARCH_I386, l.i386),
        (AUDIT_ARCH_AARCH64, l.aarch64),
        (AUDIT_ARCH_ARM, l.arm),
    ] {
        if let Some(max) = max {
            blocks.push(Block::Plain(arch, max));
        }
    }
    if blocks.is_empty() {
        return Vec::new();
    }
    let block_len = |b: &Block| match b {
        Block::Plain(..) => 4,
        Block::X86_64 {
            native: Some(_),
            x32: Some(_),
        } => 6,
        Block::X86_64 { .. } => 5,
    };
    // Layout: blocks, `ja +1` (no block matched), `ret ENOSYS`, then the filter.
    let total: usize = blocks.iter().map(block_len).sum();
    let enosys = total + 1;
    let filter_start = total + 2;
    let mut out = Vec::with_capacity(filter_start);
    for b in &blocks {
        let start = out.len();
        let next = start + block_len(b);
        let (arch, checks): (u32, Vec<(Option<bool>, u32)>) = match b {
            Block::Plain(arch, max) => (*arch, vec![(None, *max)]),
            Block::X86_64 { native, x32 } => {
                let mut c = Vec::new();
                if let Some(m) = native {
                    c.push((Some(false), *m));
                }
                if let Some(m) = x32 {
                    c.push((Some(true), *m));
                }
                (AUDIT_ARCH_X86_64, c)
            }
        };
        out.push(insn(LD_W_ABS, 0, 0, DATA_ARCH));
        let pc = out.len();
        out.push(insn(JMP_JEQ_K, 0, rel(pc, next), arch));
        out.push(insn(LD_W_ABS, 0, 0, DATA_NR));
        match checks.as_slice() {
            [(None, max)] => {
                let pc = out.len();
                out.push(insn(
                    JMP_JGT_K,
                    rel(pc, enosys),
                    rel(pc, filter_start),
                    *max,
                ));
            }
            [(Some(x32), max)] => {
                // Only one ABI of x86_64 is in the filter: the other goes to libseccomp.
                let pc = out.len();
                let (jt, jf) = if *x32 {
                    (0, rel(pc, filter_start))
                } else {
                    (rel(pc, filter_start), 0)
                };
                out.push(insn(JMP_JSET_K, jt, jf, X32_SYSCALL_BIT));
                let pc = out.len();
                out.push(insn(
                    JMP_JGT_K,
                    rel(pc, enosys),
                    rel(pc, filter_start),
                    *max,
                ));
            }
            [(Some(false), native), (Some(true), x32)] => {
                let pc = out.len();
                out.push(insn(JMP_JSET_K, 1, 0, X32_SYSCALL_BIT));
                let pc2 = out.len();
                out.push(insn(
                    JMP_JGT_K,
                    rel(pc2, enosys),
                    rel(pc2, filter_start),
                    *native,
                ));
                let pc3 = out.len();
                out.push(insn(
                    JMP_JGT_K,
                    rel(pc3, enosys),
                    rel(pc3, filter_start),
                    *x32,
                ));
                debug_assert_eq!(pc + 3, next);
            }
            _ => unreachable!("blocks are built with one or two checks"),
        }
        debug_assert_eq!(out.len(), next);
    }
    out.push(insn(JMP_JA, 0, 0, 1));
    out.push(insn(RET_K, 0, 0, RET_ENOSYS));
    debug_assert_eq!(out.len(), filter_start);
    out
}

/// The stub as bytes in the kernel's `struct sock_filter` layout (host endian).
pub fn to_bytes(stub: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stub.len() * 8);
    for i in stub {
        out.extend(i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend(i.k.to_ne_bytes());
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::seccomp::{compile, runtime_default};

    /// A classic-BPF interpreter for seccomp programs, enough for libseccomp's output,
    /// so whole filters can be checked without loading them.
    pub(crate) fn run(bpf: &[u8], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::with_capacity(64);
        data.extend(nr.to_ne_bytes());
        data.extend(arch.to_ne_bytes());
        data.extend(0u64.to_ne_bytes());
        for a in args {
            data.extend(a.to_ne_bytes());
        }
        let prog: Vec<Insn> = bpf
            .chunks_exact(8)
            .map(|c| Insn {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            pc += 1;
            let jump =
                |cond: bool, pc: &mut usize| *pc += usize::from(if cond { i.jt } else { i.jf });
            match i.code {
                0x20 => {
                    let o = i.k as usize;
                    a = u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
                }
                0x00 => a = i.k,
                0x01 => x = i.k,
                0x60 => a = mem[i.k as usize],
                0x61 => x = mem[i.k as usize],
                0x02 => mem[i.k as usize] = a,
                0x03 => mem[i.k as usize] = x,
                0x87 => a = x,
                0x07 => x = a,
                0x54 => a &= i.k,
                0x05 => pc += i.k as usize,
                0x15 => jump(a == i.k, &mut pc),
                0x25 => jump(a > i.k, &mut pc),
                0x35 => jump(a >= i.k, &mut pc),
                0x45 => jump(a & i.k != 0, &mut pc),
                0x1d => jump(a == x, &mut pc),
                0x2d => jump(a > x, &mut pc),
                0x3d => jump(a >= x, &mut pc),
                0x06 => return i.k,
                0x16 => return a,
                other => panic!("opcode {other:#x} at {} not interpreted", pc - 1),
            }
        }
    }

    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = 0x0005_0001;

    fn spec(json: serde_json::Value) -> oci_spec::runtime::LinuxSeccomp {
        serde_json::from_value(json).expect("test spec parses")
    }

    #[test]
    fn runtime_default_answers_like_the_kernel_would() {
        let f = compile(&runtime_default()).expect("compiles");
        let bpf = f.to_bpf().expect("builds");
        let new_mask = 0x7e02_0000u64;
        // (arch, nr, arg0, want, what)
        let cases: &[(u32, u32, u64, u32, &str)] = &[
            (AUDIT_ARCH_X86_64, 0, 0, ALLOW, "read"),
            (AUDIT_ARCH_X86_64, 79, 0, ALLOW, "getcwd"),
            (AUDIT_ARCH_X86_64, 165, 0, EPERM, "mount"),
            (AUDIT_ARCH_X86_64, 272, 0, EPERM, "unshare"),
            (
                AUDIT_ARCH_X86_64,
                56,
                libc::SIGCHLD as u64,
                ALLOW,
                "clone(SIGCHLD)",
            ),
            (
                AUDIT_ARCH_X86_64,
                56,
                0x1000_0000 | 17,
                EPERM,
                "clone(CLONE_NEWUSER)",
            ),
            (
                AUDIT_ARCH_X86_64,
                56,
                new_mask,
                EPERM,
                "clone(all namespaces)",
            ),
            (AUDIT_ARCH_X86_64, 435, 0, RET_ENOSYS, "clone3"),
            (AUDIT_ARCH_X86_64, 41, 2, ALLOW, "socket(AF_INET)"),
            (AUDIT_ARCH_X86_64, 41, 40, EPERM, "socket(AF_VSOCK)"),
            (AUDIT_ARCH_X86_64, 135, 8, ALLOW, "personality(PER_LINUX32)"),
            (
                AUDIT_ARCH_X86_64,
                135,
                0x0040_0000,
                EPERM,
                "personality(other)",
            ),
            (
                AUDIT_ARCH_X86_64,
                462,
                0,
                RET_ENOSYS,
                "mseal, newer than the profile",
            ),
            (AUDIT_ARCH_X86_64, 1000, 0, RET_ENOSYS, "no such syscall"),
            (AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, 0, ALLOW, "x32 read"),
            (
                AUDIT_ARCH_X86_64,
                X32_SYSCALL_BIT | 1000,
                0,
                RET_ENOSYS,
                "x32 beyond",
            ),
            (AUDIT_ARCH_I386, 3, 0, ALLOW, "i386 read"),
            (AUDIT_ARCH_I386, 21, 0, EPERM, "i386 mount"),
            (AUDIT_ARCH_I386, 2000, 0, RET_ENOSYS, "i386 beyond"),
        ];
        for (arch, nr, arg0, want, what) in cases {
            let got = run(&bpf, *arch, *nr, [*arg0, 0, 0, 0, 0, 0]);
            assert_eq!(got, *want, "{what}: got {got:#x}, want {want:#x}");
        }
        // An architecture the profile does not list is refused outright.
        assert_ne!(run(&bpf, AUDIT_ARCH_AARCH64, 63, [0; 6]), ALLOW);
    }

    #[test]
    fn stub_only_when_the_default_refuses() {
        let cases = [
            ("SCMP_ACT_ALLOW", false),
            ("SCMP_ACT_LOG", false),
            ("SCMP_ACT_TRACE", false),
            ("SCMP_ACT_ERRNO", true),
            ("SCMP_ACT_KILL", true),
            ("SCMP_ACT_KILL_PROCESS", true),
            ("SCMP_ACT_TRAP", true),
        ];
        for (default, want) in cases {
            let f = compile(&spec(serde_json::json!({
                "defaultAction": default,
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
                             {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
            })))
            .expect("compiles");
            assert_eq!(!stub(&f).is_empty(), want, "{default}");
        }
    }

    #[test]
    fn highest_named_syscall_bounds_the_stub_including_redundant_entries() {
        // getcwd (79) is ERRNO like the default, so it makes no rule, but it is known to
        // the profile: 79 answers EPERM (the default), 80 and up ENOSYS.
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
        })))
        .expect("compiles");
        assert_eq!(f.redundant_syscalls, vec!["getcwd".to_string()]);
        let bpf = f.to_bpf().expect("builds");
        let cases: &[(u32, u32, u32)] = &[
            (AUDIT_ARCH_X86_64, 0, ALLOW),
            (AUDIT_ARCH_X86_64, 1, ALLOW),
            (AUDIT_ARCH_X86_64, 2, EPERM),
            (AUDIT_ARCH_X86_64, 79, EPERM),
            (AUDIT_ARCH_X86_64, 80, RET_ENOSYS),
            // x32 is not in this filter: libseccomp's bad-arch action, not our ENOSYS
            (AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 80, 0),
        ];
        for (arch, nr, want) in cases {
            let got = run(&bpf, *arch, *nr, [0; 6]);
            assert_eq!(got, *want, "nr {nr:#x}: got {got:#x}");
        }
    }

    #[test]
    fn masked_and_anded_conditions_evaluate_as_written() {
        let f = compile(&spec(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18,
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                         {"index": 1, "value": 0xff00, "valueTwo": 0x1200, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_GT"}]},
                {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"},
                         {"index": 0, "value": 4, "op": "SCMP_CMP_EQ"}]}]
        })))
        .expect("compiles");
        let bpf = f.to_bpf().expect("builds");
        let exdev = 0x0005_0000 | 18;
        let cases: &[(u32, [u64; 2], u32)] = &[
            (140, [1, 0x1234], exdev),
            (140, [1, 0x12ff], exdev),
            (140, [1, 0x1334], ALLOW),
            (140, [0, 0x1234], ALLOW),
            (79, [0, 11], EPERM),
            (79, [0, 10], ALLOW),
            (79, [0, 1 << 40], EPERM),
            // two conditions on the same argument: either matches
            (0, [3, 0], EPERM),
            (0, [4, 0], EPERM),
            (0, [5, 0], ALLOW),
        ];
        for (nr, [a0, a1], want) in cases {
            let got = run(&bpf, AUDIT_ARCH_X86_64, *nr, [*a0, *a1, 0, 0, 0, 0]);
            assert_eq!(got, *want, "nr {nr} args {a0:#x} {a1:#x}: got {got:#x}");
        }
    }
}
