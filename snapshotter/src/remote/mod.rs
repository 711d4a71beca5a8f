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
