//! Fuzz the layer applier ([`apply::apply_layer_with_parents`]) with hostile layers, as
//! root, and check that nothing is ever written outside the destination.
//!
//! Input: the first byte picks how the rest is fed (bits 0-2: plain tar, tar wrapped in
//! gzip, tar wrapped in zstd, raw bytes as a gzip layer, raw bytes as a zstd layer;
//! bit 3: apply over a lower layer; bit 4: keep the tar header checksums as they are,
//! else they are recomputed so mutations get past the tar parser). The rest is the
//! layer.
//!
//! The escape oracle: at start-up the process enters a private mount namespace in which
//! every mount is read-only, except a fresh tmpfs on /tmp (the work area) and the
//! directories libFuzzer writes (corpus, artifacts). A write outside the work area then
//! fails with EROFS, which the applier reports, and the target panics on it. Inside the
//! work area the destination has a sentinel sibling and a lower layer that must stay
//! exactly as they were.

#![no_main]

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use berth_snapshotter::apply::{self, ApplyError};
use libfuzzer_sys::fuzz_target;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

const WORK: &str = "/tmp/berth-fuzz";
const DEST: &str = "/tmp/berth-fuzz/dest";
const SENTINEL: &str = "/tmp/berth-fuzz/sentinel";
const LOWER: &str = "/tmp/berth-fuzz/lower";
/// What /tmp (a tmpfs of our own) holds: the work area and any kept directory.
static TMP_ENTRIES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: libc::c_uint = 0x8000;

fn set_readonly(path: &str, readonly: bool) {
    let attr = MountAttr {
        attr_set: if readonly { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: if readonly { 0 } else { MOUNT_ATTR_RDONLY },
        propagation: 0,
        userns_fd: 0,
    };
    let c = CString::new(path).expect("no NUL in a path we chose");
    // SAFETY: mount_setattr with a valid C string, a struct mount_attr of the size passed,
    // and flags the kernel documents; no memory is retained by the kernel.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    assert!(
        r == 0,
        "mount_setattr({path}, readonly={readonly}): {} (the layer_apply target needs root)",
        std::io::Error::last_os_error()
    );
}

/// The directories libFuzzer may write: the fuzz package (default corpus and
/// artifacts), corpus directories on the command line, the artifact prefix's directory.
fn writable_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))];
    for a in std::env::args().skip(1) {
        if let Some(p) = a
            .strip_prefix("-artifact_prefix=")
            .or_else(|| a.strip_prefix("-exact_artifact_path="))
        {
            let p = Path::new(p);
            let dir = if a.ends_with('/') {
                p
            } else {
                p.parent().unwrap_or(p)
            };
            if !dir.as_os_str().is_empty() {
                dirs.push(dir.to_path_buf());
            }
        } else if !a.starts_with('-') && Path::new(&a).is_dir() {
            dirs.push(PathBuf::from(a));
        }
    }
    dirs.into_iter()
        .filter_map(|d| d.canonicalize().ok())
        .collect()
}

/// open_tree(2) with `OPEN_TREE_CLONE`: a detached copy of the mount tree at `path`.
fn clone_tree(path: &Path) -> OwnedFd {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a canonical path");
    // SAFETY: open_tree with a valid C string and documented flags; it returns a new fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    assert!(
        fd >= 0,
        "open_tree({}): {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// move_mount(2) of a detached tree onto `path`.
fn attach_tree(tree: &OwnedFd, path: &Path) {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a canonical path");
    // SAFETY: move_mount from a valid mount fd (empty path) to a valid C string path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    assert!(
        r == 0,
        "move_mount onto {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn sandbox() {
    let keep = writable_dirs();
    unshare(CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS): the target needs root");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / private");
    set_readonly("/", true);
    // Detached copies, taken before /tmp is covered: a corpus under /tmp comes back too.
    let trees: Vec<OwnedFd> = keep.iter().map(|d| clone_tree(d)).collect();
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=256m,mode=1777"),
    )
    .expect("tmpfs on /tmp");
    for (d, tree) in keep.iter().zip(&trees) {
        if d.starts_with("/tmp") {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        attach_tree(tree, d);
        set_readonly(&d.to_string_lossy(), false);
    }
    let mut tmp: Vec<String> = vec!["berth-fuzz".into()];
    for d in &keep {
        if let Ok(rest) = d.strip_prefix("/tmp")
            && let Some(first) = rest.components().next()
        {
            tmp.push(first.as_os_str().to_string_lossy().into_owned());
        }
    }
    tmp.sort();
    tmp.dedup();
    TMP_ENTRIES.set(tmp).expect("sandbox runs once");
    fs::create_dir(WORK).expect("work dir");
    fs::create_dir(SENTINEL).expect("sentinel dir");
    // A lower layer with a sticky /tmp, a file, and symlinks that point out of it: the
    // applier reads modes from it and must not follow them.
    fs::create_dir_all(format!("{LOWER}/tmp")).expect("lower/tmp");
    fs::set_permissions(format!("{LOWER}/tmp"), fs::Permissions::from_mode(0o1777))
        .expect("chmod lower/tmp");
    fs::create_dir_all(format!("{LOWER}/etc")).expect("lower/etc");
    fs::write(
        format!("{LOWER}/etc/passwd"),
        b"root:x:0:0::/root:/bin/sh\n",
    )
    .expect("passwd");
    symlink("/", format!("{LOWER}/abs")).expect("lower/abs");
    symlink("../../../..", format!("{LOWER}/up")).expect("lower/up");
    symlink("/tmp/berth-fuzz/sentinel", format!("{LOWER}/sent")).expect("lower/sent");
    // The oracle is armed: a write outside the work area fails with EROFS.
    for probe in ["/berth-fuzz-probe", "/var/berth-fuzz-probe"] {
        let err = fs::File::create(probe).expect_err("a write outside the work area succeeded");
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EROFS),
            "write to {probe}: {err}"
        );
    }
}

/// Path, mode (type and permissions), uid, gid and size of one entry.
type Entry = (PathBuf, u32, u32, u32, u64);

/// Names, types, modes, owners and sizes of everything under `dir`, sorted.
fn tree(dir: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display()));
        for e in entries {
            let e = e.expect("read_dir entry");
            let m = fs::symlink_metadata(e.path()).expect("lstat");
            if m.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), m.mode(), m.uid(), m.gid(), m.size()));
        }
    }
    out.sort();
    out
}

fn lower_snapshot() -> &'static Vec<Entry> {
    static S: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();
    S.get_or_init(|| tree(Path::new(LOWER)))
}

fn is_erofs(e: &ApplyError) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.raw_os_error() == Some(libc::EROFS)
        {
            return true;
        }
        src = s.source();
    }
    false
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 1).expect("zstd into memory")
}

/// A tar header's size field: octal digits, or base-256 when the high bit is set.
fn header_size(field: &[u8]) -> u64 {
    if field[0] & 0x80 != 0 {
        return field[1..].iter().fold(0u64, |n, &b| {
            n.saturating_mul(256).saturating_add(u64::from(b))
        });
    }
    field
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(*b))
        .fold(0u64, |n, &b| {
            n.saturating_mul(8).saturating_add(u64::from(b - b'0'))
        })
}

/// Recompute the checksum of every header, walking entries by their size fields.
fn fix_checksums(tar: &mut [u8]) {
    let mut off = 0usize;
    while let Some(h) = off.checked_add(512).and_then(|end| tar.get_mut(off..end)) {
        if h.iter().all(|b| *b == 0) {
            off += 512;
            continue;
        }
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let data = usize::try_from(header_size(&h[124..136]).div_ceil(512).saturating_mul(512))
            .unwrap_or(usize::MAX);
        off = off.saturating_add(512).saturating_add(data);
    }
}

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";

fuzz_target!(init: { sandbox(); lower_snapshot(); }, |data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut tar = rest.to_vec();
    if sel & 0x10 == 0 {
        fix_checksums(&mut tar);
    }
    let (blob, media_type) = match sel & 7 {
        1 => (gzip(&tar), GZIP),
        2 => (zstd(&tar), ZSTD),
        3 => (rest.to_vec(), GZIP),
        4 => (rest.to_vec(), ZSTD),
        _ => (tar, TAR),
    };
    let parents: &[&Path] = if sel & 8 != 0 { &[Path::new(LOWER)] } else { &[] };
    fs::create_dir(DEST).expect("create dest");
    let result = apply::apply_layer_with_parents(Path::new(DEST), parents, blob.as_slice(), media_type);
    if let Err(e) = &result {
        assert!(!is_erofs(e), "the layer wrote outside its destination: {e}");
    }
    if let Ok(applied) = &result {
        // The diff_id is the SHA-256 of the whole uncompressed stream.
        let mut plain = Vec::new();
        let reader: Box<dyn Read> = match media_type {
            GZIP => Box::new(flate2::read::MultiGzDecoder::new(blob.as_slice())),
            ZSTD => Box::new(zstd::stream::read::Decoder::new(blob.as_slice()).expect("zstd")),
            _ => Box::new(blob.as_slice()),
        };
        const CAP: u64 = 64 << 20;
        if reader.take(CAP + 1).read_to_end(&mut plain).is_ok() && plain.len() as u64 <= CAP {
            assert_eq!(applied.size, plain.len() as u64, "diff size");
        }
    }
    // Nothing beside the destination changed.
    let mut names: Vec<_> = fs::read_dir(WORK)
        .expect("read work dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["dest", "lower", "sentinel"], "entries appeared beside the destination");
    assert!(
        fs::read_dir(SENTINEL).expect("read sentinel").next().is_none(),
        "the layer wrote into the sentinel directory"
    );
    assert_eq!(&tree(Path::new(LOWER)), lower_snapshot(), "the lower layer changed");
    let mut tmp: Vec<String> = fs::read_dir("/tmp")
        .expect("read /tmp")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    tmp.sort();
    assert_eq!(Some(&tmp), TMP_ENTRIES.get(), "entries appeared in /tmp");
    fs::remove_dir_all(DEST).expect("remove dest");
});
