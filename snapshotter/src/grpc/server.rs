//! The snapshots service: a thin translation of each RPC onto [`Snapshotter`], whose
//! blocking calls run on tokio's blocking pool.

use std::future::Future;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use super::convert::{
    apply_update, error_to_status, info_to_proto, labels_from_proto, mount_to_proto,
    parent_from_proto, usage_to_proto,
};
use super::filter::Filters;
use super::proto;
use super::proto::snapshots_server::{Snapshots as SnapshotsApi, SnapshotsServer};
use crate::snapshots::{SnapshotError, Snapshotter};

/// How many snapshots one `List` response message carries.
const LIST_BATCH: usize = 100;

/// containerd's `Snapshots` service over one [`Snapshotter`].
#[derive(Debug, Clone)]
pub struct SnapshotsService {
    snapshotter: Arc<Snapshotter>,
    /// Serialises `Update`, which reads the labels and writes them back.
    update_lock: Arc<tokio::sync::Mutex<()>>,
}

impl SnapshotsService {
    /// A service over `snapshotter`.
    pub fn new(snapshotter: Snapshotter) -> SnapshotsService {
        SnapshotsService {
            snapshotter: Arc::new(snapshotter),
            update_lock: Arc::default(),
        }
    }

    /// Run `f` on the snapshotter in the blocking pool, mapping its error to a status.
    async fn blocking<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Snapshotter) -> Result<T, SnapshotError> + Send + 'static,
    {
        let s = Arc::clone(&self.snapshotter);
        tokio::task::spawn_blocking(move || f(&s))
            .await
            .map_err(|e| Status::internal(format!("snapshotter task failed: {e}")))?
            .map_err(|e| error_to_status(&e))
    }
}

fn mounts_to_proto(ms: &[crate::Mount]) -> Vec<proto::Mount> {
    ms.iter().map(mount_to_proto).collect()
}

#[tonic::async_trait]
impl SnapshotsApi for SnapshotsService {
    async fn prepare(
        &self,
        req: Request<proto::PrepareSnapshotRequest>,
    ) -> Result<Response<proto::PrepareSnapshotResponse>, Status> {
        let r = req.into_inner();
        let labels = labels_from_proto(r.labels)?;
        let mounts = self
            .blocking(move |s| s.prepare(&r.key, parent_from_proto(&r.parent), labels))
            .await?;
        Ok(Response::new(proto::PrepareSnapshotResponse {
            mounts: mounts_to_proto(&mounts),
        }))
    }

    async fn view(
        &self,
        req: Request<proto::ViewSnapshotRequest>,
    ) -> Result<Response<proto::ViewSnapshotResponse>, Status> {
        let r = req.into_inner();
        let labels = labels_from_proto(r.labels)?;
        let mounts = self
            .blocking(move |s| s.view(&r.key, parent_from_proto(&r.parent), labels))
            .await?;
        Ok(Response::new(proto::ViewSnapshotResponse {
            mounts: mounts_to_proto(&mounts),
        }))
    }

    async fn mounts(
        &self,
        req: Request<proto::MountsRequest>,
    ) -> Result<Response<proto::MountsResponse>, Status> {
        let r = req.into_inner();
        let mounts = self.blocking(move |s| s.mounts(&r.key)).await?;
        Ok(Response::new(proto::MountsResponse {
            mounts: mounts_to_proto(&mounts),
        }))
    }

    async fn commit(
        &self,
        req: Request<proto::CommitSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        let labels = labels_from_proto(r.labels)?;
        self.blocking(move |s| s.commit(&r.name, &r.key, labels))
            .await?;
        Ok(Response::new(()))
    }

    async fn remove(
        &self,
        req: Request<proto::RemoveSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.into_inner();
        self.blocking(move |s| s.remove(&r.key)).await?;
        Ok(Response::new(()))
    }

    async fn stat(
        &self,
        req: Request<proto::StatSnapshotRequest>,
    ) -> Result<Response<proto::StatSnapshotResponse>, Status> {
        let r = req.into_inner();
        let info = self.blocking(move |s| s.stat(&r.key)).await?;
        Ok(Response::new(proto::StatSnapshotResponse {
            info: Some(info_to_proto(&info)),
        }))
    }

    async fn update(
        &self,
        req: Request<proto::UpdateSnapshotRequest>,
    ) -> Result<Response<proto::UpdateSnapshotResponse>, Status> {
        let r = req.into_inner();
        let info = r
            .info
            .ok_or_else(|| Status::invalid_argument("update: missing info"))?;
        let new = labels_from_proto(info.labels)?;
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let key = info.name;
        // Reject a bad mask before touching anything.
        apply_update(&Default::default(), &new, &paths)?;
        let _guard = self.update_lock.lock().await;
        let info = self
            .blocking(move |s| {
                let cur = s.stat(&key)?;
                let labels = apply_update(&cur.labels, &new, &paths)
                    .expect("the mask was checked above and does not depend on the labels");
                s.update(&key, labels)
            })
            .await?;
        Ok(Response::new(proto::UpdateSnapshotResponse {
            info: Some(info_to_proto(&info)),
        }))
    }

    type ListStream =
        tokio_stream::Iter<std::vec::IntoIter<Result<proto::ListSnapshotsResponse, Status>>>;

    async fn list(
        &self,
        req: Request<proto::ListSnapshotsRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let r = req.into_inner();
        let filters =
            Filters::parse(&r.filters).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let infos = self.blocking(|s| s.list()).await?;
        let selected: Vec<proto::Info> = infos
            .iter()
            .filter(|i| filters.matches(i))
            .map(info_to_proto)
            .collect();
        let batches: Vec<_> = selected
            .chunks(LIST_BATCH)
            .map(|c| Ok(proto::ListSnapshotsResponse { info: c.to_vec() }))
            .collect();
        Ok(Response::new(tokio_stream::iter(batches)))
    }

    async fn usage(
        &self,
        req: Request<proto::UsageRequest>,
    ) -> Result<Response<proto::UsageResponse>, Status> {
        let r = req.into_inner();
        let usage = self.blocking(move |s| s.usage(&r.key)).await?;
        Ok(Response::new(usage_to_proto(usage)?))
    }

    /// Removes snapshot directories no record refers to (what a crash leaves).
    async fn cleanup(&self, _req: Request<proto::CleanupRequest>) -> Result<Response<()>, Status> {
        self.blocking(|s| s.remove_orphans()).await?;
        Ok(Response::new(()))
    }
}

/// Serve `snapshotter` as containerd's snapshots service on `listener` until
/// `shutdown` completes; in-flight calls finish first.
pub async fn serve(
    snapshotter: Snapshotter,
    listener: UnixListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(SnapshotsServer::new(SnapshotsService::new(snapshotter)))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
}

/// Default socket of `berth-snapshotter`.
pub const DEFAULT_ADDRESS: &str = "/run/berth/snapshotter.sock";

/// Why the service socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A live server already answers on the socket.
    #[error("{0}: another server is already listening there")]
    InUse(PathBuf),
    /// Something other than a socket is in the way; it is left alone.
    #[error("{0}: exists and is not a socket; refusing to remove it")]
    NotSocket(PathBuf),
    /// A filesystem or socket call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The socket path or its directory.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Bind a unix socket at `path` for the service: create its directory, remove a stale
/// socket a previous run left (one that nothing answers on), and refuse to touch a live
/// socket or a file that is not a socket. The socket is mode 0600 (root's containerd
/// connects); a directory made for it is 0700.
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, BindError> {
    let io = |op: &'static str, p: &Path| {
        let path = p.to_owned();
        move |source| BindError::Io { op, path, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // A directory made here is private; an existing one keeps its mode.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create directory", dir))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(io("remove stale socket", path))?;
        }
        Ok(_) => return Err(BindError::NotSocket(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("stat", path)(e)),
    }
    let l = std::os::unix::net::UnixListener::bind(path).map_err(io("bind", path))?;
    // Whoever can connect can change every snapshot: root (containerd) only.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io("chmod", path))?;
    l.set_nonblocking(true)
        .map_err(io("set non-blocking", path))?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_replaces_a_stale_socket_and_refuses_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("sub/s.sock");
        let live = bind(&sock).expect("first bind creates the directory");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&sock), 0o600, "socket only for its owner");
        assert_eq!(
            mode(&dir.path().join("sub")),
            0o700,
            "new directory is private"
        );
        assert!(matches!(bind(&sock), Err(BindError::InUse(_))));
        drop(live);
        // The file stays after the listener is gone: a stale socket, replaced.
        assert!(sock.exists());
        let _again = bind(&sock).expect("stale socket replaced");
        let file = dir.path().join("plain");
        std::fs::write(&file, "keep").expect("write");
        assert!(matches!(bind(&file), Err(BindError::NotSocket(_))));
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "keep");
    }
}
