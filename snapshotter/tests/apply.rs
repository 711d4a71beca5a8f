//! Root integration tests of the layer applier: every entry kind with real content,
//! whiteouts, compression, and a corpus of malicious layers that must be refused or
//! contained (nothing written outside the destination).

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use berth_snapshotter::apply::{ApplyError, apply_layer};
use berth_snapshotter::digest::Digest;
use common::{Layer, busybox, require_root};
use tar::EntryType;

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

fn getxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let cp = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let cn = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the given length.
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| {
        buf.truncate(n as usize);
        buf
    })
}

#[test]
fn applies_every_entry_kind() {
    require_root();
    let bb = busybox();
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let layer = Layer::new()
        .dir("bin/", 0o755)
        .file_full("bin/busybox", &bb, 0o4755, 0, 0)
        .symlink("bin/sh", "/bin/busybox")
        .hardlink("bin/ls", "bin/busybox")
        .dir("home/user/", 0o750)
        .file_full("home/user/file", b"hello", 0o640, 1000, 1001)
        .node("dev/null", EntryType::Char, 1, 3)
        .node("dev/loop9", EntryType::Block, 7, 9)
        .node("run/fifo", EntryType::Fifo, 0, 0)
        .pax(&[
            ("SCHILY.xattr.user.berth", b"value"),
            (
                "SCHILY.xattr.security.capability",
                &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
        ])
        .file("bin/ping", b"pretend")
        .tar();
    let want = Digest::sha256_of(&layer);
    let got = apply_layer(&dest, &layer[..], TAR).unwrap();
    assert_eq!(got.diff_id, want);
    assert_eq!(got.size, layer.len() as u64);

    let m = fs::metadata(dest.join("bin/busybox")).unwrap();
    assert_eq!(m.len(), bb.len() as u64);
    assert_eq!(
        m.permissions().mode() & 0o7777,
        0o4755,
        "setuid kept after chown"
    );
    assert_eq!(m.mtime(), 1_600_000_000);
    assert_eq!(fs::read(dest.join("bin/busybox")).unwrap(), bb);
    assert_eq!(
        fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let ls = fs::metadata(dest.join("bin/ls")).unwrap();
    assert_eq!(
        (ls.ino(), ls.nlink()),
        (m.ino(), 2),
        "hardlink shares the inode"
    );
    let f = fs::metadata(dest.join("home/user/file")).unwrap();
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o777), (1000, 1001, 0o640));
    let d = fs::metadata(dest.join("home/user")).unwrap();
    assert_eq!((d.mode() & 0o777, d.mtime()), (0o750, 1_600_000_000));
    let null = fs::symlink_metadata(dest.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert!(
        fs::symlink_metadata(dest.join("dev/loop9"))
            .unwrap()
            .file_type()
            .is_block_device()
    );
    assert!(
        fs::symlink_metadata(dest.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        getxattr(&dest.join("bin/ping"), "user.berth").as_deref(),
        Some(&b"value"[..])
    );
    assert!(getxattr(&dest.join("bin/ping"), "security.capability").is_some());
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let layer = Layer::new()
        .file("etc/.wh.passwd", b"")
        .dir("opt/app/", 0o755)
        .file("opt/app/.wh..wh..opq", b"")
        .file("opt/app/new", b"n")
        .file("var/.wh..wh.plnk", b"")
        .file(".wh.toplevel", b"")
        .tar();
    apply_layer(&dest, &layer[..], TAR).unwrap();
    for w in ["etc/passwd", "toplevel"] {
        let m = fs::symlink_metadata(dest.join(w)).unwrap();
        assert!(m.file_type().is_char_device(), "{w} is not a whiteout");
        assert_eq!(m.rdev(), 0, "{w}");
    }
    assert!(!dest.join("etc/.wh.passwd").exists());
    assert_eq!(
        getxattr(&dest.join("opt/app"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(fs::read(dest.join("opt/app/new")).unwrap(), b"n");
    assert!(!dest.join("opt/app/.wh..wh..opq").exists());
    assert!(!dest.join("var/.wh..wh.plnk").exists());
}

#[test]
fn gzip_and_zstd_give_the_tar_digest() {
    require_root();
    let mk = || Layer::new().file("a", &busybox()).file("b/c", b"c");
    let want = Digest::sha256_of(&mk().tar());
    for (data, mt) in [(mk().gzip(), GZIP), (mk().zstd(), ZSTD), (mk().tar(), TAR)] {
        let t = tempfile::tempdir().unwrap();
        let got = apply_layer(t.path(), &data[..], mt).unwrap();
        assert_eq!(got.diff_id, want, "{mt}");
        assert_eq!(fs::read(t.path().join("b/c")).unwrap(), b"c");
    }
    // Wrong compression for the media type, and truncated streams, are errors.
    let t = tempfile::tempdir().unwrap();
    assert!(apply_layer(t.path(), &mk().tar()[..], GZIP).is_err());
    let gz = mk().gzip();
    assert!(apply_layer(t.path(), &gz[..gz.len() / 2], GZIP).is_err());
    assert!(matches!(
        apply_layer(t.path(), &b""[..], "text/plain"),
        Err(ApplyError::UnsupportedMediaType(_))
    ));
}

/// A destination with a sibling "outside" holding files a layer must never touch.
struct Arena {
    _t: tempfile::TempDir,
    dest: std::path::PathBuf,
    outside: std::path::PathBuf,
}

impl Arena {
    fn new() -> Arena {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("dest");
        let outside = t.path().join("outside");
        fs::create_dir_all(&dest).unwrap();
        fs::create_dir_all(outside.join("sub")).unwrap();
        fs::write(outside.join("secret"), "secret").unwrap();
        Arena {
            _t: t,
            dest,
            outside,
        }
    }

    /// Assert the outside directory is exactly as created.
    fn assert_untouched(&self, case: &str) {
        let mut names: Vec<String> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["secret", "sub"], "{case}: outside dir changed");
        assert_eq!(
            fs::read_dir(self.outside.join("sub")).unwrap().count(),
            0,
            "{case}: wrote into outside/sub"
        );
        let m = fs::metadata(self.outside.join("secret")).unwrap();
        assert_eq!(
            fs::read(self.outside.join("secret")).unwrap(),
            b"secret",
            "{case}"
        );
        assert_eq!(m.nlink(), 1, "{case}: secret was hardlinked");
        assert!(
            getxattr(&self.outside.join("sub"), "trusted.overlay.opaque").is_none(),
            "{case}"
        );
        let parent = self.outside.parent().unwrap();
        assert!(
            !parent.join("escape").exists(),
            "{case}: wrote next to dest"
        );
    }
}

/// Each malicious layer is refused (an error) or contained (written inside dest);
/// in every case nothing outside changes.
#[test]
fn malicious_layer_corpus() {
    require_root();
    let out = |a: &Arena| a.outside.display().to_string();
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Box<dyn Fn(&Arena) -> Vec<u8>>, bool)> = vec![
        (
            "dotdot file",
            Box::new(|_| Layer::new().file("../escape", b"x").tar()),
            false,
        ),
        (
            "nested dotdot",
            Box::new(|_| Layer::new().file("a/../../escape", b"x").tar()),
            false,
        ),
        (
            "dotdot dir",
            Box::new(|_| Layer::new().dir("../escape/", 0o755).tar()),
            false,
        ),
        (
            "dotdot whiteout",
            Box::new(|_| Layer::new().file("../.wh.outside", b"").tar()),
            false,
        ),
        (
            "dotdot hardlink target",
            Box::new(|_| Layer::new().hardlink("h", "../outside/secret").tar()),
            false,
        ),
        (
            "absolute hardlink target",
            Box::new(move |a| {
                Layer::new()
                    .hardlink("h", &format!("{}/secret", out(a)))
                    .tar()
            }),
            false,
        ),
        (
            "hardlink to dir",
            Box::new(|_| Layer::new().dir("d/", 0o755).hardlink("h", "d").tar()),
            false,
        ),
        (
            "hardlink through symlink",
            Box::new(move |a| {
                Layer::new()
                    .symlink("s", &out(a))
                    .hardlink("h", "s/secret")
                    .tar()
            }),
            false,
        ),
        (
            "forged overlay xattr",
            Box::new(|_| {
                Layer::new()
                    .pax(&[("SCHILY.xattr.trusted.overlay.redirect", b"/x")])
                    .file("f", b"")
                    .tar()
            }),
            false,
        ),
        // contained: absolute names land inside dest
        (
            "absolute name",
            Box::new(|_| Layer::new().file("/abs/file", b"x").tar()),
            true,
        ),
        (
            "file through absolute symlink",
            Box::new(move |a| {
                Layer::new()
                    .symlink("evil", &out(a))
                    .file("evil/pwned", b"x")
                    .tar()
            }),
            true,
        ),
        (
            "file through relative symlink",
            Box::new(|_| {
                Layer::new()
                    .symlink("up", "../../../../../../..")
                    .file("up/escape", b"x")
                    .tar()
            }),
            true,
        ),
        (
            "file through symlink to outside subdir",
            Box::new(move |a| {
                Layer::new()
                    .symlink("evil", &format!("{}/sub", out(a)))
                    .file("evil/pwned", b"x")
                    .tar()
            }),
            true,
        ),
        (
            "file over symlink leaf",
            Box::new(move |a| {
                Layer::new()
                    .symlink("s", &format!("{}/secret", out(a)))
                    .file("s", b"overwritten")
                    .tar()
            }),
            true,
        ),
        (
            "dir over symlink leaf",
            Box::new(move |a| {
                Layer::new()
                    .symlink("d", &out(a))
                    .dir("d/", 0o755)
                    .file("d/f", b"x")
                    .tar()
            }),
            true,
        ),
        (
            "whiteout through symlink",
            Box::new(move |a| {
                Layer::new()
                    .symlink("evil", &out(a))
                    .file("evil/.wh.secret", b"")
                    .tar()
            }),
            true,
        ),
        (
            "opaque through symlink",
            Box::new(move |a| {
                Layer::new()
                    .symlink("evil", &format!("{}/sub", out(a)))
                    .file("evil/.wh..wh..opq", b"")
                    .tar()
            }),
            true,
        ),
        (
            "device through symlink",
            Box::new(move |a| {
                Layer::new()
                    .symlink("evil", &out(a))
                    .node("evil/null", EntryType::Char, 1, 3)
                    .tar()
            }),
            true,
        ),
        (
            "symlink chain to parent",
            Box::new(|_| {
                Layer::new()
                    .symlink("a", "b")
                    .symlink("b", "..")
                    .file("a/escape", b"x")
                    .tar()
            }),
            true,
        ),
        (
            "proc magic link",
            Box::new(|_| {
                Layer::new()
                    .symlink("p", "/proc/self/root")
                    .file("p/escape", b"x")
                    .tar()
            }),
            true,
        ),
    ];
    for (name, build, contained) in cases {
        let a = Arena::new();
        let layer = build(&a);
        let r = apply_layer(&a.dest, &layer[..], TAR);
        a.assert_untouched(name);
        if contained {
            // Contained cases may still refuse an entry (a dangling planted link), but
            // anything written is under dest.
            eprintln!("{name}: {:?}", r.as_ref().map(|_| ()));
        } else {
            assert!(r.is_err(), "{name}: a refused layer was accepted");
        }
    }

    // Spot-check where contained writes landed.
    let a = Arena::new();
    let layer = Layer::new()
        .symlink("up", "../../../../../../..")
        .file("up/escape", b"x")
        .tar();
    apply_layer(&a.dest, &layer[..], TAR).unwrap();
    assert_eq!(fs::read(a.dest.join("escape")).unwrap(), b"x");
    let a = Arena::new();
    let layer = Layer::new().file("/abs/file", b"x").tar();
    apply_layer(&a.dest, &layer[..], TAR).unwrap();
    assert_eq!(fs::read(a.dest.join("abs/file")).unwrap(), b"x");
    let a = Arena::new();
    let layer = Layer::new()
        .symlink("s", &format!("{}/secret", a.outside.display()))
        .file("s", b"new")
        .tar();
    apply_layer(&a.dest, &layer[..], TAR).unwrap();
    assert_eq!(fs::read(a.dest.join("s")).unwrap(), b"new");
    assert!(fs::symlink_metadata(a.dest.join("s")).unwrap().is_file());
    a.assert_untouched("spot check");
}

/// A directory that earlier entries wrote into, then replaced by a symlink or a file:
/// later entries below that name follow what is there now (resolved inside dest),
/// never the directory that was removed.
#[test]
fn entries_below_a_replaced_directory_resolve_again() {
    require_root();
    let a = Arena::new();
    let layer = Layer::new()
        .dir("d/", 0o755)
        .file("d/x", b"x")
        .dir("e/", 0o755)
        .symlink("d", "e")
        .file("d/y", b"y")
        .tar();
    apply_layer(&a.dest, &layer[..], TAR).unwrap();
    a.assert_untouched("symlink replacing a used dir");
    assert_eq!(fs::read(a.dest.join("e/y")).unwrap(), b"y");
    assert!(!a.dest.join("e/x").exists());
    assert!(fs::symlink_metadata(a.dest.join("d")).unwrap().is_symlink());
    // Replaced by a link out of dest: it resolves inside dest, where nothing is there,
    // so the entry is refused; the outside is untouched either way.
    let layer = Layer::new()
        .file("f/x", b"x")
        .symlink("f", &a.outside.display().to_string())
        .file("f/pwned", b"p")
        .tar();
    assert!(apply_layer(&a.dest, &layer[..], TAR).is_err());
    a.assert_untouched("absolute symlink replacing a used dir");

    // A file replacing a used directory: entries below it are errors.
    let t = tempfile::tempdir().unwrap();
    let layer = Layer::new()
        .file("d/x", b"x")
        .file("d", b"file now")
        .file("d/y", b"y")
        .tar();
    assert!(apply_layer(t.path(), &layer[..], TAR).is_err());
    assert_eq!(fs::read(t.path().join("d")).unwrap(), b"file now");

    // A whiteout removing a used directory: below it is now a whiteout device, not
    // the directory that was removed.
    let t = tempfile::tempdir().unwrap();
    let layer = Layer::new()
        .file("d/x", b"x")
        .file(".wh.d", b"")
        .file("d/y", b"y")
        .tar();
    assert!(apply_layer(t.path(), &layer[..], TAR).is_err());
    assert!(
        fs::symlink_metadata(t.path().join("d"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

/// Files larger than the applier's chunks and write buffer arrive whole; a bad entry
/// after a lot of data is an error (the decompressing side stops too).
#[test]
fn large_files_and_late_errors() {
    require_root();
    let mut big = Vec::with_capacity(5 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while big.len() < (5 << 20) + 123 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    let mk = || {
        Layer::new()
            .file("big", &big)
            .file("small", b"s")
            .file("big2", &big[..(1 << 20) + 1])
    };
    for (data, mt) in [(mk().gzip(), GZIP), (mk().zstd(), ZSTD), (mk().tar(), TAR)] {
        let t = tempfile::tempdir().unwrap();
        let got = apply_layer(t.path(), &data[..], mt).unwrap();
        assert_eq!(got.diff_id, Digest::sha256_of(&mk().tar()), "{mt}");
        assert!(fs::read(t.path().join("big")).unwrap() == big, "{mt}");
        assert!(fs::read(t.path().join("big2")).unwrap() == big[..(1 << 20) + 1]);
        assert_eq!(fs::read(t.path().join("small")).unwrap(), b"s");
    }
    let late = || mk().file("../escape", b"x").file("more", &big);
    for (data, mt) in [(late().gzip(), GZIP), (late().tar(), TAR)] {
        let t = tempfile::tempdir().unwrap();
        let r = apply_layer(t.path(), &data[..], mt);
        assert!(matches!(r, Err(ApplyError::BadPath { .. })), "{mt}: {r:?}");
    }
}

/// A file created in a set-gid directory gets the group its entry names, not the
/// directory's (the owner is only left alone when creation already set it).
#[test]
fn owner_in_a_setgid_directory() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("g");
    fs::create_dir(&g).unwrap();
    std::os::unix::fs::chown(&g, Some(0), Some(5)).unwrap();
    fs::set_permissions(&g, fs::Permissions::from_mode(0o2775)).unwrap();
    let layer = Layer::new()
        .file("g/f", b"f")
        .file_full("g/u", b"u", 0o600, 7, 8)
        .symlink("g/l", "f")
        .file("plain", b"p")
        .tar();
    apply_layer(t.path(), &layer[..], TAR).unwrap();
    let m = fs::metadata(g.join("f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    let m = fs::metadata(g.join("u")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (7, 8, 0o600));
    let m = fs::symlink_metadata(g.join("l")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    let m = fs::metadata(t.path().join("plain")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o644));
}
