//! SPDY/3.1 frame encoding and decoding (draft-mbelshe-httpbis-spdy-00 section 2.2 and
//! 2.6; SPDY/3.1 adds the session-level WINDOW_UPDATE on stream 0).
//!
//! Decoding is split in two: [`decode_frame`] cuts one frame out of a byte buffer and
//! checks its fixed layout, leaving the header block of SYN_STREAM, SYN_REPLY and HEADERS
//! compressed; the session decompresses it with its [`super::headers::HeaderDecoder`],
//! whose zlib state spans the whole session.

use bytes::{Buf, Bytes, BytesMut};

/// SPDY protocol version carried in every control frame.
pub const VERSION: u16 = 3;
/// Size of every frame header (control and data).
pub const FRAME_HEADER_LEN: usize = 8;
/// Largest frame payload this implementation accepts (the 24-bit length allows 16 MiB;
/// real clients never send data frames above 64 KiB or header blocks above a few KiB).
pub const MAX_FRAME_PAYLOAD: usize = 1 << 20;

/// FLAG_FIN: the sender will send nothing more on this stream.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL (SYN_STREAM only): the recipient may not send on this stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// SETTINGS flag FLAG_SETTINGS_CLEAR_SETTINGS.
pub const FLAG_SETTINGS_CLEAR: u8 = 0x01;

/// SETTINGS id SETTINGS_MAX_CONCURRENT_STREAMS.
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u32 = 4;
/// SETTINGS id SETTINGS_INITIAL_WINDOW_SIZE.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes (section 2.6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum RstStatus {
    /// PROTOCOL_ERROR
    ProtocolError = 1,
    /// INVALID_STREAM: a frame for a stream that is not active.
    InvalidStream = 2,
    /// REFUSED_STREAM
    RefusedStream = 3,
    /// UNSUPPORTED_VERSION
    UnsupportedVersion = 4,
    /// CANCEL: the creator no longer needs the stream.
    Cancel = 5,
    /// INTERNAL_ERROR
    InternalError = 6,
    /// FLOW_CONTROL_ERROR
    FlowControlError = 7,
    /// STREAM_IN_USE
    StreamInUse = 8,
    /// STREAM_ALREADY_CLOSED
    StreamAlreadyClosed = 9,
    /// FRAME_TOO_LARGE
    FrameTooLarge = 11,
}

impl RstStatus {
    /// Maps a wire status code; unknown codes are a protocol error.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::ProtocolError,
            2 => Self::InvalidStream,
            3 => Self::RefusedStream,
            4 => Self::UnsupportedVersion,
            5 => Self::Cancel,
            6 => Self::InternalError,
            7 => Self::FlowControlError,
            8 => Self::StreamInUse,
            9 => Self::StreamAlreadyClosed,
            11 => Self::FrameTooLarge,
            _ => return None,
        })
    }
}

/// GOAWAY status codes (section 2.6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum GoAwayStatus {
    /// OK: a normal session teardown.
    Ok = 0,
    /// PROTOCOL_ERROR
    ProtocolError = 1,
    /// INTERNAL_ERROR
    InternalError = 2,
}

/// One SPDY frame; header blocks are kept compressed (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// SYN_STREAM: opens a stream.
    SynStream {
        /// New stream id (odd from clients, even from servers).
        stream_id: u32,
        /// Associated stream id (server push; 0 otherwise).
        assoc_id: u32,
        /// Priority 0 (highest) to 7.
        priority: u8,
        /// FLAG_FIN / FLAG_UNIDIRECTIONAL.
        flags: u8,
        /// Compressed header block.
        block: Bytes,
    },
    /// SYN_REPLY: accepts a stream opened by the peer.
    SynReply {
        /// Stream id being accepted.
        stream_id: u32,
        /// FLAG_FIN.
        flags: u8,
        /// Compressed header block.
        block: Bytes,
    },
    /// RST_STREAM: aborts a stream.
    RstStream {
        /// Stream id.
        stream_id: u32,
        /// Raw status code (see [`RstStatus`]).
        status: u32,
    },
    /// SETTINGS: (flags, id, value) entries.
    Settings {
        /// FLAG_SETTINGS_CLEAR_SETTINGS.
        flags: u8,
        /// Entries as (entry flags, 24-bit id, value).
        entries: Vec<(u8, u32, u32)>,
    },
    /// PING: echoed by the recipient when the id parity is the peer's.
    Ping {
        /// Ping id.
        id: u32,
    },
    /// GOAWAY: the sender will accept no new streams.
    GoAway {
        /// Last stream id the sender processed.
        last_good_stream_id: u32,
        /// Raw status code (see [`GoAwayStatus`]).
        status: u32,
    },
    /// HEADERS: more headers on an open stream.
    Headers {
        /// Stream id.
        stream_id: u32,
        /// FLAG_FIN.
        flags: u8,
        /// Compressed header block.
        block: Bytes,
    },
    /// WINDOW_UPDATE: grows the sender's receive window (stream 0: the session window).
    WindowUpdate {
        /// Stream id, 0 for the session.
        stream_id: u32,
        /// Window growth, 1..=2^31-1.
        delta: u32,
    },
    /// DATA frame.
    Data {
        /// Stream id.
        stream_id: u32,
        /// FLAG_FIN.
        flags: u8,
        /// Payload.
        payload: Bytes,
    },
}

/// Why a byte sequence is not a valid frame: every variant is a session error (GOAWAY
/// PROTOCOL_ERROR), since the frame boundaries can no longer be trusted, except
/// [`FrameError::UnknownType`], which the spec says to ignore.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// A control frame with a version other than 3.
    #[error("unsupported SPDY version {0}")]
    UnsupportedVersion(u16),
    /// A frame whose declared length is above [`MAX_FRAME_PAYLOAD`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_PAYLOAD} byte limit")]
    TooLarge(usize),
    /// A control frame of a type this implementation does not know (ignored by sessions).
    #[error("unknown control frame type {0}")]
    UnknownType(u16),
    /// A control frame whose length does not fit its type's fixed layout.
    #[error("{kind} frame has invalid length {len}")]
    BadLength {
        /// Frame type name.
        kind: &'static str,
        /// Declared payload length.
        len: usize,
    },
    /// A field with a value the spec forbids (stream id 0 where one is required, ...).
    #[error("invalid {0}")]
    Invalid(&'static str),
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Cuts one frame from the front of `buf`. Returns `Ok(None)` when `buf` holds less than a
/// whole frame (read more), or the frame and the number of bytes it used.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    let flags = buf[4];
    let len = (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
    if len > MAX_FRAME_PAYLOAD {
        return Err(FrameError::TooLarge(len));
    }
    if buf.len() < FRAME_HEADER_LEN + len {
        return Ok(None);
    }
    let body = &buf[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
    let used = FRAME_HEADER_LEN + len;
    if buf[0] & 0x80 == 0 {
        let stream_id = be32(buf) & 0x7fff_ffff;
        if stream_id == 0 {
            return Err(FrameError::Invalid("DATA frame on stream 0"));
        }
        let payload = Bytes::copy_from_slice(body);
        return Ok(Some((
            Frame::Data {
                stream_id,
                flags,
                payload,
            },
            used,
        )));
    }
    let version = u16::from_be_bytes([buf[0], buf[1]]) & 0x7fff;
    if version != VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    let kind = u16::from_be_bytes([buf[2], buf[3]]);
    let bad = |kind: &'static str| FrameError::BadLength { kind, len };
    let frame = match kind {
        TYPE_SYN_STREAM => {
            if len < 10 {
                return Err(bad("SYN_STREAM"));
            }
            let stream_id = be32(body) & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(FrameError::Invalid("SYN_STREAM stream id 0"));
            }
            Frame::SynStream {
                stream_id,
                assoc_id: be32(&body[4..]) & 0x7fff_ffff,
                priority: body[8] >> 5,
                flags,
                block: Bytes::copy_from_slice(&body[10..]),
            }
        }
        TYPE_SYN_REPLY | TYPE_HEADERS => {
            if len < 4 {
                return Err(bad(if kind == TYPE_HEADERS {
                    "HEADERS"
                } else {
                    "SYN_REPLY"
                }));
            }
            let stream_id = be32(body) & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(FrameError::Invalid("header frame stream id 0"));
            }
            let block = Bytes::copy_from_slice(&body[4..]);
            if kind == TYPE_HEADERS {
                Frame::Headers {
                    stream_id,
                    flags,
                    block,
                }
            } else {
                Frame::SynReply {
                    stream_id,
                    flags,
                    block,
                }
            }
        }
        TYPE_RST_STREAM => {
            if len != 8 {
                return Err(bad("RST_STREAM"));
            }
            Frame::RstStream {
                stream_id: be32(body) & 0x7fff_ffff,
                status: be32(&body[4..]),
            }
        }
        TYPE_SETTINGS => {
            if len < 4 {
                return Err(bad("SETTINGS"));
            }
            let count = be32(body) as usize;
            if count.checked_mul(8).and_then(|n| n.checked_add(4)) != Some(len) {
                return Err(bad("SETTINGS"));
            }
            let entries = body[4..]
                .chunks_exact(8)
                .map(|e| (e[0], be32(e) & 0x00ff_ffff, be32(&e[4..])))
                .collect();
            Frame::Settings { flags, entries }
        }
        TYPE_PING => {
            if len != 4 {
                return Err(bad("PING"));
            }
            Frame::Ping { id: be32(body) }
        }
        TYPE_GOAWAY => {
            if len != 8 {
                return Err(bad("GOAWAY"));
            }
            Frame::GoAway {
                last_good_stream_id: be32(body) & 0x7fff_ffff,
                status: be32(&body[4..]),
            }
        }
        TYPE_WINDOW_UPDATE => {
            if len != 8 {
                return Err(bad("WINDOW_UPDATE"));
            }
            let delta = be32(&body[4..]) & 0x7fff_ffff;
            if delta == 0 {
                return Err(FrameError::Invalid("WINDOW_UPDATE delta 0"));
            }
            Frame::WindowUpdate {
                stream_id: be32(body) & 0x7fff_ffff,
                delta,
            }
        }
        other => return Err(FrameError::UnknownType(other)),
    };
    Ok(Some((frame, used)))
}

/// Length of the frame at the front of `buf` if its header is complete (used to skip
/// frames of unknown type).
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    (buf.len() >= FRAME_HEADER_LEN).then(|| {
        FRAME_HEADER_LEN
            + ((usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]))
    })
}

/// Takes the next frame off the front of a session's read buffer: like [`decode_frame`],
/// but DATA payloads are split off without copying, and control frames of unknown type
/// are skipped (section 2.2.1). `Ok(None)`: read more.
pub fn take_frame(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    loop {
        let Some(total) = frame_len(buf) else {
            return Ok(None);
        };
        if total - FRAME_HEADER_LEN > MAX_FRAME_PAYLOAD {
            return Err(FrameError::TooLarge(total - FRAME_HEADER_LEN));
        }
        if buf.len() < total {
            return Ok(None);
        }
        if buf[0] & 0x80 == 0 {
            let stream_id = be32(buf) & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(FrameError::Invalid("DATA frame on stream 0"));
            }
            let flags = buf[4];
            let mut frame = buf.split_to(total);
            frame.advance(FRAME_HEADER_LEN);
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                payload: frame.freeze(),
            }));
        }
        match decode_frame(&buf[..total]) {
            Ok(Some((f, used))) => {
                buf.advance(used);
                return Ok(Some(f));
            }
            Ok(None) => return Ok(None),
            Err(FrameError::UnknownType(_)) => buf.advance(total),
            Err(e) => return Err(e),
        }
    }
}

fn control_header(out: &mut Vec<u8>, kind: u16, flags: u8, len: usize) -> Result<(), FrameError> {
    if len > MAX_FRAME_PAYLOAD {
        return Err(FrameError::TooLarge(len));
    }
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    Ok(())
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends the wire form of `frame` to `out`.
pub fn encode_frame(frame: &Frame, out: &mut Vec<u8>) -> Result<(), FrameError> {
    match frame {
        Frame::SynStream {
            stream_id,
            assoc_id,
            priority,
            flags,
            block,
        } => {
            control_header(out, TYPE_SYN_STREAM, *flags, 10 + block.len())?;
            put32(out, stream_id & 0x7fff_ffff);
            put32(out, assoc_id & 0x7fff_ffff);
            out.push((priority & 0x7) << 5);
            out.push(0);
            out.extend_from_slice(block);
        }
        Frame::SynReply {
            stream_id,
            flags,
            block,
        } => {
            control_header(out, TYPE_SYN_REPLY, *flags, 4 + block.len())?;
            put32(out, stream_id & 0x7fff_ffff);
            out.extend_from_slice(block);
        }
        Frame::Headers {
            stream_id,
            flags,
            block,
        } => {
            control_header(out, TYPE_HEADERS, *flags, 4 + block.len())?;
            put32(out, stream_id & 0x7fff_ffff);
            out.extend_from_slice(block);
        }
        Frame::RstStream { stream_id, status } => {
            control_header(out, TYPE_RST_STREAM, 0, 8)?;
            put32(out, stream_id & 0x7fff_ffff);
            put32(out, *status);
        }
        Frame::Settings { flags, entries } => {
            control_header(out, TYPE_SETTINGS, *flags, 4 + 8 * entries.len())?;
            put32(out, entries.len() as u32);
            for (f, id, value) in entries {
                put32(out, (u32::from(*f) << 24) | (id & 0x00ff_ffff));
                put32(out, *value);
            }
        }
        Frame::Ping { id } => {
            control_header(out, TYPE_PING, 0, 4)?;
            put32(out, *id);
        }
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            control_header(out, TYPE_GOAWAY, 0, 8)?;
            put32(out, last_good_stream_id & 0x7fff_ffff);
            put32(out, *status);
        }
        Frame::WindowUpdate { stream_id, delta } => {
            control_header(out, TYPE_WINDOW_UPDATE, 0, 8)?;
            put32(out, stream_id & 0x7fff_ffff);
            put32(out, delta & 0x7fff_ffff);
        }
        Frame::Data {
            stream_id,
            flags,
            payload,
        } => {
            if payload.len() > MAX_FRAME_PAYLOAD {
                return Err(FrameError::TooLarge(payload.len()));
            }
            put32(out, stream_id & 0x7fff_ffff);
            out.push(*flags);
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(payload);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(f: Frame) {
        let mut out = Vec::new();
        encode_frame(&f, &mut out).unwrap();
        let (back, used) = decode_frame(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(back, f);
        // Every strict prefix is "need more", never an error or a panic.
        for cut in 0..out.len() {
            assert_eq!(decode_frame(&out[..cut]), Ok(None), "prefix {cut} of {f:?}");
        }
    }

    #[test]
    fn every_frame_type_round_trips() {
        let b = Bytes::from_static(b"\x78\x9c compressed");
        for f in [
            Frame::SynStream {
                stream_id: 1,
                assoc_id: 0,
                priority: 7,
                flags: FLAG_FIN | FLAG_UNIDIRECTIONAL,
                block: b.clone(),
            },
            Frame::SynStream {
                stream_id: 0x7fff_ffff,
                assoc_id: 3,
                priority: 0,
                flags: 0,
                block: Bytes::new(),
            },
            Frame::SynReply {
                stream_id: 5,
                flags: 0,
                block: b.clone(),
            },
            Frame::Headers {
                stream_id: 9,
                flags: FLAG_FIN,
                block: b,
            },
            Frame::RstStream {
                stream_id: 3,
                status: RstStatus::Cancel as u32,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, 65536), (1, 4, 100)],
            },
            Frame::Settings {
                flags: FLAG_SETTINGS_CLEAR,
                entries: vec![],
            },
            Frame::Ping { id: 0xffff_ffff },
            Frame::GoAway {
                last_good_stream_id: 7,
                status: GoAwayStatus::ProtocolError as u32,
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 0x7fff_ffff,
            },
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                payload: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 11,
                flags: 0,
                payload: Bytes::from(vec![0xaa; 70_000]),
            },
        ] {
            round_trip(f);
        }
    }

    #[test]
    fn take_frame_splits_a_stream_and_skips_unknown_types() {
        let frames = [
            Frame::Ping { id: 3 },
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                payload: Bytes::from_static(b"abc"),
            },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 9,
            },
        ];
        let mut wire = Vec::new();
        encode_frame(&frames[0], &mut wire).unwrap();
        wire.extend_from_slice(&[0x80, 3, 0, 42, 0, 0, 0, 2, 7, 7]); // unknown type 42
        encode_frame(&frames[1], &mut wire).unwrap();
        encode_frame(&frames[2], &mut wire).unwrap();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        // Feed one byte at a time: partial frames are never an error.
        for b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(f) = take_frame(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert!(buf.is_empty());
        let mut bad = BytesMut::from(&[0u8, 0, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(
            take_frame(&mut bad),
            Err(FrameError::Invalid("DATA frame on stream 0"))
        );
        let mut big = BytesMut::from(&[0x80u8, 3, 0, 1, 0, 0x20, 0, 0][..]);
        assert_eq!(take_frame(&mut big), Err(FrameError::TooLarge(0x20_0000)));
    }

    #[test]
    fn known_byte_vectors() {
        let table: &[(Frame, &[u8])] = &[
            (
                Frame::Ping { id: 1 },
                &[0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1],
            ),
            (
                Frame::RstStream {
                    stream_id: 1,
                    status: 5,
                },
                &[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 5],
            ),
            (
                Frame::WindowUpdate {
                    stream_id: 2,
                    delta: 0x1_0000,
                },
                &[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 2, 0, 1, 0, 0],
            ),
            (
                Frame::GoAway {
                    last_good_stream_id: 3,
                    status: 0,
                },
                &[0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 0],
            ),
            (
                Frame::Data {
                    stream_id: 3,
                    flags: FLAG_FIN,
                    payload: Bytes::from_static(b"ab"),
                },
                &[0, 0, 0, 3, 1, 0, 0, 2, b'a', b'b'],
            ),
            (
                Frame::Settings {
                    flags: 0,
                    entries: vec![(0, 7, 0x10000)],
                },
                &[
                    0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0,
                ],
            ),
            (
                Frame::SynStream {
                    stream_id: 1,
                    assoc_id: 0,
                    priority: 0,
                    flags: 0,
                    block: Bytes::from_static(b"X"),
                },
                &[
                    0x80, 3, 0, 1, 0, 0, 0, 11, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, b'X',
                ],
            ),
        ];
        for (frame, wire) in table {
            let mut out = Vec::new();
            encode_frame(frame, &mut out).unwrap();
            assert_eq!(&out, wire, "{frame:?}");
            assert_eq!(decode_frame(wire).unwrap().unwrap().0, *frame);
        }
    }

    #[test]
    fn malformed_frames_are_errors() {
        let table: &[(&[u8], FrameError)] = &[
            (
                &[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1],
                FrameError::UnsupportedVersion(2),
            ),
            (
                &[0x80, 3, 0, 6, 0, 0, 0, 5, 0, 0, 0, 1, 0],
                FrameError::BadLength {
                    kind: "PING",
                    len: 5,
                },
            ),
            (
                &[0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1],
                FrameError::BadLength {
                    kind: "RST_STREAM",
                    len: 4,
                },
            ),
            (
                &[0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 9],
                FrameError::BadLength {
                    kind: "SETTINGS",
                    len: 4,
                },
            ),
            (
                &[0x80, 3, 0, 4, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff],
                FrameError::BadLength {
                    kind: "SETTINGS",
                    len: 4,
                },
            ),
            (
                &[0x80, 3, 0, 1, 0, 0, 0, 2, 0, 0],
                FrameError::BadLength {
                    kind: "SYN_STREAM",
                    len: 2,
                },
            ),
            (
                &[0x80, 3, 0, 1, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                FrameError::Invalid("SYN_STREAM stream id 0"),
            ),
            (
                &[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0],
                FrameError::Invalid("WINDOW_UPDATE delta 0"),
            ),
            (
                &[0, 0, 0, 0, 0, 0, 0, 0],
                FrameError::Invalid("DATA frame on stream 0"),
            ),
            (&[0x80, 3, 0, 42, 0, 0, 0, 0], FrameError::UnknownType(42)),
            (
                &[0, 0, 0, 1, 0, 0xff, 0xff, 0xff],
                FrameError::TooLarge(0xff_ffff),
            ),
        ];
        for (wire, want) in table {
            assert_eq!(decode_frame(wire).as_ref(), Err(want), "{wire:?}");
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_buffering() {
        // Only the 8-byte header is present: the size is rejected without waiting for it.
        let hdr = [0x80, 3, 0, 1, 0, 0x10, 0x00, 0x01];
        assert_eq!(
            decode_frame(&hdr),
            Err(FrameError::TooLarge(MAX_FRAME_PAYLOAD + 1))
        );
        let big = Frame::Data {
            stream_id: 1,
            flags: 0,
            payload: Bytes::from(vec![0; MAX_FRAME_PAYLOAD + 1]),
        };
        assert!(encode_frame(&big, &mut Vec::new()).is_err());
    }
}
