//! berth-snapshotter: content-addressed blobs, overlay snapshots, safe layer unpack,
//! and the registry pull path berthd uses.

pub mod apply;
pub mod content;
pub mod digest;
pub mod gc;

pub use content::{BlobInfo, ContentError, ContentStore, Ingest, Writer};
pub use digest::{Algorithm, Digest, DigestError};
pub mod images;
pub mod meta;

pub use images::ImageRecord;
pub use meta::{MetaError, MetaStore};
pub mod mount;
pub mod snapshots;
pub mod testsuite;
pub mod unpack;

pub use snapshots::{Kind, Mount, SnapshotError, Snapshots, Snapshotter};
pub mod pull;
pub mod remote;
