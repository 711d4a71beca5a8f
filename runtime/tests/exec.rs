//! Root integration tests of `berth exec` beyond the basics in lifecycle.rs: exec into a
//! `--no-pivot` container, the seccomp listener of an exec'd process, and `--cgroup`.

mod common;

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};

use common::*;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

fn run_detached(f: &Fixture, extra: &[&str]) {
    let mut c = f.berth();
    c.args(["run", "-d", "--bundle"])
        .arg(f.bundle())
        .args(extra)
        .arg(&f.id);
    let o = f.detached(c);
    assert!(o.status.success(), "run -d: {}", stderr(&o));
}

#[test]
fn exec_in_a_no_pivot_container_sees_the_container_root() {
    let f = Fixture::new("nopivot-exec", base_config(&["sleep", "1000"]));
    std::fs::write(f.bundle().join("rootfs/marker-in-rootfs"), "").unwrap();
    run_detached(&f, &["--no-pivot"]);
    let o = f.run(&[
        "exec",
        &f.id,
        "sh",
        "-c",
        "ls /; echo --; cd /..; ls; echo --; readlink /proc/self/root",
    ]);
    assert!(o.status.success(), "exec: {}", stderr(&o));
    let out = stdout(&o);
    let parts: Vec<&str> = out.split("--\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    assert!(
        parts[0].contains("marker-in-rootfs"),
        "ls / is not the rootfs: {out}"
    );
    assert_eq!(parts[0], parts[1], "/.. leaves the container root: {out}");
    assert_eq!(parts[2], "/\n", "{out}");
    // The process runs in the container's cwd semantics too.
    let o = f.run(&["exec", "--cwd", "/tmp", &f.id, "pwd"]);
    assert_eq!(stdout(&o), "/tmp\n", "stderr: {}", stderr(&o));
}

/// A seccomp agent: accepts connections, records each `containerProcessState`, and
/// answers every notification on every fd with "success, nothing done".
struct Agent {
    states: Arc<Mutex<Vec<serde_json::Value>>>,
}

fn recv_with_fd(sock: RawFd) -> Option<(Vec<u8>, OwnedFd)> {
    let mut buf = vec![0u8; 65536];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC).ok()?;
    let mut fd = None;
    for c in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS gave us new fds that we own.
            fd = fds.first().map(|f| unsafe { OwnedFd::from_raw_fd(*f) });
        }
    }
    let n = msg.bytes;
    buf.truncate(n);
    Some((buf, fd?))
}

impl Agent {
    fn start(listener: UnixListener) -> Agent {
        let states = Arc::new(Mutex::new(Vec::new()));
        let st = states.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let Some((msg, fd)) = recv_with_fd(conn.as_raw_fd()) else {
                    continue;
                };
                if let Ok(v) = serde_json::from_slice(&msg) {
                    st.lock().unwrap().push(v);
                }
                std::thread::spawn(move || {
                    use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
                    while let Ok(req) = ScmpNotifReq::receive(fd.as_raw_fd()) {
                        let mut r = ScmpNotifResp::new_val(0, 0, ScmpNotifRespFlags::empty());
                        r.id = req.id;
                        let _ = r.respond(fd.as_raw_fd());
                    }
                });
            }
        });
        Agent { states }
    }
    fn states(&self) -> Vec<serde_json::Value> {
        self.states.lock().unwrap().clone()
    }
    /// The states once at least `n` have arrived (the agent reads on its own thread).
    fn wait_states(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let s = self.states();
            if s.len() >= n || std::time::Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// A `sleep` container whose seccomp filter sends mkdir to an agent listening on a
/// host path the container cannot see; the written config, the agent and its socket.
fn with_agent(
    name: &str,
    metadata: Option<&str>,
) -> (Fixture, serde_json::Value, Agent, std::path::PathBuf) {
    let mut cfg = base_config(&["sleep", "1000"]);
    let f = Fixture::new(name, cfg.clone());
    let agent_dir = f.dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let sock = agent_dir.join("agent.sock");
    let agent = Agent::start(UnixListener::bind(&sock).expect("bind agent socket"));
    cfg["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    if let Some(m) = metadata {
        cfg["linux"]["seccomp"]["listenerMetadata"] = m.into();
    }
    f.write_config(&cfg);
    (f, cfg, agent, sock)
}

#[test]
fn exec_hands_its_seccomp_listener_to_the_agent() {
    let (f, cfg, agent, _sock) = with_agent("exec-notify", Some("exec-meta"));
    run_detached(&f, &[]);
    let init_pid = f.state().unwrap()["pid"].as_i64().unwrap();
    let script = "mkdir /tmp/faked && test ! -e /tmp/faked && echo agent-answered";

    // noNewPrivileges (from the container's process): the filter loads last.
    let pidfile = f.dir.path().join("exec.pid");
    let o = f.run(&[
        "exec",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &f.id,
        "sh",
        "-c",
        script,
    ]);
    assert!(o.status.success(), "exec: {}", stderr(&o));
    assert_eq!(stdout(&o), "agent-answered\n", "stderr: {}", stderr(&o));
    let exec_pid: i64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // Without noNewPrivileges (a process.json): the filter loads before the user switch.
    let mut process = cfg["process"].clone();
    process["noNewPrivileges"] = false.into();
    process["args"] = serde_json::json!(["sh", "-c", script]);
    let pjson = f.dir.path().join("process.json");
    std::fs::write(&pjson, process.to_string()).unwrap();
    let o = f.run(&["exec", "--process", pjson.to_str().unwrap(), &f.id]);
    assert!(o.status.success(), "exec --process: {}", stderr(&o));
    assert_eq!(stdout(&o), "agent-answered\n", "stderr: {}", stderr(&o));

    let states = agent.states();
    assert_eq!(states.len(), 3, "init + two execs: {states:?}");
    for s in &states {
        assert_eq!(s["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(s["metadata"], "exec-meta");
        assert_eq!(s["state"]["id"], f.id.as_str());
        assert_eq!(s["state"]["pid"], init_pid, "state is the container's");
    }
    assert_eq!(states[1]["pid"], exec_pid, "pid is the exec'd process's");
    assert_eq!(states[1]["state"]["status"], "running");
    assert_ne!(states[2]["pid"], init_pid);
}

#[test]
fn exec_seccomp_listener_unreachable_is_a_clear_error() {
    let (f, _cfg, agent, sock) = with_agent("exec-noagent", None);
    run_detached(&f, &[]);
    assert_eq!(agent.wait_states(1).len(), 1);
    // The agent goes away: exec must fail clearly, not run unsupervised.
    std::fs::remove_file(&sock).unwrap();
    let o = f.run(&["exec", &f.id, "sh", "-c", "echo ran"]);
    assert_one_line_error(&o, "listenerPath");
    assert_eq!(stdout(&o), "");
}

/// The exec'd process's cgroup per hierarchy, read from the host: controllers → path.
fn host_cgroups(pid: i64) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

fn exec_detached(f: &Fixture, flags: &[&str], tag: &str) -> Result<i64, String> {
    let pidfile = f.dir.path().join(format!("{tag}.pid"));
    let mut c = f.berth();
    c.args(["exec", "-d", "--pid-file"])
        .arg(&pidfile)
        .args(flags)
        .args([f.id.as_str(), "sleep", "1000"]);
    let o = f.detached(c);
    if !o.status.success() {
        return Err(stderr(&o));
    }
    Ok(std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap())
}

#[test]
fn exec_cgroup_runs_in_a_sub_cgroup() {
    let f = Fixture::new("exec-cgroup", base_config(&["sleep", "1000"]));
    run_detached(&f, &[]);
    let dirs = f.cgroup_dirs();
    assert!(!dirs.is_empty(), "no container cgroup");
    for d in &dirs {
        for sub in ["all", "m"] {
            std::fs::create_dir(d.join(sub)).unwrap();
            // A new v1 cpuset cgroup starts empty; its creator fills it in (as with runc).
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(d.join(file)) {
                    std::fs::write(d.join(sub).join(file), v.trim()).unwrap();
                }
            }
        }
    }
    let own = format!("/berth/{}", f.id);

    // PATH: every hierarchy.
    let pid = exec_detached(&f, &["--cgroup", "all"], "all").unwrap();
    let cgs = host_cgroups(pid);
    for (ctrls, path) in &cgs {
        let managed = ctrls.is_empty() || ctrls.split(',').any(|c| c == "memory" || c == "pids");
        if managed {
            assert_eq!(path, &format!("{own}/all"), "{ctrls}: {cgs:?}");
        }
    }
    // CONTROLLER:PATH: only that hierarchy moves.
    let pid = exec_detached(&f, &["--cgroup", "memory:m"], "mem").unwrap();
    let cgs = host_cgroups(pid);
    let of = |name: &str| {
        cgs.iter()
            .find(|(c, _)| c.split(',').any(|x| x == name))
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no {name} line: {cgs:?}"))
    };
    assert_eq!(of("memory"), format!("{own}/m"));
    assert_eq!(of("pids"), own);
    let pids = stdout(&f.run(&["ps", "--format", "json", &f.id]));
    let pids: Vec<i64> = serde_json::from_str(&pids).unwrap();
    assert_eq!(pids.len(), 3, "init and the two execs: {pids:?}");

    // A missing sub-cgroup, a climbing path, an unmounted controller: one-line errors,
    // no process left.
    for (flag, msg) in [
        ("nope", "does not exist"),
        ("../escape", ".."),
        ("nosuchctrl:x", "not mounted"),
    ] {
        let o = f.run(&["exec", "--cgroup", flag, &f.id, "sleep", "1000"]);
        assert_one_line_error(&o, msg);
    }
    let after = stdout(&f.run(&["ps", "--format", "json", &f.id]));
    let after: Vec<i64> = serde_json::from_str(&after).unwrap();
    assert_eq!(after, pids, "a refused exec left a process");
    for d in &dirs {
        assert!(!d.join("nope").exists());
    }
}

#[test]
fn exec_in_a_user_namespace_no_pivot_container() {
    let mut cfg = base_config(&["sleep", "1000"]);
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    cfg["linux"]["uidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    cfg["linux"]["gidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let f = Fixture::new("userns-exec", cfg);
    std::fs::write(f.bundle().join("rootfs/marker-in-rootfs"), "").unwrap();
    run_detached(&f, &["--no-pivot"]);
    let o = f.run(&[
        "exec",
        &f.id,
        "sh",
        "-c",
        "ls /; id -u; cat /proc/self/uid_map",
    ]);
    assert!(o.status.success(), "exec: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("marker-in-rootfs"), "{out}");
    assert!(out.contains("\n0\n"), "{out}");
    assert!(
        out.contains("100000"),
        "not in the container's user namespace: {out}"
    );
}
