//! Server side of exec and attach: wires a session's channels to a handler's
//! [`StreamIo`] and reports the outcome on the error channel.

use std::future::Future;

use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};
use tokio::sync::mpsc;

use super::channel::{AbortOnDrop, InChan, OutChan};
use super::handler::{BoxFuture, HandlerError, StreamIo};
use super::remotecommand::{Outcome, TermSize, Version, parse_resizes, status_message};

/// Buffer between a channel and a handler pipe.
const PIPE: usize = 64 * 1024;
/// Largest resize message buffered while waiting for its end.
const MAX_RESIZE_BUF: usize = 4096;

/// The channels of one exec or attach session.
pub struct CommandChannels {
    /// Client stdin.
    pub stdin: Option<InChan>,
    /// Client stdout.
    pub stdout: Option<OutChan>,
    /// Client stderr.
    pub stderr: Option<OutChan>,
    /// Error / exit status.
    pub error: OutChan,
    /// Terminal size changes.
    pub resize: Option<InChan>,
}

/// Runs `run` against `chans` until it ends or `gone` resolves (the client left: then the
/// handler's future is dropped, which must stop what it started). Returns after the
/// status was written, or `None` if the client left.
pub async fn serve_command<G>(
    chans: CommandChannels,
    version: Version,
    cmd: &[String],
    gone: G,
    run: impl FnOnce(StreamIo) -> BoxFuture<Result<i32, HandlerError>>,
) -> Option<Outcome>
where
    G: Future<Output = ()>,
{
    let mut guards = Vec::new();
    let stdin = chans.stdin.map(|mut input| {
        let (r, mut w) = duplex(PIPE);
        guards.push(AbortOnDrop(tokio::spawn(async move {
            while let Some(chunk) = input.recv().await {
                if w.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = w.shutdown().await;
        })));
        r
    });
    let mut out_tasks = Vec::new();
    let mut pipe_out = |out: Option<OutChan>| {
        out.map(|out| {
            let (mut r, w) = duplex(PIPE);
            out_tasks.push(AbortOnDrop(tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if out.send(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                out.close().await;
            })));
            w
        })
    };
    let stdout = pipe_out(chans.stdout);
    let stderr = pipe_out(chans.stderr);
    let resize = chans.resize.map(|mut input| {
        let (tx, rx) = mpsc::channel::<TermSize>(8);
        guards.push(AbortOnDrop(tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(chunk) = input.recv().await {
                buf.extend_from_slice(&chunk);
                let Ok((sizes, used)) = parse_resizes(&buf) else {
                    break;
                };
                buf.drain(..used);
                for s in sizes {
                    if tx.send(s).await.is_err() {
                        return;
                    }
                }
                if buf.len() > MAX_RESIZE_BUF {
                    break;
                }
            }
        })));
        rx
    });
    let io = StreamIo {
        stdin,
        stdout,
        stderr,
        resize,
    };
    tokio::pin!(gone);
    let result = tokio::select! {
        r = run(io) => r,
        _ = &mut gone => return None,
    };
    // The handler returned, so its pipe writers are gone: let the output drain.
    for t in out_tasks.iter_mut() {
        tokio::select! {
            _ = &mut t.0 => {}
            _ = &mut gone => return None,
        }
    }
    drop(guards);
    let outcome = match result {
        Ok(code) => Outcome::Exited(code),
        Err(e) => Outcome::Error(e.to_string()),
    };
    let msg = status_message(version, &outcome, cmd);
    if !msg.is_empty() {
        let _ = chans.error.send(&msg).await;
    }
    chans.error.close().await;
    Some(outcome)
}
