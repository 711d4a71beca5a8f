//! Root, real kernel: runtimes that are broken on purpose must FAIL the suite.

mod common;

use common::{Line, TempDir, expected_summary, suite};

/// A "runtime" that exits 0 without doing anything fails every case.
#[test]
fn do_nothing_runtime_fails_every_case() {
    let t = TempDir::new("noop");
    let rt = t.script("noop-runtime", "#!/bin/sh\nexit 0\n");
    let run = suite(&["--runtime", &rt.to_string_lossy(), "--timeout", "10"]);
    let all = common::all_cases();
    assert_eq!(run.cases.len(), all.len(), "{}", run.stdout);
    let passed: Vec<&String> = run
        .cases
        .iter()
        .filter(|(_, l)| **l == Line::Ok)
        .map(|(n, _)| n)
        .collect();
    assert!(passed.is_empty(), "passed with a no-op runtime: {passed:?}");
    assert_eq!(run.count(|l| matches!(l, Line::Skip(_))), 0);
    assert_eq!(run.summary, format!("0 passed, {} failed", all.len()));
    assert_eq!(run.summary, expected_summary(&run));
    assert_ne!(run.code, 0);
}

/// runc behind a wrapper that drops fields from config.json: exactly the cases
/// checking those fields fail, and the others still pass.
#[test]
fn runtime_ignoring_fields_fails_those_cases() {
    let t = TempDir::new("strip");
    let rt = t.script(
        "stripping-runtime",
        r#"#!/bin/sh
# Finds --bundle DIR and removes fields from its config.json, then runs runc.
prev=
for a in "$@"; do
  if [ "$prev" = "--bundle" ] && [ -f "$a/config.json" ]; then
    jq 'del(.linux.maskedPaths) | del(.process.rlimits) | del(.linux.sysctl)
        | del(.process.user.additionalGids) | del(.linux.resources.pids)
        | del(.process.capabilities.ambient)' "$a/config.json" > "$a/config.json.new" \
      && mv "$a/config.json.new" "$a/config.json"
  fi
  prev=$a
done
exec runc "$@"
"#,
    );
    let must_fail = [
        "masked_paths",
        "masked_path_symlink_in_rootfs",
        "process_rlimits",
        "sysctl",
        "process_additional_gids",
        "cgroup_pids_limit_stops_fork_bomb",
        "caps_ambient_non_root",
        "caps_five_sets_root",
    ];
    let must_pass = ["process_args", "process_cwd", "ns_pid_init_is_pid1"];
    for name in must_fail.iter().chain(must_pass.iter()) {
        let run = suite(&["--runtime", &rt.to_string_lossy(), "--filter", name]);
        let v = run.verdict(name);
        if must_fail.contains(name) {
            assert!(
                matches!(v, Line::Fail(_)),
                "{name} passed with the field removed"
            );
            assert_ne!(run.code, 0);
        } else {
            assert_eq!(v, &Line::Ok, "{name}");
        }
    }
}

/// runc behind a wrapper that always exits 0: exit statuses and bad input fail.
#[test]
fn runtime_hiding_exit_status_fails() {
    let t = TempDir::new("exit0");
    let rt = t.script("exit0-runtime", "#!/bin/sh\nrunc \"$@\"\nexit 0\n");
    for name in [
        "process_exit_status",
        "bad_unknown_id",
        "bad_missing_rootfs",
        "seccomp_kill",
    ] {
        let run = suite(&["--runtime", &rt.to_string_lossy(), "--filter", name]);
        assert!(
            matches!(run.verdict(name), Line::Fail(_)),
            "{name} passed although the runtime hides failures:\n{}",
            run.stdout
        );
    }
}

/// A runtime that starts the process at `create` breaks the lifecycle cases.
#[test]
fn runtime_starting_at_create_fails_lifecycle() {
    let t = TempDir::new("eager");
    let rt = t.script(
        "eager-runtime",
        r#"#!/bin/sh
# `create ... ID` immediately starts the container too.
case " $* " in
  *" create "*) runc "$@" || exit $?; eval "id=\${$#}"; exec runc --root "$2" start "$id" ;;
esac
exec runc "$@"
"#,
    );
    for name in [
        "create_does_not_start_the_process",
        "state_fields_and_transitions",
    ] {
        let run = suite(&["--runtime", &rt.to_string_lossy(), "--filter", name]);
        assert!(
            matches!(run.verdict(name), Line::Fail(_)),
            "{name} passed with a runtime that starts at create:\n{}",
            run.stdout
        );
    }
}

/// runc behind a wrapper that drops --all, --pid-file and --preserve-fds: the
/// cases for those flags fail.
#[test]
fn runtime_ignoring_flags_fails_those_cases() {
    let t = TempDir::new("flags");
    let rt = t.script(
        "flag-dropping-runtime",
        r#"#!/bin/sh
skip=0
for a in "$@"; do
  shift
  if [ $skip = 1 ]; then skip=0; continue; fi
  case "$a" in
    --all) continue ;;
    --pid-file|--preserve-fds) skip=1; continue ;;
  esac
  set -- "$@" "$a"
done
exec runc "$@"
"#,
    );
    for name in [
        "kill_all",
        "pid_file",
        "preserve_fds",
        "exec_detach_pid_file",
    ] {
        let run = suite(&["--runtime", &rt.to_string_lossy(), "--filter", name]);
        assert!(
            matches!(run.verdict(name), Line::Fail(_)),
            "{name} passed although the runtime drops its flag:\n{}",
            run.stdout
        );
    }
}

/// A runtime that hangs is killed at --timeout with everything it forked, and the
/// case fails saying so.
#[test]
fn hanging_runtime_times_out_and_is_killed() {
    let t = TempDir::new("hang");
    let pids = t.0.join("pids");
    let rt = t.script(
        "hanging-runtime",
        &format!(
            "#!/bin/sh\nsleep 1000 &\necho $! >> {}\nwait\n",
            pids.display()
        ),
    );
    let run = suite(&[
        "--runtime",
        &rt.to_string_lossy(),
        "--timeout",
        "2",
        "--filter",
        "process_args",
    ]);
    for name in ["process_args", "process_args_path_lookup"] {
        match run.verdict(name) {
            Line::Fail(why) => assert!(why.contains("timed out"), "{name}: {why}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    let text = std::fs::read_to_string(&pids).expect("the runtime ran");
    for pid in text.lines() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        assert!(
            stat.is_empty() || state.starts_with('Z'),
            "child {pid} of the hung runtime is still alive: {stat}"
        );
    }
}
