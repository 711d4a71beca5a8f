//! The streaming HTTP server: redeems tokens from the [`Cache`], upgrades the request to
//! SPDY/3.1 or WebSocket and runs exec, attach or port-forward over it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request as HttpRequest, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role as WsRole, WebSocketConfig};

use super::cache::{Cache, CacheError, Request};
use super::channel::{InChan, OutChan, WsMux, WsOut};
use super::command::{CommandChannels, serve_command};
use super::handler::{
    AttachHandler, AttachRequest, ExecHandler, ExecRequest, PortForwardHandler, PortForwardRequest,
    StreamIo,
};
use super::portforward::forward;
use super::remotecommand::{
    self, PROTOCOL_PORT_FORWARD, PROTOCOL_V1, SPDY_EXEC_PROTOCOLS, Version, WS_EXEC_PROTOCOLS,
    WS_PORT_FORWARD_PROTOCOLS, channel, stream_type,
};
use super::spdy::{self, Role, Session, Stream, header as spdy_header};

/// The header Kubernetes clients offer SPDY sub-protocols in.
pub const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";
/// The header listing what the server accepts, sent with 403 on a mismatch.
pub const ACCEPTED_PROTOCOLS_HEADER: &str = "x-accepted-stream-protocol-versions";

/// Why a streaming URL could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// The token cache refused the request.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// `Config::advertise` does not make a valid URL authority.
    #[error("advertised streaming address {0:?} does not make a valid URL")]
    Advertise(String),
}

/// Streaming server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; default 127.0.0.1 and a free port, as containerd and CRI-O do.
    pub addr: SocketAddr,
    /// How long a minted URL stays valid (kubelet's default: one minute).
    pub token_ttl: Duration,
    /// How long a SPDY client may take to open the streams it announced.
    pub stream_creation_timeout: Duration,
    /// How long to wait for the client to close after the last byte was sent.
    pub linger: Duration,
    /// Host (and port) to put in URLs instead of the bound address (e.g. for 0.0.0.0).
    pub advertise: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token_ttl: Duration::from_secs(60),
            stream_creation_timeout: Duration::from_secs(30),
            linger: Duration::from_secs(5),
            advertise: None,
        }
    }
}

/// The handlers the server hands sessions to.
#[derive(Clone)]
pub struct Handlers {
    /// Exec.
    pub exec: Arc<dyn ExecHandler>,
    /// Attach.
    pub attach: Arc<dyn AttachHandler>,
    /// Port-forward.
    pub port_forward: Arc<dyn PortForwardHandler>,
}

struct Ctx {
    cache: Cache,
    handlers: Handlers,
    config: Config,
}

/// A running streaming server.
pub struct StreamingServer {
    ctx: Arc<Ctx>,
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl StreamingServer {
    /// Binds `config.addr` and starts serving.
    pub async fn start(config: Config, handlers: Handlers) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let ctx = Arc::new(Ctx {
            cache: Cache::new(config.token_ttl),
            handlers,
            config,
        });
        let accept_ctx = ctx.clone();
        let accept = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    r = listener.accept() => {
                        let Ok((tcp, _)) = r else { continue };
                        let _ = tcp.set_nodelay(true);
                        let ctx = accept_ctx.clone();
                        conns.spawn(async move {
                            let svc = service_fn(move |req| handle(ctx.clone(), req));
                            // The timer bounds how long a client may take to send its
                            // request head (30 s), so idle sockets do not pile up.
                            let _ = hyper::server::conn::http1::Builder::new()
                                .timer(hyper_util::rt::TokioTimer::new())
                                .serve_connection(TokioIo::new(tcp), svc)
                                .with_upgrades()
                                .await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(Self { ctx, addr, accept })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn url(&self, req: Request) -> Result<http::Uri, UrlError> {
        let kind = req.kind();
        let token = self.ctx.cache.insert(req)?;
        let host = self
            .ctx
            .config
            .advertise
            .clone()
            .unwrap_or_else(|| self.addr.to_string());
        let uri = format!("http://{host}/{kind}/{token}");
        uri.parse().map_err(|_| UrlError::Advertise(host))
    }

    /// Mints the URL for an Exec RPC's response.
    pub fn exec_url(&self, req: ExecRequest) -> Result<http::Uri, UrlError> {
        self.url(Request::Exec(req))
    }

    /// Mints the URL for an Attach RPC's response.
    pub fn attach_url(&self, req: AttachRequest) -> Result<http::Uri, UrlError> {
        self.url(Request::Attach(req))
    }

    /// Mints the URL for a PortForward RPC's response.
    pub fn port_forward_url(&self, req: PortForwardRequest) -> Result<http::Uri, UrlError> {
        self.url(Request::PortForward(req))
    }

    /// Stops accepting connections (also on drop); sessions already upgraded run until
    /// their client or handler ends them.
    pub fn shutdown(self) {
        self.accept.abort();
    }
}

impl Drop for StreamingServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn plain(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{msg}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// All values of a header, split on commas.
fn header_list(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    header_list(h, name.as_str())
        .iter()
        .any(|v| v.eq_ignore_ascii_case(token))
}

enum Upgrade {
    Spdy,
    WebSocket,
}

async fn handle(
    ctx: Arc<Ctx>,
    mut req: HttpRequest<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::POST {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"));
    }
    let path = req.uri().path().to_string();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (Some(kind), Some(token)) = (parts.next(), parts.next()) else {
        return Ok(plain(StatusCode::NOT_FOUND, "not found"));
    };
    if !matches!(kind, "exec" | "attach" | "portforward") || token.contains('/') {
        return Ok(plain(StatusCode::NOT_FOUND, "not found"));
    }
    // Tokens are single use: a request that fails below has still spent its token.
    let Some(request) = ctx.cache.take(token) else {
        return Ok(plain(StatusCode::NOT_FOUND, "unknown or expired token"));
    };
    if request.kind() != kind {
        return Ok(plain(StatusCode::NOT_FOUND, "unknown or expired token"));
    }
    let h = req.headers();
    let upgrade = if !has_token(h, header::CONNECTION, "upgrade") {
        None
    } else if has_token(h, header::UPGRADE, "websocket") {
        Some(Upgrade::WebSocket)
    } else if has_token(h, header::UPGRADE, "spdy/3.1") {
        Some(Upgrade::Spdy)
    } else {
        None
    };
    let Some(upgrade) = upgrade else {
        return Ok(plain(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request (want SPDY/3.1 or websocket)",
        ));
    };
    let is_pf = matches!(request, Request::PortForward(_));
    match upgrade {
        Upgrade::Spdy => {
            let offered = header_list(h, STREAM_PROTOCOL_HEADER);
            let server: &[&str] = if is_pf {
                &[PROTOCOL_PORT_FORWARD]
            } else {
                SPDY_EXEC_PROTOCOLS
            };
            let protocol = if offered.is_empty() {
                // Clients from before protocol negotiation.
                if is_pf {
                    PROTOCOL_PORT_FORWARD
                } else {
                    PROTOCOL_V1
                }
            } else {
                match remotecommand::negotiate(&offered, server) {
                    Some(p) => p,
                    None => {
                        let mut r = plain(
                            StatusCode::FORBIDDEN,
                            &format!(
                                "no common stream protocol; offered {offered:?}, accepted {server:?}"
                            ),
                        );
                        if let Ok(v) = HeaderValue::from_str(&server.join(", ")) {
                            r.headers_mut().insert(ACCEPTED_PROTOCOLS_HEADER, v);
                        }
                        return Ok(r);
                    }
                }
            };
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let session = Session::new(TokioIo::new(upgraded), Role::Server, Vec::new());
                serve_spdy(ctx, session, protocol, request).await;
            });
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let hm = r.headers_mut();
            hm.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            hm.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
            hm.insert(STREAM_PROTOCOL_HEADER, HeaderValue::from_static(protocol));
            Ok(r)
        }
        Upgrade::WebSocket => {
            let key = h.get("sec-websocket-key").map(|k| k.as_bytes().to_vec());
            let version_ok = h
                .get("sec-websocket-version")
                .is_some_and(|v| v.as_bytes() == b"13");
            let Some(key) = key.filter(|_| version_ok) else {
                return Ok(plain(
                    StatusCode::BAD_REQUEST,
                    "websocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13",
                ));
            };
            let offered = header_list(h, "sec-websocket-protocol");
            let server = if is_pf {
                WS_PORT_FORWARD_PROTOCOLS
            } else {
                WS_EXEC_PROTOCOLS
            };
            let protocol = if offered.is_empty() {
                None
            } else {
                match remotecommand::negotiate(&offered, server) {
                    Some(p) => Some(p),
                    None => {
                        return Ok(plain(
                            StatusCode::FORBIDDEN,
                            &format!(
                                "no common websocket protocol; offered {offered:?}, accepted {server:?}"
                            ),
                        ));
                    }
                }
            };
            let ports = query_ports(req.uri().query());
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let mut cfg = WebSocketConfig::default();
                cfg.max_message_size = Some(16 << 20);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    WsRole::Server,
                    Some(cfg),
                )
                .await;
                serve_ws(ctx, ws, protocol.unwrap_or(PROTOCOL_V1), request, ports).await;
            });
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let hm = r.headers_mut();
            hm.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            hm.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            if let Ok(v) = HeaderValue::from_str(&derive_accept_key(&key)) {
                hm.insert("sec-websocket-accept", v);
            }
            if let Some(p) = protocol {
                hm.insert("sec-websocket-protocol", HeaderValue::from_static(p));
            }
            Ok(r)
        }
    }
}

/// Decodes `%XX` escapes and `+` in a query component; `None` if malformed.
fn percent_decode(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Ports from a WebSocket port-forward query (`?port=80&port=443`, or `?ports=80,443` as
/// the Kubernetes Python client sends, comma percent-encoded); bad values are skipped.
pub fn query_ports(query: Option<&str>) -> Vec<u16> {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "port" || *k == "ports")
        .filter_map(|(_, v)| percent_decode(v))
        .flat_map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter_map(|v| v.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .collect()
}

/// What an exec or attach session needs, whichever it is.
struct CommandSpec {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    cmd: Vec<String>,
}

fn command_spec(request: &Request) -> Option<CommandSpec> {
    match request {
        Request::Exec(e) => Some(CommandSpec {
            stdin: e.stdin,
            stdout: e.stdout,
            stderr: e.stderr && !e.tty,
            tty: e.tty,
            cmd: e.cmd.clone(),
        }),
        Request::Attach(a) => Some(CommandSpec {
            stdin: a.stdin,
            stdout: a.stdout,
            stderr: a.stderr && !a.tty,
            tty: a.tty,
            cmd: Vec::new(),
        }),
        Request::PortForward(_) => None,
    }
}

fn runner(
    ctx: &Ctx,
    request: Request,
) -> impl FnOnce(StreamIo) -> super::handler::BoxFuture<Result<i32, super::handler::HandlerError>> {
    let exec = ctx.handlers.exec.clone();
    let attach = ctx.handlers.attach.clone();
    move |io| match request {
        Request::Exec(e) => exec.exec(e, io),
        Request::Attach(a) => {
            let f = attach.attach(a, io);
            Box::pin(async move { f.await.map(|()| 0) })
        }
        Request::PortForward(_) => Box::pin(async {
            Err(super::handler::HandlerError::Failed(
                "not a command session".into(),
            ))
        }),
    }
}

async fn serve_spdy(ctx: Arc<Ctx>, session: Session, protocol: &'static str, request: Request) {
    let session = Arc::new(session);
    match &request {
        Request::PortForward(pf) => {
            let pf = Arc::new(pf.clone());
            let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
            let mut tasks = JoinSet::new();
            while let Some(stream) = session.accept().await {
                if stream.reply().await.is_err() {
                    break;
                }
                let h = stream.headers();
                let st = spdy_header(h, "streamtype").unwrap_or("").to_string();
                let port = spdy_header(h, "port").and_then(|p| p.parse::<u16>().ok());
                let Some(port) = port.filter(|p| *p != 0) else {
                    let _ = stream.tx.reset(spdy::RstStatus::ProtocolError).await;
                    continue;
                };
                let rid = spdy_header(h, "requestid")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("port-{port}"));
                let slot = pending.entry(rid.clone()).or_default();
                match st.as_str() {
                    stream_type::DATA if slot.0.is_none() => slot.0 = Some(stream),
                    stream_type::ERROR if slot.1.is_none() => slot.1 = Some(stream),
                    _ => {
                        let _ = stream.tx.reset(spdy::RstStatus::ProtocolError).await;
                        continue;
                    }
                }
                let complete = pending
                    .get(&rid)
                    .is_some_and(|(d, e)| d.is_some() && e.is_some());
                if complete && let Some((Some(data), Some(error))) = pending.remove(&rid) {
                    let Stream { rx, tx, .. } = data;
                    tasks.spawn(forward(
                        ctx.handlers.port_forward.clone(),
                        pf.clone(),
                        port,
                        InChan::Spdy(rx),
                        OutChan::Spdy(tx),
                        OutChan::Spdy(error.tx),
                    ));
                }
                while tasks.try_join_next().is_some() {}
            }
            tasks.shutdown().await;
            session.close(ctx.config.linger).await;
        }
        _ => {
            let Some(spec) = command_spec(&request) else {
                return;
            };
            let version = Version::of(protocol).unwrap_or(Version::V1);
            let want_resize = spec.tty && version.has_resize();
            let collect = async {
                let mut got: HashMap<&'static str, Stream> = HashMap::new();
                let wanted = |k: &str| match k {
                    stream_type::ERROR => true,
                    stream_type::STDIN => spec.stdin,
                    stream_type::STDOUT => spec.stdout,
                    stream_type::STDERR => spec.stderr,
                    stream_type::RESIZE => want_resize,
                    _ => false,
                };
                let total = 1
                    + usize::from(spec.stdin)
                    + usize::from(spec.stdout)
                    + usize::from(spec.stderr)
                    + usize::from(want_resize);
                while got.len() < total {
                    let s = session.accept().await?;
                    s.reply().await.ok()?;
                    let kind = match spdy_header(s.headers(), "streamtype") {
                        Some(stream_type::ERROR) => stream_type::ERROR,
                        Some(stream_type::STDIN) => stream_type::STDIN,
                        Some(stream_type::STDOUT) => stream_type::STDOUT,
                        Some(stream_type::STDERR) => stream_type::STDERR,
                        Some(stream_type::RESIZE) => stream_type::RESIZE,
                        _ => "",
                    };
                    if wanted(kind) && !got.contains_key(kind) {
                        got.insert(kind, s);
                    } else {
                        let _ = s.tx.reset(spdy::RstStatus::RefusedStream).await;
                    }
                }
                Some(got)
            };
            let got = match tokio::time::timeout(ctx.config.stream_creation_timeout, collect).await
            {
                Ok(Some(g)) => g,
                _ => {
                    session.close(Duration::ZERO).await;
                    return;
                }
            };
            let mut got = got;
            // Streams opened later than the set we wait for are refused.
            let extra_session = session.clone();
            let extra = super::channel::AbortOnDrop(tokio::spawn(async move {
                while let Some(s) = extra_session.accept().await {
                    let _ = s.reply().await;
                    let _ = s.tx.reset(spdy::RstStatus::RefusedStream).await;
                }
            }));
            let Some(error) = got.remove(stream_type::ERROR) else {
                return;
            };
            let chans = CommandChannels {
                stdin: got.remove(stream_type::STDIN).map(|s| InChan::Spdy(s.rx)),
                stdout: got.remove(stream_type::STDOUT).map(|s| OutChan::Spdy(s.tx)),
                stderr: got.remove(stream_type::STDERR).map(|s| OutChan::Spdy(s.tx)),
                error: OutChan::Spdy(error.tx),
                resize: got.remove(stream_type::RESIZE).map(|s| InChan::Spdy(s.rx)),
            };
            let gone_session = session.clone();
            let gone = async move { gone_session.closed().await };
            let run = runner(&ctx, request);
            let done = serve_command(chans, version, &spec.cmd, gone, run).await;
            drop(extra);
            let linger = if done.is_some() {
                ctx.config.linger
            } else {
                Duration::ZERO
            };
            session.close(linger).await;
        }
    }
}

async fn serve_ws<S>(
    ctx: Arc<Ctx>,
    ws: WebSocketStream<S>,
    protocol: &'static str,
    request: Request,
    query_ports: Vec<u16>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let base64 = remotecommand::is_base64(protocol);
    match &request {
        Request::PortForward(pf) => {
            let ports = if query_ports.is_empty() {
                pf.ports.clone()
            } else {
                query_ports
            };
            let inbound: Vec<u8> = (0..ports.len())
                .filter_map(|i| u8::try_from(2 * i).ok())
                .collect();
            let mut mux = WsMux::start(ws, &inbound, base64);
            if ports.is_empty() || ports.len() > 127 {
                let _ = mux
                    .tx
                    .send(WsOut::Raw(
                        1,
                        Bytes::from_static(b"\0\0no ports to forward"),
                    ))
                    .await;
                mux.close(ctx.config.linger).await;
                return;
            }
            let pf = Arc::new(pf.clone());
            let mut tasks = JoinSet::new();
            for (i, port) in ports.iter().enumerate() {
                let (data_ch, err_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
                // Each channel starts with the port number, little endian (v4 framing).
                let prefix = Bytes::copy_from_slice(&port.to_le_bytes());
                let _ = mux.tx.send(WsOut::Raw(data_ch, prefix.clone())).await;
                let _ = mux.tx.send(WsOut::Raw(err_ch, prefix)).await;
                let Some(data_in) = mux.take_in(data_ch) else {
                    continue;
                };
                tasks.spawn(forward(
                    ctx.handlers.port_forward.clone(),
                    pf.clone(),
                    *port,
                    data_in,
                    mux.out(data_ch),
                    mux.out(err_ch),
                ));
            }
            let mut closed = mux.closed.clone();
            tokio::select! {
                _ = async { while tasks.join_next().await.is_some() {} } => {}
                _ = closed.wait_for(|c| *c) => {}
            }
            tasks.shutdown().await;
            mux.close(ctx.config.linger).await;
        }
        _ => {
            let Some(spec) = command_spec(&request) else {
                return;
            };
            let version = Version::of(protocol).unwrap_or(Version::V1);
            let mut inbound = Vec::new();
            if spec.stdin {
                inbound.push(channel::STDIN);
            }
            if spec.tty {
                inbound.push(channel::RESIZE);
            }
            let mut mux = WsMux::start(ws, &inbound, base64);
            let chans = CommandChannels {
                stdin: mux.take_in(channel::STDIN),
                stdout: spec.stdout.then(|| mux.out(channel::STDOUT)),
                stderr: spec.stderr.then(|| mux.out(channel::STDERR)),
                error: mux.out(channel::ERROR),
                resize: mux.take_in(channel::RESIZE),
            };
            let mut closed = mux.closed.clone();
            let gone = async move {
                let _ = closed.wait_for(|c| *c).await;
            };
            let run = runner(&ctx, request);
            let done = serve_command(chans, version, &spec.cmd, gone, run).await;
            let linger = if done.is_some() {
                ctx.config.linger
            } else {
                Duration::ZERO
            };
            mux.close(linger).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_from_query() {
        assert_eq!(query_ports(Some("port=80&port=443")), vec![80, 443]);
        assert_eq!(query_ports(Some("ports=80,8080&x=1")), vec![80, 8080]);
        assert_eq!(query_ports(Some("ports=80%2C8080")), vec![80, 8080]);
        assert_eq!(query_ports(Some("ports=80%2")), Vec::<u16>::new());
        assert_eq!(
            query_ports(Some("port=0&port=99999&port=a")),
            Vec::<u16>::new()
        );
        assert_eq!(query_ports(None), Vec::<u16>::new());
    }
}
