//! The mount plan: the spec's root filesystem setup turned into a list of values
//! ([`MountOp`]) by a pure function, so every decision is tested without root.
//!
//! Sources: runtime-spec `config.md` (mounts, root) and `config-linux.md` (devices,
//! rootfsPropagation, maskedPaths, readonlyPaths), and what runc does where the spec is
//! silent (default devices, /dev symlinks, sysfs in a user namespace, cgroup mounts).

use std::path::{Component, Path, PathBuf};

use libc::c_ulong;
use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Spec};

use super::options::{MountOptions, parse_options, propagation_flag};
use super::{RootfsConfig, RootfsError};

/// When a [`MountOp`] runs: before `pivot_root`, the pivot itself, or after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// In the new mount namespace, on the host's view of the rootfs ([`super::prepare`]).
    Prepare,
    /// `pivot_root` or `MS_MOVE` + `chroot` ([`super::pivot`]).
    Pivot,
    /// Inside the new root ([`super::finalize`]).
    Finalize,
}

/// One step of the root filesystem setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// `mount("", "/", "", flags)`: propagation of the whole tree (rslave by default).
    RootPropagation {
        /// `MS_SLAVE|MS_REC` or `linux.rootfsPropagation`.
        flags: c_ulong,
    },
    /// Make the mount that holds the rootfs private when it is shared (pivot_root needs it).
    PrivateRootfsParent,
    /// Bind the rootfs on itself (`MS_BIND|MS_REC`) so it is a mount point of its own.
    BindRootfs,
    /// One spec mount.
    Mount(PlannedMount),
    /// A `cgroup` mount; expanded when applied from the host's hierarchies.
    Cgroup {
        /// Where, inside the container.
        destination: PathBuf,
        /// The spec's options for it.
        options: MountOptions,
        /// The container gets its own cgroup namespace (mount cgroupfs instead of binds).
        cgroupns: bool,
    },
    /// A device node (default or from `linux.devices`).
    Device(DeviceNode),
    /// A symlink inside the rootfs (the /dev symlinks).
    Symlink {
        /// What the link points to.
        target: PathBuf,
        /// The link's path inside the container.
        link: PathBuf,
        /// Create it only when this host path exists (`/dev/core` → `/proc/kcore`).
        if_host_exists: Option<PathBuf>,
    },
    /// `/dev/ptmx` → `pts/ptmx`.
    Ptmx,
    /// Bind the pty slave at `/dev/console`.
    Console {
        /// The slave's path as seen by the init process when `prepare` runs.
        slave: PathBuf,
    },
    /// `pivot_root` into the rootfs, old root unmounted with `MNT_DETACH`.
    PivotRoot,
    /// `--no-pivot`: `MS_MOVE` the rootfs onto `/` and `chroot`.
    MoveRoot,
    /// `mount("", "/", "", flags)` again inside the new root (`linux.rootfsPropagation`).
    FinalPropagation {
        /// The propagation flags.
        flags: c_ulong,
    },
    /// A `linux.readonlyPaths` entry: bind on itself, read-only, nosuid, nodev, noexec.
    ReadonlyPath(PathBuf),
    /// A `linux.maskedPaths` entry: verified /dev/null over a file, read-only tmpfs over a dir.
    MaskPath(PathBuf),
    /// A mount made writable for setup and made read-only at the end (a read-only /dev).
    RemountReadonly(PathBuf),
    /// `root.readonly`: the root mount made read-only.
    ReadonlyRoot,
}

impl MountOp {
    /// The phase this step belongs to.
    pub fn phase(&self) -> Phase {
        match self {
            MountOp::PivotRoot | MountOp::MoveRoot => Phase::Pivot,
            MountOp::FinalPropagation { .. }
            | MountOp::ReadonlyPath(_)
            | MountOp::MaskPath(_)
            | MountOp::RemountReadonly(_)
            | MountOp::ReadonlyRoot => Phase::Finalize,
            _ => Phase::Prepare,
        }
    }
}

/// A spec mount, checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMount {
    /// Absolute, normalised destination inside the container (no `.`/`..`).
    pub destination: PathBuf,
    /// What is mounted.
    pub kind: MountKind,
    /// The parsed options.
    pub options: MountOptions,
}

/// What a [`PlannedMount`] mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A bind mount of a host path (relative sources are relative to the bundle).
    Bind {
        /// Absolute host path.
        source: PathBuf,
        /// `rbind`: submounts too.
        recursive: bool,
    },
    /// A new filesystem instance of `fstype` (proc, sysfs, tmpfs, devpts, mqueue, ...).
    Fs {
        /// Filesystem type for mount(2).
        fstype: String,
        /// Source string for mount(2) (the spec's, or the type's name).
        source: String,
    },
}

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Absolute, normalised path inside the container.
    pub path: PathBuf,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: libc::mode_t,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: libc::mode_t,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Bind the host's node instead of mknod (a user namespace cannot mknod).
    pub bind_from_host: bool,
}

/// The devices every container gets (runc's default set), all `0666 root:root` char devices.
pub const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/tty", 5, 0),
    ("/dev/urandom", 1, 9),
    ("/dev/random", 1, 8),
];

/// Normalises a container path: must be absolute; `.` dropped, `..` applied lexically
/// and refused when it would climb above `/`.
pub fn normalize_container_path(what: &str, path: &Path) -> Result<PathBuf, RootfsError> {
    if !path.is_absolute() {
        return Err(RootfsError::InvalidPath {
            what: what.to_string(),
            path: path.to_path_buf(),
            reason: "must be an absolute path",
        });
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if !out.pop() {
                    return Err(RootfsError::InvalidPath {
                        what: what.to_string(),
                        path: path.to_path_buf(),
                        reason: "`..` climbs out of the container root",
                    });
                }
            }
            Component::Prefix(_) => {
                return Err(RootfsError::InvalidPath {
                    what: what.to_string(),
                    path: path.to_path_buf(),
                    reason: "not a Linux path",
                });
            }
        }
    }
    Ok(out)
}

/// Files under /proc that may be mounted over (what lxcfs emulates), as in runc.
pub const PROC_MOUNTABLE: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
];

/// Nothing but procfs goes at /proc, and nothing goes under it except [`PROC_MOUNTABLE`]
/// (a bind at /proc is checked to be procfs when applied).
fn check_proc_destination(
    dest_str: &str,
    destination: &Path,
    kind: &MountKind,
) -> Result<(), RootfsError> {
    if !destination.starts_with("/proc") {
        return Ok(());
    }
    if destination == Path::new("/proc") {
        return match kind {
            MountKind::Fs { fstype, .. } if fstype != "proc" => Err(RootfsError::InvalidMount {
                destination: dest_str.to_string(),
                reason: format!("only procfs can be mounted at /proc, not {fstype:?}"),
            }),
            _ => Ok(()),
        };
    }
    if PROC_MOUNTABLE.iter().any(|p| destination == Path::new(p)) {
        return Ok(());
    }
    Err(RootfsError::InvalidMount {
        destination: dest_str.to_string(),
        reason: "cannot mount inside /proc".into(),
    })
}

fn has_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ))
}

/// Builds the whole plan from the config (pure: reads nothing from the host).
pub fn plan(cfg: &RootfsConfig) -> Result<Vec<MountOp>, RootfsError> {
    let spec = cfg.spec;
    let linux = spec.linux().as_ref();
    let userns = has_namespace(spec, LinuxNamespaceType::User);
    let netns = has_namespace(spec, LinuxNamespaceType::Network);
    let cgroupns = has_namespace(spec, LinuxNamespaceType::Cgroup);

    let root_prop = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => None,
        Some(word) => Some(
            propagation_flag(word).ok_or_else(|| RootfsError::InvalidField {
                field: "linux.rootfsPropagation",
                reason: format!("unknown propagation {word:?}"),
            })?,
        ),
    };

    let mut ops = vec![
        MountOp::RootPropagation {
            flags: root_prop.unwrap_or(libc::MS_SLAVE | libc::MS_REC),
        },
        MountOp::PrivateRootfsParent,
        MountOp::BindRootfs,
    ];

    let mut setup_dev = true;
    let mut finalize_ops = Vec::new();
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let dest_str = m.destination().display().to_string();
        let destination = normalize_container_path("mount destination", m.destination())?;
        if destination == Path::new("/") {
            return Err(RootfsError::InvalidPath {
                what: "mount destination".into(),
                path: m.destination().clone(),
                reason: "cannot mount over the container root",
            });
        }
        let mut options = parse_options(&dest_str, m.options().as_deref().unwrap_or_default())?;
        let typ = m.typ().as_deref().unwrap_or("");
        let bind = options.is_bind() || typ == "bind" || typ == "rbind";
        super::idmap::check_mount(&dest_str, m, &options, bind)?;
        if typ == "cgroup" || typ == "cgroup2" {
            if bind {
                // A bind of a cgroup directory is just a bind.
            } else {
                ops.push(MountOp::Cgroup {
                    destination,
                    options,
                    cgroupns,
                });
                continue;
            }
        }
        let kind = if bind {
            let src = m
                .source()
                .as_ref()
                .ok_or_else(|| RootfsError::InvalidMount {
                    destination: dest_str.clone(),
                    reason: "a bind mount needs a source".into(),
                })?;
            if src.as_os_str().is_empty() {
                return Err(RootfsError::InvalidMount {
                    destination: dest_str,
                    reason: "a bind mount needs a source".into(),
                });
            }
            let source = if src.is_absolute() {
                src.clone()
            } else {
                // The source is a host path chosen by the caller of the runtime, relative
                // to the bundle (runtime-spec config.md); it is not inside the rootfs.
                cfg.bundle.join(src)
            };
            let recursive = typ == "rbind" || options.flags & libc::MS_REC != 0;
            options.flags |= libc::MS_BIND;
            if recursive {
                options.flags |= libc::MS_REC;
            }
            if destination == Path::new("/dev") {
                setup_dev = false;
            }
            MountKind::Bind { source, recursive }
        } else if typ == "sysfs" && userns && !netns {
            // A user namespace without its own network namespace may not mount sysfs:
            // bind the host's /sys instead, as runc does.
            options.flags |=
                libc::MS_BIND | libc::MS_REC | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            MountKind::Bind {
                source: PathBuf::from("/sys"),
                recursive: true,
            }
        } else {
            if typ.is_empty() {
                return Err(RootfsError::InvalidMount {
                    destination: dest_str,
                    reason: "no type and not a bind mount".into(),
                });
            }
            if options.tmpcopyup && typ != "tmpfs" {
                return Err(RootfsError::InvalidMount {
                    destination: dest_str,
                    reason: "tmpcopyup is only valid for tmpfs".into(),
                });
            }
            if destination == Path::new("/dev") && options.flags & libc::MS_RDONLY != 0 {
                // Devices are created in /dev after it is mounted: mount it writable and
                // make it read-only at the end (runc does the same).
                options.flags &= !libc::MS_RDONLY;
                finalize_ops.push(MountOp::RemountReadonly(destination.clone()));
            }
            if typ == "devpts" {
                // Always a private instance with a usable ptmx (runc's defaults).
                if !options.data.iter().any(|d| d == "newinstance") {
                    options.data.push("newinstance".into());
                }
                if !options.data.iter().any(|d| d.starts_with("ptmxmode=")) {
                    options.data.push("ptmxmode=0666".into());
                }
            }
            let source = m
                .source()
                .as_ref()
                .map(|s| s.display().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| typ.to_string());
            MountKind::Fs {
                fstype: typ.to_string(),
                source,
            }
        };
        check_proc_destination(&dest_str, &destination, &kind)?;
        if options.tmpcopyup && !matches!(kind, MountKind::Fs { .. }) {
            return Err(RootfsError::InvalidMount {
                destination: dest_str,
                reason: "tmpcopyup is only valid for tmpfs".into(),
            });
        }
        ops.push(MountOp::Mount(PlannedMount {
            destination,
            kind,
            options,
        }));
    }

    if setup_dev {
        let mut devices: Vec<DeviceNode> = Vec::new();
        for d in linux
            .and_then(|l| l.devices().as_deref())
            .unwrap_or_default()
        {
            let path = normalize_container_path("device path", d.path())?;
            if path == Path::new("/") {
                return Err(RootfsError::InvalidPath {
                    what: "device path".into(),
                    path: d.path().clone(),
                    reason: "cannot be the container root",
                });
            }
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
                LinuxDeviceType::B => libc::S_IFBLK,
                LinuxDeviceType::P => libc::S_IFIFO,
                LinuxDeviceType::A => {
                    return Err(RootfsError::InvalidField {
                        field: "linux.devices",
                        reason: format!("{}: type \"a\" is not a device type", d.path().display()),
                    });
                }
            };
            let (major, minor) = if kind == libc::S_IFIFO {
                (0, 0)
            } else {
                let major = u64::try_from(d.major()).map_err(|_| RootfsError::InvalidField {
                    field: "linux.devices",
                    reason: format!("{}: negative major", d.path().display()),
                })?;
                let minor = u64::try_from(d.minor()).map_err(|_| RootfsError::InvalidField {
                    field: "linux.devices",
                    reason: format!("{}: negative minor", d.path().display()),
                })?;
                (major, minor)
            };
            let node = DeviceNode {
                path,
                kind,
                major,
                minor,
                mode: d.file_mode().unwrap_or(0o666) & 0o7777,
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
                bind_from_host: userns,
            };
            devices.retain(|x| x.path != node.path);
            devices.push(node);
        }
        let mut all: Vec<DeviceNode> = DEFAULT_DEVICES
            .iter()
            .filter(|(p, _, _)| !devices.iter().any(|d| d.path == Path::new(p)))
            .map(|(p, major, minor)| DeviceNode {
                path: PathBuf::from(p),
                kind: libc::S_IFCHR,
                major: *major,
                minor: *minor,
                mode: 0o666,
                uid: 0,
                gid: 0,
                bind_from_host: userns,
            })
            .collect();
        all.extend(devices);
        ops.extend(all.into_iter().map(MountOp::Device));
        for (target, link) in [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
        ] {
            ops.push(MountOp::Symlink {
                target: target.into(),
                link: link.into(),
                if_host_exists: None,
            });
        }
        ops.push(MountOp::Symlink {
            target: "/proc/kcore".into(),
            link: "/dev/core".into(),
            if_host_exists: Some("/proc/kcore".into()),
        });
        ops.push(MountOp::Ptmx);
    }
    if let Some(slave) = cfg.console_slave {
        ops.push(MountOp::Console {
            slave: slave.to_path_buf(),
        });
    }

    ops.push(if cfg.no_pivot {
        MountOp::MoveRoot
    } else {
        MountOp::PivotRoot
    });

    if let Some(flags) = root_prop {
        ops.push(MountOp::FinalPropagation { flags });
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default()
    {
        ops.push(MountOp::ReadonlyPath(normalize_container_path(
            "linux.readonlyPaths",
            Path::new(p),
        )?));
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
    {
        ops.push(MountOp::MaskPath(normalize_container_path(
            "linux.maskedPaths",
            Path::new(p),
        )?));
    }
    ops.extend(finalize_ops);
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        ops.push(MountOp::ReadonlyRoot);
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}},
            "mounts": [],
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}
        });
        if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
            for (k, val) in o {
                b.insert(k.clone(), val.clone());
            }
        }
        serde_json::from_value(base).expect("test spec is valid")
    }

    fn plan_of(
        s: &Spec,
        no_pivot: bool,
        console: Option<&Path>,
    ) -> Result<Vec<MountOp>, RootfsError> {
        plan(&RootfsConfig {
            spec: s,
            rootfs: Path::new("/b/rootfs"),
            bundle: Path::new("/b"),
            no_pivot,
            console_slave: console,
            idmapped: None,
        })
    }

    fn mounts(ops: &[MountOp]) -> Vec<&PlannedMount> {
        ops.iter()
            .filter_map(|o| match o {
                MountOp::Mount(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn normalize_paths() {
        let ok: &[(&str, &str)] = &[
            ("/proc", "/proc"),
            ("/a/./b/", "/a/b"),
            ("/a/b/../c", "/a/c"),
            ("//dev//shm", "/dev/shm"),
            ("/", "/"),
        ];
        for (i, o) in ok {
            assert_eq!(
                normalize_container_path("t", Path::new(i)).expect(i),
                PathBuf::from(o)
            );
        }
        for bad in ["relative/x", "x", "/../etc", "/a/../../etc", ""] {
            assert!(
                matches!(
                    normalize_container_path("t", Path::new(bad)),
                    Err(RootfsError::InvalidPath { .. })
                ),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn default_plan_order_and_phases() {
        let s = spec(json!({
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}
            ],
            "linux": {"namespaces": [{"type": "mount"}], "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]}
        }));
        let ops = plan_of(&s, false, None).expect("plan");
        assert_eq!(
            ops[0],
            MountOp::RootPropagation {
                flags: libc::MS_SLAVE | libc::MS_REC
            }
        );
        assert_eq!(ops[1], MountOp::PrivateRootfsParent);
        assert_eq!(ops[2], MountOp::BindRootfs);
        let ms = mounts(&ops);
        assert_eq!(ms.len(), 3);
        assert_eq!(ms[1].destination, PathBuf::from("/dev"));
        assert_eq!(ms[1].options.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(ms[1].options.data_string(), "mode=755,size=65536k");
        assert_eq!(
            ms[2].options.data_string(),
            "newinstance,ptmxmode=0666,mode=0620,gid=5"
        );
        assert_eq!(
            ms[0].kind,
            MountKind::Fs {
                fstype: "proc".into(),
                source: "proc".into()
            }
        );
        // phases never go backwards
        let phases: Vec<Phase> = ops.iter().map(|o| o.phase()).collect();
        let mut sorted = phases.clone();
        sorted.sort_by_key(|p| *p as u8);
        assert_eq!(phases, sorted);
        assert!(ops.contains(&MountOp::PivotRoot));
        assert!(!ops.contains(&MountOp::MoveRoot));
        assert!(ops.contains(&MountOp::Ptmx));
        assert_eq!(ops.last(), Some(&MountOp::MaskPath("/proc/kcore".into())));
        assert!(ops.contains(&MountOp::ReadonlyPath("/proc/sys".into())));
        assert!(!ops.contains(&MountOp::ReadonlyRoot));
    }

    #[test]
    fn default_devices_and_symlinks() {
        let ops = plan_of(&spec(json!({})), false, None).expect("plan");
        let devs: Vec<&DeviceNode> = ops
            .iter()
            .filter_map(|o| match o {
                MountOp::Device(d) => Some(d),
                _ => None,
            })
            .collect();
        let got: Vec<(String, u64, u64, u32, bool)> = devs
            .iter()
            .map(|d| {
                (
                    d.path.display().to_string(),
                    d.major,
                    d.minor,
                    d.mode,
                    d.bind_from_host,
                )
            })
            .collect();
        let want: Vec<(String, u64, u64, u32, bool)> = DEFAULT_DEVICES
            .iter()
            .map(|(p, a, b)| (p.to_string(), *a, *b, 0o666, false))
            .collect();
        assert_eq!(got, want);
        assert!(
            devs.iter()
                .all(|d| d.kind == libc::S_IFCHR && d.uid == 0 && d.gid == 0)
        );
        let links: Vec<(String, String, bool)> = ops
            .iter()
            .filter_map(|o| match o {
                MountOp::Symlink {
                    target,
                    link,
                    if_host_exists,
                } => Some((
                    target.display().to_string(),
                    link.display().to_string(),
                    if_host_exists.is_some(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            links,
            vec![
                ("/proc/self/fd".into(), "/dev/fd".into(), false),
                ("/proc/self/fd/0".into(), "/dev/stdin".into(), false),
                ("/proc/self/fd/1".into(), "/dev/stdout".into(), false),
                ("/proc/self/fd/2".into(), "/dev/stderr".into(), false),
                ("/proc/kcore".into(), "/dev/core".into(), true),
            ]
        );
    }

    #[test]
    fn spec_devices_override_defaults_and_userns_binds() {
        let s = spec(json!({
            "linux": {
                "namespaces": [{"type": "mount"}, {"type": "user"}],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "devices": [
                    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0},
                    {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 432, "uid": 5, "gid": 6},
                    {"path": "/dev/fifo", "type": "p"},
                    {"path": "/dev/x/../y", "type": "u", "major": 10, "minor": 1}
                ]
            }
        }));
        let ops = plan_of(&s, false, None).expect("plan");
        let devs: Vec<&DeviceNode> = ops
            .iter()
            .filter_map(|o| match o {
                MountOp::Device(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(
            devs.iter()
                .filter(|d| d.path == Path::new("/dev/null"))
                .count(),
            1
        );
        assert_eq!(devs.len(), 6 + 3);
        let sda = devs
            .iter()
            .find(|d| d.path == Path::new("/dev/sda"))
            .expect("sda");
        assert_eq!(
            (sda.kind, sda.major, sda.minor, sda.mode, sda.uid, sda.gid),
            (libc::S_IFBLK, 8, 0, 0o660, 5, 6)
        );
        let fifo = devs
            .iter()
            .find(|d| d.path == Path::new("/dev/fifo"))
            .expect("fifo");
        assert_eq!(fifo.kind, libc::S_IFIFO);
        assert!(
            devs.iter()
                .any(|d| d.path == Path::new("/dev/y") && d.kind == libc::S_IFCHR)
        );
        assert!(
            devs.iter().all(|d| d.bind_from_host),
            "a user namespace binds host devices"
        );
    }

    #[test]
    fn bind_dev_skips_device_setup() {
        let s = spec(
            json!({"mounts": [{"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}]}),
        );
        let ops = plan_of(&s, false, None).expect("plan");
        assert!(!ops.iter().any(|o| matches!(
            o,
            MountOp::Device(_) | MountOp::Ptmx | MountOp::Symlink { .. }
        )));
    }

    #[test]
    fn bind_mounts() {
        struct Case {
            m: serde_json::Value,
            source: &'static str,
            recursive: bool,
            flags: c_ulong,
        }
        let cases = [
            Case {
                m: json!({"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["ro"]}),
                source: "/srv/data",
                recursive: false,
                flags: libc::MS_BIND | libc::MS_RDONLY,
            },
            Case {
                m: json!({"destination": "/data", "source": "/srv/data", "options": ["rbind", "nosuid"]}),
                source: "/srv/data",
                recursive: true,
                flags: libc::MS_BIND | libc::MS_REC | libc::MS_NOSUID,
            },
            Case {
                m: json!({"destination": "/data", "type": "none", "source": "rel/dir", "options": ["bind"]}),
                source: "/b/rel/dir",
                recursive: false,
                flags: libc::MS_BIND,
            },
            Case {
                m: json!({"destination": "/data", "type": "rbind", "source": "/x"}),
                source: "/x",
                recursive: true,
                flags: libc::MS_BIND | libc::MS_REC,
            },
        ];
        for c in cases {
            let s = spec(json!({"mounts": [c.m.clone()]}));
            let ops = plan_of(&s, false, None).expect("plan");
            let ms = mounts(&ops);
            assert_eq!(
                ms[0].kind,
                MountKind::Bind {
                    source: c.source.into(),
                    recursive: c.recursive
                },
                "{}",
                c.m
            );
            assert_eq!(ms[0].options.flags, c.flags, "{}", c.m);
        }
    }

    #[test]
    fn sysfs_in_userns_without_netns_becomes_rbind() {
        let m =
            json!([{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]}]);
        let with_user = spec(
            json!({"mounts": m, "linux": {"namespaces": [{"type": "mount"}, {"type": "user"}]}}),
        );
        let ops = plan_of(&with_user, false, None).expect("plan");
        let ms = mounts(&ops);
        assert_eq!(
            ms[0].kind,
            MountKind::Bind {
                source: "/sys".into(),
                recursive: true
            }
        );
        assert_eq!(
            ms[0].options.flags,
            libc::MS_BIND
                | libc::MS_REC
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC
        );
        let with_net = spec(
            json!({"mounts": m, "linux": {"namespaces": [{"type": "mount"}, {"type": "user"}, {"type": "network"}]}}),
        );
        let ops = plan_of(&with_net, false, None).expect("plan");
        assert!(matches!(&mounts(&ops)[0].kind, MountKind::Fs { fstype, .. } if fstype == "sysfs"));
    }

    #[test]
    fn cgroup_mounts_and_namespace() {
        let m = json!([{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid"]}]);
        let ops = plan_of(&spec(json!({"mounts": m})), false, None).expect("plan");
        assert!(ops.iter().any(|o| matches!(o, MountOp::Cgroup { cgroupns: false, options, .. } if options.flags == libc::MS_RDONLY | libc::MS_NOSUID)));
        let ops = plan_of(
            &spec(json!({"mounts": m, "linux": {"namespaces": [{"type": "mount"}, {"type": "cgroup"}]}})),
            false,
            None,
        )
        .expect("plan");
        assert!(
            ops.iter()
                .any(|o| matches!(o, MountOp::Cgroup { cgroupns: true, .. }))
        );
    }

    #[test]
    fn lxcfs_style_proc_binds_are_allowed() {
        for p in PROC_MOUNTABLE {
            let s = spec(
                json!({"mounts": [{"destination": p, "type": "bind", "source": "/var/lib/lxcfs/proc/x"}]}),
            );
            assert!(plan_of(&s, false, None).is_ok(), "{p}");
        }
    }

    #[test]
    fn devpts_always_gets_newinstance_and_ptmxmode() {
        let s = spec(
            json!({"mounts": [{"destination": "/dev/pts", "type": "devpts", "options": ["nosuid", "mode=0620"]}]}),
        );
        let ops = plan_of(&s, false, None).expect("plan");
        assert_eq!(
            mounts(&ops)[0].options.data_string(),
            "mode=0620,newinstance,ptmxmode=0666"
        );
    }

    #[test]
    fn readonly_dev_is_remounted_at_the_end() {
        let s = spec(
            json!({"mounts": [{"destination": "/dev", "type": "tmpfs", "options": ["ro", "nosuid"]}]}),
        );
        let ops = plan_of(&s, false, None).expect("plan");
        let ms = mounts(&ops);
        assert_eq!(ms[0].options.flags, libc::MS_NOSUID);
        assert_eq!(
            ms[0].kind,
            MountKind::Fs {
                fstype: "tmpfs".into(),
                source: "tmpfs".into()
            }
        );
        assert!(ops.contains(&MountOp::RemountReadonly("/dev".into())));
    }

    #[test]
    fn root_options() {
        let s = spec(
            json!({"root": {"path": "rootfs", "readonly": true}, "linux": {"rootfsPropagation": "shared"}}),
        );
        let ops = plan_of(&s, true, Some(Path::new("/dev/pts/3"))).expect("plan");
        assert_eq!(
            ops[0],
            MountOp::RootPropagation {
                flags: libc::MS_SHARED
            }
        );
        assert!(ops.contains(&MountOp::MoveRoot));
        assert!(ops.contains(&MountOp::FinalPropagation {
            flags: libc::MS_SHARED
        }));
        assert!(ops.contains(&MountOp::Console {
            slave: "/dev/pts/3".into()
        }));
        assert_eq!(ops.last(), Some(&MountOp::ReadonlyRoot));
    }

    #[test]
    fn hostile_specs_are_refused() {
        let cases: &[(serde_json::Value, &str)] = &[
            (
                json!({"mounts": [{"destination": "relative", "type": "tmpfs"}]}),
                "absolute",
            ),
            (
                json!({"mounts": [{"destination": "/../../etc", "type": "tmpfs"}]}),
                "climbs",
            ),
            (
                json!({"mounts": [{"destination": "/", "type": "tmpfs"}]}),
                "container root",
            ),
            (
                json!({"mounts": [{"destination": "/x", "options": ["bind"]}]}),
                "needs a source",
            ),
            (
                json!({"mounts": [{"destination": "/x", "source": "x"}]}),
                "no type",
            ),
            (
                json!({"mounts": [{"destination": "/x", "type": "proc", "options": ["tmpcopyup"]}]}),
                "tmpcopyup",
            ),
            (
                json!({"mounts": [{"destination": "/x", "type": "tmpfs", "options": ["idmap"]}]}),
                "idmap",
            ),
            (
                json!({"linux": {"rootfsPropagation": "sideways"}}),
                "sideways",
            ),
            (
                json!({"mounts": [{"destination": "/proc", "type": "tmpfs"}]}),
                "only procfs",
            ),
            (
                json!({"mounts": [{"destination": "/proc/sys/kernel/core_pattern", "type": "bind", "source": "/tmp/x"}]}),
                "inside /proc",
            ),
            (
                json!({"mounts": [{"destination": "/proc/../proc/self", "type": "tmpfs"}]}),
                "inside /proc",
            ),
            (
                json!({"linux": {"maskedPaths": ["proc/kcore"]}}),
                "absolute",
            ),
            (json!({"linux": {"readonlyPaths": ["/../x"]}}), "climbs"),
            (
                json!({"linux": {"devices": [{"path": "dev/x", "type": "c", "major": 1, "minor": 1}]}}),
                "absolute",
            ),
            (
                json!({"linux": {"devices": [{"path": "/dev/x", "type": "c", "major": -1, "minor": 1}]}}),
                "negative",
            ),
        ];
        for (v, needle) in cases {
            let err = plan_of(&spec(v.clone()), false, None).expect_err(&v.to_string());
            assert!(err.to_string().contains(needle), "{v}: {err}");
        }
    }
}
