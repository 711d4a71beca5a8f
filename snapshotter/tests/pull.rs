//! Registry pulls end to end, as root: against the real local registries that
//! scripts/registry.sh starts (holding the fixture images `berth-conformance images push`
//! uploaded), and against a hostile HTTP server written here that serves garbage, 500s,
//! wrong digests, truncated and slow blobs.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_snapshotter::digest::Digest;
use berth_snapshotter::pull::{PullError, PullHook, PullOptions, PullStage, Stores, pull};
use berth_snapshotter::remote::{Credentials, Platform, RemoteError, RetryPolicy};
use berth_snapshotter::snapshots::Kind;
use berth_snapshotter::{ContentStore, MetaStore, Snapshotter};
use serde_json::json;

// ---------------------------------------------------------------- helpers

struct Env {
    _dir: tempfile::TempDir,
    stores: Stores,
}

fn open_stores(root: &Path) -> Stores {
    Stores {
        content: Arc::new(ContentStore::open(root.join("content")).unwrap()),
        snapshotter: Arc::new(Snapshotter::open(root.join("snapshots")).unwrap()),
        meta: MetaStore::open(root.join("meta.redb")).unwrap(),
    }
}

fn env() -> Env {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let stores = open_stores(dir.path());
    Env { _dir: dir, stores }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn registry_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run `eval \"$(scripts/registry.sh start)\"` and push the fixtures \
             with `berth-conformance images push` first"
        )
    })
}

/// Every committed blob hashes to its name, and no ingest became a blob.
fn assert_store_consistent(content: &ContentStore) {
    for b in content.list().unwrap() {
        let mut f = content.open_blob(&b.digest).unwrap();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        assert_eq!(
            Digest::of(b.digest.algorithm(), &data),
            b.digest,
            "visible blob does not match its digest"
        );
    }
}

/// Mounts a read-only view of `chain_id` and runs `check` on its root.
fn with_rootfs(stores: &Stores, chain_id: &str, check: impl FnOnce(&Path)) {
    let key = format!("view-{}", std::process::id());
    let mounts = stores
        .snapshotter
        .view(&key, Some(chain_id), BTreeMap::new())
        .unwrap();
    let target = tempfile::tempdir().unwrap();
    berth_snapshotter::mount::mount_all(&mounts, target.path()).unwrap();
    struct Guard<'a>(&'a Path, &'a Stores, String);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            let _ = berth_snapshotter::mount::unmount(self.0);
            let _ = self.1.snapshotter.remove(&self.2);
        }
    }
    let _g = Guard(target.path(), stores, key);
    check(target.path());
}

// ---------------------------------------------------------------- real registry

#[test]
fn pulls_fixture_images_from_the_local_registry() {
    let reg = registry_env("BERTH_TEST_REGISTRY");
    let e = env();
    let rt = rt();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = PullOptions {
        retry: fast_retry(),
        progress: Some(tx),
        ..PullOptions::default()
    };
    let rec = rt
        .block_on(pull(
            &e.stores,
            &format!("{reg}/berth/layers:latest"),
            &opts,
        ))
        .unwrap();
    assert_eq!(rec.name, format!("{reg}/berth/layers:latest"));
    assert_eq!(rec.layers.len(), 3);
    assert_eq!(rec.diff_ids.len(), 3);
    assert_eq!(
        e.stores.snapshotter.stat(&rec.chain_id).unwrap().kind,
        Kind::Committed
    );
    assert_eq!(
        e.stores.meta.get_image(&rec.name).unwrap(),
        Some(rec.clone())
    );
    let mut events = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        events.push(ev);
    }
    assert!(matches!(
        events.first(),
        Some(berth_snapshotter::remote::Progress::Resolved { .. })
    ));
    assert!(matches!(
        events.last(),
        Some(berth_snapshotter::remote::Progress::Done)
    ));
    with_rootfs(&e.stores, &rec.chain_id, |root| {
        let d = root.join("data");
        assert_eq!(std::fs::read_to_string(d.join("keep")).unwrap(), "keep\n");
        assert_eq!(
            std::fs::read_to_string(d.join("dir-to-file")).unwrap(),
            "now a file\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("l3link")).unwrap(),
            "layer three\n"
        );
        assert!(!d.join("remove-me").exists());
        let names: Vec<_> = std::fs::read_dir(d.join("opaque"))
            .unwrap()
            .map(|x| x.unwrap().file_name())
            .collect();
        assert_eq!(names, ["new"]);
        assert_eq!(
            std::fs::read(root.join("bin/busybox")).unwrap(),
            std::fs::read("/bin/busybox").unwrap()
        );
    });

    // zstd layer, Docker schema2, and an index narrowed to amd64 and to arm64/v8.
    for img in ["zstd", "docker-schema2", "multiarch"] {
        let rec = rt
            .block_on(pull(&e.stores, &format!("{reg}/berth/{img}"), &opts))
            .unwrap_or_else(|err| panic!("{img}: {err}"));
        assert!(!rec.layers.is_empty(), "{img}");
    }
    let amd = e
        .stores
        .meta
        .get_image(&format!("{reg}/berth/multiarch:latest"))
        .unwrap()
        .unwrap();
    assert_eq!(amd.media_type, "application/vnd.oci.image.index.v1+json");
    let mut arm_opts = opts.clone();
    arm_opts.platform = Platform::parse("linux/arm64").unwrap();
    let e2 = env();
    let arm = rt
        .block_on(pull(
            &e2.stores,
            &format!("{reg}/berth/multiarch:latest"),
            &arm_opts,
        ))
        .unwrap();
    assert_ne!(arm.config, amd.config, "arm64 entry has its own config");
    let cfg = e2.stores.content.read_all(&arm.config, 1 << 20).unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
    assert_eq!(cfg["architecture"], "arm64");
    // GC keeps everything an image uses, including the index's platform manifest.
    let before = e.stores.content.list().unwrap().len();
    let report =
        berth_snapshotter::gc::collect(&e.stores.meta, &e.stores.content, &e.stores.snapshotter)
            .unwrap();
    assert!(report.blobs_removed.is_empty(), "{report:?}");
    assert!(report.snapshots_removed.is_empty(), "{report:?}");
    assert_eq!(e.stores.content.list().unwrap().len(), before);
    // by digest
    let by_digest = rt
        .block_on(pull(
            &e.stores,
            &format!("{reg}/berth/multiarch@{}", amd.target),
            &opts,
        ))
        .unwrap();
    assert_eq!(by_digest.chain_id, amd.chain_id);
    assert_store_consistent(&e.stores.content);
    // Once every image is deleted, GC removes all blobs and snapshots the pulls made.
    for rec in e.stores.meta.list_images().unwrap() {
        assert!(e.stores.meta.delete_image(&rec.name).unwrap());
    }
    berth_snapshotter::gc::collect(&e.stores.meta, &e.stores.content, &e.stores.snapshotter)
        .unwrap();
    assert!(e.stores.content.list().unwrap().is_empty());
    assert!(e.stores.snapshotter.list().unwrap().is_empty());
}

/// Every blob an image names is stored and verified, and its chain is committed.
fn assert_image_intact(stores: &Stores, rec: &berth_snapshotter::ImageRecord) {
    let mut blobs = vec![rec.target.clone(), rec.config.clone()];
    blobs.extend(rec.layers.iter().cloned());
    for d in &blobs {
        assert!(
            stores.content.open_blob(d).is_ok(),
            "{}: blob {d} is gone",
            rec.name
        );
    }
    assert_store_consistent(&stores.content);
    assert_eq!(
        stores.snapshotter.stat(&rec.chain_id).unwrap().kind,
        Kind::Committed,
        "{}",
        rec.name
    );
    with_rootfs(stores, &rec.chain_id, |root| {
        assert_eq!(
            std::fs::read(root.join("bin/busybox")).unwrap(),
            std::fs::read("/bin/busybox").unwrap()
        );
    });
}

/// A garbage collection at the worst point of a pull (every blob stored and layer
/// unpacked, no image record yet) keeps all of the pull's work but still removes what
/// nothing uses; once the image is gone, a collection removes everything.
#[test]
fn gc_between_unpack_and_image_record_keeps_the_pull() {
    let reg = registry_env("BERTH_TEST_REGISTRY");
    let e = env();
    let rt = rt();
    let orphan = e
        .stores
        .content
        .put_bytes(&Digest::sha256_of(b"nothing uses me"), b"nothing uses me");
    assert!(orphan.is_ok(), "{orphan:?}");
    let reports = Arc::new(Mutex::new(Vec::new()));
    let stores = e.stores.clone();
    let seen = reports.clone();
    let hook = PullHook(Arc::new(move |stage| {
        assert_eq!(stage, PullStage::Unpacked);
        let r = berth_snapshotter::gc::collect(&stores.meta, &stores.content, &stores.snapshotter)
            .expect("gc during the pull");
        seen.lock().unwrap().push(r);
    }));
    let opts = PullOptions {
        retry: fast_retry(),
        hook: Some(hook),
        ..PullOptions::default()
    };
    // An index (its platform manifest is referenced only by a label written at the end)
    // and a multi-layer image.
    for img in ["multiarch", "layers"] {
        let rec = rt
            .block_on(pull(&e.stores, &format!("{reg}/berth/{img}:latest"), &opts))
            .unwrap_or_else(|err| panic!("{img}: {err}"));
        assert_image_intact(&e.stores, &rec);
    }
    let reports = reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 2, "the hook ran once per pull");
    assert_eq!(
        reports[0].blobs_removed,
        vec![Digest::sha256_of(b"nothing uses me")],
        "the collection ran and removed only the orphan"
    );
    assert!(reports[0].snapshots_removed.is_empty(), "{reports:?}");
    assert!(reports[1].blobs_removed.is_empty(), "{reports:?}");
    assert!(reports[1].snapshots_removed.is_empty(), "{reports:?}");

    // After the pulls, a collection keeps both images and removes what is unreferenced.
    let r =
        berth_snapshotter::gc::collect(&e.stores.meta, &e.stores.content, &e.stores.snapshotter)
            .unwrap();
    assert!(
        r.blobs_removed.is_empty() && r.snapshots_removed.is_empty(),
        "{r:?}"
    );
    assert!(
        e.stores
            .meta
            .delete_image(&format!("{reg}/berth/layers:latest"))
            .unwrap()
    );
    let r =
        berth_snapshotter::gc::collect(&e.stores.meta, &e.stores.content, &e.stores.snapshotter)
            .unwrap();
    assert!(!r.blobs_removed.is_empty(), "the deleted image's blobs go");
    assert!(
        !r.snapshots_removed.is_empty(),
        "the deleted image's chain goes"
    );
    let left = e.stores.meta.list_images().unwrap();
    assert_eq!(left.len(), 1);
    assert_image_intact(&e.stores, &left[0]);
    assert!(e.stores.meta.delete_image(&left[0].name).unwrap());
    berth_snapshotter::gc::collect(&e.stores.meta, &e.stores.content, &e.stores.snapshotter)
        .unwrap();
    assert!(e.stores.content.list().unwrap().is_empty());
    assert!(e.stores.snapshotter.list().unwrap().is_empty());
}

/// Collections running back to back on another thread for the whole of several pulls
/// never take anything a pull needs: each pull completes and its image is intact.
#[test]
fn gc_running_throughout_pulls_keeps_them_intact() {
    let reg = registry_env("BERTH_TEST_REGISTRY");
    let e = env();
    let rt = rt();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stores, stop2) = (e.stores.clone(), stop.clone());
    let collector = std::thread::spawn(move || {
        let mut runs = 0u32;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            berth_snapshotter::gc::collect(&stores.meta, &stores.content, &stores.snapshotter)
                .expect("gc during pulls");
            runs += 1;
        }
        runs
    });
    let opts = PullOptions {
        retry: fast_retry(),
        ..PullOptions::default()
    };
    let mut recs = Vec::new();
    for img in ["layers", "zstd", "multiarch", "docker-schema2", "layers"] {
        let rec = rt
            .block_on(pull(&e.stores, &format!("{reg}/berth/{img}:latest"), &opts))
            .unwrap_or_else(|err| panic!("{img}: {err}"));
        recs.push(rec);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = collector.join().expect("collector thread");
    assert!(runs > 0);
    for rec in &recs {
        assert_image_intact(&e.stores, rec);
    }
}

#[test]
fn pulls_from_the_token_auth_registry_only_with_credentials() {
    let reg = registry_env("BERTH_TEST_AUTH_REGISTRY");
    let creds = registry_env("BERTH_TEST_AUTH_CREDS");
    let (user, pass) = creds
        .split_once(':')
        .expect("BERTH_TEST_AUTH_CREDS is user:password");
    let e = env();
    let rt = rt();
    let image = format!("{reg}/berth/busybox:latest");
    let anon = rt
        .block_on(pull(
            &e.stores,
            &image,
            &PullOptions {
                retry: fast_retry(),
                ..Default::default()
            },
        ))
        .unwrap_err();
    assert!(anon.to_string().contains("401"), "{anon}");
    assert!(anon.is_unauthorized(), "{anon}");
    let wrong = PullOptions {
        retry: fast_retry(),
        credentials: Credentials::Basic {
            username: user.into(),
            password: "wrong".into(),
        },
        ..Default::default()
    };
    let err = rt.block_on(pull(&e.stores, &image, &wrong)).unwrap_err();
    assert!(err.to_string().contains("token endpoint"), "{err}");
    assert!(e.stores.content.list().unwrap().is_empty());
    let good = PullOptions {
        retry: fast_retry(),
        credentials: Credentials::Basic {
            username: user.into(),
            password: pass.into(),
        },
        ..Default::default()
    };
    let rec = rt.block_on(pull(&e.stores, &image, &good)).unwrap();
    assert_eq!(rec.layers.len(), 1);

    // kubelet's identity token: exchanged at the realm by the OAuth2 refresh-token POST.
    let refresh = registry_env("BERTH_TEST_AUTH_REFRESH_TOKEN");
    let e2 = env();
    let identity = PullOptions {
        retry: fast_retry(),
        credentials: Credentials::IdentityToken(refresh),
        ..Default::default()
    };
    let rec2 = rt.block_on(pull(&e2.stores, &image, &identity)).unwrap();
    assert_eq!(rec2.target, rec.target);
    let bad_identity = PullOptions {
        retry: fast_retry(),
        credentials: Credentials::IdentityToken("wrong".into()),
        ..Default::default()
    };
    let e3 = env();
    let err = rt
        .block_on(pull(&e3.stores, &image, &bad_identity))
        .unwrap_err();
    assert!(err.to_string().contains("token endpoint"), "{err}");
    // A registry token (bearer) that is garbage is refused by the registry itself.
    let bad_bearer = PullOptions {
        retry: fast_retry(),
        credentials: Credentials::RegistryToken("not-a-jwt".into()),
        ..Default::default()
    };
    let err = rt
        .block_on(pull(&e3.stores, &image, &bad_bearer))
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    assert!(e3.stores.content.list().unwrap().is_empty());
}

// ---------------------------------------------------------------- hostile server

/// One test image built in memory.
#[derive(Clone)]
struct TestImage {
    blobs: HashMap<String, Vec<u8>>,
    manifest: Vec<u8>,
    manifest_digest: Digest,
    layer_digest: Digest,
    config_digest: Digest,
}

fn test_image(layer_bytes: usize, corrupt_diff_id: bool) -> TestImage {
    test_image_layers(1, layer_bytes, corrupt_diff_id)
}

/// An image of `count` layers of about `layer_bytes` each; `layer_digest` is the top one
/// (the one the hostile modes damage).
fn test_image_layers(count: usize, layer_bytes: usize, corrupt_diff_id: bool) -> TestImage {
    let mut blobs = HashMap::new();
    let mut diff_ids = Vec::new();
    let mut descs = Vec::new();
    let mut layer_digest = None;
    for n in 0..count {
        // Deterministic incompressible content so the blob is about layer_bytes long.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (n as u64 + 1);
        let data: Vec<u8> = (0..layer_bytes)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let tar = common::Layer::new()
            .dir("d", 0o755)
            .file(&format!("d/data{n}"), &data)
            .tar();
        let diff_id = if corrupt_diff_id && n + 1 == count {
            Digest::sha256_of(b"not the layer")
        } else {
            Digest::sha256_of(&tar)
        };
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let layer = gz.finish().unwrap();
        let d = Digest::sha256_of(&layer);
        diff_ids.push(diff_id.to_string());
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": layer.len()}));
        blobs.insert(d.to_string(), layer);
        layer_digest = Some(d);
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = Digest::sha256_of(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let manifest_digest = Digest::sha256_of(&manifest);
    blobs.insert(config_digest.to_string(), config);
    TestImage {
        blobs,
        manifest,
        manifest_digest,
        layer_digest: layer_digest.expect("at least one layer"),
        config_digest,
    }
}

/// What the hostile server does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Behave.
    Good,
    /// Manifest body is not JSON.
    GarbageManifest,
    /// Manifest served with a Docker-Content-Digest that does not match.
    WrongManifestDigest,
    /// Every request answers 500.
    Always500,
    /// The first two requests of each path answer 500, then behave.
    Flaky500,
    /// Blobs always stop halfway (Content-Length promises the whole).
    Truncate,
    /// The first GET of the layer stops halfway; Range requests are honoured.
    TruncateOnceThenRange,
    /// The layer blob's bytes are replaced by other bytes of the same length.
    CorruptLayer,
    /// Blobs are sent slowly (16 KiB per 5 ms).
    Slow,
}

/// Requests seen: (path, Range start).
type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

struct Hostile {
    addr: String,
    log: RequestLog,
}

impl Hostile {
    fn start(img: TestImage, mode: Mode) -> Hostile {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let counts = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let (img, log, counts) = (img.clone(), log2.clone(), counts.clone());
                std::thread::spawn(move || {
                    let _ = serve(c, &img, mode, &log, &counts);
                });
            }
        });
        Hostile { addr, log }
    }

    fn gets_of(&self, path_suffix: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.ends_with(path_suffix))
            .count()
    }
}

fn serve(
    c: TcpStream,
    img: &TestImage,
    mode: Mode,
    log: &RequestLog,
    counts: &Mutex<HashMap<String, u32>>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(c.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut range = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = v
                .trim()
                .strip_prefix("bytes=")
                .and_then(|s| s.trim_end_matches('-').parse::<usize>().ok());
        }
    }
    log.lock()
        .unwrap()
        .push((path.clone(), range.map(|r| r.to_string())));
    let n = {
        let mut c = counts.lock().unwrap();
        let e = c.entry(path.clone()).or_insert(0);
        *e += 1;
        *e
    };
    let mut out = c;
    let respond = |out: &mut TcpStream,
                   status: &str,
                   headers: &[(&str, String)],
                   body: &[u8],
                   send: usize,
                   slow: bool|
     -> std::io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        if method == "HEAD" {
            return Ok(());
        }
        let body = &body[..send.min(body.len())];
        if slow {
            for chunk in body.chunks(16 * 1024) {
                out.write_all(chunk)?;
                std::thread::sleep(Duration::from_millis(5));
            }
        } else {
            out.write_all(body)?;
        }
        Ok(())
    };
    if mode == Mode::Always500 || (mode == Mode::Flaky500 && n <= 2) {
        return respond(
            &mut out,
            "500 Internal Server Error",
            &[],
            b"oops",
            usize::MAX,
            false,
        );
    }
    if path == "/v2/" {
        return respond(&mut out, "200 OK", &[], b"{}", usize::MAX, false);
    }
    if path.contains("/manifests/") {
        let mt = (
            "Content-Type",
            "application/vnd.oci.image.manifest.v1+json".to_owned(),
        );
        return match mode {
            Mode::GarbageManifest => respond(
                &mut out,
                "200 OK",
                &[mt],
                b"<html>not a manifest",
                usize::MAX,
                false,
            ),
            Mode::WrongManifestDigest => respond(
                &mut out,
                "200 OK",
                &[
                    mt,
                    (
                        "Docker-Content-Digest",
                        Digest::sha256_of(b"other").to_string(),
                    ),
                ],
                &img.manifest,
                usize::MAX,
                false,
            ),
            _ => respond(
                &mut out,
                "200 OK",
                &[
                    mt,
                    ("Docker-Content-Digest", img.manifest_digest.to_string()),
                ],
                &img.manifest,
                usize::MAX,
                false,
            ),
        };
    }
    let bare = path.split('?').next().unwrap_or("");
    if let Some(d) = bare.split("/blobs/").nth(1) {
        let Some(blob) = img.blobs.get(d) else {
            return respond(&mut out, "404 Not Found", &[], b"", usize::MAX, false);
        };
        let mut blob = blob.clone();
        let is_layer = d == img.layer_digest.to_string();
        if mode == Mode::CorruptLayer && is_layer {
            for b in blob.iter_mut().skip(100).take(64) {
                *b ^= 0xff;
            }
        }
        let slow = mode == Mode::Slow;
        if let Some(off) = range
            && matches!(mode, Mode::TruncateOnceThenRange | Mode::Good)
            && off < blob.len()
        {
            let cr = (
                "Content-Range",
                format!("bytes {off}-{}/{}", blob.len() - 1, blob.len()),
            );
            return respond(
                &mut out,
                "206 Partial Content",
                &[cr],
                &blob[off..],
                usize::MAX,
                slow,
            );
        }
        let send = match mode {
            Mode::Truncate if is_layer => blob.len() / 2,
            Mode::TruncateOnceThenRange if is_layer && n == 1 => blob.len() / 2,
            _ => usize::MAX,
        };
        return respond(&mut out, "200 OK", &[], &blob, send, slow);
    }
    respond(&mut out, "404 Not Found", &[], b"", usize::MAX, false)
}

fn hostile_pull(
    mode: Mode,
    img: &TestImage,
) -> (
    Env,
    Hostile,
    Result<berth_snapshotter::ImageRecord, PullError>,
) {
    let e = env();
    let srv = Hostile::start(img.clone(), mode);
    let opts = PullOptions {
        retry: fast_retry(),
        ..Default::default()
    };
    let res = rt().block_on(pull(
        &e.stores,
        &format!("{}/test/img:latest", srv.addr),
        &opts,
    ));
    (e, srv, res)
}

fn assert_nothing_stored(e: &Env) {
    assert!(
        e.stores.meta.list_images().unwrap().is_empty(),
        "an image record was written"
    );
    assert!(
        e.stores
            .snapshotter
            .list()
            .unwrap()
            .iter()
            .all(|s| s.kind == Kind::Committed),
        "an active snapshot was left behind"
    );
    assert_store_consistent(&e.stores.content);
}

#[test]
fn good_server_pull_works_and_flaky_500s_are_retried() {
    let img = test_image(64 * 1024, false);
    let (e, _srv, res) = hostile_pull(Mode::Good, &img);
    let rec = res.unwrap();
    assert_eq!(rec.target, img.manifest_digest);
    assert_eq!(rec.config, img.config_digest);
    assert!(e.stores.content.exists(&img.layer_digest).unwrap());
    let (_e, _srv, res) = hostile_pull(Mode::Flaky500, &img);
    res.unwrap();
}

#[test]
fn garbage_manifest_is_a_clear_error() {
    let img = test_image(1024, false);
    let (e, _s, res) = hostile_pull(Mode::GarbageManifest, &img);
    let err = res.unwrap_err();
    assert!(err.to_string().contains("malformed JSON"), "{err}");
    assert!(e.stores.content.list().unwrap().is_empty());
    assert_nothing_stored(&e);
}

#[test]
fn manifest_digest_mismatch_is_refused() {
    let img = test_image(1024, false);
    let (e, _s, res) = hostile_pull(Mode::WrongManifestDigest, &img);
    let err = res.unwrap_err();
    assert!(
        matches!(
            &err,
            PullError::Remote {
                source: RemoteError::DigestMismatch { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(e.stores.content.list().unwrap().is_empty());
    // and by digest: the server returns a body that is not what was asked for
    let e2 = env();
    let srv = Hostile::start(img.clone(), Mode::Good);
    let other = Digest::sha256_of(b"something else");
    let err = rt()
        .block_on(pull(
            &e2.stores,
            &format!("{}/test/img@{other}", srv.addr),
            &PullOptions {
                retry: fast_retry(),
                ..Default::default()
            },
        ))
        .unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(e2.stores.content.list().unwrap().is_empty());
}

#[test]
fn persistent_500s_fail_after_retries() {
    let img = test_image(1024, false);
    let (e, srv, res) = hostile_pull(Mode::Always500, &img);
    let err = res.unwrap_err();
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert!(!err.is_not_found() && !err.is_unauthorized());
    assert_eq!(srv.gets_of("/manifests/latest"), 3, "3 attempts");
    assert_nothing_stored(&e);
}

#[test]
fn truncated_blob_is_an_error_and_never_visible() {
    let img = test_image(256 * 1024, false);
    let (e, _s, res) = hostile_pull(Mode::Truncate, &img);
    let err = res.unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(!e.stores.content.exists(&img.layer_digest).unwrap());
    assert_nothing_stored(&e);
}

#[test]
fn interrupted_blob_resumes_with_range() {
    let img = test_image(256 * 1024, false);
    let (e, srv, res) = hostile_pull(Mode::TruncateOnceThenRange, &img);
    res.unwrap();
    let log = srv.log.lock().unwrap().clone();
    let layer_reqs: Vec<_> = log
        .iter()
        .filter(|(p, _)| p.ends_with(&img.layer_digest.to_string()))
        .collect();
    assert_eq!(layer_reqs.len(), 2, "{layer_reqs:?}");
    assert!(
        layer_reqs[1].1.as_deref().is_some_and(|r| r != "0"),
        "second request must carry Range"
    );
    assert!(e.stores.content.exists(&img.layer_digest).unwrap());
}

#[test]
fn corrupt_layer_is_discarded() {
    let img = test_image(64 * 1024, false);
    let (e, _s, res) = hostile_pull(Mode::CorruptLayer, &img);
    let err = res.unwrap_err();
    assert!(err.to_string().contains("digest"), "{err}");
    assert!(!e.stores.content.exists(&img.layer_digest).unwrap());
    assert!(
        e.stores.content.ingests().unwrap().is_empty(),
        "bad ingest must be removed"
    );
    assert_nothing_stored(&e);
}

#[test]
fn diff_id_mismatch_stores_no_image() {
    let img = test_image(4096, true);
    let (e, _s, res) = hostile_pull(Mode::Good, &img);
    let err = res.unwrap_err();
    assert!(matches!(&err, PullError::Unpack { .. }), "{err}");
    assert!(err.to_string().contains("diff_id"), "{err}");
    assert!(
        e.stores.snapshotter.list().unwrap().is_empty(),
        "no snapshot may remain"
    );
    assert!(
        !e.stores.content.exists(&img.manifest_digest).unwrap(),
        "manifest must not be visible"
    );
    assert_nothing_stored(&e);
}

#[test]
fn malformed_hosts_toml_is_a_clear_error() {
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("127.0.0.1:1")).unwrap();
    std::fs::write(
        dir.path().join("127.0.0.1:1/hosts.toml"),
        "server = [unclosed",
    )
    .unwrap();
    let opts = PullOptions {
        hosts_dir: Some(dir.path().to_owned()),
        ..Default::default()
    };
    let err = rt()
        .block_on(pull(&e.stores, "127.0.0.1:1/a/b:c", &opts))
        .unwrap_err();
    assert!(
        err.to_string().contains("hosts.toml") && err.to_string().contains("TOML"),
        "{err}"
    );
}

#[test]
fn mirror_from_hosts_toml_is_used_first() {
    let img = test_image(4096, false);
    let mirror = Hostile::start(img.clone(), Mode::Good);
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    // The registry itself does not exist (port 1 refuses); only the mirror can serve.
    std::fs::create_dir_all(dir.path().join("127.0.0.1:1")).unwrap();
    std::fs::write(
        dir.path().join("127.0.0.1:1/hosts.toml"),
        format!("server = \"http://127.0.0.1:1\"\n[host.\"http://{}\"]\ncapabilities = [\"pull\", \"resolve\"]\n", mirror.addr),
    )
    .unwrap();
    let opts = PullOptions {
        hosts_dir: Some(dir.path().to_owned()),
        retry: fast_retry(),
        ..Default::default()
    };
    let rec = rt()
        .block_on(pull(&e.stores, "127.0.0.1:1/test/img:latest", &opts))
        .unwrap();
    assert_eq!(rec.target, img.manifest_digest);
    let log = mirror.log.lock().unwrap().clone();
    assert!(
        log.iter().all(|(p, _)| p.contains("ns=127.0.0.1")),
        "{log:?}"
    );
}

#[test]
fn concurrent_pulls_of_one_image_share_downloads() {
    let img = test_image(512 * 1024, false);
    let srv = Hostile::start(img.clone(), Mode::Slow);
    let e = env();
    let opts = PullOptions {
        retry: fast_retry(),
        ..Default::default()
    };
    let r = format!("{}/test/img:latest", srv.addr);
    let (a, b) = rt()
        .block_on(async { tokio::join!(pull(&e.stores, &r, &opts), pull(&e.stores, &r, &opts)) });
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.chain_id, b.chain_id);
    assert_eq!(
        srv.gets_of(&img.layer_digest.to_string()),
        1,
        "layer downloaded once"
    );
}

/// Runs one pull; in the child role (env BERTH_PULL_CHILD_ADDR/ROOT set by
/// `pull_killed_at_random_points_then_completes`) against the parent's server and store.
#[test]
fn slow_pull_completes() {
    common::require_root();
    let (addr, root, _keep) = match (
        std::env::var("BERTH_PULL_CHILD_ADDR"),
        std::env::var("BERTH_PULL_CHILD_ROOT"),
    ) {
        (Ok(a), Ok(r)) => (a, std::path::PathBuf::from(r), None),
        _ => {
            let srv = Hostile::start(test_image(256 * 1024, false), Mode::Slow);
            let d = tempfile::tempdir().unwrap();
            (srv.addr.clone(), d.path().to_owned(), Some((srv, d)))
        }
    };
    let stores = open_stores(&root);
    let opts = PullOptions {
        retry: fast_retry(),
        ..Default::default()
    };
    rt().block_on(pull(&stores, &format!("{addr}/test/img:latest"), &opts))
        .unwrap();
}

#[test]
fn pull_killed_at_random_points_then_completes() {
    common::require_root();
    let img = test_image(2 * 1024 * 1024, false);
    let srv = Hostile::start(img.clone(), Mode::Slow);
    let dir = tempfile::tempdir().unwrap();
    // Create the databases first: a kill while redb creates its file is outside what this
    // test is about (see the report).
    drop(open_stores(dir.path()));
    let exe = std::env::current_exe().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    for i in 0..4u64 {
        let delay = 50 + (seed.wrapping_mul(i + 7) % 500);
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "slow_pull_completes",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BERTH_PULL_CHILD_ADDR", &srv.addr)
            .env("BERTH_PULL_CHILD_ROOT", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        // After the kill: whatever is visible is verified, and no image is half there.
        let stores = open_stores(dir.path());
        assert_store_consistent(&stores.content);
        for rec in stores.meta.list_images().unwrap() {
            assert!(stores.content.exists(&rec.target).unwrap());
            assert_eq!(
                stores.snapshotter.stat(&rec.chain_id).unwrap().kind,
                Kind::Committed
            );
        }
    }
    let stores = open_stores(dir.path());
    let opts = PullOptions {
        retry: fast_retry(),
        ..Default::default()
    };
    let rec = rt()
        .block_on(pull(
            &stores,
            &format!("{}/test/img:latest", srv.addr),
            &opts,
        ))
        .unwrap();
    assert_eq!(rec.target, img.manifest_digest);
    assert!(stores.content.ingests().unwrap().is_empty());
    assert_store_consistent(&stores.content);
}

#[test]
fn pulls_over_https_with_ca_or_skip_verify_from_hosts_toml() {
    let reg = registry_env("BERTH_TEST_TLS_REGISTRY");
    let ca = registry_env("BERTH_TEST_TLS_CA");
    let e = env();
    let rt = rt();
    let image = format!("{reg}/berth/busybox:latest");
    let certs = tempfile::tempdir().unwrap();
    let hosts = certs.path().join(&reg);
    std::fs::create_dir_all(&hosts).unwrap();
    let opts = PullOptions {
        hosts_dir: Some(certs.path().to_owned()),
        retry: fast_retry(),
        ..Default::default()
    };
    let write = |text: String| std::fs::write(hosts.join("hosts.toml"), text).unwrap();

    // HTTPS without the CA: the certificate is refused.
    write(format!("server = \"https://{reg}\"\n"));
    let err = rt.block_on(pull(&e.stores, &image, &opts)).unwrap_err();
    let msg = format!("{err:?}");
    assert!(
        msg.contains("Certificate") || msg.contains("certificate"),
        "{msg}"
    );
    assert!(e.stores.content.list().unwrap().is_empty());

    // With the CA (relative to the hosts.toml directory, as containerd resolves it).
    std::fs::copy(&ca, hosts.join("ca.crt")).unwrap();
    write(format!("server = \"https://{reg}\"\nca = \"ca.crt\"\n"));
    let rec = rt.block_on(pull(&e.stores, &image, &opts)).unwrap();
    assert_eq!(rec.layers.len(), 1);

    // skip_verify instead of a CA.
    let e2 = env();
    write(format!("server = \"https://{reg}\"\nskip_verify = true\n"));
    let rec2 = rt.block_on(pull(&e2.stores, &image, &opts)).unwrap();
    assert_eq!(rec2.target, rec.target);
}

#[test]
fn failure_in_a_top_layer_leaves_no_image_and_no_active_snapshot() {
    for (mode, diff) in [(Mode::CorruptLayer, false), (Mode::Good, true)] {
        let img = test_image_layers(3, 128 * 1024, diff);
        let (e, _s, res) = hostile_pull(mode, &img);
        let err = res.unwrap_err();
        assert!(
            err.to_string().contains("digest") || err.to_string().contains("diff_id"),
            "{err}"
        );
        assert_nothing_stored(&e);
        assert!(!e.stores.content.exists(&img.manifest_digest).unwrap());
        // Lower layers may be unpacked already: committed, reusable, never half-done.
        assert!(e.stores.snapshotter.list().unwrap().len() <= 2);
        // The good server then completes the pull, reusing what is there.
        if mode == Mode::CorruptLayer {
            let srv = Hostile::start(img.clone(), Mode::Good);
            let opts = PullOptions {
                retry: fast_retry(),
                ..Default::default()
            };
            let rec = rt()
                .block_on(pull(
                    &e.stores,
                    &format!("{}/test/img:latest", srv.addr),
                    &opts,
                ))
                .unwrap();
            assert_eq!(rec.layers.len(), 3);
        }
    }
}

#[test]
fn single_manifest_for_another_platform_is_refused() {
    let img = test_image(1024, false);
    let e = env();
    let srv = Hostile::start(img, Mode::Good);
    let opts = PullOptions {
        platform: Platform::parse("linux/arm64").unwrap(),
        retry: fast_retry(),
        ..Default::default()
    };
    let err = rt()
        .block_on(pull(
            &e.stores,
            &format!("{}/test/img:latest", srv.addr),
            &opts,
        ))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("image is for linux/amd64, not linux/arm64"),
        "{err}"
    );
    assert_nothing_stored(&e);
}

#[test]
fn pulls_from_the_basic_auth_registry_with_credentials() {
    let reg = registry_env("BERTH_TEST_BASIC_REGISTRY");
    let creds = registry_env("BERTH_TEST_BASIC_CREDS");
    let (user, pass) = creds
        .split_once(':')
        .expect("BERTH_TEST_BASIC_CREDS is user:password");
    let e = env();
    let rt = rt();
    let image = format!("{reg}/berth/busybox:latest");
    let err = rt
        .block_on(pull(
            &e.stores,
            &image,
            &PullOptions {
                retry: fast_retry(),
                ..Default::default()
            },
        ))
        .unwrap_err();
    assert!(err.to_string().contains("requires credentials"), "{err}");
    let wrong = PullOptions {
        retry: fast_retry(),
        credentials: Credentials::Basic {
            username: user.into(),
            password: "nope".into(),
        },
        ..Default::default()
    };
    let err = rt.block_on(pull(&e.stores, &image, &wrong)).unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    assert!(e.stores.content.list().unwrap().is_empty());
    let good = PullOptions {
        retry: fast_retry(),
        credentials: Credentials::Basic {
            username: user.into(),
            password: pass.into(),
        },
        ..Default::default()
    };
    let rec = rt.block_on(pull(&e.stores, &image, &good)).unwrap();
    assert_eq!(rec.layers.len(), 1);
}

#[test]
fn partial_ingest_left_by_an_earlier_process_is_resumed_with_range() {
    let img = test_image(256 * 1024, false);
    let e = env();
    let layer = img.blobs[&img.layer_digest.to_string()].clone();
    let half = layer.len() / 2;
    match e
        .stores
        .content
        .writer(&img.layer_digest, Some(layer.len() as u64))
        .unwrap()
    {
        berth_snapshotter::Writer::Ingest(mut ing) => {
            ing.write_all(&layer[..half]).unwrap();
            // dropped without commit: the bytes stay for a resume
        }
        berth_snapshotter::Writer::Exists(_) => panic!("fresh store has the blob"),
    }
    assert_eq!(
        e.stores.content.ingests().unwrap(),
        std::slice::from_ref(&img.layer_digest)
    );
    let srv = Hostile::start(img.clone(), Mode::Good);
    let opts = PullOptions {
        retry: fast_retry(),
        ..Default::default()
    };
    rt().block_on(pull(
        &e.stores,
        &format!("{}/test/img:latest", srv.addr),
        &opts,
    ))
    .unwrap();
    let log = srv.log.lock().unwrap().clone();
    let layer_reqs: Vec<_> = log
        .iter()
        .filter(|(p, _)| p.ends_with(&img.layer_digest.to_string()))
        .collect();
    assert_eq!(layer_reqs.len(), 1, "{layer_reqs:?}");
    assert_eq!(layer_reqs[0].1.as_deref(), Some(half.to_string().as_str()));
    assert!(e.stores.content.ingests().unwrap().is_empty());
    assert_store_consistent(&e.stores.content);
}

#[test]
fn missing_blob_is_not_found() {
    // The manifest names a config and a layer the server does not have.
    let mut broken = test_image(1024, false);
    broken.blobs.clear();
    let e = env();
    let srv = Hostile::start(broken, Mode::Good);
    let err = rt()
        .block_on(pull(
            &e.stores,
            &format!("{}/test/img:latest", srv.addr),
            &PullOptions {
                retry: fast_retry(),
                ..Default::default()
            },
        ))
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    assert_nothing_stored(&e);
}
