//! Root integration tests: the shared snapshotter suite through containerd's
//! snapshots gRPC API against a real `berth-snapshotter` process, plus what only the
//! gRPC surface has (update masks, list filters and batches, cleanup, error codes, the
//! socket's life cycle).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_snapshotter::grpc::convert::{
    info_from_proto, mount_from_proto, status_to_error, usage_from_proto,
};
use berth_snapshotter::grpc::proto;
use berth_snapshotter::grpc::proto::snapshots_client::SnapshotsClient;
use berth_snapshotter::snapshots::{Info, Mount, SnapshotError, Snapshots, Usage};
use berth_snapshotter::testsuite::CASES;
use hyper_util::rt::TokioIo;
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Uri};

const BIN: &str = env!("CARGO_BIN_EXE_berth-snapshotter");

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the gRPC snapshotter tests mount overlays and must run as root"
    );
}

/// A `berth-snapshotter` process on a temporary root and socket, stopped on drop.
struct Server {
    child: Option<Child>,
    socket: PathBuf,
    root: PathBuf,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let socket = dir.join("run/snapshotter.sock");
        let root = dir.join("root");
        let log = dir.join("snapshotter.log");
        let child = Command::new(BIN)
            .arg("--root")
            .arg(&root)
            .arg("--address")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("create log"))
            .spawn()
            .expect("spawn berth-snapshotter");
        let mut s = Server {
            child: Some(child),
            socket,
            root,
            log,
        };
        s.wait_ready();
        s
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            let child = self.child.as_mut().expect("server running");
            if let Some(st) = child.try_wait().expect("wait") {
                panic!("berth-snapshotter exited with {st}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "berth-snapshotter did not listen on {}: {}",
                self.socket.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send SIGTERM and wait for the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().expect("wait after kill");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// The library's [`Snapshots`] interface over the generated gRPC client, so the shared
/// suite runs against the served snapshotter unchanged.
struct GrpcSnapshots {
    rt: tokio::runtime::Runtime,
    client: SnapshotsClient<Channel>,
}

impl GrpcSnapshots {
    fn connect(socket: &Path) -> GrpcSnapshots {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        let path = socket.to_owned();
        let channel = rt
            .block_on(
                Endpoint::from_static("http://berth-snapshotter.invalid").connect_with_connector(
                    tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            let s = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(s))
                        }
                    }),
                ),
            )
            .expect("connect to berth-snapshotter");
        GrpcSnapshots {
            rt,
            client: SnapshotsClient::new(channel),
        }
    }

    /// Run one call; a status becomes the library's error about `object`.
    fn call<T, F>(
        &self,
        object: &str,
        f: impl FnOnce(SnapshotsClient<Channel>) -> F,
    ) -> Result<T, SnapshotError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rt
            .block_on(f(self.client.clone()))
            .map(tonic::Response::into_inner)
            .map_err(|s| status_to_error(&s, object))
    }

    /// Run one call and keep the raw status (for code checks).
    fn raw<T, F>(&self, f: impl FnOnce(SnapshotsClient<Channel>) -> F) -> Result<T, tonic::Status>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.rt
            .block_on(f(self.client.clone()))
            .map(tonic::Response::into_inner)
    }

    /// Every snapshot matching `filters`, and how many stream messages carried them.
    fn list_filtered(&self, filters: &[&str]) -> Result<(Vec<Info>, usize), tonic::Status> {
        let filters = filters.iter().map(|s| s.to_string()).collect();
        self.rt.block_on(async {
            let mut stream = self
                .client
                .clone()
                .list(proto::ListSnapshotsRequest {
                    snapshotter: "berth".into(),
                    filters,
                })
                .await?
                .into_inner();
            let (mut out, mut messages) = (Vec::new(), 0);
            while let Some(msg) = stream.message().await? {
                messages += 1;
                for i in msg.info {
                    out.push(
                        info_from_proto(i).map_err(|e| tonic::Status::internal(e.to_string()))?,
                    );
                }
            }
            Ok((out, messages))
        })
    }
}

fn labels(l: BTreeMap<String, String>) -> HashMap<String, String> {
    l.into_iter().collect()
}

fn mounts(ms: Vec<proto::Mount>) -> Vec<Mount> {
    ms.into_iter().map(mount_from_proto).collect()
}

impl Snapshots for GrpcSnapshots {
    fn prepare(
        &self,
        key: &str,
        parent: Option<&str>,
        l: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>, SnapshotError> {
        let req = proto::PrepareSnapshotRequest {
            snapshotter: "berth".into(),
            key: key.into(),
            parent: parent.unwrap_or_default().into(),
            labels: labels(l),
        };
        // A missing parent is the parent's NotFound; anything else is about the key.
        let object = match parent {
            Some(p) => format!("{key} (parent {p})"),
            None => key.to_owned(),
        };
        self.call(&object, |mut c| async move { c.prepare(req).await })
            .map(|r| mounts(r.mounts))
    }

    fn view(
        &self,
        key: &str,
        parent: Option<&str>,
        l: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>, SnapshotError> {
        let req = proto::ViewSnapshotRequest {
            snapshotter: "berth".into(),
            key: key.into(),
            parent: parent.unwrap_or_default().into(),
            labels: labels(l),
        };
        self.call(key, |mut c| async move { c.view(req).await })
            .map(|r| mounts(r.mounts))
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let req = proto::MountsRequest {
            snapshotter: "berth".into(),
            key: key.into(),
        };
        self.call(key, |mut c| async move { c.mounts(req).await })
            .map(|r| mounts(r.mounts))
    }

    fn commit(
        &self,
        name: &str,
        key: &str,
        l: BTreeMap<String, String>,
    ) -> Result<(), SnapshotError> {
        let req = proto::CommitSnapshotRequest {
            snapshotter: "berth".into(),
            name: name.into(),
            key: key.into(),
            labels: labels(l),
        };
        self.call(name, |mut c| async move { c.commit(req).await })
    }

    fn stat(&self, key: &str) -> Result<Info, SnapshotError> {
        let req = proto::StatSnapshotRequest {
            snapshotter: "berth".into(),
            key: key.into(),
        };
        let r = self.call(key, |mut c| async move { c.stat(req).await })?;
        wire_info(key, r.info)
    }

    fn update(&self, key: &str, l: BTreeMap<String, String>) -> Result<Info, SnapshotError> {
        let req = proto::UpdateSnapshotRequest {
            snapshotter: "berth".into(),
            info: Some(proto::Info {
                name: key.into(),
                labels: labels(l),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["labels".into()],
            }),
        };
        let r = self.call(key, |mut c| async move { c.update(req).await })?;
        wire_info(key, r.info)
    }

    fn usage(&self, key: &str) -> Result<Usage, SnapshotError> {
        let req = proto::UsageRequest {
            snapshotter: "berth".into(),
            key: key.into(),
        };
        self.call(key, |mut c| async move { c.usage(req).await })
            .map(usage_from_proto)
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let req = proto::RemoveSnapshotRequest {
            snapshotter: "berth".into(),
            key: key.into(),
        };
        self.call(key, |mut c| async move { c.remove(req).await })
    }

    fn list(&self) -> Result<Vec<Info>, SnapshotError> {
        self.list_filtered(&[])
            .map(|(infos, _)| infos)
            .map_err(|s| status_to_error(&s, "list"))
    }
}

fn wire_info(key: &str, info: Option<proto::Info>) -> Result<Info, SnapshotError> {
    let info = info.ok_or_else(|| SnapshotError::Io {
        op: "stat",
        path: key.into(),
        source: std::io::Error::other("response without info"),
    })?;
    info_from_proto(info).map_err(|e| SnapshotError::Io {
        op: "stat",
        path: key.into(),
        source: std::io::Error::other(e.to_string()),
    })
}

#[test]
fn suite_through_grpc() {
    require_root();
    for (name, case) in CASES {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(dir.path());
        let client = GrpcSnapshots::connect(&server.socket);
        let work = dir.path().join("work");
        fs::create_dir_all(&work).expect("work dir");
        eprintln!("case {name}");
        case(&client, &work);
        drop(client);
        drop(server);
    }
}

fn s(v: &str) -> String {
    v.to_owned()
}

#[test]
fn containerd_labels_update_masks_and_list_filters() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let c = GrpcSnapshots::connect(&server.socket);
    let reference = BTreeMap::from([(s("containerd.io/snapshot.ref"), s("sha256:aa"))]);
    c.prepare("ns/1/extract", None, reference.clone()).unwrap();
    c.commit("ns/2/sha256:aa", "ns/1/extract", reference.clone())
        .unwrap();
    c.prepare("ns/3/run", Some("ns/2/sha256:aa"), BTreeMap::new())
        .unwrap();
    assert_eq!(c.stat("ns/2/sha256:aa").unwrap().labels, reference);

    // labels.KEY sets one label, keeps the others.
    let update = |paths: &[&str], l: &[(&str, &str)]| {
        let req = proto::UpdateSnapshotRequest {
            snapshotter: s("berth"),
            info: Some(proto::Info {
                name: s("ns/2/sha256:aa"),
                labels: l.iter().map(|(k, v)| (s(k), s(v))).collect(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| s(p)).collect(),
            }),
        };
        c.raw(|mut cl| async move { cl.update(req).await })
    };
    let info = update(
        &["labels.containerd.io/gc.root"],
        &[("containerd.io/gc.root", "t")],
    )
    .expect("update one label");
    assert_eq!(info.info.expect("info").labels.len(), 2);
    let labels = c.stat("ns/2/sha256:aa").unwrap().labels;
    assert_eq!(
        labels.get("containerd.io/gc.root").map(String::as_str),
        Some("t")
    );
    assert_eq!(
        labels.get("containerd.io/snapshot.ref").map(String::as_str),
        Some("sha256:aa")
    );
    // labels.KEY absent from the new labels deletes it.
    update(&["labels.containerd.io/gc.root"], &[]).expect("delete one label");
    assert_eq!(c.stat("ns/2/sha256:aa").unwrap().labels, reference);
    // Immutable fields are refused, and nothing changes.
    let err = update(&["parent"], &[]).expect_err("parent is immutable");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(c.stat("ns/2/sha256:aa").unwrap().labels, reference);
    let err = c
        .raw(|mut cl| async move { cl.update(proto::UpdateSnapshotRequest::default()).await })
        .expect_err("update without info");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Filters as containerd writes them.
    let names = |f: &[&str]| -> Vec<String> {
        c.list_filtered(f)
            .unwrap_or_else(|e| panic!("{f:?}: {e:?}"))
            .0
            .into_iter()
            .map(|i| i.name)
            .collect()
    };
    assert_eq!(names(&[]), ["ns/2/sha256:aa", "ns/3/run"]);
    assert_eq!(
        names(&[r#"labels."containerd.io/snapshot.ref"==sha256:aa"#]),
        ["ns/2/sha256:aa"]
    );
    assert_eq!(names(&["kind==active"]), ["ns/3/run"]);
    assert_eq!(
        names(&["parent==ns/2/sha256:aa,kind==active"]),
        ["ns/3/run"]
    );
    assert_eq!(
        names(&["kind==view", "name==ns/2/sha256:aa"]),
        ["ns/2/sha256:aa"]
    );
    for bad in ["size>3", "name~=ns", "nosuch==1"] {
        let err = c.list_filtered(&[bad]).expect_err(bad);
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
    }

    // Bad labels are refused before anything is made.
    let req = proto::PrepareSnapshotRequest {
        snapshotter: s("berth"),
        key: s("bad"),
        parent: String::new(),
        labels: HashMap::from([(s("k"), "v".repeat(5000))]),
    };
    let err = c
        .raw(|mut cl| async move { cl.prepare(req).await })
        .expect_err("oversized label");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(matches!(c.stat("bad"), Err(SnapshotError::NotFound(_))));
}

#[test]
fn list_streams_in_batches() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let c = GrpcSnapshots::connect(&server.socket);
    for i in 0..250 {
        c.prepare(&format!("k{i:03}"), None, BTreeMap::new())
            .unwrap();
    }
    let (infos, messages) = c.list_filtered(&[]).unwrap();
    assert_eq!(infos.len(), 250);
    assert!(messages >= 3, "250 snapshots in {messages} messages");
    let (some, _) = c.list_filtered(&["name==k123", "name==k200"]).unwrap();
    assert_eq!(some.len(), 2);
}

#[test]
fn usage_and_cleanup() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let c = GrpcSnapshots::connect(&server.socket);
    c.prepare("k", None, BTreeMap::new()).unwrap();
    assert!(c.usage("k").unwrap().inodes >= 1);
    assert!(matches!(c.usage("nope"), Err(SnapshotError::NotFound(_))));
    // What a crash leaves: a directory without a record. Cleanup removes it.
    let orphan = server.root.join("snapshots/987654/fs");
    fs::create_dir_all(&orphan).unwrap();
    c.raw(|mut cl| async move {
        cl.cleanup(proto::CleanupRequest {
            snapshotter: s("berth"),
        })
        .await
    })
    .expect("cleanup");
    assert!(!server.root.join("snapshots/987654").exists());
    assert_eq!(c.list().unwrap().len(), 1, "cleanup kept the live snapshot");
    c.mounts("k").expect("live snapshot still has mounts");
}

#[test]
fn socket_life_cycle() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    // A socket file left by a crashed run is replaced.
    let socket = dir.path().join("run/snapshotter.sock");
    fs::create_dir_all(socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let mut server = Server::start(dir.path());
    let c = GrpcSnapshots::connect(&server.socket);
    c.prepare("k", None, BTreeMap::new()).unwrap();

    // A second server on the live socket refuses and leaves it alone.
    let o = Command::new(BIN)
        .arg("--root")
        .arg(dir.path().join("root2"))
        .arg("--address")
        .arg(&socket)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already listening"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    c.stat("k").expect("first server still serves");
    drop(c);

    // SIGTERM: a clean exit and no socket left.
    let st = server.stop();
    assert!(st.success(), "exit after SIGTERM: {st}: {}", server.log());
    assert!(!socket.exists(), "socket left after SIGTERM");

    // The snapshots outlive the server.
    let server = Server::start(dir.path());
    let c = GrpcSnapshots::connect(&server.socket);
    assert_eq!(c.list().unwrap().len(), 1);
}

#[test]
fn refuses_a_non_socket_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("precious");
    fs::write(&file, "data").unwrap();
    let o = Command::new(BIN)
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--address")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "data");
}
