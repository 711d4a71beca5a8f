//! `process`: args, env, cwd, user, umask, stdio, rlimits, oomScoreAdj
//! (runtime-spec config.md "Process").

use serde_json::json;

use super::{Case, case, expect_contains, expect_eq};
use crate::oci::check::status_field;
use crate::oci::ctx::Ctx;
use crate::oci::driver::Input;

pub fn cases() -> Vec<Case> {
    vec![
        case("process_args", args),
        case("process_args_path_lookup", path_lookup),
        case("process_env", env),
        case("process_cwd", cwd),
        case("process_user_uid_gid", user),
        case("process_additional_gids", additional_gids),
        case("process_umask", umask),
        case("process_stdio_no_terminal", stdio),
        case("process_exit_status", exit_status),
        case("process_rlimits", rlimits),
        case("process_rlimit_raise_hard_refused", rlimit_raise),
        case("process_oom_score_adj", oom_score_adj),
        case("process_oom_score_adj_negative", oom_score_adj_negative),
    ]
}

fn args(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.args(&["/bin/echo", "one two", "three"]);
    let out = ctx.run_ok(&b)?;
    expect_eq("stdout", out.as_str(), "one two three\n")
}

/// A bare program name is looked up in the process's PATH.
fn path_lookup(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["process", "env"], json!(["PATH=/nowhere:/bin"]));
    b.args(&["echo", "found"]);
    let out = ctx.run_ok(&b)?;
    expect_eq("stdout", out.as_str(), "found\n")
}

fn env(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(
        &["process", "env"],
        json!(["PATH=/bin", "BERTH_A=x y", "BERTH_B="]),
    );
    b.args(&["/bin/env"]);
    let out = ctx.run_ok(&b)?;
    // runc adds HOME from /etc/passwd when the spec leaves it out; allowed.
    let mut lines: Vec<&str> = out.lines().filter(|l| !l.starts_with("HOME=")).collect();
    lines.sort();
    expect_eq(
        "environment",
        lines,
        vec!["BERTH_A=x y", "BERTH_B=", "PATH=/bin"],
    )
}

fn cwd(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["process", "cwd"], json!("/home/user"));
    b.args(&["/bin/pwd"]);
    let out = ctx.run_ok(&b)?;
    expect_eq("pwd", out.trim(), "/home/user")
}

fn user(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["process", "user"], json!({"uid": 1000, "gid": 1001}));
    b.args(&["/bin/cat", "/proc/self/status"]);
    let out = ctx.run_ok(&b)?;
    expect_eq("Uid", status_field(&out, "Uid")?, "1000\t1000\t1000\t1000")?;
    expect_eq("Gid", status_field(&out, "Gid")?, "1001\t1001\t1001\t1001")?;
    expect_eq("Groups", status_field(&out, "Groups")?, "")
}

fn additional_gids(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(
        &["process", "user"],
        json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 6, 700]}),
    );
    b.args(&["/bin/cat", "/proc/self/status"]);
    let out = ctx.run_ok(&b)?;
    let mut groups: Vec<&str> = status_field(&out, "Groups")?.split_whitespace().collect();
    groups.sort();
    // The primary gid may or may not be listed, as with runc; the extra ones must.
    groups.retain(|g| *g != "1000");
    expect_eq("supplementary groups", groups, vec!["5", "6", "700"])
}

fn umask(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["process", "user", "umask"], json!(0o27));
    b.sh("grep Umask /proc/self/status; touch /tmp/f; stat -c %a /tmp/f");
    let out = ctx.run_ok(&b)?;
    expect_eq("Umask", status_field(&out, "Umask")?, "0027")?;
    expect_eq(
        "mode of a new file",
        out.lines().last().unwrap_or(""),
        "640",
    )
}

fn stdio(ctx: &mut Ctx) -> anyhow::Result<()> {
    let input = ctx.path("stdin.txt");
    std::fs::write(&input, "from stdin\n")?;
    let mut b = ctx.bundle()?;
    b.sh("read line; echo \"out:$line\"; echo err-line >&2; [ -t 0 ] && echo tty0; [ -t 1 ] && echo tty1; true");
    let out = ctx.run_input(&b, &Input::File(input))?;
    out.check()?;
    expect_eq("stdout", out.stdout.as_str(), "out:from stdin\n")?;
    expect_contains("stderr", &out.stderr, "err-line")
}

fn exit_status(ctx: &mut Ctx) -> anyhow::Result<()> {
    for code in [0, 3, 42] {
        let mut b = ctx.bundle()?;
        b.sh(&format!("exit {code}"));
        let out = ctx.run(&b)?;
        expect_eq("exit status of `run`", out.code(), code)?;
    }
    Ok(())
}

fn rlimits(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(
        &["process", "rlimits"],
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 777},
            {"type": "RLIMIT_NPROC", "soft": 333, "hard": 444},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
        ]),
    );
    b.sh("ulimit -Sn; ulimit -Hn; ulimit -Su; ulimit -Hu; ulimit -Hc");
    let out = ctx.run_ok(&b)?;
    expect_eq(
        "ulimit -Sn -Hn -Su -Hu -Hc",
        out.lines().collect::<Vec<_>>(),
        vec!["512", "777", "333", "444", "0"],
    )
}

/// Raising a hard limit above the caller's needs CAP_SYS_RESOURCE; without it the
/// runtime must fail with an error, never start the process with other limits.
fn rlimit_raise(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut host = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut host) } != 0 {
        anyhow::bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    let want = host.rlim_max.saturating_add(1000);
    let mut b = ctx.bundle()?;
    b.set(
        &["process", "rlimits"],
        json!([{"type": "RLIMIT_NOFILE", "soft": want, "hard": want}]),
    );
    b.sh("ulimit -Hn");
    let out = ctx.run(&b)?;
    if out.code() == 0 {
        if has_cap_sys_resource()? {
            return expect_eq("hard limit", out.stdout.trim(), &want.to_string());
        }
        anyhow::bail!(
            "raising RLIMIT_NOFILE to {want} without CAP_SYS_RESOURCE succeeded (container saw {:?})",
            out.stdout.trim()
        );
    }
    if out.stderr.trim().is_empty() {
        anyhow::bail!("failed with exit {} but printed no error", out.code());
    }
    Ok(())
}

fn has_cap_sys_resource() -> anyhow::Result<bool> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    let eff = crate::oci::check::status_caps(&s, "CapEff")?;
    Ok(eff & (1 << 24) != 0)
}

fn oom_score_adj(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["process", "oomScoreAdj"], json!(678));
    b.args(&["/bin/cat", "/proc/self/oom_score_adj"]);
    let out = ctx.run_ok(&b)?;
    expect_eq("oom_score_adj", out.trim(), "678")
}

/// A negative oomScoreAdj needs CAP_SYS_RESOURCE: without it, a clear error, or
/// (a runtime that had the capability) exactly the value.
fn oom_score_adj_negative(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle()?;
    b.set(&["process", "oomScoreAdj"], json!(-500));
    b.args(&["/bin/cat", "/proc/self/oom_score_adj"]);
    let out = ctx.run(&b)?;
    if out.code() == 0 {
        return expect_eq("oom_score_adj", out.stdout.trim(), "-500");
    }
    if out.stderr.trim().is_empty() {
        anyhow::bail!("failed with exit {} but printed no error", out.code());
    }
    Ok(())
}
