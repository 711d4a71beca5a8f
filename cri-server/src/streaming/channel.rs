//! One byte channel of a session, whichever the transport: a SPDY stream half or a
//! WebSocket channel number. The exec and port-forward code above it is the same for both.

use std::collections::HashMap;

use base64::Engine;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::remotecommand::channel::CLOSE;
use super::spdy;

/// Largest WebSocket message payload we send (one channel byte is added).
const WS_CHUNK: usize = 32 * 1024;

/// The receiving side of one channel.
pub enum InChan {
    /// A SPDY stream.
    Spdy(spdy::RecvHalf),
    /// A WebSocket channel.
    Ws(mpsc::Receiver<Bytes>),
}

impl InChan {
    /// Next chunk; `None` at the end of the channel or the session.
    pub async fn recv(&mut self) -> Option<Bytes> {
        match self {
            InChan::Spdy(r) => r.recv().await,
            InChan::Ws(r) => r.recv().await,
        }
    }
}

/// The sending side of one channel.
#[derive(Clone)]
pub enum OutChan {
    /// A SPDY stream.
    Spdy(spdy::SendHalf),
    /// A WebSocket channel.
    Ws {
        /// Channel number.
        ch: u8,
        /// The connection's writer.
        tx: mpsc::Sender<WsOut>,
    },
}

/// The channel's peer is gone.
#[derive(Debug, thiserror::Error)]
#[error("stream closed: {0}")]
pub struct ChanClosed(pub String);

impl OutChan {
    /// Sends `data` (split into messages as needed).
    pub async fn send(&self, data: &[u8]) -> Result<(), ChanClosed> {
        match self {
            OutChan::Spdy(s) => s.send(data).await.map_err(|e| ChanClosed(e.to_string())),
            OutChan::Ws { ch, tx } => {
                for chunk in data.chunks(WS_CHUNK) {
                    tx.send(WsOut::Data(*ch, Bytes::copy_from_slice(chunk)))
                        .await
                        .map_err(|_| ChanClosed("websocket closed".into()))?;
                }
                Ok(())
            }
        }
    }

    /// Ends the channel (SPDY FIN; WebSocket channels have no per-channel end).
    pub async fn close(&self) {
        if let OutChan::Spdy(s) = self {
            let _ = s.close().await;
        }
    }
}

/// A message for the WebSocket writer task.
#[derive(Debug)]
pub enum WsOut {
    /// Data on a channel.
    Data(u8, Bytes),
    /// Raw payload of a message on a channel (port prefix, v5 close signal).
    Raw(u8, Bytes),
    /// Send a normal Close and stop.
    Close,
}

/// A WebSocket connection split into channels.
pub struct WsMux {
    /// Receivers of the channels the peer may send on.
    pub inbound: HashMap<u8, mpsc::Receiver<Bytes>>,
    /// The writer.
    pub tx: mpsc::Sender<WsOut>,
    /// Becomes true when the peer's side ends.
    pub closed: watch::Receiver<bool>,
    reader: AbortOnDrop,
    writer: AbortOnDrop,
}

/// Aborts a task when dropped (dropping a [`WsMux`] without [`WsMux::close`] abandons
/// the connection at once).
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl WsMux {
    /// Splits `ws` into channels; `inbound` lists the channels the peer may send on;
    /// `base64` selects the text framing; v5 close signals end inbound channels.
    pub fn start<S>(ws: WebSocketStream<S>, inbound: &[u8], base64: bool) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut stream) = ws.split();
        let mut senders: HashMap<u8, mpsc::Sender<Bytes>> = HashMap::new();
        let mut receivers = HashMap::new();
        for &ch in inbound {
            let (tx, rx) = mpsc::channel(64);
            senders.insert(ch, tx);
            receivers.insert(ch, rx);
        }
        let (closed_tx, closed) = watch::channel(false);
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                // Like kubelet, text and binary frames are read alike: the protocol, not
                // the frame type, decides whether the payload is base64.
                let raw: Bytes = match msg {
                    Message::Binary(b) => b,
                    Message::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Some(&first) = raw.first() else {
                    continue;
                };
                let (ch, data) = if base64 {
                    let Some(ch) = first.checked_sub(b'0') else {
                        continue;
                    };
                    match base64::engine::general_purpose::STANDARD.decode(&raw[1..]) {
                        Ok(d) => (ch, Bytes::from(d)),
                        Err(_) => continue,
                    }
                } else {
                    (first, raw.slice(1..))
                };
                if ch == CLOSE {
                    if let Some(&target) = data.first() {
                        senders.remove(&target);
                    }
                    continue;
                }
                if data.is_empty() {
                    continue;
                }
                if let Some(tx) = senders.get(&ch)
                    && tx.send(data).await.is_err()
                {
                    senders.remove(&ch);
                }
            }
            closed_tx.send_replace(true);
        });
        let (tx, mut rx) = mpsc::channel::<WsOut>(256);
        let writer = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some(o) = next.take() {
                    let msg = match o {
                        WsOut::Close => {
                            let _ = sink
                                .send(Message::Close(Some(CloseFrame {
                                    code: CloseCode::Normal,
                                    reason: "".into(),
                                })))
                                .await;
                            let _ = sink.close().await;
                            return;
                        }
                        WsOut::Raw(ch, d) | WsOut::Data(ch, d) if base64 => {
                            let mut s = String::with_capacity(1 + d.len() * 4 / 3 + 4);
                            s.push(char::from(b'0'.wrapping_add(ch)));
                            base64::engine::general_purpose::STANDARD.encode_string(&d, &mut s);
                            Message::text(s)
                        }
                        WsOut::Raw(ch, d) | WsOut::Data(ch, d) => {
                            let mut v = Vec::with_capacity(1 + d.len());
                            v.push(ch);
                            v.extend_from_slice(&d);
                            Message::binary(v)
                        }
                    };
                    if sink.feed(msg).await.is_err() {
                        return;
                    }
                    next = rx.try_recv().ok();
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });
        Self {
            inbound: receivers,
            tx,
            closed,
            reader: AbortOnDrop(reader),
            writer: AbortOnDrop(writer),
        }
    }

    /// The sending side of channel `ch`.
    pub fn out(&self, ch: u8) -> OutChan {
        OutChan::Ws {
            ch,
            tx: self.tx.clone(),
        }
    }

    /// Takes the receiving side of channel `ch`.
    pub fn take_in(&mut self, ch: u8) -> Option<InChan> {
        self.inbound.remove(&ch).map(InChan::Ws)
    }

    /// Sends Close after everything queued, and waits (bounded) for the peer to finish.
    pub async fn close(self, linger: std::time::Duration) {
        let _ = tokio::time::timeout(linger, self.tx.send(WsOut::Close)).await;
        drop(self.tx);
        let mut writer = self.writer;
        // A peer that stops reading cannot keep the writer (and the socket) alive.
        let _ = tokio::time::timeout(linger, &mut writer.0).await;
        drop(writer);
        let mut closed = self.closed;
        let _ = tokio::time::timeout(linger, closed.wait_for(|c| *c)).await;
        drop(self.reader);
    }
}
