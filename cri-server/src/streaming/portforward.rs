//! Server side of port-forward: each client connection (a data and an error stream, or a
//! pair of WebSocket channels) is joined to a connection the handler opens.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::channel::{InChan, OutChan};
use super::handler::{PortForwardHandler, PortForwardRequest};

/// Joins one forwarded connection: dials `port`, then copies both ways until both
/// directions end. A dial failure is reported on `error`.
pub async fn forward(
    handler: Arc<dyn PortForwardHandler>,
    req: Arc<PortForwardRequest>,
    port: u16,
    mut data_in: InChan,
    data_out: OutChan,
    error: OutChan,
) {
    let conn = match handler.connect(&req, port).await {
        Ok(c) => c,
        Err(e) => {
            let msg = format!(
                "error forwarding port {port} to pod {}: {e}",
                req.pod_sandbox_id
            );
            let _ = error.send(msg.as_bytes()).await;
            error.close().await;
            data_out.close().await;
            return;
        }
    };
    let (mut r, mut w) = tokio::io::split(conn);
    let upstream = async {
        while let Some(chunk) = data_in.recv().await {
            if w.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if data_out.send(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        data_out.close().await;
    };
    tokio::join!(upstream, downstream);
    error.close().await;
}
