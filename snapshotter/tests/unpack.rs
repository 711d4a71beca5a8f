//! Root integration tests: content store → unpack into overlay snapshots → mount and
//! run busybox; reuse of unpacked chains; diff_id mismatch; garbage collection.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::SystemTime;

use berth_snapshotter::content::{ContentStore, Writer};
use berth_snapshotter::digest::Digest;
use berth_snapshotter::gc;
use berth_snapshotter::images::ImageRecord;
use berth_snapshotter::meta::MetaStore;
use berth_snapshotter::snapshots::{Kind, Snapshotter};
use berth_snapshotter::testsuite::MountGuard;
use berth_snapshotter::unpack::{UnpackError, chain_ids, unpack_image};
use common::{Layer, busybox, require_root};

struct Env {
    t: tempfile::TempDir,
    content: ContentStore,
    snaps: Snapshotter,
    meta: MetaStore,
}

fn env() -> Env {
    let t = tempfile::tempdir().unwrap();
    let content = ContentStore::open(t.path().join("content")).unwrap();
    let snaps = Snapshotter::open(t.path().join("snapshots")).unwrap();
    let meta = MetaStore::open(t.path().join("meta.redb")).unwrap();
    Env {
        t,
        content,
        snaps,
        meta,
    }
}

/// Store a blob; returns (blob digest, media type, diff_id).
fn store(c: &ContentStore, tar: &[u8], blob: Vec<u8>, mt: &str) -> (Digest, String, Digest) {
    let d = Digest::sha256_of(&blob);
    match c.writer(&d, Some(blob.len() as u64)).unwrap() {
        Writer::Ingest(mut w) => {
            w.write_all(&blob).unwrap();
            w.commit().unwrap();
        }
        Writer::Exists(_) => {}
    }
    (d, mt.to_string(), Digest::sha256_of(tar))
}

fn three_layers(c: &ContentStore) -> Vec<(Digest, String, Digest)> {
    let bb = busybox();
    let l1 = || {
        Layer::new()
            .dir("bin/", 0o755)
            .file_full("bin/busybox", &bb, 0o755, 0, 0)
            .symlink("bin/sh", "busybox")
            .hardlink("bin/cat", "bin/busybox")
            .dir("etc/", 0o755)
            .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
            .dir("d/", 0o755)
            .file("d/old", b"old")
            .dir("tmp/", 0o1777)
    };
    let l2 = || {
        Layer::new()
            .file("etc/.wh.passwd", b"")
            .dir("d/", 0o755)
            .file("d/.wh..wh..opq", b"")
            .file("d/new", b"new")
    };
    // No "tmp/" entry: the applier must take /tmp's mode from the layer below.
    let l3 = || {
        Layer::new()
            .file("etc/motd", b"hello from layer 3\n")
            .file("tmp/x", b"x")
    };
    vec![
        store(
            c,
            &l1().tar(),
            l1().tar(),
            "application/vnd.oci.image.layer.v1.tar",
        ),
        store(
            c,
            &l2().tar(),
            l2().gzip(),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        store(
            c,
            &l3().tar(),
            l3().zstd(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    ]
}

fn split(v: &[(Digest, String, Digest)]) -> (Vec<(Digest, String)>, Vec<Digest>) {
    (
        v.iter().map(|(d, m, _)| (d.clone(), m.clone())).collect(),
        v.iter().map(|(_, _, i)| i.clone()).collect(),
    )
}

#[test]
fn unpack_mount_and_run_busybox() {
    require_root();
    let e = env();
    let (layers, diff_ids) = split(&three_layers(&e.content));
    let chain = unpack_image(&e.content, &e.snaps, &layers, &diff_ids).unwrap();
    assert_eq!(chain, chain_ids(&diff_ids)[2].to_string());
    assert_eq!(
        e.snaps.list().unwrap().len(),
        3,
        "one committed snapshot per layer, nothing active left"
    );

    // A container rootfs on top, mounted for real.
    let mounts = e
        .snaps
        .prepare("container", Some(&chain), BTreeMap::new())
        .unwrap();
    let work = e.t.path().join("mnt");
    let m = MountGuard::new(&mounts, &work, "rootfs");
    let root = m.path();
    assert!(
        !root.join("etc/passwd").exists(),
        "whiteout must hide etc/passwd"
    );
    assert!(!root.join("d/old").exists(), "opaque dir must hide d/old");
    assert_eq!(fs::read(root.join("d/new")).unwrap(), b"new");
    let tmp = fs::metadata(root.join("tmp")).unwrap();
    assert_eq!(
        tmp.permissions().mode() & 0o7777,
        0o1777,
        "implied dir keeps the lower mode"
    );
    assert_eq!(fs::read(root.join("tmp/x")).unwrap(), b"x");
    let out = Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", "cat /etc/motd; echo ok > /written"])
        .output()
        .expect("run chroot");
    assert!(out.status.success(), "busybox in rootfs failed: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from layer 3\n");
    assert!(root.join("written").exists());
    drop(m);
    // The write went to the container's upper dir, not to the image layers.
    assert!(
        e.snaps
            .upper_dir("container")
            .unwrap()
            .join("written")
            .exists()
    );

    // Unpacking again reuses every layer.
    let again = unpack_image(&e.content, &e.snaps, &layers, &diff_ids).unwrap();
    assert_eq!(again, chain);
    assert_eq!(e.snaps.list().unwrap().len(), 4);
}

#[test]
fn diff_id_mismatch_leaves_no_snapshot() {
    require_root();
    let e = env();
    let (layers, mut diff_ids) = split(&three_layers(&e.content));
    diff_ids[1] = Digest::sha256_of(b"not this layer");
    let err = unpack_image(&e.content, &e.snaps, &layers, &diff_ids).unwrap_err();
    assert!(matches!(err, UnpackError::DiffIdMismatch { .. }), "{err}");
    let snaps = e.snaps.list().unwrap();
    assert_eq!(
        snaps.len(),
        1,
        "only the verified base layer stays: {snaps:?}"
    );
    assert_eq!(snaps[0].kind, Kind::Committed);
    // Orphan directories were removed with the active snapshot.
    assert_eq!(
        fs::read_dir(e.snaps.root().join("snapshots"))
            .unwrap()
            .count(),
        1
    );

    // Missing blob and count mismatch are errors too.
    let missing = vec![(
        Digest::sha256_of(b"absent"),
        "application/vnd.oci.image.layer.v1.tar".to_string(),
    )];
    assert!(matches!(
        unpack_image(&e.content, &e.snaps, &missing, &[Digest::sha256_of(b"x")]),
        Err(UnpackError::Content(_))
    ));
    assert!(matches!(
        unpack_image(&e.content, &e.snaps, &layers, &[]),
        Err(UnpackError::LayerCount { .. })
    ));
}

#[test]
fn gc_removes_what_no_image_uses() {
    require_root();
    let e = env();
    let l = three_layers(&e.content);
    let (layers, diff_ids) = split(&l);
    let chain = unpack_image(&e.content, &e.snaps, &layers, &diff_ids).unwrap();
    let config = Digest::sha256_of(b"{}");
    e.content.put_bytes(&config, b"{}").unwrap();
    let manifest = Digest::sha256_of(b"manifest");
    e.content.put_bytes(&manifest, b"manifest").unwrap();
    let junk = Digest::sha256_of(b"junk");
    e.content.put_bytes(&junk, b"junk").unwrap();
    let rec = ImageRecord {
        name: "example.com/img:1".into(),
        target: manifest.clone(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        config: config.clone(),
        layers: layers.iter().map(|(d, _)| d.clone()).collect(),
        diff_ids: diff_ids.clone(),
        chain_id: chain.clone(),
        size: 0,
        created: SystemTime::now(),
        labels: BTreeMap::new(),
    };
    e.meta.put_image(&rec).unwrap();
    // An unrelated committed snapshot nothing uses.
    e.snaps.prepare("k", None, BTreeMap::new()).unwrap();
    e.snaps.commit("stray", "k", BTreeMap::new()).unwrap();

    let r = gc::collect(&e.meta, &e.content, &e.snaps).unwrap();
    assert_eq!(r.blobs_removed, vec![junk]);
    assert_eq!(r.snapshots_removed, ["stray"]);
    assert_eq!(e.content.list().unwrap().len(), 5);

    // A running container keeps its image's layers after the image is deleted.
    e.snaps
        .prepare("ctr", Some(&chain), BTreeMap::new())
        .unwrap();
    e.meta.delete_image(&rec.name).unwrap();
    let r = gc::collect(&e.meta, &e.content, &e.snaps).unwrap();
    assert_eq!(r.blobs_removed.len(), 5);
    assert!(r.snapshots_removed.is_empty());
    e.snaps.remove("ctr").unwrap();
    let r = gc::collect(&e.meta, &e.content, &e.snaps).unwrap();
    assert_eq!(r.snapshots_removed.len(), 3);
    assert!(e.snaps.list().unwrap().is_empty());
    assert!(e.content.list().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(e.snaps.root().join("snapshots"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn concurrent_unpacks_share_layers() {
    require_root();
    let e = env();
    let (layers, diff_ids) = split(&three_layers(&e.content));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (content, snaps) = (e.content.clone(), e.snaps.clone());
            let (layers, diff_ids) = (layers.clone(), diff_ids.clone());
            std::thread::spawn(move || unpack_image(&content, &snaps, &layers, &diff_ids))
        })
        .collect();
    let chains: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert_eq!(chains[0], chains[1]);
    let snaps = e.snaps.list().unwrap();
    assert_eq!(
        snaps.len(),
        3,
        "one snapshot per layer, no leftovers: {snaps:?}"
    );
    assert!(snaps.iter().all(|s| s.kind == Kind::Committed));
    assert_eq!(
        fs::read_dir(e.snaps.root().join("snapshots"))
            .unwrap()
            .count(),
        3
    );
}
