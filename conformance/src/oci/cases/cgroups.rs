//! `linux.resources` and `linux.cgroupsPath`: memory, pids, cpu, the freezer
//! (pause/resume) and `update` (runtime-spec config-linux.md "Control groups").

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::{Case, case, expect_eq};
use crate::oci::ctx::{Ctx, cgroups_path};

pub fn cases() -> Vec<Case> {
    vec![
        case("cgroup_path_honoured", path_honoured),
        case("cgroup_memory_limit_visible", memory_limit),
        case("cgroup_memory_oom_kill", oom_kill),
        case("cgroup_pids_limit_stops_fork_bomb", pids),
        case("cgroup_cpu_shares_quota", cpu),
        case("cgroup_cpuset", cpuset),
        case("cgroup_pause_resume_freezer", pause_resume),
        case("cgroup_update", update),
    ]
}

/// The `sh` snippet printing a cgroup file under v1 (`V1CTL/FILE`) or v2 (`FILE2`).
fn cat_cg(v1: &str, v2: &str) -> String {
    format!(
        "if [ -f /sys/fs/cgroup/cgroup.controllers ]; then cat /sys/fs/cgroup/{v2}; else cat /sys/fs/cgroup/{v1}; fi"
    )
}

/// Whether the container sees cgroup v2 at /sys/fs/cgroup.
fn v2_marker() -> &'static str {
    "if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo v2; else echo v1; fi"
}

/// The host directory of `pid`'s cgroup for a v1 controller (or v2 when `ctl` is
/// empty).
fn host_cgroup(pid: i32, ctl: &str) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctls, path) = (parts.next(), parts.next(), parts.next());
        let (Some(ctls), Some(path)) = (ctls, path) else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if ctl.is_empty() && ctls.is_empty() {
            return Ok(PathBuf::from("/sys/fs/cgroup").join(rel));
        }
        if !ctl.is_empty() && ctls.split(',').any(|c| c == ctl) {
            return Ok(PathBuf::from("/sys/fs/cgroup").join(ctls).join(rel));
        }
    }
    anyhow::bail!("pid {pid} has no {ctl:?} cgroup in {text:?}")
}

fn host_is_v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn path_honoured(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.args(&["/bin/sleep", "1000"]);
    ctx.run_detached(&b)?;
    let pid = ctx.pid(&b.id)?;
    let want = cgroups_path(&b.id);
    let ctl = if host_is_v2() { "" } else { "memory" };
    let dir = host_cgroup(pid, ctl)?;
    let base = if ctl.is_empty() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        PathBuf::from("/sys/fs/cgroup").join(ctl)
    };
    expect_eq(
        "cgroup of the container process",
        dir,
        base.join(want.trim_start_matches('/')),
    )
}

fn memory_limit(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    let limit = 64u64 << 20;
    b.set(
        &["linux", "resources", "memory"],
        json!({"limit": limit, "swap": limit}),
    );
    b.sh(&format!(
        "{}; {}",
        v2_marker(),
        cat_cg("memory/memory.limit_in_bytes", "memory.max")
    ));
    let out = ctx.run_ok(&b)?;
    expect_eq(
        "limit seen inside",
        out.lines().nth(1),
        Some(limit.to_string().as_str()),
    )
}

fn oom_kill(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    let limit = 16u64 << 20;
    b.set(
        &["linux", "resources", "memory"],
        json!({"limit": limit, "swap": limit}),
    );
    // tail keeps the one endless line of /dev/zero in memory until it is killed.
    b.sh("head -c 256m /dev/zero | tail > /dev/null; echo rc=$?");
    let out = ctx.run(&b)?;
    if out.code() == 137 {
        // The OOM killer chose the container's init itself: still enforced.
        return Ok(());
    }
    out.check()?;
    expect_eq(
        "exit status of the allocating process",
        out.stdout.trim(),
        "rc=137",
    )
}

fn pids(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["linux", "resources", "pids"], json!({"limit": 10}));
    // A subshell forks 40 sleepers until fork fails; the builtin glob then counts
    // live processes without forking.
    b.sh(
        "(i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; \
         set -- /proc/[0-9]*; echo $#",
    );
    let out = ctx.run_ok(&b)?;
    let n: u32 = out
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("bad process count {out:?}"))?;
    if !(2..=10).contains(&n) {
        anyhow::bail!("{n} processes alive with pids.limit 10");
    }
    Ok(())
}

fn cpu(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(
        &["linux", "resources", "cpu"],
        json!({"shares": 512, "quota": 50000, "period": 100000}),
    );
    b.sh(&format!(
        "{}; {}; {}; {}",
        v2_marker(),
        cat_cg("cpu/cpu.shares", "cpu.weight"),
        cat_cg("cpu/cpu.cfs_quota_us", "cpu.max"),
        cat_cg("cpu/cpu.cfs_period_us", "cpu.max"),
    ));
    let out = ctx.run_ok(&b)?;
    let lines: Vec<&str> = out.lines().collect();
    let want = if lines.first() == Some(&"v2") {
        // runc's shares→weight conversion: 1 + (shares - 2) * 9999 / 262142.
        vec!["v2", "20", "50000 100000", "50000 100000"]
    } else {
        vec!["v1", "512", "50000", "100000"]
    };
    expect_eq("cpu values", lines, want)
}

fn cpuset(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(
        &["linux", "resources", "cpu"],
        json!({"cpus": "0", "mems": "0"}),
    );
    b.sh(&format!(
        "{}; {}; grep Cpus_allowed_list /proc/self/status",
        cat_cg("cpuset/cpuset.cpus", "cpuset.cpus"),
        cat_cg("cpuset/cpuset.mems", "cpuset.mems"),
    ));
    let out = ctx.run_ok(&b)?;
    expect_eq(
        "cpuset.cpus, cpuset.mems, Cpus_allowed_list",
        out.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
        vec![
            "0".to_string(),
            "0".to_string(),
            "Cpus_allowed_list: 0".to_string(),
        ],
    )
}

fn freezer_state(pid: i32) -> anyhow::Result<String> {
    if host_is_v2() {
        let d = host_cgroup(pid, "")?;
        let v = std::fs::read_to_string(d.join("cgroup.freeze"))?;
        return Ok(if v.trim() == "1" { "FROZEN" } else { "THAWED" }.into());
    }
    let d = host_cgroup(pid, "freezer")?;
    Ok(std::fs::read_to_string(d.join("freezer.state"))?
        .trim()
        .to_string())
}

fn pause_resume(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.args(&["/bin/sleep", "1000"]);
    ctx.run_detached(&b)?;
    let pid = ctx.pid(&b.id)?;
    ctx.rt(&["pause", &b.id])?.check()?;
    expect_eq(
        "status after pause",
        ctx.state(&b.id)?["status"].clone(),
        json!("paused"),
    )?;
    expect_eq(
        "freezer after pause",
        freezer_state(pid)?.as_str(),
        "FROZEN",
    )?;
    ctx.rt(&["resume", &b.id])?.check()?;
    expect_eq(
        "status after resume",
        ctx.state(&b.id)?["status"].clone(),
        json!("running"),
    )?;
    expect_eq(
        "freezer after resume",
        freezer_state(pid)?.as_str(),
        "THAWED",
    )
}

fn update(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["linux", "resources", "pids"], json!({"limit": 100}));
    b.args(&["/bin/sleep", "1000"]);
    ctx.run_detached(&b)?;
    let read = |ctx: &Ctx| -> anyhow::Result<String> {
        let out = ctx.rt(&[
            "exec",
            &b.id,
            "/bin/sh",
            "-c",
            &cat_cg("pids/pids.max", "pids.max"),
        ])?;
        out.check()?;
        Ok(out.stdout.trim().to_string())
    };
    expect_eq("pids.max before update", read(ctx)?.as_str(), "100")?;
    ctx.rt(&["update", "--pids-limit", "50", &b.id])?.check()?;
    expect_eq(
        "pids.max after update --pids-limit 50",
        read(ctx)?.as_str(),
        "50",
    )?;
    let res = ctx.path("resources.json");
    std::fs::write(&res, r#"{"pids": {"limit": 42}}"#)?;
    ctx.rt(&["update", "-r", &res.to_string_lossy(), &b.id])?
        .check()?;
    expect_eq("pids.max after update -r", read(ctx)?.as_str(), "42")?;
    // Still running and unharmed.
    ctx.wait_status(&b.id, "running", Duration::from_secs(1))
}
