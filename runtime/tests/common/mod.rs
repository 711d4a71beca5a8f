//! Shared fixtures for the root integration tests: a busybox-static rootfs, bundles with
//! a config.json written here, and a private `--root` per test; all removed on drop.
#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A temporary directory removed on drop (after unmounting anything left below it).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("berth-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes a rootfs from Debian's busybox-static at `root`.
pub fn busybox_rootfs(root: &Path) {
    let bb = Path::new("/bin/busybox");
    assert!(
        bb.exists(),
        "/bin/busybox is missing: install Debian's busybox-static (scripts/install-deps.sh)"
    );
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(bb, root.join("bin/busybox")).unwrap();
    let list = Command::new(bb).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let _ = symlink("busybox", root.join("bin").join(applet));
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// A plain non-terminal config like `runc spec` makes, running `args`.
pub fn base_config(args: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// A bundle (rootfs + config.json) and a private state root for one test.
pub struct Fixture {
    pub dir: TempDir,
    pub id: String,
}

impl Fixture {
    pub fn new(tag: &str, config: serde_json::Value) -> Fixture {
        let dir = TempDir::new(tag);
        busybox_rootfs(&dir.path().join("bundle/rootfs"));
        let f = Fixture {
            id: format!(
                "{tag}-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::SeqCst)
            ),
            dir,
        };
        f.write_config(&config);
        f
    }
    pub fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn write_config(&self, config: &serde_json::Value) {
        std::fs::write(
            self.bundle().join("config.json"),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
    }
    /// `berth --root <private root> args...`
    pub fn berth(&self) -> Command {
        let mut c = Command::new(BERTH);
        c.arg("--root").arg(self.root());
        c.stdin(Stdio::null());
        c
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.berth().args(args).output().expect("spawn berth")
    }
    /// Runs the container in the foreground, returning its output.
    pub fn run_fg(&self) -> Output {
        self.berth()
            .args(["run", "--bundle"])
            .arg(self.bundle())
            .arg(&self.id)
            .output()
            .expect("spawn berth run")
    }
    /// Runs a command whose container outlives it (`create`, `run -d`): the container
    /// keeps the stdio it inherits, so it gets /dev/null and a file, never a pipe the
    /// test would wait on forever.
    pub fn detached(&self, mut cmd: Command) -> Output {
        let errf = self
            .dir
            .path()
            .join(format!("stderr-{}", SEQ.fetch_add(1, Ordering::SeqCst)));
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(&errf).unwrap());
        let status = cmd.status().expect("spawn berth");
        Output {
            status,
            stdout: Vec::new(),
            stderr: std::fs::read(&errf).unwrap_or_default(),
        }
    }

    /// `berth create --bundle <bundle> [extra...] <id>`, detached.
    pub fn create(&self, extra: &[&str]) -> Output {
        let mut c = self.berth();
        c.args(["create", "--bundle"])
            .arg(self.bundle())
            .args(extra)
            .arg(&self.id);
        self.detached(c)
    }

    pub fn state(&self) -> Option<serde_json::Value> {
        let o = self.run(&["state", &self.id]);
        o.status
            .success()
            .then(|| serde_json::from_slice(&o.stdout).expect("state prints JSON"))
    }
    pub fn status(&self) -> Option<String> {
        self.state()
            .map(|s| s["status"].as_str().unwrap().to_string())
    }
    /// Every cgroup directory berth may have made for this container.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = h.path().join("berth").join(&self.id);
            if p.exists() {
                out.push(p);
            }
        }
        out
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.run(&["delete", "--force", &self.id]);
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failed command: non-zero exit and exactly one line on stderr.
pub fn assert_one_line_error(o: &Output, contains: &str) {
    assert!(
        !o.status.success(),
        "expected failure, got success: {}",
        stdout(o)
    );
    let e = stderr(o);
    assert_eq!(
        e.trim_end().lines().count(),
        1,
        "stderr not one line: {e:?}"
    );
    assert!(
        e.contains(contains),
        "stderr {e:?} does not mention {contains:?}"
    );
}
