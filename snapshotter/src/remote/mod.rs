//! Talking to OCI distribution registries: image references, containerd `certs.d`
//! host configuration, manifests and platform selection, authentication, and an HTTP
//! client that fetches verified content into the [`ContentStore`](crate::ContentStore).

pub mod auth;
pub mod client;
pub mod hosts;
pub mod manifest;
pub mod reference;

pub use auth::Credentials;
pub use client::{Progress, RegistryClient, RemoteError, RetryPolicy};
pub use hosts::{Endpoint, HostsError};
pub use manifest::{Descriptor, Document, ImageManifest, Index, ManifestError, Platform};
pub use reference::{Reference, ReferenceError};

#[cfg(test)]
mod mutation_tests {
    //! Deterministic mutation runs over the parsers of outside data: none may panic,
    //! whatever the bytes. (A stand-in until cargo-fuzz targets exist, not a substitute.)

    use std::path::Path;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    const TOKENS: &[&[u8]] = &[
        b"\"",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"=",
        b"\\",
        b"\n",
        b"\xff",
        b"sha256:",
        b"mediaType",
        b"-1",
        b"99999999999999999999",
        b"[host.\"",
        b"@",
        b"/",
        b"..",
    ];

    fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..=rng.below(4) {
            match rng.below(4) {
                0 if !v.is_empty() => {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
                1 if !v.is_empty() => {
                    let i = rng.below(v.len());
                    v.truncate(i);
                }
                2 => {
                    let i = rng.below(v.len() + 1);
                    let t = TOKENS[rng.below(TOKENS.len())];
                    v.splice(i..i, t.iter().copied());
                }
                _ if v.len() > 1 => {
                    let a = rng.below(v.len());
                    let b = rng.below(v.len());
                    v.swap(a, b);
                }
                _ => {}
            }
        }
        v
    }

    fn run(seeds: &[&[u8]], f: impl Fn(&[u8])) {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for s in seeds {
            f(s);
            for _ in 0..3000 {
                f(&mutate(s, &mut rng));
            }
        }
    }

    const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":10},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":20}]}"#;
    const INDEX: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":10,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}"#;

    #[test]
    fn manifest_and_config_parsers_never_panic() {
        run(&[MANIFEST, INDEX], |b| {
            if let Ok(super::Document::Index(i)) = super::manifest::parse_document("", b) {
                let _ = super::manifest::select_platform(&i, &super::Platform::linux_amd64());
            }
        });
        let cfg: &[u8] = br#"{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["sha256:1111111111111111111111111111111111111111111111111111111111111111"]}}"#;
        run(&[cfg], |b| {
            let _ = super::manifest::parse_config(b, 1);
        });
    }

    #[test]
    fn hosts_toml_parser_never_panics() {
        let seed: &[u8] = b"server = \"https://r.example\"\nca = [\"a.pem\"]\n[host.\"http://m:5000/v2\"]\ncapabilities = [\"pull\"]\nskip_verify = true\n[host.\"http://m:5000/v2\".header]\nx = \"1\"\n";
        run(&[seed], |b| {
            if let Ok(text) = std::str::from_utf8(b) {
                let _ =
                    super::hosts::parse_hosts_toml(text, Path::new("/c/h/hosts.toml"), Some("h"));
            }
        });
    }

    #[test]
    fn challenge_and_reference_parsers_never_panic() {
        let seed: &[u8] = br#"Bearer realm="https://auth/token",service="r",scope="repository:a/b:pull", Basic realm="x""#;
        run(&[seed], |b| {
            if let Ok(text) = std::str::from_utf8(b) {
                let _ = super::auth::parse_challenges(text);
            }
        });
        let r: &[u8] = b"registry.example:5000/a/b-c_d:tag@sha256:1111111111111111111111111111111111111111111111111111111111111111";
        run(&[r, b"[::1]:5000/x"], |b| {
            if let Ok(text) = std::str::from_utf8(b) {
                let _ = super::Reference::parse(text);
            }
        });
    }
}
