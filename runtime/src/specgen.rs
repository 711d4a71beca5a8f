//! What `berth spec` and `berth features` print: a default `config.json` like `runc spec`
//! (and `--rootless`), and the runtime-spec `features.md` document describing what berth
//! implements.

use oci_spec::runtime::Spec;
use serde_json::{Value, json};

use crate::seccomp;

/// Oldest runtime-spec version berth reads.
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// The hook kinds berth runs.
pub const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Mount options the mount code understands (flags, propagation, recursive variants).
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
];

/// Namespaces berth creates or joins.
pub const NAMESPACES: &[&str] = &[
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
];

/// The capabilities `runc spec` gives a container.
const DEFAULT_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The default `config.json` as a JSON value; see [`default_spec`].
pub fn default_spec_json(rootless: bool, uid: u32, gid: u32) -> Value {
    let devpts_options: Vec<&str> = if rootless {
        // an unprivileged user namespace has no gid 5 mapped
        vec![
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
        ]
    } else {
        vec![
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]
    };
    let sys_mount = if rootless {
        // sysfs cannot be mounted without owning the network namespace: bind the host's
        json!({"destination": "/sys", "type": "none", "source": "/sys",
               "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    } else {
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]})
    };
    let mut namespaces = vec![json!({"type": "pid"})];
    if !rootless {
        namespaces.push(json!({"type": "network"}));
    }
    namespaces.extend([
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ]);
    let mut linux = json!({
        "namespaces": namespaces,
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
    });
    if rootless {
        namespaces_push_user(&mut linux);
        linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    } else {
        linux["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    }
    json!({
        "ociVersion": oci_spec::runtime::VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
                "ambient": DEFAULT_CAPS,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": devpts_options},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            sys_mount,
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": linux,
    })
}

fn namespaces_push_user(linux: &mut Value) {
    if let Some(list) = linux["namespaces"].as_array_mut() {
        list.push(json!({"type": "user"}));
    }
}

/// The default spec `berth spec` writes: `sh` on a terminal, runc's three default
/// capabilities, the usual mounts, masked and read-only paths, and pid/network/ipc/uts/
/// mount namespaces. `rootless` drops the network namespace, adds a user namespace mapping
/// root to the caller's euid/egid, binds /sys and drops the device cgroup rules, as
/// `runc spec --rootless` does.
pub fn default_spec(rootless: bool) -> Spec {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    serde_json::from_value(default_spec_json(rootless, uid, gid))
        .expect("the built-in default spec matches the runtime-spec schema")
}

/// The oci-spec name of a seccomp filter flag the kernel accepts, probed by asking for a
/// filter with no program: EFAULT means the flag is known, EINVAL that it is not.
fn supported_seccomp_flags() -> Vec<&'static str> {
    const FLAGS: &[(&str, libc::c_uint)] = &[
        ("SECCOMP_FILTER_FLAG_TSYNC", 1),
        ("SECCOMP_FILTER_FLAG_LOG", 1 << 1),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 1 << 2),
        // only valid together with NEW_LISTENER (1 << 3)
        (
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
            (1 << 5) | (1 << 3),
        ),
    ];
    FLAGS
        .iter()
        .filter(|(_, bits)| {
            // SAFETY: a NULL program makes the kernel fail with EFAULT after checking the
            // flags; nothing is installed.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    1 as libc::c_uint,
                    *bits,
                    std::ptr::null::<libc::c_void>(),
                )
            };
            rc < 0 && nix::errno::Errno::last() == nix::errno::Errno::EFAULT
        })
        .map(|(name, _)| *name)
        .collect()
}

/// The architectures libseccomp on this host can build filters for, as spec names.
fn seccomp_archs() -> Vec<Value> {
    use oci_spec::runtime::Arch;
    let all = [
        Arch::ScmpArchX86,
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX32,
        Arch::ScmpArchArm,
        Arch::ScmpArchAarch64,
        Arch::ScmpArchMips,
        Arch::ScmpArchMips64,
        Arch::ScmpArchMips64n32,
        Arch::ScmpArchMipsel,
        Arch::ScmpArchMipsel64,
        Arch::ScmpArchMipsel64n32,
        Arch::ScmpArchPpc,
        Arch::ScmpArchPpc64,
        Arch::ScmpArchPpc64le,
        Arch::ScmpArchS390,
        Arch::ScmpArchS390x,
        Arch::ScmpArchParisc,
        Arch::ScmpArchParisc64,
        Arch::ScmpArchRiscv64,
        Arch::ScmpArchLoongarch64,
        Arch::ScmpArchM68k,
        Arch::ScmpArchSh,
        Arch::ScmpArchSheb,
    ];
    all.into_iter()
        .filter(|a| seccomp::arch_supported(*a))
        .filter_map(|a| serde_json::to_value(a).ok())
        .collect()
}

/// The runtime-spec `features.md` document for `berth features`.
pub fn features() -> Value {
    let mut caps: Vec<caps::Capability> = caps::all().into_iter().collect();
    caps.sort_by_key(|c| c.index());
    let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    json!({
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": oci_spec::runtime::VERSION,
        "hooks": HOOKS,
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": NAMESPACES,
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": seccomp_archs(),
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ],
                "supportedFlags": supported_seccomp_flags(),
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}},
        },
        "annotations": {
            "io.github.berth.version": env!("CARGO_PKG_VERSION"),
            "io.github.seccomp.libseccomp.version": libseccomp_version(),
        },
    })
}

fn libseccomp_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Features, LinuxNamespaceType};

    #[test]
    fn default_spec_round_trips_and_matches_runc_spec() {
        let spec = default_spec(false);
        let json = serde_json::to_value(&spec).expect("serialises");
        let again: Spec = serde_json::from_value(json.clone()).expect("parses back");
        assert_eq!(spec, again);
        assert_eq!(json["process"]["args"], json!(["sh"]));
        assert_eq!(json["process"]["terminal"], true);
        assert_eq!(json["root"]["readonly"], true);
        assert_eq!(
            json["process"]["capabilities"]["bounding"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        let ns: Vec<LinuxNamespaceType> = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(ns.contains(&LinuxNamespaceType::Network));
        assert!(!ns.contains(&LinuxNamespaceType::User));
        assert_eq!(json["mounts"].as_array().map(Vec::len), Some(7));
        assert_eq!(
            json["linux"]["maskedPaths"].as_array().map(Vec::len),
            Some(10)
        );
        assert!(json["linux"]["resources"]["devices"].is_array());
    }

    #[test]
    fn rootless_spec_maps_the_caller() {
        let json = default_spec_json(true, 1234, 5678);
        let spec: Spec = serde_json::from_value(json.clone()).expect("valid");
        let linux = spec.linux().as_ref().expect("linux");
        let ns: Vec<LinuxNamespaceType> = linux
            .namespaces()
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(ns.contains(&LinuxNamespaceType::User));
        assert!(!ns.contains(&LinuxNamespaceType::Network));
        assert_eq!(json["linux"]["uidMappings"][0]["hostID"], 1234);
        assert_eq!(json["linux"]["gidMappings"][0]["hostID"], 5678);
        assert_eq!(json["linux"]["uidMappings"][0]["containerID"], 0);
        assert!(json["linux"].get("resources").is_none());
        let sys = &json["mounts"][5];
        assert_eq!(sys["destination"], "/sys");
        assert_eq!(sys["type"], "none");
        let devpts = json["mounts"][2]["options"].as_array().expect("options");
        assert!(!devpts.iter().any(|o| o == "gid=5"));
    }

    #[test]
    fn features_follow_the_schema() {
        let f = features();
        let parsed: Features = serde_json::from_value(f.clone()).expect("features.md schema");
        assert_eq!(parsed.oci_version_min(), OCI_VERSION_MIN);
        assert_eq!(f["hooks"].as_array().map(Vec::len), Some(6));
        assert_eq!(f["linux"]["apparmor"]["enabled"], false);
        assert_eq!(f["linux"]["selinux"]["enabled"], false);
        let archs = f["linux"]["seccomp"]["archs"].as_array().expect("archs");
        assert!(
            archs
                .iter()
                .any(|a| a == "SCMP_ARCH_X86_64" || a == "SCMP_ARCH_AARCH64")
        );
        let caps = f["linux"]["capabilities"].as_array().expect("caps");
        assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert_eq!(
            f["linux"]["seccomp"]["actions"].as_array().map(Vec::len),
            Some(9)
        );
        assert_eq!(
            f["linux"]["seccomp"]["operators"].as_array().map(Vec::len),
            Some(7)
        );
        // Linux 6.18 knows every flag berth knows.
        assert_eq!(
            f["linux"]["seccomp"]["supportedFlags"],
            f["linux"]["seccomp"]["knownFlags"]
        );
    }
}
