//! Namespaces: which to join by path and which to create (a pure plan), and the thin
//! calls that do it (`setns`, `unshare`, id maps, time offsets).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

/// Errors setting up namespaces.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("open namespace {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("join {kind} namespace {path}: {source}")]
    Join {
        kind: String,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("create namespaces ({flags:?}): {source}")]
    Unshare {
        flags: CloneFlags,
        source: nix::Error,
    },
    #[error("write {what} of pid {pid}: {source} (mapping: {mapping})")]
    Map {
        what: &'static str,
        pid: i32,
        mapping: String,
        source: std::io::Error,
    },
    #[error("write time offsets: {0}")]
    Time(std::io::Error),
}

/// The clone flag of a namespace type.
pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The /proc/PID/ns file name of a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// What to do with namespaces, in the order it must happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsPlan {
    /// Namespaces to join by path, the user namespace first.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// Whether to create a new user namespace (before the others, so it owns them).
    pub new_user: bool,
    /// The other namespaces to create.
    pub unshare: CloneFlags,
    /// Whether the container gets its own PID namespace (new or joined): then a fork must
    /// follow so the init is inside it.
    pub pid_ns: bool,
}

impl Default for NsPlan {
    fn default() -> Self {
        NsPlan {
            join: Vec::new(),
            new_user: false,
            unshare: CloneFlags::empty(),
            pid_ns: false,
        }
    }
}

/// Plans namespace setup from `linux.namespaces`. Pure.
pub fn plan(linux: &Linux) -> NsPlan {
    let mut p = NsPlan::default();
    for ns in linux.namespaces().iter().flatten() {
        if ns.typ() == LinuxNamespaceType::Pid {
            p.pid_ns = true;
        }
        match ns.path() {
            Some(path) => p.join.push((ns.typ(), path.clone())),
            None if ns.typ() == LinuxNamespaceType::User => p.new_user = true,
            None => p.unshare |= flag(ns.typ()),
        }
    }
    // The user namespace first: it gives the rights to join the others.
    p.join.sort_by_key(|(t, _)| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    p
}

/// The plan for `exec`: join every namespace of the running init (as listed in its
/// spec), by its /proc/PID/ns path.
pub fn plan_exec(linux: &Linux, init_pid: i32) -> NsPlan {
    let mut p = NsPlan::default();
    for ns in linux.namespaces().iter().flatten() {
        if ns.typ() == LinuxNamespaceType::Pid {
            p.pid_ns = true;
        }
        let path = PathBuf::from(format!("/proc/{init_pid}/ns/{}", proc_name(ns.typ())));
        p.join.push((ns.typ(), path));
    }
    if p.pid_ns {
        // pid_for_children is what a forked child lands in.
        for (t, path) in &mut p.join {
            if *t == LinuxNamespaceType::Pid {
                *path = PathBuf::from(format!("/proc/{init_pid}/ns/pid"));
            }
        }
    }
    p.join.sort_by_key(|(t, _)| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    p
}

/// Joins the planned namespaces: every file is opened first, then `setns` in order.
pub fn join(plan: &NsPlan) -> Result<(), NsError> {
    let mut files = Vec::with_capacity(plan.join.len());
    for (t, path) in &plan.join {
        let f = File::open(path).map_err(|source| NsError::Open {
            path: path.clone(),
            source,
        })?;
        files.push((*t, path, f));
    }
    for (t, path, f) in &files {
        nix::sched::setns(f.as_fd(), flag(*t)).map_err(|source| NsError::Join {
            kind: t.to_string(),
            path: (*path).clone(),
            source,
        })?;
    }
    Ok(())
}

/// `unshare(2)` of the given namespaces.
pub fn unshare(flags: CloneFlags) -> Result<(), NsError> {
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(flags).map_err(|source| NsError::Unshare { flags, source })
}

/// The text of a uid_map/gid_map file. Pure.
pub fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes the uid and gid maps of `pid`'s user namespace (from the parent namespace).
pub fn write_id_maps(
    pid: i32,
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
) -> Result<(), NsError> {
    let write = |what: &'static str, text: String| {
        std::fs::write(format!("/proc/{pid}/{what}"), text.as_bytes()).map_err(|source| {
            NsError::Map {
                what,
                pid,
                mapping: text.trim().replace('\n', ", "),
                source,
            }
        })
    };
    write("uid_map", map_text(uid))?;
    write("gid_map", map_text(gid))?;
    Ok(())
}

/// The text of /proc/self/timens_offsets for `linux.timeOffsets`. Pure.
pub fn time_offsets_text(linux: &Linux) -> String {
    let mut out = String::new();
    let mut offs: Vec<_> = linux.time_offsets().iter().flatten().collect();
    offs.sort_by(|a, b| a.0.cmp(b.0));
    for (clock, off) in offs {
        out.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    out
}

/// Writes time namespace offsets; must happen after `unshare(CLONE_NEWTIME)` and before
/// the first child is forked into it.
pub fn write_time_offsets(linux: &Linux) -> Result<(), NsError> {
    let text = time_offsets_text(linux);
    if text.is_empty() {
        return Ok(());
    }
    std::fs::write("/proc/self/timens_offsets", text).map_err(NsError::Time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(json: serde_json::Value) -> Linux {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn plan_orders_user_first_and_splits_join_from_create() {
        let l = linux(serde_json::json!({"namespaces": [
            {"type": "mount"},
            {"type": "network", "path": "/run/netns/x"},
            {"type": "pid"},
            {"type": "user", "path": "/proc/1/ns/user"},
            {"type": "mount"}
        ]}));
        let p = plan(&l);
        assert_eq!(p.join[0].0, LinuxNamespaceType::User);
        assert_eq!(p.join[1].0, LinuxNamespaceType::Network);
        assert!(!p.new_user);
        assert!(p.pid_ns);
        assert!(
            p.unshare
                .contains(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)
        );
        assert!(!p.unshare.contains(CloneFlags::CLONE_NEWNET));
    }

    #[test]
    fn new_user_namespace_is_separate() {
        let p = plan(&linux(
            serde_json::json!({"namespaces": [{"type": "user"}, {"type": "uts"}]}),
        ));
        assert!(p.new_user);
        assert_eq!(p.unshare, CloneFlags::CLONE_NEWUTS);
        assert!(!p.pid_ns);
    }

    #[test]
    fn exec_joins_the_init_namespaces() {
        let l = linux(
            serde_json::json!({"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "user"}]}),
        );
        let p = plan_exec(&l, 77);
        let paths: Vec<_> = p
            .join
            .iter()
            .map(|(_, p)| p.display().to_string())
            .collect();
        assert_eq!(
            paths,
            ["/proc/77/ns/user", "/proc/77/ns/pid", "/proc/77/ns/mnt"]
        );
    }

    #[test]
    fn map_and_time_texts() {
        let maps: Vec<LinuxIdMapping> = serde_json::from_value(serde_json::json!([
            {"containerID": 0, "hostID": 100000, "size": 65536},
            {"containerID": 65536, "hostID": 1, "size": 1}
        ]))
        .unwrap();
        assert_eq!(map_text(&maps), "0 100000 65536\n65536 1 1\n");
        let l = linux(serde_json::json!({"timeOffsets": {
            "monotonic": {"secs": 10, "nanosecs": 5}, "boottime": {"secs": -3}
        }}));
        assert_eq!(time_offsets_text(&l), "boottime -3 0\nmonotonic 10 5\n");
    }
}
