//! Single-use, expiring tokens for streaming URLs (kubelet's request cache): berthd mints
//! one per Exec/Attach/PortForward RPC, the client redeems it once, within the TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

use super::handler::{AttachRequest, ExecRequest, PortForwardRequest};

/// Most requests waiting to be redeemed at once (kubelet uses the same bound).
pub const MAX_IN_FLIGHT: usize = 1000;

/// A request waiting for its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Exec.
    Exec(ExecRequest),
    /// Attach.
    Attach(AttachRequest),
    /// PortForward.
    PortForward(PortForwardRequest),
}

impl Request {
    /// The URL path segment of this kind of request.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Exec(_) => "exec",
            Request::Attach(_) => "attach",
            Request::PortForward(_) => "portforward",
        }
    }
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// Too many requests are waiting to be redeemed.
    #[error("too many streaming requests in flight ({MAX_IN_FLIGHT})")]
    Full,
    /// The system random source failed.
    #[error("no randomness for a token: {0}")]
    Random(String),
}

/// The token store.
pub struct Cache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Request)>>,
}

impl Cache {
    /// A cache whose tokens live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Stores `req` and returns its fresh token (128 random bits, URL-safe base64).
    pub fn insert(&self, req: Request) -> Result<String, CacheError> {
        self.insert_at(req, Instant::now())
    }

    /// [`Cache::insert`] at a given time (tests).
    pub fn insert_at(&self, req: Request, now: Instant) -> Result<String, CacheError> {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|e| CacheError::Random(e.to_string()))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (exp, _)| *exp > now);
        if map.len() >= MAX_IN_FLIGHT {
            return Err(CacheError::Full);
        }
        map.insert(token.clone(), (now + self.ttl, req));
        Ok(token)
    }

    /// Redeems `token`: returns its request once, if it has not expired.
    pub fn take(&self, token: &str) -> Option<Request> {
        self.take_at(token, Instant::now())
    }

    /// [`Cache::take`] at a given time (tests).
    pub fn take_at(&self, token: &str, now: Instant) -> Option<Request> {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (exp, req) = map.remove(token)?;
        (exp > now).then_some(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request::PortForward(PortForwardRequest {
            pod_sandbox_id: "p".into(),
            ports: vec![80],
        })
    }

    #[test]
    fn tokens_are_single_use_unique_and_expire() {
        let c = Cache::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let a = c.insert_at(req(), t0).unwrap();
        let b = c.insert_at(req(), t0).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert_eq!(c.take_at(&a, t0), Some(req()));
        assert_eq!(c.take_at(&a, t0), None, "reused token");
        assert_eq!(c.take_at("nope", t0), None);
        assert_eq!(c.take_at(&b, t0 + Duration::from_secs(61)), None, "expired");
    }

    #[test]
    fn in_flight_requests_are_bounded_and_expired_ones_pruned() {
        let c = Cache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        for _ in 0..MAX_IN_FLIGHT {
            c.insert_at(req(), t0).unwrap();
        }
        assert_eq!(c.insert_at(req(), t0), Err(CacheError::Full));
        assert!(c.insert_at(req(), t0 + Duration::from_secs(2)).is_ok());
    }
}
