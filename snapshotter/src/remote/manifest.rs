//! Image manifests and indexes as registries serve them: OCI image manifest and index
//! (image-spec `manifest.md`, `image-index.md`), Docker schema2 manifest and manifest
//! list. Media types are checked, sizes capped, and an index is narrowed to one platform.

use serde::Deserialize;

use crate::digest::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker schema2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker schema1 (refused).
const DOCKER_SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// Layer media types berth can unpack.
pub const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
];

/// Foreign / non-distributable layer types (refused: berth never fetches from `urls`).
const FOREIGN_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// The media types sent in `Accept` when fetching a manifest.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest or index accepted (bytes).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// The largest image config accepted (bytes).
pub const MAX_CONFIG: u64 = 16 << 20;
/// The largest layer accepted (bytes).
pub const MAX_LAYER: u64 = 64 << 30;
/// The most layers an image may have.
pub const MAX_LAYERS: usize = 500;
/// The most entries an index may have.
pub const MAX_INDEX_ENTRIES: usize = 1000;

/// Why a manifest, index or config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the expected shape.
    #[error("{what}: malformed JSON: {message}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A media type berth does not handle.
    #[error("{what}: unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        /// Where it appeared.
        what: &'static str,
        /// The media type.
        media_type: String,
    },
    /// The body's mediaType disagrees with the Content-Type it was served with.
    #[error("manifest: mediaType {body:?} but served as {header:?}")]
    MediaTypeConflict {
        /// From the body.
        body: String,
        /// From Content-Type.
        header: String,
    },
    /// schemaVersion is not 2.
    #[error("{what}: schemaVersion {version} (only 2 is supported)")]
    SchemaVersion {
        /// What was parsed.
        what: &'static str,
        /// The version found.
        version: i64,
    },
    /// A size over a cap.
    #[error("{what}: size {size} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What is too large.
        what: String,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// Too many layers or index entries.
    #[error("{what}: {count} entries exceed the limit of {limit}")]
    TooMany {
        /// What has too many entries.
        what: &'static str,
        /// How many.
        count: usize,
        /// The cap.
        limit: usize,
    },
    /// No manifest in the index matches the platform.
    #[error("no manifest for platform {0} in the index")]
    NoPlatform(String),
    /// The config's diff_ids do not match the manifest's layers.
    #[error("image config has {diff_ids} diff_ids but the manifest has {layers} layers")]
    LayerCount {
        /// diff_ids in the config.
        diff_ids: usize,
        /// layers in the manifest.
        layers: usize,
    },
}

type Result<T> = std::result::Result<T, ManifestError>;

/// A platform (image-spec `image-index.md` `platform`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    /// GOARCH (`amd64`, `arm64`).
    pub architecture: String,
    /// GOOS (`linux`).
    pub os: String,
    /// CPU variant (`v8`, `v7`).
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// linux/amd64.
    pub fn linux_amd64() -> Platform {
        Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        }
    }

    /// The platform of this machine (linux and the compiled-for architecture).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "arm" => "arm",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Platform> {
        let mut p = s.split('/');
        let os = p.next().filter(|x| !x.is_empty())?;
        let arch = p.next().filter(|x| !x.is_empty())?;
        let variant = p.next().map(str::to_owned);
        if p.next().is_some() {
            return None;
        }
        Some(Platform {
            os: os.into(),
            architecture: arch.into(),
            variant,
        })
    }

    /// Architecture and variant normalized as containerd does (`aarch64` → `arm64`,
    /// arm64's default variant `v8`, arm's `v7`, amd64's `v1` is no variant).
    fn normalized(&self) -> (String, String, String) {
        let arch = match self.architecture.as_str() {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            "armhf" => "arm",
            "i386" => "386",
            a => a,
        };
        let variant = self.variant.clone().unwrap_or_default();
        let variant = match (arch, variant.as_str()) {
            ("arm64", "" | "8") => "v8".to_owned(),
            ("arm", "") => "v7".to_owned(),
            ("arm", v @ ("5" | "6" | "7" | "8")) => format!("v{v}"),
            ("amd64", "v1") => String::new(),
            (_, v) => v.to_owned(),
        };
        (self.os.to_ascii_lowercase(), arch.to_owned(), variant)
    }

    /// Whether an image config's `os`/`architecture` fit this platform (variant ignored:
    /// configs often omit it).
    pub fn fits_config(&self, os: &str, architecture: &str) -> bool {
        let other = Platform {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            variant: None,
        };
        let (a_os, a_arch, _) = self.normalized();
        let (b_os, b_arch, _) = other.normalized();
        a_os == b_os && a_arch == b_arch
    }

    /// Whether an index entry for `other` can run as `self`.
    pub fn matches(&self, other: &Platform) -> bool {
        self.normalized() == other.normalized()
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Platform (index entries only).
    #[serde(default)]
    pub platform: Option<Platform>,
    /// External URLs (foreign layers; never used by berth).
    #[serde(default)]
    pub urls: Option<Vec<String>>,
}

/// An image manifest (OCI or Docker schema2), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifest {
    /// The manifest's media type.
    pub media_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
}

/// An index (OCI index or Docker manifest list), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// The index's media type.
    pub media_type: String,
    /// Its entries.
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// An image manifest.
    Manifest(ImageManifest),
    /// An index of manifests.
    Index(Index),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

fn malformed(what: &'static str, e: impl std::fmt::Display) -> ManifestError {
    ManifestError::Malformed {
        what,
        message: e.to_string().chars().take(300).collect(),
    }
}

/// Strips parameters from a Content-Type (`type; charset=utf-8` → `type`).
fn bare_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

/// Parses a manifest or index served with `content_type` (may be empty).
pub fn parse_document(content_type: &str, body: &[u8]) -> Result<Document> {
    if body.len() as u64 > MAX_MANIFEST {
        return Err(ManifestError::TooLarge {
            what: "manifest".into(),
            size: body.len() as u64,
            limit: MAX_MANIFEST,
        });
    }
    let header = bare_type(content_type);
    if DOCKER_SCHEMA1.contains(&header) {
        return Err(ManifestError::UnsupportedMediaType {
            what: "manifest",
            media_type: header.to_owned(),
        });
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| malformed("manifest", e))?;
    let media_type = match (&raw.media_type, header) {
        (Some(b), h) if !h.is_empty() && known_manifest_type(h) && b != h => {
            return Err(ManifestError::MediaTypeConflict {
                body: b.clone(),
                header: h.to_owned(),
            });
        }
        (Some(b), _) => b.clone(),
        (None, h) if known_manifest_type(h) => h.to_owned(),
        // OCI allows omitting mediaType; tell manifest from index by shape.
        (None, _) if raw.manifests.is_some() => OCI_INDEX.to_owned(),
        (None, _) if raw.config.is_some() => OCI_MANIFEST.to_owned(),
        (None, h) => {
            return Err(ManifestError::UnsupportedMediaType {
                what: "manifest",
                media_type: h.to_owned(),
            });
        }
    };
    let version = raw.schema_version.unwrap_or(0);
    if version != 2 {
        if DOCKER_SCHEMA1.contains(&media_type.as_str()) || version == 1 {
            return Err(ManifestError::UnsupportedMediaType {
                what: "manifest",
                media_type: format!("{media_type} (Docker schema1)"),
            });
        }
        return Err(ManifestError::SchemaVersion {
            what: "manifest",
            version,
        });
    }
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = raw
                .config
                .ok_or_else(|| malformed("manifest", "missing config"))?;
            let layers = raw.layers.unwrap_or_default();
            check_manifest(&media_type, &config, &layers)?;
            Ok(Document::Manifest(ImageManifest {
                media_type,
                config,
                layers,
            }))
        }
        OCI_INDEX | DOCKER_LIST => {
            let manifests = raw
                .manifests
                .ok_or_else(|| malformed("index", "missing manifests"))?;
            if manifests.len() > MAX_INDEX_ENTRIES {
                return Err(ManifestError::TooMany {
                    what: "index",
                    count: manifests.len(),
                    limit: MAX_INDEX_ENTRIES,
                });
            }
            for m in &manifests {
                if m.size > MAX_MANIFEST {
                    return Err(ManifestError::TooLarge {
                        what: format!("index entry {}", m.digest),
                        size: m.size,
                        limit: MAX_MANIFEST,
                    });
                }
            }
            Ok(Document::Index(Index {
                media_type,
                manifests,
            }))
        }
        other => Err(ManifestError::UnsupportedMediaType {
            what: "manifest",
            media_type: other.to_owned(),
        }),
    }
}

fn known_manifest_type(t: &str) -> bool {
    matches!(t, OCI_MANIFEST | DOCKER_MANIFEST | OCI_INDEX | DOCKER_LIST)
}

fn check_manifest(media_type: &str, config: &Descriptor, layers: &[Descriptor]) -> Result<()> {
    let config_ok = match media_type {
        DOCKER_MANIFEST => config.media_type == DOCKER_CONFIG,
        _ => config.media_type == OCI_CONFIG || config.media_type == DOCKER_CONFIG,
    };
    if !config_ok {
        return Err(ManifestError::UnsupportedMediaType {
            what: "config",
            media_type: config.media_type.clone(),
        });
    }
    if config.size > MAX_CONFIG {
        return Err(ManifestError::TooLarge {
            what: format!("config {}", config.digest),
            size: config.size,
            limit: MAX_CONFIG,
        });
    }
    if layers.len() > MAX_LAYERS {
        return Err(ManifestError::TooMany {
            what: "layers",
            count: layers.len(),
            limit: MAX_LAYERS,
        });
    }
    for l in layers {
        if FOREIGN_TYPES.contains(&l.media_type.as_str())
            || l.urls.as_ref().is_some_and(|u| !u.is_empty())
        {
            return Err(ManifestError::UnsupportedMediaType {
                what: "layer (foreign/non-distributable)",
                media_type: l.media_type.clone(),
            });
        }
        if !LAYER_TYPES.contains(&l.media_type.as_str()) {
            return Err(ManifestError::UnsupportedMediaType {
                what: "layer",
                media_type: l.media_type.clone(),
            });
        }
        if l.size > MAX_LAYER {
            return Err(ManifestError::TooLarge {
                what: format!("layer {}", l.digest),
                size: l.size,
                limit: MAX_LAYER,
            });
        }
    }
    Ok(())
}

/// Picks the manifest for `platform` from an index: an exact match (after normalization)
/// wins; for a platform without variant, the first entry of that os/arch is taken.
pub fn select_platform<'a>(index: &'a Index, platform: &Platform) -> Result<&'a Descriptor> {
    let candidates = index
        .manifests
        .iter()
        .filter(|m| matches!(m.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST));
    let mut loose = None;
    for m in candidates {
        let Some(p) = &m.platform else { continue };
        if platform.matches(p) {
            return Ok(m);
        }
        if platform.variant.is_none()
            && p.os == platform.os
            && p.architecture == platform.architecture
            && loose.is_none()
        {
            loose = Some(m);
        }
    }
    loose.ok_or_else(|| ManifestError::NoPlatform(platform.to_string()))
}

/// The parts of an image config the pull needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// `rootfs.diff_ids`, base first.
    pub diff_ids: Vec<Digest>,
    /// `os`.
    pub os: String,
    /// `architecture`.
    pub architecture: String,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    rootfs: RawRootfs,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<Digest>,
}

/// Parses an image config and checks it against the manifest's layer count.
pub fn parse_config(body: &[u8], layers: usize) -> Result<ImageConfig> {
    if body.len() as u64 > MAX_CONFIG {
        return Err(ManifestError::TooLarge {
            what: "config".into(),
            size: body.len() as u64,
            limit: MAX_CONFIG,
        });
    }
    let raw: RawConfig = serde_json::from_slice(body).map_err(|e| malformed("config", e))?;
    if raw.rootfs.kind != "layers" {
        return Err(malformed(
            "config",
            format!("rootfs.type {:?} is not \"layers\"", raw.rootfs.kind),
        ));
    }
    if raw.rootfs.diff_ids.len() != layers {
        return Err(ManifestError::LayerCount {
            diff_ids: raw.rootfs.diff_ids.len(),
            layers,
        });
    }
    Ok(ImageConfig {
        diff_ids: raw.rootfs.diff_ids,
        os: raw.os,
        architecture: raw.architecture,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn manifest(mt: Option<&str>, cfg_mt: &str, layer_mt: &str) -> Vec<u8> {
        let mut v = json!({
            "schemaVersion": 2,
            "config": { "mediaType": cfg_mt, "digest": D1, "size": 10 },
            "layers": [{ "mediaType": layer_mt, "digest": D2, "size": 20 }],
        });
        if let Some(m) = mt {
            v["mediaType"] = json!(m);
        }
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn parses_oci_and_docker_manifests() {
        let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        for (ct, body) in [
            ("", manifest(Some(OCI_MANIFEST), OCI_CONFIG, gz)),
            (OCI_MANIFEST, manifest(None, OCI_CONFIG, gz)),
            (
                "",
                manifest(
                    None,
                    OCI_CONFIG,
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                ),
            ),
            (
                "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8",
                manifest(
                    Some(DOCKER_MANIFEST),
                    DOCKER_CONFIG,
                    "application/vnd.docker.image.rootfs.diff.tar.gzip",
                ),
            ),
        ] {
            match parse_document(ct, &body).unwrap() {
                Document::Manifest(m) => {
                    assert_eq!(m.layers.len(), 1);
                    assert_eq!(m.config.digest.to_string(), D1);
                }
                Document::Index(_) => panic!("not an index"),
            }
        }
    }

    #[test]
    fn refuses_bad_manifests() {
        let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("", b"not json".to_vec(), "malformed"),
            ("", b"{}".to_vec(), "unsupported media type"),
            (OCI_INDEX, manifest(Some(OCI_MANIFEST), OCI_CONFIG, gz), "served as"),
            ("", manifest(Some(OCI_MANIFEST), "text/plain", gz), "config"),
            ("", manifest(Some(OCI_MANIFEST), OCI_CONFIG, "application/x-evil"), "layer"),
            ("", manifest(Some(DOCKER_MANIFEST), OCI_CONFIG, gz), "config"),
            (
                "",
                manifest(Some(OCI_MANIFEST), OCI_CONFIG, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
                "foreign",
            ),
            (
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                b"{\"schemaVersion\":1}".to_vec(),
                "unsupported",
            ),
            ("", serde_json::to_vec(&json!({"schemaVersion": 3, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, "digest": D1, "size": 1}})).unwrap(), "schemaVersion"),
            ("", serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, "digest": "sha256:xyz", "size": 1}})).unwrap(), "malformed"),
            ("", serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, "digest": D1, "size": -1}})).unwrap(), "malformed"),
            ("", serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, "digest": D1, "size": MAX_CONFIG + 1}})).unwrap(), "exceeds"),
            ("", vec![b' '; (MAX_MANIFEST + 1) as usize], "exceeds"),
        ];
        for (ct, body, want) in cases {
            let err = parse_document(ct, &body).unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    fn index() -> Index {
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                { "mediaType": OCI_MANIFEST, "digest": D1, "size": 1, "platform": { "os": "linux", "architecture": "arm", "variant": "v6" } },
                { "mediaType": OCI_MANIFEST, "digest": D2, "size": 1, "platform": { "os": "linux", "architecture": "arm64", "variant": "v8" } },
                { "mediaType": OCI_MANIFEST, "digest": "sha256:3333333333333333333333333333333333333333333333333333333333333333", "size": 1, "platform": { "os": "unknown", "architecture": "unknown" } },
                { "mediaType": OCI_MANIFEST, "digest": "sha256:4444444444444444444444444444444444444444444444444444444444444444", "size": 1, "platform": { "os": "linux", "architecture": "amd64" } },
                { "mediaType": OCI_MANIFEST, "digest": "sha256:5555555555555555555555555555555555555555555555555555555555555555", "size": 1, "platform": { "os": "linux", "architecture": "arm", "variant": "v7" } },
            ]
        }))
        .unwrap();
        match parse_document("", &body).unwrap() {
            Document::Index(i) => i,
            Document::Manifest(_) => panic!("not a manifest"),
        }
    }

    #[test]
    fn selects_platforms_variant_aware() {
        let i = index();
        let pick = |p: &str| {
            select_platform(&i, &Platform::parse(p).unwrap())
                .map(|d| d.digest.to_string()[7..8].to_owned())
                .map_err(|e| e.to_string())
        };
        assert_eq!(pick("linux/amd64").unwrap(), "4");
        assert_eq!(pick("linux/arm64").unwrap(), "2");
        assert_eq!(pick("linux/arm64/v8").unwrap(), "2");
        assert_eq!(pick("linux/aarch64").unwrap(), "2");
        assert_eq!(pick("linux/arm/v7").unwrap(), "5");
        assert_eq!(pick("linux/arm/v6").unwrap(), "1");
        assert_eq!(pick("linux/arm").unwrap(), "5");
        assert!(pick("linux/s390x").unwrap_err().contains("linux/s390x"));
        assert!(pick("linux/arm/v5").is_err());
        assert_eq!(Platform::linux_amd64().to_string(), "linux/amd64");
        assert!(Platform::linux_amd64().fits_config("linux", "amd64"));
        assert!(Platform::linux_amd64().fits_config("linux", "x86_64"));
        assert!(!Platform::linux_amd64().fits_config("linux", "arm64"));
        assert!(!Platform::linux_amd64().fits_config("windows", "amd64"));
        assert!(
            Platform::parse("linux/arm64/v8")
                .unwrap()
                .fits_config("linux", "aarch64")
        );
    }

    #[test]
    fn configs_are_checked_against_layers() {
        let c = serde_json::to_vec(&json!({"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": [D1, D2]}})).unwrap();
        let cfg = parse_config(&c, 2).unwrap();
        assert_eq!(cfg.diff_ids.len(), 2);
        assert!(matches!(
            parse_config(&c, 3),
            Err(ManifestError::LayerCount { .. })
        ));
        assert!(parse_config(b"[]", 0).is_err());
        let bad = serde_json::to_vec(&json!({"rootfs": {"type": "x", "diff_ids": []}})).unwrap();
        assert!(parse_config(&bad, 0).is_err());
    }
}
