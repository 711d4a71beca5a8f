//! Bad input: each gets a non-zero exit, one line on stderr, and leaves nothing
//! behind (no state under --root, no cgroup directory).

use serde_json::json;

use super::{Case, case, expect_eq};
use crate::oci::ctx::{Ctx, cgroup_dirs, cgroups_path};
use crate::oci::driver::Out;

pub fn cases() -> Vec<Case> {
    vec![
        case("bad_malformed_config", malformed),
        case("bad_config_missing_fields", missing_fields),
        case("bad_missing_rootfs", missing_rootfs),
        case("bad_missing_bundle", missing_bundle),
        case("bad_unknown_id", unknown_id),
        case("bad_duplicate_id", duplicate_id),
        case("bad_start_twice", start_twice),
        case("bad_user_mapping_rejected", bad_mapping),
    ]
}

/// Fails unless `out` is a failure with exactly one non-empty line on stderr.
pub fn expect_one_line_error(out: &Out) -> anyhow::Result<()> {
    if out.code() == 0 {
        anyhow::bail!("`{}` succeeded", out.cmd);
    }
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if lines.len() != 1 {
        anyhow::bail!(
            "`{}` exited {} with {} stderr lines, want 1: {:?}",
            out.cmd,
            out.code(),
            lines.len(),
            out.stderr
        );
    }
    Ok(())
}

/// Fails if anything of container `id` remains: an entry under --root naming it,
/// or a cgroup directory.
pub fn expect_nothing_left(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let mut left = Vec::new();
    find_named(&ctx.root, id, &mut left);
    left.extend(cgroup_dirs(&cgroups_path(id)));
    if !left.is_empty() {
        anyhow::bail!("left behind: {left:?}");
    }
    Ok(())
}

fn find_named(dir: &std::path::Path, id: &str, found: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().contains(id) {
            found.push(p.clone());
        }
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            find_named(&p, id, found);
        }
    }
}

fn malformed(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle()?;
    ctx.track(&b.id);
    std::fs::write(
        b.dir.join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": {",
    )?;
    let dir = b.dir.to_string_lossy().into_owned();
    for cmd in ["create", "run"] {
        let out = ctx.rt(&[cmd, "--bundle", &dir, &b.id])?;
        expect_one_line_error(&out)?;
        expect_nothing_left(ctx, &b.id)?;
    }
    Ok(())
}

fn missing_fields(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    // Valid JSON, but process.args is empty and root.path names nothing usable.
    b.set(&["process", "args"], json!([]));
    b.set(&["process", "cwd"], json!("relative/cwd"));
    let out = ctx.create(&b, &[])?;
    expect_one_line_error(&out)?;
    expect_nothing_left(ctx, &b.id)
}

fn missing_rootfs(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["root", "path"], json!("no-such-rootfs"));
    b.args(&["/bin/true"]);
    let out = ctx.create(&b, &[])?;
    expect_one_line_error(&out)?;
    expect_nothing_left(ctx, &b.id)
}

fn missing_bundle(ctx: &mut Ctx) -> anyhow::Result<()> {
    let id = format!("missing-bundle-{}", std::process::id());
    ctx.track(&id);
    let nowhere = ctx.path("no-such-bundle");
    let out = ctx.rt(&["create", "--bundle", &nowhere.to_string_lossy(), &id])?;
    expect_one_line_error(&out)?;
    expect_nothing_left(ctx, &id)
}

fn unknown_id(ctx: &mut Ctx) -> anyhow::Result<()> {
    let id = "no-such-container";
    for args in [
        vec!["state", id],
        vec!["start", id],
        vec!["kill", id, "KILL"],
        vec!["delete", id],
        vec!["pause", id],
        vec!["resume", id],
        vec!["exec", id, "/bin/true"],
        vec!["ps", id],
    ] {
        let out = ctx.rt(&args)?;
        expect_one_line_error(&out)?;
    }
    expect_nothing_left(ctx, id)
}

fn duplicate_id(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut a = ctx.bundle()?;
    a.args(&["/bin/sleep", "1000"]);
    ctx.create(&a, &[])?.check()?;
    let pid = ctx.pid(&a.id)?;
    let mut b = ctx.bundle()?;
    b.id = a.id.clone();
    b.args(&["/bin/sleep", "1000"]);
    let out = ctx.create(&b, &[])?;
    expect_one_line_error(&out)?;
    let st = ctx.state(&a.id)?;
    expect_eq(
        "first container's status",
        st["status"].as_str(),
        Some("created"),
    )?;
    expect_eq(
        "first container's pid",
        st["pid"].as_i64(),
        Some(i64::from(pid)),
    )?;
    expect_eq(
        "first container's bundle",
        st["bundle"].as_str().map(std::path::Path::new),
        Some(a.dir.as_path()),
    )
}

fn start_twice(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut a = ctx.bundle()?;
    a.args(&["/bin/sleep", "1000"]);
    ctx.create(&a, &[])?.check()?;
    ctx.rt(&["start", &a.id])?.check()?;
    let out = ctx.rt(&["start", &a.id])?;
    expect_one_line_error(&out)?;
    expect_eq(
        "status",
        ctx.state(&a.id)?["status"].as_str(),
        Some("running"),
    )
}

fn bad_mapping(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.namespace(json!({"type": "user"}));
    // Overlapping container ranges: the kernel refuses this uid_map.
    b.set(
        &["linux", "uidMappings"],
        json!([
            {"containerID": 0, "hostID": 100000, "size": 1000},
            {"containerID": 500, "hostID": 300000, "size": 1000}
        ]),
    );
    b.set(
        &["linux", "gidMappings"],
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    b.args(&["/bin/true"]);
    let out = ctx.create(&b, &[])?;
    expect_one_line_error(&out)?;
    expect_nothing_left(ctx, &b.id)
}
