//! Root integration tests of the cgroup manager on the real kernel.
//!
//! Each test makes its own cgroup under `/berth-test/`, moves real child
//! processes into it, and removes it (killing what is left) in a `Drop` guard.
//! Run as root: `cargo test -p berth-runtime --test cgroups`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use berth_runtime::cgroups::{Manager, Mode, devices};
use oci_spec::runtime::LinuxResources;

const BUSYBOX: &str = "/bin/busybox";

/// A cgroup that is killed and removed when the test ends, even on panic.
struct Cg {
    m: Manager,
    children: Vec<Child>,
}

impl Cg {
    fn new(name: &str) -> Cg {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the cgroup integration tests must run as root"
        );
        let path = format!("/berth-test/{name}-{}", std::process::id());
        let m = Manager::new(Some(&path), name).expect("manager");
        let cg = Cg {
            m,
            children: Vec::new(),
        };
        cg.m.create().expect("create cgroup");
        cg
    }

    /// Starts `busybox sh -c script` waiting on a line of stdin, moves it into
    /// the cgroup, then lets it run. Returns its index in `children`.
    fn run(&mut self, script: &str) -> usize {
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} is missing: apt-get install -y busybox-static"
        );
        let mut child = Command::new(BUSYBOX)
            .args(["sh", "-c", &format!("read go; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn busybox");
        self.m.add_pid(child.id() as i32).expect("add_pid");
        child
            .stdin
            .as_mut()
            .expect("piped stdin")
            .write_all(b"go\n")
            .expect("start the child");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Waits for child `i`; returns (exit status, stdout, stderr).
    fn wait(&mut self, i: usize) -> (std::process::ExitStatus, String, String) {
        let child = &mut self.children[i];
        drop(child.stdin.take());
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut o) = child.stdout.take() {
            o.read_to_string(&mut out).expect("read stdout");
        }
        if let Some(mut e) = child.stderr.take() {
            e.read_to_string(&mut err).expect("read stderr");
        }
        let status = child.wait().expect("wait child");
        (status, out, err)
    }

    fn v1(&self, ctrl: &str) -> PathBuf {
        self.m
            .v1_dir(ctrl)
            .unwrap_or_else(|| panic!("no v1 {ctrl} hierarchy on this host"))
            .to_path_buf()
    }
}

impl Drop for Cg {
    fn drop(&mut self) {
        let _ = self.m.thaw();
        for pid in self.m.pids().unwrap_or_default() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Err(e) = self.m.destroy() {
            eprintln!("cleanup of {}: {e}", self.m.path());
        }
        // The shared /berth-test parent goes with the last test that uses it.
        for d in self.m.dirs() {
            if let Some(parent) = d.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("test resources")
}

fn is_hybrid(m: &Manager) -> bool {
    m.mode() == Mode::Hybrid
}

#[test]
fn apply_memory_pids_cpu_and_read_back() {
    let cg = Cg::new("apply");
    cg.m.apply(&res(
        r#"{"memory": {"limit": 33554432, "reservation": 16777216, "swappiness": 10},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 10}}"#,
    ))
    .expect("apply");
    if cg.m.mode() == Mode::Unified {
        let d = cg.m.v2_dir().expect("v2 dir");
        assert_eq!(read(&d.join("memory.max")), "33554432");
        assert_eq!(read(&d.join("memory.low")), "16777216");
        assert_eq!(read(&d.join("cpu.max")), "50000 100000");
        assert_eq!(read(&d.join("cpu.weight")), "20");
        assert_eq!(read(&d.join("pids.max")), "10");
        assert_eq!(read(&d.join("cpuset.cpus")), "0");
    } else {
        let mem = cg.v1("memory");
        assert_eq!(read(&mem.join("memory.limit_in_bytes")), "33554432");
        assert_eq!(read(&mem.join("memory.soft_limit_in_bytes")), "16777216");
        assert_eq!(read(&mem.join("memory.swappiness")), "10");
        let cpu = cg.v1("cpu");
        assert_eq!(read(&cpu.join("cpu.shares")), "512");
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(&cg.v1("pids").join("pids.max")), "10");
        assert_eq!(read(&cg.v1("cpuset").join("cpuset.cpus")), "0");
    }
    // Raising and lowering again (the v1 memory/memsw ordering).
    cg.m.apply(&res(r#"{"memory": {"limit": 67108864, "swap": 67108864}}"#))
        .or_else(|e| {
            // Without swap accounting the swap field is refused, naming it.
            assert!(e.to_string().contains("memory.swap"), "{e}");
            cg.m.apply(&res(r#"{"memory": {"limit": 67108864}}"#))
        })
        .expect("raise memory");
    cg.m.apply(&res(r#"{"memory": {"limit": -1}}"#))
        .expect("unlimited memory");
}

/// The major:minor of a whole disk of this host.
fn a_block_device() -> (i64, i64) {
    for e in std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("loop") || name.starts_with("ram") {
            continue;
        }
        let dev = read(&e.path().join("dev"));
        if let Some((a, b)) = dev.split_once(':') {
            return (a.parse().expect("major"), b.parse().expect("minor"));
        }
    }
    panic!("no block device in /sys/block for the blkio test");
}

#[test]
fn blkio_throttle_and_weight() {
    let cg = Cg::new("blkio");
    let (maj, min) = a_block_device();
    cg.m.apply(&res(&format!(
        r#"{{"blockIO": {{"throttleReadBpsDevice": [{{"major": {maj}, "minor": {min}, "rate": 1048576}}],
             "throttleWriteIOPSDevice": [{{"major": {maj}, "minor": {min}, "rate": 100}}]}}}}"#
    )))
    .expect("apply throttles");
    if let Some(d) = cg.m.v1_dir("blkio") {
        assert_eq!(
            read(&d.join("blkio.throttle.read_bps_device")),
            format!("{maj}:{min} 1048576")
        );
        assert_eq!(
            read(&d.join("blkio.throttle.write_iops_device")),
            format!("{maj}:{min} 100")
        );
    } else {
        let io = read(&cg.m.v2_dir().expect("v2").join("io.max"));
        assert!(io.contains(&format!("{maj}:{min} rbps=1048576")), "{io}");
    }
    // The weight needs CFQ or BFQ: written where the host has it, else refused by name.
    match cg.m.apply(&res(r#"{"blockIO": {"weight": 500}}"#)) {
        Ok(()) => {
            let d = cg.m.v1_dir("blkio").or(cg.m.v2_dir()).expect("dir");
            let found = [
                "blkio.weight",
                "blkio.bfq.weight",
                "io.bfq.weight",
                "io.weight",
            ]
            .iter()
            .filter_map(|f| std::fs::read_to_string(d.join(f)).ok())
            .any(|v| v.contains("500") || v.contains("4950"));
            assert!(found, "weight not written");
        }
        Err(e) => assert!(
            e.to_string().contains("linux.resources.blockIO.weight"),
            "{e}"
        ),
    }
}

#[test]
fn value_the_host_refuses_names_the_field() {
    let cg = Cg::new("refuse");
    let err =
        cg.m.apply(&res(r#"{"cpu": {"cpus": "0-999"}}"#))
            .expect_err("cpus beyond the host");
    assert!(
        err.to_string().contains("linux.resources.cpu.cpus"),
        "{err}"
    );
    let err =
        cg.m.apply(&res(r#"{"memory": {"swappiness": 1000}}"#))
            .expect_err("swappiness");
    assert!(
        err.to_string()
            .contains("linux.resources.memory.swappiness"),
        "{err}"
    );
}

#[test]
fn added_child_is_listed_and_stats_count_it() {
    let mut cg = Cg::new("pids");
    let i = cg.run("exec sleep 1000");
    let pid = cg.children[i].id() as i32;
    assert!(cg.m.pids().expect("pids").contains(&pid));
    for d in cg.m.dirs() {
        let procs = read(&d.join("cgroup.procs"));
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "{pid} not in {}",
            d.display()
        );
    }
    let stats = cg.m.stats().expect("stats");
    assert!(stats.pids.current >= 1, "{stats:?}");
    let json = serde_json::to_value(&stats).expect("stats json");
    assert!(json.get("hugetlb").is_some());
}

#[test]
fn memory_limit_oom_kills_and_is_counted() {
    let mut cg = Cg::new("oom");
    cg.m.apply(&res(r#"{"memory": {"limit": 16777216}}"#))
        .expect("apply");
    assert_eq!(cg.m.oom_kill_count().expect("oom count"), 0);
    let watch = cg.m.oom_watch().expect("oom watch");
    let i = cg.run("x=$(head -c 200m /dev/zero | tr '\\0' a); echo survived");
    let (status, out, _) = cg.wait(i);
    assert!(!out.contains("survived"), "the allocation was not stopped");
    assert!(!status.success());
    assert!(
        cg.m.oom_kill_count().expect("oom count") >= 1,
        "no oom_kill counted"
    );
    assert!(cg.m.stats().expect("stats").memory.usage.failcnt > 0);
    // The watch fires (poll first, so a broken watch fails instead of hanging).
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&watch),
        nix::poll::PollFlags::POLLIN,
    )];
    let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).expect("poll");
    assert_eq!(ready, 1, "no OOM notification");
    watch.wait().expect("consume notification");
}

#[test]
fn pids_limit_makes_fork_fail() {
    let mut cg = Cg::new("fork");
    cg.m.apply(&res(r#"{"pids": {"limit": 4}}"#))
        .expect("apply");
    // The sleeps let go of the pipes, so the shell's exit ends the test; the
    // guard kills them.
    let i = cg.run("i=0; while [ $i -lt 10 ]; do sleep 100 </dev/null >/dev/null 2>&1 & i=$((i+1)); done; echo done");
    let (_, _, err) = cg.wait(i);
    assert!(err.to_lowercase().contains("fork"), "stderr: {err:?}");
    assert!(cg.m.stats().expect("stats").pids.limit == 4);
}

#[test]
fn freeze_and_thaw_a_live_child() {
    let mut cg = Cg::new("freeze");
    let i = cg.run("while :; do :; done");
    assert!(!cg.m.is_frozen().expect("state"));
    cg.m.freeze().expect("freeze");
    assert!(cg.m.is_frozen().expect("state"));
    let pid = cg.children[i].id();
    // A frozen task does not run: its CPU time stands still.
    let ticks = |pid: u32| -> u64 {
        let s = read(Path::new(&format!("/proc/{pid}/stat")));
        let after = s.rsplit_once(") ").expect("stat").1;
        let f: Vec<&str> = after.split(' ').collect();
        f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
    };
    let before = ticks(pid);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(ticks(pid), before, "frozen task kept running");
    cg.m.thaw().expect("thaw");
    assert!(!cg.m.is_frozen().expect("state"));
}

#[test]
fn hugetlb_limit_lands_on_its_hierarchy() {
    let cg = Cg::new("huge");
    cg.m.apply(&res(
        r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}"#,
    ))
    .expect("apply hugetlb");
    let file = match cg.m.v1_dir("hugetlb") {
        Some(d) => d.join("hugetlb.2MB.limit_in_bytes"),
        None => {
            cg.m.v2_dir()
                .expect("hugetlb on v2")
                .join("hugetlb.2MB.max")
        }
    };
    assert_eq!(read(&file), "4194304");
    let rsvd = file.with_file_name(match cg.m.v1_dir("hugetlb") {
        Some(_) => "hugetlb.2MB.rsvd.limit_in_bytes",
        None => "hugetlb.2MB.rsvd.max",
    });
    if rsvd.exists() {
        assert_eq!(read(&rsvd), "4194304");
    }
    if is_hybrid(&cg.m) && cg.m.v1_dir("hugetlb").is_none() {
        let parent = cg.m.v2_dir().and_then(Path::parent).expect("parent");
        assert!(read(&parent.join("cgroup.subtree_control")).contains("hugetlb"));
    }
    let stats = cg.m.stats().expect("stats");
    assert!(stats.hugetlb.contains_key("2MB"), "{:?}", stats.hugetlb);
}

#[test]
fn v1_device_rules_and_v2_device_filter() {
    let mut cg = Cg::new("dev");
    let rules = r#"[{"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]"#;
    cg.m.apply(&res(&format!(r#"{{"devices": {rules}}}"#)))
        .expect("apply devices");
    if let Some(d) = cg.m.v1_dir("devices") {
        assert_eq!(read(&d.join("devices.list")), "c 1:3 rw");
    }
    // The eBPF filter works on any v2 cgroup, so it is tested for real here
    // too (on a hybrid host, in the unified hierarchy).
    let v2 = cg.m.v2_dir().expect("a v2 hierarchy").to_path_buf();
    let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        serde_json::from_str(rules).expect("rules");
    devices::attach_filter(&v2, &rules).expect("attach filter");
    devices::attach_filter(&v2, &rules).expect("replace filter");
    assert_eq!(devices::attached_count(&v2).expect("query"), 1);
    let i = cg.run(
        "echo x > /dev/null && echo null-ok; head -c 1 /dev/zero > /dev/null 2>&1 || echo zero-denied",
    );
    let (_, out, _) = cg.wait(i);
    assert!(out.contains("null-ok"), "{out:?}");
    assert!(out.contains("zero-denied"), "{out:?}");
}

#[test]
fn destroy_leaves_nothing() {
    let mut cg = Cg::new("destroy");
    let dirs: Vec<PathBuf> = cg.m.dirs().iter().map(|d| d.to_path_buf()).collect();
    // A sub-cgroup made inside (as a container with its own cgroup namespace would).
    for d in &dirs {
        std::fs::create_dir(d.join("inner")).expect("inner cgroup");
    }
    let i = cg.run("exit 0");
    cg.wait(i);
    cg.m.destroy().expect("destroy");
    for d in &dirs {
        assert!(!d.exists(), "{} still exists", d.display());
    }
    cg.m.destroy().expect("destroying twice is fine");
}

#[test]
fn hostile_cgroups_path_refused_with_nothing_created() {
    let cases = [
        "../../../etc/evil",
        "/berth-test/../../evil",
        "/",
        "/berth-test/cgroup.procs",
        "/berth-test/a\nb",
        "system.slice:berth:evil",
    ];
    for raw in cases {
        let err = Manager::new(Some(raw), "evil").expect_err(raw);
        assert!(err.to_string().contains("cgroupsPath"), "{raw:?}: {err}");
    }
    for root in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/unified",
        "/sys/fs",
    ] {
        assert!(!Path::new(root).join("evil").exists());
        assert!(!Path::new("/etc/evil").exists());
    }
    let err = Manager::new_systemd(Some("system.slice:berth:x"), "x").expect_err("no systemd here");
    assert!(err.to_string().contains("cgroupsPath"), "{err}");
}

#[test]
fn manager_from_state_json_finds_the_same_cgroup() {
    let mut cg = Cg::new("state");
    let i = cg.run("exec sleep 1000");
    let pid = cg.children[i].id() as i32;
    let json = serde_json::to_string(&cg.m).expect("serialize");
    let again: Manager = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(again.pids().expect("pids"), vec![pid]);
}

/// The pure-v2 code paths (cgroup.freeze, v2 pids and stats, the device filter
/// through `apply`, the `unified` map, subtree_control delegation), run for
/// real by viewing only this host's cgroup2 mount, as a pure v2 host shows it.
#[test]
fn v2_paths_on_the_unified_hierarchy() {
    use berth_runtime::cgroups::{CgroupPath, Layout};
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let only_v2: String = mountinfo
        .lines()
        .filter(|l| l.contains(" - cgroup2 "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!only_v2.is_empty(), "this test needs a cgroup2 mount");
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").expect("proc cgroup");
    let layout = Layout::parse(&only_v2, &proc_cgroup).expect("layout");
    assert_eq!(layout.mode(), Mode::Unified);
    let (mnt, _) = layout.v2.clone().expect("v2 mount");
    let controllers = read(&mnt.join("cgroup.controllers"))
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let path = CgroupPath::parse(&format!("/berth-test/v2-{}", std::process::id())).expect("path");
    let m = Manager::from_layout(&layout, &path, controllers);
    let mut cg = Cg {
        m,
        children: Vec::new(),
    };
    cg.m.create().expect("create");
    let dir = cg.m.v2_dir().expect("v2 dir").to_path_buf();
    assert_eq!(cg.m.dirs(), vec![dir.as_path()]);

    let mut json = String::from(
        r#"{"unified": {"cgroup.max.descendants": "5"},
            "devices": [{"allow": false, "access": "rwm"},
                        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]"#,
    );
    let has_huge = read(&mnt.join("cgroup.controllers")).contains("hugetlb");
    if has_huge {
        json.push_str(r#", "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]"#);
    }
    json.push('}');
    cg.m.apply(&res(&json)).expect("apply on v2");
    assert_eq!(read(&dir.join("cgroup.max.descendants")), "5");
    if has_huge {
        assert_eq!(read(&dir.join("hugetlb.2MB.max")), "2097152");
    }
    assert_eq!(devices::attached_count(&dir).expect("query"), 1);

    let i = cg.run(
        "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; \
         head -c 1 /dev/zero > /dev/null 2>&1 || echo zero-denied; echo ready; exec sleep 1000",
    );
    let pid = cg.children[i].id() as i32;
    // Wait until the child has done its work, reading up to its "ready" line.
    let mut out = String::new();
    {
        use std::io::BufRead;
        let stdout = cg.children[i].stdout.as_mut().expect("piped stdout");
        let mut lines = std::io::BufReader::new(stdout);
        while !out.contains("ready") {
            let n = lines.read_line(&mut out).expect("read child");
            assert!(n > 0, "child ended early: {out:?}");
        }
    }
    assert!(out.contains("zero-denied"), "{out:?}");
    assert_eq!(cg.m.pids().expect("pids"), vec![pid]);
    cg.m.freeze().expect("freeze via cgroup.freeze");
    assert!(cg.m.is_frozen().expect("frozen?"));
    assert!(read(&dir.join("cgroup.events")).contains("frozen 1"));
    cg.m.thaw().expect("thaw");
    assert!(!cg.m.is_frozen().expect("frozen?"));
    let stats = cg.m.stats().expect("v2 stats");
    assert!(stats.cpu.usage.total > 0, "{:?}", stats.cpu);
    assert!(
        cg.m.oom_kill_count().is_err() || controllers_have(&mnt, "memory"),
        "OOM counts need the memory controller"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    cg.wait(i);
    cg.m.destroy().expect("destroy");
    assert!(!dir.exists());
}

fn controllers_have(mnt: &Path, c: &str) -> bool {
    read(&mnt.join("cgroup.controllers"))
        .split_whitespace()
        .any(|x| x == c)
}

#[test]
fn update_changes_limits_and_keeps_device_rules() {
    use berth_runtime::cgroups::update;
    let cg = Cg::new("update");
    let current = res(r#"{"memory": {"limit": 33554432}, "pids": {"limit": 10},
        "devices": [{"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]}"#);
    cg.m.apply(&current).expect("apply");
    let args = update::Args {
        memory: Some("64m".into()),
        pids_limit: Some(20),
        id: "update".into(),
        ..Default::default()
    };
    let new = update::merge(&args, None, &current).expect("merge");
    cg.m.update(&new).expect("update");
    if cg.m.mode() == Mode::Unified {
        let d = cg.m.v2_dir().expect("v2");
        assert_eq!(read(&d.join("memory.max")), "67108864");
        assert_eq!(read(&d.join("pids.max")), "20");
    } else {
        assert_eq!(
            read(&cg.v1("memory").join("memory.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(read(&cg.v1("pids").join("pids.max")), "20");
        assert_eq!(read(&cg.v1("devices").join("devices.list")), "c 1:3 rw");
    }
}

#[test]
fn signal_all_reaches_every_process() {
    let mut cg = Cg::new("signal");
    assert!(cg.m.exists());
    let i = cg.run("sleep 1000 & sleep 1000 & echo started; wait");
    // Wait until both sleeps are in the cgroup.
    {
        use std::io::BufRead;
        let stdout = cg.children[i].stdout.as_mut().expect("piped stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read child");
        assert_eq!(line.trim(), "started");
    }
    assert_eq!(cg.m.pids().expect("pids").len(), 3);
    cg.m.signal_all(nix::sys::signal::Signal::SIGKILL)
        .expect("signal all");
    let (status, _, _) = cg.wait(i);
    assert!(!status.success(), "the shell was not killed");
    assert!(!cg.m.is_frozen().expect("state"), "left frozen");
    cg.m.destroy().expect("destroy once every process is gone");
    assert!(!cg.m.exists());
}
