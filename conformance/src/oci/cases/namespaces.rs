//! `linux.namespaces`, hostname, domainname, user-namespace mappings, time offsets
//! (runtime-spec config-linux.md "Namespaces").

use serde_json::json;

use super::{Case, case, expect_eq};
use crate::oci::ctx::{Ctx, Need};

pub fn cases() -> Vec<Case> {
    vec![
        case("ns_pid_init_is_pid1", pid),
        case("ns_uts_hostname", uts),
        case("ns_uts_domainname", domainname),
        case("ns_ipc_new", |c| new_ns(c, "ipc")),
        case("ns_mount_new", |c| new_ns(c, "mnt")),
        case("ns_net_only_lo", net),
        case("ns_net_absent_shares_host", net_host),
        case("ns_cgroup_root", cgroup),
        case("ns_user_mappings", user),
        Case {
            name: "ns_time_offsets",
            needs: Some(Need::Namespace("time")),
            run: time,
        },
        case("ns_join_by_path", join),
    ]
}

fn host_ns(pid: &str, ns: &str) -> anyhow::Result<String> {
    let p = format!("/proc/{pid}/ns/{ns}");
    Ok(std::fs::read_link(&p)?.to_string_lossy().into_owned())
}

fn pid(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.sh("echo $$; ls -d /proc/[0-9]* | wc -l");
    let out = ctx.run_ok(&b)?;
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    expect_eq(
        "pid of the container process",
        lines.first().copied(),
        Some("1"),
    )?;
    // sh, ls and wc at most.
    let n: u32 = lines
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(u32::MAX);
    if n > 3 {
        anyhow::bail!("{n} processes visible in the new pid namespace");
    }
    Ok(())
}

fn domainname(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["domainname"], json!("oci.example"));
    b.args(&["/bin/cat", "/proc/sys/kernel/domainname"]);
    let out = ctx.run_ok(&b)?;
    expect_eq("domainname", out.trim(), "oci.example")
}

fn uts(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["hostname"], json!("oci-host"));
    b.args(&["/bin/hostname"]);
    let out = ctx.run_ok(&b)?;
    expect_eq("hostname", out.trim(), "oci-host")?;
    let host = nix::unistd::gethostname()?;
    if host.to_string_lossy() == "oci-host" {
        anyhow::bail!("the host's hostname changed");
    }
    Ok(())
}

fn new_ns(ctx: &mut Ctx, ns: &str) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.args(&["/bin/readlink", &format!("/proc/self/ns/{ns}")]);
    let out = ctx.run_ok(&b)?;
    let host = host_ns("self", ns)?;
    if out.trim().is_empty() || out.trim() == host {
        anyhow::bail!("container {ns} namespace {:?}, host's {host:?}", out.trim());
    }
    Ok(())
}

fn net(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.sh("tail -n +3 /proc/net/dev | cut -d: -f1; readlink /proc/self/ns/net");
    let out = ctx.run_ok(&b)?;
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let host = host_ns("self", "net")?;
    expect_eq("interfaces", lines.first().copied(), Some("lo"))?;
    expect_eq("line count (lo, ns link)", lines.len(), 2)?;
    if lines[1] == host {
        anyhow::bail!("container shares the host's network namespace");
    }
    Ok(())
}

fn net_host(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(
        &["linux", "namespaces"],
        json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]),
    );
    // sysfs of the host network namespace may not be mounted without netns.
    if let Some(m) = b.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/sys");
        m.retain(|m| m["destination"] != "/sys/fs/cgroup");
    }
    b.args(&["/bin/readlink", "/proc/self/ns/net"]);
    let out = ctx.run_ok(&b)?;
    expect_eq(
        "network namespace",
        out.trim(),
        host_ns("self", "net")?.as_str(),
    )
}

fn cgroup(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.namespace(json!({"type": "cgroup"}));
    b.sh("cat /proc/self/cgroup; echo ==; readlink /proc/self/ns/cgroup");
    let out = ctx.run_ok(&b)?;
    let (groups, link) = out.split_once("==\n").unwrap_or((out.as_str(), ""));
    if groups.trim().is_empty() {
        anyhow::bail!("no /proc/self/cgroup output");
    }
    for l in groups.lines() {
        if !l.ends_with(":/") {
            anyhow::bail!("cgroup line {l:?} is not the namespace root");
        }
    }
    if link.trim() == host_ns("self", "cgroup")? {
        anyhow::bail!("container shares the host's cgroup namespace");
    }
    Ok(())
}

fn user(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.namespace(json!({"type": "user"}));
    b.set(
        &["linux", "uidMappings"],
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    b.set(
        &["linux", "gidMappings"],
        json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
    );
    b.set(&["process", "user"], json!({"uid": 0, "gid": 0}));
    // The rootfs must be reachable by the mapped root: it is (o+rx everywhere).
    b.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; readlink /proc/self/ns/user");
    let out = ctx.run_ok(&b)?;
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    expect_eq(
        "uid_map, gid_map, id -u, id -g",
        lines.get(..4).map(|l| l.to_vec()),
        Some(vec![
            vec!["0", "100000", "65536"],
            vec!["0", "200000", "65536"],
            vec!["0"],
            vec!["0"],
        ]),
    )?;
    let link = lines.get(4).and_then(|l| l.first()).copied().unwrap_or("");
    if link == host_ns("self", "user")? {
        anyhow::bail!("container shares the host's user namespace");
    }
    Ok(())
}

fn time(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.namespace(json!({"type": "time"}));
    let offset: u64 = 10 * 365 * 86400;
    b.set(
        &["linux", "timeOffsets"],
        json!({
            "boottime": {"secs": offset, "nanosecs": 0},
            "monotonic": {"secs": offset, "nanosecs": 0}
        }),
    );
    b.args(&["/bin/cat", "/proc/uptime"]);
    let out = ctx.run_ok(&b)?;
    let up: f64 = out
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad /proc/uptime {out:?}"))?;
    if up < offset as f64 {
        anyhow::bail!("uptime {up}s inside, below the {offset}s boottime offset");
    }
    Ok(())
}

fn join(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut a = ctx.bundle()?;
    a.args(&["/bin/sleep", "1000"]);
    ctx.run_detached(&a)?;
    let pid = ctx.pid(&a.id)?.to_string();
    let mut b = ctx.bundle()?;
    let mut nss = Vec::new();
    for (ty, link) in [("network", "net"), ("ipc", "ipc"), ("uts", "uts")] {
        nss.push(json!({"type": ty, "path": format!("/proc/{pid}/ns/{link}")}));
    }
    nss.push(json!({"type": "pid"}));
    nss.push(json!({"type": "mount"}));
    b.set(&["linux", "namespaces"], json!(nss));
    if let Some(o) = b.config.as_object_mut() {
        o.remove("hostname");
    }
    b.sh("for n in net ipc uts; do readlink /proc/self/ns/$n; done; hostname");
    let out = ctx.run_ok(&b)?;
    let want = vec![
        host_ns(&pid, "net")?,
        host_ns(&pid, "ipc")?,
        host_ns(&pid, "uts")?,
        "berth-oci".to_string(),
    ];
    expect_eq(
        "namespaces of the joining container",
        out.lines().map(str::to_string).collect::<Vec<_>>(),
        want,
    )
}
