//! OCI bundles for the suite: a busybox-static rootfs and a config.json written
//! from a default close to `runc spec` (runtime-spec `config.md`, `config-linux.md`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// Errors building a rootfs from busybox.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// `busybox --list` printed a name that cannot be an applet file name.
    #[error("busybox --list printed an unusable applet name {0:?}")]
    BadApplet(String),
    /// `busybox --list` printed nothing.
    #[error("busybox --list printed no applets")]
    NoApplets,
}

/// Where Debian's busybox-static installs busybox.
pub const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// The capabilities `runc spec` grants by default.
pub const DEFAULT_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// /etc/passwd of the rootfs.
pub const ETC_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
user:x:1000:1000:user:/home/user:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

/// /etc/group of the rootfs.
pub const ETC_GROUP: &str = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n";

/// Parses `busybox --list` into applet names, refusing anything that is not a plain
/// file name (the output is outside data).
pub fn applet_names(list_output: &str) -> Result<Vec<String>, BundleError> {
    let mut names = Vec::new();
    for line in list_output.lines() {
        let name = line.trim();
        if name.is_empty() {
            continue;
        }
        if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
            return Err(BundleError::BadApplet(name.to_string()));
        }
        if name != "busybox" {
            names.push(name.to_string());
        }
    }
    if names.is_empty() {
        return Err(BundleError::NoApplets);
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// The default config.json for a container whose cgroup is `cgroups_path`: busybox
/// `sh` as root in new pid, network, ipc, uts and mount namespaces, runc's default
/// mounts, masked and read-only paths, and all devices denied but the defaults.
pub fn default_config(cgroups_path: &str) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": ["PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/root"],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": "berth-oci",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// Sets `value` at `path` inside `doc`, creating objects on the way and replacing
/// anything that is not an object.
pub fn set_path(doc: &mut Value, path: &[&str], value: Value) {
    let mut cur = doc;
    for key in path {
        if !cur.is_object() {
            *cur = Value::Object(serde_json::Map::new());
        }
        cur = cur
            .as_object_mut()
            .expect("just made an object")
            .entry(key.to_string())
            .or_insert(Value::Null);
    }
    *cur = value;
}

/// Appends `item` to the array at `path` (creating it).
pub fn push_path(doc: &mut Value, path: &[&str], item: Value) {
    let mut cur = doc;
    for key in path {
        if !cur.is_object() {
            *cur = Value::Object(serde_json::Map::new());
        }
        cur = cur
            .as_object_mut()
            .expect("just made an object")
            .entry(key.to_string())
            .or_insert(Value::Null);
    }
    if !cur.is_array() {
        *cur = Value::Array(Vec::new());
    }
    cur.as_array_mut().expect("just made an array").push(item);
}

/// A busybox rootfs template built once per suite run, copied (hard links and
/// symlinks) into each bundle.
#[derive(Debug)]
pub struct RootfsTemplate {
    busybox: PathBuf,
    applets: Vec<String>,
}

impl RootfsTemplate {
    /// Copies busybox into `dir` and reads its applet list.
    pub fn build(dir: &Path) -> anyhow::Result<Self> {
        let src = BUSYBOX_CANDIDATES
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .context("busybox not found (apt-get install -y busybox-static)")?;
        std::fs::create_dir_all(dir)?;
        let busybox = dir.join("busybox");
        std::fs::copy(src, &busybox).with_context(|| format!("copying {}", src.display()))?;
        let out = std::process::Command::new(&busybox)
            .arg("--list")
            .output()
            .with_context(|| format!("running {} --list", busybox.display()))?;
        if !out.status.success() {
            bail!("{} --list failed", busybox.display());
        }
        let applets = applet_names(&String::from_utf8_lossy(&out.stdout))?;
        Ok(RootfsTemplate { busybox, applets })
    }

    /// Makes a rootfs at `root`: /bin/busybox and an applet symlink per applet, /etc
    /// files, and the usual empty directories.
    pub fn populate(&self, root: &Path) -> anyhow::Result<()> {
        for d in [
            "bin",
            "etc",
            "proc",
            "sys",
            "dev",
            "tmp",
            "root",
            "mnt",
            "home/user",
            "var",
            "run",
        ] {
            std::fs::create_dir_all(root.join(d))?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
        let dst = root.join("bin/busybox");
        if std::fs::hard_link(&self.busybox, &dst).is_err() {
            std::fs::copy(&self.busybox, &dst)?;
        }
        for a in &self.applets {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a))?;
        }
        std::os::unix::fs::symlink("bin", root.join("sbin"))?;
        std::fs::write(root.join("etc/passwd"), ETC_PASSWD)?;
        std::fs::write(root.join("etc/group"), ETC_GROUP)?;
        std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n")?;
        std::fs::write(root.join("etc/hostname"), "berth-oci\n")?;
        Ok(())
    }

    /// Makes `dir/name`, a bundle as `runc spec` leaves it (each runtime picks its
    /// default cgroup) running `args`, with a pids limit of 64; returns its path. The
    /// benchmarks and the code-layout workload run their containers from these.
    pub fn plain_bundle(&self, dir: &Path, name: &str, args: &[&str]) -> anyhow::Result<PathBuf> {
        let mut b = Bundle {
            dir: dir.join(name),
            id: name.to_string(),
            config: default_config(""),
        };
        self.populate(&b.rootfs())?;
        b.args(args);
        if let Some(l) = b.config["linux"].as_object_mut() {
            l.remove("cgroupsPath");
        }
        b.set(&["linux", "resources", "pids"], json!({"limit": 64}));
        b.write_config()?;
        Ok(b.dir)
    }
}

/// One bundle: a directory with `rootfs/` and the config the case edits before it
/// is written as config.json.
#[derive(Debug)]
pub struct Bundle {
    /// The bundle directory (absolute).
    pub dir: PathBuf,
    /// The container id this bundle is for.
    pub id: String,
    /// The config, written by [`Bundle::write_config`].
    pub config: Value,
}

impl Bundle {
    /// The rootfs directory.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Sets the process args.
    pub fn args(&mut self, args: &[&str]) {
        set_path(&mut self.config, &["process", "args"], json!(args));
    }

    /// Sets the process to `sh -c SCRIPT`.
    pub fn sh(&mut self, script: &str) {
        self.args(&["/bin/sh", "-c", script]);
    }

    /// Sets `value` at `path` in the config.
    pub fn set(&mut self, path: &[&str], value: Value) {
        set_path(&mut self.config, path, value);
    }

    /// Appends to the array at `path` in the config.
    pub fn push(&mut self, path: &[&str], item: Value) {
        push_path(&mut self.config, path, item);
    }

    /// Adds a mount.
    pub fn mount(&mut self, m: Value) {
        self.push(&["mounts"], m);
    }

    /// Adds a namespace entry (`{"type": ..}` or with `"path"`).
    pub fn namespace(&mut self, ns: Value) {
        self.push(&["linux", "namespaces"], ns);
    }

    /// Writes config.json.
    pub fn write_config(&self) -> anyhow::Result<()> {
        let text = serde_json::to_vec_pretty(&self.config)?;
        std::fs::write(self.dir.join("config.json"), text)
            .with_context(|| format!("writing {}/config.json", self.dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applets_parse_and_refuse_hostile_names() {
        let ok = applet_names("sh\nls\n\nbusybox\nsh\n").expect("valid list");
        assert_eq!(ok, vec!["ls".to_string(), "sh".to_string()]);
        for bad in ["../x\n", "a/b\n", ".\n", "..\n"] {
            assert!(applet_names(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(matches!(applet_names("\n\n"), Err(BundleError::NoApplets)));
    }

    #[test]
    fn default_config_is_a_complete_linux_spec() {
        let c = default_config("/berth-oci-x");
        assert_eq!(c["ociVersion"], "1.0.2");
        assert_eq!(c["root"]["path"], "rootfs");
        assert_eq!(c["process"]["terminal"], false);
        assert_eq!(c["process"]["cwd"], "/");
        assert_eq!(c["linux"]["cgroupsPath"], "/berth-oci-x");
        let ns: Vec<&str> = c["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        assert_eq!(ns, ["pid", "network", "ipc", "uts", "mount"]);
        let dests: Vec<&str> = c["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .filter_map(|m| m["destination"].as_str())
            .collect();
        for d in [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
        ] {
            assert!(dests.contains(&d), "missing mount {d}");
        }
        for set in ["bounding", "effective", "permitted"] {
            assert_eq!(
                c["process"]["capabilities"][set],
                json!(DEFAULT_CAPS),
                "capability set {set}"
            );
        }
        // Round-trips through text as the runtime will read it.
        let text = serde_json::to_string(&c).expect("serialises");
        let back: Value = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, c);
    }

    #[test]
    fn set_and_push_paths_create_what_is_missing() {
        let table: &[(&[&str], Value)] = &[
            (&["a"], json!(1)),
            (&["linux", "resources", "memory", "limit"], json!(1024)),
            (&["process", "args"], json!(["x"])),
        ];
        for (path, v) in table {
            let mut doc = json!({"process": {"args": ["sh"]}, "a": "scalar"});
            set_path(&mut doc, path, v.clone());
            let mut cur = &doc;
            for k in *path {
                cur = &cur[*k];
            }
            assert_eq!(cur, v, "{path:?}");
        }
        let mut doc = json!({"linux": 5});
        push_path(&mut doc, &["linux", "namespaces"], json!({"type": "user"}));
        push_path(&mut doc, &["linux", "namespaces"], json!({"type": "time"}));
        assert_eq!(
            doc,
            json!({"linux": {"namespaces": [{"type": "user"}, {"type": "time"}]}})
        );
    }

    #[test]
    fn bundle_writes_its_config_and_rootfs() {
        let dir = std::env::temp_dir().join(format!("berth-oci-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let template = RootfsTemplate::build(&dir.join("template")).expect("busybox template");
        let mut b = Bundle {
            dir: dir.join("b"),
            id: "x".into(),
            config: default_config("/p"),
        };
        template.populate(&b.rootfs()).expect("rootfs");
        b.sh("echo hi");
        b.write_config().expect("config written");
        let text = std::fs::read_to_string(b.dir.join("config.json")).expect("config.json");
        let back: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back["process"]["args"], json!(["/bin/sh", "-c", "echo hi"]));
        let sh = std::fs::read_link(b.rootfs().join("bin/sh")).expect("sh is a symlink");
        assert_eq!(sh, Path::new("busybox"));
        assert!(b.rootfs().join("bin/busybox").is_file());
        assert!(
            std::fs::read_to_string(b.rootfs().join("etc/passwd"))
                .expect("passwd")
                .starts_with("root:x:0:0:")
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
