//! `mounts`, `root.readonly`, `linux.maskedPaths`, `linux.readonlyPaths`, default
//! devices, /dev symlinks and `linux.devices` (runtime-spec config.md "Mounts",
//! config-linux.md "Devices", runtime-linux.md "Dev symbolic links").

use serde_json::json;

use super::{Case, case, expect_contains, expect_eq};
use crate::oci::bundle::Bundle;
use crate::oci::check::{MountInfo, mount_at, parse_mountinfo};
use crate::oci::ctx::Ctx;

pub fn cases() -> Vec<Case> {
    vec![
        case("mount_bind_ro", bind_ro),
        case("mount_bind_rw", bind_rw),
        case("mount_rbind_keeps_submounts", rbind),
        case("mount_tmpfs_size_mode", tmpfs),
        case("mount_proc", |c| fstype_at(c, "/proc", "proc", false)),
        case("mount_sysfs_ro", |c| fstype_at(c, "/sys", "sysfs", true)),
        case("mount_devpts", |c| {
            fstype_at(c, "/dev/pts", "devpts", false)
        }),
        case("mount_mqueue", |c| {
            fstype_at(c, "/dev/mqueue", "mqueue", false)
        }),
        case("mount_dev_shm_tmpfs", |c| {
            fstype_at(c, "/dev/shm", "tmpfs", false)
        }),
        case("mount_cgroup", cgroupfs),
        case("mount_flags_nosuid_nodev_noexec", flags),
        case("mount_propagation_flags", propagation),
        case("root_readonly", root_readonly),
        case("rootfs_propagation", rootfs_propagation),
        case("masked_paths", masked),
        case("masked_path_symlink_in_rootfs", masked_symlink),
        case("readonly_paths", readonly_paths),
        case("dev_default_devices", default_devices),
        case("dev_symlinks", dev_symlinks),
        case("dev_spec_device_node", spec_device),
        case("dev_cgroup_denies_unlisted_device", device_denied),
    ]
}

/// Runs `sh -c SCRIPT; echo ==mountinfo==; cat /proc/self/mountinfo` and returns the
/// script's output and the parsed mount table.
fn with_mountinfo(
    ctx: &mut Ctx,
    b: &mut Bundle,
    script: &str,
) -> anyhow::Result<(String, Vec<MountInfo>)> {
    b.sh(&format!(
        "{script}\necho ==mountinfo==; cat /proc/self/mountinfo"
    ));
    let out = ctx.run_ok(b)?;
    let (head, tail) = out
        .split_once("==mountinfo==\n")
        .unwrap_or((out.as_str(), ""));
    Ok((head.to_string(), parse_mountinfo(tail)))
}

fn find<'a>(mounts: &'a [MountInfo], point: &str) -> anyhow::Result<&'a MountInfo> {
    mount_at(mounts, point).ok_or_else(|| anyhow::anyhow!("nothing mounted at {point}"))
}

fn host_dir(ctx: &Ctx, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let d = ctx.path(name);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn bind_ro(ctx: &mut Ctx) -> anyhow::Result<()> {
    let src = host_dir(ctx, "ro-src")?;
    std::fs::write(src.join("data"), "host data\n")?;
    let mut b = ctx.bundle()?;
    b.mount(
        json!({"destination": "/mnt/ro", "type": "bind", "source": src, "options": ["bind", "ro"]}),
    );
    let (out, mi) = with_mountinfo(
        ctx,
        &mut b,
        "cat /mnt/ro/data; touch /mnt/ro/new 2>/dev/null && echo WROTE || echo REFUSED",
    )?;
    expect_eq("output", out.as_str(), "host data\nREFUSED\n")?;
    if !find(&mi, "/mnt/ro")?.readonly() {
        anyhow::bail!("/mnt/ro is not mounted ro");
    }
    if src.join("new").exists() {
        anyhow::bail!("a file appeared in the read-only source");
    }
    Ok(())
}

fn bind_rw(ctx: &mut Ctx) -> anyhow::Result<()> {
    let src = host_dir(ctx, "rw-src")?;
    let mut b = ctx.bundle()?;
    b.mount(
        json!({"destination": "/mnt/rw", "type": "none", "source": src, "options": ["bind", "rw"]}),
    );
    b.sh("echo from-container > /mnt/rw/out");
    ctx.run_ok(&b)?;
    let got = std::fs::read_to_string(src.join("out"))
        .map_err(|e| anyhow::anyhow!("file written in the container is not on the host: {e}"))?;
    expect_eq("host copy", got.as_str(), "from-container\n")
}

fn rbind(ctx: &mut Ctx) -> anyhow::Result<()> {
    let src = host_dir(ctx, "rbind-src")?;
    let sub = src.join("sub");
    std::fs::create_dir_all(&sub)?;
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=64k"),
    )?;
    ctx.track_mount(&sub);
    std::fs::write(sub.join("inner"), "x")?;
    let mut b = ctx.bundle()?;
    b.mount(json!({"destination": "/mnt/r", "type": "bind", "source": src, "options": ["rbind"]}));
    b.mount(json!({"destination": "/mnt/b", "type": "bind", "source": src, "options": ["bind"]}));
    b.sh("ls /mnt/r/sub; echo ==; ls /mnt/b/sub");
    let out = ctx.run_ok(&b)?;
    expect_eq("rbind sub / bind sub", out.as_str(), "inner\n==\n")
}

fn tmpfs(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.mount(
        json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
                   "options": ["size=1m", "mode=1770", "nosuid"]}),
    );
    let (out, mi) = with_mountinfo(ctx, &mut b, "stat -c %a /mnt/t")?;
    expect_eq("mode", out.trim(), "1770")?;
    let m = find(&mi, "/mnt/t")?;
    expect_eq("fstype", m.fstype.as_str(), "tmpfs")?;
    if !m.super_options.iter().any(|o| o == "size=1024k") {
        anyhow::bail!("tmpfs options {:?} lack size=1024k", m.super_options);
    }
    if !m.options.iter().any(|o| o == "nosuid") {
        anyhow::bail!("mount options {:?} lack nosuid", m.options);
    }
    Ok(())
}

fn fstype_at(ctx: &mut Ctx, point: &str, fstype: &str, ro: bool) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    let (_, mi) = with_mountinfo(ctx, &mut b, "true")?;
    let m = find(&mi, point)?;
    expect_eq(&format!("fstype at {point}"), m.fstype.as_str(), fstype)?;
    if ro && !m.readonly() {
        anyhow::bail!("{point} is not read-only");
    }
    Ok(())
}

fn cgroupfs(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    let (_, mi) = with_mountinfo(ctx, &mut b, "true")?;
    if let Some(m) = mount_at(&mi, "/sys/fs/cgroup")
        && m.fstype == "cgroup2"
    {
        return Ok(());
    }
    let v1: Vec<&MountInfo> = mi
        .iter()
        .filter(|m| m.mount_point.starts_with("/sys/fs/cgroup/") && m.fstype == "cgroup")
        .collect();
    if !v1
        .iter()
        .any(|m| m.super_options.iter().any(|o| o == "memory"))
    {
        anyhow::bail!("no cgroup (v1 memory) or cgroup2 mount under /sys/fs/cgroup");
    }
    if let Some(m) = v1.iter().find(|m| !m.readonly()) {
        anyhow::bail!("{} is writable although the mount asks ro", m.mount_point);
    }
    Ok(())
}

fn flags(ctx: &mut Ctx) -> anyhow::Result<()> {
    let src = host_dir(ctx, "flags-src")?;
    let mut b = ctx.bundle()?;
    b.mount(
        json!({"destination": "/mnt/f", "type": "bind", "source": src,
                   "options": ["rbind", "nosuid", "nodev", "noexec", "ro"]}),
    );
    let (_, mi) = with_mountinfo(ctx, &mut b, "true")?;
    let m = find(&mi, "/mnt/f")?;
    for want in ["nosuid", "nodev", "noexec", "ro"] {
        if !m.options.iter().any(|o| o == want) {
            anyhow::bail!("/mnt/f options {:?} lack {want}", m.options);
        }
    }
    Ok(())
}

fn propagation(ctx: &mut Ctx) -> anyhow::Result<()> {
    let a = host_dir(ctx, "prop-shared")?;
    let p = host_dir(ctx, "prop-private")?;
    let mut b = ctx.bundle()?;
    b.mount(json!({"destination": "/mnt/s", "type": "bind", "source": a, "options": ["rbind", "rshared"]}));
    b.mount(json!({"destination": "/mnt/p", "type": "bind", "source": p, "options": ["rbind", "rprivate"]}));
    let (_, mi) = with_mountinfo(ctx, &mut b, "true")?;
    if !find(&mi, "/mnt/s")?.shared() {
        anyhow::bail!(
            "/mnt/s (rshared) is not shared: {:?}",
            find(&mi, "/mnt/s")?.optional
        );
    }
    let m = find(&mi, "/mnt/p")?;
    if m.shared() || m.slave() {
        anyhow::bail!("/mnt/p (rprivate) has propagation {:?}", m.optional);
    }
    Ok(())
}

fn root_readonly(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["root", "readonly"], json!(true));
    let (out, mi) = with_mountinfo(
        ctx,
        &mut b,
        "touch /tmp/x 2>/dev/null && echo WROTE || echo REFUSED; touch /dev/shm/x && echo SHM-OK",
    )?;
    expect_eq("output", out.as_str(), "REFUSED\nSHM-OK\n")?;
    if !find(&mi, "/")?.readonly() {
        anyhow::bail!("/ is not mounted ro");
    }
    Ok(())
}

/// `linux.rootfsPropagation`: "shared" makes / a shared mount, "private" a
/// private one.
fn rootfs_propagation(ctx: &mut Ctx) -> anyhow::Result<()> {
    for (mode, want_shared) in [("shared", true), ("private", false)] {
        let mut b = ctx.bundle()?;
        b.set(&["linux", "rootfsPropagation"], json!(mode));
        let (_, mi) = with_mountinfo(ctx, &mut b, "true")?;
        let root = find(&mi, "/")?;
        if root.shared() != want_shared || (!want_shared && root.slave()) {
            anyhow::bail!("rootfsPropagation {mode}: / has {:?}", root.optional);
        }
    }
    Ok(())
}

fn masked(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    std::fs::write(b.rootfs().join("etc/secret"), "secret-file\n")?;
    std::fs::create_dir_all(b.rootfs().join("etc/secretdir"))?;
    std::fs::write(b.rootfs().join("etc/secretdir/inside"), "x")?;
    b.push(&["linux", "maskedPaths"], json!("/etc/secret"));
    b.push(&["linux", "maskedPaths"], json!("/etc/secretdir"));
    b.push(&["linux", "maskedPaths"], json!("/etc/does-not-exist"));
    b.sh(
        "cat /etc/secret; echo ==; ls /etc/secretdir; echo ==; head -c 16 /proc/kcore | wc -c; \
         touch /etc/secretdir/n 2>/dev/null && echo WROTE; echo end",
    );
    let out = ctx.run_ok(&b)?;
    expect_eq(
        "masked file, masked dir, /proc/kcore bytes",
        out.as_str(),
        "==\n==\n0\nend\n",
    )
}

fn masked_symlink(ctx: &mut Ctx) -> anyhow::Result<()> {
    let host_secret = ctx.path("host-secret");
    std::fs::write(&host_secret, "host-secret\n")?;
    let mut b = ctx.bundle()?;
    let root = b.rootfs();
    std::fs::write(root.join("etc/target"), "target-secret\n")?;
    std::os::unix::fs::symlink("/etc/target", root.join("etc/masklink"))?;
    // A link whose target exists only on the host: must never be resolved there.
    std::os::unix::fs::symlink(&host_secret, root.join("etc/hostlink"))?;
    b.push(&["linux", "maskedPaths"], json!("/etc/masklink"));
    b.push(&["linux", "maskedPaths"], json!("/etc/hostlink"));
    b.sh("cat /etc/masklink 2>/dev/null; echo ==; cat /etc/hostlink 2>/dev/null; echo end");
    let out = ctx.run_ok(&b)?;
    if out.contains("target-secret") {
        anyhow::bail!("the masked symlink still reads its target: {:?}", out);
    }
    if out.contains("host-secret") {
        anyhow::bail!("a masked symlink reached a host file: {:?}", out);
    }
    expect_contains("output", &out, "end")?;
    expect_eq(
        "host file after the run",
        std::fs::read_to_string(&host_secret)?.as_str(),
        "host-secret\n",
    )?;
    expect_eq(
        "rootfs file after the run",
        std::fs::read_to_string(root.join("etc/target"))?.as_str(),
        "target-secret\n",
    )
}

fn readonly_paths(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.push(&["linux", "readonlyPaths"], json!("/etc"));
    let (out, mi) = with_mountinfo(
        ctx,
        &mut b,
        "touch /etc/x 2>/dev/null && echo WROTE-ETC; echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo WROTE-SYS; touch /tmp/ok && echo TMP-OK",
    )?;
    expect_eq("output", out.as_str(), "TMP-OK\n")?;
    for p in ["/etc", "/proc/sys"] {
        if !find(&mi, p)?.readonly() {
            anyhow::bail!("{p} is not mounted ro");
        }
    }
    Ok(())
}

fn default_devices(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.sh(
        "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T' /dev/$d; done; \
         echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c",
    );
    let out = ctx.run_ok(&b)?;
    expect_eq(
        "devices",
        out.lines().collect::<Vec<_>>(),
        vec![
            "/dev/null character special file 1:3",
            "/dev/zero character special file 1:5",
            "/dev/full character special file 1:7",
            "/dev/random character special file 1:8",
            "/dev/urandom character special file 1:9",
            "/dev/tty character special file 5:0",
            "4",
            "4",
        ],
    )
}

fn dev_symlinks(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.sh(
        "for l in fd stdin stdout stderr; do echo $l $(readlink /dev/$l); done; \
         if [ -L /dev/ptmx ]; then echo ptmx $(readlink /dev/ptmx); else stat -c 'ptmx %t:%T' /dev/ptmx; fi",
    );
    let out = ctx.run_ok(&b)?;
    let lines: Vec<&str> = out.lines().collect();
    expect_eq(
        "/dev links",
        lines.get(..4).map(|l| l.to_vec()),
        Some(vec![
            "fd /proc/self/fd",
            "stdin /proc/self/fd/0",
            "stdout /proc/self/fd/1",
            "stderr /proc/self/fd/2",
        ]),
    )?;
    match lines.get(4).copied() {
        Some("ptmx pts/ptmx") | Some("ptmx /dev/pts/ptmx") | Some("ptmx 5:2") => Ok(()),
        other => anyhow::bail!("/dev/ptmx is {other:?}, want a link to pts/ptmx"),
    }
}

fn spec_device(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.push(
        &["linux", "devices"],
        json!({"path": "/dev/berthnull", "type": "c", "major": 1, "minor": 3,
               "fileMode": 0o640, "uid": 0, "gid": 1000}),
    );
    b.push(
        &["linux", "resources", "devices"],
        json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}),
    );
    b.sh("stat -c '%F %t:%T %a %u %g' /dev/berthnull; echo x > /dev/berthnull && echo WROTE");
    let out = ctx.run_ok(&b)?;
    expect_eq(
        "device node",
        out.as_str(),
        "character special file 1:3 640 0 1000\nWROTE\n",
    )
}

fn device_denied(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    // /dev/kmsg's numbers, under another name, with no cgroup rule allowing it.
    b.push(
        &["linux", "devices"],
        json!({"path": "/dev/berthkmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666}),
    );
    b.sh("test -c /dev/berthkmsg && echo NODE; head -c 1 /dev/berthkmsg >/dev/null 2>&1 && echo OPENED; echo end");
    let out = ctx.run_ok(&b)?;
    expect_eq("output", out.as_str(), "NODE\nend\n")
}
