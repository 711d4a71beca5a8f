//! The lifecycle and the rest of the command line: state, start, kill, delete,
//! --pid-file, exec, ps, list, events (runtime-spec runtime.md "State",
//! "Lifecycle", "Operations"; runc's CLI).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Case, case, expect_contains, expect_eq};
use crate::oci::ctx::{Ctx, poll};

pub fn cases() -> Vec<Case> {
    vec![
        case("state_fields_and_transitions", transitions),
        case("create_does_not_start_the_process", create_waits),
        case("pid_file", pid_file),
        case("stopped_after_process_exits", stopped_after_exit),
        case("kill_signal_names_and_numbers", kill_signals),
        case("kill_all", kill_all),
        case("delete_refuses_running", delete_refuses),
        case("delete_force_running", delete_force),
        case("exec_joins_container", exec),
        case("exec_process_json", exec_process_file),
        case("exec_detach_pid_file", exec_detach),
        case("ps_and_list", ps_list),
        case("events_stats", events),
    ]
}

fn sleeper(ctx: &mut Ctx) -> anyhow::Result<crate::oci::bundle::Bundle> {
    let mut b = ctx.bundle()?;
    b.args(&["/bin/sleep", "1000"]);
    Ok(b)
}

fn transitions(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = sleeper(ctx)?;
    b.set(&["annotations"], json!({"org.berth.test": "value"}));
    ctx.create(&b, &[])?.check()?;
    let st = ctx.state(&b.id)?;
    expect_eq(
        "status after create",
        st["status"].as_str(),
        Some("created"),
    )?;
    expect_eq("id", st["id"].as_str(), Some(b.id.as_str()))?;
    expect_eq(
        "bundle",
        st["bundle"].as_str().map(Path::new),
        Some(b.dir.as_path()),
    )?;
    if st["ociVersion"].as_str().is_none_or(str::is_empty) {
        anyhow::bail!("state has no ociVersion: {st}");
    }
    // Annotations given in the config appear in the state (runtime.md "State").
    expect_eq(
        "annotations",
        st["annotations"]["org.berth.test"].as_str(),
        Some("value"),
    )?;
    let pid = ctx.pid(&b.id)?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        anyhow::bail!("state pid {pid} does not exist");
    }
    ctx.rt(&["start", &b.id])?.check()?;
    expect_eq(
        "status after start",
        ctx.state(&b.id)?["status"].clone(),
        json!("running"),
    )?;
    expect_eq("pid after start", ctx.pid(&b.id)?, pid)?;
    ctx.rt(&["kill", &b.id, "KILL"])?.check()?;
    ctx.wait_status(&b.id, "stopped", Duration::from_secs(10))?;
    ctx.rt(&["delete", &b.id])?.check()?;
    let after = ctx.rt(&["state", &b.id])?;
    if after.code() == 0 {
        anyhow::bail!("state still succeeds after delete: {}", after.stdout.trim());
    }
    super::badinput::expect_nothing_left(ctx, &b.id)
}

fn create_waits(ctx: &mut Ctx) -> anyhow::Result<()> {
    let dir = ctx.path("marks");
    std::fs::create_dir_all(&dir)?;
    let mut b = ctx.bundle()?;
    b.mount(
        json!({"destination": "/marks", "type": "bind", "source": dir, "options": ["rbind", "rw"]}),
    );
    b.sh("echo ran > /marks/ran");
    ctx.create(&b, &[])?.check()?;
    // Give a runtime that wrongly starts the process at create time a chance to show it.
    std::thread::sleep(Duration::from_millis(300));
    if dir.join("ran").exists() {
        anyhow::bail!("the process ran before start");
    }
    ctx.rt(&["start", &b.id])?.check()?;
    if !poll(Duration::from_secs(10), || dir.join("ran").exists()) {
        anyhow::bail!("the process did not run after start");
    }
    Ok(())
}

fn read_pid_file(p: &Path) -> anyhow::Result<i32> {
    let text =
        std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("pid file {}: {e}", p.display()))?;
    text.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("pid file holds {text:?}"))
}

fn pid_file(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = sleeper(ctx)?;
    let pf = ctx.path("create.pid");
    ctx.create(&b, &["--pid-file", &pf.to_string_lossy()])?
        .check()?;
    expect_eq("create --pid-file", read_pid_file(&pf)?, ctx.pid(&b.id)?)?;
    let b2 = sleeper(ctx)?;
    b2.write_config()?;
    ctx.track(&b2.id);
    let pf2 = ctx.path("run.pid");
    let dir = b2.dir.to_string_lossy().into_owned();
    ctx.rt(&[
        "run",
        "-d",
        "--pid-file",
        &pf2.to_string_lossy(),
        "--bundle",
        &dir,
        &b2.id,
    ])?
    .check()?;
    expect_eq("run -d --pid-file", read_pid_file(&pf2)?, ctx.pid(&b2.id)?)
}

fn stopped_after_exit(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.args(&["/bin/true"]);
    ctx.run_detached(&b)?;
    ctx.wait_status(&b.id, "stopped", Duration::from_secs(10))?;
    ctx.rt(&["delete", &b.id])?.check()?;
    Ok(())
}

fn kill_signals(ctx: &mut Ctx) -> anyhow::Result<()> {
    let dir = ctx.path("sig");
    std::fs::create_dir_all(&dir)?;
    let mut b = ctx.bundle()?;
    b.mount(
        json!({"destination": "/sig", "type": "bind", "source": dir, "options": ["rbind", "rw"]}),
    );
    b.sh(
        "trap 'echo USR1 >> /sig/log' USR1; trap 'echo USR2 >> /sig/log' USR2; \
         trap 'echo HUP >> /sig/log' HUP; trap 'echo TERM >> /sig/log; exit 0' TERM; \
         echo ready > /sig/ready; while true; do sleep 0.05; done",
    );
    ctx.run_detached(&b)?;
    if !poll(Duration::from_secs(10), || dir.join("ready").exists()) {
        anyhow::bail!("the container never got ready");
    }
    let log = dir.join("log");
    let mut want: Vec<&str> = Vec::new();
    for (sig, line) in [
        ("USR1", "USR1"),
        ("SIGUSR2", "USR2"),
        ("1", "HUP"),
        ("TERM", "TERM"),
    ] {
        ctx.rt(&["kill", &b.id, sig])?.check()?;
        want.push(line);
        let ok = poll(Duration::from_secs(10), || {
            std::fs::read_to_string(&log)
                .map(|t| t.lines().collect::<Vec<_>>() == want)
                .unwrap_or(false)
        });
        if !ok {
            anyhow::bail!(
                "after `kill {sig}` the trap log is {:?}, want {want:?}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }
    ctx.wait_status(&b.id, "stopped", Duration::from_secs(10))
}

fn delete_refuses(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = sleeper(ctx)?;
    ctx.run_detached(&b)?;
    let out = ctx.rt(&["delete", &b.id])?;
    if out.code() == 0 {
        anyhow::bail!("delete of a running container without --force succeeded");
    }
    expect_eq(
        "status after refused delete",
        ctx.state(&b.id)?["status"].clone(),
        json!("running"),
    )
}

fn delete_force(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = sleeper(ctx)?;
    ctx.run_detached(&b)?;
    let pid = ctx.pid(&b.id)?;
    ctx.rt(&["delete", "--force", &b.id])?.check()?;
    if ctx.rt(&["state", &b.id])?.code() == 0 {
        anyhow::bail!("state still succeeds after delete --force");
    }
    let gone = poll(Duration::from_secs(10), || {
        // Gone, or a zombie waiting for its reaper.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    });
    if !gone {
        anyhow::bail!("container process {pid} still alive after delete --force");
    }
    super::badinput::expect_nothing_left(ctx, &b.id)
}

fn exec(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = sleeper(ctx)?;
    b.set(&["hostname"], json!("exec-host"));
    ctx.run_detached(&b)?;
    let out = ctx.rt(&[
        "exec",
        "--env",
        "BERTH_X=42",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &b.id,
        "/bin/sh",
        "-c",
        "echo $BERTH_X; pwd; id -u; id -g; hostname; readlink /proc/self/ns/pid",
    ])?;
    out.check()?;
    let pid = ctx.pid(&b.id)?;
    let pidns = std::fs::read_link(format!("/proc/{pid}/ns/pid"))?;
    expect_eq(
        "exec output",
        out.lines(),
        vec![
            "42",
            "/tmp",
            "1000",
            "1000",
            "exec-host",
            &pidns.to_string_lossy(),
        ],
    )?;
    let out = ctx.rt(&["exec", &b.id, "/bin/sh", "-c", "exit 7"])?;
    expect_eq("exit status of exec", out.code(), 7)
}

fn exec_process_file(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = sleeper(ctx)?;
    ctx.run_detached(&b)?;
    let proc_json = ctx.path("process.json");
    let p: Value = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["/bin/sh", "-c", "echo $BERTH_P; pwd"],
        "env": ["PATH=/bin", "BERTH_P=from-file"],
        "cwd": "/etc"
    });
    std::fs::write(&proc_json, serde_json::to_vec(&p)?)?;
    let out = ctx.rt(&["exec", "--process", &proc_json.to_string_lossy(), &b.id])?;
    out.check()?;
    expect_eq(
        "exec --process output",
        out.lines(),
        vec!["from-file", "/etc"],
    )
}

fn ps_list(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = sleeper(ctx)?;
    ctx.run_detached(&b)?;
    let pid = ctx.pid(&b.id)?;
    let out = ctx.rt(&["ps", "--format", "json", &b.id])?;
    out.check()?;
    let pids: Vec<i64> = serde_json::from_str(&out.stdout)
        .map_err(|e| anyhow::anyhow!("ps --format json: {e}: {:?}", out.stdout))?;
    if !pids.contains(&i64::from(pid)) {
        anyhow::bail!("ps lists {pids:?}, not the init pid {pid}");
    }
    let out = ctx.rt(&["list", "--format", "json"])?;
    out.check()?;
    let list: Value = serde_json::from_str(&out.stdout)
        .map_err(|e| anyhow::anyhow!("list --format json: {e}: {:?}", out.stdout))?;
    let entry = list
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == b.id.as_str()))
        .ok_or_else(|| anyhow::anyhow!("list --format json lacks {}: {list}", b.id))?;
    expect_eq("list status", entry["status"].as_str(), Some("running"))?;
    expect_eq("list pid", entry["pid"].as_i64(), Some(i64::from(pid)))?;
    let out = ctx.rt(&["list"])?;
    out.check()?;
    expect_contains("list table", &out.stdout, &b.id)?;
    expect_contains("list table header", &out.stdout, "STATUS")
}

fn events(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = sleeper(ctx)?;
    b.set(&["linux", "resources", "pids"], json!({"limit": 64}));
    ctx.run_detached(&b)?;
    let out = ctx.rt(&["events", "--stats", &b.id])?;
    out.check()?;
    let ev: Value = serde_json::from_str(out.stdout.trim())
        .map_err(|e| anyhow::anyhow!("events --stats: {e}: {:?}", out.stdout))?;
    expect_eq("event type", ev["type"].as_str(), Some("stats"))?;
    expect_eq("event id", ev["id"].as_str(), Some(b.id.as_str()))?;
    let cur = ev["data"]["pids"]["current"].as_u64();
    if cur.is_none_or(|c| c < 1) {
        anyhow::bail!("stats lack pids.current >= 1: {}", ev["data"]);
    }
    Ok(())
}

/// `kill --all` signals every process of the container, not only its init (which,
/// as a pid namespace's init without a handler, ignores SIGTERM).
fn kill_all(ctx: &mut Ctx) -> anyhow::Result<()> {
    let dir = ctx.path("marks");
    std::fs::create_dir_all(&dir)?;
    let mut b = ctx.bundle()?;
    b.mount(
        json!({"destination": "/marks", "type": "bind", "source": dir, "options": ["rbind", "rw"]}),
    );
    b.sh("sleep 1000 & echo ready > /marks/ready; wait; echo reaped > /marks/done; sleep 1000");
    ctx.run_detached(&b)?;
    if !poll(Duration::from_secs(10), || dir.join("ready").exists()) {
        anyhow::bail!("the container never got ready");
    }
    ctx.rt(&["kill", "--all", &b.id, "TERM"])?.check()?;
    if !poll(Duration::from_secs(10), || dir.join("done").exists()) {
        anyhow::bail!("the child of init did not get SIGTERM from kill --all");
    }
    Ok(())
}

fn exec_detach(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = sleeper(ctx)?;
    ctx.run_detached(&b)?;
    let init = ctx.pid(&b.id)?;
    let pf = ctx.path("exec.pid");
    ctx.rt(&[
        "exec",
        "-d",
        "--pid-file",
        &pf.to_string_lossy(),
        &b.id,
        "/bin/sleep",
        "1000",
    ])?
    .check()?;
    let pid = read_pid_file(&pf)?;
    let ns = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid"));
    expect_eq("pid namespace of the exec'd process", ns(pid)?, ns(init)?)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    expect_eq(
        "its command line",
        cmdline.as_slice(),
        b"/bin/sleep\x001000\x00".as_slice(),
    )
}
