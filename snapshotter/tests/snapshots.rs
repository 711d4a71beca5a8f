//! Root integration tests: the shared snapshotter suite against the library, with
//! real overlay and bind mounts, plus crash repair.

use std::fs;

use berth_snapshotter::snapshots::Snapshotter;
use berth_snapshotter::testsuite::CASES;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "snapshotter integration tests mount overlays and must run as root"
    );
}

#[test]
fn suite_against_library() {
    require_root();
    for (name, case) in CASES {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Snapshotter::open(dir.path().join("root")).expect("open snapshotter");
        let work = dir.path().join("work");
        fs::create_dir_all(&work).expect("work dir");
        eprintln!("case {name}");
        case(&s, &work);
    }
}

#[test]
fn open_removes_orphans_and_keeps_records() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    {
        let s = Snapshotter::open(&root).unwrap();
        s.prepare("k", None, Default::default()).unwrap();
        s.commit("c", "k", Default::default()).unwrap();
        s.prepare("a", Some("c"), Default::default()).unwrap();
    }
    // What a crash between mkdir and the transaction commit leaves behind.
    fs::create_dir_all(root.join("snapshots/999/fs/x")).unwrap();
    fs::create_dir_all(root.join("snapshots/junk")).unwrap();
    let s = Snapshotter::open(&root).unwrap();
    assert!(!root.join("snapshots/999").exists());
    assert!(!root.join("snapshots/junk").exists());
    assert_eq!(s.list().unwrap().len(), 2);
    let up = s.upper_dir("a").unwrap();
    assert!(up.is_dir());
    // ids keep increasing after a reopen, so a new snapshot never reuses a directory.
    s.prepare("b", Some("c"), Default::default()).unwrap();
    assert_ne!(s.upper_dir("b").unwrap(), up);
}
