//! Pulling an image: resolve the reference → fetch manifest, config and layers into the
//! content store (each verified before it becomes visible) → unpack into chain-ID
//! snapshots → write the image record. A pull that dies at any point leaves only
//! verified blobs and resumable ingests; running it again completes it. Two pulls of one
//! image share work through the content store's per-digest ingest lock and the
//! snapshotter's chain-ID reuse.
//!
//! Garbage collection may run during a pull: the pull holds a [`Lease`] on every blob
//! and chain-ID snapshot it is about to fetch, reuse or create, from before it touches
//! them until its image record is written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::task::JoinSet;

use crate::content::{ContentError, ContentStore};
use crate::digest::Digest;
use crate::gc::LABEL_GC_REF_CONTENT;
use crate::images::ImageRecord;
use crate::meta::{Lease, MetaError, MetaStore};
use crate::remote::client::ProgressSender;
use crate::remote::manifest::{self, Document, ImageManifest};
use crate::remote::{
    Credentials, Platform, Progress, Reference, ReferenceError, RegistryClient, RemoteError,
    RetryPolicy,
};
use crate::snapshots::Snapshotter;
use crate::unpack::{UnpackError, chain_ids, unpack_layer};

/// Pull errors.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The reference is not valid.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// Talking to the registry failed, or it served bad content.
    #[error("pull {reference}: {source}")]
    Remote {
        /// The reference being pulled.
        reference: String,
        /// What failed.
        source: RemoteError,
    },
    /// The index has a nested index or the document is not an image.
    #[error("pull {reference}: {message}")]
    BadImage {
        /// The reference being pulled.
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// Unpacking failed (including a diff_id mismatch).
    #[error("pull {reference}: {source}")]
    Unpack {
        /// The reference being pulled.
        reference: String,
        /// What failed.
        source: UnpackError,
    },
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A task panicked or was cancelled.
    #[error("pull task failed: {0}")]
    Task(String),
}

type Result<T> = std::result::Result<T, PullError>;

impl PullError {
    /// The registry has no such image (CRI: NotFound).
    pub fn is_not_found(&self) -> bool {
        matches!(self, PullError::Remote { source, .. } if source.is_not_found())
    }

    /// The registry refused or wanted credentials (CRI: Unauthenticated).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, PullError::Remote { source, .. } if source.is_unauthorized())
    }
}

/// Where a pull stores what it fetches.
#[derive(Clone)]
pub struct Stores {
    /// Blobs.
    pub content: Arc<ContentStore>,
    /// Snapshots the layers unpack into.
    pub snapshotter: Arc<Snapshotter>,
    /// Image records.
    pub meta: MetaStore,
}

/// How to pull.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Credentials for this pull (kubelet's `AuthConfig`).
    pub credentials: Credentials,
    /// containerd-style `certs.d` directory (e.g. /etc/berth/certs.d); None: defaults.
    pub hosts_dir: Option<PathBuf>,
    /// Platform to select from an index.
    pub platform: Platform,
    /// Layers downloaded at once (at least 1).
    pub max_concurrent_downloads: usize,
    /// Retries on 5xx / connection errors.
    pub retry: RetryPolicy,
    /// Where progress events go.
    pub progress: Option<ProgressSender>,
    /// Called (on a blocking thread) at fixed points of the pull: a failpoint seam for
    /// tests and tools, as containerd's failpoint wrappers.
    pub hook: Option<PullHook>,
}

/// A point in a pull where [`PullOptions::hook`] is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullStage {
    /// Every blob is stored and every layer unpacked; the image record is not written
    /// yet, so only the pull's lease keeps its work from garbage collection.
    Unpacked,
}

/// A function called at each [`PullStage`].
#[derive(Clone)]
pub struct PullHook(pub Arc<dyn Fn(PullStage) + Send + Sync>);

impl std::fmt::Debug for PullHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PullHook")
    }
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            credentials: Credentials::Anonymous,
            hosts_dir: None,
            platform: Platform::linux_amd64(),
            max_concurrent_downloads: 3,
            retry: RetryPolicy::default(),
            progress: None,
            hook: None,
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, ContentError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PullError::Task(e.to_string()))?
        .map_err(PullError::from)
}

/// Add blobs and snapshots to `lease`, off the async threads: the addition waits while
/// a garbage collection runs.
async fn lease_add(lease: &Arc<Lease>, blobs: Vec<Digest>, snapshots: Vec<String>) -> Result<()> {
    let lease = lease.clone();
    tokio::task::spawn_blocking(move || lease.add(&blobs, snapshots.iter().map(String::as_str)))
        .await
        .map_err(|e| PullError::Task(e.to_string()))
}

/// Pulls `reference` into `stores` and returns the stored image record.
pub async fn pull(stores: &Stores, reference: &str, opts: &PullOptions) -> Result<ImageRecord> {
    // Held until the image record references everything (dropped on every return).
    let lease = Arc::new(stores.meta.lease());
    let r = Reference::parse(reference)?;
    let name = r.to_string();
    let remote = |source| PullError::Remote {
        reference: name.clone(),
        source,
    };
    let client = Arc::new(
        RegistryClient::new(
            &r,
            opts.hosts_dir.as_deref(),
            opts.credentials.clone(),
            opts.retry,
        )
        .map_err(remote)?,
    );
    let (target, ct, body) = client
        .fetch_manifest(&r.object(), r.digest.as_ref())
        .await
        .map_err(remote)?;
    send(
        &opts.progress,
        Progress::Resolved {
            digest: target.clone(),
        },
    );
    lease_add(&lease, vec![target.clone()], vec![]).await?;
    let doc = manifest::parse_document(&ct, &body).map_err(|e| remote(e.into()))?;
    let mut size = body.len() as u64;
    let (target_type, image, manifest_digest, manifest_body) = match doc {
        Document::Manifest(m) => (m.media_type.clone(), m, target.clone(), body.clone()),
        Document::Index(index) => {
            let d = manifest::select_platform(&index, &opts.platform)
                .map_err(|e| remote(e.into()))?
                .clone();
            lease_add(&lease, vec![d.digest.clone()], vec![]).await?;
            let (md, mct, mbody) = client
                .fetch_manifest(&d.digest.to_string(), Some(&d.digest))
                .await
                .map_err(remote)?;
            let m = match manifest::parse_document(&mct, &mbody).map_err(|e| remote(e.into()))? {
                Document::Manifest(m) => m,
                Document::Index(_) => {
                    return Err(PullError::BadImage {
                        reference: name.clone(),
                        message: format!("index entry {} is itself an index", d.digest),
                    });
                }
            };
            if m.media_type != d.media_type {
                return Err(PullError::BadImage {
                    reference: name.clone(),
                    message: format!(
                        "index says {} is {} but it is {}",
                        d.digest, d.media_type, m.media_type
                    ),
                });
            }
            size += mbody.len() as u64;
            (index.media_type.clone(), m, md, mbody)
        }
    };
    // The manifest documents are verified already; store them.
    if manifest_digest != target {
        let (c, d, b) = (
            stores.content.clone(),
            manifest_digest.clone(),
            manifest_body,
        );
        blocking(move || c.put_bytes(&d, &b).map(|_| ())).await?;
    }

    // Config first (small, and it says how many layers there must be).
    lease_add(&lease, vec![image.config.digest.clone()], vec![]).await?;
    let cfg_info = client
        .fetch_blob(&image.config, &stores.content, &opts.progress)
        .await
        .map_err(remote)?;
    size += cfg_info.size;
    let cfg_bytes = {
        let (c, d) = (stores.content.clone(), image.config.digest.clone());
        blocking(move || c.read_all(&d, manifest::MAX_CONFIG)).await?
    };
    let config =
        manifest::parse_config(&cfg_bytes, image.layers.len()).map_err(|e| remote(e.into()))?;
    if !opts.platform.fits_config(&config.os, &config.architecture) {
        return Err(PullError::BadImage {
            reference: name.clone(),
            message: format!(
                "image is for {}/{}, not {}",
                config.os, config.architecture, opts.platform
            ),
        });
    }

    let layers: Vec<(Digest, String)> = image
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.media_type.clone()))
        .collect();
    lease_add(
        &lease,
        layers.iter().map(|(d, _)| d.clone()).collect(),
        chain_ids(&config.diff_ids)
            .iter()
            .map(Digest::to_string)
            .collect(),
    )
    .await?;
    let (layer_bytes, chain_id) = fetch_and_unpack(&client, &image, &config.diff_ids, stores, opts)
        .await
        .map_err(|e| match e {
            Staged::Remote(source) => remote(source),
            Staged::Unpack(source) => PullError::Unpack {
                reference: name.clone(),
                source,
            },
            Staged::Task(m) => PullError::Task(m),
        })?;
    size += layer_bytes;
    if let Some(hook) = &opts.hook {
        let f = hook.0.clone();
        tokio::task::spawn_blocking(move || f(PullStage::Unpacked))
            .await
            .map_err(|e| PullError::Task(e.to_string()))?;
    }

    // Only now does the top document become visible: every blob it names is stored.
    {
        let (c, d, b) = (stores.content.clone(), target.clone(), body);
        blocking(move || c.put_bytes(&d, &b).map(|_| ())).await?;
    }
    if manifest_digest != target {
        let labels = BTreeMap::from([(
            format!("{LABEL_GC_REF_CONTENT}m.0"),
            manifest_digest.to_string(),
        )]);
        stores.meta.set_content_labels(&target, &labels)?;
    }
    let record = ImageRecord {
        name,
        target,
        media_type: target_type,
        config: image.config.digest.clone(),
        layers: layers.into_iter().map(|(d, _)| d).collect(),
        diff_ids: config.diff_ids,
        chain_id,
        size,
        created: SystemTime::now(),
        labels: BTreeMap::new(),
    };
    stores.meta.put_image(&record)?;
    drop(lease);
    send(&opts.progress, Progress::Done);
    Ok(record)
}

fn send(p: &Option<ProgressSender>, ev: Progress) {
    if let Some(tx) = p {
        let _ = tx.send(ev);
    }
}

enum Staged {
    Remote(RemoteError),
    Unpack(UnpackError),
    Task(String),
}

/// Downloads every layer (at most `max_concurrent_downloads` at once) and unpacks each,
/// in order, as soon as it and the layers below it are stored, so unpacking overlaps the
/// downloads. Returns the layers' total size and the top chain ID. On the first error the
/// other downloads are cancelled (their partial ingests stay, invisible, for a later
/// resume) and unpacking stops.
async fn fetch_and_unpack(
    client: &Arc<RegistryClient>,
    image: &ImageManifest,
    diff_ids: &[Digest],
    stores: &Stores,
    opts: &PullOptions,
) -> std::result::Result<(u64, String), Staged> {
    let limit = Arc::new(tokio::sync::Semaphore::new(
        opts.max_concurrent_downloads.max(1),
    ));
    // One "stored" signal per distinct blob; every layer index waits on its blob's.
    let mut signals: std::collections::HashMap<Digest, tokio::sync::watch::Receiver<bool>> =
        std::collections::HashMap::new();
    let mut set = JoinSet::new();
    for l in &image.layers {
        if signals.contains_key(&l.digest) {
            continue;
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        signals.insert(l.digest.clone(), rx);
        let (client, desc, content, progress, limit) = (
            client.clone(),
            l.clone(),
            stores.content.clone(),
            opts.progress.clone(),
            limit.clone(),
        );
        set.spawn(async move {
            let _permit = limit
                .acquire_owned()
                .await
                .map_err(|e| RemoteError::Task(e.to_string()))?;
            let info = client.fetch_blob(&desc, &content, &progress).await?;
            let _ = tx.send(true);
            Ok::<_, RemoteError>(info)
        });
    }
    let waits: Vec<tokio::sync::watch::Receiver<bool>> = image
        .layers
        .iter()
        .map(|l| signals[&l.digest].clone())
        .collect();
    let layers: Vec<(Digest, String)> = image
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.media_type.clone()))
        .collect();
    let (content, snapshotter, diff_ids, progress) = (
        stores.content.clone(),
        stores.snapshotter.clone(),
        diff_ids.to_vec(),
        opts.progress.clone(),
    );
    let handle = tokio::runtime::Handle::current();
    let mut unpacker = tokio::task::spawn_blocking(
        move || -> std::result::Result<Option<String>, UnpackError> {
            if layers.len() != diff_ids.len() || layers.is_empty() {
                return Err(UnpackError::LayerCount {
                    layers: layers.len(),
                    diff_ids: diff_ids.len(),
                });
            }
            let chains = chain_ids(&diff_ids);
            let mut parent: Option<String> = None;
            for (i, (digest, media_type)) in layers.iter().enumerate() {
                let mut w = waits[i].clone();
                // Ok(false): the download failed and dropped its sender; stop quietly.
                let stored = handle.block_on(async { w.wait_for(|v| *v).await.is_ok() });
                if !stored {
                    return Ok(None);
                }
                if i == 0 {
                    send(&progress, Progress::Unpacking);
                }
                let started = std::time::Instant::now();
                let blob = content.open_blob(digest)?;
                unpack_layer(
                    &snapshotter,
                    parent.as_deref(),
                    &chains[i],
                    &diff_ids[i],
                    std::io::BufReader::with_capacity(256 * 1024, blob),
                    media_type,
                    &digest.to_string(),
                )?;
                send(
                    &progress,
                    Progress::LayerUnpacked {
                        digest: digest.clone(),
                        micros: started.elapsed().as_micros() as u64,
                    },
                );
                parent = Some(chains[i].to_string());
            }
            Ok(parent)
        },
    );
    let mut total = 0;
    let mut unpacked = None;
    loop {
        tokio::select! {
            res = set.join_next(), if !set.is_empty() => match res {
                Some(Ok(Ok(info))) => total += info.size,
                Some(Ok(Err(e))) => {
                    set.abort_all();
                    // The unpacker sees the dropped signal and stops; wait for it so no
                    // snapshot work outlives the pull.
                    if unpacked.is_none() {
                        let _ = unpacker.await;
                    }
                    return Err(Staged::Remote(e));
                }
                Some(Err(e)) => {
                    set.abort_all();
                    if unpacked.is_none() {
                        let _ = unpacker.await;
                    }
                    return Err(Staged::Task(e.to_string()));
                }
                None => {}
            },
            res = &mut unpacker, if unpacked.is_none() => {
                match res {
                    Ok(Ok(Some(chain))) => unpacked = Some(chain),
                    Ok(Ok(None)) => {
                        // A download failed; its error arrives through join_next.
                        unpacked = Some(String::new());
                    }
                    Ok(Err(e)) => {
                        set.abort_all();
                        return Err(Staged::Unpack(e));
                    }
                    Err(e) => {
                        set.abort_all();
                        return Err(Staged::Task(e.to_string()));
                    }
                }
            }
        }
        if set.is_empty() && unpacked.is_some() {
            break;
        }
    }
    match unpacked {
        Some(c) if !c.is_empty() => Ok((total, c)),
        _ => Err(Staged::Task("unpack stopped without an error".into())),
    }
}
