//! Writing (and reading back) an OCI image layout directory
//! (image-spec `image-layout.md`): `oci-layout`, `index.json`, `blobs/sha256/<hex>`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use super::layer::{Layer, sha256};

/// OCI manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker schema2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer media type.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The annotation naming a reference in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The fixed creation time of every fixture image.
pub const CREATED: &str = "2024-01-01T00:00:00Z";

/// A content descriptor as JSON (mediaType, digest, size, optional platform).
#[derive(Clone, Debug)]
pub struct Desc {
    /// Media type of the blob.
    pub media_type: String,
    /// `sha256:` digest.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

impl Desc {
    fn to_json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

/// The platform an image is built for.
#[derive(Clone, Debug)]
pub struct Platform {
    /// GOARCH name (`amd64`, `arm64`).
    pub arch: &'static str,
    /// Architecture variant (`v8`), if any.
    pub variant: Option<&'static str>,
}

/// Linux on amd64, the platform of every fixture except the arm64 index entry.
pub const AMD64: Platform = Platform {
    arch: "amd64",
    variant: None,
};

/// An OCI layout being written.
pub struct LayoutWriter {
    dir: PathBuf,
    refs: Vec<Value>,
}

impl LayoutWriter {
    /// Creates (or reuses) the layout directory.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir.join("blobs/sha256"))
            .with_context(|| format!("create {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            refs: Vec::new(),
        })
    }

    /// Stores a blob (once) and returns its descriptor.
    pub fn put_blob(&self, media_type: &str, data: &[u8]) -> anyhow::Result<Desc> {
        let digest = sha256(data);
        let path = self.blob_path(&digest);
        if !path.exists() {
            let tmp = path.with_extension("tmp");
            fs::write(&tmp, data).with_context(|| format!("write {}", tmp.display()))?;
            fs::rename(&tmp, &path).with_context(|| format!("rename {}", path.display()))?;
        }
        Ok(Desc {
            media_type: media_type.to_owned(),
            digest,
            size: data.len() as u64,
        })
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.join("blobs/sha256").join(hex)
    }

    /// Writes config + manifest for an image made of `layers` and returns the manifest
    /// descriptor. `config` is the image config's `config` section (Cmd, User, ...).
    pub fn put_image(
        &self,
        layers: &[&Layer],
        config: Value,
        platform: &Platform,
        docker: bool,
    ) -> anyhow::Result<Desc> {
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        let history: Vec<Value> = layers
            .iter()
            .enumerate()
            .map(|(i, _)| json!({ "created": CREATED, "created_by": format!("berth-conformance layer {i}") }))
            .collect();
        let mut cfg = json!({
            "architecture": platform.arch,
            "os": "linux",
            "created": CREATED,
            "config": config,
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": history,
        });
        if let Some(v) = platform.variant {
            cfg["variant"] = json!(v);
        }
        let cfg_bytes = serde_json::to_vec(&cfg)?;
        let config_desc =
            self.put_blob(if docker { DOCKER_CONFIG } else { OCI_CONFIG }, &cfg_bytes)?;
        let mut layer_descs = Vec::new();
        for l in layers {
            let mt = if docker {
                anyhow::ensure!(
                    l.compression == super::layer::Compression::Gzip,
                    "docker schema2 layers must be gzip"
                );
                DOCKER_LAYER_GZIP
            } else {
                l.oci_media_type()
            };
            let d = self.put_blob(mt, &l.blob)?;
            anyhow::ensure!(d.digest == l.digest, "layer digest changed while writing");
            layer_descs.push(d.to_json());
        }
        let mt = if docker {
            DOCKER_MANIFEST
        } else {
            OCI_MANIFEST
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": config_desc.to_json(),
            "layers": layer_descs,
        });
        self.put_blob(mt, &serde_json::to_vec(&manifest)?)
    }

    /// Writes an OCI index over `manifests` (each with its platform).
    pub fn put_index(&self, manifests: &[(Desc, Platform)]) -> anyhow::Result<Desc> {
        let entries: Vec<Value> = manifests
            .iter()
            .map(|(d, p)| {
                let mut v = d.to_json();
                let mut plat = json!({ "architecture": p.arch, "os": "linux" });
                if let Some(var) = p.variant {
                    plat["variant"] = json!(var);
                }
                v["platform"] = plat;
                v
            })
            .collect();
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries });
        self.put_blob(OCI_INDEX, &serde_json::to_vec(&index)?)
    }

    /// Names `desc` in the layout's `index.json` as `name`.
    pub fn add_ref(&mut self, name: &str, desc: &Desc) {
        let mut v = desc.to_json();
        v["annotations"] = json!({ REF_NAME: name });
        self.refs.push(v);
    }

    /// Writes `oci-layout` and `index.json`, merging refs of other names already there.
    pub fn finish(self) -> anyhow::Result<()> {
        let mut refs = Vec::new();
        let ours: Vec<String> = self.refs.iter().filter_map(ref_name).collect();
        if let Ok(old) = read_index(&self.dir) {
            refs.extend(
                old.into_iter()
                    .filter(|r| ref_name(r).is_some_and(|n| !ours.contains(&n))),
            );
        }
        refs.extend(self.refs);
        refs.sort_by_key(|r| ref_name(r).unwrap_or_default());
        fs::write(
            self.dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": refs });
        let tmp = self.dir.join("index.json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(&index)?)?;
        fs::rename(&tmp, self.dir.join("index.json"))?;
        Ok(())
    }
}

/// The `org.opencontainers.image.ref.name` of an `index.json` entry.
pub fn ref_name(v: &Value) -> Option<String> {
    v.get("annotations")?
        .get(REF_NAME)?
        .as_str()
        .map(str::to_owned)
}

/// Reads the entries of a layout's `index.json`.
pub fn read_index(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let path = dir.join("index.json");
    let data = fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    let v: Value =
        serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))?;
    Ok(v.get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// Reads a blob of a layout, checking its digest.
pub fn read_blob(dir: &Path, digest: &str) -> anyhow::Result<Vec<u8>> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("unsupported digest {digest:?}"))?;
    let path = dir.join("blobs/sha256").join(hex);
    let data = fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    anyhow::ensure!(sha256(&data) == digest, "blob {digest} is corrupt");
    Ok(data)
}

/// Path of a blob in a layout (no check).
pub fn blob_path(dir: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("unsupported digest {digest:?}"))?;
    Ok(dir.join("blobs/sha256").join(hex))
}
