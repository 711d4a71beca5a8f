//! SPDY/3.1, the framing every Kubernetes client uses for exec, attach and port-forward:
//! [`frame`] (wire format), [`headers`] (zlib header blocks), [`flow`] (windows) and
//! [`session`] (streams multiplexed over one connection).

pub mod flow;
pub mod frame;
pub mod headers;
pub mod session;

pub use frame::{Frame, FrameError, RstStatus, decode_frame, encode_frame};
pub use headers::{HeaderDecoder, HeaderEncoder, HeaderError, Headers, header};
pub use session::{RecvHalf, Role, SendHalf, Session, SessionError, Stream};

/// Why [`decode_all`] stopped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamDecodeError {
    /// A frame was malformed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A header block was malformed.
    #[error(transparent)]
    Headers(#[from] HeaderError),
}

/// Decodes a captured byte stream of one direction of a session: every complete frame,
/// with header blocks decompressed in order (as a session does), stopping at the first
/// error, exactly as a session's reader cuts frames. Used by the fuzz targets and for
/// inspecting captures.
pub fn decode_all(data: &[u8]) -> (Vec<(Frame, Option<Headers>)>, Option<StreamDecodeError>) {
    let mut buf = bytes::BytesMut::from(data);
    let mut dec = HeaderDecoder::new();
    let mut out = Vec::new();
    loop {
        match frame::take_frame(&mut buf) {
            Ok(None) => return (out, None),
            Ok(Some(f)) => {
                let block = match &f {
                    Frame::SynStream { block, .. }
                    | Frame::SynReply { block, .. }
                    | Frame::Headers { block, .. } => Some(block.clone()),
                    _ => None,
                };
                let headers = match block {
                    Some(b) => match dec.decode(&b) {
                        Ok(h) => Some(h),
                        Err(e) => return (out, Some(e.into())),
                    },
                    None => None,
                };
                out.push((f, headers));
            }
            Err(e) => return (out, Some(e.into())),
        }
    }
}
