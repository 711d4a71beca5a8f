//! The fixture images, made from the host's busybox-static (`/bin/busybox`).
//!
//! | ref name | what it is |
//! |---|---|
//! | `busybox` | busybox + applet symlinks, `/etc/passwd`, `/etc/group`; Cmd `sh` |
//! | `user-uid` | User `1000`; Cmd `id` |
//! | `user-name` | User `berth` (uid 1000, gid 1000 in /etc/passwd); Cmd `id` |
//! | `user-group` | User `berth:berthgrp` (gid 2000 in /etc/group); Cmd `id` |
//! | `entrypoint` | Entrypoint `/bin/echo entrypoint`, Cmd `cmd` → prints `entrypoint cmd` |
//! | `httpd` | busybox httpd on port [`HTTPD_PORT`], serving `/www/index.html` = [`HTTPD_PAGE`] |
//! | `layers` | 3 layers with whiteouts, an opaque dir, dir↔file replacement, hardlinks, symlinks (see conformance/tests/images.rs) |
//! | `zstd` | busybox base (gzip) + a zstd layer with `/zstd/hello` = `hello from zstd\n` |
//! | `docker-schema2` | busybox as a Docker schema2 manifest with Docker media types |
//! | `multiarch` | OCI index: linux/amd64 and linux/arm64/v8 (same layer bytes, own configs) |
//! | `large` | only with `--large`: busybox base + 4 layers, 4000 files, about 220 MB |
//!
//! All entries have mtime 2024-01-01T00:00:00Z and uid/gid 0 unless noted, so the digests
//! are the same on every build with the same busybox binary.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use super::layer::{self, Compression, Entry, Layer};
use super::layout::{AMD64, LayoutWriter, Platform};

/// The port the `httpd` fixture listens on.
pub const HTTPD_PORT: u16 = 8080;
/// The page the `httpd` fixture serves at `/` (and `/index.html`).
pub const HTTPD_PAGE: &str = "berth fixture httpd\n";
/// The busybox binary the fixtures are made from (Debian's busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";

/// `PATH` of every fixture.
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn base_config(cmd: &[&str]) -> Value {
    json!({ "Env": [PATH_ENV], "Cmd": cmd, "WorkingDir": "/" })
}

/// Entries of the busybox base layer.
pub fn base_entries(busybox: &[u8], applets: &[String]) -> Vec<Entry> {
    let mut e = vec![
        Entry::dir("bin", 0o755),
        Entry::dir("dev", 0o755),
        Entry::dir("etc", 0o755),
        Entry::dir("home", 0o755),
        Entry::dir("proc", 0o555),
        Entry::dir("root", 0o700),
        Entry::dir("sbin", 0o755),
        Entry::dir("sys", 0o555),
        Entry::dir("tmp", 0o1777),
        Entry::dir("usr", 0o755),
        Entry::dir("usr/bin", 0o755),
        Entry::dir("usr/sbin", 0o755),
        Entry::dir("var", 0o755),
        Entry::file("bin/busybox", 0o755, busybox.to_vec()),
        Entry::file(
            "etc/passwd",
            0o644,
            "root:x:0:0:root:/root:/bin/sh\n\
             berth:x:1000:1000:berth:/home/berth:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        Entry::file(
            "etc/group",
            0o644,
            "root:x:0:\nberth:x:1000:\nberthgrp:x:2000:berth\nnogroup:x:65534:\n",
        ),
    ];
    e.push(Entry::File {
        path: "home/berth/.profile".into(),
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        data: b"# berth fixture\n".to_vec(),
    });
    for a in applets {
        if a != "bin/busybox" {
            e.push(Entry::symlink(a, "/bin/busybox"));
        }
    }
    // home/berth is created implicitly by the file above; give it an explicit entry first.
    e.insert(4, Entry::dir("home/berth", 0o755));
    e
}

/// Applet paths (`bin/sh`, `usr/bin/wc`, …) of the busybox binary, sorted.
pub fn applets(busybox: &Path) -> anyhow::Result<Vec<String>> {
    let out = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .with_context(|| format!("run {} --list-full", busybox.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} --list-full failed",
        busybox.display()
    );
    let text = String::from_utf8(out.stdout).context("busybox --list-full output")?;
    let allowed = ["bin/", "sbin/", "usr/bin/", "usr/sbin/"];
    let mut v: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| {
            allowed
                .iter()
                .any(|p| l.strip_prefix(p).is_some_and(|n| !n.contains('/')))
        })
        .map(str::to_owned)
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

fn layers_l2() -> Vec<Entry> {
    vec![
        Entry::dir("data", 0o755),
        Entry::file("data/keep", 0o644, "keep\n"),
        Entry::file("data/remove-me", 0o644, "remove me\n"),
        Entry::hardlink("data/hardlink", "data/keep"),
        Entry::symlink("data/symlink", "keep"),
        Entry::dir("data/dir-to-file", 0o755),
        Entry::file("data/dir-to-file/inner", 0o644, "inner\n"),
        Entry::file("data/file-to-dir", 0o644, "a file\n"),
        Entry::dir("data/opaque", 0o755),
        Entry::file("data/opaque/old-a", 0o644, "old a\n"),
        Entry::dir("data/opaque/sub", 0o755),
        Entry::file("data/opaque/sub/old-b", 0o644, "old b\n"),
    ]
}

fn layers_l3() -> Vec<Entry> {
    vec![
        Entry::dir("data", 0o755),
        Entry::whiteout("data", "remove-me"),
        Entry::dir("data/opaque", 0o755),
        Entry::opaque("data/opaque"),
        Entry::file("data/opaque/new", 0o644, "new\n"),
        Entry::file("data/dir-to-file", 0o644, "now a file\n"),
        Entry::dir("data/file-to-dir", 0o755),
        Entry::file("data/file-to-dir/inner", 0o644, "inner\n"),
        Entry::file("data/l3file", 0o644, "layer three\n"),
        Entry::hardlink("data/l3link", "data/l3file"),
        Entry::symlink("data/abslink", "/data/keep"),
    ]
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn fill(seed: u64, len: usize, compressible: bool) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    if compressible {
        let line = format!("berth large fixture file {seed} ");
        while v.len() < len {
            v.extend_from_slice(line.as_bytes());
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            v.extend_from_slice(
                format!("{:x}\n", x.wrapping_mul(0x2545_F491_4F6C_DD1D)).as_bytes(),
            );
        }
        v.truncate(len);
    } else {
        while v.len() < len {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        v.truncate(len);
    }
    v
}

/// Entries of layer `n` of the large image: 1000 files in 20 dirs, about 55 MB.
fn large_entries(n: u64) -> Vec<Entry> {
    let mut e = vec![Entry::dir("large", 0o755)];
    let top = format!("large/layer{n}");
    e.push(Entry::dir(&top, 0o755));
    for d in 0..20u64 {
        let dir = format!("{top}/d{d:02}");
        e.push(Entry::dir(&dir, 0o755));
        for f in 0..50u64 {
            let seed = n * 1_000_000 + d * 1000 + f;
            // sizes from 1 KiB to 110 KiB, about 56 KiB on average
            let len = 1024 + ((seed * 7919) % 110) as usize * 1024;
            e.push(Entry::file(
                &format!("{dir}/f{f:03}"),
                0o644,
                fill(seed, len, f % 2 == 0),
            ));
        }
    }
    e
}

/// Builds every fixture into the OCI layout at `dir`; the large one only if `large`.
pub fn build_all(dir: &Path, large: bool) -> anyhow::Result<Vec<String>> {
    let bb_path = Path::new(BUSYBOX);
    let busybox = std::fs::read(bb_path)
        .with_context(|| format!("read {BUSYBOX} (install Debian's busybox-static)"))?;
    let applets = applets(bb_path)?;
    let base = layer::build(&base_entries(&busybox, &applets), Compression::Gzip)?;
    let mut w = LayoutWriter::create(dir)?;
    let mut names = Vec::new();
    let mut add = |w: &mut LayoutWriter, name: &str, d| {
        w.add_ref(name, &d);
        names.push(name.to_owned());
    };

    let d = w.put_image(&[&base], base_config(&["sh"]), &AMD64, false)?;
    add(&mut w, "busybox", d);
    for (name, user) in [
        ("user-uid", "1000"),
        ("user-name", "berth"),
        ("user-group", "berth:berthgrp"),
    ] {
        let mut cfg = base_config(&["id"]);
        cfg["User"] = json!(user);
        let d = w.put_image(&[&base], cfg, &AMD64, false)?;
        add(&mut w, name, d);
    }
    let mut cfg = base_config(&["cmd"]);
    cfg["Entrypoint"] = json!(["/bin/echo", "entrypoint"]);
    let d = w.put_image(&[&base], cfg, &AMD64, false)?;
    add(&mut w, "entrypoint", d);

    let www = layer::build(
        &[
            Entry::dir("www", 0o755),
            Entry::file("www/index.html", 0o644, HTTPD_PAGE),
        ],
        Compression::Gzip,
    )?;
    let port = HTTPD_PORT.to_string();
    let mut cfg = base_config(&["/usr/sbin/httpd", "-f", "-v", "-p", &port, "-h", "/www"]);
    cfg["ExposedPorts"] = json!({ format!("{HTTPD_PORT}/tcp"): {} });
    let d = w.put_image(&[&base, &www], cfg, &AMD64, false)?;
    add(&mut w, "httpd", d);

    let l2 = layer::build(&layers_l2(), Compression::Gzip)?;
    let l3 = layer::build(&layers_l3(), Compression::Gzip)?;
    let d = w.put_image(&[&base, &l2, &l3], base_config(&["sh"]), &AMD64, false)?;
    add(&mut w, "layers", d);

    let z = layer::build(
        &[
            Entry::dir("zstd", 0o755),
            Entry::file("zstd/hello", 0o644, "hello from zstd\n"),
        ],
        Compression::Zstd,
    )?;
    let d = w.put_image(
        &[&base, &z],
        base_config(&["cat", "/zstd/hello"]),
        &AMD64,
        false,
    )?;
    add(&mut w, "zstd", d);

    let d = w.put_image(&[&base], base_config(&["sh"]), &AMD64, true)?;
    add(&mut w, "docker-schema2", d);

    let arm = Platform {
        arch: "arm64",
        variant: Some("v8"),
    };
    let amd = w.put_image(&[&base], base_config(&["sh"]), &AMD64, false)?;
    let armd = w.put_image(&[&base], base_config(&["sh"]), &arm, false)?;
    let d = w.put_index(&[(amd, AMD64), (armd, arm)])?;
    add(&mut w, "multiarch", d);

    if large {
        let mut ls: Vec<Layer> = Vec::new();
        for n in 0..4 {
            ls.push(layer::build(&large_entries(n), Compression::Gzip)?);
        }
        let mut refs: Vec<&Layer> = vec![&base];
        refs.extend(ls.iter());
        let d = w.put_image(&refs, base_config(&["sh"]), &AMD64, false)?;
        add(&mut w, "large", d);
    }
    w.finish()?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_deterministic_and_sized() {
        for c in [true, false] {
            assert_eq!(fill(7, 5000, c), fill(7, 5000, c));
            assert_eq!(fill(7, 5000, c).len(), 5000);
            assert_ne!(fill(7, 5000, c), fill(8, 5000, c));
        }
    }

    #[test]
    fn large_image_is_big_enough() {
        let total: usize = (0..4)
            .map(|n| {
                large_entries(n)
                    .iter()
                    .map(|e| match e {
                        Entry::File { data, .. } => data.len(),
                        _ => 0,
                    })
                    .sum::<usize>()
            })
            .sum();
        assert!(total >= 200 * 1024 * 1024, "large image is {total} bytes");
        let files: usize = (0..4).map(|n| large_entries(n).len()).sum();
        assert!(files >= 4000);
    }
}
