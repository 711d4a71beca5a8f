//! A SPDY/3.1 session over any byte stream: a reader task that decodes frames and routes
//! them to streams, a writer task that owns the header compressor and the socket's write
//! half, and [`Stream`] handles that applications read and write.
//!
//! Flow control: we always account both windows and send WINDOW_UPDATE as data is
//! consumed. Kubernetes' SPDY peers (moby/spdystream) neither send WINDOW_UPDATE nor
//! respect ours, so windows are *enforced* only once the peer shows it does flow control
//! (by sending WINDOW_UPDATE or SETTINGS_INITIAL_WINDOW_SIZE); until then, a stream whose
//! reader falls behind slows the whole session down through TCP, as spdystream does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::flow::{DEFAULT_WINDOW, FlowError, RecvWindow, SendWindow};
use super::frame::{
    FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame, FrameError, GoAwayStatus, RstStatus,
    SETTINGS_INITIAL_WINDOW_SIZE, encode_frame, take_frame,
};
use super::headers::{HeaderDecoder, HeaderEncoder, HeaderError, Headers};

/// Most streams one session may have open at once; more are refused.
pub const MAX_STREAMS: usize = 1024;
/// Read buffer growth step.
const READ_BUF: usize = 128 * 1024;
/// Largest DATA frame we send.
const MAX_DATA_CHUNK: usize = 32 * 1024;
/// Frames buffered per stream before the reader waits for the application (a flow-
/// controlled peer never has more than [`RECV_WINDOW`] in flight, i.e. 128 full frames).
const STREAM_QUEUE: usize = 256;
/// The receive window we give the peer per stream and for the session (4 MiB): the
/// default 64 KiB would cap a stream at 64 KiB per round trip.
pub const RECV_WINDOW: i64 = 4 << 20;

/// A session-level or stream-level failure.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The session is closed (peer went away, GOAWAY, I/O error or local close).
    #[error("SPDY session closed")]
    Closed,
    /// The peer reset the stream.
    #[error("stream {id} reset by peer (status {status})")]
    Reset {
        /// Stream id.
        id: u32,
        /// RST_STREAM status code.
        status: u32,
    },
    /// The stream is already closed for writing.
    #[error("stream {0} is closed for writing")]
    WriteClosed(u32),
    /// No stream ids are left (2^31 exhausted).
    #[error("no stream ids left")]
    IdsExhausted,
}

/// Which end of the connection we are; decides stream id and ping id parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The end that sent the HTTP upgrade (odd stream ids).
    Client,
    /// The end that accepted it (even stream ids).
    Server,
}

enum Out {
    Frame(Frame),
    Syn {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    Reply {
        stream_id: u32,
        headers: Headers,
    },
    Shutdown,
}

struct StreamState {
    data_tx: Option<mpsc::Sender<Bytes>>,
    reply_tx: Option<oneshot::Sender<Result<(), SessionError>>>,
    send: SendWindow,
    recv: RecvWindow,
    local_fin: bool,
    remote_fin: bool,
    reset: Option<u32>,
}

impl StreamState {
    fn new(initial_send: i64, data_tx: mpsc::Sender<Bytes>) -> Self {
        Self {
            data_tx: Some(data_tx),
            reply_tx: None,
            send: SendWindow::new(initial_send),
            recv: RecvWindow::new(RECV_WINDOW),
            local_fin: false,
            remote_fin: false,
            reset: None,
        }
    }
}

struct State {
    streams: HashMap<u32, StreamState>,
    session_send: SendWindow,
    session_recv: RecvWindow,
    initial_send: i64,
    peer_flow_control: bool,
    next_id: u32,
    last_peer_id: u32,
    closed: bool,
}

struct Shared {
    role: Role,
    /// Held from choosing a new stream id until its SYN_STREAM is queued: ids must reach
    /// the wire in increasing order.
    open_order: tokio::sync::Mutex<()>,
    out: mpsc::Sender<Out>,
    state: Mutex<State>,
    window: Notify,
    closed_tx: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; keep going with the data as it is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn send_out(&self, o: Out) -> Result<(), SessionError> {
        self.out.send(o).await.map_err(|_| SessionError::Closed)
    }

    fn mark_closed(&self) {
        let mut st = self.lock();
        st.closed = true;
        for (_, s) in st.streams.drain() {
            if let Some(tx) = s.reply_tx {
                let _ = tx.send(Err(SessionError::Closed));
            }
        }
        drop(st);
        self.window.notify_waiters();
        self.closed_tx.send_replace(true);
    }

    fn maybe_remove(st: &mut State, id: u32) {
        if let Some(s) = st.streams.get(&id)
            && (s.reset.is_some() || (s.local_fin && s.remote_fin))
            && s.reply_tx.is_none()
        {
            st.streams.remove(&id);
        }
    }
}

/// One SPDY session. [`Session::close`] ends it gracefully; dropping it abandons the
/// connection at once.
pub struct Session {
    shared: Arc<Shared>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Stream>>,
    reader: Mutex<Option<JoinHandle<()>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    closed_rx: watch::Receiver<bool>,
}

impl Session {
    /// Starts a session over `io`; `prebuffered` holds bytes already read past the HTTP
    /// upgrade response, which belong to the session.
    pub fn new<T>(io: T, role: Role, prebuffered: Vec<u8>) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(256);
        let (in_tx, in_rx) = mpsc::channel(64);
        let (closed_tx, closed_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            role,
            open_order: tokio::sync::Mutex::new(()),
            out: out_tx,
            state: Mutex::new(State {
                streams: HashMap::new(),
                session_send: SendWindow::new(DEFAULT_WINDOW),
                session_recv: RecvWindow::new(RECV_WINDOW),
                initial_send: DEFAULT_WINDOW,
                peer_flow_control: false,
                next_id: if role == Role::Client { 1 } else { 2 },
                last_peer_id: 0,
                closed: false,
            }),
            window: Notify::new(),
            closed_tx,
        });
        let writer_shared = Arc::downgrade(&shared);
        let writer = tokio::spawn(async move {
            write_loop(wr, out_rx).await;
            if let Some(s) = writer_shared.upgrade() {
                s.mark_closed();
            }
        });
        let reader_shared = shared.clone();
        let reader = tokio::spawn(async move {
            let _ = read_loop(rd, prebuffered, &reader_shared, in_tx).await;
            reader_shared.mark_closed();
            // The peer is gone or broke the protocol: flush what is queued and hang up.
            let _ = reader_shared.out.send(Out::Shutdown).await;
        });
        let session = Self {
            shared,
            incoming: tokio::sync::Mutex::new(in_rx),
            reader: Mutex::new(Some(reader)),
            writer: Mutex::new(Some(writer)),
            closed_rx,
        };
        // Announce our stream window (which also tells a flow-controlling peer that we
        // do flow control) and grow the session window from its 64 KiB default.
        let _ = session.shared.out.try_send(Out::Frame(Frame::Settings {
            flags: 0,
            entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, RECV_WINDOW as u32)],
        }));
        let _ = session.shared.out.try_send(Out::Frame(Frame::WindowUpdate {
            stream_id: 0,
            delta: (RECV_WINDOW - DEFAULT_WINDOW) as u32,
        }));
        session
    }

    /// Waits for the next stream the peer opens; `None` once the session is closed.
    pub async fn accept(&self) -> Option<Stream> {
        self.incoming.lock().await.recv().await
    }

    /// Opens a stream with `headers` and waits for the peer's SYN_REPLY.
    pub async fn open(&self, headers: Headers, fin: bool) -> Result<Stream, SessionError> {
        let (data_tx, data_rx) = mpsc::channel(STREAM_QUEUE);
        let (reply_tx, reply_rx) = oneshot::channel();
        let order = self.shared.open_order.lock().await;
        let id = {
            let mut st = self.shared.lock();
            if st.closed {
                return Err(SessionError::Closed);
            }
            let id = st.next_id;
            if id > 0x7fff_ffff {
                return Err(SessionError::IdsExhausted);
            }
            st.next_id += 2;
            let mut s = StreamState::new(st.initial_send, data_tx);
            s.reply_tx = Some(reply_tx);
            s.local_fin = fin;
            st.streams.insert(id, s);
            id
        };
        self.shared
            .send_out(Out::Syn {
                stream_id: id,
                flags: if fin { FLAG_FIN } else { 0 },
                headers: headers.clone(),
            })
            .await?;
        drop(order);
        reply_rx.await.map_err(|_| SessionError::Closed)??;
        Ok(Stream::new(id, headers, self.shared.clone(), data_rx))
    }

    /// Sends PING; the peer answers it (used to check liveness).
    pub async fn ping(&self, id: u32) -> Result<(), SessionError> {
        self.shared.send_out(Out::Frame(Frame::Ping { id })).await
    }

    /// Resolves once the session is closed.
    pub async fn closed(&self) {
        let mut rx = self.closed_rx.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// True once the session is closed.
    pub fn is_closed(&self) -> bool {
        *self.closed_rx.borrow()
    }

    /// Sends GOAWAY, flushes every frame queued before it, half-closes the connection and
    /// waits up to `linger` for the peer to close its side (so it reads everything we
    /// sent before the socket goes away).
    pub async fn close(&self, linger: std::time::Duration) {
        let last = self.shared.lock().last_peer_id;
        let queue = async {
            let goaway = Frame::GoAway {
                last_good_stream_id: last,
                status: GoAwayStatus::Ok as u32,
            };
            let _ = self.shared.send_out(Out::Frame(goaway)).await;
            let _ = self.shared.send_out(Out::Shutdown).await;
        };
        let _ = tokio::time::timeout(linger, queue).await;
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut writer) = writer
            && tokio::time::timeout(linger, &mut writer).await.is_err()
        {
            // The peer stopped reading: give up on what is still queued.
            writer.abort();
        }
        let reader = self.reader.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut reader) = reader
            && tokio::time::timeout(linger, &mut reader).await.is_err()
        {
            reader.abort();
        }
        self.shared.mark_closed();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropped without close(): abandon the connection at once.
        for task in [&self.reader, &self.writer] {
            if let Some(t) = task.lock().unwrap_or_else(|e| e.into_inner()).take() {
                t.abort();
            }
        }
    }
}

/// One SPDY stream: headers it was opened with, a receiving half and a sending half.
pub struct Stream {
    id: u32,
    headers: Headers,
    /// Receiving half.
    pub rx: RecvHalf,
    /// Sending half.
    pub tx: SendHalf,
}

impl Stream {
    fn new(id: u32, headers: Headers, shared: Arc<Shared>, data: mpsc::Receiver<Bytes>) -> Self {
        Self {
            id,
            headers,
            rx: RecvHalf {
                id,
                shared: shared.clone(),
                data,
            },
            tx: SendHalf { id, shared },
        }
    }

    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers of the SYN_STREAM that opened it.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Accepts a stream the peer opened (sends SYN_REPLY).
    pub async fn reply(&self) -> Result<(), SessionError> {
        self.tx
            .shared
            .send_out(Out::Reply {
                stream_id: self.id,
                headers: Vec::new(),
            })
            .await
    }
}

/// The receiving half of a stream.
pub struct RecvHalf {
    id: u32,
    shared: Arc<Shared>,
    data: mpsc::Receiver<Bytes>,
}

impl RecvHalf {
    /// Next chunk of data; `None` after the peer's FIN, a reset or the session's end.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let chunk = self.data.recv().await?;
        let (stream_delta, session_delta) = {
            let mut st = self.shared.lock();
            let s = st
                .streams
                .get_mut(&self.id)
                .and_then(|s| s.recv.consume(chunk.len()));
            (s, st.session_recv.consume(chunk.len()))
        };
        if let Some(delta) = stream_delta {
            let _ = self
                .shared
                .send_out(Out::Frame(Frame::WindowUpdate {
                    stream_id: self.id,
                    delta,
                }))
                .await;
        }
        if let Some(delta) = session_delta {
            let _ = self
                .shared
                .send_out(Out::Frame(Frame::WindowUpdate {
                    stream_id: 0,
                    delta,
                }))
                .await;
        }
        Some(chunk)
    }
}

impl Drop for RecvHalf {
    fn drop(&mut self) {
        // Data arriving later is credited back by the reader; credit what is queued here,
        // or the session window would shrink for good.
        self.data.close();
        let mut queued = 0;
        while let Ok(chunk) = self.data.try_recv() {
            queued += chunk.len();
        }
        let delta = {
            let mut st = self.shared.lock();
            if let Some(s) = st.streams.get_mut(&self.id) {
                s.data_tx = None;
            }
            st.session_recv.consume(queued)
        };
        if let Some(delta) = delta {
            let _ = self.shared.out.try_send(Out::Frame(Frame::WindowUpdate {
                stream_id: 0,
                delta,
            }));
        }
    }
}

/// The sending half of a stream; cheap to clone.
#[derive(Clone)]
pub struct SendHalf {
    id: u32,
    shared: Arc<Shared>,
}

impl SendHalf {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends `data`, split into frames and paced by the flow-control windows.
    pub async fn send(&self, mut data: &[u8]) -> Result<(), SessionError> {
        while !data.is_empty() {
            let n = self.reserve(data.len().min(MAX_DATA_CHUNK)).await?;
            let (chunk, rest) = data.split_at(n);
            data = rest;
            self.shared
                .send_out(Out::Frame(Frame::Data {
                    stream_id: self.id,
                    flags: 0,
                    payload: Bytes::copy_from_slice(chunk),
                }))
                .await?;
        }
        Ok(())
    }

    async fn reserve(&self, want: usize) -> Result<usize, SessionError> {
        loop {
            let notified = self.shared.window.notified();
            {
                let mut st = self.shared.lock();
                if st.closed {
                    return Err(SessionError::Closed);
                }
                let enforce = st.peer_flow_control;
                let session_avail = st.session_send.available();
                let Some(s) = st.streams.get_mut(&self.id) else {
                    return Err(SessionError::WriteClosed(self.id));
                };
                if let Some(status) = s.reset {
                    return Err(SessionError::Reset {
                        id: self.id,
                        status,
                    });
                }
                if s.local_fin {
                    return Err(SessionError::WriteClosed(self.id));
                }
                let avail = s.send.available().min(session_avail);
                let n = if enforce {
                    want.min(avail.max(0) as usize)
                } else {
                    want
                };
                if n > 0 {
                    s.send.spend(n);
                    st.session_send.spend(n);
                    return Ok(n);
                }
            }
            notified.await;
        }
    }

    /// Half-closes the stream (DATA with FLAG_FIN); further sends fail.
    pub async fn close(&self) -> Result<(), SessionError> {
        {
            let mut st = self.shared.lock();
            let Some(s) = st.streams.get_mut(&self.id) else {
                return Ok(());
            };
            if s.local_fin || s.reset.is_some() {
                return Ok(());
            }
            s.local_fin = true;
            Shared::maybe_remove(&mut st, self.id);
        }
        self.shared
            .send_out(Out::Frame(Frame::Data {
                stream_id: self.id,
                flags: FLAG_FIN,
                payload: Bytes::new(),
            }))
            .await
    }

    /// Aborts the stream (RST_STREAM with `status`).
    pub async fn reset(&self, status: RstStatus) -> Result<(), SessionError> {
        {
            let mut st = self.shared.lock();
            if let Some(s) = st.streams.get_mut(&self.id) {
                s.reset = Some(status as u32);
                s.data_tx = None;
            }
            Shared::maybe_remove(&mut st, self.id);
        }
        self.shared.window.notify_waiters();
        self.shared
            .send_out(Out::Frame(Frame::RstStream {
                stream_id: self.id,
                status: status as u32,
            }))
            .await
    }
}

async fn write_loop<W: AsyncWrite>(wr: W, mut rx: mpsc::Receiver<Out>) {
    tokio::pin!(wr);
    let mut enc = HeaderEncoder::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut shutdown = false;
        // Coalesce whatever is queued into one write.
        while let Some(o) = next.take() {
            let frame = match o {
                Out::Frame(f) => f,
                Out::Syn {
                    stream_id,
                    flags,
                    headers,
                } => Frame::SynStream {
                    stream_id,
                    assoc_id: 0,
                    priority: 0,
                    flags,
                    block: enc.encode(&headers).into(),
                },
                Out::Reply { stream_id, headers } => Frame::SynReply {
                    stream_id,
                    flags: 0,
                    block: enc.encode(&headers).into(),
                },
                Out::Shutdown => {
                    shutdown = true;
                    break;
                }
            };
            if encode_frame(&frame, &mut buf).is_err() {
                // Only oversized frames fail to encode; we never build them.
                shutdown = true;
                break;
            }
            if buf.len() < 256 * 1024 {
                next = rx.try_recv().ok();
            }
        }
        if !buf.is_empty() {
            if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
                return;
            }
            buf.clear();
        }
        if shutdown {
            let _ = wr.shutdown().await;
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// Why the reader ended the session.
#[derive(Debug, thiserror::Error)]
enum ReadEnd {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    #[error("headers: {0}")]
    Headers(#[from] HeaderError),
    #[error("flow control: {0}")]
    Flow(#[from] FlowError),
    #[error("protocol: {0}")]
    Protocol(&'static str),
    #[error("peer closed the connection")]
    Eof,
    #[error("writer gone")]
    Closed,
}

impl From<SessionError> for ReadEnd {
    fn from(_: SessionError) -> Self {
        ReadEnd::Closed
    }
}

async fn read_loop<R: AsyncRead>(
    rd: R,
    prebuffered: Vec<u8>,
    shared: &Arc<Shared>,
    incoming: mpsc::Sender<Stream>,
) -> Result<(), ReadEnd> {
    tokio::pin!(rd);
    let mut dec = HeaderDecoder::new();
    let mut buf = BytesMut::with_capacity(READ_BUF);
    buf.extend_from_slice(&prebuffered);
    loop {
        let frame = match take_frame(&mut buf) {
            Ok(Some(f)) => f,
            Ok(None) => {
                buf.reserve(READ_BUF);
                if rd.read_buf(&mut buf).await? == 0 {
                    return Err(ReadEnd::Eof);
                }
                continue;
            }
            Err(e) => {
                goaway(shared, GoAwayStatus::ProtocolError).await;
                return Err(e.into());
            }
        };
        if let Err(e) = handle_frame(frame, shared, &mut dec, &incoming).await {
            if !matches!(e, ReadEnd::Closed) {
                goaway(shared, GoAwayStatus::ProtocolError).await;
            }
            return Err(e);
        }
    }
}

async fn goaway(shared: &Shared, status: GoAwayStatus) {
    let last = shared.lock().last_peer_id;
    let _ = shared
        .send_out(Out::Frame(Frame::GoAway {
            last_good_stream_id: last,
            status: status as u32,
        }))
        .await;
    let _ = shared.send_out(Out::Shutdown).await;
}

async fn rst(shared: &Shared, stream_id: u32, status: RstStatus) -> Result<(), ReadEnd> {
    shared
        .send_out(Out::Frame(Frame::RstStream {
            stream_id,
            status: status as u32,
        }))
        .await?;
    Ok(())
}

async fn handle_frame(
    frame: Frame,
    shared: &Arc<Shared>,
    dec: &mut HeaderDecoder,
    incoming: &mpsc::Sender<Stream>,
) -> Result<(), ReadEnd> {
    match frame {
        Frame::SynStream {
            stream_id,
            flags,
            block,
            ..
        } => {
            // Always decode: the zlib stream must stay in step even for refused streams.
            let headers = dec.decode(&block)?;
            let peer_parity = if shared.role == Role::Server { 1 } else { 0 };
            let (data_tx, data_rx) = mpsc::channel(STREAM_QUEUE);
            let refused = {
                let mut st = shared.lock();
                if stream_id % 2 != peer_parity || stream_id <= st.last_peer_id {
                    return Err(ReadEnd::Protocol("SYN_STREAM with an invalid stream id"));
                }
                st.last_peer_id = stream_id;
                if st.streams.len() >= MAX_STREAMS {
                    true
                } else {
                    let mut s = StreamState::new(st.initial_send, data_tx);
                    s.remote_fin = flags & FLAG_FIN != 0;
                    s.local_fin = flags & FLAG_UNIDIRECTIONAL != 0;
                    if s.remote_fin {
                        s.data_tx = None;
                    }
                    st.streams.insert(stream_id, s);
                    false
                }
            };
            if refused {
                return rst(shared, stream_id, RstStatus::RefusedStream).await;
            }
            let stream = Stream::new(stream_id, headers, shared.clone(), data_rx);
            if incoming.send(stream).await.is_err() {
                // Nobody accepts streams any more.
                rst(shared, stream_id, RstStatus::RefusedStream).await?;
            }
        }
        Frame::SynReply {
            stream_id,
            flags,
            block,
        } => {
            dec.decode(&block)?;
            let bad = {
                let mut st = shared.lock();
                match st.streams.get_mut(&stream_id) {
                    Some(s) if s.reply_tx.is_some() => {
                        if let Some(tx) = s.reply_tx.take() {
                            let _ = tx.send(Ok(()));
                        }
                        if flags & FLAG_FIN != 0 {
                            s.remote_fin = true;
                            s.data_tx = None;
                        }
                        None
                    }
                    Some(_) => Some(RstStatus::StreamInUse),
                    None => Some(RstStatus::InvalidStream),
                }
            };
            if let Some(status) = bad {
                return rst(shared, stream_id, status).await;
            }
        }
        Frame::Headers {
            stream_id,
            flags,
            block,
        } => {
            dec.decode(&block)?;
            let known = {
                let mut st = shared.lock();
                match st.streams.get_mut(&stream_id) {
                    Some(s) => {
                        if flags & FLAG_FIN != 0 {
                            s.remote_fin = true;
                            s.data_tx = None;
                            Shared::maybe_remove(&mut st, stream_id);
                        }
                        true
                    }
                    None => false,
                }
            };
            if !known {
                return rst(shared, stream_id, RstStatus::InvalidStream).await;
            }
        }
        Frame::RstStream { stream_id, status } => {
            let mut st = shared.lock();
            if let Some(s) = st.streams.get_mut(&stream_id) {
                s.reset = Some(status);
                s.data_tx = None;
                if let Some(tx) = s.reply_tx.take() {
                    let _ = tx.send(Err(SessionError::Reset {
                        id: stream_id,
                        status,
                    }));
                }
                Shared::maybe_remove(&mut st, stream_id);
            }
            drop(st);
            shared.window.notify_waiters();
        }
        Frame::Settings { entries, .. } => {
            let mut st = shared.lock();
            for (_, id, value) in entries {
                if id == SETTINGS_INITIAL_WINDOW_SIZE {
                    let new = i64::from(value);
                    if new > super::flow::MAX_WINDOW {
                        return Err(ReadEnd::Protocol("initial window above 2^31-1"));
                    }
                    let old = st.initial_send;
                    st.initial_send = new;
                    st.peer_flow_control = true;
                    for s in st.streams.values_mut() {
                        s.send.rebase(old, new);
                    }
                }
            }
            drop(st);
            shared.window.notify_waiters();
        }
        Frame::Ping { id } => {
            let ours = if shared.role == Role::Client { 1 } else { 0 };
            if id % 2 != ours {
                shared.send_out(Out::Frame(Frame::Ping { id })).await?;
            }
        }
        Frame::GoAway { .. } => {
            // The peer opens no more streams; existing ones finish normally.
            return Ok(());
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let overflow = {
                let mut st = shared.lock();
                st.peer_flow_control = true;
                if stream_id == 0 {
                    st.session_send.grow(delta)?;
                    false
                } else {
                    st.streams
                        .get_mut(&stream_id)
                        .is_some_and(|s| s.send.grow(delta).is_err())
                }
            };
            shared.window.notify_waiters();
            if overflow {
                rst(shared, stream_id, RstStatus::FlowControlError).await?;
            }
        }
        Frame::Data {
            stream_id,
            flags,
            payload,
        } => {
            let len = payload.len();
            let mut credit_now = None;
            let target = {
                let mut st = shared.lock();
                let enforce = st.peer_flow_control;
                st.session_recv.receive(len, enforce)?;
                match st.streams.get_mut(&stream_id) {
                    None => {
                        credit_now = st.session_recv.consume(len);
                        None
                    }
                    Some(s) if s.remote_fin || s.reset.is_some() => {
                        credit_now = st.session_recv.consume(len);
                        Some(Err(RstStatus::StreamAlreadyClosed))
                    }
                    Some(s) => {
                        if s.recv.receive(len, enforce).is_err() {
                            Some(Err(RstStatus::FlowControlError))
                        } else {
                            let tx = s.data_tx.clone();
                            if flags & FLAG_FIN != 0 {
                                s.remote_fin = true;
                                s.data_tx = None;
                                Shared::maybe_remove(&mut st, stream_id);
                            }
                            Some(Ok(tx))
                        }
                    }
                }
            };
            if let Some(delta) = credit_now {
                shared
                    .send_out(Out::Frame(Frame::WindowUpdate {
                        stream_id: 0,
                        delta,
                    }))
                    .await?;
            }
            match target {
                None => rst(shared, stream_id, RstStatus::InvalidStream).await?,
                Some(Err(status)) => rst(shared, stream_id, status).await?,
                Some(Ok(Some(tx))) if len > 0 => {
                    if tx.send(payload).await.is_err() {
                        // Reader dropped: credit the session window ourselves.
                        let delta = shared.lock().session_recv.consume(len);
                        if let Some(delta) = delta {
                            shared
                                .send_out(Out::Frame(Frame::WindowUpdate {
                                    stream_id: 0,
                                    delta,
                                }))
                                .await?;
                        }
                    }
                }
                Some(Ok(None)) if len > 0 => {
                    let delta = shared.lock().session_recv.consume(len);
                    if let Some(delta) = delta {
                        shared
                            .send_out(Out::Frame(Frame::WindowUpdate {
                                stream_id: 0,
                                delta,
                            }))
                            .await?;
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::spdy::frame::decode_frame;
    use crate::streaming::spdy::header;

    fn h(k: &str, v: &str) -> Headers {
        vec![(k.to_string(), v.to_string())]
    }

    fn pair() -> (Session, Session) {
        let (a, b) = tokio::io::duplex(8192);
        (
            Session::new(a, Role::Client, Vec::new()),
            Session::new(b, Role::Server, Vec::new()),
        )
    }

    #[tokio::test]
    async fn streams_carry_data_both_ways_with_flow_control() {
        let (client, server) = pair();
        let srv = tokio::spawn(async move {
            let mut s = server.accept().await.expect("a stream");
            assert_eq!(header(s.headers(), "streamtype"), Some("stdin"));
            s.reply().await.unwrap();
            // Echo everything back, then FIN.
            let mut total = 0;
            while let Some(chunk) = s.rx.recv().await {
                total += chunk.len();
                s.tx.send(&chunk).await.unwrap();
            }
            s.tx.close().await.unwrap();
            (total, server)
        });
        let mut s = client.open(h("streamtype", "stdin"), false).await.unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let tx = s.tx.clone();
        let payload = data.clone();
        let writer = tokio::spawn(async move {
            tx.send(&payload).await.unwrap();
            tx.close().await.unwrap();
        });
        let mut got = Vec::new();
        while let Some(c) = s.rx.recv().await {
            got.extend_from_slice(&c);
        }
        writer.await.unwrap();
        let (total, _server) = srv.await.unwrap();
        assert_eq!(total, data.len());
        assert_eq!(got, data);
        // Both ends did flow control (SETTINGS on open), so windows were enforced.
        assert!(client.shared.lock().peer_flow_control);
    }

    #[tokio::test]
    async fn reset_and_unknown_streams() {
        let (client, server) = pair();
        let srv = tokio::spawn(async move {
            let s = server.accept().await.unwrap();
            s.tx.reset(RstStatus::RefusedStream).await.unwrap();
            server
        });
        let err = client.open(h("a", "b"), false).await.err();
        assert_eq!(
            err,
            Some(SessionError::Reset {
                id: 1,
                status: RstStatus::RefusedStream as u32
            })
        );
        let _server = srv.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_opens_reach_the_wire_in_id_order() {
        let (client, server) = pair();
        let server = Arc::new(server);
        let srv = server.clone();
        let acceptor = tokio::spawn(async move {
            let mut n = 0;
            while let Some(s) = srv.accept().await {
                s.reply().await.unwrap();
                n += 1;
                if n == 200 {
                    break;
                }
            }
            n
        });
        let client = Arc::new(client);
        let mut opens = Vec::new();
        for _ in 0..200 {
            let c = client.clone();
            opens.push(tokio::spawn(async move {
                c.open(h("a", "b"), true).await.map(|_| ())
            }));
        }
        for o in opens {
            o.await.unwrap().unwrap();
        }
        assert_eq!(acceptor.await.unwrap(), 200);
        assert!(!server.is_closed());
    }

    /// moby/spdystream (kubectl, kubelet) never sends WINDOW_UPDATE or SETTINGS: a server
    /// stream must not stall after the 64 KiB default window with such a peer.
    #[tokio::test]
    async fn peer_without_flow_control_is_not_stalled() {
        let (mut raw, b) = tokio::io::duplex(1 << 16);
        let server = Session::new(b, Role::Server, Vec::new());
        let mut enc = HeaderEncoder::new();
        let mut syn = Vec::new();
        encode_frame(
            &Frame::SynStream {
                stream_id: 1,
                assoc_id: 0,
                priority: 0,
                flags: 0,
                block: enc.encode(&h("streamtype", "stdout")).into(),
            },
            &mut syn,
        )
        .unwrap();
        raw.write_all(&syn).await.unwrap();
        let srv = tokio::spawn(async move {
            let s = server.accept().await.unwrap();
            s.reply().await.unwrap();
            s.tx.send(&vec![1u8; 1 << 20]).await.unwrap();
            s.tx.close().await.unwrap();
            server
        });
        let mut buf = Vec::new();
        let mut got = 0;
        let mut dec = HeaderDecoder::new();
        'outer: loop {
            let n = raw.read_buf(&mut buf).await.unwrap();
            assert_ne!(n, 0, "server hung up early");
            while let Some((f, used)) = decode_frame(&buf).unwrap() {
                buf.drain(..used);
                match f {
                    Frame::Data {
                        stream_id: 1,
                        flags,
                        payload,
                    } => {
                        got += payload.len();
                        if flags & FLAG_FIN != 0 {
                            break 'outer;
                        }
                    }
                    Frame::SynReply { block, .. } => {
                        dec.decode(&block).unwrap();
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(got, 1 << 20);
        let _server = srv.await.unwrap();
    }

    /// Drives a server session with raw frames and reads what it answers.
    async fn raw_exchange(input: Vec<u8>) -> Vec<Frame> {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let server = Session::new(b, Role::Server, Vec::new());
        a.write_all(&input).await.unwrap();
        let mut out = Vec::new();
        let mut frames = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::select! {
                n = a.read(&mut buf) => n.unwrap(),
                _ = tokio::time::sleep(std::time::Duration::from_millis(300)) => 0,
            };
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let mut at = 0;
        while let Ok(Some((f, used))) = decode_frame(&out[at..]) {
            frames.push(f);
            at += used;
        }
        drop(server);
        frames
    }

    #[tokio::test]
    async fn data_for_unknown_stream_is_reset_not_fatal() {
        let mut input = Vec::new();
        encode_frame(
            &Frame::Data {
                stream_id: 7,
                flags: 0,
                payload: Bytes::from_static(b"x"),
            },
            &mut input,
        )
        .unwrap();
        encode_frame(&Frame::Ping { id: 1 }, &mut input).unwrap();
        let frames = raw_exchange(input).await;
        assert!(frames.contains(&Frame::RstStream {
            stream_id: 7,
            status: RstStatus::InvalidStream as u32
        }));
        // The session is still alive: it answered the PING after the bad DATA frame.
        assert!(frames.contains(&Frame::Ping { id: 1 }));
    }

    #[tokio::test]
    async fn malformed_frame_ends_session_with_goaway() {
        let input = vec![0x80, 3, 0, 6, 0, 0, 0, 5, 0, 0, 0, 1, 0];
        let frames = raw_exchange(input).await;
        assert!(frames.contains(&Frame::GoAway {
            last_good_stream_id: 0,
            status: GoAwayStatus::ProtocolError as u32
        }));
    }

    #[tokio::test]
    async fn garbage_header_block_ends_session() {
        let mut input = Vec::new();
        encode_frame(
            &Frame::SynStream {
                stream_id: 1,
                assoc_id: 0,
                priority: 0,
                flags: 0,
                block: Bytes::from_static(b"definitely not zlib"),
            },
            &mut input,
        )
        .unwrap();
        let frames = raw_exchange(input).await;
        assert!(
            frames
                .iter()
                .any(|f| matches!(f, Frame::GoAway { status: 1, .. }))
        );
    }

    #[tokio::test]
    async fn even_stream_id_from_client_is_protocol_error() {
        let mut enc = HeaderEncoder::new();
        let mut input = Vec::new();
        encode_frame(
            &Frame::SynStream {
                stream_id: 2,
                assoc_id: 0,
                priority: 0,
                flags: 0,
                block: enc.encode(&h("a", "b")).into(),
            },
            &mut input,
        )
        .unwrap();
        let frames = raw_exchange(input).await;
        assert!(
            frames
                .iter()
                .any(|f| matches!(f, Frame::GoAway { status: 1, .. }))
        );
    }
}
