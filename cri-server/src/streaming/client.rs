//! Client side of the streaming protocols (SPDY/3.1 and WebSocket) for exec, attach and
//! port-forward: used by the conformance suite and by berthctl.

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::channel::{InChan, OutChan, WsMux, WsOut};
use super::remotecommand::{
    self, Outcome, PROTOCOL_PORT_FORWARD, SPDY_EXEC_PROTOCOLS, TermSize, Version, channel,
    stream_type,
};
use super::server::STREAM_PROTOCOL_HEADER;
use super::spdy::{self, Headers, Role, Session, Stream};

/// Largest HTTP response head accepted during the upgrade.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Why a streaming client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port/path` (or ws://).
    #[error("invalid streaming URL {0:?}")]
    Url(String),
    /// Connecting or talking to the server failed.
    #[error("connection to {addr}: {source}")]
    Io {
        /// Server address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server did not switch protocols.
    #[error("server refused the upgrade: HTTP {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// The server's upgrade response was malformed or chose something we did not offer.
    #[error("bad upgrade response: {0}")]
    BadResponse(String),
    /// The WebSocket handshake failed.
    #[error("websocket: {0}")]
    WebSocket(String),
    /// The SPDY session failed.
    #[error("spdy: {0}")]
    Session(#[from] spdy::SessionError),
}

/// Which protocol family to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// SPDY/3.1 (kubectl's default).
    Spdy,
    /// WebSocket channels.
    WebSocket,
}

fn split_url(url: &str) -> Result<(String, String), ClientError> {
    let uri: http::Uri = url.parse().map_err(|_| ClientError::Url(url.into()))?;
    let auth = uri
        .authority()
        .ok_or_else(|| ClientError::Url(url.into()))?;
    let port = auth.port_u16().unwrap_or(80);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    Ok((format!("{}:{port}", auth.host()), path))
}

/// Upgrades `url` to SPDY/3.1 offering `protocols`; returns the session and the protocol
/// the server chose.
pub async fn connect_spdy(url: &str, protocols: &[&str]) -> Result<(Session, String), ClientError> {
    let (addr, path) = split_url(url)?;
    let io_err = |source| ClientError::Io {
        addr: addr.clone(),
        source,
    };
    let mut tcp = TcpStream::connect(&addr).await.map_err(io_err)?;
    let _ = tcp.set_nodelay(true);
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n"
    );
    for p in protocols {
        req.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.map_err(io_err)?;
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(ClientError::BadResponse("response head too large".into()));
        }
        let n = tcp.read_buf(&mut buf).await.map_err(io_err)?;
        if n == 0 {
            return Err(ClientError::BadResponse(
                "connection closed during upgrade".into(),
            ));
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| ClientError::BadResponse("no status line".into()))?;
    let mut chosen = String::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':')
            && k.trim().eq_ignore_ascii_case(STREAM_PROTOCOL_HEADER)
        {
            chosen = v.trim().to_string();
        }
    }
    if status != 101 {
        // Read a little of the body for the error message.
        let mut body = buf[head_end..].to_vec();
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), async {
            while body.len() < 512 {
                match tcp.read_buf(&mut body).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        return Err(ClientError::Refused {
            status,
            body: String::from_utf8_lossy(&body).trim().to_string(),
        });
    }
    if !protocols.is_empty() && !protocols.contains(&chosen.as_str()) {
        return Err(ClientError::BadResponse(format!(
            "server chose protocol {chosen:?}, not one we offered"
        )));
    }
    let rest = buf[head_end..].to_vec();
    Ok((Session::new(tcp, Role::Client, rest), chosen))
}

/// Opens a WebSocket to `url` offering `protocols`; returns it and the chosen protocol.
pub async fn connect_ws(
    url: &str,
    protocols: &[&str],
) -> Result<(WebSocketStream<TcpStream>, String), ClientError> {
    let (addr, path) = split_url(url)?;
    let ws_url = format!("ws://{addr}{path}");
    let mut req = ws_url
        .into_client_request()
        .map_err(|e| ClientError::WebSocket(e.to_string()))?;
    if !protocols.is_empty() {
        let v = http::HeaderValue::from_str(&protocols.join(", "))
            .map_err(|_| ClientError::Url(url.into()))?;
        req.headers_mut().insert("sec-websocket-protocol", v);
    }
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|source| ClientError::Io {
            addr: addr.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => ClientError::Refused {
                status: r.status().as_u16(),
                body: String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).into(),
            },
            e => ClientError::WebSocket(e.to_string()),
        })?;
    let chosen = resp
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Ok((ws, chosen))
}

/// What an exec or attach asks for.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// SPDY or WebSocket.
    pub transport: Transport,
    /// Protocols to offer, best first; empty: v4 and older (SPDY) or v5/v4 (WebSocket).
    pub protocols: Vec<String>,
    /// Send stdin.
    pub stdin: bool,
    /// Receive stdout.
    pub stdout: bool,
    /// Receive stderr (not with a TTY).
    pub stderr: bool,
    /// Run on a terminal (resize messages allowed).
    pub tty: bool,
}

/// Local ends of an exec or attach.
#[derive(Default)]
pub struct ExecIo {
    /// Sent as the command's stdin; EOF closes it.
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Receives stdout.
    pub stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Receives stderr.
    pub stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Terminal sizes to send.
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

/// Runs an exec (or attach) at `url`; resolves to how the command ended.
pub async fn exec(url: &str, opts: &ExecOptions, io: ExecIo) -> Result<Outcome, ClientError> {
    match opts.transport {
        Transport::Spdy => exec_spdy(url, opts, io).await,
        Transport::WebSocket => exec_ws(url, opts, io).await,
    }
}

fn hdr(kind: &str) -> Headers {
    vec![("streamtype".to_string(), kind.to_string())]
}

async fn pump_in(
    mut from: Box<dyn AsyncRead + Send + Unpin>,
    to: OutChan,
    close_signal: Option<WsOut>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.send(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    match (close_signal, &to) {
        (Some(sig), OutChan::Ws { tx, .. }) => {
            let _ = tx.send(sig).await;
        }
        _ => to.close().await,
    }
}

async fn pump_out(mut from: InChan, mut to: Option<Box<dyn AsyncWrite + Send + Unpin>>) {
    while let Some(chunk) = from.recv().await {
        if let Some(w) = to.as_mut()
            && w.write_all(&chunk).await.is_err()
        {
            to = None;
        }
    }
    if let Some(mut w) = to {
        let _ = w.flush().await;
    }
}

async fn pump_resize(mut from: mpsc::Receiver<TermSize>, to: OutChan) {
    while let Some(size) = from.recv().await {
        let Ok(json) = serde_json::to_vec(&size) else {
            continue;
        };
        if to.send(&json).await.is_err() {
            return;
        }
    }
}

async fn read_all(mut from: InChan) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(c) = from.recv().await {
        if out.len() < 64 * 1024 {
            out.extend_from_slice(&c);
        }
    }
    out
}

async fn exec_spdy(url: &str, opts: &ExecOptions, io: ExecIo) -> Result<Outcome, ClientError> {
    let offered: Vec<&str> = if opts.protocols.is_empty() {
        SPDY_EXEC_PROTOCOLS.to_vec()
    } else {
        opts.protocols.iter().map(String::as_str).collect()
    };
    let (session, chosen) = connect_spdy(url, &offered).await?;
    let version = Version::of(&chosen).unwrap_or(Version::V1);
    // Open every stream at once: each waits for its SYN_REPLY, so one after the other
    // would cost a round trip each.
    let open = |wanted: bool, kind: &'static str| {
        let session = &session;
        async move {
            if wanted {
                session.open(hdr(kind), false).await.map(Some)
            } else {
                Ok(None)
            }
        }
    };
    let (error, stdin, stdout, stderr, resize) = tokio::join!(
        open(true, stream_type::ERROR),
        open(opts.stdin, stream_type::STDIN),
        open(opts.stdout, stream_type::STDOUT),
        open(opts.stderr && !opts.tty, stream_type::STDERR),
        open(opts.tty && version.has_resize(), stream_type::RESIZE),
    );
    let error = error?.expect("the error stream is always opened");
    let (stdin, stdout, stderr, resize) = (stdin?, stdout?, stderr?, resize?);
    // Half-closing our side of a stream fails once the server has finished and closed
    // the session, which a command that fails at once (an unknown container) does
    // before we get here: what it wrote on the error stream still decides the outcome.
    let _ = error.tx.close().await;
    let mut background = Vec::new();
    if let (Some(s), Some(r)) = (&stdin, io.stdin) {
        background.push(tokio::spawn(pump_in(r, OutChan::Spdy(s.tx.clone()), None)));
    } else if let Some(s) = &stdin {
        let _ = s.tx.close().await;
    }
    if let (Some(s), Some(r)) = (&resize, io.resize) {
        background.push(tokio::spawn(pump_resize(r, OutChan::Spdy(s.tx.clone()))));
    }
    let mut outputs = Vec::new();
    for (s, w) in [(stdout, io.stdout), (stderr, io.stderr)] {
        if let Some(s) = s {
            let _ = s.tx.close().await;
            outputs.push(pump_out(InChan::Spdy(s.rx), w));
        }
    }
    let status = read_all(InChan::Spdy(error.rx));
    let (status, _) = tokio::join!(status, futures_util::future::join_all(outputs));
    for b in background {
        b.abort();
    }
    session.close(std::time::Duration::ZERO).await;
    Ok(remotecommand::parse_status(version, &status))
}

async fn exec_ws(url: &str, opts: &ExecOptions, io: ExecIo) -> Result<Outcome, ClientError> {
    let offered: Vec<&str> = if opts.protocols.is_empty() {
        vec![remotecommand::PROTOCOL_V5, remotecommand::PROTOCOL_V4]
    } else {
        opts.protocols.iter().map(String::as_str).collect()
    };
    let (ws, chosen) = connect_ws(url, &offered).await?;
    let version = Version::of(&chosen).unwrap_or(Version::V1);
    let base64 = remotecommand::is_base64(&chosen);
    let mut mux = WsMux::start(
        ws,
        &[channel::STDOUT, channel::STDERR, channel::ERROR],
        base64,
    );
    let mut background = Vec::new();
    if let (true, Some(r)) = (opts.stdin, io.stdin) {
        let sig = (version >= Version::V5)
            .then(|| WsOut::Raw(channel::CLOSE, Bytes::from_static(&[channel::STDIN])));
        background.push(tokio::spawn(pump_in(r, mux.out(channel::STDIN), sig)));
    }
    if let (true, Some(r)) = (opts.tty, io.resize) {
        background.push(tokio::spawn(pump_resize(r, mux.out(channel::RESIZE))));
    }
    let mut outputs = Vec::new();
    for (ch, w) in [(channel::STDOUT, io.stdout), (channel::STDERR, io.stderr)] {
        if let Some(c) = mux.take_in(ch) {
            outputs.push(pump_out(c, w));
        }
    }
    let error = mux
        .take_in(channel::ERROR)
        .expect("the error channel was registered above");
    let (status, _) = tokio::join!(read_all(error), futures_util::future::join_all(outputs));
    for b in background {
        b.abort();
    }
    mux.close(std::time::Duration::ZERO).await;
    Ok(remotecommand::parse_status(version, &status))
}

/// A SPDY port-forward session: many connections to pod ports over one session.
pub struct PortForwarder {
    session: Session,
    next_request: AtomicU32,
}

/// One forwarded connection.
pub struct PortStream {
    /// The data stream (`rx` from the pod, `tx` to it).
    pub data: Stream,
    error: Option<spdy::RecvHalf>,
}

impl PortStream {
    /// Sends bytes to the pod's port.
    pub async fn send(&self, data: &[u8]) -> Result<(), ClientError> {
        Ok(self.data.tx.send(data).await?)
    }

    /// Next bytes from the pod's port; `None` when it closed the connection.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.data.rx.recv().await
    }

    /// Half-closes the connection towards the pod.
    pub async fn close_write(&self) -> Result<(), ClientError> {
        Ok(self.data.tx.close().await?)
    }

    /// The error the server reported for this connection (empty: none), once it ended.
    pub async fn error(&mut self) -> String {
        match self.error.take() {
            Some(rx) => String::from_utf8_lossy(&read_all(InChan::Spdy(rx)).await).into_owned(),
            None => String::new(),
        }
    }
}

impl PortForwarder {
    /// Upgrades `url` to a SPDY port-forward session.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        let (session, _) = connect_spdy(url, &[PROTOCOL_PORT_FORWARD]).await?;
        Ok(Self {
            session,
            next_request: AtomicU32::new(0),
        })
    }

    /// Opens a connection to `port` in the pod.
    pub async fn open(&self, port: u16) -> Result<PortStream, ClientError> {
        let rid = self
            .next_request
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let h = |kind: &str| -> Headers {
            vec![
                ("streamtype".into(), kind.into()),
                ("port".into(), port.to_string()),
                ("requestid".into(), rid.clone()),
            ]
        };
        let error = self.session.open(h(stream_type::ERROR), false).await?;
        error.tx.close().await?;
        let data = self.session.open(h(stream_type::DATA), false).await?;
        Ok(PortStream {
            data,
            error: Some(error.rx),
        })
    }

    /// Ends the session.
    pub async fn close(self) {
        self.session.close(std::time::Duration::from_secs(1)).await;
    }
}

/// A WebSocket port-forward session: one connection per port given at connect time.
pub struct WsPortForwarder {
    mux: WsMux,
    ports: Vec<u16>,
}

/// One WebSocket-forwarded port.
pub struct WsPortStream {
    port: u16,
    data_in: InChan,
    data_out: OutChan,
    error_in: InChan,
    prefix_seen: bool,
}

impl WsPortStream {
    /// Sends bytes to the pod's port.
    pub async fn send(&self, data: &[u8]) -> Result<(), ClientError> {
        self.data_out
            .send(data)
            .await
            .map_err(|e| ClientError::WebSocket(e.to_string()))
    }

    /// A handle that sends to the pod's port while `recv` runs elsewhere.
    pub fn writer(&self) -> OutChan {
        self.data_out.clone()
    }

    /// Next bytes from the pod's port (the leading port number is checked and removed).
    pub async fn recv(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            let Some(mut c) = self.data_in.recv().await else {
                return Ok(None);
            };
            if !self.prefix_seen {
                if c.len() < 2 || u16::from_le_bytes([c[0], c[1]]) != self.port {
                    return Err(ClientError::BadResponse("bad port prefix".into()));
                }
                self.prefix_seen = true;
                c = c.slice(2..);
            }
            if !c.is_empty() {
                return Ok(Some(c));
            }
        }
    }

    /// The error text the server sent for this port (after the session ended).
    pub async fn error(self) -> String {
        let raw = read_all(self.error_in).await;
        String::from_utf8_lossy(raw.get(2..).unwrap_or_default()).into_owned()
    }
}

impl WsPortForwarder {
    /// Opens a WebSocket port-forward to `ports` at `url` (ports go in the query).
    pub async fn connect(url: &str, ports: &[u16]) -> Result<Self, ClientError> {
        let q: Vec<String> = ports.iter().map(|p| format!("port={p}")).collect();
        let sep = if url.contains('?') { '&' } else { '?' };
        let full = format!("{url}{sep}{}", q.join("&"));
        let (ws, chosen) = connect_ws(&full, &[PROTOCOL_PORT_FORWARD]).await?;
        if chosen != PROTOCOL_PORT_FORWARD {
            return Err(ClientError::BadResponse(format!("protocol {chosen:?}")));
        }
        let inbound: Vec<u8> = (0..ports.len() * 2)
            .filter_map(|c| u8::try_from(c).ok())
            .collect();
        Ok(Self {
            mux: WsMux::start(ws, &inbound, false),
            ports: ports.to_vec(),
        })
    }

    /// Takes the stream of the `i`th port.
    pub fn take(&mut self, i: usize) -> Option<WsPortStream> {
        let port = *self.ports.get(i)?;
        let (d, e) = (u8::try_from(2 * i).ok()?, u8::try_from(2 * i + 1).ok()?);
        Some(WsPortStream {
            port,
            data_in: self.mux.take_in(d)?,
            data_out: self.mux.out(d),
            error_in: self.mux.take_in(e)?,
            prefix_seen: false,
        })
    }

    /// Ends the session.
    pub async fn close(self) {
        self.mux.close(std::time::Duration::from_secs(1)).await;
    }
}
