//! Helpers shared by the integration tests: a raw tar builder that can write the
//! hostile names the `tar` crate's safe setters refuse, and root checks.
#![allow(dead_code)]

use std::io::Write;

use tar::{EntryType, Header};

/// Fail (never skip) when not root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these integration tests create devices, chown and mount: run them as root"
    );
}

/// Builds a layer tar entry by entry, with raw (unchecked) names.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: EntryType, name: &str, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(size);
        assert!(name.len() < 100, "test names must fit the old header");
        let bytes = h.as_mut_bytes();
        bytes[..100].fill(0);
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        h
    }

    fn set_link(h: &mut Header, target: &str) {
        assert!(target.len() < 100);
        let bytes = h.as_mut_bytes();
        bytes[157..257].fill(0);
        bytes[157..157 + target.len()].copy_from_slice(target.as_bytes());
    }

    /// A regular file.
    pub fn file(mut self, name: &str, data: &[u8]) -> Self {
        self = self.file_full(name, data, 0o644, 0, 0);
        self
    }

    /// A regular file with mode and owner.
    pub fn file_full(mut self, name: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(EntryType::Regular, name, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        self.b.append(&h, data).expect("append file");
        self
    }

    /// A directory.
    pub fn dir(mut self, name: &str, mode: u32) -> Self {
        let mut h = Self::header(EntryType::Directory, name, mode, 0);
        h.set_cksum();
        self.b.append(&h, &[][..]).expect("append dir");
        self
    }

    /// A symlink.
    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        let mut h = Self::header(EntryType::Symlink, name, 0o777, 0);
        Self::set_link(&mut h, target);
        h.set_cksum();
        self.b.append(&h, &[][..]).expect("append symlink");
        self
    }

    /// A hardlink.
    pub fn hardlink(mut self, name: &str, target: &str) -> Self {
        let mut h = Self::header(EntryType::Link, name, 0o644, 0);
        Self::set_link(&mut h, target);
        h.set_cksum();
        self.b.append(&h, &[][..]).expect("append hardlink");
        self
    }

    /// A character device, block device or fifo.
    pub fn node(mut self, name: &str, kind: EntryType, major: u32, minor: u32) -> Self {
        let mut h = Self::header(kind, name, 0o640, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).expect("append node");
        self
    }

    /// PAX records for the next entry (xattrs as `SCHILY.xattr.NAME`).
    pub fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        self.b
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .expect("append pax");
        self
    }

    /// The finished, uncompressed tar.
    pub fn tar(self) -> Vec<u8> {
        self.b.into_inner().expect("finish tar")
    }

    /// The finished tar, gzip-compressed.
    pub fn gzip(self) -> Vec<u8> {
        let tar = self.tar();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    }

    /// The finished tar, zstd-compressed.
    pub fn zstd(self) -> Vec<u8> {
        zstd::stream::encode_all(&self.tar()[..], 3).unwrap()
    }
}

/// The content of Debian's busybox-static binary (real file content for layers).
pub fn busybox() -> Vec<u8> {
    std::fs::read("/bin/busybox").expect("/bin/busybox (apt-get install busybox-static)")
}
