//! Garbage collection of blobs and snapshots that nothing references
//! (mark and sweep, as containerd's `core/metadata/gc.go`, much reduced).
//!
//! Roots:
//! - every image record: its target, config and layer blobs, and its chain-ID snapshot;
//! - blobs and snapshots labelled [`LABEL_GC_ROOT`];
//! - every active snapshot and view (a container rootfs or an unpack in progress);
//! - every blob and snapshot held by a live [`Lease`](crate::meta::Lease): a pull leases
//!   its manifest, config and layer blobs and its chain-ID snapshots before fetching or
//!   reusing them, and drops the lease once its image record is written.
//!
//! References: a marked blob's labels `berth.io/gc.ref.content.<anything>=<digest>`
//! mark that digest too (an index marks its platform manifests this way); a marked
//! snapshot marks its parents.
//!
//! A collection holds the store's lease table from before it lists anything until its
//! last deletion ([`MetaStore::gc_lock`]), so it runs serialized with every lease
//! addition: what a pull leased before the collection began is kept, and what it
//! leases after the collection ended it checks afresh. Pulls may therefore run during
//! a collection. Ingests in progress are not blobs and are never touched.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::content::{ContentError, ContentStore};
use crate::digest::Digest;
use crate::images::ImageRecord;
use crate::meta::{Leased, MetaError, MetaStore};
use crate::snapshots::{Info, Kind, SnapshotError, Snapshotter};

/// Label that keeps a blob or a snapshot regardless of references.
pub const LABEL_GC_ROOT: &str = "berth.io/gc.root";
/// Prefix of blob labels whose value is the digest of another blob to keep.
pub const LABEL_GC_REF_CONTENT: &str = "berth.io/gc.ref.content.";

/// GC errors.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Metadata store failure.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// Content store failure.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Snapshotter failure.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// What a collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs_removed: Vec<Digest>,
    /// Bytes those blobs held.
    pub bytes_freed: u64,
    /// Snapshots removed, children before parents.
    pub snapshots_removed: Vec<String>,
}

/// What to delete (pure): unreferenced blobs, and unreferenced committed snapshots
/// ordered children first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// Blobs to delete.
    pub blobs: Vec<Digest>,
    /// Snapshots to remove, deepest first.
    pub snapshots: Vec<String>,
}

/// Compute what nothing references.
pub fn plan(
    images: &[ImageRecord],
    blobs: &[Digest],
    blob_labels: &HashMap<Digest, BTreeMap<String, String>>,
    snapshots: &[Info],
    leased: &Leased,
) -> GcPlan {
    // Content: mark from roots, following gc.ref.content labels.
    let mut marked: HashSet<Digest> = HashSet::new();
    let mut stack: Vec<Digest> = leased.blobs.iter().cloned().collect();
    for img in images {
        stack.push(img.target.clone());
        stack.push(img.config.clone());
        stack.extend(img.layers.iter().cloned());
    }
    for (d, labels) in blob_labels {
        if labels.contains_key(LABEL_GC_ROOT) {
            stack.push(d.clone());
        }
    }
    while let Some(d) = stack.pop() {
        if !marked.insert(d.clone()) {
            continue;
        }
        if let Some(labels) = blob_labels.get(&d) {
            for (k, v) in labels {
                if k.starts_with(LABEL_GC_REF_CONTENT)
                    && let Ok(r) = v.parse::<Digest>()
                {
                    stack.push(r);
                }
            }
        }
    }
    let mut dead_blobs: Vec<Digest> = blobs
        .iter()
        .filter(|d| !marked.contains(d))
        .cloned()
        .collect();
    dead_blobs.sort();

    // Snapshots: mark roots and their parents.
    let by_name: HashMap<&str, &Info> = snapshots.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut live: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = leased.snapshots.iter().map(String::as_str).collect();
    for img in images {
        stack.push(img.chain_id.as_str());
    }
    for s in snapshots {
        if s.kind != Kind::Committed || s.labels.contains_key(LABEL_GC_ROOT) {
            stack.push(s.name.as_str());
        }
    }
    while let Some(n) = stack.pop() {
        let Some(info) = by_name.get(n) else { continue };
        if !live.insert(info.name.as_str()) {
            continue;
        }
        if let Some(p) = &info.parent {
            stack.push(p.as_str());
        }
    }
    let depth = |name: &str| {
        let mut d = 0usize;
        let mut cur = by_name.get(name).copied();
        while let Some(p) = cur.and_then(|i| i.parent.as_deref()) {
            d += 1;
            cur = by_name.get(p).copied();
            if d > by_name.len() {
                break;
            }
        }
        d
    };
    let mut dead_snaps: Vec<(usize, String)> = snapshots
        .iter()
        .filter(|s| !live.contains(s.name.as_str()))
        .map(|s| (depth(&s.name), s.name.clone()))
        .collect();
    dead_snaps.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    GcPlan {
        blobs: dead_blobs,
        snapshots: dead_snaps.into_iter().map(|(_, n)| n).collect(),
    }
}

/// Delete every blob and snapshot no image, root label, active snapshot or live lease
/// references. Lease additions wait while it runs.
pub fn collect(
    meta: &MetaStore,
    content: &ContentStore,
    snapshotter: &Snapshotter,
) -> Result<GcReport, GcError> {
    let lock = meta.gc_lock();
    let leased = lock.leased();
    let images = meta.list_images()?;
    let blob_infos = content.list()?;
    let blobs: Vec<Digest> = blob_infos.iter().map(|b| b.digest.clone()).collect();
    let labels: HashMap<Digest, BTreeMap<String, String>> =
        meta.list_content_labels()?.into_iter().collect();
    let snapshots = snapshotter.list()?;
    let p = plan(&images, &blobs, &labels, &snapshots, &leased);
    let sizes: HashMap<&Digest, u64> = blob_infos.iter().map(|b| (&b.digest, b.size)).collect();
    let mut report = GcReport::default();
    for s in p.snapshots {
        snapshotter.remove(&s)?;
        report.snapshots_removed.push(s);
    }
    for d in p.blobs {
        if content.delete(&d)? {
            report.bytes_freed += sizes.get(&d).copied().unwrap_or(0);
        }
        if labels.contains_key(&d) {
            meta.set_content_labels(&d, &BTreeMap::new())?;
        }
        report.blobs_removed.push(d);
    }
    drop(lock);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn d(s: &str) -> Digest {
        Digest::sha256_of(s.as_bytes())
    }

    fn snap(name: &str, parent: Option<&str>, kind: Kind, root: bool) -> Info {
        let mut labels = BTreeMap::new();
        if root {
            labels.insert(LABEL_GC_ROOT.to_string(), "1".to_string());
        }
        Info {
            kind,
            name: name.into(),
            parent: parent.map(Into::into),
            labels,
            created: SystemTime::UNIX_EPOCH,
            updated: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn plan_marks_and_sweeps() {
        let img = ImageRecord {
            name: "img".into(),
            target: d("index"),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            config: d("config"),
            layers: vec![d("l1"), d("l2")],
            diff_ids: vec![],
            chain_id: "c2".into(),
            size: 0,
            created: SystemTime::UNIX_EPOCH,
            labels: BTreeMap::new(),
        };
        let blobs: Vec<Digest> = [
            "index",
            "manifest",
            "config",
            "l1",
            "l2",
            "orphan",
            "kept",
            "kept-child",
        ]
        .iter()
        .map(|s| d(s))
        .collect();
        let labels = HashMap::from([
            (
                d("index"),
                BTreeMap::from([(
                    format!("{LABEL_GC_REF_CONTENT}m.0"),
                    d("manifest").to_string(),
                )]),
            ),
            (
                d("kept"),
                BTreeMap::from([
                    (LABEL_GC_ROOT.to_string(), String::new()),
                    (
                        format!("{LABEL_GC_REF_CONTENT}x"),
                        d("kept-child").to_string(),
                    ),
                ]),
            ),
        ]);
        let snaps = vec![
            snap("c1", None, Kind::Committed, false),
            snap("c2", Some("c1"), Kind::Committed, false),
            snap("o1", None, Kind::Committed, false),
            snap("o2", Some("o1"), Kind::Committed, false),
            snap("o3", Some("o2"), Kind::Committed, false),
            snap("b1", None, Kind::Committed, false),
            snap("container", Some("b1"), Kind::Active, false),
            snap("r", None, Kind::Committed, true),
        ];
        let p = plan(
            std::slice::from_ref(&img),
            &blobs,
            &labels,
            &snaps,
            &Leased::default(),
        );
        assert_eq!(p.blobs, vec![d("orphan")]);
        assert_eq!(p.snapshots, ["o3", "o2", "o1"]);
        // Without the image, its blobs and chain go too; the container keeps b1.
        let p = plan(&[], &blobs, &labels, &snaps, &Leased::default());
        let mut want: Vec<Digest> = ["index", "manifest", "config", "l1", "l2", "orphan"]
            .iter()
            .map(|s| d(s))
            .collect();
        want.sort();
        assert_eq!(p.blobs, want);
        assert_eq!(p.snapshots, ["o3", "c2", "o2", "c1", "o1"]);
        // A lease (a pull between ingest and image record) keeps its blobs, a blob it
        // leased before it existed, and its chain with the parents.
        let leased = Leased {
            blobs: [d("config"), d("l1"), d("not-yet")].into_iter().collect(),
            snapshots: ["o2".to_string()].into_iter().collect(),
        };
        let p = plan(&[], &blobs, &labels, &snaps, &leased);
        let mut want: Vec<Digest> = ["index", "manifest", "l2", "orphan"]
            .iter()
            .map(|s| d(s))
            .collect();
        want.sort();
        assert_eq!(p.blobs, want);
        assert_eq!(p.snapshots, ["o3", "c2", "c1"]);
        // With the image back, the lease adds nothing it did not already keep.
        let p = plan(&[img], &blobs, &labels, &snaps, &leased);
        assert_eq!(p.blobs, vec![d("orphan")]);
        assert_eq!(p.snapshots, ["o3"]);
    }
}
