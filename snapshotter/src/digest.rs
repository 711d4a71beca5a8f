//! Content digests as the OCI image spec defines them (`descriptor.md#digests`):
//! `algorithm ":" encoded`, here limited to the registered `sha256` and `sha512`
//! with their exact lowercase-hex lengths. Anything else is refused, so a digest
//! can be used as a file name without further checks.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// Why a digest string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// No `:` separating algorithm and encoded part.
    #[error("digest {0:?}: missing ':' between algorithm and hex")]
    MissingSeparator(String),
    /// Algorithm other than sha256 or sha512.
    #[error("digest {0:?}: unsupported algorithm (only sha256 and sha512)")]
    UnsupportedAlgorithm(String),
    /// Hex part has the wrong length for its algorithm.
    #[error("digest {digest:?}: encoded part must be {expected} hex characters")]
    BadLength {
        /// The refused input (truncated to 200 characters).
        digest: String,
        /// The length the algorithm requires.
        expected: usize,
    },
    /// Hex part holds something other than `[0-9a-f]`.
    #[error("digest {0:?}: encoded part must be lowercase hex")]
    BadHex(String),
}

/// A registered digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, 64 hex characters.
    Sha256,
    /// SHA-512, 128 hex characters.
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings and in the blob directory layout.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Number of hex characters of the encoded part.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Parse an algorithm name (`sha256`, `sha512`).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// A fresh hasher for this algorithm.
    pub fn digester(self) -> Digester {
        match self {
            Algorithm::Sha256 => Digester::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Digester::Sha512(sha2::Sha512::new()),
        }
    }
}

/// A validated content digest, e.g. `sha256:e3b0c442…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The algorithm part.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded (lowercase hex) part; safe to use as a file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// SHA-256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, data)
    }

    /// Digest of `data` with `algorithm`.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut d = algorithm.digester();
        d.update(data);
        d.finish()
    }

    /// Build a digest from an algorithm and already-validated hex.
    fn from_parts(algorithm: Algorithm, hex: &str) -> Result<Digest, DigestError> {
        let full = || truncate(&format!("{}:{}", algorithm.as_str(), hex));
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::BadLength {
                digest: full(),
                expected: algorithm.hex_len(),
            });
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::BadHex(full()));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// A verifier that checks a stream against this digest.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            expected: self.clone(),
            digester: self.algorithm.digester(),
            size: 0,
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::MissingSeparator(truncate(s)))?;
        let algorithm = Algorithm::from_name(alg)
            .ok_or_else(|| DigestError::UnsupportedAlgorithm(truncate(s)))?;
        Digest::from_parts(algorithm, hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher producing a [`Digest`].
#[derive(Clone)]
pub enum Digester {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl Digester {
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Digester::Sha256(h) => h.update(data),
            Digester::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Digester::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Digester::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

/// Checks a byte stream against an expected digest; feed it with `write`.
pub struct Verifier {
    expected: Digest,
    digester: Digester,
    size: u64,
}

impl Verifier {
    /// Bytes seen so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest of what was seen, and whether it matches the expected one.
    pub fn finish(self) -> (Digest, bool) {
        let got = self.digester.finish();
        let ok = got == self.expected;
        (got, ok)
    }
}

impl Write for Verifier {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.digester.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes and counts everything read through it.
pub struct DigestReader<R> {
    inner: R,
    digester: Digester,
    size: u64,
}

impl<R: Read> DigestReader<R> {
    /// Wrap `inner`, hashing with `algorithm`.
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        DigestReader {
            inner,
            digester: algorithm.digester(),
            size: 0,
        }
    }

    /// Bytes read so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Digest and size of what was read.
    pub fn finish(self) -> (Digest, u64) {
        (self.digester.finish(), self.size)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct DigestWriter<W> {
    inner: W,
    digester: Digester,
    size: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wrap `inner`, hashing with `algorithm`.
    pub fn new(inner: W, algorithm: Algorithm) -> Self {
        DigestWriter {
            inner,
            digester: algorithm.digester(),
            size: 0,
        }
    }

    /// Digest and size of what was written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (self.digester.finish(), self.size, self.inner)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_table() {
        let ok = [
            EMPTY256.to_string(),
            format!("sha512:{}", "a".repeat(128)),
            format!("sha256:{}", "0123456789abcdef".repeat(4)),
        ];
        for s in &ok {
            let d: Digest = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(&d.to_string(), s);
        }
        let bad = [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "sha256:../../../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85/",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8\u{e9}",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
            " sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b78",
        ];
        for s in bad {
            assert!(s.parse::<Digest>().is_err(), "accepted {s:?}");
        }
    }

    #[test]
    fn hashing_and_verifier() {
        assert_eq!(Digest::sha256_of(b"").to_string(), EMPTY256);
        let d = Digest::sha256_of(b"hello");
        let mut v = d.verifier();
        v.write_all(b"hel").unwrap();
        v.write_all(b"lo").unwrap();
        assert_eq!(v.size(), 5);
        assert!(v.finish().1);
        let mut v = d.verifier();
        v.write_all(b"hellO").unwrap();
        assert!(!v.finish().1);
        let sha512 = Digest::of(Algorithm::Sha512, b"hello");
        assert_eq!(sha512.hex().len(), 128);
    }

    #[test]
    fn serde_as_string() {
        let d: Digest = EMPTY256.parse().unwrap();
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(j, format!("\"{EMPTY256}\""));
        assert_eq!(serde_json::from_str::<Digest>(&j).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:xyz\"").is_err());
        assert!(serde_json::from_str::<Digest>("42").is_err());
    }

    #[test]
    fn reader_and_writer() {
        let mut r = DigestReader::new(&b"abcdef"[..], Algorithm::Sha256);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        let (d, n) = r.finish();
        assert_eq!((d, n), (Digest::sha256_of(b"abcdef"), 6));
        let mut w = DigestWriter::new(Vec::new(), Algorithm::Sha256);
        w.write_all(b"abcdef").unwrap();
        let (d, n, inner) = w.finish();
        assert_eq!(
            (d, n, inner),
            (Digest::sha256_of(b"abcdef"), 6, b"abcdef".to_vec())
        );
    }
}
