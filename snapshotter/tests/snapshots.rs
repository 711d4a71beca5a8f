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

const CHILD_ENV: &str = "BERTH_TEST_SNAPSHOT_CHILD";
const PROGRESS: &str = "berth-snapshot-child-step";

/// As the child of `crash_at_any_point_is_repaired`: churn through prepare / write /
/// commit / view / remove forever, printing a line per step, until killed.
fn churn_forever(root: &str) -> ! {
    use std::io::Write;
    let s = Snapshotter::open(root).expect("child open");
    let start = s.list().expect("child list").len();
    let mut parent: Option<String> = s
        .list()
        .expect("child list")
        .into_iter()
        .filter(|i| i.kind == berth_snapshotter::Kind::Committed && i.name.starts_with("c-"))
        .map(|i| i.name)
        .max_by_key(|n| n.trim_start_matches("c-").parse::<u64>().unwrap_or(0));
    let mut out = std::io::stdout();
    for i in start as u64 * 1000.. {
        let key = format!("k-{i}");
        s.prepare(&key, parent.as_deref(), Default::default())
            .expect("prepare");
        fs::write(
            s.upper_dir(&key).expect("upper").join(format!("f{i}")),
            b"x",
        )
        .expect("write");
        let name = format!("c-{i}");
        s.commit(&name, &key, Default::default()).expect("commit");
        let view = format!("v-{i}");
        s.view(&view, Some(&name), Default::default())
            .expect("view");
        if i % 2 == 0 {
            s.remove(&view).expect("remove view");
        }
        parent = Some(name);
        writeln!(out, "{PROGRESS}")
            .and_then(|_| out.flush())
            .expect("progress");
    }
    unreachable!("the loop above never ends")
}

/// Check a reopened store: every record has its directory, no directory lacks a
/// record, every parent exists.
fn assert_consistent(root: &std::path::Path) {
    let s = Snapshotter::open(root).expect("reopen after kill -9");
    let infos = s.list().unwrap();
    let names: std::collections::HashSet<&str> = infos.iter().map(|i| i.name.as_str()).collect();
    for info in &infos {
        if let Some(p) = &info.parent {
            assert!(
                names.contains(p.as_str()),
                "{} has missing parent {p}",
                info.name
            );
        }
        for dir in s.parent_dirs(&info.name).unwrap() {
            assert!(
                dir.is_dir(),
                "{}: layer dir {} missing",
                info.name,
                dir.display()
            );
        }
        if info.kind == berth_snapshotter::Kind::Active {
            assert!(s.upper_dir(&info.name).unwrap().is_dir());
        }
    }
    let dirs = fs::read_dir(root.join("snapshots")).unwrap().count();
    assert_eq!(dirs, infos.len(), "orphan or missing snapshot directories");
}

/// kill -9 a process in the middle of snapshot operations, several times at varying
/// points; each reopen finds (after repair) a consistent store and work continues.
#[test]
fn crash_at_any_point_is_repaired() {
    if let Ok(root) = std::env::var(CHILD_ENV) {
        churn_forever(&root);
    }
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let exe = std::env::current_exe().unwrap();
    for round in 0..6usize {
        let mut child = std::process::Command::new(&exe)
            .args([
                "crash_at_any_point_is_repaired",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &root)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn churn child");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut steps = 0;
        // A different number of completed steps each round moves the kill point.
        while steps < 3 + round * 2 {
            let line = lines
                .next()
                .expect("child exited early")
                .expect("read child");
            if line.trim() == PROGRESS {
                steps += 1;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_consistent(&root);
    }
    let s = Snapshotter::open(&root).unwrap();
    assert!(
        s.list().unwrap().len() >= 6,
        "work accumulated across crashes"
    );
}
