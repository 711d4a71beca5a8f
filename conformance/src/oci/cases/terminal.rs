//! `process.terminal` through `--console-socket`: the runtime sends the pty master
//! over the socket with SCM_RIGHTS (runc's protocol) and the process's stdio is the
//! pty slave.

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use serde_json::json;

use super::{Case, case, expect_contains};
use crate::oci::ctx::Ctx;

pub fn cases() -> Vec<Case> {
    vec![case("terminal_console_socket", console_socket)]
}

/// Accepts one connection on `listener` (at most `limit`) and returns the first
/// descriptor it sends with SCM_RIGHTS.
fn receive_master(listener: UnixListener, limit: Duration) -> anyhow::Result<OwnedFd> {
    listener.set_nonblocking(true)?;
    let start = Instant::now();
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() > limit {
                    anyhow::bail!("the runtime never connected to the console socket");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(limit))?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )?;
    let mut received = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: SCM_RIGHTS just installed this descriptor in our table and
                // nothing else owns it.
                received.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    received
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the console socket message carried no descriptor"))
}

/// Reads the pty master until the slave side is gone (EIO) or `limit` passes.
fn drain(master: OwnedFd, limit: Duration) -> anyhow::Result<String> {
    let mut f = std::fs::File::from(master);
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() > limit {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // EIO: the last slave descriptor closed.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn console_socket(ctx: &mut Ctx) -> anyhow::Result<()> {
    let sock = ctx.path("console.sock");
    let listener = UnixListener::bind(&sock)?;
    let limit = Duration::from_secs(10);
    let receiver = std::thread::spawn(move || receive_master(listener, limit));
    let mut b = ctx.bundle()?;
    b.set(&["process", "terminal"], json!(true));
    b.sh("tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-three-ttys; echo done-$((6*7))");
    let created = ctx.create(&b, &["--console-socket", &sock.to_string_lossy()]);
    let master = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("console socket thread panicked"))?;
    created?.check()?;
    let master = master?;
    ctx.rt(&["start", &b.id])?.check()?;
    let text = drain(master, limit)?;
    expect_contains("tty", &text, "/dev/pts/")?;
    expect_contains("stdio on the terminal", &text, "all-three-ttys")?;
    expect_contains("output", &text, "done-42")
}
