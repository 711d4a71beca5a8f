//! Drop-in check: Debian's containerd runs a container with `berth` as its runc shim's
//! binary (`ctr run --runc-binary`), from a local OCI image made here of busybox-static.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

/// Writes `data` as a blob of an OCI layout; returns (digest, size).
fn blob(layout: &Path, data: &[u8]) -> (String, usize) {
    let hex = hex::encode(Sha256::digest(data));
    std::fs::write(layout.join("blobs/sha256").join(&hex), data).unwrap();
    (format!("sha256:{hex}"), data.len())
}

/// Makes an OCI image archive named `name` holding a busybox rootfs.
fn busybox_image(dir: &Path, name: &str) -> PathBuf {
    let rootfs = dir.join("rootfs");
    busybox_rootfs(&rootfs);
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer = dir.join("layer.tar");
    let o = Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
        ])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "tar: {}", stderr(&o));
    let (layer_digest, layer_size) = blob(&layout, &std::fs::read(&layer).unwrap());
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
    });
    let (config_digest, config_size) = blob(&layout, config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}]
    });
    let (m_digest, m_size) = blob(&layout, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m_digest, "size": m_size,
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "test"}
        }]
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let archive = dir.join("image.tar");
    let o = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "tar: {}", stderr(&o));
    archive
}

/// A private containerd (own root, state and socket), stopped and cleaned on drop.
struct Containerd {
    dir: PathBuf,
    child: Child,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        assert!(
            Path::new("/usr/bin/containerd").exists(),
            "containerd is missing: install Debian's containerd (scripts/install-deps.sh)"
        );
        let cfg = dir.join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{d}/containerd.sock\"\n\
                 [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("containerd.log")).unwrap())
            .spawn()
            .unwrap();
        let c = Containerd {
            dir: dir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.join("containerd.sock"))
            .args(["--namespace", "berth-test"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Unmount whatever containerd left under its root, deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut mine: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&*self.dir.to_string_lossy()))
            .collect();
        mine.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mine {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

#[test]
fn containerd_runs_a_container_with_berth_as_its_runc() {
    let tmp = TempDir::new("containerd");
    let name = "docker.io/library/berth-busybox:test";
    let archive = busybox_image(&tmp.path().join("image"), name);
    let cd_dir = tmp.path().join("containerd");
    std::fs::create_dir_all(&cd_dir).unwrap();
    let cd = Containerd::start(&cd_dir);
    let o = cd.ctr(&["images", "import", archive.to_str().unwrap()]);
    assert!(o.status.success(), "import: {}{}", stdout(&o), stderr(&o));
    let id = format!("berth-dropin-{}", std::process::id());
    let o = cd.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        BERTH,
        name,
        &id,
        "sh",
        "-c",
        "echo hello-from-berth; echo pid=$$; hostname",
    ]);
    assert!(
        o.status.success(),
        "ctr run: {}{}\ncontainerd log: {}",
        stdout(&o),
        stderr(&o),
        std::fs::read_to_string(cd_dir.join("containerd.log")).unwrap_or_default()
    );
    let out = stdout(&o);
    assert!(out.contains("hello-from-berth\n"), "{out}");
    assert!(out.contains("pid=1\n"), "{out}");
    // Exit codes travel through the shim too.
    let o = cd.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        BERTH,
        name,
        &format!("{id}-x"),
        "sh",
        "-c",
        "exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}{}", stdout(&o), stderr(&o));
    // --rm removed the containers and their tasks.
    let o = cd.ctr(&["containers", "list", "-q"]);
    assert_eq!(stdout(&o).trim(), "", "containers left");
}
