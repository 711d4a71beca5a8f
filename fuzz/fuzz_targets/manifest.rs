//! Fuzz the registry document parsers: manifests and indexes (with the Content-Type a
//! registry sends), platform selection, and image configs.
//!
//! Input: first byte picks the Content-Type and the manifest's layer count for the
//! config check; the rest is the body. Besides "never panics", every accepted document
//! must satisfy what the pull relies on.

#![no_main]

use berth_snapshotter::apply::compression_for;
use berth_snapshotter::remote::manifest::{
    self, Document, LAYER_TYPES, MAX_CONFIG, MAX_INDEX_ENTRIES, MAX_LAYER, MAX_LAYERS,
    MAX_MANIFEST, Platform,
};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: &[&str] = &[
    "",
    manifest::OCI_MANIFEST,
    manifest::OCI_INDEX,
    manifest::DOCKER_MANIFEST,
    manifest::DOCKER_LIST,
    "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
    "application/json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(sel) % CONTENT_TYPES.len()];
    match manifest::parse_document(content_type, body) {
        Ok(Document::Manifest(m)) => {
            assert!(m.layers.len() <= MAX_LAYERS, "too many layers accepted");
            assert!(m.config.size <= MAX_CONFIG, "oversized config accepted");
            for l in &m.layers {
                assert!(LAYER_TYPES.contains(&l.media_type.as_str()));
                assert!(l.size <= MAX_LAYER, "oversized layer accepted");
                // The pull hands every accepted layer type to the applier.
                assert!(
                    compression_for(&l.media_type).is_ok(),
                    "accepted layer type {:?} the applier refuses",
                    l.media_type
                );
            }
        }
        Ok(Document::Index(i)) => {
            assert!(i.manifests.len() <= MAX_INDEX_ENTRIES);
            assert!(i.manifests.iter().all(|m| m.size <= MAX_MANIFEST));
            let mut platforms = vec![Platform::linux_amd64(), Platform::host()];
            platforms.extend(
                [
                    "linux/arm64",
                    "linux/arm/v7",
                    "linux/arm64/v8",
                    "windows/amd64",
                ]
                .iter()
                .filter_map(|p| Platform::parse(p)),
            );
            for p in &platforms {
                if let Ok(d) = manifest::select_platform(&i, p) {
                    assert!(i.manifests.iter().any(|m| m == d));
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let layers = usize::from(sel >> 4);
    if let Ok(cfg) = manifest::parse_config(body, layers) {
        assert_eq!(cfg.diff_ids.len(), layers, "diff_ids/layer count unchecked");
        let _ = Platform::linux_amd64().fits_config(&cfg.os, &cfg.architecture);
    }
    if let Ok(s) = std::str::from_utf8(body)
        && let Some(p) = Platform::parse(s)
    {
        // os/arch[/variant] round-trips through Display.
        assert_eq!(Platform::parse(&p.to_string()), Some(p.clone()));
        let _ = p.matches(&Platform::linux_amd64());
    }
});
