//! The embedded ACID metadata store (redb): content labels, image records and
//! snapshot records. Every change is one redb write transaction, so a crash leaves
//! either the old or the new state.
//!
//! berthd keeps one store at [`DEFAULT_PATH`] for images and content labels; a
//! [`Snapshotter`](crate::snapshots::Snapshotter) keeps its snapshot records in its own
//! store under its root (as containerd's overlay snapshotter keeps its own
//! `metadata.db`), so the snapshotter can also be served alone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::digest::Digest;

/// Default path of berthd's metadata store.
pub const DEFAULT_PATH: &str = "/var/lib/berth/meta.redb";

/// Labels of a blob, keyed by digest string; value is a JSON object of strings.
pub(crate) const CONTENT_LABELS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("content_labels");
/// Image records, keyed by image name; value is a JSON `ImageRecord`.
pub(crate) const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
/// Snapshot records, keyed by snapshot key; value is a JSON snapshot record.
pub(crate) const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
/// Counters (`snapshot_id`).
pub(crate) const SEQUENCES: TableDefinition<&str, u64> = TableDefinition::new("sequences");

/// Metadata store errors.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The database failed (open, transaction, table or storage error).
    #[error("metadata store {path}: {source}")]
    Db {
        /// Database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: redb::Error,
    },
    /// A record could not be encoded or decoded.
    #[error("metadata record {key:?}: {source}")]
    Record {
        /// Record key.
        key: String,
        /// JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// Handle to a metadata store; cheap to clone, shared between threads.
#[derive(Clone)]
pub struct MetaStore {
    db: Arc<Database>,
    path: Arc<PathBuf>,
    leases: Arc<Mutex<LeaseTable>>,
}

/// What the live leases of one store hold (containerd's leases, kept in memory: they
/// protect the work of pulls running in this process, which are the only writers).
#[derive(Debug, Default)]
pub(crate) struct LeaseTable {
    next_id: u64,
    held: HashMap<u64, Leased>,
}

/// Blobs and snapshots a lease keeps from garbage collection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Leased {
    /// Blob digests.
    pub blobs: HashSet<Digest>,
    /// Snapshot names (keys or chain IDs).
    pub snapshots: HashSet<String>,
}

impl Leased {
    fn extend(&mut self, other: &Leased) {
        self.blobs.extend(other.blobs.iter().cloned());
        self.snapshots.extend(other.snapshots.iter().cloned());
    }
}

/// A lease: while it lives, garbage collection keeps every blob and snapshot added to
/// it, present or still to come (containerd's `leases` for the work of a pull between
/// ingest and the image record). Add a resource *before* creating or reusing it; the
/// lease ends when dropped.
///
/// Additions and a whole collection are serialized by one lock, so a resource added
/// before a collection starts is kept by it, and one added after it has ended is
/// created or checked afresh by its owner.
#[derive(Debug)]
pub struct Lease {
    id: u64,
    table: Arc<Mutex<LeaseTable>>,
}

impl Lease {
    /// Keep `blobs` and `snapshots` for as long as this lease lives.
    pub fn add<'a>(
        &self,
        blobs: impl IntoIterator<Item = &'a Digest>,
        snapshots: impl IntoIterator<Item = &'a str>,
    ) {
        let mut t = lock(&self.table);
        let entry = t.held.entry(self.id).or_default();
        entry.blobs.extend(blobs.into_iter().cloned());
        entry
            .snapshots
            .extend(snapshots.into_iter().map(str::to_owned));
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        lock(&self.table).held.remove(&self.id);
    }
}

/// The lease table held for a whole garbage collection: no lease can add a resource
/// while it lives.
pub struct GcLock<'a> {
    guard: MutexGuard<'a, LeaseTable>,
}

impl GcLock<'_> {
    /// Everything the live leases hold.
    pub fn leased(&self) -> Leased {
        let mut all = Leased::default();
        for l in self.guard.held.values() {
            all.extend(l);
        }
        all
    }
}

fn lock(m: &Mutex<LeaseTable>) -> MutexGuard<'_, LeaseTable> {
    // A panic while holding the table leaves it consistent (every update is one insert
    // or remove), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore")
            .field("path", &self.path)
            .finish()
    }
}

pub(crate) type MetaResult<T> = std::result::Result<T, MetaError>;

impl MetaStore {
    /// Open or create the store at `path` (its directory is created). One process may
    /// hold it open at a time.
    pub fn open(path: impl AsRef<Path>) -> MetaResult<MetaStore> {
        let path = path.as_ref().to_owned();
        let fail = |source: redb::Error| MetaError::Db {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.into()))?;
        }
        let db = Database::create(&path).map_err(|e| fail(e.into()))?;
        let store = MetaStore {
            db: Arc::new(db),
            path: Arc::new(path),
            leases: Arc::default(),
        };
        store.write(|tx| -> MetaResult<()> {
            let err = |e| store.db_err(redb::Error::from(e));
            tx.open_table(CONTENT_LABELS).map_err(err)?;
            tx.open_table(IMAGES).map_err(err)?;
            tx.open_table(SNAPSHOTS).map_err(err)?;
            tx.open_table(SEQUENCES).map_err(err)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Start a lease (see [`Lease`]); it holds nothing until resources are added.
    pub fn lease(&self) -> Lease {
        let mut t = lock(&self.leases);
        t.next_id += 1;
        let id = t.next_id;
        t.held.insert(id, Leased::default());
        Lease {
            id,
            table: self.leases.clone(),
        }
    }

    /// Hold the lease table for a garbage collection: until the returned lock is
    /// dropped, [`Lease::add`] waits.
    pub fn gc_lock(&self) -> GcLock<'_> {
        GcLock {
            guard: lock(&self.leases),
        }
    }

    pub(crate) fn db_err(&self, source: impl Into<redb::Error>) -> MetaError {
        MetaError::Db {
            path: (*self.path).clone(),
            source: source.into(),
        }
    }

    /// Run `f` in one write transaction and commit it; nothing is written if `f` fails.
    pub(crate) fn write<T, E>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<MetaError>,
    {
        let tx = self.db.begin_write().map_err(|e| self.db_err(e))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| self.db_err(e))?;
        Ok(out)
    }

    /// Run `f` in a read transaction.
    pub(crate) fn read<T, E>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<MetaError>,
    {
        let tx = self.db.begin_read().map_err(|e| self.db_err(e))?;
        f(&tx)
    }

    /// Replace the labels of blob `digest` (an empty map removes them).
    pub fn set_content_labels(
        &self,
        digest: &Digest,
        labels: &BTreeMap<String, String>,
    ) -> MetaResult<()> {
        let key = digest.to_string();
        let value = encode(&key, labels)?;
        self.write(|tx| {
            let mut t = tx.open_table(CONTENT_LABELS).map_err(|e| self.db_err(e))?;
            if labels.is_empty() {
                t.remove(key.as_str()).map_err(|e| self.db_err(e))?;
            } else {
                t.insert(key.as_str(), value.as_slice())
                    .map_err(|e| self.db_err(e))?;
            }
            Ok(())
        })
    }

    /// Labels of blob `digest` (empty when none).
    pub fn content_labels(&self, digest: &Digest) -> MetaResult<BTreeMap<String, String>> {
        let key = digest.to_string();
        self.read(|tx| {
            let t = tx.open_table(CONTENT_LABELS).map_err(|e| self.db_err(e))?;
            match t.get(key.as_str()).map_err(|e| self.db_err(e))? {
                Some(v) => decode(&key, v.value()),
                None => Ok(BTreeMap::new()),
            }
        })
    }

    /// Every blob that has labels, with them.
    pub fn list_content_labels(&self) -> MetaResult<Vec<(Digest, BTreeMap<String, String>)>> {
        let rows = self.read_all_rows(CONTENT_LABELS)?;
        let mut out = Vec::new();
        for (k, v) in rows {
            // Keys are written from validated digests; skip anything else.
            if let Ok(d) = k.parse::<Digest>() {
                out.push((d, decode(&k, &v)?));
            }
        }
        Ok(out)
    }

    pub(crate) fn read_all_rows(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> MetaResult<Vec<(String, Vec<u8>)>> {
        self.read(|tx| {
            let t = tx.open_table(table).map_err(|e| self.db_err(e))?;
            let mut out = Vec::new();
            for row in t.iter().map_err(|e| self.db_err(e))? {
                let (k, v) = row.map_err(|e| self.db_err(e))?;
                out.push((k.value().to_owned(), v.value().to_vec()));
            }
            Ok(out)
        })
    }
}

pub(crate) fn encode<T: serde::Serialize>(key: &str, v: &T) -> MetaResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|source| MetaError::Record {
        key: key.to_owned(),
        source,
    })
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(key: &str, v: &[u8]) -> MetaResult<T> {
    serde_json::from_slice(v).map_err(|source| MetaError::Record {
        key: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_labels_roundtrip_and_reopen() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("sub/meta.redb");
        let d = Digest::sha256_of(b"x");
        {
            let m = MetaStore::open(&p).unwrap();
            assert!(m.content_labels(&d).unwrap().is_empty());
            let labels = BTreeMap::from([("berth.io/gc.root".to_string(), "1".to_string())]);
            m.set_content_labels(&d, &labels).unwrap();
            assert_eq!(m.content_labels(&d).unwrap(), labels);
        }
        let m = MetaStore::open(&p).unwrap();
        assert_eq!(m.list_content_labels().unwrap().len(), 1);
        m.set_content_labels(&d, &BTreeMap::new()).unwrap();
        assert!(m.list_content_labels().unwrap().is_empty());
    }

    #[test]
    fn leases_hold_until_dropped() {
        let t = tempfile::tempdir().unwrap();
        let m = MetaStore::open(t.path().join("meta.redb")).unwrap();
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        let l1 = m.lease();
        let l2 = m.clone().lease();
        l1.add([&a], ["s1"]);
        l2.add([&a, &b], []);
        let held = m.gc_lock().leased();
        assert_eq!(held.blobs, HashSet::from([a.clone(), b.clone()]));
        assert_eq!(held.snapshots, HashSet::from(["s1".to_string()]));
        drop(l2);
        assert_eq!(m.gc_lock().leased().blobs, HashSet::from([a]));
        drop(l1);
        assert_eq!(m.gc_lock().leased(), Leased::default());
    }

    #[test]
    fn lease_add_waits_for_a_collection() {
        let t = tempfile::tempdir().unwrap();
        let m = MetaStore::open(t.path().join("meta.redb")).unwrap();
        let lease = m.lease();
        let gc = m.gc_lock();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                lease.add([&Digest::sha256_of(b"x")], []);
                tx.send(()).unwrap();
            });
            // The add cannot finish while the collection holds the table.
            assert!(
                rx.recv_timeout(std::time::Duration::from_millis(200))
                    .is_err()
            );
            assert!(gc.leased().blobs.is_empty());
            drop(gc);
            rx.recv().unwrap();
        });
        assert_eq!(m.gc_lock().leased().blobs.len(), 1);
    }
}
