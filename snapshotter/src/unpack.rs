//! Unpacking an image's layers into committed snapshots named by chain ID
//! (image-spec `config.md#layer-chainid`): per layer prepare → apply into the upper
//! dir → check the diff_id → commit. Layers already unpacked are reused, so images
//! sharing a base share its snapshots.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::apply::{ApplyError, apply_layer_with_parents};
use crate::content::{ContentError, ContentStore};
use crate::digest::Digest;
use crate::snapshots::{Kind, SnapshotError, Snapshotter};

/// Label on committed layer snapshots: the layer's diff_id.
pub const LABEL_DIFF_ID: &str = "berth.io/diff-id";

/// Unpack errors.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The manifest's layer list and the config's diff_ids differ in length.
    #[error("image has {layers} layers but {diff_ids} diff_ids")]
    LayerCount {
        /// Number of layers in the manifest.
        layers: usize,
        /// Number of diff_ids in the config.
        diff_ids: usize,
    },
    /// The uncompressed layer does not hash to the config's diff_id.
    #[error("layer {layer}: uncompressed digest {actual} does not match diff_id {expected}")]
    DiffIdMismatch {
        /// Layer blob digest (or index).
        layer: String,
        /// diff_id from the config.
        expected: Digest,
        /// What the layer hashed to.
        actual: Digest,
    },
    /// Applying a layer failed.
    #[error("layer {layer}: {source}")]
    Apply {
        /// Layer blob digest.
        layer: String,
        /// The applier's error.
        #[source]
        source: ApplyError,
    },
    /// Flushing the applied layer to disk failed.
    #[error("layer {layer}: syncfs: {source}")]
    Sync {
        /// Layer blob digest.
        layer: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A layer blob is missing or unreadable.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Snapshotter failure.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// Chain IDs of a layer stack, base first: `ChainID(L0) = DiffID(L0)`,
/// `ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::sha256_of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

fn unique_key(chain: &Digest) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "extract-{}-{}-{}-{chain}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Apply one layer (read from `reader`, e.g. a blob or a download being teed into the
/// content store) on top of committed snapshot `parent`, and commit it as `chain_id`
/// if its diff_id matches. An existing committed `chain_id` is reused and `reader`
/// left unread. On any failure the active snapshot is removed.
pub fn unpack_layer(
    snapshotter: &Snapshotter,
    parent: Option<&str>,
    chain_id: &Digest,
    diff_id: &Digest,
    reader: impl Read,
    media_type: &str,
    layer_name: &str,
) -> Result<(), UnpackError> {
    let chain = chain_id.to_string();
    match snapshotter.stat(&chain) {
        Ok(info) if info.kind == Kind::Committed => return Ok(()),
        Ok(_) => {
            return Err(SnapshotError::FailedPrecondition {
                key: chain,
                reason: "a snapshot with this chain ID exists but is not committed",
            }
            .into());
        }
        Err(SnapshotError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let key = unique_key(chain_id);
    let labels = BTreeMap::from([(LABEL_DIFF_ID.to_string(), diff_id.to_string())]);
    snapshotter.prepare(&key, parent, labels.clone())?;
    let result = (|| {
        let upper = snapshotter.upper_dir(&key)?;
        let lowers = snapshotter.parent_dirs(&key)?;
        let lowers: Vec<&std::path::Path> = lowers.iter().map(|p| p.as_path()).collect();
        let applied =
            apply_layer_with_parents(&upper, &lowers, reader, media_type).map_err(|source| {
                UnpackError::Apply {
                    layer: layer_name.to_owned(),
                    source,
                }
            })?;
        if applied.diff_id != *diff_id {
            return Err(UnpackError::DiffIdMismatch {
                layer: layer_name.to_owned(),
                expected: diff_id.clone(),
                actual: applied.diff_id,
            });
        }
        // The layer must be on disk before a committed record points at it.
        std::fs::File::open(&upper)
            .and_then(|f| nix::unistd::syncfs(&f).map_err(std::io::Error::from))
            .map_err(|source| UnpackError::Sync {
                layer: layer_name.to_owned(),
                source,
            })?;
        match snapshotter.commit(&chain, &key, labels) {
            Ok(()) => Ok(()),
            // Another unpack of the same chain committed first: theirs is identical.
            Err(SnapshotError::AlreadyExists(_)) => {
                snapshotter.remove(&key)?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    })();
    if result.is_err() {
        let _ = snapshotter.remove(&key);
    }
    result
}

/// Unpack an image's layers (blob digest and media type, base first) from the content
/// store into snapshots, checking each against `diff_ids`. Returns the chain ID of the
/// top layer: `snapshotter.prepare(key, Some(&chain_id), …)` gives a container rootfs.
/// If a garbage collection may run meanwhile, hold a
/// [`Lease`](crate::meta::Lease) on the layer blobs and their chain IDs (as
/// [`pull`](crate::pull::pull) does) until something references the result.
pub fn unpack_image(
    content: &ContentStore,
    snapshotter: &Snapshotter,
    layers: &[(Digest, String)],
    diff_ids: &[Digest],
) -> Result<String, UnpackError> {
    if layers.len() != diff_ids.len() || layers.is_empty() {
        return Err(UnpackError::LayerCount {
            layers: layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let chains = chain_ids(diff_ids);
    let mut parent: Option<String> = None;
    for (((digest, media_type), diff_id), chain) in layers.iter().zip(diff_ids).zip(&chains) {
        let chain_s = chain.to_string();
        let done = matches!(snapshotter.stat(&chain_s), Ok(i) if i.kind == Kind::Committed);
        if !done {
            let blob = content.open_blob(digest)?;
            unpack_layer(
                snapshotter,
                parent.as_deref(),
                chain,
                diff_id,
                BufReader::with_capacity(256 * 1024, blob),
                media_type,
                &digest.to_string(),
            )?;
        }
        parent = Some(chain_s);
    }
    Ok(parent.expect("at least one layer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_formula() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let c = Digest::sha256_of(b"c");
        let ids = chain_ids(&[a.clone(), b.clone(), c.clone()]);
        assert_eq!(ids[0], a);
        let ab = Digest::sha256_of(format!("{a} {b}").as_bytes());
        assert_eq!(ids[1], ab);
        assert_eq!(ids[2], Digest::sha256_of(format!("{ab} {c}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn chain_id_known_vector() {
        // Expected value from `printf "%s %s" A B | sha256sum` (coreutils).
        let a: Digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
            .parse()
            .unwrap();
        let b: Digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
            .parse()
            .unwrap();
        assert_eq!(
            chain_ids(&[a, b])[1].to_string(),
            "sha256:f94b891e05f6e37c90d87edfd5bb98a02d618a437c35f3a94b3b00e48e894631"
        );
    }
}
