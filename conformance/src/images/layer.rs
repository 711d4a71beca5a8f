//! Deterministic image layers: a tar stream built from a list of entries with fixed
//! ownership and mtimes, compressed with gzip or zstd, with both digests computed.

use std::io::Write;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// The mtime every entry of every fixture layer carries (2024-01-01T00:00:00Z), so the
/// digests of the fixtures never change between builds.
pub const FIXED_MTIME: u64 = 1_704_067_200;

/// One entry of a layer tar, in the order it is written.
#[derive(Clone, Debug)]
pub enum Entry {
    /// A directory.
    Dir { path: String, mode: u32 },
    /// A regular file with its whole content.
    File {
        path: String,
        mode: u32,
        uid: u64,
        gid: u64,
        data: Vec<u8>,
    },
    /// A symbolic link `path -> target`.
    Symlink { path: String, target: String },
    /// A hard link `path` to the earlier entry `target` (a path in the same layer).
    Hardlink { path: String, target: String },
}

impl Entry {
    /// A directory owned by root.
    pub fn dir(path: &str, mode: u32) -> Self {
        Entry::Dir {
            path: path.to_owned(),
            mode,
        }
    }

    /// A file owned by root.
    pub fn file(path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        Entry::File {
            path: path.to_owned(),
            mode,
            uid: 0,
            gid: 0,
            data: data.into(),
        }
    }

    /// A symbolic link.
    pub fn symlink(path: &str, target: &str) -> Self {
        Entry::Symlink {
            path: path.to_owned(),
            target: target.to_owned(),
        }
    }

    /// A hard link to an earlier entry of the same layer.
    pub fn hardlink(path: &str, target: &str) -> Self {
        Entry::Hardlink {
            path: path.to_owned(),
            target: target.to_owned(),
        }
    }

    /// An OCI whiteout deleting `name` in directory `dir` of the lower layers.
    pub fn whiteout(dir: &str, name: &str) -> Self {
        Entry::file(&join(dir, &format!(".wh.{name}")), 0o644, Vec::new())
    }

    /// An OCI opaque-directory marker: `dir` hides everything the lower layers had in it.
    pub fn opaque(dir: &str) -> Self {
        Entry::file(&join(dir, ".wh..wh..opq"), 0o644, Vec::new())
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{}/{name}", dir.trim_end_matches('/'))
    }
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`tar+gzip`).
    Gzip,
    /// zstd (`tar+zstd`).
    Zstd,
}

/// A finished layer: the compressed blob and what a manifest and config need about it.
pub struct Layer {
    /// The compressed bytes (the blob).
    pub blob: Vec<u8>,
    /// `sha256:` digest of the blob.
    pub digest: String,
    /// `sha256:` digest of the uncompressed tar (the config's diff_id).
    pub diff_id: String,
    /// The compression used.
    pub compression: Compression,
}

impl Layer {
    /// The OCI media type of this layer.
    pub fn oci_media_type(&self) -> &'static str {
        match self.compression {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Writes `entries` as an uncompressed tar with fixed metadata.
pub fn tar_bytes(entries: &[Entry]) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(FIXED_MTIME);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::Dir { path, mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty())
                    .with_context(|| format!("tar dir {path}"))?;
            }
            Entry::File {
                path,
                mode,
                uid,
                gid,
                data,
            } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_uid(*uid);
                h.set_gid(*gid);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data.as_slice())
                    .with_context(|| format!("tar file {path}"))?;
            }
            Entry::Symlink { path, target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target)
                    .with_context(|| format!("tar symlink {path}"))?;
            }
            Entry::Hardlink { path, target } => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, path, target)
                    .with_context(|| format!("tar hardlink {path}"))?;
            }
        }
    }
    b.into_inner().context("finish tar")
}

/// Compresses `tar` and computes both digests.
pub fn compress(tar: &[u8], compression: Compression) -> anyhow::Result<Layer> {
    let blob = match compression {
        Compression::Gzip => {
            // GzBuilder writes mtime 0 and no file name: the output depends only on input.
            let mut enc = flate2::GzBuilder::new()
                .operating_system(255)
                .write(Vec::new(), flate2::Compression::new(6));
            enc.write_all(tar).context("gzip layer")?;
            enc.finish().context("gzip layer")?
        }
        Compression::Zstd => zstd::bulk::compress(tar, 3).context("zstd layer")?,
    };
    Ok(Layer {
        digest: sha256(&blob),
        diff_id: sha256(tar),
        blob,
        compression,
    })
}

/// Builds a layer from entries in one step.
pub fn build(entries: &[Entry], compression: Compression) -> anyhow::Result<Layer> {
    compress(&tar_bytes(entries)?, compression)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn layers_are_deterministic_and_digests_match_content() {
        let entries = vec![
            Entry::dir("a", 0o755),
            Entry::file("a/f", 0o644, b"hello".to_vec()),
            Entry::symlink("a/s", "f"),
            Entry::hardlink("a/h", "a/f"),
            Entry::whiteout("a", "gone"),
            Entry::opaque("a"),
        ];
        for c in [Compression::Gzip, Compression::Zstd] {
            let one = build(&entries, c).unwrap();
            let two = build(&entries, c).unwrap();
            assert_eq!(one.digest, two.digest);
            assert_eq!(one.diff_id, two.diff_id);
            assert_eq!(one.digest, sha256(&one.blob));
            let tar = match c {
                Compression::Gzip => {
                    let mut v = Vec::new();
                    flate2::read::GzDecoder::new(one.blob.as_slice())
                        .read_to_end(&mut v)
                        .unwrap();
                    v
                }
                Compression::Zstd => zstd::stream::decode_all(one.blob.as_slice()).unwrap(),
            };
            assert_eq!(one.diff_id, sha256(&tar));
            let mut ar = tar::Archive::new(tar.as_slice());
            let names: Vec<(String, u64)> = ar
                .entries()
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.path().unwrap().to_string_lossy().into_owned(),
                        e.header().mtime().unwrap(),
                    )
                })
                .collect();
            let paths: Vec<&str> = names.iter().map(|(p, _)| p.as_str()).collect();
            assert_eq!(
                paths,
                ["a", "a/f", "a/s", "a/h", "a/.wh.gone", "a/.wh..wh..opq"]
            );
            assert!(names.iter().all(|(_, m)| *m == FIXED_MTIME));
        }
    }
}
