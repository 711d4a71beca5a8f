//! The Kubernetes remotecommand and port-forward protocols on top of SPDY and WebSocket:
//! protocol names, stream and channel ids, the exit-status JSON (a `metav1.Status`) that
//! kubectl reads from the error stream, and terminal-size messages.

use serde::{Deserialize, Serialize};

/// remotecommand v1 (SPDY and WebSocket): the error stream carries plain text.
pub const PROTOCOL_V1: &str = "channel.k8s.io";
/// remotecommand v2 (SPDY): only requested streams are created.
pub const PROTOCOL_V2: &str = "v2.channel.k8s.io";
/// remotecommand v3 (SPDY): adds the resize stream.
pub const PROTOCOL_V3: &str = "v3.channel.k8s.io";
/// remotecommand v4 (SPDY and WebSocket): the error stream carries a JSON `Status`.
pub const PROTOCOL_V4: &str = "v4.channel.k8s.io";
/// remotecommand v5 (WebSocket): adds the close signal (channel 255).
pub const PROTOCOL_V5: &str = "v5.channel.k8s.io";
/// v1 WebSocket framing with base64 text messages.
pub const PROTOCOL_BASE64: &str = "base64.channel.k8s.io";
/// v4 WebSocket framing with base64 text messages.
pub const PROTOCOL_V4_BASE64: &str = "v4.base64.channel.k8s.io";
/// Port-forward over SPDY (and, here, over WebSocket with v4 port framing).
pub const PROTOCOL_PORT_FORWARD: &str = "portforward.k8s.io";

/// SPDY exec/attach protocols in server preference order.
pub const SPDY_EXEC_PROTOCOLS: &[&str] = &[PROTOCOL_V4, PROTOCOL_V3, PROTOCOL_V2, PROTOCOL_V1];
/// WebSocket exec/attach protocols in server preference order.
pub const WS_EXEC_PROTOCOLS: &[&str] = &[
    PROTOCOL_V5,
    PROTOCOL_V4,
    PROTOCOL_V4_BASE64,
    PROTOCOL_V1,
    PROTOCOL_BASE64,
];
/// WebSocket port-forward protocols in server preference order.
pub const WS_PORT_FORWARD_PROTOCOLS: &[&str] = &[
    PROTOCOL_PORT_FORWARD,
    PROTOCOL_V4,
    PROTOCOL_V4_BASE64,
    PROTOCOL_V1,
    PROTOCOL_BASE64,
];

/// WebSocket channel numbers of remotecommand.
pub mod channel {
    /// stdin (client to server).
    pub const STDIN: u8 = 0;
    /// stdout.
    pub const STDOUT: u8 = 1;
    /// stderr.
    pub const STDERR: u8 = 2;
    /// error / exit status.
    pub const ERROR: u8 = 3;
    /// terminal resize (client to server).
    pub const RESIZE: u8 = 4;
    /// v5 close signal: the payload is the channel the client closes.
    pub const CLOSE: u8 = 255;
}

/// SPDY `streamtype` header values.
pub mod stream_type {
    /// stdin.
    pub const STDIN: &str = "stdin";
    /// stdout.
    pub const STDOUT: &str = "stdout";
    /// stderr.
    pub const STDERR: &str = "stderr";
    /// error / exit status.
    pub const ERROR: &str = "error";
    /// terminal resize.
    pub const RESIZE: &str = "resize";
    /// port-forward data.
    pub const DATA: &str = "data";
}

/// A remotecommand protocol version, as negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// `channel.k8s.io` (and its base64 form).
    V1,
    /// `v2.channel.k8s.io`.
    V2,
    /// `v3.channel.k8s.io`.
    V3,
    /// `v4.channel.k8s.io` (and its base64 form).
    V4,
    /// `v5.channel.k8s.io`.
    V5,
}

impl Version {
    /// The version a protocol name stands for.
    pub fn of(protocol: &str) -> Option<Self> {
        Some(match protocol {
            PROTOCOL_V1 | PROTOCOL_BASE64 => Self::V1,
            PROTOCOL_V2 => Self::V2,
            PROTOCOL_V3 => Self::V3,
            PROTOCOL_V4 | PROTOCOL_V4_BASE64 => Self::V4,
            PROTOCOL_V5 => Self::V5,
            _ => return None,
        })
    }

    /// Whether the error stream carries a JSON `Status` (v4 and later).
    pub fn json_status(self) -> bool {
        self >= Self::V4
    }

    /// Whether a TTY session has a resize stream (v3 and later).
    pub fn has_resize(self) -> bool {
        self >= Self::V3
    }
}

/// Whether a WebSocket protocol sends base64 text messages.
pub fn is_base64(protocol: &str) -> bool {
    protocol == PROTOCOL_BASE64 || protocol == PROTOCOL_V4_BASE64
}

/// Picks the first of `server` (preference order) that the client offered; `None` when
/// there is no common protocol.
pub fn negotiate<'a>(offered: &[String], server: &[&'a str]) -> Option<&'a str> {
    server
        .iter()
        .copied()
        .find(|s| offered.iter().any(|o| o.trim() == *s))
}

/// A terminal size, as kubectl sends it on the resize stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Splits a byte stream of concatenated JSON `TermSize` objects: returns the complete
/// ones at the front of `buf` and how many bytes they used. Malformed JSON is an error.
pub fn parse_resizes(buf: &[u8]) -> Result<(Vec<TermSize>, usize), serde_json::Error> {
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<TermSize>();
    let mut out = Vec::new();
    loop {
        match it.next() {
            Some(Ok(s)) => out.push(s),
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    Ok((out, it.byte_offset()))
}

/// How a command ended, as the error stream reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exited with this code (0 is success).
    Exited(i32),
    /// Could not run or failed inside the runtime.
    Error(String),
}

/// The bytes the server writes on the error stream for `outcome`, for protocol `v`; empty
/// means nothing is written (success before v4).
pub fn status_message(v: Version, outcome: &Outcome, cmd: &[String]) -> Vec<u8> {
    let message = match outcome {
        Outcome::Exited(0) => None,
        Outcome::Exited(code) => Some(format!(
            "command terminated with non-zero exit code: error executing command {cmd:?}, exit code {code}"
        )),
        Outcome::Error(e) => Some(e.clone()),
    };
    if !v.json_status() {
        return message.map(String::into_bytes).unwrap_or_default();
    }
    let status = match (outcome, message) {
        (_, None) => serde_json::json!({"metadata": {}, "status": "Success"}),
        (Outcome::Exited(code), Some(m)) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": m,
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        (Outcome::Error(_), Some(m)) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": m,
            "reason": "InternalError",
            "code": 500,
        }),
    };
    status.to_string().into_bytes()
}

/// Reads what the server wrote on the error stream back into an [`Outcome`] (the client
/// side of [`status_message`]).
pub fn parse_status(v: Version, bytes: &[u8]) -> Outcome {
    if bytes.is_empty() {
        return Outcome::Exited(0);
    }
    let text = String::from_utf8_lossy(bytes).into_owned();
    if v.json_status()
        && let Ok(s) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        if s["status"] == "Success" {
            return Outcome::Exited(0);
        }
        if s["reason"] == "NonZeroExitCode"
            && let Some(causes) = s["details"]["causes"].as_array()
        {
            for c in causes {
                if c["reason"] == "ExitCode"
                    && let Some(code) = c["message"].as_str().and_then(|m| m.parse().ok())
                {
                    return Outcome::Exited(code);
                }
            }
        }
        return Outcome::Error(s["message"].as_str().unwrap_or(&text).to_string());
    }
    // v1-v3: plain text; kubectl recognises the non-zero-exit wording.
    if let Some(code) = text
        .strip_prefix("command terminated with non-zero exit code: ")
        .and_then(|rest| rest.rsplit("exit code ").next())
        .and_then(|c| c.trim().parse().ok())
    {
        return Outcome::Exited(code);
    }
    Outcome::Error(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_server_preference() {
        let offered = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let table: &[(&[&str], Option<&str>)] = &[
            (&[PROTOCOL_V1, PROTOCOL_V4], Some(PROTOCOL_V4)),
            (&[PROTOCOL_V2, PROTOCOL_V3], Some(PROTOCOL_V3)),
            (&["v9.channel.k8s.io"], None),
            (&[], None),
        ];
        for (o, want) in table {
            assert_eq!(negotiate(&offered(o), SPDY_EXEC_PROTOCOLS), *want, "{o:?}");
        }
    }

    #[test]
    fn status_round_trips_per_version() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        for v in [
            Version::V1,
            Version::V2,
            Version::V3,
            Version::V4,
            Version::V5,
        ] {
            for o in [
                Outcome::Exited(0),
                Outcome::Exited(3),
                Outcome::Exited(255),
                Outcome::Error("container not found".into()),
            ] {
                let wire = status_message(v, &o, &cmd);
                assert_eq!(parse_status(v, &wire), o, "{v:?} {o:?}");
            }
        }
        assert_eq!(
            status_message(Version::V4, &Outcome::Exited(0), &cmd),
            br#"{"metadata":{},"status":"Success"}"#
        );
        let v: serde_json::Value =
            serde_json::from_slice(&status_message(Version::V4, &Outcome::Exited(3), &cmd))
                .unwrap();
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        assert_eq!(v["reason"], "NonZeroExitCode");
    }

    #[test]
    fn resize_messages_are_split_and_validated() {
        let (sizes, used) =
            parse_resizes(br#"{"Width":80,"Height":24}{"Width":100,"Height":50}{"Wid"#).unwrap();
        assert_eq!(
            sizes,
            vec![
                TermSize {
                    width: 80,
                    height: 24
                },
                TermSize {
                    width: 100,
                    height: 50
                }
            ]
        );
        assert_eq!(used, 49);
        assert!(parse_resizes(b"{\"Width\":-1,\"Height\":2}").is_err());
        assert!(parse_resizes(b"not json").is_err());
    }
}
