//! The snapshotter test suite, as containerd's `core/snapshots/testsuite`: each case
//! is a function taking a fresh, empty snapshotter and a scratch directory, so the
//! same cases run against the library and against a snapshotter served over gRPC.
//! The cases mount for real (they need root) and panic with a message on failure.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::mount::{mount_all, unmount};
use crate::snapshots::{Kind, Mount, SnapshotError, Snapshots};

/// One named case.
pub type Case = (&'static str, fn(&dyn Snapshots, &Path));

/// Every case of the suite.
pub const CASES: &[Case] = &[
    ("commit_and_view_layers", commit_and_view_layers),
    (
        "deletes_and_opaque_dirs_through_overlay",
        deletes_and_opaque_dirs_through_overlay,
    ),
    ("stat_kinds_and_parents", stat_kinds_and_parents),
    ("errors_match_containerd", errors_match_containerd),
    ("remove_respects_children", remove_respects_children),
    ("update_labels", update_labels),
    (
        "usage_counts_bytes_and_inodes",
        usage_counts_bytes_and_inodes,
    ),
    (
        "single_layer_view_is_readonly",
        single_layer_view_is_readonly,
    ),
    ("long_chain_mounts", long_chain_mounts),
];

/// A mount on a scratch directory, unmounted (lazily) on drop even if a case panics.
pub struct MountGuard {
    target: PathBuf,
    mounted: bool,
}

impl MountGuard {
    /// Mount `mounts` on a new directory `work/name`.
    pub fn new(mounts: &[Mount], work: &Path, name: &str) -> MountGuard {
        let target = work.join(name);
        fs::create_dir_all(&target).expect("create mount target");
        mount_all(mounts, &target).unwrap_or_else(|e| panic!("mount {mounts:?}: {e}"));
        MountGuard {
            target,
            mounted: true,
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Unmount now.
    pub fn unmount(mut self) {
        unmount(&self.target).expect("unmount");
        self.mounted = false;
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn no_labels() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// Prepare `key` on `parent`, let `f` change its files, commit it as `name`.
fn layer(s: &dyn Snapshots, work: &Path, name: &str, parent: Option<&str>, f: impl FnOnce(&Path)) {
    let key = format!("{name}-active");
    let mounts = s.prepare(&key, parent, no_labels()).expect("prepare");
    let m = MountGuard::new(&mounts, work, &key);
    f(m.path());
    m.unmount();
    s.commit(name, &key, no_labels()).expect("commit");
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Files written in a layer appear in views and in layers on top of it.
pub fn commit_and_view_layers(s: &dyn Snapshots, work: &Path) {
    layer(s, work, "base", None, |root| {
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/hostname"), "base\n").unwrap();
        fs::write(root.join("a"), "a\n").unwrap();
    });
    layer(s, work, "top", Some("base"), |root| {
        assert_eq!(read(&root.join("etc/hostname")), "base\n");
        fs::write(root.join("etc/hostname"), "top\n").unwrap();
        fs::write(root.join("b"), "b\n").unwrap();
    });
    let v = s.view("v", Some("top"), no_labels()).expect("view");
    assert_eq!(
        v[0].kind, "overlay",
        "view of two layers is an overlay: {v:?}"
    );
    let m = MountGuard::new(&v, work, "v");
    assert_eq!(read(&m.path().join("etc/hostname")), "top\n");
    assert_eq!(read(&m.path().join("a")), "a\n");
    assert_eq!(read(&m.path().join("b")), "b\n");
    let err = fs::write(m.path().join("c"), "x").expect_err("view must be read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    drop(m);
    // The committed base is unchanged by the layer above it.
    let v = s
        .view("vbase", Some("base"), no_labels())
        .expect("view base");
    let m = MountGuard::new(&v, work, "vbase");
    assert_eq!(read(&m.path().join("etc/hostname")), "base\n");
    assert!(!m.path().join("b").exists());
}

/// Deleting a file and replacing a directory in an upper layer hide the lower ones.
pub fn deletes_and_opaque_dirs_through_overlay(s: &dyn Snapshots, work: &Path) {
    layer(s, work, "l1", None, |root| {
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/old"), "old").unwrap();
        fs::write(root.join("gone"), "x").unwrap();
    });
    layer(s, work, "l2", Some("l1"), |root| {
        fs::remove_file(root.join("gone")).unwrap();
        fs::remove_dir_all(root.join("d")).unwrap();
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("d/new"), "new").unwrap();
    });
    let v = s.view("v", Some("l2"), no_labels()).expect("view");
    let m = MountGuard::new(&v, work, "v");
    assert!(!m.path().join("gone").exists(), "deleted file visible");
    assert!(
        !m.path().join("d/old").exists(),
        "replaced dir leaks old entries"
    );
    assert_eq!(read(&m.path().join("d/new")), "new");
}

/// Kinds, parents and names through the life cycle.
pub fn stat_kinds_and_parents(s: &dyn Snapshots, work: &Path) {
    s.prepare("k", None, no_labels()).expect("prepare");
    assert_eq!(s.stat("k").unwrap().kind, Kind::Active);
    s.commit("c", "k", no_labels()).expect("commit");
    assert!(matches!(s.stat("k"), Err(SnapshotError::NotFound(_))));
    let c = s.stat("c").unwrap();
    assert_eq!((c.kind, c.parent), (Kind::Committed, None));
    s.view("v", Some("c"), no_labels()).expect("view");
    let v = s.stat("v").unwrap();
    assert_eq!((v.kind, v.parent.as_deref()), (Kind::View, Some("c")));
    s.prepare("a", Some("c"), no_labels())
        .expect("prepare on c");
    assert_eq!(s.stat("a").unwrap().parent.as_deref(), Some("c"));
    let names: Vec<String> = s.list().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["a", "c", "v"]);
    let _ = work;
}

/// Error kinds as containerd's errdefs.
pub fn errors_match_containerd(s: &dyn Snapshots, _work: &Path) {
    s.prepare("k", None, no_labels()).unwrap();
    assert!(matches!(
        s.prepare("k", None, no_labels()),
        Err(SnapshotError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.prepare("x", Some("nope"), no_labels()),
        Err(SnapshotError::NotFound(_))
    ));
    assert!(matches!(
        s.prepare("x", Some("k"), no_labels()),
        Err(SnapshotError::FailedPrecondition { .. })
    ));
    assert!(matches!(
        s.prepare("", None, no_labels()),
        Err(SnapshotError::InvalidKey(_))
    ));
    s.prepare("k2", None, no_labels()).unwrap();
    s.commit("c", "k2", no_labels()).unwrap();
    assert!(matches!(
        s.commit("c", "k", no_labels()),
        Err(SnapshotError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.mounts("c"),
        Err(SnapshotError::FailedPrecondition { .. })
    ));
    s.view("v", Some("c"), no_labels()).unwrap();
    assert!(matches!(
        s.commit("c2", "v", no_labels()),
        Err(SnapshotError::FailedPrecondition { .. })
    ));
    assert!(matches!(
        s.remove("missing"),
        Err(SnapshotError::NotFound(_))
    ));
    assert!(matches!(s.stat("missing"), Err(SnapshotError::NotFound(_))));
    // A failed operation changed nothing.
    assert_eq!(s.list().unwrap().len(), 3);
}

/// A committed parent cannot go while children exist.
pub fn remove_respects_children(s: &dyn Snapshots, _work: &Path) {
    s.prepare("k", None, no_labels()).unwrap();
    s.commit("p", "k", no_labels()).unwrap();
    s.prepare("child", Some("p"), no_labels()).unwrap();
    assert!(matches!(
        s.remove("p"),
        Err(SnapshotError::FailedPrecondition { .. })
    ));
    s.remove("child").unwrap();
    s.remove("p").unwrap();
    assert!(s.list().unwrap().is_empty());
}

/// Labels given at creation and replaced by update.
pub fn update_labels(s: &dyn Snapshots, _work: &Path) {
    let l = BTreeMap::from([("a".to_string(), "1".to_string())]);
    s.prepare("k", None, l.clone()).unwrap();
    assert_eq!(s.stat("k").unwrap().labels, l);
    let l2 = BTreeMap::from([("b".to_string(), "2".to_string())]);
    let info = s.update("k", l2.clone()).unwrap();
    assert_eq!(info.labels, l2);
    assert_eq!(s.stat("k").unwrap().labels, l2);
    assert!(s.stat("k").unwrap().updated >= s.stat("k").unwrap().created);
    assert!(matches!(
        s.update("zz", l2),
        Err(SnapshotError::NotFound(_))
    ));
}

/// Usage reports what a layer holds, measured live and kept at commit.
pub fn usage_counts_bytes_and_inodes(s: &dyn Snapshots, work: &Path) {
    let mounts = s.prepare("k", None, no_labels()).unwrap();
    let empty = s.usage("k").unwrap();
    let m = MountGuard::new(&mounts, work, "k");
    fs::write(m.path().join("big"), vec![1u8; 1 << 20]).unwrap();
    fs::create_dir(m.path().join("d")).unwrap();
    m.unmount();
    let u = s.usage("k").unwrap();
    assert!(u.size >= empty.size + (1 << 20), "{u:?} vs {empty:?}");
    assert_eq!(u.inodes, empty.inodes + 2, "{u:?} vs {empty:?}");
    s.commit("c", "k", no_labels()).unwrap();
    assert_eq!(s.usage("c").unwrap(), u);
}

/// A view of one layer is a read-only bind mount of it.
pub fn single_layer_view_is_readonly(s: &dyn Snapshots, work: &Path) {
    layer(s, work, "one", None, |root| {
        fs::write(root.join("f"), "1").unwrap()
    });
    let v = s.view("v", Some("one"), no_labels()).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].kind, "bind");
    assert!(v[0].options.iter().any(|o| o == "ro"), "{v:?}");
    let m = MountGuard::new(&v, work, "v");
    assert_eq!(read(&m.path().join("f")), "1");
    let err = fs::write(m.path().join("f"), "2").expect_err("ro bind");
    assert_eq!(err.kind(), ErrorKind::ReadOnlyFilesystem, "{err}");
}

/// A chain longer than one mount data page (150 layers) still mounts, active and view.
pub fn long_chain_mounts(s: &dyn Snapshots, work: &Path) {
    const N: usize = 150;
    let mut parent: Option<String> = None;
    for i in 0..N {
        let key = format!("active-{i}");
        s.prepare(&key, parent.as_deref(), no_labels()).unwrap();
        let name = format!("layer-{i}");
        // Mounting every layer would only slow the case; write a file every 50.
        let mounts = s.mounts(&key).unwrap();
        if i % 50 == 0 || i == N - 1 {
            let m = MountGuard::new(&mounts, work, &key);
            fs::write(m.path().join(format!("f{i}")), i.to_string()).unwrap();
            m.unmount();
        }
        s.commit(&name, &key, no_labels()).unwrap();
        parent = Some(name);
    }
    let v = s.view("v", parent.as_deref(), no_labels()).unwrap();
    let opts: usize = v[0].options.iter().map(|o| o.len() + 1).sum();
    assert!(
        opts > 4096,
        "chain should overflow one page, got {opts} bytes"
    );
    let m = MountGuard::new(&v, work, "v");
    for i in [0, 50, 100, N - 1] {
        assert_eq!(read(&m.path().join(format!("f{i}"))), i.to_string());
    }
    drop(m);
    let a = s.prepare("top", parent.as_deref(), no_labels()).unwrap();
    let m = MountGuard::new(&a, work, "top");
    fs::write(m.path().join("new"), "x").unwrap();
    assert_eq!(read(&m.path().join("f0")), "0");
}
