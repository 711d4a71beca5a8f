//! berth-snapshotter: content-addressed blobs, overlay snapshots, safe layer unpack,
//! and the registry pull path berthd uses.
//!
//! The pieces, bottom up (all synchronous; call them from `spawn_blocking` in async
//! code):
//! - [`digest`]: validated `sha256:`/`sha512:` digests and hashing readers/writers;
//! - [`content`]: the blob store (`/var/lib/berth/content`): verified atomic commits,
//!   resumable ingests shared between concurrent writers of one digest;
//! - [`meta`] and [`images`]: the redb store (`/var/lib/berth/meta.redb`) with content
//!   labels and image records;
//! - [`snapshots`]: containerd's snapshotter model over overlayfs
//!   (`/var/lib/berth/snapshots`), and [`mount`] to mount what it returns (chains of
//!   any length, up to overlayfs' 500 layers);
//! - [`apply`]: the layer applier (tar, gzip, zstd) that cannot write outside its
//!   destination; [`unpack`]: layers → chain-ID snapshots;
//! - [`gc`]: removes blobs and snapshots that nothing references;
//! - [`testsuite`]: the snapshotter test suite shared by every implementation;
//! - [`grpc`]: containerd's snapshots gRPC API over the snapshotter, served by the
//!   `berth-snapshotter` binary as a containerd proxy plugin.
//!
//! A pull: for each blob `ContentStore::writer` → write from `Ingest::offset` →
//! `Ingest::commit`; then `unpack::unpack_image` (or `unpack::unpack_layer` on a
//! tee of the download) → `MetaStore::put_image`.

pub mod apply;
pub mod content;
pub mod digest;
pub mod gc;
pub mod grpc;
pub mod images;
pub mod meta;
pub mod mount;
pub mod snapshots;
pub mod testsuite;
pub mod unpack;

pub use content::{BlobInfo, ContentError, ContentStore, Ingest, Writer};
pub use digest::{Algorithm, Digest, DigestError};
pub use images::ImageRecord;
pub use meta::{MetaError, MetaStore};
pub use snapshots::{Kind, Mount, SnapshotError, Snapshots, Snapshotter};
pub mod pull;
pub mod remote;
