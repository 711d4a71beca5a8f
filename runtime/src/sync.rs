//! The messages the runtime and its children exchange over a SOCK_SEQPACKET pair while
//! a container is set up. Each message is one JSON datagram, so a dead peer shows as EOF
//! and a torn message cannot happen.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};

/// Largest message accepted; errors carry at most a few KiB of text.
const MAX_MSG: usize = 64 * 1024;

/// One step of the setup handshake.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub enum Msg {
    /// parent → child: the child is in its cgroup and may go on.
    Go,
    /// child → parent: a new user namespace exists; write its id maps.
    UsernsReady,
    /// parent → child: id maps written.
    MapsDone,
    /// child → parent: the container's init has this PID (in the runtime's PID namespace).
    InitPid(i32),
    /// init → parent: mounts are done; run prestart and createRuntime hooks.
    RunHooks,
    /// parent → init: hooks done; carries the runtime-spec state JSON for the hooks
    /// the init runs itself (createContainer, startContainer).
    HooksDone(String),
    /// init → parent: set up, waiting for `start` (or, for exec, about to exec).
    Ready,
    /// exec'd process → parent: the seccomp notify fd rides with this message; hand it
    /// to `linux.seccomp.listenerPath` (a host path the container cannot reach).
    SeccompFd,
    /// parent → exec'd process: the listener fd reached the seccomp agent.
    SeccompDone,
    /// child → parent: setup failed.
    Error(String),
}

/// Errors of the handshake.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync socket: {0}")]
    Sys(#[from] nix::Error),
    #[error("the container's setup process exited before it was ready")]
    Eof,
    #[error("sync socket: malformed message: {0}")]
    Malformed(String),
    #[error("{0}")]
    Child(String),
    #[error("sync: expected {expected}, got {got:?}")]
    Unexpected { expected: &'static str, got: Msg },
}

/// One end of the handshake socket pair.
#[derive(Debug)]
pub struct SyncSocket {
    fd: OwnedFd,
}

/// A connected pair: (parent end, child end). Both are CLOEXEC.
pub fn pair() -> Result<(SyncSocket, SyncSocket), SyncError> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((SyncSocket { fd: a }, SyncSocket { fd: b }))
}

impl SyncSocket {
    /// Sends one message.
    pub fn send(&self, msg: &Msg) -> Result<(), SyncError> {
        let data = serde_json::to_vec(msg).expect("messages serialize: plain data");
        let data = &data[..data.len().min(MAX_MSG)];
        loop {
            match socket::send(self.fd.as_raw_fd(), data, socket::MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives one message; an `Error` from the peer becomes `SyncError::Child`.
    pub fn recv(&self) -> Result<Msg, SyncError> {
        let mut buf = vec![0u8; MAX_MSG];
        let n = loop {
            match socket::recv(self.fd.as_raw_fd(), &mut buf, socket::MsgFlags::empty()) {
                Ok(n) => break n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        decode(&buf[..n])
    }

    /// Sends one message with `fd` attached (SCM_RIGHTS).
    pub fn send_with_fd(&self, msg: &Msg, fd: BorrowedFd<'_>) -> Result<(), SyncError> {
        let data = serde_json::to_vec(msg).expect("messages serialize: plain data");
        let fds = [fd.as_raw_fd()];
        let cmsg = [socket::ControlMessage::ScmRights(&fds)];
        let iov = [IoSlice::new(&data)];
        loop {
            match socket::sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                &cmsg,
                socket::MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives one message and the fd that came with it, if any (made CLOEXEC).
    pub fn recv_with_fd(&self) -> Result<(Msg, Option<OwnedFd>), SyncError> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match socket::recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                socket::MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => {
                    let mut fd = None;
                    for c in m.cmsgs()? {
                        if let socket::ControlMessageOwned::ScmRights(fds) = c {
                            for f in fds {
                                // SAFETY: SCM_RIGHTS installed a new descriptor that
                                // nothing else owns; wrapping it closes extras on drop.
                                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                                if fd.is_none() {
                                    fd = Some(owned);
                                }
                            }
                        }
                    }
                    break (m.bytes, fd);
                }
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        decode(&buf[..n]).map(|m| (m, fd))
    }

    /// Receives a message and checks it is the expected one.
    pub fn expect(&self, want: Msg, name: &'static str) -> Result<(), SyncError> {
        let got = self.recv()?;
        if got == want {
            Ok(())
        } else {
            Err(SyncError::Unexpected {
                expected: name,
                got,
            })
        }
    }
}

impl AsFd for SyncSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One received datagram as a message: empty is the peer's EOF, an `Error` from the
/// peer becomes `SyncError::Child`.
fn decode(data: &[u8]) -> Result<Msg, SyncError> {
    if data.is_empty() {
        return Err(SyncError::Eof);
    }
    let msg: Msg = serde_json::from_slice(data).map_err(|e| SyncError::Malformed(e.to_string()))?;
    match msg {
        Msg::Error(e) => Err(SyncError::Child(e)),
        m => Ok(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_eof_is_seen() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::InitPid(42)).unwrap();
        assert_eq!(b.recv().unwrap(), Msg::InitPid(42));
        b.send(&Msg::Error("boom".into())).unwrap();
        assert!(matches!(a.recv(), Err(SyncError::Child(m)) if m == "boom"));
        b.send(&Msg::Go).unwrap();
        assert!(matches!(
            a.expect(Msg::Ready, "Ready"),
            Err(SyncError::Unexpected { .. })
        ));
        drop(b);
        assert!(matches!(a.recv(), Err(SyncError::Eof)));
    }

    #[test]
    fn an_fd_rides_with_a_message() {
        let (a, b) = pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        b.send_with_fd(&Msg::SeccompFd, w.as_fd()).unwrap();
        drop(w);
        let (msg, fd) = a.recv_with_fd().unwrap();
        assert_eq!(msg, Msg::SeccompFd);
        let fd = fd.expect("the fd came along");
        nix::unistd::write(&fd, b"x").unwrap();
        let mut buf = [0u8; 1];
        nix::unistd::read(&r, &mut buf).unwrap();
        assert_eq!(&buf, b"x");
        // A plain message has no fd.
        b.send(&Msg::SeccompDone).unwrap();
        assert!(matches!(a.recv_with_fd(), Ok((Msg::SeccompDone, None))));
        drop(b);
        assert!(matches!(a.recv_with_fd(), Err(SyncError::Eof)));
    }
}
