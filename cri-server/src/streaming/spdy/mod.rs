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
