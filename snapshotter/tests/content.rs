//! Content store fault tests with a real process killed by SIGKILL mid-ingest.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use berth_snapshotter::content::{ContentStore, Writer};
use berth_snapshotter::digest::Digest;

fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(31) % 251) as u8
}

const CHILD_ENV: &str = "BERTH_TEST_INGEST_CHILD";
/// What the child prints, on its own line, once its bytes are written.
const READY: &str = "berth-ingest-child-ready";

/// When this test binary was started as the writer child of `test`: start an ingest
/// of DIGEST (SIZE bytes) under ROOT, write the pattern up to byte N (from the resume offset), print
/// [`READY`], and wait to be killed (an interrupted pull). Never returns then.
fn act_as_child_if_asked(test: &str) {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(' ').collect();
    let [name, root, digest, size, n] = parts.as_slice() else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    if *name != test {
        return;
    }
    let (size, n): (u64, u64) = (size.parse().unwrap(), n.parse().unwrap());
    let store = ContentStore::open(root).unwrap();
    let Writer::Ingest(mut w) = store.writer(&digest.parse().unwrap(), Some(size)).unwrap() else {
        panic!("blob already exists");
    };
    // Continue an earlier interrupted ingest, as a restarted pull does.
    let data: Vec<u8> = (w.offset()..n).map(pattern).collect();
    w.write_all(&data).unwrap();
    w.flush().unwrap();
    println!("\n{READY}");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::park();
    }
}

/// Start this test binary again as the writer child of `test`, and wait for [`READY`].
fn spawn_writer(test: &str, root: &std::path::Path, digest: &Digest, size: u64, n: u64) -> Child {
    let exe: PathBuf = std::env::current_exe().expect("current exe");
    let mut child = Child(
        Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(
                CHILD_ENV,
                format!("{test} {} {digest} {size} {n}", root.display()),
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn writer child"),
    );
    let mut out = BufReader::new(child.0.stdout.take().expect("child stdout"));
    let mut line = String::new();
    loop {
        line.clear();
        let got = out.read_line(&mut line).expect("read child stdout");
        assert!(got > 0, "writer child exited before it was ready");
        if line.trim() == READY {
            break;
        }
    }
    child
}

/// Kill the child on drop, so a failing test leaves no process behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ingest_killed_then_resumed() {
    act_as_child_if_asked("ingest_killed_then_resumed");
    let t = tempfile::tempdir().unwrap();
    let size = 3_000_000u64;
    let data: Vec<u8> = (0..size).map(pattern).collect();
    let digest = Digest::sha256_of(&data);
    let store = ContentStore::open(t.path()).unwrap();
    for cut in [1_234_567u64, 2_999_999] {
        let mut child = spawn_writer("ingest_killed_then_resumed", t.path(), &digest, size, cut);
        // kill -9 while the ingest is open and holds the lock
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        assert!(!store.exists(&digest).unwrap(), "a partial blob is visible");
        let Writer::Ingest(mut w) = store.writer(&digest, Some(size)).unwrap() else {
            panic!("blob must not exist yet");
        };
        assert_eq!(w.offset(), cut, "resume offset");
        if cut == 2_999_999 {
            w.write_all(&data[cut as usize..]).unwrap();
            let info = w.commit().unwrap();
            assert_eq!(info.size, size);
        } else {
            // A second interruption, in-process this time: dropped without commit.
            drop(w);
        }
    }
    assert_eq!(store.read_all(&digest, size).unwrap(), data);
    assert!(store.ingests().unwrap().is_empty());
}

#[test]
fn killed_ingest_with_wrong_bytes_is_discarded() {
    act_as_child_if_asked("killed_ingest_with_wrong_bytes_is_discarded");
    let t = tempfile::tempdir().unwrap();
    let store = ContentStore::open(t.path()).unwrap();
    let size = 100_000u64;
    // The digest of other content: what the child writes cannot verify.
    let digest = Digest::sha256_of(&vec![0u8; size as usize]);
    let mut child = spawn_writer(
        "killed_ingest_with_wrong_bytes_is_discarded",
        t.path(),
        &digest,
        size,
        50_000,
    );
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let Writer::Ingest(mut w) = store.writer(&digest, Some(size)).unwrap() else {
        panic!("blob must not exist");
    };
    assert_eq!(w.offset(), 50_000);
    w.write_all(&vec![0u8; 50_000]).unwrap();
    assert!(
        w.commit().is_err(),
        "mismatching resumed content must not commit"
    );
    assert!(!store.exists(&digest).unwrap());
    assert!(store.ingests().unwrap().is_empty(), "nothing half-stored");
    assert!(store.list().unwrap().is_empty());
}
