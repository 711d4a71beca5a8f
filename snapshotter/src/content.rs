//! Content-addressed blob store (containerd's content store, local flavour).
//!
//! Layout under the root (default [`DEFAULT_ROOT`]):
//! - `blobs/<alg>/<hex>`: committed blobs, immutable, verified before they appear;
//! - `ingest/<alg>-<hex>/data`: bytes of an ingest in progress (kept when a writer is
//!   dropped, so the next writer for that digest resumes at [`Ingest::offset`]);
//! - `ingest/<alg>-<hex>/lock`: `flock`ed by the one writer of that digest; a second
//!   writer waits, then finds the blob committed and gets [`Writer::Exists`].
//!
//! A blob becomes visible only by `rename(2)` of a fully written, fsynced and verified
//! file, so a crash at any point leaves either no blob or the whole blob.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};

use crate::digest::{Algorithm, Digest, Digester};

/// Default root of the content store.
pub const DEFAULT_ROOT: &str = "/var/lib/berth/content";

/// Content store errors.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// Filesystem error on a path.
    #[error("content store: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No such blob.
    #[error("blob {0} not found")]
    NotFound(Digest),
    /// The bytes written do not hash to the expected digest; nothing was stored.
    #[error("blob {expected}: content has digest {actual}; discarded")]
    DigestMismatch {
        /// Digest the caller asked for.
        expected: Digest,
        /// Digest of the bytes received.
        actual: Digest,
    },
    /// The number of bytes differs from the expected size; nothing was stored.
    #[error("blob {digest}: expected {expected} bytes, got {actual}; discarded")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// Size the caller announced.
        expected: u64,
        /// Size received (or already stored).
        actual: u64,
    },
    /// A blob read with [`ContentStore::read_all`] is larger than the cap.
    #[error("blob {digest}: {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// A stored blob no longer matches its digest (disk corruption or tampering).
    #[error("blob {0} is corrupt on disk")]
    Corrupt(Digest),
}

type Result<T> = std::result::Result<T, ContentError>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ContentError + 'a {
    move |source| ContentError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// What the store knows about a committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When it was committed (file mtime).
    pub committed_at: SystemTime,
}

/// Blob count and total bytes of a content store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Number of committed blobs.
    pub blobs: u64,
    /// Sum of their sizes.
    pub bytes: u64,
}

/// A content-addressed blob store rooted at one directory.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

/// Result of [`ContentStore::writer`]: an ingest to fill, or the blob already there.
// One short-lived value per blob write; boxing the ingest would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Writer {
    /// Write the blob's bytes (from [`Ingest::offset`] on), then [`Ingest::commit`].
    Ingest(Ingest),
    /// The blob is already committed (possibly by a concurrent writer we waited for).
    Exists(BlobInfo),
}

impl ContentStore {
    /// Open (creating if needed) a store under `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<ContentStore> {
        let root = root.as_ref().to_owned();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let d = root.join("blobs").join(alg.as_str());
            fs::create_dir_all(&d).map_err(io_err("create", &d))?;
        }
        let ingest = root.join("ingest");
        fs::create_dir_all(&ingest).map_err(io_err("create", &ingest))?;
        Ok(ContentStore { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a committed blob (it may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        // The digest's hex is validated lowercase hex, safe as a file name.
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    fn ingest_dir(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("ingest")
            .join(format!("{}-{}", digest.algorithm().as_str(), digest.hex()))
    }

    /// Whether the blob is committed.
    pub fn exists(&self, digest: &Digest) -> Result<bool> {
        Ok(self.info(digest)?.is_some())
    }

    /// Size and commit time of a blob, `None` if absent.
    pub fn info(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        let p = self.blob_path(digest);
        match fs::metadata(&p) {
            Ok(m) => Ok(Some(BlobInfo {
                digest: digest.clone(),
                size: m.len(),
                committed_at: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat", &p)(e)),
        }
    }

    /// Open a committed blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.blob_path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound(digest.clone())
            } else {
                io_err("open", &p)(e)
            }
        })
    }

    /// Read a small blob (manifest, config, index) whole, refusing blobs larger than
    /// `limit`, and re-verifying its digest.
    pub fn read_all(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let mut f = self.open_blob(digest)?;
        let p = self.blob_path(digest);
        let size = f.metadata().map_err(io_err("stat", &p))?.len();
        if size > limit {
            return Err(ContentError::TooLarge {
                digest: digest.clone(),
                size,
                limit,
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        (&mut f)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(io_err("read", &p))?;
        if Digest::of(digest.algorithm(), &buf) != *digest {
            return Err(ContentError::Corrupt(digest.clone()));
        }
        Ok(buf)
    }

    /// Store `data` as a blob (for manifests and configs already in memory).
    pub fn put_bytes(&self, digest: &Digest, data: &[u8]) -> Result<BlobInfo> {
        match self.writer(digest, Some(data.len() as u64))? {
            Writer::Exists(info) => Ok(info),
            Writer::Ingest(mut ing) => {
                ing.reset()?;
                ing.write_all(data)
                    .map_err(io_err("write", &ing.data_path))?;
                ing.commit()
            }
        }
    }

    /// Remove a committed blob; `false` if it was not there.
    pub fn delete(&self, digest: &Digest) -> Result<bool> {
        let p = self.blob_path(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &p)(e)),
        }
    }

    /// All committed blobs. Files whose names are not valid digests are ignored.
    pub fn list(&self) -> Result<Vec<BlobInfo>> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.as_str());
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read dir", &dir)(e)),
            };
            for ent in rd {
                let ent = ent.map_err(io_err("read dir", &dir))?;
                let Some(name) = ent.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let Ok(digest) = format!("{}:{}", alg.as_str(), name).parse::<Digest>() else {
                    continue;
                };
                if let Some(info) = self.info(&digest)? {
                    out.push(info);
                }
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Number and total size of committed blobs.
    pub fn usage(&self) -> Result<Usage> {
        let list = self.list()?;
        Ok(Usage {
            blobs: list.len() as u64,
            bytes: list.iter().map(|b| b.size).sum(),
        })
    }

    /// Digests with an ingest in progress or interrupted (resumable).
    pub fn ingests(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("ingest");
        let mut out = Vec::new();
        for ent in fs::read_dir(&dir).map_err(io_err("read dir", &dir))? {
            let ent = ent.map_err(io_err("read dir", &dir))?;
            if let Some(d) = ent
                .file_name()
                .to_str()
                .and_then(|n| n.split_once('-'))
                .and_then(|(a, h)| format!("{a}:{h}").parse::<Digest>().ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove interrupted ingests not written to for `max_age` (their bytes would only
    /// be resumed by a new pull of the same blob). Ingests held by a live writer are
    /// skipped. Returns the digests removed.
    pub fn prune_ingests(&self, max_age: std::time::Duration) -> Result<Vec<Digest>> {
        let mut removed = Vec::new();
        for digest in self.ingests()? {
            let dir = self.ingest_dir(&digest);
            let lock_path = dir.join("lock");
            let Ok(lock_file) = OpenOptions::new().read(true).write(true).open(&lock_path) else {
                // No lock file: nobody can hold it; judge by age alone.
                if is_older(&dir.join("data"), max_age) || !dir.join("data").exists() {
                    let _ = fs::remove_dir_all(&dir);
                    removed.push(digest);
                }
                continue;
            };
            let Ok(lock) = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) else {
                continue; // a writer is active
            };
            if is_older(&dir.join("data"), max_age) || !dir.join("data").exists() {
                let _ = fs::remove_dir_all(&dir);
                removed.push(digest);
            }
            drop(lock);
        }
        Ok(removed)
    }

    /// Begin writing the blob `digest`.
    ///
    /// Returns [`Writer::Exists`] when the blob is already committed. Otherwise takes
    /// the digest's ingest lock, waiting while another writer (thread or process) holds
    /// it; when that writer committed meanwhile, returns [`Writer::Exists`], so two
    /// pulls of one blob download it once. A partial ingest left by an interrupted
    /// writer is resumed: the returned [`Ingest::offset`] says how many bytes are
    /// already there (re-hashed now), and the caller continues from that offset.
    pub fn writer(&self, digest: &Digest, expected_size: Option<u64>) -> Result<Writer> {
        loop {
            if let Some(info) = self.info(digest)? {
                check_size(digest, expected_size, info.size)?;
                return Ok(Writer::Exists(info));
            }
            let dir = self.ingest_dir(digest);
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
            let lock_path = dir.join("lock");
            let lock_file = match OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&lock_path)
            {
                Ok(f) => f,
                // The directory was removed by a writer finishing right now: retry.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("open", &lock_path)(e)),
            };
            let lock = Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, errno)| {
                io_err("flock", &lock_path)(io::Error::from_raw_os_error(errno as i32))
            })?;
            // The lock is only ours if the file we locked is still the one at the path;
            // a finished writer unlinks it, and a newer writer may have made a new one.
            let held = lock.metadata().map_err(io_err("stat", &lock_path))?;
            match fs::metadata(&lock_path) {
                Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("stat", &lock_path)(e)),
            }
            if let Some(info) = self.info(digest)? {
                // Committed while we waited; clean up the directory we may have recreated.
                let _ = fs::remove_dir_all(&dir);
                drop(lock);
                check_size(digest, expected_size, info.size)?;
                return Ok(Writer::Exists(info));
            }
            let mut ing = Ingest::resume(self, digest, expected_size, dir, lock)?;
            if let Some(exp) = expected_size
                && ing.offset > exp
            {
                ing.reset()?;
            }
            return Ok(Writer::Ingest(ing));
        }
    }
}

fn is_older(p: &Path, max_age: std::time::Duration) -> bool {
    fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= max_age)
}

fn check_size(digest: &Digest, expected: Option<u64>, actual: u64) -> Result<()> {
    match expected {
        Some(e) if e != actual => Err(ContentError::SizeMismatch {
            digest: digest.clone(),
            expected: e,
            actual,
        }),
        _ => Ok(()),
    }
}

/// An ingest in progress: exclusive writer of one digest's bytes.
///
/// Dropping it without [`commit`](Ingest::commit) or [`abort`](Ingest::abort) keeps the
/// bytes written so far for a later resume.
#[derive(Debug)]
pub struct Ingest {
    digest: Digest,
    expected_size: Option<u64>,
    dir: PathBuf,
    data_path: PathBuf,
    blob_path: PathBuf,
    blob_dir: PathBuf,
    file: File,
    digester: DigesterState,
    offset: u64,
    written: u64,
    _lock: Flock<File>,
}

/// Wrapper so `Ingest` can derive Debug.
#[derive(Clone)]
struct DigesterState(Digester);

impl std::fmt::Debug for DigesterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digester")
    }
}

impl Ingest {
    fn resume(
        store: &ContentStore,
        digest: &Digest,
        expected_size: Option<u64>,
        dir: PathBuf,
        lock: Flock<File>,
    ) -> Result<Ingest> {
        let data_path = dir.join("data");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&data_path)
            .map_err(io_err("open", &data_path))?;
        // Re-hash what an earlier writer left, so the final digest covers it.
        let mut digester = digest.algorithm().digester();
        let mut buf = vec![0u8; 256 * 1024];
        let mut offset = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io_err("read", &data_path))?;
            if n == 0 {
                break;
            }
            digester.update(&buf[..n]);
            offset += n as u64;
        }
        let blob_path = store.blob_path(digest);
        let blob_dir = blob_path
            .parent()
            .expect("blob path has a parent directory")
            .to_owned();
        Ok(Ingest {
            digest: digest.clone(),
            expected_size,
            dir,
            data_path,
            blob_path,
            blob_dir,
            file,
            digester: DigesterState(digester),
            offset,
            written: 0,
            _lock: lock,
        })
    }

    /// The digest being written.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Bytes already present from an earlier interrupted ingest; continue the download
    /// from here (an HTTP `Range: bytes=<offset>-`), or call [`reset`](Ingest::reset).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Total bytes in the ingest (resumed offset plus bytes written now).
    pub fn size(&self) -> u64 {
        self.offset + self.written
    }

    /// Throw away the bytes present and start from offset 0 (for a source that cannot
    /// resume).
    pub fn reset(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .map_err(io_err("truncate", &self.data_path))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(io_err("seek", &self.data_path))?;
        self.digester = DigesterState(self.digest.algorithm().digester());
        self.offset = 0;
        self.written = 0;
        Ok(())
    }

    /// Verify digest and size, then make the blob visible atomically (fsync, rename,
    /// fsync of the directory). On a mismatch nothing is stored and the ingest is
    /// removed.
    pub fn commit(mut self) -> Result<BlobInfo> {
        let size = self.size();
        let actual = self.digester.clone().0.finish();
        let mismatch = if let Some(exp) = self.expected_size
            && exp != size
        {
            Some(ContentError::SizeMismatch {
                digest: self.digest.clone(),
                expected: exp,
                actual: size,
            })
        } else if actual != self.digest {
            Some(ContentError::DigestMismatch {
                expected: self.digest.clone(),
                actual,
            })
        } else {
            None
        };
        if let Some(err) = mismatch {
            self.remove_dir();
            return Err(err);
        }
        self.file
            .flush()
            .map_err(io_err("flush", &self.data_path))?;
        self.file
            .sync_all()
            .map_err(io_err("fsync", &self.data_path))?;
        fs::rename(&self.data_path, &self.blob_path).map_err(io_err("rename", &self.blob_path))?;
        File::open(&self.blob_dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync", &self.blob_dir))?;
        self.remove_dir();
        let committed_at = fs::metadata(&self.blob_path)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(BlobInfo {
            digest: self.digest.clone(),
            size,
            committed_at,
        })
    }

    /// Abandon the ingest and delete its bytes.
    pub fn abort(self) {
        self.remove_dir();
    }

    fn remove_dir(&self) {
        // Removed while the lock is still held; waiters notice the unlinked lock file.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(exp) = self.expected_size
            && self.size() + buf.len() as u64 > exp
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {}: more than the expected {exp} bytes", self.digest),
            ));
        }
        let n = self.file.write(buf)?;
        self.digester.0.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn store() -> (tempfile::TempDir, ContentStore) {
        let t = tempfile::tempdir().unwrap();
        let s = ContentStore::open(t.path()).unwrap();
        (t, s)
    }

    fn ingest(w: Writer) -> Ingest {
        match w {
            Writer::Ingest(i) => i,
            Writer::Exists(i) => panic!("unexpected existing blob {i:?}"),
        }
    }

    #[test]
    fn write_commit_read_list_delete() {
        let (_t, s) = store();
        let data = b"hello blob".repeat(1000);
        let d = Digest::sha256_of(&data);
        assert!(!s.exists(&d).unwrap());
        let mut w = ingest(s.writer(&d, Some(data.len() as u64)).unwrap());
        assert_eq!(w.offset(), 0);
        w.write_all(&data).unwrap();
        let info = w.commit().unwrap();
        assert_eq!(info.size, data.len() as u64);
        assert_eq!(s.read_all(&d, 1 << 20).unwrap(), data);
        assert!(matches!(
            s.read_all(&d, 10),
            Err(ContentError::TooLarge { .. })
        ));
        assert!(matches!(s.writer(&d, None).unwrap(), Writer::Exists(_)));
        assert!(matches!(
            s.writer(&d, Some(1)),
            Err(ContentError::SizeMismatch { .. })
        ));
        assert_eq!(s.list().unwrap().len(), 1);
        assert_eq!(
            s.usage().unwrap(),
            Usage {
                blobs: 1,
                bytes: data.len() as u64
            }
        );
        assert!(s.ingests().unwrap().is_empty());
        assert!(s.delete(&d).unwrap());
        assert!(!s.delete(&d).unwrap());
        assert!(matches!(s.open_blob(&d), Err(ContentError::NotFound(_))));
    }

    #[test]
    fn interrupted_ingest_resumes() {
        let (_t, s) = store();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let d = Digest::sha256_of(&data);
        {
            let mut w = ingest(s.writer(&d, Some(data.len() as u64)).unwrap());
            w.write_all(&data[..123_456]).unwrap();
            // dropped mid-write: an interrupted pull
        }
        assert!(!s.exists(&d).unwrap(), "partial blob must not be visible");
        assert_eq!(s.ingests().unwrap(), vec![d.clone()]);
        let mut w = ingest(s.writer(&d, Some(data.len() as u64)).unwrap());
        assert_eq!(w.offset(), 123_456);
        w.write_all(&data[123_456..]).unwrap();
        w.commit().unwrap();
        assert_eq!(s.read_all(&d, 1 << 20).unwrap(), data);
        assert!(s.ingests().unwrap().is_empty());
    }

    #[test]
    fn mismatch_leaves_nothing() {
        let (_t, s) = store();
        let d = Digest::sha256_of(b"right");
        let mut w = ingest(s.writer(&d, None).unwrap());
        w.write_all(b"wrong").unwrap();
        assert!(matches!(
            w.commit(),
            Err(ContentError::DigestMismatch { .. })
        ));
        assert!(!s.exists(&d).unwrap());
        assert!(s.ingests().unwrap().is_empty());

        // size mismatch: too short
        let mut w = ingest(s.writer(&d, Some(6)).unwrap());
        w.write_all(b"right").unwrap();
        assert!(matches!(w.commit(), Err(ContentError::SizeMismatch { .. })));
        assert!(!s.exists(&d).unwrap());
        assert!(s.ingests().unwrap().is_empty());

        // too long is refused at write time
        let mut w = ingest(s.writer(&d, Some(3)).unwrap());
        assert!(w.write_all(b"right").is_err());
        w.abort();
        assert!(s.ingests().unwrap().is_empty());
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn two_threads_share_one_ingest() {
        let (_t, s) = store();
        let data = vec![7u8; 1 << 20];
        let d = Digest::sha256_of(&data);
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (s, d, data, barrier) = (s.clone(), d.clone(), data.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    match s.writer(&d, Some(data.len() as u64)).unwrap() {
                        Writer::Exists(_) => false,
                        Writer::Ingest(mut w) => {
                            for chunk in data.chunks(4096) {
                                w.write_all(chunk).unwrap();
                            }
                            w.commit().unwrap();
                            true
                        }
                    }
                })
            })
            .collect();
        let wrote: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(wrote.iter().filter(|w| **w).count(), 1, "{wrote:?}");
        assert_eq!(s.read_all(&d, 2 << 20).unwrap(), data);
        assert!(s.ingests().unwrap().is_empty());
    }

    #[test]
    fn reset_and_put_bytes() {
        let (_t, s) = store();
        let d = Digest::sha256_of(b"abc");
        {
            let mut w = ingest(s.writer(&d, None).unwrap());
            w.write_all(b"xx").unwrap();
        }
        let mut w = ingest(s.writer(&d, None).unwrap());
        assert_eq!(w.offset(), 2);
        w.reset().unwrap();
        w.write_all(b"abc").unwrap();
        w.commit().unwrap();
        let d2 = Digest::sha256_of(b"{}");
        s.put_bytes(&d2, b"{}").unwrap();
        assert!(s.put_bytes(&Digest::sha256_of(b"x"), b"y").is_err());
        assert_eq!(s.list().unwrap().len(), 2);
    }

    #[test]
    fn prune_ingests_skips_live_writers() {
        let (_t, s) = store();
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        {
            let mut w = ingest(s.writer(&a, None).unwrap());
            w.write_all(b"partial").unwrap();
        }
        let mut live = ingest(s.writer(&b, None).unwrap());
        live.write_all(b"x").unwrap();
        let removed = s.prune_ingests(std::time::Duration::ZERO).unwrap();
        assert_eq!(removed, vec![a]);
        assert_eq!(s.ingests().unwrap(), vec![b.clone()]);
        live.reset().unwrap();
        live.write_all(b"b").unwrap();
        live.commit().unwrap();
        assert!(s.exists(&b).unwrap());
    }

    #[test]
    fn corrupt_blob_detected_and_junk_ignored() {
        let (_t, s) = store();
        let d = Digest::sha256_of(b"abc");
        s.put_bytes(&d, b"abc").unwrap();
        fs::write(s.blob_path(&d), b"abd").unwrap();
        assert!(matches!(s.read_all(&d, 10), Err(ContentError::Corrupt(_))));
        fs::write(s.root().join("blobs/sha256/not-a-digest"), b"").unwrap();
        assert_eq!(s.list().unwrap().len(), 1);
    }
}
