//! containerd interop, as root: Debian's containerd with `berth-snapshotter` as a proxy
//! snapshotter (`[proxy_plugins.berth] type = "snapshot"`) unpacks images into berth's
//! snapshots and runs containers on them (`ctr run --snapshotter berth`).
//!
//! Each test starts its own containerd (own root, state, socket; no CRI plugin) and its
//! own `berth-snapshotter` (own root, socket), and tears both down in `Drop`.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use berth_snapshotter::grpc::proto;
use berth_snapshotter::grpc::proto::snapshots_client::SnapshotsClient;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tonic::transport::{Endpoint, Uri};

const BIN: &str = env!("CARGO_BIN_EXE_berth-snapshotter");
const NAMESPACE: &str = "berthtest";

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the containerd interop tests run containerd and mount: run them as root"
    );
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run_ok(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    o
}

/// Everything one test starts, torn down in reverse on drop: containerd (and any shim
/// it left), the mounts under the test directory, then berth-snapshotter.
struct Env {
    dir: tempfile::TempDir,
    containerd: Option<Child>,
    snapshotter: Option<Child>,
}

impl Env {
    fn start() -> Env {
        require_root();
        for bin in ["/usr/bin/containerd", "/usr/bin/ctr", "/bin/busybox"] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: install Debian's containerd and busybox-static \
                 (scripts/install-deps.sh)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-cdproxy")
            .tempdir()
            .expect("tempdir");
        let mut env = Env {
            dir,
            containerd: None,
            snapshotter: None,
        };
        let d = env.path().to_owned();
        env.start_snapshotter();
        let cfg = d.join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "version = 2\nroot = \"{d}/cd-root\"\nstate = \"{d}/cd-state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\", \
                 \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
                 \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.snapshotter.v1.aufs\"]\n\
                 [grpc]\n  address = \"{d}/containerd.sock\"\n\
                 [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
                 [proxy_plugins]\n  [proxy_plugins.berth]\n    type = \"snapshot\"\n    \
                 address = \"{sock}\"\n",
                d = d.display(),
                sock = env.berth_socket().display()
            ),
        )
        .expect("write containerd config");
        env.containerd = Some(
            Command::new("containerd")
                .arg("--config")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("containerd.log")).expect("log"))
                .spawn()
                .expect("spawn containerd"),
        );
        env.wait_for("containerd", |e| e.ctr(&["version"]).status.success());
        env
    }

    /// Start berth-snapshotter on the test's root and socket and wait until it listens.
    fn start_snapshotter(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("snapshotter.log"))
            .expect("log");
        self.snapshotter = Some(
            Command::new(BIN)
                .arg("--root")
                .arg(self.berth_root())
                .arg("--address")
                .arg(self.berth_socket())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn berth-snapshotter"),
        );
        self.wait_for("berth-snapshotter", |e| {
            std::os::unix::net::UnixStream::connect(e.berth_socket()).is_ok()
        });
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn berth_socket(&self) -> PathBuf {
        self.path().join("berth.sock")
    }

    fn berth_root(&self) -> PathBuf {
        self.path().join("berth-root")
    }

    fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.path().join(n)).unwrap_or_default();
        format!(
            "--- containerd log:\n{}\n--- berth-snapshotter log:\n{}",
            read("containerd.log"),
            read("snapshotter.log")
        )
    }

    fn wait_for(&mut self, what: &str, ready: impl Fn(&Env) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(self) {
            let exited = [&mut self.containerd, &mut self.snapshotter]
                .into_iter()
                .flatten()
                .find_map(|c| c.try_wait().expect("wait"));
            if let Some(st) = exited {
                panic!(
                    "a daemon exited ({st}) while waiting for {what}: {}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not come up: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.path().join("containerd.sock"))
            .args(["--namespace", NAMESPACE])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args);
        assert!(
            o.status.success(),
            "ctr {args:?}: {}{}\n{}",
            text(&o.stdout),
            text(&o.stderr),
            self.logs()
        );
        text(&o.stdout)
    }

    /// The snapshots as berth-snapshotter itself lists them (not containerd's view).
    fn backend_snapshots(&self) -> Vec<proto::Info> {
        let socket = self.berth_socket();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let channel = Endpoint::from_static("http://berth-snapshotter.invalid")
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let socket = socket.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(socket).await?,
                        ))
                    }
                }))
                .await
                .expect("connect to berth-snapshotter");
            let mut stream = SnapshotsClient::new(channel)
                .list(proto::ListSnapshotsRequest::default())
                .await
                .expect("list")
                .into_inner();
            let mut out = Vec::new();
            while let Some(m) = stream.message().await.expect("list stream") {
                out.extend(m.info);
            }
            out
        })
    }

    /// Assert the image's snapshots live in berth-snapshotter: committed snapshots named
    /// by chain ID in berth's list, layer directories under berth's root, and
    /// nothing in containerd's own overlayfs snapshotter.
    fn assert_snapshots_in_berth(&self, want_layers: usize) {
        let infos = self.backend_snapshots();
        let committed: Vec<&proto::Info> = infos
            .iter()
            .filter(|i| i.kind == proto::Kind::Committed as i32)
            .collect();
        assert_eq!(committed.len(), want_layers, "{infos:#?}");
        for i in &committed {
            assert!(
                i.name.starts_with(&format!("{NAMESPACE}/")) && i.name.contains("/sha256:"),
                "a committed layer is named by containerd's namespace and chain ID: {i:#?}"
            );
        }
        let dirs = std::fs::read_dir(self.berth_root().join("snapshots"))
            .expect("berth snapshots dir")
            .count();
        assert!(
            dirs >= want_layers,
            "{dirs} snapshot dirs under berth's root"
        );
        let theirs = self
            .path()
            .join("cd-root/io.containerd.snapshotter.v1.overlayfs/snapshots");
        let n = std::fs::read_dir(&theirs).map(|d| d.count()).unwrap_or(0);
        assert_eq!(n, 0, "containerd's overlayfs snapshotter holds snapshots");
        let listed = self.ctr_ok(&["snapshots", "--snapshotter", "berth", "ls"]);
        assert!(
            listed.lines().count() > want_layers,
            "ctr snapshots ls: {listed}"
        );
    }
}

/// Signal a process and wait for it, killing it if it does not stop in time; returns
/// how it ended.
fn stop(child: &mut Child, sig: nix::sys::signal::Signal) -> std::io::Result<ExitStatus> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, sig);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let d = self.path().to_string_lossy().into_owned();
        if let Some(mut c) = self.containerd.take() {
            let _ = stop(&mut c, nix::sys::signal::Signal::SIGTERM);
        }
        // Shims this containerd started name its socket on their command line.
        let me = std::process::id().to_string();
        for ent in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            let Ok(pid) = name.parse::<i32>() else {
                continue;
            };
            if name == me {
                continue;
            }
            let cmdline = std::fs::read(ent.path().join("cmdline")).unwrap_or_default();
            if text(&cmdline).contains(&d) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        // Unmount what containerd left under the test dir, deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut mine: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&d))
            .collect();
        mine.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mine {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        if let Some(mut s) = self.snapshotter.take() {
            let _ = stop(&mut s, nix::sys::signal::Signal::SIGTERM);
        }
    }
}

/// Writes `data` as a blob of an OCI layout; returns (digest, size).
fn blob(layout: &Path, data: &[u8]) -> (String, usize) {
    let hex = hex::encode(Sha256::digest(data));
    std::fs::write(layout.join("blobs/sha256").join(&hex), data).expect("write blob");
    (format!("sha256:{hex}"), data.len())
}

/// A tar of directory `dir` as an image layer (uid/gid 0, sorted).
fn tar_layer(dir: &Path, out: &Path) -> Vec<u8> {
    run_ok(
        Command::new("tar")
            .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
            .arg("-C")
            .arg(dir)
            .arg("-cf")
            .arg(out)
            .arg("."),
    );
    std::fs::read(out).expect("read layer tar")
}

/// An OCI image archive named `name`: a busybox layer and a second layer adding
/// `/etc/berth-layer` and deleting `/etc/group` (a whiteout).
fn two_layer_image(dir: &Path, name: &str) -> PathBuf {
    let base = dir.join("base");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(base.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", base.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "echo", "cat", "ls", "test"] {
        symlink("busybox", base.join("bin").join(applet)).expect("symlink");
    }
    std::fs::write(base.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    std::fs::write(base.join("etc/group"), "root:x:0:\n").expect("group");
    let top = dir.join("top");
    std::fs::create_dir_all(top.join("etc")).expect("mkdir");
    std::fs::write(top.join("etc/berth-layer"), "second layer\n").expect("write");
    std::fs::write(top.join("etc/.wh.group"), "").expect("whiteout");

    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("mkdir");
    let l1 = tar_layer(&base, &dir.join("l1.tar"));
    let l2 = tar_layer(&top, &dir.join("l2.tar"));
    let (d1, s1) = blob(&layout, &l1);
    let (d2, s2) = blob(&layout, &l2);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [d1, d2]}
    });
    let (cd, cs) = blob(&layout, config.to_string().as_bytes());
    let layer = |d: &str, s: usize| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s});
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [layer(&d1, s1), layer(&d2, s2)]
    });
    let (md, ms) = blob(&layout, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "test"}
        }]
    });
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index");
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let archive = dir.join("image.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .arg("."),
    );
    archive
}

#[test]
fn containerd_imports_and_runs_on_berth_snapshots() {
    let mut env = Env::start();
    let image_dir = env.path().join("image");
    std::fs::create_dir_all(&image_dir).expect("mkdir");
    let name = "docker.io/library/berth-proxy:test";
    let archive = two_layer_image(&image_dir, name);
    env.ctr_ok(&[
        "images",
        "import",
        "--snapshotter",
        "berth",
        archive.to_str().expect("utf-8 path"),
    ]);
    env.assert_snapshots_in_berth(2);
    // The first layer's files are in a layer directory under berth's root.
    let has_busybox = std::fs::read_dir(env.berth_root().join("snapshots"))
        .expect("snapshots dir")
        .flatten()
        .any(|e| e.path().join("fs/bin/busybox").is_file());
    assert!(has_busybox, "no berth layer holds bin/busybox");

    // Labels containerd hands down to its snapshotter ("containerd.io/snapshot/" ones)
    // reach berth through Update with a `labels.KEY` mask, and are removed the same way.
    let listed = env.ctr_ok(&["snapshots", "--snapshotter", "berth", "ls"]);
    let committed = listed
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("Committed"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no committed snapshot in {listed}"))
        .to_owned();
    let label = "containerd.io/snapshot/berth-test";
    let backend_label = |env: &Env| {
        env.backend_snapshots()
            .into_iter()
            .find(|i| i.name.ends_with(&format!("/{committed}")))
            .unwrap_or_else(|| panic!("{committed} not in berth's list"))
            .labels
            .get(label)
            .cloned()
    };
    env.ctr_ok(&[
        "snapshots",
        "--snapshotter",
        "berth",
        "label",
        &committed,
        &format!("{label}=yes"),
    ]);
    assert_eq!(backend_label(&env).as_deref(), Some("yes"));
    env.ctr_ok(&[
        "snapshots",
        "--snapshotter",
        "berth",
        "label",
        &committed,
        &format!("{label}="),
    ]);
    assert_eq!(backend_label(&env), None);

    let id = format!("berth-proxy-{}", std::process::id());
    let out = env.ctr_ok(&[
        "run",
        "--rm",
        "--snapshotter",
        "berth",
        name,
        &id,
        "/bin/echo",
        "hello",
    ]);
    assert_eq!(out, "hello\n");
    // Both layers, the whiteout, and a rootfs that is berth's overlay.
    let out = env.ctr_ok(&[
        "run",
        "--rm",
        "--snapshotter",
        "berth",
        name,
        &format!("{id}-2"),
        "sh",
        "-c",
        "cat /etc/berth-layer; test -e /etc/group || echo group-gone; \
         echo written > /tmp/x && cat /tmp/x; cat /proc/self/mountinfo",
    ]);
    assert!(
        out.starts_with("second layer\ngroup-gone\nwritten\n"),
        "{out}"
    );
    let root_line = out
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no root mount in {out}"));
    assert!(
        root_line.contains(" - overlay ")
            && root_line.contains(&*env.berth_root().to_string_lossy()),
        "rootfs is not an overlay of berth's layers: {root_line}"
    );
    let left = env.ctr_ok(&["containers", "list", "-q"]);
    assert_eq!(left.trim(), "", "containers left");

    // berth-snapshotter restarted under a running containerd: a clean exit on SIGTERM
    // with containerd connected, and containerd uses the new process.
    let mut old = env.snapshotter.take().expect("snapshotter running");
    let st = stop(&mut old, nix::sys::signal::Signal::SIGTERM).expect("wait");
    assert!(
        st.success(),
        "berth-snapshotter after SIGTERM: {st}\n{}",
        env.logs()
    );
    assert!(!env.berth_socket().exists(), "socket left after SIGTERM");
    env.start_snapshotter();
    // containerd's client reconnects with a backoff; wait for a call that reaches berth.
    env.wait_for("containerd to reconnect", |e| {
        e.ctr(&["snapshots", "--snapshotter", "berth", "usage", &committed])
            .status
            .success()
    });
    let out = env.ctr_ok(&[
        "run",
        "--rm",
        "--snapshotter",
        "berth",
        name,
        &format!("{id}-3"),
        "cat",
        "/etc/berth-layer",
    ]);
    assert_eq!(out, "second layer\n");

    // Removing the image lets containerd's garbage collector remove every snapshot
    // from berth (List to find them, Remove children before parents).
    env.ctr_ok(&["images", "rm", "--sync", name]);
    let infos = env.backend_snapshots();
    assert!(infos.is_empty(), "snapshots left in berth: {infos:#?}");
    let dirs = std::fs::read_dir(env.berth_root().join("snapshots"))
        .expect("snapshots dir")
        .count();
    assert_eq!(dirs, 0, "layer directories left under berth's root");
}

#[test]
fn containerd_pulls_from_the_local_registry_onto_berth() {
    let reg = std::env::var("BERTH_TEST_REGISTRY").unwrap_or_else(|_| {
        panic!(
            "BERTH_TEST_REGISTRY is not set: run `eval \"$(scripts/registry.sh start)\"` and \
             push the fixtures with `berth-conformance images push` first"
        )
    });
    let env = Env::start();
    let image = format!("{reg}/berth/layers:latest");
    env.ctr_ok(&[
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        "berth",
        &image,
    ]);
    env.assert_snapshots_in_berth(3);
    let out = env.ctr_ok(&[
        "run",
        "--rm",
        "--snapshotter",
        "berth",
        &image,
        &format!("berth-proxy-pull-{}", std::process::id()),
        "sh",
        "-c",
        "cat /data/keep /data/opaque/new /data/l3file; ls /data/opaque; \
         test -e /data/remove-me || echo removed",
    ]);
    assert_eq!(out, "keep\nnew\nlayer three\nnew\nremoved\n");
}
