//! Device access rules: v1 `devices.allow`/`devices.deny` lines, and the v2
//! eBPF device filter (a `BPF_PROG_TYPE_CGROUP_DEVICE` program built here and
//! attached with the bpf(2) syscall).
//!
//! Reference: runtime-spec `config-linux.md` "Allowed Device list";
//! kernel `Documentation/admin-guide/cgroup-v1/devices.rst` and
//! `include/uapi/linux/bpf.h` (`struct bpf_cgroup_dev_ctx`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::plan::PlanError;

fn invalid(reason: String) -> PlanError {
    PlanError::Invalid {
        field: "devices",
        reason,
    }
}

/// A device rule checked and reduced to what both cgroup versions need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// `None` for every type, else `'b'` or `'c'`.
    pub typ: Option<char>,
    /// `None` for any major number.
    pub major: Option<u32>,
    /// `None` for any minor number.
    pub minor: Option<u32>,
    /// Access bits: [`ACC_MKNOD`], [`ACC_READ`], [`ACC_WRITE`].
    pub access: u32,
}

/// mknod access (`m`), as in `BPF_DEVCG_ACC_MKNOD`.
pub const ACC_MKNOD: u32 = 1;
/// read access (`r`), as in `BPF_DEVCG_ACC_READ`.
pub const ACC_READ: u32 = 2;
/// write access (`w`), as in `BPF_DEVCG_ACC_WRITE`.
pub const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

fn number(what: &str, v: Option<i64>, max: i64) -> Result<Option<u32>, PlanError> {
    match v {
        None | Some(-1) => Ok(None),
        Some(n) if (0..=max).contains(&n) => Ok(u32::try_from(n).ok()),
        Some(n) => Err(invalid(format!("{what} number {n} out of range"))),
    }
}

/// Checks one spec rule.
pub fn check_rule(r: &LinuxDeviceCgroup) -> Result<Rule, PlanError> {
    let typ = match r.typ() {
        None | Some(LinuxDeviceType::A) => None,
        Some(LinuxDeviceType::B) => Some('b'),
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some('c'),
        Some(LinuxDeviceType::P) => {
            return Err(invalid(
                "device type \"p\" (fifo) cannot be a cgroup device rule".into(),
            ));
        }
    };
    let access_s = r.access().as_deref().unwrap_or("rwm");
    if access_s.is_empty() {
        return Err(invalid("empty access string".into()));
    }
    let mut access = 0;
    for c in access_s.chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            c => {
                return Err(invalid(format!(
                    "access {access_s:?}: unknown letter {c:?}"
                )));
            }
        };
    }
    Ok(Rule {
        allow: r.allow(),
        typ,
        major: number("major", r.major(), 0xfff)?,
        minor: number("minor", r.minor(), 0xfffff)?,
        access,
    })
}

fn access_str(a: u32) -> String {
    let mut s = String::new();
    for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
        if a & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// The v1 writes for one spec rule: (`devices.allow` or `devices.deny`, line).
///
/// The kernel reads a line starting with `a` as "switch the default", whatever
/// follows; so a rule for all types that names a device or part of the access
/// is written as its `b` and `c` halves.
pub fn v1_lines(r: &LinuxDeviceCgroup) -> Result<Vec<(&'static str, String)>, PlanError> {
    let rule = check_rule(r)?;
    let file = if rule.allow {
        "devices.allow"
    } else {
        "devices.deny"
    };
    let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
    let acc = access_str(rule.access);
    let whole = rule.major.is_none() && rule.minor.is_none() && rule.access == ACC_ALL;
    let types = match rule.typ {
        Some(t) => vec![t],
        None if whole => vec!['a'],
        None => vec!['b', 'c'],
    };
    Ok(types
        .iter()
        .map(|t| {
            (
                file,
                format!("{t} {}:{} {acc}", n(rule.major), n(rule.minor)),
            )
        })
        .collect())
}

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register.
    pub dst: u8,
    /// Source register.
    pub src: u8,
    /// Signed offset (jumps, memory).
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

const LDX_W_MEM: u8 = 0x61;
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_X: u8 = 0xbc;
const ALU32_MOV_K: u8 = 0xb4;
const JMP_JNE_K: u8 = 0x55;
const JMP_JNE_X: u8 = 0x5d;
const JMP_EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// Builds the device filter program for `rules` (spec order: a later rule
/// overrides an earlier one), denying what no rule matches, as runc does.
///
/// Registers: r2 = device type, r3 = requested access, r4 = major, r5 = minor.
/// Rules are tested from last to first; the first match returns its verdict.
pub fn build_filter(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, PlanError> {
    let checked = rules
        .iter()
        .map(check_rule)
        .collect::<Result<Vec<_>, _>>()?;
    let mut prog = vec![
        insn(LDX_W_MEM, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_W_MEM, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_W_MEM, 4, 1, 4, 0),
        insn(LDX_W_MEM, 5, 1, 8, 0),
    ];
    for rule in checked.iter().rev() {
        // Each test is a list of instructions whose last one jumps past the block.
        let mut tests: Vec<Vec<Insn>> = Vec::new();
        if let Some(t) = rule.typ {
            let t = if t == 'b' { DEV_BLOCK } else { DEV_CHAR };
            tests.push(vec![insn(JMP_JNE_K, 2, 0, 0, t)]);
        }
        if rule.access != ACC_ALL {
            // The requested access must be a subset of the rule's.
            tests.push(vec![
                insn(ALU32_MOV_X, 1, 3, 0, 0),
                insn(ALU32_AND_K, 1, 0, 0, rule.access as i32),
                insn(JMP_JNE_X, 1, 3, 0, 0),
            ]);
        }
        if let Some(m) = rule.major {
            tests.push(vec![insn(JMP_JNE_K, 4, 0, 0, m as i32)]);
        }
        if let Some(m) = rule.minor {
            tests.push(vec![insn(JMP_JNE_K, 5, 0, 0, m as i32)]);
        }
        let unconditional = tests.is_empty();
        let mut block: Vec<Insn> = tests.into_iter().flatten().collect();
        block.push(insn(ALU32_MOV_K, 0, 0, 0, i32::from(rule.allow)));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K || ins.code == JMP_JNE_X {
                ins.off = i16::try_from(len - i - 1).expect("a rule block is a few instructions");
            }
        }
        prog.extend(block);
        if unconditional {
            // Earlier rules can never be reached.
            return Ok(prog);
        }
    }
    prog.push(insn(ALU32_MOV_K, 0, 0, 0, 0));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Ok(prog)
}

/// The program in the kernel's binary layout.
pub fn encode(prog: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for i in prog {
        out.push(i.code);
        out.push((i.dst & 0xf) | (i.src << 4));
        out.extend_from_slice(&i.off.to_le_bytes());
        out.extend_from_slice(&i.imm.to_le_bytes());
    }
    out
}

/// Errors loading or attaching the device filter.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// A bpf(2) command failed.
    #[error("bpf({cmd}) for the device filter of {path}: {source}{log}")]
    Syscall {
        /// The bpf command.
        cmd: &'static str,
        /// The cgroup directory.
        path: String,
        /// The errno.
        source: std::io::Error,
        /// The verifier log, if any.
        log: String,
    },
    /// The cgroup directory could not be opened.
    #[error("open {path}: {source}")]
    Open {
        /// The cgroup directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// A zeroed `union bpf_attr`, filled field by field at the kernel's offsets.
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn call(&mut self, cmd: libc::c_int) -> std::io::Result<libc::c_long> {
        // SAFETY: bpf(2) reads (and for QUERY writes) at most `size` bytes of
        // this buffer; every pointer stored in it refers to memory that lives
        // across the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                self.0.as_mut_ptr(),
                self.0.len() as libc::c_uint,
            )
        };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }
}

fn to_fd(r: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

fn load(prog: &[Insn], path: &str) -> Result<OwnedFd, BpfError> {
    let code = encode(prog);
    let license = c"Apache";
    let mut attr = Attr::new();
    attr.u32(0, BPF_PROG_TYPE_CGROUP_DEVICE)
        .u32(4, prog.len() as u32)
        .u64(8, code.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64);
    match attr.call(BPF_PROG_LOAD) {
        Ok(fd) => Ok(to_fd(fd)),
        Err(first) => {
            // Once more with the verifier log, to say why.
            let mut log = vec![0u8; 64 * 1024];
            attr.u32(24, 1)
                .u32(28, log.len() as u32)
                .u64(32, log.as_mut_ptr() as u64);
            let res = attr.call(BPF_PROG_LOAD);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
            match res {
                Ok(fd) => Ok(to_fd(fd)),
                Err(_) => Err(BpfError::Syscall {
                    cmd: "BPF_PROG_LOAD",
                    path: path.to_string(),
                    source: first,
                    log: if text.is_empty() {
                        String::new()
                    } else {
                        format!(" (verifier: {text})")
                    },
                }),
            }
        }
    }
}

/// Builds the filter for `rules` and makes it the only device program of the
/// v2 cgroup `dir`: the new program is attached first, then the ones that were
/// there are detached, so no instant is left unfiltered.
pub fn attach_filter(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), super::CgroupError> {
    let path = dir.display().to_string();
    let prog = build_filter(rules)?;
    let prog_fd = load(&prog, &path)?;
    let cg = std::fs::File::open(dir).map_err(|source| BpfError::Open {
        path: path.clone(),
        source,
    })?;
    let sys = |cmd: &'static str, source: std::io::Error| BpfError::Syscall {
        cmd,
        path: path.clone(),
        source,
        log: String::new(),
    };
    let mut ids = [0u32; 64];
    let mut q = Attr::new();
    q.u32(0, cg.as_raw_fd() as u32)
        .u32(4, BPF_CGROUP_DEVICE)
        .u64(16, ids.as_mut_ptr() as u64)
        .u32(24, ids.len() as u32);
    q.call(BPF_PROG_QUERY)
        .map_err(|e| sys("BPF_PROG_QUERY", e))?;
    let count = u32::from_ne_bytes([q.0[24], q.0[25], q.0[26], q.0[27]]) as usize;
    let old: Vec<u32> = ids[..count.min(ids.len())].to_vec();

    let mut a = Attr::new();
    a.u32(0, cg.as_raw_fd() as u32)
        .u32(4, prog_fd.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE)
        .u32(12, BPF_F_ALLOW_MULTI);
    a.call(BPF_PROG_ATTACH)
        .map_err(|e| sys("BPF_PROG_ATTACH", e))?;

    for id in old {
        let mut g = Attr::new();
        g.u32(0, id);
        let old_fd = match g.call(BPF_PROG_GET_FD_BY_ID) {
            Ok(fd) => to_fd(fd),
            // Gone meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(sys("BPF_PROG_GET_FD_BY_ID", e).into()),
        };
        let mut d = Attr::new();
        d.u32(0, cg.as_raw_fd() as u32)
            .u32(4, old_fd.as_raw_fd() as u32)
            .u32(8, BPF_CGROUP_DEVICE);
        match d.call(BPF_PROG_DETACH) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(sys("BPF_PROG_DETACH", e).into()),
        }
    }
    Ok(())
}

/// How many device programs are attached to the v2 cgroup `dir`.
pub fn attached_count(dir: &Path) -> Result<usize, super::CgroupError> {
    let path = dir.display().to_string();
    let cg = std::fs::File::open(dir).map_err(|source| BpfError::Open {
        path: path.clone(),
        source,
    })?;
    let mut q = Attr::new();
    q.u32(0, cg.as_raw_fd() as u32).u32(4, BPF_CGROUP_DEVICE);
    q.call(BPF_PROG_QUERY).map_err(|source| BpfError::Syscall {
        cmd: "BPF_PROG_QUERY",
        path,
        source,
        log: String::new(),
    })?;
    Ok(u32::from_ne_bytes([q.0[24], q.0[25], q.0[26], q.0[27]]) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).expect("test rules parse")
    }

    /// A tiny interpreter for the instructions build_filter emits.
    fn run(prog: &[Insn], typ: i32, access: u32, major: u32, minor: u32) -> u32 {
        let ctx = [(access << 16) | typ as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (d, s) = (usize::from(i.dst), usize::from(i.src));
            pc += 1;
            match i.code {
                LDX_W_MEM => {
                    assert_eq!(s, 1, "loads only from the context");
                    r[d] = u64::from(ctx[(i.off / 4) as usize]);
                }
                ALU32_AND_K => r[d] = (r[d] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[d] = ((r[d] as u32) >> i.imm) as u64,
                ALU32_MOV_X => r[d] = r[s] as u32 as u64,
                ALU32_MOV_K => r[d] = i.imm as u32 as u64,
                JMP_JNE_K => {
                    if r[d] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                JMP_JNE_X => {
                    if r[d] != r[s] {
                        pc += i.off as usize;
                    }
                }
                JMP_EXIT => return r[0] as u32,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    const C: i32 = DEV_CHAR;
    const B: i32 = DEV_BLOCK;
    const R: u32 = ACC_READ;
    const W: u32 = ACC_WRITE;
    const M: u32 = ACC_MKNOD;

    #[test]
    fn filter_decisions() {
        // Deny all, allow /dev/null rw, allow char 136:* rwm, deny /dev/null write again.
        let p = build_filter(&rules(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                {"allow": true, "type": "c", "major": 136, "access": "rwm"},
                {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}]"#,
        ))
        .expect("build");
        let cases = [
            (C, R, 1, 3, 1),
            (C, W, 1, 3, 0),
            (C, R | W, 1, 3, 1), // not a subset of the later deny's "w"
            (C, M, 1, 3, 0),
            (B, R, 1, 3, 0),
            (C, R, 1, 5, 0),
            (C, R | W | M, 136, 7, 1),
            (B, R, 136, 7, 0),
            (B, R, 8, 0, 0),
        ];
        for (t, a, maj, min, want) in cases {
            assert_eq!(
                run(&p, t, a, maj, min),
                want,
                "type {t} access {a} {maj}:{min}"
            );
        }
    }

    #[test]
    fn allow_all_and_empty() {
        let p = build_filter(&rules(r#"[{"allow": true}]"#)).expect("build");
        assert_eq!(run(&p, B, R | W, 8, 0), 1);
        assert_eq!(p.len(), 8, "prologue, then mov + exit");
        let p = build_filter(&[]).expect("build");
        assert_eq!(run(&p, C, R, 1, 3), 0);
        // A later allow-all shadows everything before it.
        let p = build_filter(&rules(
            r#"[{"allow": false, "type": "c", "major": 1}, {"allow": true}]"#,
        ))
        .expect("build");
        assert_eq!(run(&p, C, R, 1, 3), 1);
        assert_eq!(p.len(), 8);
    }

    #[test]
    fn encoding() {
        let p = build_filter(&rules(
            r#"[{"allow": true, "type": "b", "major": 8, "access": "r"}]"#,
        ))
        .expect("build");
        let bytes = encode(&p);
        assert_eq!(bytes.len(), p.len() * 8);
        // ldxw r2, [r1+0]
        assert_eq!(&bytes[..8], &[0x61, 0x12, 0, 0, 0, 0, 0, 0]);
        // ldxw r4, [r1+4]
        assert_eq!(&bytes[32..40], &[0x61, 0x14, 4, 0, 0, 0, 0, 0]);
        // first test of the block: jne r2, 1 (block), skip the 6 instructions after it
        assert_eq!(&bytes[48..56], &[0x55, 0x02, 6, 0, 1, 0, 0, 0]);
        // the program ends with "mov32 r0, 0; exit"
        let n = bytes.len();
        assert_eq!(
            &bytes[n - 16..],
            &[0xb4, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn v1_line_forms() {
        let cases = [
            (
                r#"{"allow": false, "access": "rwm"}"#,
                vec![("devices.deny", "a *:* rwm")],
            ),
            (
                r#"{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}"#,
                vec![("devices.allow", "c 1:3 rw")],
            ),
            (
                r#"{"allow": true, "type": "u", "major": 5, "minor": -1, "access": "mrw"}"#,
                vec![("devices.allow", "c 5:* rwm")],
            ),
            (
                r#"{"allow": true, "type": "b", "access": "m"}"#,
                vec![("devices.allow", "b *:* m")],
            ),
            (
                r#"{"allow": true, "type": "a", "major": 1, "access": "r"}"#,
                vec![("devices.allow", "b 1:* r"), ("devices.allow", "c 1:* r")],
            ),
        ];
        for (json, want) in cases {
            let r: LinuxDeviceCgroup = serde_json::from_str(json).expect("rule");
            let got = v1_lines(&r).expect(json);
            let want: Vec<(&str, String)> =
                want.into_iter().map(|(f, l)| (f, l.to_string())).collect();
            assert_eq!(got, want, "{json}");
        }
        for bad in [
            r#"{"allow": true, "type": "p"}"#,
            r#"{"allow": true, "access": ""}"#,
            r#"{"allow": true, "access": "rx"}"#,
            r#"{"allow": true, "major": 4096}"#,
            r#"{"allow": true, "minor": -2}"#,
        ] {
            let r: LinuxDeviceCgroup = serde_json::from_str(bad).expect("rule");
            assert!(v1_lines(&r).is_err(), "{bad}");
            assert!(build_filter(&[r]).is_err(), "{bad}");
        }
    }
}
