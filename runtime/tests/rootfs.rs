//! Root integration tests of `berth_runtime::rootfs` on the real kernel.
//!
//! Each test builds a bundle in a temp dir (rootfs from Debian's busybox-static),
//! forks a child that unshares its mount namespace and runs prepare → pivot → finalize,
//! then checks from inside; the child reports through a pipe, the parent asserts and
//! also checks the host side. Temp dirs are removed by a Drop guard; every mount lives
//! in the child's namespace and dies with it.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use berth_runtime::rootfs::{self, RootfsConfig, RootfsError};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::{Mode, fstat, major, minor};
use nix::sys::statfs::statfs;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork, pipe};
use oci_spec::runtime::Spec;
use serde_json::{Value, json};

const BUSYBOX: &str = "/bin/busybox";

/// A bundle directory with a busybox rootfs; removed on drop.
struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    fn new(tag: &str) -> Bundle {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "berth-rootfs-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        let b = Bundle { dir };
        let r = b.rootfs();
        for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "data"] {
            fs::create_dir_all(r.join(d)).expect("create rootfs dirs");
        }
        assert!(
            Path::new(BUSYBOX).exists(),
            "{BUSYBOX} is missing: apt-get install -y busybox-static"
        );
        fs::copy(BUSYBOX, r.join("bin/busybox")).expect("copy busybox");
        symlink("busybox", r.join("bin/sh")).expect("sh symlink");
        fs::write(r.join("etc/passwd"), "container\n").expect("passwd");
        b
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    fn host(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn spec(v: Value) -> Spec {
    let mut base = json!({
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        ],
        "linux": {"namespaces": [{"type": "mount"}]}
    });
    if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
        for (k, val) in o {
            b.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(base).expect("test spec is valid")
}

/// Runs `f` in a forked child that first unshares its mount namespace; returns the
/// child's error message (or exit status) as an Err.
fn in_child(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (r, w) = pipe().expect("pipe");
    // SAFETY: the child only runs the closure (its own allocations are fine under glibc's
    // fork handlers; nextest runs one test per process) and leaves with _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(r);
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
                f()
            }));
            let msg = match res {
                Ok(Ok(())) => String::new(),
                Ok(Err(e)) => e,
                Err(_) => "child panicked".to_string(),
            };
            let mut w = fs::File::from(w);
            let _ = w.write_all(msg.as_bytes());
            drop(w);
            // SAFETY: leave the forked child without running the parent's destructors.
            unsafe { libc::_exit(if msg.is_empty() { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut msg = String::new();
            fs::File::from(r)
                .read_to_string(&mut msg)
                .expect("read pipe");
            match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, 0) if msg.is_empty() => Ok(()),
                status if msg.is_empty() => Err(format!("child ended with {status:?}")),
                _ => Err(msg),
            }
        }
    }
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what.into()) }
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// Runs the three phases.
fn setup(cfg: &RootfsConfig) -> Result<(), String> {
    rootfs::prepare(cfg).map_err(|e| format!("prepare: {e}"))?;
    rootfs::pivot(cfg).map_err(|e| format!("pivot: {e}"))?;
    rootfs::finalize(cfg).map_err(|e| format!("finalize: {e}"))
}

/// The mount entry (fstype, mount options, super options) at `point` in this namespace.
fn mount_at(point: &str) -> Option<(String, String, String)> {
    let mi = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().rev().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let lf: Vec<&str> = left.split(' ').collect();
        let rf: Vec<&str> = right.split(' ').collect();
        (lf.get(4) == Some(&point)).then(|| {
            (
                rf[0].to_string(),
                lf[5].to_string(),
                rf.get(2).unwrap_or(&"").to_string(),
            )
        })
    })
}

fn host_mount_points() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("host mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

fn run_busybox(args: &[&str]) -> Result<i32, String> {
    let argv: Vec<CString> = std::iter::once("busybox")
        .chain(args.iter().copied())
        .map(|a| CString::new(a).expect("arg"))
        .collect();
    let path = CString::new("/bin/busybox").expect("path");
    // SAFETY: the grandchild execs at once.
    match unsafe { fork() }.map_err(|e| e.to_string())? {
        ForkResult::Child => {
            let _ = nix::unistd::execv(&path, &argv);
            // SAFETY: exec failed; leave at once.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).map_err(|e| e.to_string())? {
            WaitStatus::Exited(_, code) => Ok(code),
            s => Err(format!("busybox ended with {s:?}")),
        },
    }
}

#[test]
fn full_setup_from_inside() {
    let b = Bundle::new("full");
    let hostdata = b.host("hostdata");
    fs::create_dir_all(&hostdata).expect("hostdata");
    fs::write(hostdata.join("file"), "hello").expect("file");
    let r = b.rootfs();
    fs::write(r.join("secret-file"), "secret").expect("secret file");
    fs::create_dir_all(r.join("secret-dir")).expect("secret dir");
    fs::write(r.join("secret-dir/inner"), "secret").expect("secret inner");
    let s = spec(json!({
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=1m"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=2m", "mode=1777"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/data", "type": "bind", "source": hostdata, "options": ["rbind", "ro", "nosuid"]},
            {"destination": "/new/deep/dir", "type": "tmpfs", "source": "tmpfs", "options": ["rro"]},
        ],
        "linux": {
            "namespaces": [{"type": "mount"}],
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 384, "uid": 7, "gid": 8}],
            "maskedPaths": ["/proc/kcore", "/proc/timer_list", "/proc/acpi", "/proc/meminfo", "/proc/fs", "/secret-file", "/secret-dir", "/does/not/exist"],
            "readonlyPaths": ["/proc/sys", "/proc/nonexistent"]
        }
    }));
    let rootfs_path = b.rootfs();
    let bundle = b.dir.clone();
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave_path =
        fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).expect("pty slave path");
    let slave_rdev = fstat(pty.slave.as_fd()).expect("stat slave").st_rdev;
    let res = in_child(|| {
        let cfg = RootfsConfig {
            spec: &s,
            rootfs: &rootfs_path,
            bundle: &bundle,
            no_pivot: false,
            console_slave: Some(&slave_path),
            idmapped: None,
        };
        setup(&cfg)?;
        check(
            std::env::current_dir().map_err(|e| e.to_string())? == Path::new("/"),
            "cwd is /",
        )?;
        let console = fs::metadata("/dev/console").map_err(|e| format!("/dev/console: {e}"))?;
        check(
            console.file_type().is_char_device() && console.rdev() == slave_rdev,
            "/dev/console is the pty slave",
        )?;
        check(
            fs::metadata("/bin/busybox").is_ok(),
            "busybox visible in the new root",
        )?;
        check(
            !Path::new(&bundle).exists(),
            "the host bundle path is not visible",
        )?;
        // /proc
        check(
            mount_at("/proc").is_some_and(|m| m.0 == "proc"),
            "proc at /proc",
        )?;
        check(
            fs::read_to_string("/proc/self/stat").is_ok(),
            "/proc/self/stat readable",
        )?;
        // devices
        for (p, maj, min) in [
            ("/dev/null", 1, 3),
            ("/dev/zero", 1, 5),
            ("/dev/full", 1, 7),
            ("/dev/tty", 5, 0),
            ("/dev/urandom", 1, 9),
            ("/dev/random", 1, 8),
        ] {
            let md = fs::metadata(p).map_err(|e| format!("{p}: {e}"))?;
            check(
                md.file_type().is_char_device(),
                format!("{p} is a char device"),
            )?;
            check(
                (major(md.rdev()), minor(md.rdev())) == (maj, min),
                format!("{p} is {maj}:{min}"),
            )?;
            check(
                md.permissions().mode() & 0o777 == 0o666,
                format!("{p} mode 0666"),
            )?;
        }
        let fuse = fs::metadata("/dev/fuse").map_err(|e| format!("/dev/fuse: {e}"))?;
        check(
            fuse.file_type().is_char_device()
                && major(fuse.rdev()) == 10
                && minor(fuse.rdev()) == 229,
            "/dev/fuse 10:229",
        )?;
        check(
            fuse.permissions().mode() & 0o777 == 0o600 && fuse.uid() == 7 && fuse.gid() == 8,
            "/dev/fuse mode and owner",
        )?;
        fs::write("/dev/null", "x").map_err(|e| format!("write /dev/null: {e}"))?;
        for (link, target) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
            ("/dev/ptmx", "pts/ptmx"),
        ] {
            let t = fs::read_link(link).map_err(|e| format!("{link}: {e}"))?;
            check(
                t == Path::new(target),
                format!("{link} -> {target}, got {t:?}"),
            )?;
        }
        if Path::new("/proc/kcore").exists() {
            check(fs::read_link("/dev/core").is_ok(), "/dev/core symlink")?;
        }
        check(
            mount_at("/dev/pts").is_some_and(|m| m.0 == "devpts" && m.2.contains("ptmxmode=666")),
            "devpts newinstance ptmxmode=666",
        )?;
        check(
            fs::metadata("/dev/pts/ptmx").is_ok(),
            "/dev/pts/ptmx exists",
        )?;
        check(
            mount_at("/dev/mqueue").is_some_and(|m| m.0 == "mqueue"),
            "mqueue mounted",
        )?;
        // tmpfs sizes
        let st = statfs("/tmp").map_err(|e| e.to_string())?;
        check(
            st.blocks() * st.block_size() as u64 == 2 * 1024 * 1024,
            format!("/tmp is 2 MiB, got {} blocks", st.blocks()),
        )?;
        let st = statfs("/dev/shm").map_err(|e| e.to_string())?;
        check(
            st.blocks() * st.block_size() as u64 == 1024 * 1024,
            "/dev/shm is 1 MiB",
        )?;
        fs::write("/tmp/x", "ok").map_err(|e| format!("/tmp writable: {e}"))?;
        // bind ro
        check(
            fs::read_to_string("/data/file").map_err(|e| e.to_string())? == "hello",
            "bind content",
        )?;
        let e = fs::write("/data/new", "x").expect_err("bind is read-only");
        check(
            errno_of(&e) == Errno::EROFS,
            format!("bind ro gives EROFS, got {e}"),
        )?;
        check(
            mount_at("/data").is_some_and(|m| m.1.contains("ro") && m.1.contains("nosuid")),
            "bind ro,nosuid",
        )?;
        check(
            mount_at("/new/deep/dir").is_some_and(|m| m.1.starts_with("ro")),
            "rro applied through mount_setattr",
        )?;
        check(
            mount_at("/sys").is_some_and(|m| m.0 == "sysfs" && m.1.starts_with("ro")),
            "sysfs ro",
        )?;
        // masked
        // Always present in procfs: asserted; the rest of runc's list when the kernel has them.
        check(
            fs::read_to_string("/proc/meminfo")
                .map_err(|e| format!("/proc/meminfo: {e}"))?
                .is_empty(),
            "/proc/meminfo reads empty",
        )?;
        check(
            fs::read_dir("/proc/fs")
                .map_err(|e| format!("/proc/fs: {e}"))?
                .next()
                .is_none(),
            "/proc/fs is an empty dir",
        )?;
        let e = fs::create_dir("/proc/fs/x").expect_err("masked dir is read-only");
        check(
            errno_of(&e) == Errno::EROFS,
            format!("masked /proc/fs EROFS, got {e}"),
        )?;
        for p in ["/proc/kcore", "/proc/timer_list"] {
            if Path::new(p).exists() {
                let content = fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
                check(content.is_empty(), format!("{p} reads empty"))?;
            }
        }
        if Path::new("/proc/acpi").exists() {
            let n = fs::read_dir("/proc/acpi")
                .map_err(|e| format!("/proc/acpi: {e}"))?
                .count();
            check(n == 0, "/proc/acpi is empty")?;
        }
        check(
            fs::read_to_string("/secret-file")
                .map_err(|e| e.to_string())?
                .is_empty(),
            "masked file reads empty",
        )?;
        let md = fs::metadata("/secret-file").map_err(|e| e.to_string())?;
        check(
            md.file_type().is_char_device() && md.rdev() == nix::sys::stat::makedev(1, 3),
            "masked file is /dev/null",
        )?;
        check(
            fs::read_dir("/secret-dir")
                .map_err(|e| e.to_string())?
                .next()
                .is_none(),
            "masked dir is empty",
        )?;
        let e = fs::write("/secret-dir/new", "x").expect_err("masked dir unwritable");
        check(
            errno_of(&e) == Errno::EROFS,
            format!("masked dir EROFS, got {e}"),
        )?;
        // read-only paths
        let e = fs::OpenOptions::new()
            .write(true)
            .open("/proc/sys/kernel/hostname")
            .expect_err("ro /proc/sys");
        check(
            errno_of(&e) == Errno::EROFS,
            format!("/proc/sys EROFS, got {e}"),
        )?;
        // read-only root
        let e = fs::write("/newfile", "x").expect_err("root is read-only");
        check(errno_of(&e) == Errno::EROFS, format!("root EROFS, got {e}"))?;
        // and a real program runs in it
        let code = run_busybox(&[
            "sh",
            "-c",
            "echo hi > /tmp/y && test \"$(cat /tmp/y)\" = hi && test -c /dev/null",
        ])?;
        check(code == 0, format!("busybox sh exit {code}"))
    });
    res.expect("inside the container");
    // Nothing leaked to the host.
    assert!(
        !host_mount_points()
            .iter()
            .any(|m| m.starts_with(&b.dir.display().to_string()))
    );
    assert_eq!(
        fs::read_to_string(b.rootfs().join("secret-file")).expect("host view"),
        "secret"
    );
}

#[test]
fn mount_destination_through_escaping_symlinks_lands_inside() {
    let b = Bundle::new("escape");
    let outside = b.host("outside");
    let outside2 = b.host("outside2");
    fs::create_dir_all(&outside).expect("outside");
    fs::create_dir_all(&outside2).expect("outside2");
    let r = b.rootfs();
    // Absolute symlink to a host directory, and a relative one climbing out.
    symlink(&outside, r.join("abs")).expect("abs link");
    let depth = r.components().count();
    let climb = "../".repeat(depth + 2);
    symlink(
        format!(
            "{climb}{}",
            outside2.display().to_string().trim_start_matches('/')
        ),
        r.join("rel"),
    )
    .expect("rel link");
    // A symlinked parent whose target exists only on the host.
    symlink(&outside, r.join("data/parent")).expect("parent link");
    let src = b.host("src");
    fs::create_dir_all(&src).expect("src");
    fs::write(src.join("marker"), "m").expect("marker");
    let s = spec(json!({
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/abs/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
            {"destination": "/rel", "type": "bind", "source": src, "options": ["bind"]},
            {"destination": "/data/parent/x/y", "type": "tmpfs", "source": "tmpfs"},
        ],
    }));
    let rootfs_path = r.clone();
    let bundle = b.dir.clone();
    let (o1, o2) = (outside.clone(), outside2.clone());
    let res = in_child(|| {
        let cfg = RootfsConfig {
            spec: &s,
            rootfs: &rootfs_path,
            bundle: &bundle,
            no_pivot: false,
            console_slave: None,
            idmapped: None,
        };
        rootfs::prepare(&cfg).map_err(|e| format!("prepare: {e}"))?;
        // Still in the host's view: nothing was mounted or created outside the rootfs.
        check(
            !o1.join("sub").exists(),
            "no sub dir created in the host directory",
        )?;
        check(
            !o1.join("x").exists(),
            "no x dir created in the host directory",
        )?;
        check(
            !o2.join("marker").exists(),
            "bind did not land on the host directory",
        )?;
        let inside1 = rootfs_path.join(o1.strip_prefix("/").map_err(|e| e.to_string())?);
        check(
            statfs(&inside1.join("sub"))
                .map_err(|e| e.to_string())?
                .filesystem_type()
                == nix::sys::statfs::TMPFS_MAGIC,
            "tmpfs landed inside the rootfs",
        )?;
        let inside2 = rootfs_path.join(o2.strip_prefix("/").map_err(|e| e.to_string())?);
        check(
            inside2.join("marker").exists(),
            "bind landed inside the rootfs",
        )?;
        rootfs::pivot(&cfg).map_err(|e| format!("pivot: {e}"))?;
        rootfs::finalize(&cfg).map_err(|e| format!("finalize: {e}"))?;
        check(
            statfs("/abs/sub")
                .map_err(|e| e.to_string())?
                .filesystem_type()
                == nix::sys::statfs::TMPFS_MAGIC,
            "/abs/sub is tmpfs from inside",
        )?;
        check(Path::new("/rel/marker").exists(), "/rel/marker from inside")?;
        check(
            statfs("/data/parent/x/y")
                .map_err(|e| e.to_string())?
                .filesystem_type()
                == nix::sys::statfs::TMPFS_MAGIC,
            "/data/parent/x/y is tmpfs",
        )
    });
    res.expect("inside the container");
    assert_eq!(
        fs::read_dir(&outside).expect("outside").count(),
        0,
        "host dir untouched"
    );
    assert_eq!(
        fs::read_dir(&outside2).expect("outside2").count(),
        0,
        "host dir untouched"
    );
    assert!(
        !host_mount_points()
            .iter()
            .any(|m| m.starts_with(&b.dir.display().to_string()))
    );
}

#[test]
fn symlinked_masked_paths_do_not_redirect() {
    let b = Bundle::new("mask");
    let hostfile = b.host("host-secret");
    fs::write(&hostfile, "host").expect("host file");
    let r = b.rootfs();
    // No proc mount here, so rootfs/proc/kcore is the rootfs's own entry: a symlink.
    symlink("/etc/passwd", r.join("proc/kcore")).expect("kcore link");
    let depth = r.components().count();
    symlink(
        format!(
            "{}{}",
            "../".repeat(depth + 2),
            hostfile.display().to_string().trim_start_matches('/')
        ),
        r.join("climb"),
    )
    .expect("climb link");
    symlink(&b.dir, r.join("linkdir")).expect("dir link");
    let s = spec(json!({
        "mounts": [
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
        ],
        "linux": {
            "namespaces": [{"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/climb", "/linkdir/host-secret"]
        }
    }));
    let rootfs_path = r.clone();
    let bundle = b.dir.clone();
    let hf = hostfile.clone();
    let res = in_child(|| {
        let host_dir = open(
            hf.parent().ok_or("parent")?,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| e.to_string())?;
        let cfg = RootfsConfig {
            spec: &s,
            rootfs: &rootfs_path,
            bundle: &bundle,
            no_pivot: false,
            console_slave: None,
            idmapped: None,
        };
        setup(&cfg)?;
        // The symlinks themselves are covered; their targets are not.
        check(
            fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())? == "container\n",
            "container /etc/passwd not masked",
        )?;
        check(
            fs::read_to_string("/proc/kcore")
                .map_err(|e| e.to_string())?
                .is_empty(),
            "/proc/kcore (a symlink) reads empty",
        )?;
        check(
            fs::symlink_metadata("/proc/kcore")
                .map_err(|e| e.to_string())?
                .file_type()
                .is_char_device(),
            "/proc/kcore is covered by /dev/null",
        )?;
        // The host file seen through an fd opened before the pivot is untouched.
        let f: OwnedFd = openat(
            host_dir.as_fd(),
            "host-secret",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| e.to_string())?;
        check(
            fstat(f.as_fd()).map_err(|e| e.to_string())?.st_mode & libc::S_IFMT == libc::S_IFREG,
            "host file still a regular file",
        )?;
        let mut s = String::new();
        fs::File::from(f)
            .read_to_string(&mut s)
            .map_err(|e| e.to_string())?;
        check(s == "host", format!("host file content intact, got {s:?}"))
    });
    res.expect("inside the container");
    assert_eq!(fs::read_to_string(&hostfile).expect("host file"), "host");
    assert!(
        !host_mount_points()
            .iter()
            .any(|m| m == &hostfile.display().to_string())
    );
    assert!(
        fs::symlink_metadata(r.join("proc/kcore"))
            .expect("link")
            .file_type()
            .is_symlink()
    );
}

#[test]
fn no_pivot_moves_and_chroots() {
    let b = Bundle::new("nopivot");
    let s = spec(json!({"root": {"path": "rootfs", "readonly": true}}));
    let rootfs_path = b.rootfs();
    let bundle = b.dir.clone();
    let res = in_child(|| {
        let cfg = RootfsConfig {
            spec: &s,
            rootfs: &rootfs_path,
            bundle: &bundle,
            no_pivot: true,
            console_slave: None,
            idmapped: None,
        };
        setup(&cfg)?;
        check(
            std::env::current_dir().map_err(|e| e.to_string())? == Path::new("/"),
            "cwd is /",
        )?;
        check(
            Path::new("/bin/busybox").exists(),
            "busybox at /bin/busybox",
        )?;
        check(
            mount_at("/proc").is_some_and(|m| m.0 == "proc"),
            "proc mounted",
        )?;
        let e = fs::write("/x", "x").expect_err("ro root");
        check(errno_of(&e) == Errno::EROFS, format!("EROFS, got {e}"))?;
        let code = run_busybox(&["true"])?;
        check(code == 0, format!("busybox true exit {code}"))
    });
    res.expect("inside the container");
}

#[test]
fn cgroup_mount_on_this_host() {
    let b = Bundle::new("cgroup");
    let s = spec(json!({
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
    }));
    let host_v2 = mount_at("/sys/fs/cgroup").is_some_and(|m| m.0 == "cgroup2");
    let rootfs_path = b.rootfs();
    let bundle = b.dir.clone();
    let res = in_child(|| {
        let cfg = RootfsConfig {
            spec: &s,
            rootfs: &rootfs_path,
            bundle: &bundle,
            no_pivot: false,
            console_slave: None,
            idmapped: None,
        };
        setup(&cfg)?;
        if host_v2 {
            return check(
                mount_at("/sys/fs/cgroup").is_some_and(|m| m.0 == "cgroup2"),
                "cgroup2 mounted",
            );
        }
        check(
            mount_at("/sys/fs/cgroup").is_some_and(|m| m.0 == "tmpfs" && m.1.starts_with("ro")),
            "read-only tmpfs at /sys/fs/cgroup",
        )?;
        check(
            mount_at("/sys/fs/cgroup/memory")
                .is_some_and(|m| m.0 == "cgroup" && m.1.starts_with("ro")),
            "memory hierarchy bound read-only",
        )?;
        check(
            Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists(),
            "memory files visible",
        )?;
        check(
            mount_at("/sys/fs/cgroup/unified").is_some_and(|m| m.0 == "cgroup2"),
            "unified hierarchy on a hybrid host",
        )?;
        let e = fs::create_dir("/sys/fs/cgroup/memory/x").expect_err("ro cgroup");
        check(errno_of(&e) == Errno::EROFS, format!("EROFS, got {e}"))
    });
    res.expect("inside the container");
}

#[test]
fn userns_spec_binds_host_devices_and_sys() {
    // The spec asks for a user namespace: devices are bound from the host and sysfs
    // (without a network namespace) becomes an rbind of /sys. Run as root without
    // actually entering a user namespace, which exercises the same code.
    let b = Bundle::new("userns");
    let s = spec(json!({
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
        ],
        "linux": {"namespaces": [{"type": "mount"}, {"type": "user"}]}
    }));
    let rootfs_path = b.rootfs();
    let bundle = b.dir.clone();
    let res = in_child(|| {
        let cfg = RootfsConfig {
            spec: &s,
            rootfs: &rootfs_path,
            bundle: &bundle,
            no_pivot: false,
            console_slave: None,
            idmapped: None,
        };
        setup(&cfg)?;
        check(mount_at("/dev/zero").is_some(), "/dev/zero is a bind mount")?;
        let md = fs::metadata("/dev/zero").map_err(|e| e.to_string())?;
        check(
            md.file_type().is_char_device() && md.rdev() == nix::sys::stat::makedev(1, 5),
            "/dev/zero is the host's 1:5",
        )?;
        check(
            mount_at("/sys").is_some_and(|m| m.0 == "sysfs" && m.1.starts_with("ro")),
            "/sys bound read-only",
        )?;
        check(
            mount_at("/sys/fs/cgroup").is_some(),
            "rbind of /sys carries submounts",
        )
    });
    res.expect("inside the container");
}

#[test]
fn fake_dev_null_is_refused_for_masking() {
    let b = Bundle::new("fakenull");
    let fakedev = b.host("fakedev");
    fs::create_dir_all(&fakedev).expect("fakedev");
    fs::write(fakedev.join("null"), "not null").expect("fake null");
    let s = spec(json!({
        "mounts": [{"destination": "/dev", "type": "bind", "source": fakedev, "options": ["rbind"]}],
        "linux": {"namespaces": [{"type": "mount"}], "maskedPaths": ["/etc/passwd"]}
    }));
    let rootfs_path = b.rootfs();
    let bundle = b.dir.clone();
    let res = in_child(|| {
        let cfg = RootfsConfig {
            spec: &s,
            rootfs: &rootfs_path,
            bundle: &bundle,
            no_pivot: false,
            console_slave: None,
            idmapped: None,
        };
        rootfs::prepare(&cfg).map_err(|e| format!("prepare: {e}"))?;
        rootfs::pivot(&cfg).map_err(|e| format!("pivot: {e}"))?;
        match rootfs::finalize(&cfg) {
            Err(RootfsError::NotDevNull { .. }) => {}
            other => {
                return Err(format!(
                    "finalize must refuse a fake /dev/null, got {other:?}"
                ));
            }
        }
        check(
            fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())? == "container\n",
            "nothing masked with the fake",
        )
    });
    res.expect("inside the container");
}

#[test]
fn hostile_mounts_fail_clearly() {
    let b = Bundle::new("hostile");
    let missing = b.host("no-such-source");
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"destination": "/x", "type": "bind", "source": missing, "options": ["bind"]}),
            "no-such-source",
        ),
        (
            json!({"destination": "/x", "type": "nosuchfs", "source": "none"}),
            "unknown filesystem type \"nosuchfs\"",
        ),
        (
            json!({"destination": "/proc", "type": "bind", "source": "/tmp", "options": ["rbind"]}),
            "not a procfs",
        ),
        (
            json!({"destination": "x/relative", "type": "tmpfs"}),
            "absolute",
        ),
        (
            json!({"destination": "/../../escape", "type": "tmpfs"}),
            "climbs",
        ),
    ];
    for (m, needle) in cases {
        let s = spec(json!({"mounts": [m.clone()]}));
        let rootfs_path = b.rootfs();
        let bundle = b.dir.clone();
        let res = in_child(|| {
            let cfg = RootfsConfig {
                spec: &s,
                rootfs: &rootfs_path,
                bundle: &bundle,
                no_pivot: false,
                console_slave: None,
                idmapped: None,
            };
            match rootfs::prepare(&cfg) {
                Ok(()) => Err("prepare accepted a hostile mount".into()),
                Err(e) => Err(format!("ERR {e}")),
            }
        });
        let err = res.expect_err("must fail");
        assert!(
            err.starts_with("ERR ") && err.contains(needle),
            "{m}: {err}"
        );
        if needle.contains("no-such") {
            assert!(err.contains("/x"), "error names the mount: {err}");
        }
    }
    assert!(!b.dir.parent().expect("tmp").join("escape").exists());
}

/// Like `in_child`, but the child enters new user, mount and PID namespaces (root mapped
/// to root, one id), and the work runs in a grandchild that is PID 1 there.
fn in_userns_child(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (r, w) = pipe().expect("pipe");
    // SAFETY: as in `in_child`.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(r);
            let res = (|| -> Result<(), String> {
                unshare(
                    CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID,
                )
                .map_err(|e| format!("unshare: {e}"))?;
                fs::write("/proc/self/setgroups", "deny").map_err(|e| format!("setgroups: {e}"))?;
                fs::write("/proc/self/uid_map", "0 0 1").map_err(|e| format!("uid_map: {e}"))?;
                fs::write("/proc/self/gid_map", "0 0 1").map_err(|e| format!("gid_map: {e}"))?;
                // SAFETY: single-threaded child; the grandchild runs the closure and _exits.
                match unsafe { fork() }.map_err(|e| e.to_string())? {
                    ForkResult::Child => {
                        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                        let msg = match res {
                            Ok(Ok(())) => String::new(),
                            Ok(Err(e)) => e,
                            Err(_) => "grandchild panicked".to_string(),
                        };
                        let mut w = fs::File::from(w.try_clone().expect("dup pipe"));
                        let _ = w.write_all(msg.as_bytes());
                        drop(w);
                        // SAFETY: leave the grandchild at once.
                        unsafe { libc::_exit(if msg.is_empty() { 0 } else { 1 }) }
                    }
                    ForkResult::Parent { child } => {
                        match waitpid(child, None).map_err(|e| e.to_string())? {
                            WaitStatus::Exited(_, 0) => Ok(()),
                            st => Err(format!("grandchild ended with {st:?}")),
                        }
                    }
                }
            })();
            let mut w = fs::File::from(w);
            if let Err(e) = &res {
                let _ = w.write_all(e.as_bytes());
            }
            drop(w);
            // SAFETY: leave the forked child without running the parent's destructors.
            unsafe { libc::_exit(if res.is_ok() { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut msg = String::new();
            fs::File::from(r)
                .read_to_string(&mut msg)
                .expect("read pipe");
            match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, 0) if msg.is_empty() => Ok(()),
                status if msg.is_empty() => Err(format!("child ended with {status:?}")),
                _ => Err(msg),
            }
        }
    }
}

#[test]
fn real_user_namespace_setup() {
    let b = Bundle::new("realuserns");
    let hostdata = b.host("hostdata");
    fs::create_dir_all(&hostdata).expect("hostdata");
    fs::write(hostdata.join("file"), "hello").expect("file");
    let s = spec(json!({
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=1m"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro", "nosuid", "nodev", "noexec"]},
            {"destination": "/data", "type": "bind", "source": hostdata, "options": ["rbind", "ro", "nosuid"]},
        ],
        "linux": {
            "namespaces": [{"type": "mount"}, {"type": "user"}, {"type": "pid"}],
            "uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 0, "size": 1}],
            "readonlyPaths": ["/proc/sys"],
            "maskedPaths": ["/proc/fs"]
        }
    }));
    let rootfs_path = b.rootfs();
    let bundle = b.dir.clone();
    let res = in_userns_child(|| {
        let cfg = RootfsConfig {
            spec: &s,
            rootfs: &rootfs_path,
            bundle: &bundle,
            no_pivot: false,
            console_slave: None,
            idmapped: None,
        };
        setup(&cfg)?;
        check(
            mount_at("/proc").is_some_and(|m| m.0 == "proc"),
            "proc mounted in the user namespace",
        )?;
        // mknod is refused in a user namespace: the host's nodes are bound instead.
        check(
            mount_at("/dev/zero").is_some(),
            "/dev/zero bound from the host",
        )?;
        let md = fs::metadata("/dev/zero").map_err(|e| format!("/dev/zero: {e}"))?;
        check(
            md.file_type().is_char_device() && md.rdev() == nix::sys::stat::makedev(1, 5),
            "/dev/zero is 1:5",
        )?;
        check(
            mount_at("/sys").is_some_and(|m| m.0 == "sysfs"),
            "/sys is the host's sysfs, bound",
        )?;
        // The bind remount kept the flags the kernel locks (relatime) and added ro,nosuid.
        check(
            mount_at("/data").is_some_and(|m| m.1.starts_with("ro") && m.1.contains("nosuid")),
            "bind ro,nosuid in a user namespace",
        )?;
        let e = fs::write("/data/new", "x").expect_err("ro bind");
        check(errno_of(&e) == Errno::EROFS, format!("bind EROFS, got {e}"))?;
        check(
            fs::read_dir("/proc/fs")
                .map_err(|e| format!("/proc/fs: {e}"))?
                .next()
                .is_none(),
            "/proc/fs masked",
        )?;
        let e = fs::write("/x", "x").expect_err("ro root");
        check(errno_of(&e) == Errno::EROFS, format!("root EROFS, got {e}"))
    });
    res.expect("inside the user namespace");
}

#[test]
fn tmpcopyup_copies_the_directory_into_the_tmpfs() {
    let b = Bundle::new("tmpcopyup");
    let r = b.rootfs();
    fs::create_dir_all(r.join("data/sub")).expect("data/sub");
    fs::write(r.join("data/file"), "content").expect("data/file");
    fs::set_permissions(r.join("data/file"), fs::Permissions::from_mode(0o640)).expect("chmod");
    fs::write(r.join("data/sub/inner"), "inner").expect("inner");
    symlink("file", r.join("data/link")).expect("link");
    std::os::unix::fs::chown(r.join("data/sub"), Some(12), Some(34)).expect("chown");
    let s = spec(json!({
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "size=1m"]},
        ],
    }));
    let rootfs_path = r.clone();
    let bundle = b.dir.clone();
    let res = in_child(|| {
        let cfg = RootfsConfig {
            spec: &s,
            rootfs: &rootfs_path,
            bundle: &bundle,
            no_pivot: false,
            console_slave: None,
            idmapped: None,
        };
        setup(&cfg)?;
        check(
            mount_at("/data").is_some_and(|m| m.0 == "tmpfs"),
            "tmpfs at /data",
        )?;
        let rd = |p: &str| fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
        check(rd("/data/file")? == "content", "file copied")?;
        check(rd("/data/sub/inner")? == "inner", "nested file copied")?;
        check(rd("/data/link")? == "content", "symlink copied")?;
        check(
            fs::read_link("/data/link").map_err(|e| e.to_string())? == Path::new("file"),
            "symlink target kept",
        )?;
        let md = fs::metadata("/data/file").map_err(|e| e.to_string())?;
        check(md.permissions().mode() & 0o7777 == 0o640, "mode kept")?;
        let md = fs::metadata("/data/sub").map_err(|e| e.to_string())?;
        check((md.uid(), md.gid()) == (12, 34), "owner kept")?;
        fs::write("/data/new", "x").map_err(|e| format!("tmpfs writable: {e}"))
    });
    res.expect("inside the container");
    assert!(
        !r.join("data/new").exists(),
        "writes went to the tmpfs, not the rootfs"
    );
}

#[test]
fn cgroup_mount_with_cgroup_namespace() {
    let b = Bundle::new("cgroupns");
    let s = spec(json!({
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {"namespaces": [{"type": "mount"}, {"type": "cgroup"}]}
    }));
    let host_v2 = mount_at("/sys/fs/cgroup").is_some_and(|m| m.0 == "cgroup2");
    let rootfs_path = b.rootfs();
    let bundle = b.dir.clone();
    let res = in_child(|| {
        unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| format!("unshare cgroup: {e}"))?;
        let cfg = RootfsConfig {
            spec: &s,
            rootfs: &rootfs_path,
            bundle: &bundle,
            no_pivot: false,
            console_slave: None,
            idmapped: None,
        };
        setup(&cfg)?;
        if host_v2 {
            return check(
                mount_at("/sys/fs/cgroup").is_some_and(|m| m.0 == "cgroup2"),
                "cgroup2 mounted",
            );
        }
        // Fresh hierarchies: their root is the namespace root, "/".
        let mi = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let memory = mi
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup/memory"))
            .ok_or("memory hierarchy mounted")?;
        check(memory.contains(" - cgroup "), "memory is a cgroup v1 mount")?;
        check(
            memory.split(' ').nth(3) == Some("/"),
            "memory mounted at its namespace root",
        )?;
        check(
            mount_at("/sys/fs/cgroup/unified").is_some_and(|m| m.0 == "cgroup2"),
            "unified hierarchy mounted",
        )?;
        check(
            mount_at("/sys/fs/cgroup").is_some_and(|m| m.1.starts_with("ro")),
            "cgroup tmpfs read-only",
        )
    });
    res.expect("inside the container");
}

#[test]
fn rootfs_propagation_shared_is_applied_after_pivot() {
    let b = Bundle::new("propagation");
    let s = spec(json!({
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "mount"}], "rootfsPropagation": "shared"}
    }));
    let rootfs_path = b.rootfs();
    let bundle = b.dir.clone();
    let res = in_child(|| {
        let cfg = RootfsConfig {
            spec: &s,
            rootfs: &rootfs_path,
            bundle: &bundle,
            no_pivot: false,
            console_slave: None,
            idmapped: None,
        };
        setup(&cfg)?;
        let mi = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let root = mi
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .ok_or("no / in mountinfo")?;
        check(root.contains(" shared:"), format!("/ is shared: {root}"))
    });
    res.expect("inside the container");
    assert!(
        !host_mount_points()
            .iter()
            .any(|m| m.starts_with(&b.dir.display().to_string()))
    );
}
