//! Pushing an OCI layout to a registry over the OCI distribution API
//! (distribution-spec `spec.md`, "Pushing blobs" and "Pushing Manifests").
//!
//! Every ref name `N` of the layout becomes `<registry>/berth/N:latest`. Blobs up to the
//! chunk size (default [`DEFAULT_CHUNK`]) go up in one POST+PUT; bigger ones in PATCH chunks.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

use super::layout::{self, DOCKER_LIST, OCI_INDEX, blob_path, read_blob, read_index, ref_name};

/// The default chunk size: blobs up to it are pushed monolithically, bigger ones in chunks.
pub const DEFAULT_CHUNK: usize = 8 * 1024 * 1024;

/// The repository a fixture ref name is pushed to.
pub fn repository(name: &str) -> String {
    format!("berth/{name}")
}

/// A registry client for pushing (plain HTTP, optional basic or bearer auth).
pub struct Pusher {
    agent: ureq::Agent,
    registry: String,
    base: String,
    creds: Option<String>,
    auth: Option<String>,
    chunk: usize,
}

impl Pusher {
    /// A pusher for `registry` (`host:port`, plain HTTP) with optional `user:password`.
    pub fn new(registry: &str, creds: Option<String>, chunk: usize) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            agent,
            registry: registry.to_owned(),
            base: format!("http://{registry}"),
            creds,
            auth: None,
            chunk: chunk.max(1),
        }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    fn with_auth<B>(&self, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.auth {
            Some(a) => r.header("Authorization", a),
            None => r,
        }
    }

    /// Pushes every ref of the layout at `dir`; returns the pushed references.
    pub fn push_layout(&mut self, dir: &Path) -> anyhow::Result<Vec<String>> {
        let mut pushed = Vec::new();
        for entry in read_index(dir)? {
            let name = ref_name(&entry).context("index.json entry without a ref name")?;
            let repo = repository(&name);
            let (mt, digest) = desc_of(&entry)?;
            if let Some(c) = &self.creds {
                self.auth = Some(super::token::authorization_for_push(
                    &self.registry,
                    &repo,
                    c,
                )?);
            }
            self.push_manifest_tree(dir, &repo, &mt, &digest, Some("latest"))
                .with_context(|| format!("push {name}"))?;
            pushed.push(format!("{repo}:latest"));
        }
        Ok(pushed)
    }

    fn push_manifest_tree(
        &self,
        dir: &Path,
        repo: &str,
        media_type: &str,
        digest: &str,
        tag: Option<&str>,
    ) -> anyhow::Result<()> {
        let body = read_blob(dir, digest)?;
        let v: Value = serde_json::from_slice(&body).context("parse manifest")?;
        if media_type == OCI_INDEX || media_type == DOCKER_LIST {
            for m in v["manifests"]
                .as_array()
                .context("index without manifests")?
            {
                let (mt, d) = desc_of(m)?;
                self.push_manifest_tree(dir, repo, &mt, &d, None)?;
            }
        } else {
            let mut blobs = vec![desc_of(&v["config"])?];
            for l in v["layers"].as_array().context("manifest without layers")? {
                blobs.push(desc_of(l)?);
            }
            for (_, d) in blobs {
                self.push_blob(dir, repo, &d)?;
            }
        }
        self.put_manifest(repo, digest, media_type, &body)?;
        if let Some(t) = tag {
            self.put_manifest(repo, t, media_type, &body)?;
        }
        Ok(())
    }

    fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> anyhow::Result<()> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let mut r = self
            .with_auth(self.agent.put(&url))
            .header("Content-Type", media_type)
            .send(body)?;
        if r.status().as_u16() != 201 {
            bail!(
                "PUT {url}: {} {}",
                r.status(),
                r.body_mut().read_to_string().unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Uploads one blob unless the registry already has it.
    pub fn push_blob(&self, dir: &Path, repo: &str, digest: &str) -> anyhow::Result<()> {
        let head = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let r = self.with_auth(self.agent.head(&head)).call()?;
        if r.status().as_u16() == 200 {
            return Ok(());
        }
        let path = blob_path(dir, digest)?;
        let size = std::fs::metadata(&path)
            .with_context(|| format!("stat {}", path.display()))?
            .len();
        let start = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let mut r = self.with_auth(self.agent.post(&start)).send_empty()?;
        if r.status().as_u16() != 202 {
            bail!(
                "POST {start}: {} {}",
                r.status(),
                r.body_mut().read_to_string().unwrap_or_default()
            );
        }
        let mut location = location_of(&r)?;
        let mut file =
            std::fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
        let final_body: Vec<u8> = if size <= self.chunk as u64 {
            let mut v = Vec::new();
            file.read_to_end(&mut v)?;
            v
        } else {
            let mut offset = 0u64;
            let mut buf = vec![0u8; self.chunk];
            loop {
                let n = read_full(&mut file, &mut buf)?;
                if n == 0 {
                    break;
                }
                let url = self.url(&location);
                let mut r = self
                    .with_auth(self.agent.patch(&url))
                    .header("Content-Type", "application/octet-stream")
                    .header(
                        "Content-Range",
                        &format!("{}-{}", offset, offset + n as u64 - 1),
                    )
                    .send(&buf[..n])?;
                if r.status().as_u16() != 202 {
                    bail!(
                        "PATCH {url}: {} {}",
                        r.status(),
                        r.body_mut().read_to_string().unwrap_or_default()
                    );
                }
                location = location_of(&r)?;
                offset += n as u64;
            }
            Vec::new()
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = self.url(&format!("{location}{sep}digest={digest}"));
        let mut r = self
            .with_auth(self.agent.put(&url))
            .header("Content-Type", "application/octet-stream")
            .send(&final_body[..])?;
        if r.status().as_u16() != 201 {
            bail!(
                "PUT {url}: {} {}",
                r.status(),
                r.body_mut().read_to_string().unwrap_or_default()
            );
        }
        Ok(())
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn location_of(r: &ureq::http::Response<ureq::Body>) -> anyhow::Result<String> {
    Ok(r.headers()
        .get("location")
        .context("upload response without Location")?
        .to_str()
        .context("Location is not text")?
        .to_owned())
}

fn desc_of(v: &Value) -> anyhow::Result<(String, String)> {
    let mt = v["mediaType"]
        .as_str()
        .context("descriptor without mediaType")?;
    let d = v["digest"].as_str().context("descriptor without digest")?;
    Ok((mt.to_owned(), d.to_owned()))
}

/// Checks that `dir` is an OCI layout (used before pushing).
pub fn check_layout(dir: &Path) -> anyhow::Result<()> {
    let p = dir.join("oci-layout");
    anyhow::ensure!(
        p.exists(),
        "{} is not an OCI layout (no oci-layout)",
        dir.display()
    );
    let _ = layout::read_index(dir)?;
    Ok(())
}
