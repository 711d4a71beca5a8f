//! The registry HTTP client (distribution-spec `spec.md` "Pulling"): manifests and blobs
//! from an ordered list of endpoints (mirrors first), with the auth flow, retries with
//! backoff on 5xx / 429 / connection errors, `Range` resume of a partial ingest, size caps
//! and digest verification. Blobs land in the [`ContentStore`] only once verified.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, Response, StatusCode, Url};
use tokio::sync::{Mutex, mpsc};

use super::auth::{self, AuthError, AuthPlan, Credentials};
use super::hosts::{self, Endpoint, HostsError};
use super::manifest::{self, Descriptor, ManifestError};
use super::reference::Reference;
use crate::content::{BlobInfo, ContentError, ContentStore, Writer};
use crate::digest::Digest;

/// Errors of registry operations.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The hosts.toml for the registry is bad.
    #[error(transparent)]
    Hosts(#[from] HostsError),
    /// A manifest, index or config was refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Authentication is impossible.
    #[error("{url}: {source}")]
    Auth {
        /// The request that was challenged.
        url: String,
        /// Why.
        source: AuthError,
    },
    /// The token endpoint refused or answered nonsense.
    #[error("token endpoint {realm}: {message}")]
    Token {
        /// The realm.
        realm: String,
        /// What went wrong.
        message: String,
    },
    /// Transport error (connect, TLS, reset, timeout).
    #[error("{url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// An unexpected HTTP status.
    #[error("{url}: HTTP {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// Start of the body (at most 200 characters).
        body: String,
    },
    /// Content that does not hash to its digest.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// More bytes than allowed or announced.
    #[error("{what}: larger than {limit} bytes")]
    TooLarge {
        /// What was fetched.
        what: String,
        /// The cap.
        limit: u64,
    },
    /// The server kept closing the body early.
    #[error("blob {digest}: truncated at {got} of {expected} bytes")]
    Truncated {
        /// The blob.
        digest: Digest,
        /// Its size.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// A TLS setting (CA file) could not be used.
    #[error("TLS setup for {endpoint}: {message}")]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// What failed.
        message: String,
    },
    /// The content store failed (includes its digest / size verification).
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Every endpoint failed; the errors in order.
    #[error("all registry endpoints failed: {}", .0.join("; "))]
    AllEndpointsFailed(Vec<String>),
    /// No endpoint has the needed capability.
    #[error("no endpoint of {0} may be used to {1}")]
    NoEndpoint(String, &'static str),
    /// A request URL could not be built from the endpoint and repository.
    #[error("{endpoint}: {message}")]
    BadUrl {
        /// The endpoint.
        endpoint: String,
        /// What is wrong.
        message: String,
    },
    /// A blocking task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl RemoteError {
    /// Whether the registry said the image or blob does not exist (HTTP 404 from every
    /// endpoint tried): berthd maps this to gRPC NotFound.
    pub fn is_not_found(&self) -> bool {
        match self {
            RemoteError::Status { status, .. } => *status == 404,
            _ => false,
        }
    }

    /// Whether the registry refused the credentials or wanted some (HTTP 401/403, or no
    /// usable token): berthd maps this to gRPC Unauthenticated / PermissionDenied.
    pub fn is_unauthorized(&self) -> bool {
        match self {
            RemoteError::Status { status, .. } => *status == 401 || *status == 403,
            RemoteError::Auth { .. } | RemoteError::Token { .. } => true,
            _ => false,
        }
    }
}

type Result<T> = std::result::Result<T, RemoteError>;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request (at least 1).
    pub attempts: u32,
    /// Delay before the first retry; doubled each time.
    pub base_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        let d = self.base_delay.saturating_mul(1u32 << attempt.min(16));
        d.min(self.max_delay)
    }
}

/// Progress of a pull, sent as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The reference resolved to this manifest.
    Resolved {
        /// Manifest digest.
        digest: Digest,
    },
    /// A blob download starts (at `offset` when resuming).
    BlobStarted {
        /// The blob.
        digest: Digest,
        /// Its size.
        total: u64,
        /// Bytes already present.
        offset: u64,
    },
    /// Bytes of a blob arrived.
    BlobProgress {
        /// The blob.
        digest: Digest,
        /// Bytes present now.
        done: u64,
        /// Its size.
        total: u64,
    },
    /// A blob is committed (or was already there: `existed`).
    BlobDone {
        /// The blob.
        digest: Digest,
        /// It was in the store already (or another pull fetched it).
        existed: bool,
    },
    /// Unpacking layers into snapshots starts (it overlaps later downloads).
    Unpacking,
    /// One layer is unpacked into its snapshot.
    LayerUnpacked {
        /// The layer blob.
        digest: Digest,
        /// Time spent applying it, in microseconds.
        micros: u64,
    },
    /// The image is stored.
    Done,
}

/// A sink for [`Progress`] events.
pub type ProgressSender = mpsc::UnboundedSender<Progress>;

fn send(p: &Option<ProgressSender>, ev: Progress) {
    if let Some(tx) = p {
        let _ = tx.send(ev);
    }
}

/// Installs ring as the process's rustls provider unless one is installed already.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

struct Ep {
    endpoint: Endpoint,
    http: Client,
    /// `?ns=` for mirrors, as containerd sends.
    namespace: Option<String>,
}

/// A client for one repository of one registry.
pub struct RegistryClient {
    reference: Reference,
    endpoints: Vec<Ep>,
    creds: Credentials,
    retry: RetryPolicy,
    /// Authorization header per endpoint base URL, once known.
    auth: Mutex<HashMap<String, String>>,
}

fn build_http(e: &Endpoint) -> Result<Client> {
    ensure_crypto_provider();
    let tls_err = |message: String| RemoteError::Tls {
        endpoint: e.base.to_string(),
        message,
    };
    let mut headers = HeaderMap::new();
    for (k, vals) in &e.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|x| tls_err(x.to_string()))?;
        for v in vals {
            let val = HeaderValue::from_str(v).map_err(|x| tls_err(x.to_string()))?;
            headers.append(name.clone(), val);
        }
    }
    let mut b = Client::builder()
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .tls_danger_accept_invalid_certs(e.skip_verify);
    for ca in &e.ca {
        let pem = std::fs::read(ca).map_err(|x| tls_err(format!("read {}: {x}", ca.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|x| tls_err(format!("{}: {x}", ca.display())))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|x| tls_err(x.to_string()))
}

fn truncate_body(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(200)])
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

fn retryable_status(s: StatusCode) -> bool {
    s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT
}

impl RegistryClient {
    /// A client for `reference`'s repository, with endpoints from `hosts_dir`
    /// (containerd `certs.d` layout) or the registry itself.
    pub fn new(
        reference: &Reference,
        hosts_dir: Option<&std::path::Path>,
        creds: Credentials,
        retry: RetryPolicy,
    ) -> Result<Self> {
        let eps = hosts::endpoints_for(hosts_dir, &reference.domain, reference.api_host())?;
        Self::with_endpoints(reference, eps, creds, retry)
    }

    /// A client over explicit endpoints (tried in order).
    pub fn with_endpoints(
        reference: &Reference,
        endpoints: Vec<Endpoint>,
        creds: Credentials,
        retry: RetryPolicy,
    ) -> Result<Self> {
        let mut out = Vec::new();
        for e in endpoints {
            let http = build_http(&e)?;
            let is_registry = e.base.host_str().is_some_and(|h| {
                let authority = match e.base.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_owned(),
                };
                authority == reference.api_host() || authority == reference.domain
            });
            out.push(Ep {
                endpoint: e,
                http,
                namespace: (!is_registry).then(|| reference.domain.clone()),
            });
        }
        Ok(RegistryClient {
            reference: reference.clone(),
            endpoints: out,
            creds,
            retry: RetryPolicy {
                attempts: retry.attempts.max(1),
                ..retry
            },
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// The reference this client serves.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    fn url(&self, ep: &Ep, path: &str) -> Result<Url> {
        ep.endpoint
            .url(
                &format!("/{}{path}", self.reference.repository),
                ep.namespace.as_deref(),
            )
            .map_err(|e| RemoteError::BadUrl {
                endpoint: ep.endpoint.base.to_string(),
                message: e.to_string(),
            })
    }

    /// Sends one request with auth and retries. Returns the final response whatever its
    /// status, except that retryable failures are retried and 401 is answered once.
    async fn send(
        &self,
        ep: &Ep,
        method: Method,
        url: &Url,
        extra: &[(&str, String)],
    ) -> Result<Response> {
        let key = ep.endpoint.base.to_string();
        let mut answered_401 = false;
        let mut attempt = 0;
        loop {
            let mut rb = ep.http.request(method.clone(), url.clone());
            for (k, v) in extra {
                rb = rb.header(*k, v);
            }
            if let Some(a) = self.auth.lock().await.get(&key) {
                rb = rb.header(reqwest::header::AUTHORIZATION, a);
            }
            let res = rb.send().await;
            match res {
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && !answered_401 => {
                    answered_401 = true;
                    let header = self.authorize(ep, url, &r).await?;
                    self.auth.lock().await.insert(key.clone(), header);
                    continue;
                }
                Ok(r) if retryable_status(r.status()) && attempt + 1 < self.retry.attempts => {}
                Ok(r) => return Ok(r),
                Err(e) if attempt + 1 < self.retry.attempts && !e.is_builder() => {}
                Err(source) => {
                    return Err(RemoteError::Http {
                        url: url.to_string(),
                        source,
                    });
                }
            }
            tokio::time::sleep(self.retry.delay(attempt)).await;
            attempt += 1;
        }
    }

    /// Answers a 401: the `Authorization` value to use from now on.
    async fn authorize(&self, ep: &Ep, url: &Url, r: &Response) -> Result<String> {
        let auth_err = |source| RemoteError::Auth {
            url: url.to_string(),
            source,
        };
        let mut challenges = Vec::new();
        for v in r.headers().get_all(reqwest::header::WWW_AUTHENTICATE) {
            let s = v.to_str().unwrap_or("");
            match auth::parse_challenges(s) {
                Ok(c) => challenges.extend(c),
                Err(e) => return Err(auth_err(AuthError::NoUsableChallenge(e.to_string()))),
            }
        }
        match auth::plan(&challenges, &self.creds, &self.reference.repository).map_err(auth_err)? {
            AuthPlan::Basic(h) => Ok(h),
            AuthPlan::Bearer(t) => Ok(format!("Bearer {t}")),
            AuthPlan::Token {
                realm,
                service,
                scope,
            } => {
                self.fetch_token(ep, &realm, service.as_deref(), &scope)
                    .await
            }
        }
    }

    async fn fetch_token(
        &self,
        ep: &Ep,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String> {
        let terr = |message: String| RemoteError::Token {
            realm: realm.to_owned(),
            message,
        };
        let mut u = Url::parse(realm).map_err(|e| terr(e.to_string()))?;
        // Credentials go over plain HTTP only to loopback or to a registry that is
        // itself configured as plain HTTP.
        if u.scheme() == "http" {
            let host = u.host_str().unwrap_or("");
            let loopback = hosts::is_loopback(host)
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|i| i.is_loopback());
            if !loopback && ep.endpoint.base.scheme() != "http" {
                return Err(terr("plain-HTTP token realm for an HTTPS registry".into()));
            }
        }
        let resp = match &self.creds {
            Credentials::IdentityToken(refresh) => {
                let mut form = Url::parse("http://form/").map_err(|e| terr(e.to_string()))?;
                {
                    let mut q = form.query_pairs_mut();
                    q.append_pair("grant_type", "refresh_token");
                    q.append_pair("refresh_token", refresh);
                    q.append_pair("client_id", "berth");
                    q.append_pair("scope", scope);
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                }
                let body = form.query().unwrap_or("").to_owned();
                ep.http
                    .post(u.clone())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body)
                    .send()
                    .await
            }
            other => {
                {
                    let mut q = u.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", scope);
                }
                let mut rb = ep.http.get(u.clone());
                if let Credentials::Basic { username, password } = other {
                    rb = rb.header(
                        reqwest::header::AUTHORIZATION,
                        auth::basic_header(username, password),
                    );
                }
                rb.send().await
            }
        }
        .map_err(|e| terr(e.to_string()))?;
        let status = resp.status();
        let body = read_capped(resp, 1 << 20, "token response").await?;
        if !status.is_success() {
            return Err(terr(format!("HTTP {status}: {}", truncate_body(&body))));
        }
        let t = auth::token_from_response(&body)
            .ok_or_else(|| terr("answer has no usable token".into()))?;
        Ok(format!("Bearer {t}"))
    }

    /// Fetches the manifest or index named by `object` (a tag or digest), verified:
    /// by `expected` when given, else against `Docker-Content-Digest` if the registry
    /// sent one. Returns (digest, media type, body).
    pub async fn fetch_manifest(
        &self,
        object: &str,
        expected: Option<&Digest>,
    ) -> Result<(Digest, String, Vec<u8>)> {
        let by_digest = expected.is_some();
        let mut errors = Vec::new();
        let mut usable = false;
        for ep in &self.endpoints {
            let caps = ep.endpoint.capabilities;
            if !(if by_digest { caps.pull } else { caps.resolve }) {
                continue;
            }
            usable = true;
            match self.fetch_manifest_from(ep, object, expected).await {
                Ok(v) => return Ok(v),
                Err(e) => errors.push(e),
            }
        }
        if !usable {
            return Err(RemoteError::NoEndpoint(
                self.reference.domain.clone(),
                if by_digest { "pull" } else { "resolve" },
            ));
        }
        Err(one_or_all(errors))
    }

    async fn fetch_manifest_from(
        &self,
        ep: &Ep,
        object: &str,
        expected: Option<&Digest>,
    ) -> Result<(Digest, String, Vec<u8>)> {
        let url = self.url(ep, &format!("/manifests/{object}"))?;
        let r = self
            .send(
                ep,
                Method::GET,
                &url,
                &[("Accept", manifest::ACCEPT.to_owned())],
            )
            .await?;
        let status = r.status();
        let header_digest = r
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let ct = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = read_capped(r, manifest::MAX_MANIFEST, &format!("manifest {object}")).await?;
        if !status.is_success() {
            return Err(RemoteError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                body: truncate_body(&body),
            });
        }
        let want = expected.or(header_digest.as_ref());
        let actual = match want {
            Some(w) => Digest::of(w.algorithm(), &body),
            None => Digest::sha256_of(&body),
        };
        if let Some(w) = want
            && *w != actual
        {
            return Err(RemoteError::DigestMismatch {
                what: format!("manifest {}@{object}", self.reference.name()),
                expected: w.clone(),
                actual,
            });
        }
        // Always name the manifest by the digest the caller asked for, or sha256.
        let digest = match expected {
            Some(e) => e.clone(),
            None if actual.algorithm() == crate::digest::Algorithm::Sha256 => actual,
            None => Digest::sha256_of(&body),
        };
        Ok((digest, ct, body))
    }

    /// Downloads `desc` into `store` unless it is there already; resumes a partial
    /// ingest with `Range`, retries, verifies size and digest before it becomes visible.
    pub async fn fetch_blob(
        &self,
        desc: &Descriptor,
        store: &Arc<ContentStore>,
        progress: &Option<ProgressSender>,
    ) -> Result<BlobInfo> {
        let mut errors = Vec::new();
        let mut usable = false;
        for ep in &self.endpoints {
            if !ep.endpoint.capabilities.pull {
                continue;
            }
            usable = true;
            match self.fetch_blob_from(ep, desc, store, progress).await {
                Ok(v) => return Ok(v),
                // Content that fails verification is not retried elsewhere: it is an
                // error worth seeing, and the ingest is gone already.
                Err(e @ RemoteError::Content(ContentError::DigestMismatch { .. })) => {
                    return Err(e);
                }
                Err(e) => errors.push(e),
            }
        }
        if !usable {
            return Err(RemoteError::NoEndpoint(
                self.reference.domain.clone(),
                "pull",
            ));
        }
        Err(one_or_all(errors))
    }

    async fn fetch_blob_from(
        &self,
        ep: &Ep,
        desc: &Descriptor,
        store: &Arc<ContentStore>,
        progress: &Option<ProgressSender>,
    ) -> Result<BlobInfo> {
        let digest = desc.digest.clone();
        let size = desc.size;
        let writer = {
            let store = store.clone();
            let digest = digest.clone();
            tokio::task::spawn_blocking(move || store.writer(&digest, Some(size)))
                .await
                .map_err(|e| RemoteError::Task(e.to_string()))??
        };
        let mut ingest = match writer {
            Writer::Exists(info) => {
                send(
                    progress,
                    Progress::BlobDone {
                        digest,
                        existed: true,
                    },
                );
                return Ok(info);
            }
            Writer::Ingest(i) => i,
        };
        send(
            progress,
            Progress::BlobStarted {
                digest: digest.clone(),
                total: size,
                offset: ingest.offset(),
            },
        );
        let url = self.url(ep, &format!("/blobs/{digest}"))?;
        let mut attempt = 0u32;
        let mut last_err: Option<RemoteError> = None;
        while ingest.size() < size {
            if attempt >= self.retry.attempts {
                return Err(last_err.unwrap_or(RemoteError::Truncated {
                    digest,
                    expected: size,
                    got: ingest.size(),
                }));
            }
            if attempt > 0 {
                tokio::time::sleep(self.retry.delay(attempt - 1)).await;
            }
            attempt += 1;
            let offset = ingest.size();
            let extra: Vec<(&str, String)> = if offset > 0 {
                vec![("Range", format!("bytes={offset}-"))]
            } else {
                Vec::new()
            };
            let mut r = self.send(ep, Method::GET, &url, &extra).await?;
            match r.status() {
                StatusCode::PARTIAL_CONTENT if offset > 0 => {
                    let ok = r
                        .headers()
                        .get(reqwest::header::CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.starts_with(&format!("bytes {offset}-")));
                    if !ok {
                        // A range we did not ask for: start over.
                        ingest.reset()?;
                        last_err = Some(RemoteError::Status {
                            url: url.to_string(),
                            status: 206,
                            body: "unexpected Content-Range".into(),
                        });
                        continue;
                    }
                }
                StatusCode::OK => {
                    if offset > 0 {
                        ingest.reset()?;
                    }
                }
                s => {
                    let body = read_capped(r, 4096, "error body").await.unwrap_or_default();
                    let err = RemoteError::Status {
                        url: url.to_string(),
                        status: s.as_u16(),
                        body: truncate_body(&body),
                    };
                    if retryable_status(s) {
                        last_err = Some(err);
                        continue;
                    }
                    return Err(err);
                }
            }
            if let Some(len) = r.content_length()
                && ingest.size() + len > size
            {
                return Err(RemoteError::TooLarge {
                    what: format!("blob {digest}"),
                    limit: size,
                });
            }
            let mut since_event = 0u64;
            loop {
                match r.chunk().await {
                    Ok(Some(bytes)) => {
                        if ingest.size() + bytes.len() as u64 > size {
                            ingest.abort();
                            return Err(RemoteError::TooLarge {
                                what: format!("blob {digest}"),
                                limit: size,
                            });
                        }
                        ingest.write_all(&bytes).map_err(|e| ContentError::Io {
                            op: "write",
                            path: store.root().to_owned(),
                            source: e,
                        })?;
                        since_event += bytes.len() as u64;
                        if since_event >= 1 << 20 {
                            since_event = 0;
                            send(
                                progress,
                                Progress::BlobProgress {
                                    digest: digest.clone(),
                                    done: ingest.size(),
                                    total: size,
                                },
                            );
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        // The body broke off: resume from what we have on the next attempt.
                        last_err = Some(RemoteError::Truncated {
                            digest: digest.clone(),
                            expected: size,
                            got: ingest.size(),
                        });
                        break;
                    }
                }
            }
            if ingest.size() < size {
                last_err = Some(RemoteError::Truncated {
                    digest: digest.clone(),
                    expected: size,
                    got: ingest.size(),
                });
            }
        }
        let info = tokio::task::spawn_blocking(move || ingest.commit())
            .await
            .map_err(|e| RemoteError::Task(e.to_string()))??;
        send(
            progress,
            Progress::BlobDone {
                digest,
                existed: false,
            },
        );
        Ok(info)
    }
}

fn one_or_all(mut errors: Vec<RemoteError>) -> RemoteError {
    if errors.len() == 1 {
        errors.remove(0)
    } else {
        RemoteError::AllEndpointsFailed(errors.iter().map(ToString::to_string).collect())
    }
}

/// Reads a whole body, refusing more than `limit` bytes.
async fn read_capped(mut r: Response, limit: u64, what: &str) -> Result<Vec<u8>> {
    let url = r.url().to_string();
    if r.content_length().is_some_and(|l| l > limit) {
        return Err(RemoteError::TooLarge {
            what: what.to_owned(),
            limit,
        });
    }
    let mut out = Vec::new();
    while let Some(c) = r.chunk().await.map_err(|source| RemoteError::Http {
        url: url.clone(),
        source,
    })? {
        if out.len() as u64 + c.len() as u64 > limit {
            return Err(RemoteError::TooLarge {
                what: what.to_owned(),
                limit,
            });
        }
        out.extend_from_slice(&c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        assert_eq!(p.delay(0), Duration::from_millis(100));
        assert_eq!(p.delay(1), Duration::from_millis(200));
        assert_eq!(p.delay(2), Duration::from_millis(350));
        assert_eq!(p.delay(40), Duration::from_millis(350));
    }

    #[test]
    fn error_classes() {
        let st = |status| RemoteError::Status {
            url: "u".into(),
            status,
            body: String::new(),
        };
        assert!(st(404).is_not_found());
        assert!(!st(500).is_not_found());
        assert!(st(401).is_unauthorized());
        assert!(st(403).is_unauthorized());
        assert!(!st(404).is_unauthorized());
        assert!(
            RemoteError::Token {
                realm: "r".into(),
                message: "m".into()
            }
            .is_unauthorized()
        );
    }

    #[test]
    fn retryable_statuses() {
        assert!(retryable_status(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(retryable_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable_status(StatusCode::NOT_FOUND));
        assert!(!retryable_status(StatusCode::UNAUTHORIZED));
    }
}
