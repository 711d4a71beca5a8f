//! The container's terminal: a pty created inside the container (from its own devpts),
//! the master sent to `--console-socket` over SCM_RIGHTS as runc does, the slave made
//! the init's controlling terminal, its stdio and /dev/console.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::pty;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

/// Errors setting up the terminal.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("connect to console socket {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("console: {op}: {source}")]
    Sys {
        op: &'static str,
        source: nix::Error,
    },
}

fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> ConsoleError {
    move |source| ConsoleError::Sys { op, source }
}

/// Connects to the console socket the caller listens on (done before forking).
pub fn connect(path: &Path) -> Result<UnixStream, ConsoleError> {
    UnixStream::connect(path).map_err(|source| ConsoleError::Connect {
        path: path.display().to_string(),
        source,
    })
}

/// A new pty: (master, slave path).
pub fn open_pty() -> Result<(OwnedFd, String), ConsoleError> {
    let master = pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(sys("open /dev/ptmx"))?;
    pty::grantpt(&master).map_err(sys("grantpt"))?;
    pty::unlockpt(&master).map_err(sys("unlockpt"))?;
    let name = pty::ptsname_r(&master).map_err(sys("ptsname"))?;
    // SAFETY: into_raw_fd hands over ownership of a valid descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    Ok((fd, name))
}

/// Sets the window size of a terminal.
pub fn set_size(fd: RawFd, rows: u16, cols: u16) -> Result<(), ConsoleError> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize we own.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(ConsoleError::Sys {
            op: "set window size",
            source: nix::Error::last(),
        });
    }
    Ok(())
}

/// Sends `fd` over `sock` with `name` as the message body (runc's format).
pub fn send_fd(sock: &UnixStream, name: &str, fd: RawFd) -> Result<(), ConsoleError> {
    let iov = [IoSlice::new(name.as_bytes())];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(sys("send pty master"))?;
    Ok(())
}

/// Makes the pty slave at `slave` the caller's controlling terminal and stdio.
pub fn become_session_leader_on(slave: &str) -> Result<(), ConsoleError> {
    let fd = nix::fcntl::open(slave, OFlag::O_RDWR, nix::sys::stat::Mode::empty())
        .map_err(sys("open pty slave"))?;
    nix::unistd::setsid().map_err(sys("setsid"))?;
    // SAFETY: TIOCSCTTY on a terminal descriptor we own.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(ConsoleError::Sys {
            op: "set controlling terminal",
            source: nix::Error::last(),
        });
    }
    for target in 0..3 {
        // SAFETY: dup2 onto the stdio descriptors of this process.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
            return Err(ConsoleError::Sys {
                op: "dup2 pty slave",
                source: nix::Error::last(),
            });
        }
    }
    Ok(())
}

/// Receives one descriptor sent with `send_fd` (the caller's side of a console socket).
pub fn recv_fd(sock: &UnixStream) -> Result<OwnedFd, ConsoleError> {
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(sys("receive pty master"))?;
    for c in msg.cmsgs().map_err(sys("receive pty master"))? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just installed this descriptor for us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Err(ConsoleError::Sys {
        op: "receive pty master: no descriptor in message",
        source: nix::Error::EBADMSG,
    })
}
