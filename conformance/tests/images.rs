//! Fixture images: built as OCI layouts, checked with skopeo and umoci, pushed to the real
//! local registries that scripts/registry.sh starts (BERTH_TEST_REGISTRY,
//! BERTH_TEST_AUTH_REGISTRY, BERTH_TEST_AUTH_CREDS).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_berth-conformance");

const OCI_REFS: &[&str] = &[
    "busybox",
    "user-uid",
    "user-name",
    "user-group",
    "entrypoint",
    "httpd",
    "layers",
    "zstd",
    "multiarch",
];

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn build(dir: &Path) {
    run(Command::new(BIN).arg("images").arg("build").arg(dir));
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the test registries with `eval \"$(scripts/registry.sh start)\"`")
    })
}

fn inspect_config(reference: &str, extra: &[&str]) -> serde_json::Value {
    let out = run(Command::new("skopeo")
        .args(["inspect", "--config"])
        .args(extra)
        .arg(reference));
    serde_json::from_slice(&out.stdout).expect("skopeo prints JSON")
}

#[test]
fn build_is_deterministic_and_skopeo_reads_every_image() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    build(a.path());
    build(b.path());
    let ia = std::fs::read(a.path().join("index.json")).unwrap();
    let ib = std::fs::read(b.path().join("index.json")).unwrap();
    assert_eq!(ia, ib, "two builds gave different index.json");
    for r in OCI_REFS {
        let reference = format!("oci:{}:{r}", a.path().display());
        let cfg = inspect_config(&reference, &[]);
        assert_eq!(cfg["os"], "linux", "{r}");
        assert_eq!(cfg["architecture"], "amd64", "{r}");
        assert_eq!(cfg["created"], "2024-01-01T00:00:00Z", "{r}");
    }
    let c = |r: &str| inspect_config(&format!("oci:{}:{r}", a.path().display()), &[]);
    assert_eq!(c("user-uid")["config"]["User"], "1000");
    assert_eq!(c("user-name")["config"]["User"], "berth");
    assert_eq!(c("user-group")["config"]["User"], "berth:berthgrp");
    assert_eq!(
        c("entrypoint")["config"]["Entrypoint"],
        serde_json::json!(["/bin/echo", "entrypoint"])
    );
    assert_eq!(
        c("httpd")["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    assert_eq!(
        c("layers")["rootfs"]["diff_ids"].as_array().unwrap().len(),
        3
    );
    let arm = inspect_config(
        &format!("oci:{}:multiarch", a.path().display()),
        &["--override-arch", "arm64", "--override-variant", "v8"],
    );
    assert_eq!(arm["architecture"], "arm64");
    assert_eq!(arm["variant"], "v8");
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:zstd", a.path().display())));
    let m: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        m["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
}

fn read_link(p: &Path) -> String {
    std::fs::read_link(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_string_lossy()
        .into_owned()
}

#[test]
fn umoci_unpacks_busybox_and_layers_to_the_documented_tree() {
    let layout = tempfile::tempdir().unwrap();
    build(layout.path());
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:layers", layout.path().display()))
        .arg(&bundle));
    let root = bundle.join("rootfs");
    let bb = root.join("bin/busybox");
    assert_eq!(
        std::fs::read(&bb).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(read_link(&root.join("bin/sh")), "/bin/busybox");
    assert!(root.join("etc/passwd").is_file());
    let d = root.join("data");
    for (p, want) in [
        ("keep", "keep\n"),
        ("hardlink", "keep\n"),
        ("dir-to-file", "now a file\n"),
        ("file-to-dir/inner", "inner\n"),
        ("opaque/new", "new\n"),
        ("l3file", "layer three\n"),
        ("l3link", "layer three\n"),
    ] {
        assert_eq!(std::fs::read_to_string(d.join(p)).unwrap(), want, "{p}");
    }
    assert_eq!(read_link(&d.join("symlink")), "keep");
    assert_eq!(read_link(&d.join("abslink")), "/data/keep");
    let ino = |p: &str| std::fs::metadata(d.join(p)).unwrap().ino();
    assert_eq!(ino("keep"), ino("hardlink"));
    assert_eq!(ino("l3file"), ino("l3link"));
    for gone in ["remove-me", "opaque/old-a", "opaque/sub"] {
        assert!(!d.join(gone).exists(), "{gone} should be deleted");
    }
    let mut opaque: Vec<String> = std::fs::read_dir(d.join("opaque"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    opaque.sort();
    assert_eq!(opaque, ["new"]);
}

#[test]
fn push_to_open_registry_then_pull_back_with_skopeo() {
    let registry = env("BERTH_TEST_REGISTRY");
    let layout = tempfile::tempdir().unwrap();
    build(layout.path());
    // a small chunk size forces chunked (PATCH) uploads of the busybox layer
    run(Command::new(BIN)
        .args(["images", "push"])
        .arg(layout.path())
        .args(["--registry", &registry, "--chunk-size", "65536"]));
    for r in OCI_REFS.iter().chain(&["docker-schema2"]) {
        let cfg = inspect_config(
            &format!("docker://{registry}/berth/{r}:latest"),
            &["--tls-verify=false"],
        );
        assert_eq!(cfg["os"], "linux", "{r}");
    }
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{registry}/berth/docker-schema2:latest")));
    let m: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // a pushed image round-trips: copy back to a layout and compare the blobs
    let back = tempfile::tempdir().unwrap();
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--preserve-digests"])
        .arg(format!("docker://{registry}/berth/layers:latest"))
        .arg(format!("oci:{}:layers", back.path().display())));
    let orig = inspect_config(&format!("oci:{}:layers", layout.path().display()), &[]);
    let copy = inspect_config(&format!("oci:{}:layers", back.path().display()), &[]);
    assert_eq!(orig, copy);
}

#[test]
fn push_to_token_auth_registry_needs_credentials() {
    let registry = env("BERTH_TEST_AUTH_REGISTRY");
    let creds = env("BERTH_TEST_AUTH_CREDS");
    let layout = tempfile::tempdir().unwrap();
    build(layout.path());
    let anon = Command::new(BIN)
        .args(["images", "push"])
        .arg(layout.path())
        .args(["--registry", &registry])
        .output()
        .unwrap();
    assert!(!anon.status.success(), "anonymous push must be refused");
    let bad = Command::new(BIN)
        .args(["images", "push"])
        .arg(layout.path())
        .args(["--registry", &registry, "--creds", "berth:wrong"])
        .output()
        .unwrap();
    assert!(!bad.status.success(), "wrong password must be refused");
    run(Command::new(BIN)
        .args(["images", "push"])
        .arg(layout.path())
        .args(["--registry", &registry, "--creds", &creds]));
    let cfg = inspect_config(
        &format!("docker://{registry}/berth/busybox:latest"),
        &["--tls-verify=false", "--creds", &creds],
    );
    assert_eq!(cfg["architecture"], "amd64");
    let anon_pull = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{registry}/berth/busybox:latest"))
        .output()
        .unwrap();
    assert!(
        !anon_pull.status.success(),
        "anonymous pull must be refused"
    );
}

#[test]
fn bench_pull_runs_against_containerd_on_a_small_image() {
    let registry = env("BERTH_TEST_REGISTRY");
    let layout = tempfile::tempdir().unwrap();
    build(layout.path());
    run(Command::new(BIN)
        .args(["images", "push"])
        .arg(layout.path())
        .args(["--registry", &registry]));
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("pull.csv");
    // berth-pull is built into the same target directory as this binary.
    let berth_pull = Path::new(BIN).with_file_name("berth-pull");
    assert!(
        berth_pull.exists(),
        "{} missing: build it with `cargo build -p berth-snapshotter --bin berth-pull`",
        berth_pull.display()
    );
    let out = run(Command::new(BIN)
        .args([
            "bench",
            "pull",
            "--registry",
            &registry,
            "--image",
            "berth/httpd:latest",
            "--layout-ref",
            "httpd",
            "--runs",
            "1",
        ])
        .arg("--layout")
        .arg(layout.path())
        .arg("--berth-pull")
        .arg(&berth_pull)
        .arg("--work")
        .arg(work.path().join("w"))
        .arg("--csv")
        .arg(&csv)
        .arg("--svg")
        .arg(work.path().join("pull.svg")));
    assert!(
        std::fs::read_to_string(work.path().join("pull.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ratio berth/containerd"), "{stdout}");
    let csv = std::fs::read_to_string(&csv).unwrap();
    let tools: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(tools.len(), 3, "{csv}");
    for t in ["berth", "containerd", "tar-x"] {
        assert!(tools.contains(&t), "{csv}");
    }
}

#[test]
fn httpd_and_entrypoint_fixtures_do_what_they_document() {
    let layout = tempfile::tempdir().unwrap();
    build(layout.path());
    let work = tempfile::tempdir().unwrap();
    let unpack = |name: &str| {
        let bundle = work.path().join(name);
        run(Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{name}", layout.path().display()))
            .arg(&bundle));
        let cfg = inspect_config(&format!("oci:{}:{name}", layout.path().display()), &[]);
        (bundle.join("rootfs"), cfg)
    };
    // httpd: run the image's Cmd in a private network namespace, fetch / on port 8080.
    let (root, cfg) = unpack("httpd");
    // A container runtime provides /dev; the shell here needs /dev/null.
    run(Command::new("mknod")
        .arg(root.join("dev/null"))
        .args(["c", "1", "3"]));
    let cmd: Vec<String> = cfg["config"]["Cmd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let out = run(Command::new("unshare")
        .arg("-n")
        .arg("chroot")
        .arg(&root)
        .args([
            "/bin/sh",
            "-c",
            "ip link set lo up; \"$@\" & for i in 1 2 3 4 5 6 7 8 9 10; do \
             wget -qO- http://127.0.0.1:8080/ && break; sleep 0.2; done; kill $!",
            "sh",
        ])
        .args(&cmd));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "berth fixture httpd\n"
    );
    // entrypoint: Entrypoint + Cmd print "entrypoint cmd".
    let (root, cfg) = unpack("entrypoint");
    let mut argv: Vec<String> = Vec::new();
    for k in ["Entrypoint", "Cmd"] {
        argv.extend(
            cfg["config"][k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned()),
        );
    }
    let out = run(Command::new("chroot").arg(&root).args(&argv));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "entrypoint cmd\n");
    // user-group: the names resolve inside the image to uid 1000, gid 2000.
    let (root, _) = unpack("user-group");
    let out = run(Command::new("chroot").arg(&root).args([
        "/bin/sh",
        "-c",
        "id -u berth; grep ^berthgrp: /etc/group | cut -d: -f3",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1000\n2000\n");
}
