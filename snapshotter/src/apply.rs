//! Applying an OCI/Docker layer (`image-spec/layer.md`) onto a directory, streaming:
//! decompress → hash (the diff_id) → untar, never holding the layer in memory.
//!
//! Every path is resolved inside `dest`: entry names are cleaned (leading `/` and `.`
//! dropped, `..` refused), parent directories are opened with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)` from a descriptor
//! of `dest`, so a symlink planted by an earlier entry (absolute or `../..`) resolves
//! inside `dest`, and the leaf is created with `*at` calls relative to that parent
//! (`O_NOFOLLOW | O_EXCL` for files, the old entry unlinked first). Symlinks are stored
//! as given: they are interpreted later, inside the container.
//!
//! Whiteouts become overlayfs whiteouts, as the layer is written straight into an
//! overlay upper directory: `.wh.NAME` → a 0/0 character device `NAME`;
//! `.wh..wh..opq` → `trusted.overlay.opaque=y` on its directory.
//!
//! Speed: decompression and hashing run on the calling thread and the tar apply on a
//! second one (as `gzip -d | tar -x` does); the parent directory of consecutive entries
//! is resolved once; file data goes out in large writes and its writeback starts as
//! soon as the file is written, so the flush before a snapshot commit finds little to
//! do.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstatat, futimens, mkdirat,
    mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};

use crate::digest::{Algorithm, Digest, DigestReader};

/// Layer apply errors.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Media type that is not a (compressed) tar layer we know.
    #[error("unsupported layer media type {0:?}")]
    UnsupportedMediaType(String),
    /// The stream could not be read, decompressed or parsed as tar.
    #[error("reading layer: {0}")]
    Read(#[source] io::Error),
    /// An entry name or link target that is refused.
    #[error("layer entry {path:?}: {reason}")]
    BadPath {
        /// The entry name (lossy).
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A tar entry type that cannot be applied.
    #[error("layer entry {path:?}: unsupported tar entry type {kind}")]
    UnsupportedEntry {
        /// The entry name (lossy).
        path: String,
        /// The type flag byte.
        kind: u8,
    },
    /// An extended attribute that a layer may not set.
    #[error("layer entry {path:?}: xattr {name:?} is not allowed in a layer")]
    ForbiddenXattr {
        /// The entry name (lossy).
        path: String,
        /// The attribute name.
        name: String,
    },
    /// A system call failed.
    #[error("layer entry {path:?}: {op}: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The entry name (lossy).
        path: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, ApplyError>;

/// What [`apply_layer`] applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// SHA-256 of the uncompressed tar stream (the layer's diff_id).
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream in bytes.
    pub size: u64,
}

/// Compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// The compression a layer media type implies (OCI and Docker schema2 types, including
/// the non-distributable variants).
pub fn compression_for(media_type: &str) -> Result<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Ok(Compression::Zstd),
        other => Err(ApplyError::UnsupportedMediaType(
            other.chars().take(200).collect(),
        )),
    }
}

/// A decompressing reader for `compression`.
pub fn decompress<'a, R: Read + 'a>(
    reader: R,
    compression: Compression,
) -> Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(256 * 1024, reader),
        )),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(reader).map_err(ApplyError::Read)?)
        }
    })
}

/// What an entry name means once cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryPath<'a> {
    /// The root itself (`./`, `/`).
    Root,
    /// A normal entry: parent components and the final name.
    Node {
        /// Parent directory components (no `.`, `..` or empty ones).
        parent: Vec<&'a OsStr>,
        /// Final component.
        name: &'a OsStr,
    },
    /// `.wh.NAME`: delete `NAME` in `parent`.
    Whiteout {
        /// Directory of the whiteout.
        parent: Vec<&'a OsStr>,
        /// The name being deleted.
        name: &'a OsStr,
    },
    /// `.wh..wh..opq`: `dir` hides everything below it from lower layers.
    Opaque {
        /// The opaque directory.
        dir: Vec<&'a OsStr>,
    },
    /// Another `.wh..wh.` marker (AUFS metadata such as `.wh..wh.plnk`): ignored.
    AufsMeta,
}

const WH_PREFIX: &[u8] = b".wh.";
const WH_META_PREFIX: &[u8] = b".wh..wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";

/// Split an entry name or hardlink target into clean components: leading `/`, empty
/// and `.` components dropped, `..` refused.
pub fn clean_components(raw: &[u8]) -> Result<Vec<&OsStr>> {
    let lossy = || {
        String::from_utf8_lossy(raw)
            .chars()
            .take(300)
            .collect::<String>()
    };
    if raw.contains(&0) {
        return Err(ApplyError::BadPath {
            path: lossy(),
            reason: "contains NUL",
        });
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(ApplyError::BadPath {
                    path: lossy(),
                    reason: "'..' components are not allowed",
                });
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

/// Classify a tar entry name (pure; see [`EntryPath`]).
pub fn classify(raw: &[u8]) -> Result<EntryPath<'_>> {
    let mut comps = clean_components(raw)?;
    let Some(last) = comps.pop() else {
        return Ok(EntryPath::Root);
    };
    let b = last.as_bytes();
    if b == WH_OPAQUE {
        Ok(EntryPath::Opaque { dir: comps })
    } else if b.starts_with(WH_META_PREFIX) {
        Ok(EntryPath::AufsMeta)
    } else if let Some(name) = b.strip_prefix(WH_PREFIX) {
        if name.is_empty() || name == b"." || name == b".." {
            return Err(ApplyError::BadPath {
                path: String::from_utf8_lossy(raw).into_owned(),
                reason: "whiteout without a valid name",
            });
        }
        Ok(EntryPath::Whiteout {
            parent: comps,
            name: OsStr::from_bytes(name),
        })
    } else {
        Ok(EntryPath::Node {
            parent: comps,
            name: last,
        })
    }
}

/// Whether a layer may set xattr `name` (overlayfs' own attributes are refused: they
/// would let a layer forge whiteouts, redirects or metacopy files).
pub fn xattr_allowed(name: &str) -> bool {
    !(name.starts_with("trusted.overlay.") || name.starts_with("user.overlay."))
}

/// Apply the layer read from `reader` (of `media_type`) onto `dest`, returning its
/// diff_id and uncompressed size. The caller compares the diff_id with the image
/// config before committing `dest`.
pub fn apply_layer(dest: &Path, reader: impl Read, media_type: &str) -> Result<Applied> {
    apply_layer_with_parents(dest, &[], reader, media_type)
}

/// [`apply_layer`] onto an overlay upper dir whose lower layers are `parents` (nearest
/// first): a directory the layer implies without an entry of its own (`a/b/file`
/// without `a/b/`) is created with the mode and owner it has in the nearest parent,
/// so the merged view keeps e.g. `/tmp`'s 1777 instead of a default 0755.
pub fn apply_layer_with_parents(
    dest: &Path,
    parents: &[&Path],
    reader: impl Read,
    media_type: &str,
) -> Result<Applied> {
    let compression = compression_for(media_type)?;
    let plain = decompress(reader, compression)?;
    let root = Root::open(dest, parents)?;
    // Two stages on two threads, as `gzip -d | tar -x`: this thread decompresses and
    // hashes the stream into chunks; the applier parses the tar and makes the
    // syscalls. Chunks in flight are bounded, so memory stays bounded too.
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(CHUNKS_IN_FLIGHT);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let applier = std::thread::Builder::new()
            .name("layer-apply".into())
            .spawn_scoped(s, move || {
                apply_entries(&root, ChunkReader::new(rx, free_tx))
            })
            .map_err(ApplyError::Read)?;
        let hashed = produce_chunks(plain, &tx, &free_rx);
        drop(tx);
        let applied = applier
            .join()
            .map_err(|_| ApplyError::Read(io::Error::other("layer applier thread panicked")))?;
        applied?;
        // A read error the applier did not see (it stopped early) is still an error.
        let (diff_id, size) = hashed.map_err(ApplyError::Read)?;
        Ok(Applied { diff_id, size })
    })
}

/// Chunks of decompressed layer in flight between the two stages.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Size of one chunk.
const CHUNK: usize = 256 * 1024;

/// Read `plain` to its end in [`CHUNK`]s, hashing each and sending it to the applier
/// (buffers come back through `free`). Stops early when the applier has stopped. The
/// error of a failed read is sent to the applier too.
fn produce_chunks(
    mut plain: impl Read,
    tx: &mpsc::SyncSender<io::Result<Vec<u8>>>,
    free: &mpsc::Receiver<Vec<u8>>,
) -> io::Result<(Digest, u64)> {
    let mut hashed = DigestReader::new(&mut plain, Algorithm::Sha256);
    loop {
        let mut buf = free.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let (filled, eof) = match fill(&mut hashed, &mut buf) {
            Ok(r) => r,
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                let _ = tx.send(Err(copy));
                return Err(e);
            }
        };
        buf.truncate(filled);
        if filled > 0 && tx.send(Ok(buf)).is_err() {
            // The applier stopped (with its own error); nothing more to hash for.
            return Err(io::Error::other("layer applier stopped"));
        }
        if eof {
            return Ok(hashed.finish());
        }
    }
}

/// The applier's side of the chunk channel, as a reader.
struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    free: mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl ChunkReader {
    fn new(rx: mpsc::Receiver<io::Result<Vec<u8>>>, free: mpsc::Sender<Vec<u8>>) -> Self {
        ChunkReader {
            rx,
            free,
            cur: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    /// Read and drop everything left (the stream's tail is part of the diff_id, so the
    /// producer must reach its end).
    fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(drop)
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    let old = std::mem::replace(&mut self.cur, next);
                    self.pos = 0;
                    let _ = self.free.send(old);
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(mpsc::RecvError) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The applier stage: every entry of the tar read from `chunks`, then directory times.
fn apply_entries(root: &Root, chunks: ChunkReader) -> Result<()> {
    let mut archive = tar::Archive::new(chunks);
    let mut dirs: Vec<(Vec<Vec<u8>>, i64)> = Vec::new();
    let mut cx = Context::default();
    for entry in archive.entries().map_err(ApplyError::Read)? {
        let mut entry = entry.map_err(ApplyError::Read)?;
        apply_entry(root, &mut entry, &mut dirs, &mut cx)?;
    }
    drop(cx);
    // Directory times last, deepest first: creating entries changed them.
    for (comps, mtime) in dirs.iter().rev() {
        let comps: Vec<&OsStr> = comps.iter().map(|c| OsStr::from_bytes(c)).collect();
        if let Ok(fd) = root.resolve_dir(&comps, false, OFlag::O_RDONLY) {
            let t = TimeSpec::new(*mtime, 0);
            let _ = futimens(&fd, &t, &t);
        }
    }
    // Read the rest of the stream too (end-of-archive blocks and padding).
    archive.into_inner().drain().map_err(ApplyError::Read)
}

/// State the applier keeps between entries.
#[derive(Default)]
struct Context {
    /// The parent directory of the last entry: entries come grouped by directory, so
    /// most need no path resolution at all. Dropped whenever an entry removes
    /// anything, as only a removal can change what an existing path resolves to.
    parent: Option<CachedDir>,
    /// Buffer for file contents.
    buf: Vec<u8>,
}

/// A resolved directory: its components, descriptor and set-gid bit.
struct CachedDir {
    comps: Vec<Vec<u8>>,
    fd: OwnedFd,
    setgid: bool,
}

/// Directory `comps` inside `root` (created if missing), from `slot` when it holds
/// that directory, else resolved and kept in `slot`.
fn cached_dir<'c>(
    slot: &'c mut Option<CachedDir>,
    root: &Root,
    comps: &[&OsStr],
) -> std::result::Result<&'c CachedDir, Errno> {
    let hit = matches!(slot, Some(c) if c.comps.len() == comps.len()
        && c.comps.iter().zip(comps).all(|(a, b)| a.as_slice() == b.as_bytes()));
    if !hit {
        *slot = None;
        let fd = root.resolve_dir(comps, true, OFlag::O_PATH)?;
        let setgid = nix::sys::stat::fstat(&fd)?.st_mode & libc::S_ISGID != 0;
        *slot = Some(CachedDir {
            comps: comps.iter().map(|c| c.as_bytes().to_vec()).collect(),
            fd,
            setgid,
        });
    }
    Ok(slot.as_ref().expect("filled just above"))
}

/// Copy the rest of `entry` into `file` in large writes.
fn copy_entry(entry: &mut impl Read, file: &mut File, buf: &mut Vec<u8>) -> io::Result<()> {
    if buf.len() < COPY_BUF {
        buf.resize(COPY_BUF, 0);
    }
    loop {
        let (filled, eof) = fill(entry, buf)?;
        file.write_all(&buf[..filled])?;
        if eof {
            return Ok(());
        }
    }
}

/// Reads until `buf` is full or the input ends: how much was read, and whether the
/// input ended.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok((filled, true)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((filled, false))
}

/// Largest single write of file contents.
const COPY_BUF: usize = 1024 * 1024;

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).chars().take(300).collect()
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>, path: &str) -> Result<Meta> {
    let h = entry.header();
    let bad = |_| ApplyError::BadPath {
        path: path.to_owned(),
        reason: "malformed header field",
    };
    let mut meta = Meta {
        mode: h.mode().map_err(bad)? & 0o7777,
        uid: u32::try_from(h.uid().map_err(bad)?).map_err(|_| ApplyError::BadPath {
            path: path.to_owned(),
            reason: "uid out of range",
        })?,
        gid: u32::try_from(h.gid().map_err(bad)?).map_err(|_| ApplyError::BadPath {
            path: path.to_owned(),
            reason: "gid out of range",
        })?,
        mtime: i64::try_from(h.mtime().map_err(bad)?).unwrap_or(0),
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions().map_err(ApplyError::Read)? {
        for ext in exts {
            let ext = ext.map_err(ApplyError::Read)?;
            let Ok(key) = ext.key() else { continue };
            let num = || {
                ext.value()
                    .ok()
                    .and_then(|v| v.split('.').next().map(str::to_owned))
                    .and_then(|v| v.parse::<i64>().ok())
            };
            match key {
                "uid" => {
                    meta.uid = num()
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| bad(io::Error::other("")))?
                }
                "gid" => {
                    meta.gid = num()
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| bad(io::Error::other("")))?
                }
                "mtime" => meta.mtime = num().unwrap_or(meta.mtime),
                k => {
                    if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                        if !xattr_allowed(name) {
                            return Err(ApplyError::ForbiddenXattr {
                                path: path.to_owned(),
                                name: name.to_owned(),
                            });
                        }
                        meta.xattrs
                            .push((name.to_owned(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
    }
    Ok(meta)
}

fn apply_entry<R: Read>(
    root: &Root,
    entry: &mut tar::Entry<'_, R>,
    dirs: &mut Vec<(Vec<Vec<u8>>, i64)>,
    cx: &mut Context,
) -> Result<()> {
    let raw = entry.path_bytes().into_owned();
    let path = lossy(&raw);
    let kind = entry.header().entry_type();
    if kind.is_pax_global_extensions() {
        return Ok(());
    }
    let sys = |op: &'static str| {
        let path = path.clone();
        move |e: Errno| ApplyError::Sys {
            op,
            path,
            source: io::Error::from(e),
        }
    };
    match classify(&raw)? {
        EntryPath::Root | EntryPath::AufsMeta => Ok(()),
        EntryPath::Opaque { dir } => {
            let fd = root
                .resolve_dir(&dir, true, OFlag::O_RDONLY)
                .map_err(sys("open opaque dir"))?;
            set_xattr(&fd, "trusted.overlay.opaque", b"y").map_err(sys("set opaque xattr"))
        }
        EntryPath::Whiteout { parent, name } => {
            let pfd = root
                .resolve_dir(&parent, true, OFlag::O_PATH)
                .map_err(sys("open parent"))?;
            if remove_at(&pfd, name).map_err(sys("remove whited-out entry"))? {
                cx.parent = None;
            }
            mknodat(&pfd, name, SFlag::S_IFCHR, Mode::empty(), 0).map_err(sys("create whiteout"))
        }
        EntryPath::Node { parent, name } => {
            let meta = entry_meta(entry, &path)?;
            let Context { parent: slot, buf } = cx;
            let dir = cached_dir(slot, root, &parent).map_err(sys("open parent"))?;
            let mut removed = false;
            let result = apply_node(
                root,
                entry,
                &NodeAt {
                    pfd: &dir.fd,
                    parent_setgid: dir.setgid,
                    parent: &parent,
                    name,
                    meta: &meta,
                },
                dirs,
                buf,
                &mut removed,
                &sys,
            );
            if removed {
                *slot = None;
            }
            result
        }
    }
}

/// Where and what a node entry creates.
struct NodeAt<'a> {
    pfd: &'a OwnedFd,
    parent_setgid: bool,
    parent: &'a [&'a OsStr],
    name: &'a OsStr,
    meta: &'a Meta,
}

/// Create `op` with `create`; if the name is taken, remove what is there (noting it in
/// `removed`) and create again.
fn create_replacing(
    dir: &OwnedFd,
    name: &OsStr,
    removed: &mut bool,
    mut create: impl FnMut() -> std::result::Result<(), Errno>,
) -> std::result::Result<(), Errno> {
    match create() {
        Err(Errno::EEXIST) => {
            *removed |= remove_at(dir, name)?;
            create()
        }
        r => r,
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_node<R: Read, S, F>(
    root: &Root,
    entry: &mut tar::Entry<'_, R>,
    at: &NodeAt<'_>,
    dirs: &mut Vec<(Vec<Vec<u8>>, i64)>,
    buf: &mut Vec<u8>,
    removed: &mut bool,
    sys: &S,
) -> Result<()>
where
    S: Fn(&'static str) -> F,
    F: FnOnce(Errno) -> ApplyError,
{
    let NodeAt {
        pfd,
        parent_setgid,
        parent,
        name,
        meta,
    } = *at;
    let path = || lossy(name.as_bytes());
    use tar::EntryType as T;
    let kind = entry.header().entry_type();
    match kind {
        T::Directory => {
            match fstatat(pfd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
                Ok(_) => {
                    *removed |= remove_at(pfd, name).map_err(sys("replace with directory"))?;
                    mkdirat(pfd, name, Mode::from_bits_truncate(0o700)).map_err(sys("mkdir"))?;
                }
                Err(Errno::ENOENT) => {
                    mkdirat(pfd, name, Mode::from_bits_truncate(0o700)).map_err(sys("mkdir"))?;
                }
                Err(e) => return Err(sys("stat")(e)),
            }
            let fd = openat(
                pfd,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys("open directory"))?;
            set_fd_meta(&fd, meta, false, true).map_err(sys("set directory metadata"))?;
            let mut comps: Vec<Vec<u8>> = parent.iter().map(|c| c.as_bytes().to_vec()).collect();
            comps.push(name.as_bytes().to_vec());
            dirs.push((comps, meta.mtime));
            Ok(())
        }
        T::Regular | T::Continuous => {
            let mut fd = None;
            create_replacing(pfd, name, removed, || {
                fd = Some(openat(
                    pfd,
                    name,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )?);
                Ok(())
            })
            .map_err(sys("create file"))?;
            let mut file = File::from(fd.expect("set when create_replacing succeeds"));
            copy_entry(entry, &mut file, buf).map_err(|e| ApplyError::Sys {
                op: "write file",
                path: path(),
                source: e,
            })?;
            let chown = !owned_when_created(root, meta, parent_setgid);
            set_fd_meta(&file, meta, true, chown).map_err(sys("set file metadata"))?;
            start_writeback(&file);
            Ok(())
        }
        T::Symlink => {
            let target = entry.link_name_bytes().ok_or_else(|| ApplyError::BadPath {
                path: path(),
                reason: "symlink without target",
            })?;
            let target = CString::new(target.into_owned()).map_err(|_| ApplyError::BadPath {
                path: path(),
                reason: "symlink target contains NUL",
            })?;
            create_replacing(pfd, name, removed, || {
                symlinkat(target.as_c_str(), pfd, name)
            })
            .map_err(sys("symlink"))?;
            if !owned_when_created(root, meta, parent_setgid) {
                fchownat(
                    pfd,
                    name,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(sys("chown symlink"))?;
            }
            let t = TimeSpec::new(meta.mtime, 0);
            utimensat(pfd, name, &t, &t, UtimensatFlags::NoFollowSymlink)
                .map_err(sys("set symlink times"))
        }
        T::Link => {
            let target = entry.link_name_bytes().ok_or_else(|| ApplyError::BadPath {
                path: path(),
                reason: "hardlink without target",
            })?;
            let mut tcomps = clean_components(&target)?;
            let Some(tname) = tcomps.pop() else {
                return Err(ApplyError::BadPath {
                    path: path(),
                    reason: "hardlink to the root",
                });
            };
            let tfd = root
                .resolve_dir(&tcomps, false, OFlag::O_PATH)
                .map_err(sys("open hardlink target dir"))?;
            let st = fstatat(&tfd, tname, AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(sys("hardlink target"))?;
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                return Err(ApplyError::BadPath {
                    path: path(),
                    reason: "hardlink to a directory",
                });
            }
            if tcomps.as_slice() == parent && tname == name {
                return Ok(());
            }
            create_replacing(pfd, name, removed, || {
                linkat(&tfd, tname, pfd, name, AtFlags::empty())
            })
            .map_err(sys("hardlink"))
        }
        T::Char | T::Block | T::Fifo => {
            let sflag = match kind {
                T::Char => SFlag::S_IFCHR,
                T::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            let h = entry.header();
            let major = h.device_major().ok().flatten().unwrap_or(0);
            let minor = h.device_minor().ok().flatten().unwrap_or(0);
            create_replacing(pfd, name, removed, || {
                mknodat(pfd, name, sflag, Mode::empty(), libc::makedev(major, minor))
            })
            .map_err(sys("mknod"))?;
            fchownat(
                pfd,
                name,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(sys("chown node"))?;
            fchmodat(
                pfd,
                name,
                Mode::from_bits_truncate(meta.mode),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(sys("chmod node"))?;
            let t = TimeSpec::new(meta.mtime, 0);
            utimensat(pfd, name, &t, &t, UtimensatFlags::NoFollowSymlink)
                .map_err(sys("set node times"))
        }
        other => Err(ApplyError::UnsupportedEntry {
            path: path(),
            kind: other.as_byte(),
        }),
    }
}

/// Start writing `file`'s data to disk now, without waiting: the flush that makes a
/// layer durable before its snapshot is committed then finds most of it written,
/// and the disk works while later entries are applied. Only a hint: an error here
/// shows again at that flush.
fn start_writeback(file: &File) {
    // SAFETY: sync_file_range on an open descriptor; offsets 0/0 mean the whole file.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Whether an inode this process just created already has the owner `meta` asks for:
/// it gets our effective uid, and our effective gid unless its directory is set-gid.
fn owned_when_created(root: &Root, meta: &Meta, parent_setgid: bool) -> bool {
    !parent_setgid && (meta.uid, meta.gid) == root.ids
}

/// Owner (when `chown`), xattrs, mode (after chown, which clears set-id bits), and
/// times.
fn set_fd_meta(
    fd: &impl AsFd,
    meta: &Meta,
    times: bool,
    chown: bool,
) -> std::result::Result<(), Errno> {
    if chown {
        fchown(
            fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )?;
    }
    for (name, value) in &meta.xattrs {
        set_xattr(fd, name, value)?;
    }
    fchmod(fd, Mode::from_bits_truncate(meta.mode))?;
    if times {
        let t = TimeSpec::new(meta.mtime, 0);
        futimens(fd, &t, &t)?;
    }
    Ok(())
}

fn set_xattr(fd: &impl AsFd, name: &str, value: &[u8]) -> std::result::Result<(), Errno> {
    let cname = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: valid open fd, NUL-terminated name, value pointer and length from a slice.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_fd().as_raw_fd(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// Remove `name` in directory `dir` (recursively for a directory); absent is fine.
/// Returns whether anything was removed.
fn remove_at(dir: &impl AsFd, name: &OsStr) -> std::result::Result<bool, Errno> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(Errno::EISDIR) => {
            let fd = openat(
                dir,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let dup = fd.try_clone().map_err(|_| Errno::EMFILE)?;
            let mut d = nix::dir::Dir::from_fd(dup)?;
            let names: Vec<Vec<u8>> = d
                .iter()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_bytes().to_vec())
                .filter(|n| n != b"." && n != b"..")
                .collect();
            for n in names {
                remove_at(&fd, OsStr::from_bytes(&n))?;
            }
            unlinkat(dir, name, UnlinkatFlags::RemoveDir)?;
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// A directory all paths are resolved inside, and the lower layers under it.
struct Root {
    fd: OwnedFd,
    parents: Vec<OwnedFd>,
    /// Effective uid and gid of this process: the owner of what it creates.
    ids: (u32, u32),
}

fn open_dir_path(dir: &Path, op: &'static str) -> Result<OwnedFd> {
    nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ApplyError::Sys {
        op,
        path: dir.display().to_string(),
        source: e.into(),
    })
}

impl Root {
    fn open(dest: &Path, parents: &[&Path]) -> Result<Root> {
        Ok(Root {
            fd: open_dir_path(dest, "open destination")?,
            parents: parents
                .iter()
                .map(|p| open_dir_path(p, "open parent layer"))
                .collect::<Result<_>>()?,
            ids: (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            ),
        })
    }

    fn open_in_root(&self, comps: &[&OsStr], flags: OFlag) -> std::result::Result<OwnedFd, Errno> {
        open_in(&self.fd, comps, flags)
    }

    /// Give the new directory `name` in `parent` (at `comps` from the root) the mode
    /// and owner of the same directory in the nearest lower layer that has it.
    fn inherit_from_parents(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        comps: &[&OsStr],
    ) -> std::result::Result<(), Errno> {
        for lower in &self.parents {
            let Ok(fd) = open_in(lower, comps, OFlag::O_PATH) else {
                continue;
            };
            let st = nix::sys::stat::fstat(&fd)?;
            fchownat(
                parent,
                name,
                Some(Uid::from_raw(st.st_uid)),
                Some(Gid::from_raw(st.st_gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
            return fchmodat(
                parent,
                name,
                Mode::from_bits_truncate(st.st_mode & 0o7777),
                FchmodatFlags::FollowSymlink,
            );
        }
        Ok(())
    }
}

/// Open directory `comps` under `root` with `openat2(RESOLVE_IN_ROOT)`.
fn open_in(root: &OwnedFd, comps: &[&OsStr], flags: OFlag) -> std::result::Result<OwnedFd, Errno> {
    let mut p: Vec<u8> = Vec::new();
    for c in comps {
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(c.as_bytes());
    }
    if p.is_empty() {
        p.push(b'.');
    }
    let how = OpenHow::new()
        .flags(flags | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    loop {
        match openat2(root, OsStr::from_bytes(&p), how) {
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

impl Root {
    /// Open directory `comps` inside the root (symlinks resolved as if the root were
    /// `/`), creating missing directories when `create` (mode and owner from the
    /// nearest lower layer having them, else 0755 root).
    fn resolve_dir(
        &self,
        comps: &[&OsStr],
        create: bool,
        flags: OFlag,
    ) -> std::result::Result<OwnedFd, Errno> {
        match self.open_in_root(comps, flags) {
            Err(Errno::ENOENT) if create => {}
            r => return r,
        }
        for i in 1..=comps.len() {
            match self.open_in_root(&comps[..i], OFlag::O_PATH) {
                Ok(_) => continue,
                Err(Errno::ENOENT) => {
                    let parent = self.open_in_root(&comps[..i - 1], OFlag::O_PATH)?;
                    match mkdirat(&parent, comps[i - 1], Mode::from_bits_truncate(0o755)) {
                        Ok(()) => self.inherit_from_parents(&parent, comps[i - 1], &comps[..i])?,
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.open_in_root(comps, flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<&'static OsStr> {
        v.iter()
            .map(|s| OsStr::new(Box::leak(s.to_string().into_boxed_str())))
            .collect()
    }

    #[test]
    fn classify_table() {
        let node = |p: &[&str], n: &'static str| EntryPath::Node {
            parent: os(p),
            name: OsStr::new(n),
        };
        let cases: Vec<(&str, EntryPath)> = vec![
            ("a", node(&[], "a")),
            ("./a/b", node(&["a"], "b")),
            ("/abs/x", node(&["abs"], "x")),
            ("a//b/./c/", node(&["a", "b"], "c")),
            ("./", EntryPath::Root),
            ("/", EntryPath::Root),
            ("", EntryPath::Root),
            (
                "d/.wh.f",
                EntryPath::Whiteout {
                    parent: os(&["d"]),
                    name: OsStr::new("f"),
                },
            ),
            (
                ".wh.top",
                EntryPath::Whiteout {
                    parent: vec![],
                    name: OsStr::new("top"),
                },
            ),
            (
                "d/e/.wh..wh..opq",
                EntryPath::Opaque {
                    dir: os(&["d", "e"]),
                },
            ),
            (".wh..wh..opq", EntryPath::Opaque { dir: vec![] }),
            ("x/.wh..wh.plnk", EntryPath::AufsMeta),
            ("a.wh.b", node(&[], "a.wh.b")),
        ];
        for (raw, want) in cases {
            assert_eq!(classify(raw.as_bytes()).unwrap(), want, "{raw:?}");
        }
        for bad in [
            "../x",
            "a/../../x",
            "a/..",
            "..",
            "d/.wh.",
            "d/.wh..",
            "d/.wh..",
        ] {
            assert!(classify(bad.as_bytes()).is_err(), "accepted {bad:?}");
        }
        assert!(classify(b"a\0b").is_err());
    }

    #[test]
    fn media_types() {
        let ok = [
            ("application/vnd.oci.image.layer.v1.tar", Compression::None),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::Zstd,
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                Compression::Gzip,
            ),
        ];
        for (mt, c) in ok {
            assert_eq!(compression_for(mt).unwrap(), c, "{mt}");
        }
        for bad in [
            "application/json",
            "application/vnd.oci.image.layer.v1.tar+bzip2",
            "",
        ] {
            assert!(compression_for(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlay_xattrs_refused() {
        assert!(xattr_allowed("user.foo"));
        assert!(xattr_allowed("security.capability"));
        assert!(!xattr_allowed("trusted.overlay.opaque"));
        assert!(!xattr_allowed("trusted.overlay.redirect"));
        assert!(!xattr_allowed("user.overlay.whiteout"));
    }
}
