//! SPDY/3.1 flow control (section 2.6.8 and the 3.1 session window): byte windows per
//! stream and per session, for what we may send and what the peer may send us.

/// Initial window of every stream and of the session (64 KiB).
pub const DEFAULT_WINDOW: i64 = 65_536;
/// Largest window the spec allows (2^31 - 1).
pub const MAX_WINDOW: i64 = 0x7fff_ffff;

/// A flow-control violation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlowError {
    /// A WINDOW_UPDATE pushed a window above 2^31 - 1.
    #[error("window overflow")]
    Overflow,
    /// The peer sent more than the window it was given.
    #[error("peer sent {got} bytes into a window of {avail}")]
    Exceeded {
        /// Bytes received.
        got: usize,
        /// Window that was open.
        avail: i64,
    },
}

/// What we may still send; it can go negative when SETTINGS shrinks the initial window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    avail: i64,
}

impl SendWindow {
    /// A window of `size` bytes.
    pub fn new(size: i64) -> Self {
        Self { avail: size }
    }

    /// Bytes that may be sent now.
    pub fn available(&self) -> i64 {
        self.avail
    }

    /// Applies a WINDOW_UPDATE delta.
    pub fn grow(&mut self, delta: u32) -> Result<(), FlowError> {
        let next = self.avail + i64::from(delta);
        if next > MAX_WINDOW {
            return Err(FlowError::Overflow);
        }
        self.avail = next;
        Ok(())
    }

    /// Applies a change of SETTINGS_INITIAL_WINDOW_SIZE from `old` to `new`.
    pub fn rebase(&mut self, old: i64, new: i64) {
        self.avail += new - old;
    }

    /// Records `n` bytes sent.
    pub fn spend(&mut self, n: usize) {
        self.avail -= n as i64;
    }
}

/// What the peer may still send us, and the credit to return once data is consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvWindow {
    size: i64,
    avail: i64,
    unacked: i64,
}

impl RecvWindow {
    /// A window of `size` bytes.
    pub fn new(size: i64) -> Self {
        Self {
            size,
            avail: size,
            unacked: 0,
        }
    }

    /// Records `n` received bytes; `enforce` makes overrunning the window an error.
    pub fn receive(&mut self, n: usize, enforce: bool) -> Result<(), FlowError> {
        let got = n as i64;
        if enforce && got > self.avail {
            return Err(FlowError::Exceeded {
                got: n,
                avail: self.avail,
            });
        }
        self.avail -= got;
        Ok(())
    }

    /// Records `n` bytes handed to the reader; returns the WINDOW_UPDATE delta to send
    /// once half the window has been consumed (batching updates, as HTTP/2 peers do).
    pub fn consume(&mut self, n: usize) -> Option<u32> {
        self.unacked += n as i64;
        if self.unacked >= self.size / 2 {
            let delta = self.unacked.min(MAX_WINDOW);
            self.unacked -= delta;
            self.avail += delta;
            return Some(delta as u32);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_window_spends_grows_and_rebases() {
        let mut w = SendWindow::new(DEFAULT_WINDOW);
        w.spend(65_000);
        assert_eq!(w.available(), 536);
        w.spend(1000);
        assert_eq!(w.available(), -464);
        w.grow(1000).unwrap();
        assert_eq!(w.available(), 536);
        w.rebase(DEFAULT_WINDOW, 1 << 20);
        assert_eq!(w.available(), 536 + (1 << 20) - DEFAULT_WINDOW);
        assert_eq!(w.grow(0x7fff_ffff), Err(FlowError::Overflow));
    }

    #[test]
    fn recv_window_acks_in_halves_and_enforces() {
        let mut w = RecvWindow::new(DEFAULT_WINDOW);
        w.receive(40_000, true).unwrap();
        assert_eq!(w.consume(20_000), None);
        assert_eq!(w.consume(20_000), Some(40_000));
        w.receive(65_536, true).unwrap();
        assert!(matches!(
            w.receive(1, true),
            Err(FlowError::Exceeded { got: 1, avail: 0 })
        ));
        // Not enforced: accounting continues below zero (peers without flow control).
        w.receive(10, false).unwrap();
        assert_eq!(w.consume(65_546), Some(65_546));
    }
}
