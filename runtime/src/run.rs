//! The commands that stay with a container's process: `run` and `exec` in the
//! foreground (waiting, forwarding signals, relaying a terminal), and `ps`, `events`,
//! `update`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth_runtime::console;
use berth_runtime::container::{self, CreateOpts, ExecOpts};
use berth_runtime::state::{StateRoot, Status};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{Capability, Process};

/// Flags of `berth exec`.
#[derive(clap::Args)]
pub struct ExecArgs {
    /// Unix socket to send the pty master to, with --tty.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Environment variable NAME=VALUE (repeatable).
    #[arg(short, long)]
    env: Vec<String>,
    /// Allocate a terminal.
    #[arg(short, long)]
    tty: bool,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    user: Option<String>,
    /// Additional group id (repeatable).
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// A process.json (runtime-spec process object) instead of the flags.
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Do not wait for the process to exit.
    #[arg(short, long)]
    detach: bool,
    /// File to write the process's PID to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// SELinux label (not available on this host).
    #[arg(long = "process-label")]
    process_label: Option<String>,
    /// AppArmor profile (not available on this host).
    #[arg(long)]
    apparmor: Option<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Add a capability (repeatable).
    #[arg(short, long = "cap")]
    cap: Vec<String>,
    /// Pass this many extra file descriptors (from 3).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Allow exec in a paused container.
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// Run in an existing sub-cgroup: PATH, or CONTROLLER[,CONTROLLER]:PATH (repeatable).
    #[arg(long)]
    cgroup: Vec<String>,
    /// Container id.
    id: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Largest process.json read.
const MAX_PROCESS_JSON: u64 = 4 << 20;

/// Builds the exec'd process from the container's own process and the flags, as runc.
fn build_process(base: &Process, a: &ExecArgs) -> Result<Process> {
    if a.process_label.as_deref().is_some_and(|l| !l.is_empty()) {
        bail!("--process-label: SELinux is not available on this host");
    }
    if a.apparmor.as_deref().is_some_and(|l| !l.is_empty()) {
        bail!("--apparmor: AppArmor is not available on this host");
    }
    if let Some(path) = &a.process {
        let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if meta.len() > MAX_PROCESS_JSON {
            bail!("{}: larger than {MAX_PROCESS_JSON} bytes", path.display());
        }
        let data = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let p: Process = serde_json::from_slice(&data)
            .with_context(|| format!("{}: not a runtime-spec process", path.display()))?;
        return Ok(p);
    }
    if a.command.is_empty() {
        bail!("exec: no command given");
    }
    let mut p = base.clone();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    let mut env = base.env().clone().unwrap_or_default();
    for e in &a.env {
        let Some((k, _)) = e.split_once('=') else {
            bail!("--env {e:?}: not NAME=VALUE");
        };
        env.retain(|x| x.split_once('=').map(|(xk, _)| xk) != Some(k));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let user = p.user_mut();
        user.set_uid(
            uid.parse()
                .with_context(|| format!("--user {u:?}: uid must be numeric"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .with_context(|| format!("--user {u:?}: gid must be numeric"))?,
            );
        }
    }
    if !a.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(a.additional_gids.clone()));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            let full = if name.to_ascii_uppercase().starts_with("CAP_") {
                name.to_ascii_uppercase()
            } else {
                format!("CAP_{}", name.to_ascii_uppercase())
            };
            let cap: Capability = serde_json::from_value(serde_json::Value::String(full))
                .map_err(|_| anyhow::anyhow!("--cap {name:?}: unknown capability"))?;
            for set in [
                caps.bounding().clone(),
                caps.effective().clone(),
                caps.permitted().clone(),
            ]
            .iter()
            .enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => caps.set_bounding(Some(s)),
                    1 => caps.set_effective(Some(s)),
                    _ => caps.set_permitted(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// The signals forwarded to a foreground container process.
fn forwarded() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
        Signal::SIGCONT,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
    ] {
        s.add(sig);
    }
    s
}

/// Prepares this process to wait for a container process it did not fork directly:
/// becomes a subreaper and blocks forwarded signals (read later through a signalfd).
fn become_waiter() -> Result<SigSet> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        bail!("set child subreaper: {}", std::io::Error::last_os_error());
    }
    let set = forwarded();
    set.thread_block().context("block signals")?;
    Ok(set)
}

/// Waits for `pid`, forwarding signals to it and relaying `tty` if given; returns the
/// exit code as a shell would report it.
fn wait_foreground(pid: i32, set: SigSet, tty: Option<OwnedFd>) -> Result<i32> {
    let sfd = SignalFd::with_flags(&set, nix::sys::signalfd::SfdFlags::SFD_CLOEXEC)
        .context("signalfd")?;
    let target = Pid::from_raw(pid);
    let stdin_tty = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
    let saved = match (&tty, stdin_tty) {
        (Some(_), true) => {
            let t = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
            if let Some(orig) = &t {
                let mut raw = orig.clone();
                nix::sys::termios::cfmakeraw(&mut raw);
                let _ = nix::sys::termios::tcsetattr(
                    std::io::stdin(),
                    nix::sys::termios::SetArg::TCSANOW,
                    &raw,
                );
            }
            t
        }
        _ => None,
    };
    if let Some(m) = &tty {
        copy_winsize(m);
    }
    let mut exit: Option<i32> = None;
    let mut stdin_open = tty.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    let stdin = std::io::stdin();
    loop {
        if exit.is_some() && tty.is_none() {
            break;
        }
        let mut fds = vec![nix::poll::PollFd::new(
            sfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if let Some(m) = &tty {
            fds.push(nix::poll::PollFd::new(
                m.as_fd(),
                nix::poll::PollFlags::POLLIN,
            ));
            if stdin_open {
                fds.push(nix::poll::PollFd::new(
                    stdin.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                ));
            }
        }
        let timeout = if exit.is_some() { 100u16 } else { u16::MAX };
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(timeout)) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => bail!("poll: {e}"),
            Ok(0) if exit.is_some() => break,
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        if ready[0]
            && let Ok(Some(info)) = sfd.read_signal()
        {
            let sig = Signal::try_from(info.ssi_signo as i32).ok();
            match sig {
                Some(Signal::SIGCHLD) => loop {
                    match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(p, c)) if p == target => exit = Some(c),
                        Ok(WaitStatus::Signaled(p, s, _)) if p == target => {
                            exit = Some(128 + s as i32)
                        }
                        Ok(WaitStatus::StillAlive) | Err(_) => break,
                        Ok(_) => {}
                    }
                },
                Some(Signal::SIGWINCH) => {
                    if let Some(m) = &tty {
                        copy_winsize(m);
                    }
                }
                Some(s) => {
                    let _ = nix::sys::signal::kill(target, s);
                }
                None => {}
            }
        }
        if let Some(m) = &tty {
            if ready.get(1).copied().unwrap_or(false) {
                match nix::unistd::read(m, &mut buf) {
                    Ok(0) | Err(_) if exit.is_some() => break,
                    Ok(0) | Err(_) => {}
                    Ok(n) => {
                        use std::io::Write;
                        let mut out = std::io::stdout();
                        let _ = out.write_all(&buf[..n]);
                        let _ = out.flush();
                    }
                }
            }
            if stdin_open && ready.get(2).copied().unwrap_or(false) {
                match nix::unistd::read(std::io::stdin(), &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = nix::unistd::write(m, &buf[..n]);
                    }
                }
            }
        }
    }
    if let Some(t) = saved {
        let _ =
            nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &t);
    }
    Ok(exit.unwrap_or(255))
}

fn copy_winsize(master: &OwnedFd) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ on descriptors we hold, into/from a local winsize.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// A console socket of our own, for a terminal in the foreground without one given.
struct OwnConsole {
    dir: PathBuf,
    listener: UnixListener,
}

impl OwnConsole {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("berth-console-{}", std::process::id()));
        std::fs::create_dir_all(&dir).context("console socket dir")?;
        let listener = UnixListener::bind(dir.join("sock")).context("console socket")?;
        Ok(OwnConsole { dir, listener })
    }
    fn path(&self) -> PathBuf {
        self.dir.join("sock")
    }
    fn master(&self) -> Result<OwnedFd> {
        let (s, _) = self.listener.accept().context("console socket accept")?;
        Ok(console::recv_fd(&s)?)
    }
}

impl Drop for OwnConsole {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn exit_code(c: i32) -> ExitCode {
    ExitCode::from(c.clamp(0, 255) as u8)
}

/// `berth run`: create and start, then (unless detached) wait, relay and delete.
pub fn run(root: &StateRoot, mut o: CreateOpts, detach: bool, keep: bool) -> Result<ExitCode> {
    if detach {
        container::create(root, &o)?;
        if let Err(e) = container::start(root, &o.id) {
            let _ = container::delete(root, &o.id, true);
            return Err(e.into());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let set = become_waiter()?;
    let terminal = berth_runtime::spec::load_bundle(&o.bundle)
        .ok()
        .and_then(|b| b.spec.process().as_ref().and_then(|p| p.terminal()))
        .unwrap_or(false);
    let own = if terminal && o.console_socket.is_none() {
        let c = OwnConsole::new()?;
        o.console_socket = Some(c.path());
        Some(c)
    } else {
        None
    };
    let st = container::create(root, &o)?;
    let master = match &own {
        Some(c) => Some(c.master()?),
        None => None,
    };
    if let Err(e) = container::start(root, &o.id) {
        let _ = container::delete(root, &o.id, true);
        return Err(e.into());
    }
    let code = wait_foreground(st.pid, set, master)?;
    if !keep {
        container::delete(root, &o.id, true)?;
    }
    Ok(exit_code(code))
}

/// `berth exec`.
pub fn exec(root: &StateRoot, a: ExecArgs) -> Result<ExitCode> {
    let st = root.load(&a.id)?;
    if st.live_status(&root.dir(&a.id)?) == Status::Paused && !a.ignore_paused {
        bail!(
            "container {} is paused: cannot exec (use --ignore-paused)",
            a.id
        );
    }
    let base = st
        .config
        .process()
        .clone()
        .context("container has no process")?;
    let process = build_process(&base, &a)?;
    let terminal = process.terminal().unwrap_or(false);
    let mut o = ExecOpts {
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        cgroup: berth_runtime::cgroups::sub::SubCgroups::parse(&a.cgroup)?,
    };
    if a.detach {
        container::exec(root, &a.id, &process, &o)?;
        return Ok(ExitCode::SUCCESS);
    }
    let set = become_waiter()?;
    let own = if terminal && o.console_socket.is_none() {
        let c = OwnConsole::new()?;
        o.console_socket = Some(c.path());
        Some(c)
    } else {
        None
    };
    let pid = container::exec(root, &a.id, &process, &o)?;
    let master = match &own {
        Some(c) => Some(c.master()?),
        None => None,
    };
    Ok(exit_code(wait_foreground(pid, set, master)?))
}

/// `berth ps`.
pub fn ps(root: &StateRoot, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let st = root.load(id)?;
    let pids = st.cgroup.pids()?;
    match format {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("run ps")?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let col = header
                .split_whitespace()
                .position(|c| c == "PID")
                .context("ps output has no PID column")?;
            println!("{header}");
            for l in lines {
                let pid: Option<i32> = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{l}");
                }
            }
        }
        other => bail!("unknown format {other:?}: use table or json"),
    }
    Ok(())
}

/// Parses a Go-style duration ("5s", "100ms", "1m").
fn parse_interval(s: &str) -> Result<Duration> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .context("interval needs a unit, e.g. 5s")?;
    let n: f64 = num.parse().with_context(|| format!("interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("interval {s:?}: unknown unit {unit:?}"),
    };
    if !(secs > 0.0 && secs < 1e9) {
        bail!("interval {s:?} out of range");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `berth events`.
pub fn events(root: &StateRoot, id: &str, once: bool, interval: &str) -> Result<()> {
    let every = parse_interval(interval)?;
    let st = root.load(id)?;
    let dir = root.dir(id)?;
    let stats_line = |st: &berth_runtime::state::ContainerState| -> Result<String> {
        Ok(serde_json::json!({"type": "stats", "id": id, "data": st.cgroup.stats()?}).to_string())
    };
    if once {
        println!("{}", stats_line(&st)?);
        return Ok(());
    }
    let mut ooms = st.cgroup.oom_kill_count().unwrap_or(0);
    while st.live_status(&dir) != Status::Stopped {
        let n = st.cgroup.oom_kill_count().unwrap_or(ooms);
        if n > ooms {
            println!("{}", serde_json::json!({"type": "oom", "id": id}));
            ooms = n;
        }
        println!("{}", stats_line(&st)?);
        std::thread::sleep(every);
    }
    Ok(())
}

/// `berth update`.
pub fn update(root: &StateRoot, id: &str, a: &berth_runtime::cgroups::update::Args) -> Result<()> {
    let locked = root.lock(id)?;
    let mut st = locked.load()?;
    if st.live_status(&locked.dir) == Status::Stopped {
        bail!("container {id} is stopped: nothing to update");
    }
    let mut linux = st
        .config
        .linux()
        .clone()
        .context("container has no linux section")?;
    let current = linux.resources().clone().unwrap_or_default();
    let new = berth_runtime::cgroups::update::resources(a, &current)?;
    st.cgroup.update(&new)?;
    linux.set_resources(Some(new));
    st.config.set_linux(Some(linux));
    locked.save(&st)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ExecArgs,
    }

    fn base() -> Process {
        serde_json::from_value(serde_json::json!({
            "args": ["sh"], "cwd": "/", "env": ["PATH=/bin", "A=1"],
            "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
        }))
        .unwrap()
    }

    #[test]
    fn exec_flags_build_the_process() {
        let t = T::parse_from([
            "x", "-e", "A=2", "-e", "B=3", "--cwd", "/tmp", "-u", "1000:100", "-g", "5", "--cap",
            "net_raw", "-t", "c1", "echo", "-n", "hi",
        ]);
        let p = build_process(&base(), &t.a).unwrap();
        assert_eq!(p.args().as_deref().unwrap(), ["echo", "-n", "hi"]);
        assert_eq!(p.env().as_deref().unwrap(), ["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(p.cwd(), &PathBuf::from("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[5u32][..]));
        assert!(
            p.capabilities()
                .as_ref()
                .unwrap()
                .bounding()
                .as_ref()
                .unwrap()
                .contains(&Capability::NetRaw)
        );
        assert_eq!(p.terminal(), Some(true));
    }

    #[test]
    fn bad_exec_flags_are_refused() {
        for args in [
            vec!["x", "c1"],
            vec!["x", "-u", "bob", "c1", "true"],
            vec!["x", "-e", "NOEQ", "c1", "true"],
            vec!["x", "--cap", "CAP_NOPE", "c1", "true"],
            vec!["x", "--apparmor", "p", "c1", "true"],
        ] {
            let t = T::parse_from(args.clone());
            assert!(build_process(&base(), &t.a).is_err(), "{args:?}");
        }
    }

    #[test]
    fn intervals_parse_like_go() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_interval("1m").unwrap(), Duration::from_secs(60));
        for bad in ["5", "x", "0s", "-1s", "5d"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
