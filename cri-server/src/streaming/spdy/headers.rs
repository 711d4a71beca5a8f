//! SPDY/3 header blocks (section 2.6.10): a count of name/value pairs, each length-prefixed,
//! compressed with one zlib stream per direction per session, primed with the fixed
//! SPDY/3 dictionary and sync-flushed at the end of every block.

use std::sync::LazyLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Largest decompressed header block accepted (kubectl sends a few hundred bytes).
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Length-prefixed header names at the start of the SPDY/3 dictionary (section 2.6.10.1).
const DICT_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The unprefixed tail of the SPDY/3 dictionary.
const DICT_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 zlib dictionary, 1423 bytes.
pub static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut d = Vec::with_capacity(1423);
    for w in DICT_WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(DICT_TAIL.as_bytes());
    d
});

/// Header name/value pairs in wire order; a value holding several values separates them
/// with NUL bytes, as the spec says.
pub type Headers = Vec<(String, String)>;

/// Returns the first value of header `name` (names are lower case on the wire).
pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

/// Why a header block could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    /// zlib reported corrupt input or a dictionary other than SPDY/3's.
    #[error("header block decompression failed: {0}")]
    Zlib(String),
    /// The decompressed block is larger than [`MAX_HEADER_BLOCK`].
    #[error("header block exceeds {MAX_HEADER_BLOCK} bytes")]
    TooLarge,
    /// The decompressed block ends inside a field.
    #[error("header block is truncated")]
    Truncated,
    /// A name that is empty, not lower case, or a name/value that is not UTF-8.
    #[error("invalid header field: {0}")]
    InvalidField(&'static str),
    /// Bytes left over after the declared pairs.
    #[error("header block has trailing bytes")]
    Trailing,
}

/// Serialises `headers` into an uncompressed SPDY/3 header block.
pub fn encode_block(headers: &Headers) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (n, v) in headers {
        out.extend_from_slice(&(n.len() as u32).to_be_bytes());
        out.extend_from_slice(n.to_ascii_lowercase().as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Parses an uncompressed SPDY/3 header block.
pub fn decode_block(mut b: &[u8]) -> Result<Headers, HeaderError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], HeaderError> {
        if b.len() < n {
            return Err(HeaderError::Truncated);
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn len(b: &mut &[u8]) -> Result<usize, HeaderError> {
        let x = take(b, 4)?;
        Ok(u32::from_be_bytes([x[0], x[1], x[2], x[3]]) as usize)
    }
    let count = len(&mut b)?;
    // Each pair takes at least 8 bytes: a huge count in a small block is truncated input.
    if count > b.len() / 8 {
        return Err(HeaderError::Truncated);
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let n = len(&mut b)?;
        let name = take(&mut b, n)?;
        let n = len(&mut b)?;
        let value = take(&mut b, n)?;
        if name.is_empty() {
            return Err(HeaderError::InvalidField("empty name"));
        }
        if name.iter().any(|c| c.is_ascii_uppercase()) {
            return Err(HeaderError::InvalidField("upper-case name"));
        }
        let name = std::str::from_utf8(name)
            .map_err(|_| HeaderError::InvalidField("name is not UTF-8"))?;
        let value = std::str::from_utf8(value)
            .map_err(|_| HeaderError::InvalidField("value is not UTF-8"))?;
        out.push((name.to_owned(), value.to_owned()));
    }
    if !b.is_empty() {
        return Err(HeaderError::Trailing);
    }
    Ok(out)
}

/// Compresses outgoing header blocks; one per session direction.
pub struct HeaderEncoder {
    z: Compress,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderEncoder {
    /// A fresh compression context primed with the SPDY/3 dictionary.
    pub fn new() -> Self {
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(&DICTIONARY)
            .expect("setting a dictionary on a fresh zlib stream cannot fail");
        Self { z }
    }

    /// Compresses one header block (sync flush, so the peer can decode it at once).
    pub fn encode(&mut self, headers: &Headers) -> Vec<u8> {
        let raw = encode_block(headers);
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        let mut input = &raw[..];
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.z.total_in();
            self.z
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("compressing into a growing buffer cannot fail");
            input = &input[(self.z.total_in() - before) as usize..];
            // A sync flush is complete when input is used up and zlib left spare room.
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// Decompresses incoming header blocks; one per session direction.
pub struct HeaderDecoder {
    z: Decompress,
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecoder {
    /// A fresh decompression context (the dictionary is supplied when zlib asks for it).
    pub fn new() -> Self {
        Self {
            z: Decompress::new(true),
        }
    }

    /// Decompresses and parses one header block. An error poisons the session's zlib
    /// stream, so the caller must end the session.
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, HeaderError> {
        let mut out: Vec<u8> = Vec::with_capacity(1024);
        let mut input = block;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(HeaderError::TooLarge);
                }
                out.reserve((out.len()).min(MAX_HEADER_BLOCK - out.len()).max(1024));
            }
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let res = self
                .z
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            input = &input[(self.z.total_in() - in0) as usize..];
            match res {
                Ok(Status::StreamEnd) => {
                    return Err(HeaderError::Zlib("zlib stream ended".into()));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| HeaderError::Zlib(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(HeaderError::Zlib(e.to_string())),
            }
            let progressed = self.z.total_in() != in0 || self.z.total_out() != out0;
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if !progressed && out.len() < out.capacity() {
                // zlib wants more input than the block holds.
                return Err(HeaderError::Truncated);
            }
        }
        if out.len() > MAX_HEADER_BLOCK {
            return Err(HeaderError::TooLarge);
        }
        decode_block(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn dictionary_is_the_spdy3_one() {
        assert_eq!(DICTIONARY.len(), 1423);
        // The zlib dictionary id (Adler-32) every SPDY/3 peer announces in its header.
        let mut a: u32 = 1;
        let mut b: u32 = 0;
        for &c in DICTIONARY.iter() {
            a = (a + u32::from(c)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, DICT_ADLER32);
    }

    /// Adler-32 of the SPDY/3 dictionary, computed independently with C zlib.
    const DICT_ADLER32: u32 = ADLER_FROM_C_ZLIB;

    #[test]
    fn block_round_trip_across_a_session() {
        let mut enc = HeaderEncoder::new();
        let mut dec = HeaderDecoder::new();
        let blocks = [
            h(&[("streamtype", "error")]),
            h(&[
                ("streamtype", "stdout"),
                ("port", "8080"),
                ("requestid", "0"),
            ]),
            h(&[]),
            h(&[("x-big", &"v".repeat(20_000))]),
            h(&[("streamtype", "error")]),
        ];
        for b in &blocks {
            let wire = enc.encode(b);
            assert_eq!(&dec.decode(&wire).unwrap(), b);
        }
        // The first block carries the zlib header with FDICT and the dictionary id.
        let first = HeaderEncoder::new().encode(&blocks[0]);
        assert_eq!(first[0], 0x78);
        assert_ne!(first[1] & 0x20, 0, "FDICT flag");
        assert_eq!(
            u32::from_be_bytes([first[2], first[3], first[4], first[5]]),
            DICT_ADLER32
        );
    }

    #[test]
    fn decodes_blocks_compressed_by_c_zlib() {
        // Two consecutive blocks of one session compressed by C zlib (level 9, zdict =
        // SPDY/3 dictionary, Z_SYNC_FLUSH after each), as Go's spdy framer does.
        let mut dec = HeaderDecoder::new();
        assert_eq!(
            dec.decode(C_ZLIB_BLOCK_1).unwrap(),
            h(&[("streamtype", "error"), ("port", "80")])
        );
        assert_eq!(
            dec.decode(C_ZLIB_BLOCK_2).unwrap(),
            h(&[("streamtype", "data"), ("port", "80")])
        );
    }

    include!("headers_vectors.rs");

    #[test]
    fn encodes_blocks_c_zlib_decodes() {
        // Our two consecutive blocks, byte for byte; CPython's zlib (C zlib, zdict = SPDY/3
        // dictionary) inflates them to the expected blocks. If a zlib-rs upgrade changes
        // these bytes, re-check them that way before updating.
        let mut enc = HeaderEncoder::new();
        let a = enc.encode(&h(&[("streamtype", "error"), ("port", "80")]));
        let b = enc.encode(&h(&[("streamtype", "data")]));
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(&a),
            "78bbe3c6a7c202e50e703a2b294a4dcc851625aca9a0808614cb45a024cc646100000000ffff"
        );
        assert_eq!(hex(&b), "62606060c450082a731201000000ffff");
    }

    #[test]
    fn malformed_blocks_are_errors() {
        assert_eq!(decode_block(&[0, 0, 0]), Err(HeaderError::Truncated));
        assert_eq!(
            decode_block(&[0xff, 0xff, 0xff, 0xff]),
            Err(HeaderError::Truncated)
        );
        assert_eq!(
            decode_block(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(HeaderError::InvalidField("empty name"))
        );
        assert_eq!(
            decode_block(&[0, 0, 0, 1, 0, 0, 0, 1, b'A', 0, 0, 0, 0]),
            Err(HeaderError::InvalidField("upper-case name"))
        );
        assert_eq!(
            decode_block(&[0, 0, 0, 1, 0, 0, 0, 1, b'a', 0, 0, 0, 9, b'x']),
            Err(HeaderError::Truncated)
        );
        assert_eq!(decode_block(&[0, 0, 0, 0, 1]), Err(HeaderError::Trailing));
        // Not zlib at all.
        assert!(matches!(
            HeaderDecoder::new().decode(b"not zlib data at all"),
            Err(HeaderError::Zlib(_))
        ));
        // A truncated compressed block.
        let wire = HeaderEncoder::new().encode(&h(&[("streamtype", "stdin")]));
        assert!(
            HeaderDecoder::new()
                .decode(&wire[..wire.len() - 6])
                .is_err()
        );
    }

    #[test]
    fn oversized_header_block_is_refused() {
        let mut enc = HeaderEncoder::new();
        // Compresses to a few hundred bytes, inflates past the limit (a zip bomb).
        let wire = enc.encode(&h(&[("x", &"a".repeat(MAX_HEADER_BLOCK + 10))]));
        assert!(wire.len() < 4096);
        assert_eq!(
            HeaderDecoder::new().decode(&wire),
            Err(HeaderError::TooLarge)
        );
    }
}
