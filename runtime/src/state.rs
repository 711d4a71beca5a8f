//! Container state under `--root`: one directory per container holding `state.json`
//! (written atomically: temp file, rename) and locked with `flock` against two
//! commands working on one container at once.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroups;

/// Name of the state file inside a container's directory.
pub const STATE_FILE: &str = "state.json";
/// Name of the FIFO the container's init blocks on until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "container id {0:?} is invalid: use 1-1024 characters of [A-Za-z0-9_+.-], not starting with '.'"
    )]
    InvalidId(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {0} already exists")]
    Exists(String),
    #[error("container {id}: {op} {path}: {source}")]
    Io {
        id: String,
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("container {id}: state file {path} is corrupt: {source}")]
    Corrupt {
        id: String,
        path: PathBuf,
        source: serde_json::Error,
    },
}

type Result<T> = std::result::Result<T, StateError>;

/// A container's lifecycle status, as runc reports it.
/// See runtime-spec `runtime.md`, "State".
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    /// The lowercase name runc prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What berth records for one container in `<root>/<id>/state.json`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ContainerState {
    pub id: String,
    /// Absolute path of the bundle.
    pub bundle: PathBuf,
    /// Absolute path of the rootfs on the host.
    pub rootfs: PathBuf,
    /// PID of the container's init in berth's PID namespace; 0 until it exists.
    pub pid: i32,
    /// Start time of the init (field 22 of /proc/PID/stat), to tell it from a reused PID.
    pub pid_start_time: u64,
    /// Creation time, RFC 3339 in UTC.
    pub created: String,
    /// Owner name, as runc's `list` prints it.
    pub owner: String,
    /// Status at the last transition berth recorded; `live_status` derives the current one.
    pub status: Status,
    /// The container's cgroup, resolved on this host.
    pub cgroup: cgroups::Manager,
    /// The spec as read at create time (hooks, exec defaults, annotations).
    pub config: oci_spec::runtime::Spec,
    /// Whether `--systemd-cgroup` was given at create.
    #[serde(default)]
    pub systemd_cgroup: bool,
}

impl ContainerState {
    /// Annotations of the container's spec.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.config
            .annotations()
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Whether the recorded init process still exists (and is not a reused PID).
    pub fn init_alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        match process_start_time(self.pid) {
            Some(t) => t == self.pid_start_time && !is_zombie(self.pid),
            None => false,
        }
    }

    /// The status now, derived from the kernel as runc does: a dead init means stopped,
    /// a frozen cgroup means paused, a present exec FIFO means created.
    pub fn live_status(&self, dir: &Path) -> Status {
        if self.status == Status::Creating {
            return if self.init_alive() {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.cgroup.is_frozen().unwrap_or(false) {
            return Status::Paused;
        }
        if dir.join(EXEC_FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// runc's `state` JSON object (runtime-spec state plus runc's extra fields).
    pub fn to_oci_json(&self, dir: &Path) -> serde_json::Value {
        let status = self.live_status(dir);
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        serde_json::json!({
            "ociVersion": self.config.version(),
            "id": self.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations(),
        })
    }

    /// The runtime-spec state passed to hooks on stdin.
    pub fn hook_state(&self, status: Status) -> serde_json::Value {
        serde_json::json!({
            "ociVersion": self.config.version(),
            "id": self.id,
            "status": status.as_str(),
            "pid": self.pid,
            "bundle": self.bundle,
            "annotations": self.annotations(),
        })
    }
}

/// Field 22 (starttime) of /proc/PID/stat, or None if the process is gone.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            rest.split_whitespace()
                .next()
                .map(|st| st == "Z" || st == "X")
        })
        .unwrap_or(true)
}

/// Checks a container id as runc does (no path separators, no `..`).
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_string()))
    }
}

/// The state root (`--root`), holding one directory per container.
#[derive(Debug, Clone)]
pub struct StateRoot {
    root: PathBuf,
}

/// A locked container directory. The lock is released when this is dropped.
#[derive(Debug)]
pub struct Locked {
    pub id: String,
    pub dir: PathBuf,
    _lock: File,
}

impl StateRoot {
    /// A state root at `root`; nothing is created until a container is.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateRoot { root: root.into() }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Directory of container `id`.
    pub fn dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        Ok(self.root.join(id))
    }

    /// Creates the directory of a new container and locks it; fails if it exists.
    pub fn create(&self, id: &str) -> Result<Locked> {
        let dir = self.dir(id)?;
        let io = |op, path: &Path, source| StateError::Io {
            id: id.to_string(),
            op,
            path: path.to_path_buf(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .map_err(|e| io("create", &self.root, e))?;
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.to_string()));
            }
            Err(e) => return Err(io("create", &dir, e)),
        }
        self.lock_dir(id, dir)
    }

    /// Locks the directory of an existing container, waiting for another command to finish.
    pub fn lock(&self, id: &str) -> Result<Locked> {
        let dir = self.dir(id)?;
        if !dir.is_dir() {
            return Err(StateError::NotFound(id.to_string()));
        }
        self.lock_dir(id, dir)
    }

    fn lock_dir(&self, id: &str, dir: PathBuf) -> Result<Locked> {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&dir)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StateError::NotFound(id.to_string()),
                _ => StateError::Io {
                    id: id.to_string(),
                    op: "open",
                    path: dir.clone(),
                    source: e,
                },
            })?;
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(StateError::Io {
                id: id.to_string(),
                op: "lock",
                path: dir,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Locked {
            id: id.to_string(),
            dir,
            _lock: f,
        })
    }

    /// Ids of all containers under the root, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StateError::Io {
                    id: String::new(),
                    op: "read",
                    path: self.root.clone(),
                    source: e,
                });
            }
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| validate_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Reads a container's state without locking (for `state`, `list`, `ps`).
    pub fn load(&self, id: &str) -> Result<ContainerState> {
        load_from(id, &self.dir(id)?)
    }
}

impl Locked {
    /// The descriptor holding the lock. A forked child must close it, or it would keep
    /// the container locked for as long as it lives.
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        self._lock.as_raw_fd()
    }

    /// Reads the state of the locked container.
    pub fn load(&self) -> Result<ContainerState> {
        load_from(&self.id, &self.dir)
    }

    /// Writes the state atomically: a crash leaves the old or the new file, never half.
    /// No fsync, as runc: the state describes live processes that a power loss ends
    /// too, and it normally sits on tmpfs (/run); the rename is what a killed command
    /// needs.
    pub fn save(&self, state: &ContainerState) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(".state.json.tmp");
        let io = |op, source| StateError::Io {
            id: self.id.clone(),
            op,
            path: path.clone(),
            source,
        };
        let data = serde_json::to_vec(state).expect("state serializes: plain data");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| io("write", e))?;
        f.write_all(&data).map_err(|e| io("write", e))?;
        fs::rename(&tmp, &path).map_err(|e| io("rename", e))?;
        Ok(())
    }

    /// Removes the container's directory and everything in it.
    pub fn remove(self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Io {
                id: self.id.clone(),
                op: "remove",
                path: self.dir.clone(),
                source: e,
            }),
        }
    }
}

fn load_from(id: &str, dir: &Path) -> Result<ContainerState> {
    let path = dir.join(STATE_FILE);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StateError::NotFound(id.to_string()));
        }
        Err(e) => {
            return Err(StateError::Io {
                id: id.to_string(),
                op: "read",
                path,
                source: e,
            });
        }
    };
    serde_json::from_slice(&data).map_err(|source| StateError::Corrupt {
        id: id.to_string(),
        path,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_like_runc() {
        for ok in ["a", "abc-1_2.3+x", "A"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", ".hidden", "a\0b"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn start_time_of_self_is_read() {
        let pid = std::process::id() as i32;
        assert!(process_start_time(pid).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }
}
