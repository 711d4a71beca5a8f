//! Fuzzes the SPDY/3.1 frame parser and header-block decompression with arbitrary bytes
//! (`cargo +nightly fuzz run spdy_frames` from cri-server/). The stable-toolchain
//! counterpart is cri-server/tests/spdy_fuzz.rs.
#![no_main]

use berth_cri::streaming::spdy::{HeaderDecoder, decode_all, headers::decode_block};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_all(data);
    let _ = decode_block(data);
    let _ = HeaderDecoder::new().decode(data);
});
