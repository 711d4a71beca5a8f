//! Records which functions of one binary run, in which commands and in what order, in every process of
//! that binary a command starts (its forks and clones, and its re-executions of
//! itself), with a one-shot breakpoint (int3) at each function's entry: a function
//! costs one ptrace stop the first time it runs in a process, nothing after.
//! Processes that execute another program are let go at that exec.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::elf::Function;

/// The int3 instruction.
const INT3: u8 = 0xcc;

/// How the traced binary is recognised in a process (after any exec).
struct Identity {
    size: u64,
    head: Vec<u8>,
}

impl Identity {
    fn of(path: &Path) -> std::io::Result<Self> {
        let mut f = File::open(path)?;
        let size = f.metadata()?.len();
        let mut head = vec![0u8; 64 << 10];
        let n = f.read(&mut head)?;
        head.truncate(n);
        Ok(Identity { size, head })
    }
}

/// What the tracer knows of one traced process.
struct Proc {
    /// Load base of the traced binary in it.
    base: u64,
}

/// A function-entry tracer for one binary.
pub struct Tracer {
    binary: PathBuf,
    identity: Identity,
    funcs: Vec<Function>,
    /// Function index by address.
    by_addr: HashMap<u64, usize>,
    /// Original first byte of each function, by address (the same in every copy).
    orig: HashMap<u64, u8>,
    /// Functions that ran during the current `run`.
    seen: HashSet<usize>,
    /// Per function: in how many `run`s it ran, and when it first ran.
    runs: Vec<u32>,
    first: Vec<Option<usize>>,
    hits: usize,
    procs: HashMap<Pid, Proc>,
    /// New children announced by their parent's fork event, not stopped yet.
    announced: HashSet<Pid>,
    /// New children stopped before their parent's fork event was seen.
    early: HashSet<Pid>,
    /// Lowest and highest function address (the patched range).
    span: (u64, u64),
}

impl Tracer {
    /// A tracer for `binary`, whose function symbols are `funcs`.
    pub fn new(binary: &Path, funcs: Vec<Function>) -> anyhow::Result<Self> {
        if funcs.is_empty() {
            bail!("{}: no function symbols", binary.display());
        }
        let identity =
            Identity::of(binary).with_context(|| format!("reading {}", binary.display()))?;
        let funcs_len = funcs.len();
        let by_addr = funcs.iter().enumerate().map(|(i, f)| (f.addr, i)).collect();
        let lo = funcs.iter().map(|f| f.addr).min().unwrap_or(0);
        let hi = funcs.iter().map(|f| f.addr + 1).max().unwrap_or(0);
        Ok(Tracer {
            binary: binary.to_path_buf(),
            identity,
            funcs,
            by_addr,
            orig: HashMap::new(),
            seen: HashSet::new(),
            runs: vec![0; funcs_len],
            first: vec![None; funcs_len],
            hits: 0,
            procs: HashMap::new(),
            announced: HashSet::new(),
            early: HashSet::new(),
            span: (lo, hi),
        })
    }

    /// The functions that ran so far: those that ran in the most commands first, then
    /// in the order they first ran.
    pub fn order(&self) -> Vec<&Function> {
        let mut ran: Vec<usize> = (0..self.funcs.len())
            .filter(|&i| self.first[i].is_some())
            .collect();
        ran.sort_by_key(|&i| (std::cmp::Reverse(self.runs[i]), self.first[i]));
        ran.into_iter().map(|i| &self.funcs[i]).collect()
    }

    /// Runs `cmd` traced until it exits, and returns its exit code (128+signal when
    /// killed). Processes it left running (a container's init) stay traced until they
    /// exec another program or exit, while later commands run.
    pub fn run(&mut self, cmd: &mut Command) -> anyhow::Result<i32> {
        self.seen.clear();
        // SAFETY: the closure runs in the forked child before exec and makes one
        // async-signal-safe system call.
        unsafe {
            cmd.pre_exec(|| ptrace::traceme().map_err(std::io::Error::from));
        }
        let child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
        let leader = Pid::from_raw(i32::try_from(child.id()).context("pid")?);
        // The child stops with SIGTRAP once its exec succeeds.
        match waitpid(leader, Some(WaitPidFlag::__WALL))? {
            WaitStatus::Stopped(_, Signal::SIGTRAP) => {}
            other => bail!("{cmd:?}: unexpected first stop {other:?}"),
        }
        ptrace::setoptions(
            leader,
            Options::PTRACE_O_TRACEFORK
                | Options::PTRACE_O_TRACEVFORK
                | Options::PTRACE_O_TRACECLONE
                | Options::PTRACE_O_TRACEEXEC
                | Options::PTRACE_O_EXITKILL,
        )?;
        self.new_image(leader)?;
        ptrace::cont(leader, None)?;
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::__WALL)) {
                Ok(s) => s,
                Err(nix::errno::Errno::ECHILD) => bail!("{cmd:?}: lost its process"),
                Err(e) => return Err(e.into()),
            };
            match status {
                WaitStatus::Exited(pid, code) => {
                    self.procs.remove(&pid);
                    if pid == leader {
                        return Ok(code);
                    }
                }
                WaitStatus::Signaled(pid, sig, _) => {
                    self.procs.remove(&pid);
                    if pid == leader {
                        return Ok(128 + sig as i32);
                    }
                }
                WaitStatus::PtraceEvent(pid, _, ev) => {
                    if ev == Event::PTRACE_EVENT_FORK as i32
                        || ev == Event::PTRACE_EVENT_VFORK as i32
                        || ev == Event::PTRACE_EVENT_CLONE as i32
                    {
                        let child = Pid::from_raw(ptrace::getevent(pid)? as i32);
                        if let Some(p) = self.procs.get(&pid) {
                            let base = p.base;
                            self.procs.insert(child, Proc { base });
                        }
                        if self.early.remove(&child) {
                            ptrace::cont(child, None)?;
                        } else {
                            self.announced.insert(child);
                        }
                        ptrace::cont(pid, None)?;
                    } else if ev == Event::PTRACE_EVENT_EXEC as i32 {
                        self.procs.remove(&pid);
                        if self.is_traced_binary(pid) {
                            self.new_image(pid)?;
                            ptrace::cont(pid, None)?;
                        } else {
                            ptrace::detach(pid, None)?;
                        }
                    } else {
                        ptrace::cont(pid, None)?;
                    }
                }
                WaitStatus::Stopped(pid, Signal::SIGTRAP) => self.on_sigtrap(pid)?,
                WaitStatus::Stopped(pid, Signal::SIGSTOP) if self.announced.remove(&pid) => {
                    // The first stop of a newly attached child.
                    ptrace::cont(pid, None)?;
                }
                WaitStatus::Stopped(pid, Signal::SIGSTOP) if !self.procs.contains_key(&pid) => {
                    // A new child that stopped before its parent's fork event: it runs
                    // once that event says which image it has.
                    self.early.insert(pid);
                }
                WaitStatus::Stopped(pid, sig) => ptrace::cont(pid, sig)?,
                _ => {}
            }
        }
    }

    /// Whether `pid` now runs the traced binary (after an exec).
    fn is_traced_binary(&self, pid: Pid) -> bool {
        Identity::of(Path::new(&format!("/proc/{pid}/exe")))
            .is_ok_and(|id| id.size == self.identity.size && id.head == self.identity.head)
    }

    /// Finds the binary's load base in `pid` and puts a breakpoint at the entry of
    /// every function that has not run yet.
    fn new_image(&mut self, pid: Pid) -> anyhow::Result<()> {
        let base = load_base(pid)
            .with_context(|| format!("{}: not mapped in {pid}", self.binary.display()))?;
        let mem = mem(pid)?;
        let (lo, hi) = self.span;
        let mut text = vec![0u8; (hi - lo) as usize];
        mem.read_exact_at(&mut text, base + lo)
            .with_context(|| format!("reading the text of {pid}"))?;
        for (i, f) in self.funcs.iter().enumerate() {
            let off = (f.addr - lo) as usize;
            self.orig.entry(f.addr).or_insert(text[off]);
            if !self.seen.contains(&i) {
                text[off] = INT3;
            }
        }
        mem.write_all_at(&text, base + lo)
            .with_context(|| format!("writing breakpoints into {pid}"))?;
        self.procs.insert(pid, Proc { base });
        Ok(())
    }

    /// Handles a SIGTRAP stop: when it is one of our breakpoints, records the
    /// function, restores its first byte in this process and resumes it there;
    /// otherwise delivers the signal.
    fn on_sigtrap(&mut self, pid: Pid) -> anyhow::Result<()> {
        if !self.breakpoint_hit(pid)? {
            ptrace::cont(pid, Signal::SIGTRAP)?;
        }
        Ok(())
    }

    /// Whether the SIGTRAP stop of `pid` is one of our breakpoints; if so, records
    /// the function, restores its first byte in this process and resumes it there.
    fn breakpoint_hit(&mut self, pid: Pid) -> anyhow::Result<bool> {
        let Some(base) = self.procs.get(&pid).map(|p| p.base) else {
            return Ok(false);
        };
        let mut regs = ptrace::getregs(pid)?;
        let addr = regs.rip.wrapping_sub(1);
        let Some(&i) = addr.checked_sub(base).and_then(|a| self.by_addr.get(&a)) else {
            return Ok(false);
        };
        let orig = self.orig[&self.funcs[i].addr];
        mem(pid)?
            .write_all_at(&[orig], addr)
            .with_context(|| format!("restoring {} in {pid}", self.funcs[i].name))?;
        regs.rip = addr;
        ptrace::setregs(pid, regs)?;
        if self.seen.insert(i) {
            self.runs[i] += 1;
        }
        if self.first[i].is_none() {
            self.first[i] = Some(self.hits);
            self.hits += 1;
        }
        ptrace::cont(pid, None)?;
        Ok(true)
    }
}

fn mem(pid: Pid) -> anyhow::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .with_context(|| format!("opening /proc/{pid}/mem"))
}

/// The start of the mapping at file offset 0 of the process's executable.
fn load_base(pid: Pid) -> Option<u64> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let exe = exe.to_str()?.trim_end_matches(" (deleted)").to_string();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps_base(&maps, &exe)
}

/// In /proc/PID/maps text, the start address of `path`'s mapping at offset 0.
pub fn maps_base(maps: &str, path: &str) -> Option<u64> {
    maps.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let range = f.next()?;
        let _perms = f.next()?;
        let offset = f.next()?;
        let (_dev, _inode) = (f.next()?, f.next()?);
        let name: Vec<&str> = f.collect();
        let name = name.join(" ");
        let name = name.trim_end_matches(" (deleted)");
        (name == path && u64::from_str_radix(offset, 16).ok()? == 0)
            .then(|| u64::from_str_radix(range.split('-').next()?, 16).ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn marker_in_parent() -> u64 {
        std::hint::black_box(1)
    }
    #[inline(never)]
    fn marker_after_exec() -> u64 {
        std::hint::black_box(2)
    }
    #[inline(never)]
    fn marker_in_fork() -> u64 {
        std::hint::black_box(3)
    }
    #[inline(never)]
    fn marker_never_called() -> u64 {
        std::hint::black_box(4)
    }

    const ROLE: &str = "BERTH_TRACE_TEST_ROLE";

    /// The traced program: a no-op unless `tracer_follows_forks_and_re_execs` runs it.
    #[test]
    fn trace_target() {
        match std::env::var(ROLE).as_deref() {
            Ok("parent") => {
                marker_in_parent();
                // Re-execute this binary (a new image of the traced binary).
                let st = Command::new(std::env::current_exe().expect("exe"))
                    .args(["--exact", "orderfile::trace::tests::trace_target"])
                    .env(ROLE, "exec")
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("re-exec");
                assert!(st.success());
            }
            Ok("exec") => {
                marker_after_exec();
                // SAFETY: the child only calls a leaf function and _exit.
                match unsafe { nix::unistd::fork() }.expect("fork") {
                    nix::unistd::ForkResult::Child => {
                        marker_in_fork();
                        // SAFETY: leaves the forked child without running anything else.
                        unsafe { libc::_exit(0) }
                    }
                    nix::unistd::ForkResult::Parent { child } => {
                        let st = waitpid(child, None).expect("wait");
                        assert!(matches!(st, WaitStatus::Exited(_, 0)), "{st:?}");
                    }
                }
            }
            _ => {}
        }
    }

    #[test]
    fn tracer_follows_forks_and_re_execs() {
        let exe = std::env::current_exe().expect("exe");
        let funcs =
            super::super::elf::functions(&std::fs::read(&exe).expect("read")).expect("symbols");
        let mut t = Tracer::new(&exe, funcs).expect("tracer");
        let code = t
            .run(
                Command::new(&exe)
                    .args(["--exact", "orderfile::trace::tests::trace_target"])
                    .env(ROLE, "parent")
                    .stdout(std::process::Stdio::null()),
            )
            .expect("traced run");
        assert_eq!(code, 0);
        assert_eq!(marker_never_called(), 4);
        let ran: Vec<&str> = t.order().iter().map(|f| f.name.as_str()).collect();
        for m in ["marker_in_parent", "marker_after_exec", "marker_in_fork"] {
            assert!(ran.iter().any(|n| n.contains(m)), "{m} not recorded");
        }
        assert!(!ran.iter().any(|n| n.contains("marker_never_called")));
    }

    #[test]
    fn maps_base_finds_the_offset_zero_mapping() {
        let maps = "\
55d0c0000000-55d0c0010000 r--p 00000000 fe:00 12 /usr/bin/berth
55d0c0010000-55d0c0090000 r-xp 00010000 fe:00 12 /usr/bin/berth
7f0000000000-7f0000001000 r--p 00000000 00:01 99 /memfd:berth (deleted)
7fff00000000-7fff00021000 rw-p 00000000 00:00 0 [stack]
";
        assert_eq!(maps_base(maps, "/usr/bin/berth"), Some(0x55d0c0000000));
        assert_eq!(maps_base(maps, "/memfd:berth"), Some(0x7f0000000000));
        assert_eq!(maps_base(maps, "/usr/bin/other"), None);
        assert_eq!(maps_base("garbage\n", "/x"), None);
    }
}
