//! Test handlers for the streaming server: an exec handler that runs real host processes
//! (with pipes, or on a real pty), an attach handler that attaches to a fresh `cat`, and a
//! port-forward handler that dials loopback.

#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use berth_cri::streaming::handler::{BoxFuture, HandlerError, PortConnection, StreamIo, TermSize};
use berth_cri::streaming::{
    AttachHandler, AttachRequest, Config, ExecHandler, ExecRequest, Handlers, PortForwardHandler,
    PortForwardRequest, StreamingServer,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

/// Runs commands on the host; records the pid of every process it starts.
#[derive(Default, Clone)]
pub struct HostExec {
    pub pids: Arc<Mutex<Vec<u32>>>,
}

async fn copy_in(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

fn set_winsize(fd: i32, s: TermSize) {
    let ws = libc::winsize {
        ws_row: s.height,
        ws_col: s.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the call.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

impl HostExec {
    async fn run(&self, cmd: Vec<String>, tty: bool, io: StreamIo) -> Result<i32, HandlerError> {
        let Some((prog, args)) = cmd.split_first() else {
            return Err(HandlerError::Failed("empty command".into()));
        };
        let mut c = Command::new(prog);
        c.args(args).kill_on_drop(true);
        if !tty {
            c.stdin(if io.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(if io.stdout.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(if io.stderr.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
            let mut child = c.spawn().map_err(|e| HandlerError::Failed(e.to_string()))?;
            self.pids.lock().unwrap().push(child.id().unwrap_or(0));
            let mut tasks = Vec::new();
            if let (Some(i), Some(o)) = (io.stdin, child.stdin.take()) {
                tasks.push(tokio::spawn(copy_in(i, o)));
            }
            let out = match (child.stdout.take(), io.stdout) {
                (Some(r), Some(w)) => Some(tokio::spawn(copy_in(r, w))),
                _ => None,
            };
            let err = match (child.stderr.take(), io.stderr) {
                (Some(r), Some(w)) => Some(tokio::spawn(copy_in(r, w))),
                _ => None,
            };
            let status = child
                .wait()
                .await
                .map_err(|e| HandlerError::Failed(e.to_string()))?;
            for t in [out, err].into_iter().flatten() {
                let _ = t.await;
            }
            for t in tasks {
                t.abort();
            }
            return Ok(status.code().unwrap_or(128 + 9));
        }
        let pty = nix::pty::openpty(None, None).map_err(|e| HandlerError::Failed(e.to_string()))?;
        let slave = pty.slave;
        let master = pty.master;
        let s = |fd: &OwnedFd| -> Result<Stdio, HandlerError> {
            Ok(Stdio::from(
                fd.try_clone()
                    .map_err(|e| HandlerError::Failed(e.to_string()))?,
            ))
        };
        c.stdin(s(&slave)?).stdout(s(&slave)?).stderr(s(&slave)?);
        // SAFETY: setsid and TIOCSCTTY are async-signal-safe and run in the child before exec.
        unsafe {
            c.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = c.spawn().map_err(|e| HandlerError::Failed(e.to_string()))?;
        // The Command keeps its copies of the slave open: drop it so the master sees EIO
        // once the child's side is gone.
        drop(c);
        drop(slave);
        self.pids.lock().unwrap().push(child.id().unwrap_or(0));
        let master_fd = master.as_raw_fd();
        let rd = tokio::fs::File::from_std(std::fs::File::from(
            master
                .try_clone()
                .map_err(|e| HandlerError::Failed(e.to_string()))?,
        ));
        let wr = tokio::fs::File::from_std(std::fs::File::from(master));
        let mut tasks = Vec::new();
        if let Some(i) = io.stdin {
            tasks.push(tokio::spawn(async move {
                let mut wr = wr;
                let mut i = i;
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = i.read(&mut buf).await {
                    if n == 0 || wr.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let _ = wr.flush().await;
                }
            }));
        }
        if let Some(mut r) = io.resize {
            // SAFETY: dup of the master fd, which is open (owned by `rd`) at this point.
            let fd = unsafe { OwnedFd::from_raw_fd(libc::dup(master_fd)) };
            tasks.push(tokio::spawn(async move {
                while let Some(size) = r.recv().await {
                    set_winsize(fd.as_raw_fd(), size);
                }
            }));
        }
        let out = io.stdout.map(|w| tokio::spawn(copy_in(rd, w)));
        let status = child
            .wait()
            .await
            .map_err(|e| HandlerError::Failed(e.to_string()))?;
        if let Some(o) = out {
            let _ = o.await;
        }
        for t in tasks {
            t.abort();
        }
        Ok(status.code().unwrap_or(128 + 9))
    }
}

impl ExecHandler for HostExec {
    fn exec(&self, req: ExecRequest, io: StreamIo) -> BoxFuture<Result<i32, HandlerError>> {
        let me = self.clone();
        Box::pin(async move {
            if req.container_id == "missing" {
                return Err(HandlerError::NotFound(format!(
                    "container {}",
                    req.container_id
                )));
            }
            me.run(req.cmd, req.tty, io).await
        })
    }
}

impl AttachHandler for HostExec {
    fn attach(&self, req: AttachRequest, io: StreamIo) -> BoxFuture<Result<(), HandlerError>> {
        let me = self.clone();
        Box::pin(async move {
            // "The container" is a `cat` started for this attach.
            me.run(vec!["cat".into()], req.tty, io).await.map(|_| ())
        })
    }
}

/// Dials 127.0.0.1:port.
pub struct Loopback;

impl PortForwardHandler for Loopback {
    fn connect(
        &self,
        _req: &PortForwardRequest,
        port: u16,
    ) -> BoxFuture<Result<Box<dyn PortConnection>, HandlerError>> {
        Box::pin(async move {
            let c = TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| HandlerError::Failed(format!("dial 127.0.0.1:{port}: {e}")))?;
            Ok(Box::new(c) as Box<dyn PortConnection>)
        })
    }
}

/// A loopback TCP echo server; returns its port.
pub async fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

pub async fn server_with(config: Config) -> (StreamingServer, HostExec) {
    let exec = HostExec::default();
    let handlers = Handlers {
        exec: Arc::new(exec.clone()),
        attach: Arc::new(exec.clone()),
        port_forward: Arc::new(Loopback),
    };
    (
        StreamingServer::start(config, handlers).await.unwrap(),
        exec,
    )
}

pub async fn server() -> (StreamingServer, HostExec) {
    server_with(Config::default()).await
}

pub fn exec_req(cmd: &[&str], stdin: bool, tty: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c1".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    }
}

/// An AsyncWrite that collects into a shared buffer.
#[derive(Clone, Default)]
pub struct Sink(pub Arc<Mutex<Vec<u8>>>);

impl Sink {
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl AsyncWrite for Sink {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.lock().unwrap().extend_from_slice(buf);
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

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Open file descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}
