//! Streaming for exec, attach and port-forward: the HTTP server berthd's Exec, Attach and
//! PortForward RPCs hand out URLs for, the SPDY/3.1 and WebSocket protocols Kubernetes
//! clients speak over it, and a client for the same protocols.
//!
//! The server only moves bytes: berthd supplies [`handler::ExecHandler`],
//! [`handler::AttachHandler`] and [`handler::PortForwardHandler`].

pub mod cache;
pub mod channel;
pub mod client;
pub mod command;
pub mod handler;
pub mod portforward;
pub mod remotecommand;
pub mod server;
pub mod spdy;

pub use cache::{Cache, CacheError, Request};
pub use handler::{
    AttachHandler, AttachRequest, ExecHandler, ExecRequest, HandlerError, PortForwardHandler,
    PortForwardRequest, StreamIo,
};
pub use server::{Config, Handlers, StreamingServer, UrlError};
