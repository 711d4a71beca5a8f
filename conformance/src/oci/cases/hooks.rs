//! `hooks`: each of the six hook kinds runs at its point of the lifecycle with the
//! container state on stdin (runtime-spec config.md "POSIX-platform Hooks",
//! runtime.md "Lifecycle").

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Case, case, expect_eq};
use crate::oci::ctx::Ctx;

pub fn cases() -> Vec<Case> {
    vec![
        case("hooks_all_six_in_order_with_state", all_hooks),
        case("hooks_failing_prestart_aborts_create", failing_prestart),
    ]
}

const KINDS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// A hook writing its stdin to `<dir>/<kind>.json`; when `dir` does not exist where
/// the hook runs (after pivot_root) it writes to /hooks, where `dir` is bind-mounted.
fn hook(dir: &Path, kind: &str) -> Value {
    let d = dir.to_string_lossy();
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!(
            "d={d}; [ -d \"$d\" ] || d=/hooks; readlink /proc/self/ns/mnt > \"$d/{kind}.ns\"; \
             cat > \"$d/{kind}.json.tmp\" && mv \"$d/{kind}.json.tmp\" \"$d/{kind}.json\""
        )]
    })
}

fn present(dir: &Path) -> Vec<&'static str> {
    KINDS
        .iter()
        .copied()
        .filter(|k| dir.join(format!("{k}.json")).exists())
        .collect()
}

fn check_state(dir: &Path, kind: &str, id: &str, bundle: &Path) -> anyhow::Result<Value> {
    let p = dir.join(format!("{kind}.json"));
    let text = std::fs::read_to_string(&p)?;
    let st: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{kind} hook got no JSON state on stdin ({e}): {text:?}"))?;
    expect_eq(&format!("{kind} state id"), st["id"].as_str(), Some(id))?;
    expect_eq(
        &format!("{kind} state bundle"),
        st["bundle"].as_str().map(Path::new),
        Some(bundle),
    )?;
    if st["ociVersion"].as_str().is_none_or(str::is_empty) {
        anyhow::bail!("{kind} state has no ociVersion: {st}");
    }
    if !st["status"].is_string() {
        anyhow::bail!("{kind} state has no status: {st}");
    }
    Ok(st)
}

fn all_hooks(ctx: &mut Ctx) -> anyhow::Result<()> {
    let dir = ctx.path("hook-out");
    std::fs::create_dir_all(&dir)?;
    let mut b = ctx.bundle()?;
    for k in KINDS {
        b.set(&["hooks", k], json!([hook(&dir, k)]));
    }
    b.mount(
        json!({"destination": "/hooks", "type": "bind", "source": dir, "options": ["rbind", "rw"]}),
    );
    b.args(&["/bin/sleep", "1000"]);
    ctx.create(&b, &[])?.check()?;
    expect_eq(
        "hooks run by create",
        present(&dir),
        vec!["prestart", "createRuntime", "createContainer"],
    )?;
    let pid = ctx.pid(&b.id)?;
    for k in ["prestart", "createRuntime", "createContainer"] {
        let st = check_state(&dir, k, &b.id, &b.dir)?;
        // pid is required only once the status is created or running (runtime.md
        // "State"); during creating it may be absent or 0, but never another pid.
        match st["pid"].as_i64() {
            None | Some(0) => {}
            Some(p) => expect_eq(&format!("{k} state pid"), p, i64::from(pid))?,
        }
    }
    ctx.rt(&["start", &b.id])?.check()?;
    expect_eq(
        "hooks run by create and start",
        present(&dir),
        vec![
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
        ],
    )?;
    for k in ["startContainer", "poststart"] {
        let st = check_state(&dir, k, &b.id, &b.dir)?;
        expect_eq(
            &format!("{k} state pid"),
            st["pid"].as_i64(),
            Some(i64::from(pid)),
        )?;
    }
    ctx.rt(&["kill", &b.id, "KILL"])?.check()?;
    ctx.wait_status(&b.id, "stopped", Duration::from_secs(10))?;
    ctx.rt(&["delete", &b.id])?.check()?;
    expect_eq("hooks after delete", present(&dir), KINDS.to_vec())?;
    check_state(&dir, "poststop", &b.id, &b.dir)?;
    // createContainer and startContainer run in the container's namespaces, the
    // others in the runtime's (config.md "POSIX-platform Hooks").
    let ours = std::fs::read_link("/proc/self/ns/mnt")?;
    for k in KINDS {
        let ns = std::fs::read_to_string(dir.join(format!("{k}.ns")))?;
        let in_container = matches!(k, "createContainer" | "startContainer");
        let here = std::path::Path::new(ns.trim()) == ours;
        if here == in_container {
            anyhow::bail!(
                "{k} hook ran in the {} mount namespace",
                if here {
                    "runtime's"
                } else {
                    "container's or another"
                }
            );
        }
    }
    Ok(())
}

fn failing_prestart(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(
        &["hooks", "prestart"],
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]),
    );
    b.args(&["/bin/sleep", "1000"]);
    let out = ctx.create(&b, &[])?;
    if out.code() == 0 {
        anyhow::bail!("create succeeded although the prestart hook exited 3");
    }
    super::badinput::expect_nothing_left(ctx, &b.id)
}
