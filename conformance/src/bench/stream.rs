//! `berth-conformance bench stream`: throughput of port-forward and exec stdout through
//! berth's streaming server (SPDY/3.1 and WebSocket, our client), against a plain loopback
//! TCP copy of the same bytes in the same run; and the latency of an `echo` exec round
//! trip against spawning `echo` directly. The server runs in-process with handlers that
//! run host processes and dial loopback, as berthd's will do inside containers.

use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_cri::streaming::client::{
    self, ExecIo, ExecOptions, PortForwarder, Transport, WsPortForwarder,
};
use berth_cri::streaming::handler::{
    BoxFuture, HandlerError, PortConnection, StreamIo, Unsupported,
};
use berth_cri::streaming::remotecommand::{Outcome, PROTOCOL_V5};
use berth_cri::streaming::{
    Config, ExecHandler, ExecRequest, Handlers, PortForwardHandler, PortForwardRequest,
    StreamingServer,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Arguments of `berth-conformance bench stream`.
#[derive(clap::Args)]
pub struct Args {
    /// Bytes moved per throughput measurement.
    #[arg(long, default_value_t = 1 << 30)]
    bytes: u64,
    /// Exec round trips timed for the latency median.
    #[arg(long, default_value_t = 30)]
    iterations: usize,
    /// Also write the results as CSV to this file.
    #[arg(long)]
    csv: Option<std::path::PathBuf>,
}

/// Runs `berth-conformance bench stream`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(bench(args))
}

/// Runs host processes with stdout only (what the benchmark needs).
struct HostExec;

impl ExecHandler for HostExec {
    fn exec(&self, req: ExecRequest, io: StreamIo) -> BoxFuture<Result<i32, HandlerError>> {
        Box::pin(async move {
            let (prog, args) = req
                .cmd
                .split_first()
                .ok_or_else(|| HandlerError::Failed("empty command".into()))?;
            let mut child = tokio::process::Command::new(prog)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| HandlerError::Failed(e.to_string()))?;
            if let (Some(mut r), Some(mut w)) = (child.stdout.take(), io.stdout) {
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            }
            let st = child
                .wait()
                .await
                .map_err(|e| HandlerError::Failed(e.to_string()))?;
            Ok(st.code().unwrap_or(137))
        })
    }
}

struct Loopback;

impl PortForwardHandler for Loopback {
    fn connect(
        &self,
        _: &PortForwardRequest,
        port: u16,
    ) -> BoxFuture<Result<Box<dyn PortConnection>, HandlerError>> {
        Box::pin(async move {
            let c = TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| HandlerError::Failed(e.to_string()))?;
            Ok(Box::new(c) as Box<dyn PortConnection>)
        })
    }
}

/// A server that writes `bytes` zero bytes to every connection, then closes it.
async fn source_server(bytes: u64) -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let buf = vec![0u8; 64 * 1024];
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    left -= n as u64;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(addr)
}

/// Counts bytes written to it.
#[derive(Default)]
struct Counter(u64);

impl AsyncWrite for Counter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0 += buf.len() as u64;
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Shared byte counter usable as an exec output.
#[derive(Clone, Default)]
struct SharedCounter(Arc<std::sync::atomic::AtomicU64>);

impl AsyncWrite for SharedCounter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

async fn drain(mut r: impl AsyncRead + Unpin) -> u64 {
    let mut c = Counter::default();
    let _ = tokio::io::copy(&mut r, &mut c).await;
    c.0
}

fn exec_req(cmd: &[&str]) -> ExecRequest {
    ExecRequest {
        container_id: "bench".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty: false,
        stdin: false,
        stdout: true,
        stderr: false,
    }
}

fn exec_opts(transport: Transport) -> ExecOptions {
    ExecOptions {
        transport,
        protocols: if transport == Transport::WebSocket {
            vec![PROTOCOL_V5.into()]
        } else {
            Vec::new()
        },
        stdin: false,
        stdout: true,
        stderr: false,
        tty: false,
    }
}

struct Row {
    what: String,
    value: f64,
    unit: &'static str,
    baseline: f64,
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

async fn bench(args: Args) -> anyhow::Result<ExitCode> {
    let handlers = Handlers {
        exec: Arc::new(HostExec),
        attach: Arc::new(Unsupported),
        port_forward: Arc::new(Loopback),
    };
    let srv = StreamingServer::start(Config::default(), handlers).await?;
    let src = source_server(args.bytes).await?;
    let mut rows = Vec::new();

    // The practical limit: the same bytes over one plain loopback TCP connection.
    let t = Instant::now();
    let n = drain(TcpStream::connect(src).await?).await;
    let tcp = mib_s(n, t.elapsed());
    anyhow::ensure!(
        n == args.bytes,
        "loopback copy moved {n} of {} bytes",
        args.bytes
    );

    // Port-forward, SPDY.
    let url = srv.port_forward_url(PortForwardRequest {
        pod_sandbox_id: "bench".into(),
        ports: vec![src.port()],
    })?;
    let pf = PortForwarder::connect(&url.to_string()).await?;
    let t = Instant::now();
    let mut s = pf.open(src.port()).await?;
    let mut n = 0u64;
    while let Some(c) = s.recv().await {
        n += c.len() as u64;
    }
    let d = t.elapsed();
    anyhow::ensure!(
        n == args.bytes,
        "SPDY port-forward moved {n} of {} bytes",
        args.bytes
    );
    rows.push(Row {
        what: "port-forward SPDY".into(),
        value: mib_s(n, d),
        unit: "MiB/s",
        baseline: tcp,
    });
    pf.close().await;

    // Port-forward, WebSocket.
    let url = srv.port_forward_url(PortForwardRequest {
        pod_sandbox_id: "bench".into(),
        ports: vec![],
    })?;
    let t = Instant::now();
    let mut wpf = WsPortForwarder::connect(&url.to_string(), &[src.port()]).await?;
    let mut s = wpf.take(0).context("port stream")?;
    let mut n = 0u64;
    while n < args.bytes {
        match s.recv().await? {
            Some(c) => n += c.len() as u64,
            None => break,
        }
    }
    let d = t.elapsed();
    anyhow::ensure!(
        n == args.bytes,
        "WebSocket port-forward moved {n} of {} bytes",
        args.bytes
    );
    rows.push(Row {
        what: "port-forward WebSocket".into(),
        value: mib_s(n, d),
        unit: "MiB/s",
        baseline: tcp,
    });
    wpf.close().await;

    // Exec stdout: `head -c N /dev/zero` through the server vs through a local pipe.
    let size = args.bytes.to_string();
    let cmd = ["head", "-c", size.as_str(), "/dev/zero"];
    let t = Instant::now();
    let mut child = tokio::process::Command::new(cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::piped())
        .spawn()?;
    let n = drain(child.stdout.take().context("stdout")?).await;
    child.wait().await?;
    let pipe = mib_s(n, t.elapsed());
    for transport in [Transport::Spdy, Transport::WebSocket] {
        let url = srv.exec_url(exec_req(&cmd))?;
        let counter = SharedCounter::default();
        let t = Instant::now();
        let outcome = client::exec(
            &url.to_string(),
            &exec_opts(transport),
            ExecIo {
                stdout: Some(Box::new(counter.clone())),
                ..ExecIo::default()
            },
        )
        .await?;
        let d = t.elapsed();
        let n = counter.0.load(std::sync::atomic::Ordering::Relaxed);
        anyhow::ensure!(outcome == Outcome::Exited(0), "exec ended with {outcome:?}");
        anyhow::ensure!(
            n == args.bytes,
            "exec {transport:?} moved {n} of {} bytes",
            args.bytes
        );
        rows.push(Row {
            what: format!("exec stdout {transport:?} (vs loopback TCP)"),
            value: mib_s(n, d),
            unit: "MiB/s",
            baseline: tcp,
        });
        rows.push(Row {
            what: format!("exec stdout {transport:?} (vs local pipe)"),
            value: mib_s(n, d),
            unit: "MiB/s",
            baseline: pipe,
        });
    }

    // Latency: `echo hi` exec round trip vs spawning `echo hi` here.
    let mut local = Vec::new();
    for _ in 0..args.iterations {
        let t = Instant::now();
        let out = tokio::process::Command::new("echo")
            .arg("hi")
            .output()
            .await?;
        anyhow::ensure!(out.stdout == b"hi\n", "local echo printed {:?}", out.stdout);
        local.push(t.elapsed());
    }
    let local = median(local);
    for transport in [Transport::Spdy, Transport::WebSocket] {
        let mut times = Vec::new();
        for _ in 0..args.iterations {
            let url = srv.exec_url(exec_req(&["echo", "hi"]))?;
            let counter = SharedCounter::default();
            let t = Instant::now();
            let outcome = client::exec(
                &url.to_string(),
                &exec_opts(transport),
                ExecIo {
                    stdout: Some(Box::new(counter.clone())),
                    ..ExecIo::default()
                },
            )
            .await?;
            times.push(t.elapsed());
            anyhow::ensure!(
                outcome == Outcome::Exited(0),
                "echo exec ended with {outcome:?}"
            );
            anyhow::ensure!(counter.0.load(std::sync::atomic::Ordering::Relaxed) == 3);
        }
        rows.push(Row {
            what: format!("exec echo round trip {transport:?} (vs local spawn)"),
            value: median(times).as_secs_f64() * 1e3,
            unit: "ms",
            baseline: local.as_secs_f64() * 1e3,
        });
    }

    println!(
        "{:<48} {:>12} {:>12} {:>8}",
        "measurement", "berth", "baseline", "ratio"
    );
    let mut csv = String::from("measurement,unit,berth,baseline,ratio\n");
    for r in &rows {
        let ratio = r.value / r.baseline;
        println!(
            "{:<48} {:>8.1} {:<5} {:>8.1} {:<5} {:>6.2}",
            r.what, r.value, r.unit, r.baseline, r.unit, ratio
        );
        csv.push_str(&format!(
            "{},{},{:.3},{:.3},{:.4}\n",
            r.what, r.unit, r.value, r.baseline, ratio
        ));
    }
    println!(
        "(bytes per throughput run: {}; throughput ratio = berth / baseline; latency ratio = berth / baseline)",
        args.bytes
    );
    if let Some(path) = args.csv {
        std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
