//! ID-mapped bind mounts: runtime-spec `config.md` "Mounts" (`uidMappings`,
//! `gidMappings`, the `idmap` and `ridmap` options), as runc 1.2 does them.
//!
//! Each one is made with the new mount API on the host, before the container's
//! namespaces exist: `open_tree(OPEN_TREE_CLONE [| AT_RECURSIVE])` of the source, then
//! `mount_setattr(MOUNT_ATTR_IDMAP)` with a user namespace carrying the mount's
//! mappings (a short-lived helper process whose maps are written from outside). The
//! kernel wants CAP_SYS_ADMIN over the source filesystem for that, which a container's
//! init in its own user namespace lacks. The init then `move_mount`s the detached mount
//! into place. With `idmap`/`ridmap` but no mappings of its own, a mount takes the
//! container's user namespace mappings (`linux.uidMappings`/`gidMappings`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork, pipe, read, write};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};

use super::options::{Idmap, MountOptions, parse_options};
use super::plan::normalize_container_path;
use super::{Result, RootfsError, sys};

/// Most lines the kernel takes in a uid_map or gid_map.
const MAX_MAP_LINES: usize = 340;

/// Checks the ID-mapping fields of one spec mount against its options (pure):
/// mappings need `idmap` or `ridmap`, and only bind mounts can be ID-mapped.
pub(super) fn check_mount(
    destination: &str,
    m: &Mount,
    options: &MountOptions,
    bind: bool,
) -> Result<()> {
    let has_maps = m.uid_mappings().is_some() || m.gid_mappings().is_some();
    if has_maps && options.idmap.is_none() {
        return Err(invalid(
            destination,
            "uidMappings/gidMappings need the idmap or ridmap option",
        ));
    }
    if options.idmap.is_some() && !bind {
        return Err(invalid(
            destination,
            "idmap/ridmap apply to bind mounts only",
        ));
    }
    Ok(())
}

fn invalid(destination: &str, reason: impl Into<String>) -> RootfsError {
    RootfsError::InvalidMount {
        destination: destination.to_string(),
        reason: reason.into(),
    }
}

/// One ID-mapped mount to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmapRequest {
    /// Normalised destination inside the container (the key the init looks it up by).
    pub destination: PathBuf,
    /// Absolute host path of the source.
    pub source: PathBuf,
    /// `rbind`: clone the source's submounts too.
    pub recursive_tree: bool,
    /// `ridmap`: ID-map the submounts too.
    pub recursive_idmap: bool,
    /// UID mappings of the mount's user namespace.
    pub uid: Vec<LinuxIdMapping>,
    /// GID mappings of the mount's user namespace.
    pub gid: Vec<LinuxIdMapping>,
}

fn check_maps(destination: &str, what: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    if maps.is_empty() {
        return Err(invalid(destination, format!("{what} is empty")));
    }
    if maps.len() > MAX_MAP_LINES {
        return Err(invalid(
            destination,
            format!(
                "{what} has {} entries; the kernel takes at most {MAX_MAP_LINES}",
                maps.len()
            ),
        ));
    }
    if let Some(m) = maps.iter().find(|m| m.size() == 0) {
        return Err(invalid(
            destination,
            format!(
                "{what}: entry {}:{} has size 0",
                m.container_id(),
                m.host_id()
            ),
        ));
    }
    Ok(())
}

/// The ID-mapped mounts of `spec`, checked (pure). `bundle` resolves relative sources.
pub fn requests(spec: &Spec, bundle: &Path) -> Result<Vec<IdmapRequest>> {
    let mut out: Vec<IdmapRequest> = Vec::new();
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let dest_str = m.destination().display().to_string();
        let options = parse_options(&dest_str, m.options().as_deref().unwrap_or_default())?;
        let typ = m.typ().as_deref().unwrap_or("");
        let bind = options.is_bind() || typ == "bind" || typ == "rbind";
        check_mount(&dest_str, m, &options, bind)?;
        let Some(mode) = options.idmap else {
            continue;
        };
        let destination = normalize_container_path("mount destination", m.destination())?;
        if out.iter().any(|r| r.destination == destination) {
            return Err(invalid(
                &dest_str,
                "two ID-mapped mounts on one destination",
            ));
        }
        let src = m
            .source()
            .as_ref()
            .filter(|s| !s.as_os_str().is_empty())
            .ok_or_else(|| invalid(&dest_str, "a bind mount needs a source"))?;
        let source = if src.is_absolute() {
            src.clone()
        } else {
            bundle.join(src)
        };
        let (uid, gid) = match (m.uid_mappings(), m.gid_mappings()) {
            (Some(u), Some(g)) => (u.clone(), g.clone()),
            (None, None) => container_maps(spec).ok_or_else(|| {
                invalid(
                    &dest_str,
                    "idmap/ridmap without uidMappings/gidMappings need a new user namespace \
                     with linux.uidMappings and linux.gidMappings",
                )
            })?,
            _ => {
                return Err(invalid(
                    &dest_str,
                    "uidMappings and gidMappings must be given together",
                ));
            }
        };
        check_maps(&dest_str, "uidMappings", &uid)?;
        check_maps(&dest_str, "gidMappings", &gid)?;
        out.push(IdmapRequest {
            destination,
            source,
            recursive_tree: typ == "rbind" || options.flags & libc::MS_REC != 0,
            recursive_idmap: mode == Idmap::Recursive,
            uid,
            gid,
        });
    }
    Ok(out)
}

/// The mappings of the container's own new user namespace, if it has one.
fn container_maps(spec: &Spec) -> Option<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)> {
    let linux = spec.linux().as_ref()?;
    let new_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    if !new_userns {
        return None;
    }
    Some((
        linux.uid_mappings().clone().filter(|m| !m.is_empty())?,
        linux.gid_mappings().clone().filter(|m| !m.is_empty())?,
    ))
}

/// The ID-mapped mounts of one container, made on the host as detached mounts, waiting
/// for the init to move them into place. Dropping it discards the ones not moved.
#[derive(Debug, Default)]
pub struct IdmappedMounts {
    mounts: Vec<(PathBuf, OwnedFd)>,
}

impl IdmappedMounts {
    /// Makes every ID-mapped mount of `spec` (none: no syscall at all).
    pub fn prepare(spec: &Spec, bundle: &Path) -> Result<IdmappedMounts> {
        let mut out = IdmappedMounts::default();
        for r in requests(spec, bundle)? {
            let fd = make(&r)?;
            out.mounts.push((r.destination, fd));
        }
        Ok(out)
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }

    /// The detached mount made for `destination`.
    pub(super) fn get(&self, destination: &Path) -> Option<BorrowedFd<'_>> {
        self.mounts
            .iter()
            .find(|(d, _)| d == destination)
            .map(|(_, fd)| fd.as_fd())
    }
}

fn merr(destination: &Path, step: &'static str) -> impl FnOnce(Errno) -> RootfsError {
    let destination = destination.to_path_buf();
    move |errno| RootfsError::Mount {
        destination,
        step,
        errno,
    }
}

/// One detached ID-mapped mount.
fn make(r: &IdmapRequest) -> Result<OwnedFd> {
    let src =
        open(&r.source, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(|errno| {
            RootfsError::SourceMissing {
                destination: r.destination.clone(),
                src: r.source.clone(),
                errno,
            }
        })?;
    let userns = helper_userns(r)?;
    let tree = sys::clone_tree(src.as_fd(), r.recursive_tree)
        .map_err(merr(&r.destination, "open_tree (clone the source)"))?;
    sys::set_idmap(tree.as_fd(), r.recursive_idmap, userns.as_fd()).map_err(|errno| {
        RootfsError::Mount {
            destination: r.destination.clone(),
            step: if errno == Errno::EINVAL {
                "mount_setattr(MOUNT_ATTR_IDMAP): the source filesystem cannot be ID-mapped"
            } else {
                "mount_setattr(MOUNT_ATTR_IDMAP)"
            },
            errno,
        }
    })?;
    Ok(tree)
}

/// Kills and reaps the helper whatever happens.
struct Helper(Pid);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGKILL);
        let _ = waitpid(self.0, None);
    }
}

/// A user namespace with the request's mappings: a helper child unshares one and
/// waits; its maps are written from here; the namespace is kept by fd.
fn helper_userns(r: &IdmapRequest) -> Result<OwnedFd> {
    let err = merr(&r.destination, "helper user namespace");
    let (ready_r, ready_w) = pipe().map_err(merr(&r.destination, "pipe"))?;
    let (done_r, done_w) = pipe().map_err(merr(&r.destination, "pipe"))?;
    // SAFETY: berth forks only while single-threaded; the child makes plain syscalls
    // on fds it already has and leaves through _exit.
    let child = match unsafe { fork() }.map_err(merr(&r.destination, "fork"))? {
        ForkResult::Child => {
            drop(ready_r);
            drop(done_w);
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok();
            if ok {
                let _ = write(&ready_w, b"1");
                let mut b = [0u8; 1];
                let _ = read(&done_r, &mut b);
            }
            // SAFETY: leave without running the parent's destructors.
            unsafe { libc::_exit(i32::from(!ok)) }
        }
        ForkResult::Parent { child } => child,
    };
    let helper = Helper(child);
    drop(ready_w);
    drop(done_r);
    let mut b = [0u8; 1];
    match read(&ready_r, &mut b) {
        Ok(1) => {}
        Ok(_) => return Err(err(Errno::EPERM)),
        Err(e) => return Err(err(e)),
    }
    crate::namespaces::write_id_maps(helper.0.as_raw(), &r.uid, &r.gid).map_err(|e| {
        invalid(
            &r.destination.display().to_string(),
            format!("uidMappings/gidMappings refused by the kernel: {e}"),
        )
    })?;
    let ns = open(
        format!("/proc/{}/ns/user", helper.0).as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    drop(done_w);
    drop(helper);
    Ok(ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = json!({"ociVersion": "1.2.0", "root": {"path": "rootfs"}});
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn maps(c: u32, h: u32, s: u32) -> serde_json::Value {
        json!([{"containerID": c, "hostID": h, "size": s}])
    }

    #[test]
    fn requests_from_mounts_and_from_the_container_userns() {
        let s = spec(json!({
            "mounts": [
                {"destination": "/a", "type": "bind", "source": "/src/a",
                 "options": ["rbind", "ridmap"], "uidMappings": maps(0, 1000, 10), "gidMappings": maps(0, 2000, 10)},
                {"destination": "/b/../c", "source": "rel", "options": ["bind", "idmap"]},
                {"destination": "/plain", "type": "bind", "source": "/x", "options": ["bind"]}
            ],
            "linux": {"namespaces": [{"type": "user"}, {"type": "mount"}],
                      "uidMappings": maps(0, 100000, 65536), "gidMappings": maps(0, 100000, 65536)}
        }));
        let r = requests(&s, Path::new("/bundle")).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].destination, PathBuf::from("/a"));
        assert!(r[0].recursive_tree && r[0].recursive_idmap);
        assert_eq!(r[0].uid[0].host_id(), 1000);
        assert_eq!(r[0].gid[0].host_id(), 2000);
        assert_eq!(r[1].destination, PathBuf::from("/c"));
        assert_eq!(r[1].source, PathBuf::from("/bundle/rel"));
        assert!(!r[1].recursive_tree && !r[1].recursive_idmap);
        assert_eq!(r[1].uid[0].host_id(), 100000, "the container's mappings");
        // No ID-mapped mount: no request.
        assert!(
            requests(&spec(json!({})), Path::new("/b"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_idmap_mounts_are_refused() {
        let cases = [
            (
                json!({"mounts": [{"destination": "/a", "type": "bind", "source": "/s", "options": ["bind"],
                    "uidMappings": maps(0, 1, 1), "gidMappings": maps(0, 1, 1)}]}),
                "need the idmap or ridmap option",
            ),
            (
                json!({"mounts": [{"destination": "/a", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}]}),
                "bind mounts only",
            ),
            (
                json!({"mounts": [{"destination": "/a", "type": "bind", "source": "/s", "options": ["idmap"]}]}),
                "need a new user namespace",
            ),
            (
                json!({"mounts": [{"destination": "/a", "type": "bind", "source": "/s", "options": ["idmap"],
                    "uidMappings": maps(0, 1, 1)}]}),
                "together",
            ),
            (
                json!({"mounts": [{"destination": "/a", "type": "bind", "source": "/s", "options": ["idmap"],
                    "uidMappings": maps(0, 1, 0), "gidMappings": maps(0, 1, 1)}]}),
                "size 0",
            ),
            (
                json!({"mounts": [{"destination": "/a", "type": "bind", "source": "/s", "options": ["idmap"],
                    "uidMappings": [], "gidMappings": maps(0, 1, 1)}]}),
                "empty",
            ),
            (
                json!({"mounts": [
                    {"destination": "/a", "type": "bind", "source": "/s", "options": ["idmap"],
                     "uidMappings": maps(0, 1, 1), "gidMappings": maps(0, 1, 1)},
                    {"destination": "/a/", "type": "bind", "source": "/t", "options": ["idmap"],
                     "uidMappings": maps(0, 1, 1), "gidMappings": maps(0, 1, 1)}]}),
                "one destination",
            ),
        ];
        for (v, want) in cases {
            let e = requests(&spec(v.clone()), Path::new("/b")).expect_err("refused");
            assert!(e.to_string().contains(want), "{v}: {e}");
        }
    }
}
