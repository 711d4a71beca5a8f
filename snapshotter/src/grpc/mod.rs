//! containerd's snapshots gRPC API (`containerd.services.snapshots.v1.Snapshots`) over
//! the library's [`Snapshotter`](crate::Snapshotter), so containerd can use berth as a
//! proxy snapshotter (`[proxy_plugins.berth] type = "snapshot"`).
//!
//! - [`proto`]: the messages and the service, generated from `snapshotter/proto/`;
//! - [`convert`]: pure translations between those messages and the library's types,
//!   and between library errors and gRPC statuses;
//! - [`filter`]: containerd's filter expressions as `List` receives them;
//! - [`server`]: the service itself and [`server::serve`] on a unix socket.

pub mod convert;
pub mod filter;
pub mod server;

pub use server::{DEFAULT_ADDRESS, SnapshotsService, bind, serve};

/// Code generated from `snapshotter/proto/` (package paths as containerd's).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    /// containerd's shared types (`containerd.types`).
    pub mod containerd {
        /// `containerd.types`: the mount type.
        pub mod types {
            tonic::include_proto!("containerd.types");
        }
        /// `containerd.services`.
        pub mod services {
            /// `containerd.services.snapshots`.
            pub mod snapshots {
                /// `containerd.services.snapshots.v1`: the snapshots service.
                pub mod v1 {
                    tonic::include_proto!("containerd.services.snapshots.v1");
                }
            }
        }
    }
    pub use containerd::services::snapshots::v1::*;
    pub use containerd::types::Mount;
}
