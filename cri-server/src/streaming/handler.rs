//! What the streaming server asks of berthd: run a command, attach to a container,
//! reach a port inside a pod. The server only moves bytes between a client session and
//! these handlers.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::sync::mpsc;

pub use super::remotecommand::TermSize;

/// A boxed, sendable future (handler traits are object safe).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An Exec request as CRI's `ExecRequest` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// Container to run the command in.
    pub container_id: String,
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// Run the command on a terminal.
    pub tty: bool,
    /// Stream stdin.
    pub stdin: bool,
    /// Stream stdout.
    pub stdout: bool,
    /// Stream stderr (ignored with a TTY: the terminal merges it into stdout).
    pub stderr: bool,
}

/// An Attach request as CRI's `AttachRequest` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    /// Container to attach to.
    pub container_id: String,
    /// The container runs on a terminal.
    pub tty: bool,
    /// Stream stdin.
    pub stdin: bool,
    /// Stream stdout.
    pub stdout: bool,
    /// Stream stderr.
    pub stderr: bool,
}

/// A PortForward request as CRI's `PortForwardRequest` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardRequest {
    /// Pod sandbox whose network namespace the ports live in.
    pub pod_sandbox_id: String,
    /// Ports the client announced (a client may still ask for others).
    pub ports: Vec<u16>,
}

/// The client's streams as a handler sees them, as in-memory pipes (read stdin, write
/// stdout and stderr; the other direction of each pipe is unused). Dropping a pipe ends
/// that stream; the
/// handler's future is dropped when the client goes away, so it must clean up on drop
/// (kill the process it started).
pub struct StreamIo {
    /// Client stdin; EOF when the client closes it.
    pub stdin: Option<DuplexStream>,
    /// To client stdout.
    pub stdout: Option<DuplexStream>,
    /// To client stderr (never with a TTY).
    pub stderr: Option<DuplexStream>,
    /// Terminal size changes (TTY sessions only).
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

/// Why a handler could not do what was asked; reported on the error stream.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The container or sandbox does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Anything else, with a message for the client.
    #[error("{0}")]
    Failed(String),
}

/// Runs commands in containers (berthd: through the shim).
pub trait ExecHandler: Send + Sync + 'static {
    /// Runs `req` with `io`; resolves to the exit code.
    fn exec(&self, req: ExecRequest, io: StreamIo) -> BoxFuture<Result<i32, HandlerError>>;
}

/// Attaches to a running container's stdio.
pub trait AttachHandler: Send + Sync + 'static {
    /// Attaches `io` to the container of `req` until either side ends.
    fn attach(&self, req: AttachRequest, io: StreamIo) -> BoxFuture<Result<(), HandlerError>>;
}

/// A connection to a port inside a pod.
pub trait PortConnection: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PortConnection for T {}

/// Reaches ports inside pod network namespaces.
pub trait PortForwardHandler: Send + Sync + 'static {
    /// Connects to `port` in the sandbox of `req`.
    fn connect(
        &self,
        req: &PortForwardRequest,
        port: u16,
    ) -> BoxFuture<Result<Box<dyn PortConnection>, HandlerError>>;
}

/// A handler for every kind of request that answers "not implemented"; berthd replaces
/// the parts it supports.
pub struct Unsupported;

impl ExecHandler for Unsupported {
    fn exec(&self, _: ExecRequest, _: StreamIo) -> BoxFuture<Result<i32, HandlerError>> {
        Box::pin(async { Err(HandlerError::Failed("exec is not implemented".into())) })
    }
}

impl AttachHandler for Unsupported {
    fn attach(&self, _: AttachRequest, _: StreamIo) -> BoxFuture<Result<(), HandlerError>> {
        Box::pin(async { Err(HandlerError::Failed("attach is not implemented".into())) })
    }
}

impl PortForwardHandler for Unsupported {
    fn connect(
        &self,
        _: &PortForwardRequest,
        _: u16,
    ) -> BoxFuture<Result<Box<dyn PortConnection>, HandlerError>> {
        Box::pin(async {
            Err(HandlerError::Failed(
                "port-forward is not implemented".into(),
            ))
        })
    }
}
