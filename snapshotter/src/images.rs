//! Image records: what berthd knows about a pulled image (name, manifest, config,
//! layers, the chain of snapshots it unpacks to), kept in the [`MetaStore`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::meta::{IMAGES, MetaError, MetaResult, MetaStore, decode, encode};

/// One image known to berthd, keyed by its name (a normalized reference such as
/// `docker.io/library/busybox:latest` or `…@sha256:…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Normalized reference the image was pulled or tagged as.
    pub name: String,
    /// Digest of the manifest (or index) the name resolved to.
    pub target: Digest,
    /// Media type of `target`.
    pub media_type: String,
    /// Digest of the image config blob.
    pub config: Digest,
    /// Layer blob digests, base first.
    pub layers: Vec<Digest>,
    /// Uncompressed layer digests from the config's `rootfs.diff_ids`, base first.
    pub diff_ids: Vec<Digest>,
    /// OCI chain ID of the top layer: the committed snapshot holding the rootfs.
    pub chain_id: String,
    /// Total size of the image's blobs (manifest, config, layers) in bytes.
    pub size: u64,
    /// When the record was created.
    pub created: SystemTime,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl MetaStore {
    /// Insert or replace the image record named `image.name`.
    pub fn put_image(&self, image: &ImageRecord) -> MetaResult<()> {
        let value = encode(&image.name, image)?;
        self.write(|tx| {
            let mut t = tx.open_table(IMAGES).map_err(|e| self.db_err(e))?;
            t.insert(image.name.as_str(), value.as_slice())
                .map_err(|e| self.db_err(e))?;
            Ok::<_, MetaError>(())
        })
    }

    /// The image record named `name`, if any.
    pub fn get_image(&self, name: &str) -> MetaResult<Option<ImageRecord>> {
        self.read(|tx| {
            let t = tx.open_table(IMAGES).map_err(|e| self.db_err(e))?;
            match t.get(name).map_err(|e| self.db_err(e))? {
                Some(v) => Ok(Some(decode(name, v.value())?)),
                None => Ok(None),
            }
        })
    }

    /// All image records, sorted by name.
    pub fn list_images(&self) -> MetaResult<Vec<ImageRecord>> {
        self.read_all_rows(IMAGES)?
            .into_iter()
            .map(|(k, v)| decode(&k, &v))
            .collect()
    }

    /// Remove the record named `name`; `false` if there was none. Blobs and snapshots
    /// it used are left to [`gc`](crate::gc).
    pub fn delete_image(&self, name: &str) -> MetaResult<bool> {
        self.write(|tx| {
            let mut t = tx.open_table(IMAGES).map_err(|e| self.db_err(e))?;
            let old = t.remove(name).map_err(|e| self.db_err(e))?;
            Ok::<_, MetaError>(old.is_some())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(name: &str) -> ImageRecord {
        ImageRecord {
            name: name.to_string(),
            target: Digest::sha256_of(b"manifest"),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            config: Digest::sha256_of(b"config"),
            layers: vec![Digest::sha256_of(b"l1")],
            diff_ids: vec![Digest::sha256_of(b"d1")],
            chain_id: Digest::sha256_of(b"d1").to_string(),
            size: 42,
            created: SystemTime::UNIX_EPOCH,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn image_crud() {
        let t = tempfile::tempdir().unwrap();
        let m = MetaStore::open(t.path().join("meta.redb")).unwrap();
        assert_eq!(m.get_image("a").unwrap(), None);
        m.put_image(&sample("b")).unwrap();
        m.put_image(&sample("a")).unwrap();
        let mut a2 = sample("a");
        a2.size = 7;
        m.put_image(&a2).unwrap();
        assert_eq!(m.get_image("a").unwrap(), Some(a2));
        let names: Vec<_> = m
            .list_images()
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert!(m.delete_image("a").unwrap());
        assert!(!m.delete_image("a").unwrap());
        assert_eq!(m.list_images().unwrap().len(), 1);
    }
}
