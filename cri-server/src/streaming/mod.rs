//! Streaming for exec, attach and port-forward: the HTTP server berthd's Exec, Attach and
//! PortForward RPCs hand out URLs for, the SPDY/3.1 and WebSocket protocols Kubernetes
//! clients speak over it, and a client for the same protocols.

pub mod spdy;
