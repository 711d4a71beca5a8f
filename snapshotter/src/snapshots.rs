//! containerd's snapshotter model over overlayfs
//! (containerd `core/snapshots/snapshotter.go`, `plugins/snapshots/overlay`).
//!
//! A snapshot is `Active` (writable, made by [`Snapshotter::prepare`]), `View`
//! (read-only, [`Snapshotter::view`]) or `Committed` (immutable, made from an active one
//! by [`Snapshotter::commit`], usable as a parent). Keys and names share one namespace.
//!
//! Layout under the root (default [`DEFAULT_ROOT`]):
//! - `metadata.redb`: the records (kind, parent, labels, times, id, committed usage);
//! - `snapshots/<id>/fs`: the snapshot's own layer (the overlay upper dir when active);
//! - `snapshots/<id>/work`: overlay work dir of an active snapshot.
//!
//! Crash safety: a directory is created inside the write transaction that records it
//! and removed after the transaction that forgets it, so a crash leaves at worst a
//! directory with no record; [`Snapshotter::open`] removes those.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::meta::{MetaError, MetaStore, SEQUENCES, SNAPSHOTS, decode, encode};

/// Default root of the snapshotter.
pub const DEFAULT_ROOT: &str = "/var/lib/berth/snapshots";

/// Snapshotter errors; the variants map to containerd's errdefs (and gRPC codes).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// No snapshot with that key (NotFound).
    #[error("snapshot {0:?} not found")]
    NotFound(String),
    /// A snapshot with that key already exists (AlreadyExists).
    #[error("snapshot {0:?} already exists")]
    AlreadyExists(String),
    /// The operation does not fit the snapshot's state (FailedPrecondition).
    #[error("snapshot {key:?}: {reason}")]
    FailedPrecondition {
        /// The snapshot.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A malformed argument (InvalidArgument).
    #[error("invalid snapshot key {0:?}")]
    InvalidKey(String),
    /// Metadata store failure.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// Filesystem failure.
    #[error("snapshotter: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Path involved.
        path: PathBuf,
        /// OS error.
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, SnapshotError>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The state of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Read-only view of a parent.
    View,
    /// Writable, not yet committed.
    Active,
    /// Immutable; may be a parent.
    Committed,
}

/// Public information about a snapshot (containerd's `snapshots.Info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Kind of snapshot.
    pub kind: Kind,
    /// Key (active/view) or name (committed).
    pub name: String,
    /// Name of the committed parent, if any.
    pub parent: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time.
    pub created: SystemTime,
    /// Last update time.
    pub updated: SystemTime,
}

/// Disk usage of a snapshot's own layer (containerd's `snapshots.Usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes allocated on disk.
    pub size: u64,
    /// Number of inodes.
    pub inodes: u64,
}

/// A mount as containerd's `mount.Mount`: `mount -t <kind> <source> -o <options>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Filesystem type (`overlay`, `bind`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Mount source.
    pub source: String,
    /// Mount options, comma-joined by mount(8).
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: u64,
    kind: Kind,
    parent: Option<String>,
    labels: BTreeMap<String, String>,
    created: SystemTime,
    updated: SystemTime,
    /// Usage measured at commit (committed snapshots only).
    #[serde(default)]
    usage: Option<Usage>,
}

impl Record {
    fn info(&self, name: &str) -> Info {
        Info {
            kind: self.kind,
            name: name.to_owned(),
            parent: self.parent.clone(),
            labels: self.labels.clone(),
            created: self.created,
            updated: self.updated,
        }
    }
}

/// An overlayfs snapshotter rooted at one directory.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    root: PathBuf,
    meta: MetaStore,
}

type Table<'t> = redb::Table<'t, &'static str, &'static [u8]>;

fn get_record(
    meta: &MetaStore,
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Record>> {
    match t.get(key).map_err(|e| meta.db_err(e))? {
        Some(v) => Ok(Some(decode(key, v.value())?)),
        None => Ok(None),
    }
}

fn put_record(meta: &MetaStore, t: &mut Table<'_>, key: &str, r: &Record) -> Result<()> {
    let v = encode(key, r)?;
    t.insert(key, v.as_slice()).map_err(|e| meta.db_err(e))?;
    Ok(())
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 4096 || key.contains('\0') {
        return Err(SnapshotError::InvalidKey(key.chars().take(100).collect()));
    }
    Ok(())
}

impl Snapshotter {
    /// Open (creating if needed) a snapshotter under `root`, with its records in
    /// `root/metadata.redb`, and remove directories a crash left without a record.
    pub fn open(root: impl AsRef<Path>) -> Result<Snapshotter> {
        let root = root.as_ref().to_owned();
        let dir = root.join("snapshots");
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let meta = MetaStore::open(root.join("metadata.redb"))?;
        let s = Snapshotter { root, meta };
        s.remove_orphans()?;
        Ok(s)
    }

    /// The snapshotter's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn snapshot_dir(&self, id: u64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    /// Remove snapshot directories that no record refers to (left by a crash).
    /// Returns how many were removed.
    pub fn remove_orphans(&self) -> Result<usize> {
        let known: HashSet<u64> = self.records()?.into_iter().map(|(_, r)| r.id).collect();
        let dir = self.root.join("snapshots");
        let mut removed = 0;
        for ent in fs::read_dir(&dir).map_err(io_err("read dir", &dir))? {
            let ent = ent.map_err(io_err("read dir", &dir))?;
            let keep = ent
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|id| known.contains(&id));
            if !keep {
                let p = ent.path();
                remove_tree(&p)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn records(&self) -> Result<Vec<(String, Record)>> {
        self.meta
            .read_all_rows(SNAPSHOTS)?
            .into_iter()
            .map(|(k, v)| Ok((k.clone(), decode(&k, &v)?)))
            .collect()
    }

    fn record(&self, key: &str) -> Result<Record> {
        self.meta.read(|tx| {
            let t = tx.open_table(SNAPSHOTS).map_err(|e| self.meta.db_err(e))?;
            get_record(&self.meta, &t, key)?.ok_or_else(|| SnapshotError::NotFound(key.to_owned()))
        })
    }

    /// Ids of `parent` and its ancestors, nearest first.
    fn chain_ids(
        &self,
        t: &impl ReadableTable<&'static str, &'static [u8]>,
        parent: Option<&str>,
    ) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        let mut next = parent.map(str::to_owned);
        while let Some(p) = next {
            let r =
                get_record(&self.meta, t, &p)?.ok_or_else(|| SnapshotError::NotFound(p.clone()))?;
            ids.push(r.id);
            next = r.parent;
            if ids.len() > 10_000 {
                return Err(SnapshotError::FailedPrecondition {
                    key: p,
                    reason: "parent chain loops",
                });
            }
        }
        Ok(ids)
    }

    /// Create an active (writable) snapshot `key` on top of committed `parent`, and
    /// return the mounts of its root filesystem.
    pub fn prepare(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>> {
        self.create(Kind::Active, key, parent, labels)
    }

    /// Create a read-only view `key` of committed `parent`, and return its mounts.
    pub fn view(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>> {
        self.create(Kind::View, key, parent, labels)
    }

    fn create(
        &self,
        kind: Kind,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>> {
        check_key(key)?;
        let meta = &self.meta;
        let made_id = std::cell::Cell::new(None);
        meta.write(|tx| {
            let mut t = tx.open_table(SNAPSHOTS).map_err(|e| meta.db_err(e))?;
            if get_record(meta, &t, key)?.is_some() {
                return Err(SnapshotError::AlreadyExists(key.to_owned()));
            }
            if let Some(p) = parent {
                let pr = get_record(meta, &t, p)?
                    .ok_or_else(|| SnapshotError::NotFound(p.to_owned()))?;
                if pr.kind != Kind::Committed {
                    return Err(SnapshotError::FailedPrecondition {
                        key: p.to_owned(),
                        reason: "parent is not committed",
                    });
                }
            }
            let mut seq = tx.open_table(SEQUENCES).map_err(|e| meta.db_err(e))?;
            let id = seq
                .get("snapshot_id")
                .map_err(|e| meta.db_err(e))?
                .map(|v| v.value())
                .unwrap_or(0)
                + 1;
            seq.insert("snapshot_id", id).map_err(|e| meta.db_err(e))?;
            let now = SystemTime::now();
            let rec = Record {
                id,
                kind,
                parent: parent.map(str::to_owned),
                labels,
                created: now,
                updated: now,
                usage: None,
            };
            put_record(meta, &mut t, key, &rec)?;
            let parents = self.chain_ids(&t, parent)?;
            // The directory is made inside the transaction: a crash before the commit
            // leaves an orphan directory that the next open removes.
            let dir = self.snapshot_dir(id);
            made_id.set(Some(id));
            let made = (|| {
                if dir.exists() {
                    remove_tree(&dir)?;
                }
                let fsd = dir.join("fs");
                fs::create_dir_all(&fsd).map_err(io_err("create", &fsd))?;
                if kind == Kind::Active {
                    let work = dir.join("work");
                    fs::create_dir(&work).map_err(io_err("create", &work))?;
                }
                Ok(())
            })();
            if let Err(e) = made {
                let _ = remove_tree(&dir);
                return Err(e);
            }
            Ok(self.plan_mounts(kind, id, &parents))
        })
        .inspect_err(|_| {
            // A failed transaction leaves a directory without record; remove it now.
            if let Some(id) = made_id.get() {
                let _ = remove_tree(&self.snapshot_dir(id));
            }
        })
    }

    fn plan_mounts(&self, kind: Kind, id: u64, parents: &[u64]) -> Vec<Mount> {
        let fs_of = |id: u64| self.snapshot_dir(id).join("fs").display().to_string();
        let work = self.snapshot_dir(id).join("work").display().to_string();
        plan_mounts(
            kind,
            &fs_of(id),
            &work,
            &parents.iter().map(|p| fs_of(*p)).collect::<Vec<_>>(),
        )
    }

    /// Mounts of an active snapshot or a view.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        self.meta.read(|tx| {
            let t = tx.open_table(SNAPSHOTS).map_err(|e| self.meta.db_err(e))?;
            let r = get_record(&self.meta, &t, key)?
                .ok_or_else(|| SnapshotError::NotFound(key.to_owned()))?;
            if r.kind == Kind::Committed {
                return Err(SnapshotError::FailedPrecondition {
                    key: key.to_owned(),
                    reason: "committed snapshots have no mounts; view or prepare on top",
                });
            }
            let parents = self.chain_ids(&t, r.parent.as_deref())?;
            Ok(self.plan_mounts(r.kind, r.id, &parents))
        })
    }

    /// The writable directory of active snapshot `key` (the overlay upper dir), where
    /// a layer applier writes.
    pub fn upper_dir(&self, key: &str) -> Result<PathBuf> {
        let r = self.record(key)?;
        if r.kind != Kind::Active {
            return Err(SnapshotError::FailedPrecondition {
                key: key.to_owned(),
                reason: "not an active snapshot",
            });
        }
        Ok(self.snapshot_dir(r.id).join("fs"))
    }

    /// Directories of the committed layers under snapshot `key`'s own layer, nearest
    /// first (the overlay lower dirs).
    pub fn parent_dirs(&self, key: &str) -> Result<Vec<PathBuf>> {
        let r = self.record(key)?;
        let ids = self.meta.read(|tx| {
            let t = tx.open_table(SNAPSHOTS).map_err(|e| self.meta.db_err(e))?;
            self.chain_ids(&t, r.parent.as_deref())
        })?;
        Ok(ids
            .into_iter()
            .map(|id| self.snapshot_dir(id).join("fs"))
            .collect())
    }

    /// Commit active snapshot `key` as the committed snapshot `name` (the key is gone
    /// afterwards). Its usage is measured and stored now.
    pub fn commit(&self, name: &str, key: &str, labels: BTreeMap<String, String>) -> Result<()> {
        check_key(name)?;
        let r = self.record(key)?;
        if r.kind != Kind::Active {
            return Err(SnapshotError::FailedPrecondition {
                key: key.to_owned(),
                reason: "only an active snapshot can be committed",
            });
        }
        let usage = disk_usage(&self.snapshot_dir(r.id).join("fs"))?;
        let meta = &self.meta;
        meta.write(|tx| {
            let mut t = tx.open_table(SNAPSHOTS).map_err(|e| meta.db_err(e))?;
            let cur = get_record(meta, &t, key)?
                .ok_or_else(|| SnapshotError::NotFound(key.to_owned()))?;
            if cur.id != r.id || cur.kind != Kind::Active {
                return Err(SnapshotError::FailedPrecondition {
                    key: key.to_owned(),
                    reason: "changed during commit",
                });
            }
            if get_record(meta, &t, name)?.is_some() {
                return Err(SnapshotError::AlreadyExists(name.to_owned()));
            }
            t.remove(key).map_err(|e| meta.db_err(e))?;
            let now = SystemTime::now();
            let rec = Record {
                kind: Kind::Committed,
                labels,
                created: now,
                updated: now,
                usage: Some(usage),
                ..cur
            };
            put_record(meta, &mut t, name, &rec)
        })?;
        // The work dir is only needed while active.
        let work = self.snapshot_dir(r.id).join("work");
        let _ = remove_tree(&work);
        Ok(())
    }

    /// Information about snapshot `key`.
    pub fn stat(&self, key: &str) -> Result<Info> {
        Ok(self.record(key)?.info(key))
    }

    /// Replace the labels of snapshot `key`; returns the updated information.
    pub fn update(&self, key: &str, labels: BTreeMap<String, String>) -> Result<Info> {
        let meta = &self.meta;
        meta.write(|tx| {
            let mut t = tx.open_table(SNAPSHOTS).map_err(|e| meta.db_err(e))?;
            let mut r = get_record(meta, &t, key)?
                .ok_or_else(|| SnapshotError::NotFound(key.to_owned()))?;
            r.labels = labels;
            r.updated = SystemTime::now();
            put_record(meta, &mut t, key, &r)?;
            Ok(r.info(key))
        })
    }

    /// Disk usage of snapshot `key`'s own layer: stored at commit for committed
    /// snapshots, measured now for active ones.
    pub fn usage(&self, key: &str) -> Result<Usage> {
        let r = self.record(key)?;
        match (r.kind, r.usage) {
            (Kind::Committed, Some(u)) => Ok(u),
            _ => disk_usage(&self.snapshot_dir(r.id).join("fs")),
        }
    }

    /// Remove snapshot `key`. A committed snapshot that is a parent cannot be removed.
    pub fn remove(&self, key: &str) -> Result<()> {
        let meta = &self.meta;
        let id = meta.write(|tx| {
            let mut t = tx.open_table(SNAPSHOTS).map_err(|e| meta.db_err(e))?;
            let r = get_record(meta, &t, key)?
                .ok_or_else(|| SnapshotError::NotFound(key.to_owned()))?;
            for row in t.iter().map_err(|e| meta.db_err(e))? {
                let (k, v) = row.map_err(|e| meta.db_err(e))?;
                let child: Record = decode(k.value(), v.value())?;
                if child.parent.as_deref() == Some(key) {
                    return Err(SnapshotError::FailedPrecondition {
                        key: key.to_owned(),
                        reason: "snapshot has children",
                    });
                }
            }
            t.remove(key).map_err(|e| meta.db_err(e))?;
            Ok(r.id)
        })?;
        // After the record is gone; a crash here leaves an orphan that open removes.
        remove_tree(&self.snapshot_dir(id))
    }

    /// Every snapshot, sorted by key.
    pub fn list(&self) -> Result<Vec<Info>> {
        Ok(self
            .records()?
            .into_iter()
            .map(|(k, r)| r.info(&k))
            .collect())
    }

    /// Call `f` for every snapshot (sorted by key), stopping at the first error.
    pub fn walk<E: From<SnapshotError>>(
        &self,
        mut f: impl FnMut(&Info) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        for info in self.list()? {
            f(&info)?;
        }
        Ok(())
    }
}

/// The mounts for a snapshot (pure planning).
///
/// `own` is the snapshot's own layer dir, `work` its work dir, `parents` the committed
/// layer dirs nearest first. As containerd's overlay snapshotter: an active snapshot
/// without parent is a read-write bind of its dir; with parents, an overlay. A view
/// of one layer is a read-only bind of it; of several, an overlay with only lower
/// dirs (read-only by construction). Options are not shortened here: [`crate::mount`]
/// mounts chains of any length.
pub fn plan_mounts(kind: Kind, own: &str, work: &str, parents: &[String]) -> Vec<Mount> {
    let bind = |src: &str, rw: &str| Mount {
        kind: "bind".into(),
        source: src.to_owned(),
        options: vec![rw.to_owned(), "rbind".into()],
    };
    match (kind, parents) {
        (Kind::Active, []) => vec![bind(own, "rw")],
        (Kind::Active, ps) => vec![Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("workdir={work}"),
                format!("upperdir={own}"),
                format!("lowerdir={}", ps.join(":")),
            ],
        }],
        (_, []) => vec![bind(own, "ro")],
        (_, [one]) => vec![bind(one, "ro")],
        (_, ps) => vec![Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![format!("lowerdir={}", ps.join(":"))],
        }],
    }
}

/// Bytes allocated and inodes used under `dir` (hardlinks counted once; symlinks not
/// followed).
pub fn disk_usage(dir: &Path) -> Result<Usage> {
    let mut seen = HashSet::new();
    let mut usage = Usage::default();
    let mut stack = vec![dir.to_owned()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).map_err(io_err("stat", &p))?;
        if seen.insert((m.dev(), m.ino())) {
            usage.inodes += 1;
            usage.size += m.blocks() * 512;
        }
        if m.is_dir() {
            for ent in fs::read_dir(&p).map_err(io_err("read dir", &p))? {
                stack.push(ent.map_err(io_err("read dir", &p))?.path());
            }
        }
    }
    Ok(usage)
}

/// Remove a directory tree; a missing path is not an error.
fn remove_tree(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", p)(e)),
    }
}

/// The snapshotter interface, so one test suite ([`crate::testsuite`]) runs against
/// the library and against a remote snapshotter (containerd's `snapshots.Snapshotter`).
pub trait Snapshots {
    /// See [`Snapshotter::prepare`].
    fn prepare(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>>;
    /// See [`Snapshotter::view`].
    fn view(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>>;
    /// See [`Snapshotter::mounts`].
    fn mounts(&self, key: &str) -> Result<Vec<Mount>>;
    /// See [`Snapshotter::commit`].
    fn commit(&self, name: &str, key: &str, labels: BTreeMap<String, String>) -> Result<()>;
    /// See [`Snapshotter::stat`].
    fn stat(&self, key: &str) -> Result<Info>;
    /// See [`Snapshotter::update`].
    fn update(&self, key: &str, labels: BTreeMap<String, String>) -> Result<Info>;
    /// See [`Snapshotter::usage`].
    fn usage(&self, key: &str) -> Result<Usage>;
    /// See [`Snapshotter::remove`].
    fn remove(&self, key: &str) -> Result<()>;
    /// See [`Snapshotter::list`].
    fn list(&self) -> Result<Vec<Info>>;
}

impl Snapshots for Snapshotter {
    fn prepare(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>> {
        Snapshotter::prepare(self, key, parent, labels)
    }
    fn view(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>> {
        Snapshotter::view(self, key, parent, labels)
    }
    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        Snapshotter::mounts(self, key)
    }
    fn commit(&self, name: &str, key: &str, labels: BTreeMap<String, String>) -> Result<()> {
        Snapshotter::commit(self, name, key, labels)
    }
    fn stat(&self, key: &str) -> Result<Info> {
        Snapshotter::stat(self, key)
    }
    fn update(&self, key: &str, labels: BTreeMap<String, String>) -> Result<Info> {
        Snapshotter::update(self, key, labels)
    }
    fn usage(&self, key: &str) -> Result<Usage> {
        Snapshotter::usage(self, key)
    }
    fn remove(&self, key: &str) -> Result<()> {
        Snapshotter::remove(self, key)
    }
    fn list(&self) -> Result<Vec<Info>> {
        Snapshotter::list(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_mounts_table() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<(Kind, Vec<String>, Mount)> = vec![
            (
                Kind::Active,
                vec![],
                Mount {
                    kind: "bind".into(),
                    source: "/o".into(),
                    options: p(&["rw", "rbind"]),
                },
            ),
            (
                Kind::Active,
                p(&["/a", "/b"]),
                Mount {
                    kind: "overlay".into(),
                    source: "overlay".into(),
                    options: p(&["workdir=/w", "upperdir=/o", "lowerdir=/a:/b"]),
                },
            ),
            (
                Kind::View,
                vec![],
                Mount {
                    kind: "bind".into(),
                    source: "/o".into(),
                    options: p(&["ro", "rbind"]),
                },
            ),
            (
                Kind::View,
                p(&["/a"]),
                Mount {
                    kind: "bind".into(),
                    source: "/a".into(),
                    options: p(&["ro", "rbind"]),
                },
            ),
            (
                Kind::View,
                p(&["/a", "/b", "/c"]),
                Mount {
                    kind: "overlay".into(),
                    source: "overlay".into(),
                    options: p(&["lowerdir=/a:/b:/c"]),
                },
            ),
        ];
        for (kind, parents, want) in cases {
            assert_eq!(
                plan_mounts(kind, "/o", "/w", &parents),
                vec![want],
                "{kind:?} {parents:?}"
            );
        }
    }

    #[test]
    fn mount_serializes_like_containerd() {
        let m = Mount {
            kind: "bind".into(),
            source: "/x".into(),
            options: vec!["ro".into()],
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"bind","source":"/x","options":["ro"]}"#
        );
    }
}
