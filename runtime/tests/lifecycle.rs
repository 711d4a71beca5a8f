//! Root integration tests of `berth`'s command line against the real kernel: the
//! lifecycle, isolation seen from inside, exec, bad input, and the security properties.

mod common;

use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn wait_status(f: &Fixture, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.status().as_deref() != Some(want) {
        assert!(
            Instant::now() < deadline,
            "status never became {want}: {:?}",
            f.status()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_reports_exit_status_and_cleans_up() {
    let f = Fixture::new(
        "exit",
        base_config(&["sh", "-c", "echo out; echo err >&2; exit 7"]),
    );
    let o = f.run_fg();
    assert_eq!(o.status.code(), Some(7), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    assert!(
        f.state().is_none(),
        "run without --keep deletes the container"
    );
    assert!(
        f.cgroup_dirs().is_empty(),
        "cgroup left: {:?}",
        f.cgroup_dirs()
    );
}

#[test]
fn create_start_kill_delete() {
    let f = Fixture::new("life", base_config(&["sleep", "1000"]));
    let pidfile = f.dir.path().join("pid");
    let o = f.create(&["--pid-file", pidfile.to_str().unwrap()]);
    assert!(o.status.success(), "create: {}", stderr(&o));
    let st = f.state().unwrap();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], f.id.as_str());
    assert_eq!(st["owner"], "root", "the owner's name, from /etc/passwd");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    assert!(!f.cgroup_dirs().is_empty(), "no cgroup made");

    let o = f.run(&["start", &f.id]);
    assert!(o.status.success(), "start: {}", stderr(&o));
    assert_eq!(f.status().as_deref(), Some("running"));
    // A second start is refused.
    assert_one_line_error(&f.run(&["start", &f.id]), "running");
    // A running container cannot be deleted without --force.
    assert_one_line_error(&f.run(&["delete", &f.id]), "not stopped");

    let list = stdout(&f.run(&["list", "--format", "json"]));
    assert!(list.contains(&f.id), "{list}");
    let ps = stdout(&f.run(&["ps", "--format", "json", &f.id]));
    let pids: Vec<i64> = serde_json::from_str(&ps).unwrap();
    assert!(pids.contains(&pid), "{ps}");

    let o = f.run(&["kill", &f.id, "KILL"]);
    assert!(o.status.success(), "kill: {}", stderr(&o));
    wait_status(&f, "stopped");
    assert_one_line_error(&f.run(&["kill", &f.id, "TERM"]), "not running");
    let o = f.run(&["delete", &f.id]);
    assert!(o.status.success(), "delete: {}", stderr(&o));
    assert!(f.state().is_none());
    assert!(
        f.cgroup_dirs().is_empty(),
        "cgroup left: {:?}",
        f.cgroup_dirs()
    );
    assert!(!f.root().join(&f.id).exists());
}

#[test]
fn isolation_seen_from_inside() {
    let script = "echo pid=$$; hostname; cat /proc/self/status | grep -E '^Cap(Eff|Bnd)|^NoNewPrivs'; \
                  touch /rootfile 2>/dev/null && echo rw || echo ro; \
                  ls /sys/class/net | tr '\\n' ' '; echo; ulimit -n";
    let f = Fixture::new("iso", base_config(&["sh", "-c", script]));
    let o = f.run_fg();
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(out.contains("berth-test\n"), "{out}");
    // CAP_KILL(5) | CAP_NET_BIND_SERVICE(10) | CAP_AUDIT_WRITE(29)
    assert!(out.contains("CapEff:\t0000000020000420"), "{out}");
    assert!(out.contains("CapBnd:\t0000000020000420"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("ro\n"), "readonly rootfs is writable: {out}");
    assert!(
        out.contains("\nlo \n"),
        "not only lo in the network namespace: {out}"
    );
    assert!(out.ends_with("1024\n"), "{out}");
}

#[test]
fn exec_runs_in_the_container() {
    let f = Fixture::new("exec", base_config(&["sleep", "1000"]));
    let mut c = f.berth();
    c.args(["run", "-d", "--bundle"]).arg(f.bundle()).arg(&f.id);
    let o = f.detached(c);
    assert!(o.status.success(), "run -d: {}", stderr(&o));
    let o = f.run(&[
        "exec",
        &f.id,
        "sh",
        "-c",
        "echo in $(hostname); cat /proc/1/cmdline | tr '\\0' ' '; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "in berth-test\nsleep 1000 ");
    let o = f.run(&[
        "exec",
        "--env",
        "X=42",
        "--user",
        "65534:65534",
        &f.id,
        "sh",
        "-c",
        "echo $X $(id -u) $(id -g)",
    ]);
    assert_eq!(stdout(&o), "42 65534 65534\n", "stderr: {}", stderr(&o));
    assert_one_line_error(
        &f.run(&["exec", &f.id, "/no/such/program"]),
        "no/such/program",
    );

    let o = f.run(&["pause", &f.id]);
    assert!(o.status.success(), "pause: {}", stderr(&o));
    assert_eq!(f.status().as_deref(), Some("paused"));
    assert_one_line_error(&f.run(&["exec", &f.id, "true"]), "paused");
    let o = f.run(&["resume", &f.id]);
    assert!(o.status.success(), "resume: {}", stderr(&o));
    assert_eq!(f.status().as_deref(), Some("running"));
    let o = f.run(&["delete", "--force", &f.id]);
    assert!(o.status.success(), "delete --force: {}", stderr(&o));
    assert!(f.state().is_none());
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let f = Fixture::new("bad", base_config(&["true"]));
    // Missing bundle.
    assert_one_line_error(
        &f.run(&["create", "--bundle", "/nonexistent/bundle", &f.id]),
        "/nonexistent/bundle",
    );
    // (failed creates exit at once, so piped output is fine there)
    // Malformed config.json.
    std::fs::write(f.bundle().join("config.json"), b"{\"ociVersion\": ").unwrap();
    assert_one_line_error(&f.create(&[]), "config.json");
    // Invalid field.
    let mut c = base_config(&["true"]);
    c["process"]["cwd"] = "relative".into();
    f.write_config(&c);
    assert_one_line_error(&f.create(&[]), "process.cwd");
    // Missing rootfs.
    let mut c = base_config(&["true"]);
    c["root"]["path"] = "nope".into();
    f.write_config(&c);
    assert_one_line_error(&f.create(&[]), "root.path");
    // A mapping the kernel rejects: overlapping ranges.
    let mut c = base_config(&["true"]);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 10}, {"containerID": 5, "hostID": 200000, "size": 10}]);
    c["linux"]["gidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 10}]);
    f.write_config(&c);
    assert_one_line_error(&f.create(&[]), "uid_map");
    // Unknown id, invalid id.
    assert_one_line_error(&f.run(&["state", "nope-nope"]), "does not exist");
    assert_one_line_error(&f.run(&["start", "../x"]), "invalid");
    // None of it left state or cgroups behind.
    // (`.seal-empty` is berth's own, shared by every container; not container state.)
    let left: Vec<_> = std::fs::read_dir(f.root())
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| !p.ends_with(".seal-empty"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "state left: {left:?}");
    assert!(
        f.cgroup_dirs().is_empty(),
        "cgroup left: {:?}",
        f.cgroup_dirs()
    );

    // Duplicate id.
    f.write_config(&base_config(&["sleep", "100"]));
    let o = f.create(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_one_line_error(&f.create(&[]), "already exists");
    assert_eq!(
        f.status().as_deref(),
        Some("created"),
        "the duplicate create harmed the first"
    );
}

#[test]
fn killed_create_is_cleaned_by_delete_force() {
    let mut c = base_config(&["true"]);
    let f = Fixture::new("killed", c.clone());
    // A createRuntime hook that records its state (the init's pid) and hangs keeps
    // `create` in the middle of its work.
    let hook_state = f.dir.path().join("hook-state.json");
    c["hooks"] = serde_json::json!({"createRuntime": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {}.tmp && mv {0}.tmp {0} && sleep 30", hook_state.display())]
    }]});
    f.write_config(&c);
    let mut child = f
        .berth()
        .args(["create", "--bundle"])
        .arg(f.bundle())
        .arg(&f.id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Wait until the hook runs (the init exists), then SIGKILL berth.
    let pid = loop {
        assert!(Instant::now() < deadline, "create never reached its hooks");
        if let Ok(s) = std::fs::read_to_string(&hook_state) {
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            break v["pid"].as_i64().expect("hook state has the init's pid");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(pid > 0);
    let on_disk: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.root().join(&f.id).join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk["status"], "creating");
    child.kill().unwrap();
    child.wait().unwrap();
    let o = f.run(&["delete", "--force", &f.id]);
    assert!(o.status.success(), "delete --force: {}", stderr(&o));
    assert!(!f.root().join(&f.id).exists());
    assert!(
        f.cgroup_dirs().is_empty(),
        "cgroup left: {:?}",
        f.cgroup_dirs()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(
            Instant::now() < deadline,
            "init {pid} survived delete --force"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn container_cannot_write_the_runtime_binary() {
    // While the container is "created", its PID 1 is berth itself; the container must
    // not be able to open that binary for writing through /proc/1/exe.
    let f = Fixture::new("exe", base_config(&["sleep", "1000"]));
    let before = std::fs::read(BERTH).unwrap();
    let o = f.create(&[]);
    assert!(o.status.success(), "create: {}", stderr(&o));
    let o = f.run(&[
        "exec",
        "--cap",
        "CAP_SYS_PTRACE",
        "--cap",
        "CAP_DAC_OVERRIDE",
        &f.id,
        "sh",
        "-c",
        "ls -l /proc/1/exe; echo pwned >> /proc/1/exe && echo WROTE || echo refused",
    ]);
    let out = stdout(&o);
    assert!(
        !out.contains("WROTE"),
        "wrote through /proc/1/exe: {out} {}",
        stderr(&o)
    );
    assert!(
        out.contains("refused"),
        "the write was not even tried: {out} {}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(BERTH).unwrap(),
        before,
        "host berth binary changed"
    );
}

#[test]
fn only_stdio_and_preserved_fds_reach_the_container() {
    let f = Fixture::new(
        "fds",
        base_config(&["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"]),
    );
    let extra = std::fs::File::open("/etc/hostname").unwrap();
    let leak = std::fs::File::open("/etc/passwd").unwrap();
    // fd 3 is passed with --preserve-fds 1; the other must not arrive.
    let mut cmd = f.berth();
    cmd.args(["run", "--preserve-fds", "1", "--bundle"])
        .arg(f.bundle())
        .arg(&f.id)
        .stdout(Stdio::piped());
    let extra_fd = extra.as_raw_fd();
    let leak_fd = leak.as_raw_fd();
    // SAFETY: the closure only calls async-signal-safe dup2/fcntl in the child.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if libc::dup2(extra_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fl = libc::fcntl(leak_fd, libc::F_GETFD);
            libc::fcntl(leak_fd, libc::F_SETFD, fl & !libc::FD_CLOEXEC);
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    // ls holds one more descriptor for the directory it reads.
    let fds: Vec<u32> = stdout(&o)
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(&fds[..4], &[0, 1, 2, 3], "{fds:?}");
    assert!(fds.len() <= 5, "leaked descriptors: {fds:?}");
}

#[test]
fn personality_scheduler_and_io_priority_are_applied() {
    let mut c = base_config(&[
        "sh",
        "-c",
        "uname -m; set -- $(sed 's/.*) //' /proc/self/stat); echo nice=${17} policy=${39}; ionice -p $$",
    ]);
    c["linux"]["personality"] = serde_json::json!({"domain": "LINUX32"});
    c["process"]["scheduler"] = serde_json::json!({"policy": "SCHED_BATCH", "nice": 5});
    c["process"]["ioPriority"] = serde_json::json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    let f = Fixture::new("sched", c);
    let o = f.run_fg();
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("i686\n"), "{out}");
    assert!(out.contains("nice=5 policy=3\n"), "{out}");
    assert!(out.contains("best-effort: prio 6"), "{out}");

    // A value outside the kernel's range is refused at create, naming the field.
    let mut c = base_config(&["true"]);
    c["process"]["scheduler"] = serde_json::json!({"policy": "SCHED_OTHER", "nice": 99});
    f.write_config(&c);
    assert_one_line_error(&f.create(&[]), "process.scheduler.nice");
}
