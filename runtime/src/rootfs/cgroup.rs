//! The `cgroup` mount type, planned from the host's /proc/self/mountinfo and
//! /proc/self/cgroup (pure functions over their text), as runc does:
//! - cgroup v2 host: a `cgroup2` mount, falling back to a bind of the container's own
//!   cgroup directory when the kernel refuses (a user namespace without a cgroup one);
//! - cgroup v1 or hybrid host: a tmpfs at the destination, then per hierarchy a bind of
//!   the container's own cgroup directory (or, with a cgroup namespace, a fresh cgroup
//!   mount of that hierarchy), symlinks for co-mounted controllers (`cpu` →
//!   `cpu,cpuacct`), and the unified hierarchy as `unified` on a hybrid host.

use std::path::{Path, PathBuf};

use super::RootfsError;

pub use crate::cgroups::layout::{CgroupLine, MountInfo};

/// Parses /proc/self/mountinfo text (the one parser, in `cgroups::layout`); a malformed
/// line is an error.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountInfo>, RootfsError> {
    crate::cgroups::layout::parse_mountinfo_lines(text).map_err(|e| RootfsError::Host {
        what: "mountinfo",
        reason: e.to_string(),
    })
}

/// Parses /proc/self/cgroup text (the one parser, in `cgroups::layout`).
pub fn parse_proc_cgroup(text: &str) -> Result<Vec<CgroupLine>, RootfsError> {
    crate::cgroups::layout::parse_proc_cgroup_lines(text).map_err(|e| RootfsError::Host {
        what: "/proc/self/cgroup",
        reason: e.to_string(),
    })
}

/// One step of a cgroup mount, destination paths inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupStep {
    /// A tmpfs holding the v1 hierarchies.
    Tmpfs {
        /// Where.
        destination: PathBuf,
    },
    /// Bind a host cgroup directory.
    Bind {
        /// Host directory.
        source: PathBuf,
        /// Where.
        destination: PathBuf,
    },
    /// A fresh cgroup filesystem (`cgroup` with `data` controllers, or `cgroup2`).
    Mount {
        /// `cgroup` or `cgroup2`.
        fstype: &'static str,
        /// Data string (v1 controllers).
        data: String,
        /// Where.
        destination: PathBuf,
        /// Bind this host directory instead when the kernel refuses the mount.
        fallback_bind: Option<PathBuf>,
    },
    /// A symlink for a co-mounted controller.
    Symlink {
        /// Link target (a sibling directory name).
        target: String,
        /// The link.
        link: PathBuf,
    },
}

/// The host path of `own` (a cgroup path) inside the hierarchy mounted as `m`.
fn host_dir(m: &MountInfo, own: &str) -> Option<PathBuf> {
    let own = Path::new(own);
    let rel = own.strip_prefix(&m.root).ok()?;
    Some(m.mount_point.join(rel))
}

/// Plans a cgroup mount at `destination` from the host's mountinfo and the container
/// process's /proc/self/cgroup.
pub fn cgroup_steps(
    destination: &Path,
    cgroupns: bool,
    mountinfo: &[MountInfo],
    own: &[CgroupLine],
) -> Result<Vec<CgroupStep>, RootfsError> {
    let unified = own.iter().find(|l| l.id == 0);
    let top = mountinfo
        .iter()
        .rev()
        .find(|m| m.mount_point == Path::new("/sys/fs/cgroup"));
    if top.is_some_and(|m| m.fstype == "cgroup2") {
        let m = top.expect("checked above");
        let path = unified.map(|l| l.path.as_str()).unwrap_or("/");
        return Ok(vec![CgroupStep::Mount {
            fstype: "cgroup2",
            data: String::new(),
            destination: destination.to_path_buf(),
            fallback_bind: host_dir(m, path),
        }]);
    }
    let mut steps = vec![CgroupStep::Tmpfs {
        destination: destination.to_path_buf(),
    }];
    for line in own.iter().filter(|l| l.id != 0) {
        let wanted: Vec<&str> = line
            .controllers
            .split(',')
            .filter(|s| !s.is_empty())
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let mount = mountinfo
            .iter()
            .filter(|m| m.fstype == "cgroup")
            .filter(|m| {
                let opts: Vec<&str> = m.super_options.split(',').collect();
                wanted.iter().all(|w| opts.contains(w))
            })
            .min_by_key(|m| !m.mount_point.starts_with("/sys/fs/cgroup"));
        let Some(mount) = mount else {
            continue;
        };
        let Some(subdir) = mount.mount_point.file_name() else {
            continue;
        };
        let subdir = subdir.to_string_lossy().into_owned();
        let dest = destination.join(&subdir);
        if cgroupns {
            let data = if line.controllers.starts_with("name=") {
                format!("none,{}", line.controllers)
            } else {
                line.controllers.clone()
            };
            steps.push(CgroupStep::Mount {
                fstype: "cgroup",
                data,
                destination: dest,
                fallback_bind: None,
            });
        } else {
            let Some(source) = host_dir(mount, &line.path) else {
                return Err(RootfsError::Host {
                    what: "/proc/self/cgroup",
                    reason: format!(
                        "cgroup {} of hierarchy {} is outside its mount root {:?}",
                        line.path, line.controllers, mount.root
                    ),
                });
            };
            steps.push(CgroupStep::Bind {
                source,
                destination: dest,
            });
        }
        if subdir.contains(',') {
            for part in subdir.split(',') {
                steps.push(CgroupStep::Symlink {
                    target: subdir.clone(),
                    link: destination.join(part),
                });
            }
        }
    }
    // Hybrid host: the unified hierarchy next to the v1 ones.
    if let Some(line) = unified {
        let mount = mountinfo
            .iter()
            .filter(|m| m.fstype == "cgroup2" && m.mount_point.starts_with("/sys/fs/cgroup"))
            .min_by_key(|m| m.mount_point.as_os_str().len());
        if let Some(mount) = mount {
            let name = mount
                .mount_point
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "unified".into());
            let dest = destination.join(name);
            if cgroupns {
                steps.push(CgroupStep::Mount {
                    fstype: "cgroup2",
                    data: String::new(),
                    destination: dest,
                    fallback_bind: host_dir(mount, &line.path),
                });
            } else if let Some(source) = host_dir(mount, &line.path) {
                steps.push(CgroupStep::Bind {
                    source,
                    destination: dest,
                });
            }
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:28 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:29 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
35 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
36 30 0:33 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
37 30 0:34 /nested /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
40 22 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw
";
    const HYBRID_CGROUP: &str = "\
12:pids:/nested/berth/c1
4:memory:/berth/c1
3:cpu,cpuacct:/berth/c1
1:name=systemd:/berth/c1
0::/berth/c1
";

    #[test]
    fn mountinfo_parsing() {
        let mi = parse_mountinfo(HYBRID_MOUNTINFO).expect("parse");
        assert_eq!(mi.len(), 9);
        assert_eq!(mi[0].optional, vec!["shared:1".to_string()]);
        assert_eq!(mi[3].fstype, "cgroup2");
        assert_eq!(mi[8].mount_point, PathBuf::from("/mnt/with space"));
        assert!(parse_mountinfo("garbage line\n").is_err());
    }

    #[test]
    fn proc_cgroup_parsing() {
        let c = parse_proc_cgroup(HYBRID_CGROUP).expect("parse");
        assert_eq!(
            c[2],
            CgroupLine {
                id: 3,
                controllers: "cpu,cpuacct".into(),
                path: "/berth/c1".into()
            }
        );
        assert_eq!(c[4].id, 0);
        assert!(parse_proc_cgroup("x:y\n").is_err());
    }

    #[test]
    fn hybrid_binds_own_dirs_symlinks_and_unified() {
        let mi = parse_mountinfo(HYBRID_MOUNTINFO).expect("parse");
        let own = parse_proc_cgroup(HYBRID_CGROUP).expect("parse");
        let steps = cgroup_steps(Path::new("/sys/fs/cgroup"), false, &mi, &own).expect("steps");
        let d = |s: &str| PathBuf::from(s);
        assert_eq!(
            steps,
            vec![
                CgroupStep::Tmpfs {
                    destination: d("/sys/fs/cgroup")
                },
                CgroupStep::Bind {
                    source: d("/sys/fs/cgroup/pids/berth/c1"),
                    destination: d("/sys/fs/cgroup/pids")
                },
                CgroupStep::Bind {
                    source: d("/sys/fs/cgroup/memory/berth/c1"),
                    destination: d("/sys/fs/cgroup/memory")
                },
                CgroupStep::Bind {
                    source: d("/sys/fs/cgroup/cpu,cpuacct/berth/c1"),
                    destination: d("/sys/fs/cgroup/cpu,cpuacct")
                },
                CgroupStep::Symlink {
                    target: "cpu,cpuacct".into(),
                    link: d("/sys/fs/cgroup/cpu")
                },
                CgroupStep::Symlink {
                    target: "cpu,cpuacct".into(),
                    link: d("/sys/fs/cgroup/cpuacct")
                },
                CgroupStep::Bind {
                    source: d("/sys/fs/cgroup/systemd/berth/c1"),
                    destination: d("/sys/fs/cgroup/systemd")
                },
                CgroupStep::Bind {
                    source: d("/sys/fs/cgroup/unified/berth/c1"),
                    destination: d("/sys/fs/cgroup/unified")
                },
            ]
        );
    }

    #[test]
    fn hybrid_with_cgroupns_mounts_fresh_hierarchies() {
        let mi = parse_mountinfo(HYBRID_MOUNTINFO).expect("parse");
        let own = parse_proc_cgroup(HYBRID_CGROUP).expect("parse");
        let steps = cgroup_steps(Path::new("/sys/fs/cgroup"), true, &mi, &own).expect("steps");
        assert!(steps.contains(&CgroupStep::Mount {
            fstype: "cgroup",
            data: "none,name=systemd".into(),
            destination: "/sys/fs/cgroup/systemd".into(),
            fallback_bind: None
        }));
        assert!(steps.contains(&CgroupStep::Mount {
            fstype: "cgroup",
            data: "cpu,cpuacct".into(),
            destination: "/sys/fs/cgroup/cpu,cpuacct".into(),
            fallback_bind: None
        }));
        assert!(steps.iter().any(|s| matches!(s, CgroupStep::Mount { fstype: "cgroup2", destination, .. } if destination == Path::new("/sys/fs/cgroup/unified"))));
    }

    #[test]
    fn pure_v2_mounts_cgroup2_with_bind_fallback() {
        let mi = parse_mountinfo(
            "22 1 0:21 / / rw shared:1 - ext4 /dev/vda rw\n30 22 0:27 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n",
        )
        .expect("parse");
        let own = parse_proc_cgroup("0::/kubepods/pod1/c1\n").expect("parse");
        let steps = cgroup_steps(Path::new("/sys/fs/cgroup"), false, &mi, &own).expect("steps");
        assert_eq!(
            steps,
            vec![CgroupStep::Mount {
                fstype: "cgroup2",
                data: String::new(),
                destination: "/sys/fs/cgroup".into(),
                fallback_bind: Some("/sys/fs/cgroup/kubepods/pod1/c1".into()),
            }]
        );
    }

    #[test]
    fn cgroup_outside_mount_root_is_an_error() {
        let mi = parse_mountinfo(HYBRID_MOUNTINFO).expect("parse");
        let own = parse_proc_cgroup("12:pids:/elsewhere\n").expect("parse");
        assert!(cgroup_steps(Path::new("/sys/fs/cgroup"), false, &mi, &own).is_err());
    }
}
