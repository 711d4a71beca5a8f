//! Applies a [`MountOp`] plan on the real kernel. Thin: every decision is in the plan;
//! this module resolves paths inside the rootfs (see `resolve`) and makes the syscalls.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use libc::c_ulong;
use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::mount::{MntFlags, umount2};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, fstat, makedev, mkdirat, mknodat};
use nix::unistd::{
    Gid, Uid, UnlinkatFlags, chdir, chroot, fchdir, fchownat, pivot_root, symlinkat, unlinkat,
};

use super::cgroup::{CgroupStep, cgroup_steps, parse_mountinfo, parse_proc_cgroup};
use super::options::MountOptions;
use super::plan::{DeviceNode, MountKind, MountOp, PlannedMount};
use super::resolve::{Want, ensure_in_root, ensure_parent, open_in_root};
use super::sys::{self, fd_path};
use super::{Result, RootfsConfig, RootfsError};

fn merr(destination: &Path, step: &'static str) -> impl FnOnce(Errno) -> RootfsError {
    let destination = destination.to_path_buf();
    move |errno| RootfsError::Mount {
        destination,
        step,
        errno,
    }
}

fn rerr(path: &Path, step: &'static str) -> impl FnOnce(Errno) -> RootfsError {
    let path = path.to_path_buf();
    move |errno| RootfsError::Resolve { path, step, errno }
}

fn read_host(path: &'static str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| RootfsError::Host {
        what: path,
        reason: e.to_string(),
    })
}

/// Runs the `Prepare` ops.
pub(super) fn run_prepare<'a>(
    cfg: &RootfsConfig,
    ops: impl Iterator<Item = &'a MountOp>,
) -> Result<()> {
    let rootfs = std::fs::canonicalize(cfg.rootfs).map_err(|e| RootfsError::Resolve {
        path: cfg.rootfs.to_path_buf(),
        step: "rootfs",
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL)),
    })?;
    let mut root: Option<OwnedFd> = None;
    for op in ops {
        match op {
            MountOp::RootPropagation { flags } => sys::mount(None, "/", None, *flags, None)
                .map_err(merr(Path::new("/"), "root propagation"))?,
            MountOp::PrivateRootfsParent => private_parent(&rootfs)?,
            MountOp::BindRootfs => {
                let r = rootfs.to_string_lossy();
                sys::mount(Some(&r), &r, None, libc::MS_BIND | libc::MS_REC, None)
                    .map_err(merr(&rootfs, "bind rootfs on itself"))?;
                root = Some(open_rootfs(&rootfs)?);
            }
            other => {
                if root.is_none() {
                    root = Some(open_rootfs(&rootfs)?);
                }
                let r = root.as_ref().expect("set just above").as_fd();
                apply_in_root(r, other, cfg.idmapped)?;
            }
        }
    }
    Ok(())
}

fn open_rootfs(rootfs: &Path) -> Result<OwnedFd> {
    open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(rerr(rootfs, "open rootfs"))
}

/// pivot_root needs the rootfs's parent mount not to be shared; make it private.
fn private_parent(rootfs: &Path) -> Result<()> {
    let mi = parse_mountinfo(&read_host("/proc/self/mountinfo")?)?;
    let parent = mi
        .iter()
        .enumerate()
        .filter(|(_, m)| rootfs.starts_with(&m.mount_point))
        .max_by_key(|(i, m)| (m.mount_point.as_os_str().len(), *i))
        .map(|(_, m)| m);
    if let Some(m) = parent
        && m.optional.iter().any(|o| o.starts_with("shared:"))
    {
        sys::mount(
            None,
            &m.mount_point.to_string_lossy(),
            None,
            libc::MS_PRIVATE,
            None,
        )
        .map_err(merr(&m.mount_point, "make the rootfs parent mount private"))?;
    }
    Ok(())
}

fn apply_in_root(
    root: BorrowedFd<'_>,
    op: &MountOp,
    idmapped: Option<&super::idmap::IdmappedMounts>,
) -> Result<()> {
    match op {
        MountOp::Mount(m) => mount_spec(root, m, idmapped),
        MountOp::Cgroup {
            destination,
            options,
            cgroupns,
        } => mount_cgroup(root, destination, options, *cgroupns),
        MountOp::Device(d) => create_device(root, d),
        MountOp::Symlink {
            target,
            link,
            if_host_exists,
        } => {
            if if_host_exists.as_ref().is_some_and(|p| !p.exists()) {
                return Ok(());
            }
            make_symlink(root, target.as_os_str(), link)
        }
        MountOp::Ptmx => {
            let ptmx = Path::new("/dev/ptmx");
            let (dir, name) = ensure_parent(root, ptmx).map_err(rerr(ptmx, "open /dev"))?;
            match unlinkat(dir.as_fd(), name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(rerr(ptmx, "remove /dev/ptmx")(e)),
            }
            symlinkat("pts/ptmx", dir.as_fd(), name.as_os_str())
                .map_err(rerr(ptmx, "symlink /dev/ptmx"))
        }
        MountOp::Console { slave } => mount_console(root, slave),
        // Other phases are not run here.
        _ => Ok(()),
    }
}

fn make_symlink(root: BorrowedFd<'_>, target: &OsStr, link: &Path) -> Result<()> {
    let (dir, name) = ensure_parent(root, link).map_err(rerr(link, "open parent"))?;
    match symlinkat(target, dir.as_fd(), name.as_os_str()) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(rerr(link, "symlink")(e)),
    }
}

fn is_dir(fd: BorrowedFd<'_>) -> std::result::Result<bool, Errno> {
    Ok(fstat(fd)?.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Mount flags that a bind remount changes (the per-mount ones).
const PER_MOUNT: c_ulong = libc::MS_RDONLY
    | libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_RELATIME
    | libc::MS_STRICTATIME
    | libc::MS_NOSYMFOLLOW;

/// Binds `source` (a host path) at `dest` inside the root, then applies the flags, the
/// propagation and the recursive attributes of `options`.
fn bind_host_path(
    root: BorrowedFd<'_>,
    source: &Path,
    dest: &Path,
    recursive: bool,
    options: &MountOptions,
) -> Result<()> {
    let src = open(source, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(|errno| {
        RootfsError::SourceMissing {
            destination: dest.to_path_buf(),
            src: source.to_path_buf(),
            errno,
        }
    })?;
    if dest == Path::new("/proc") {
        let st = nix::sys::statfs::fstatfs(src.as_fd()).map_err(merr(dest, "statfs source"))?;
        if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
            return Err(RootfsError::InvalidMount {
                destination: dest.display().to_string(),
                reason: format!("bind source {} is not a procfs", source.display()),
            });
        }
    }
    let want = if is_dir(src.as_fd()).map_err(merr(dest, "stat source"))? {
        Want::Dir
    } else {
        Want::File
    };
    let target = ensure_in_root(root, dest, want).map_err(rerr(dest, "create mount point"))?;
    let mut flags = libc::MS_BIND;
    if recursive {
        flags |= libc::MS_REC;
    }
    sys::mount(
        Some(&fd_path(src.as_fd())),
        &fd_path(target.as_fd()),
        None,
        flags,
        None,
    )
    .map_err(merr(dest, "bind"))?;
    let mounted =
        open_in_root(root, dest, OFlag::O_PATH).map_err(rerr(dest, "reopen after mount"))?;
    if options.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT) != 0 {
        remount_bind(mounted.as_fd(), dest, options)?;
    }
    after_mount(mounted.as_fd(), dest, options)
}

/// Moves a detached ID-mapped mount (made on the host by [`super::idmap`]) to `dest`
/// inside the root, then applies the flags, propagation and recursive attributes.
fn move_idmapped(
    root: BorrowedFd<'_>,
    tree: BorrowedFd<'_>,
    dest: &Path,
    options: &MountOptions,
) -> Result<()> {
    let want = if is_dir(tree).map_err(merr(dest, "stat source"))? {
        Want::Dir
    } else {
        Want::File
    };
    let target = ensure_in_root(root, dest, want).map_err(rerr(dest, "create mount point"))?;
    sys::move_mount(tree, target.as_fd()).map_err(merr(dest, "move_mount (ID-mapped)"))?;
    let mounted =
        open_in_root(root, dest, OFlag::O_PATH).map_err(rerr(dest, "reopen after mount"))?;
    if options.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT) != 0 {
        remount_bind(mounted.as_fd(), dest, options)?;
    }
    after_mount(mounted.as_fd(), dest, options)
}

/// A bind mount takes flags only through a remount. In a user namespace the kernel
/// refuses to drop flags the source mount has locked: then keep them, as runc does.
fn remount_bind(mounted: BorrowedFd<'_>, dest: &Path, options: &MountOptions) -> Result<()> {
    let base = (options.flags & !libc::MS_REC) | libc::MS_REMOUNT | libc::MS_BIND;
    let target = fd_path(mounted);
    match sys::mount(None, &target, None, base, None) {
        Err(Errno::EPERM) => {
            let locked =
                sys::mount_flags_of(mounted).map_err(merr(dest, "statfs"))? & !options.cleared;
            sys::mount(None, &target, None, base | (locked & PER_MOUNT), None)
                .map_err(merr(dest, "remount bind"))
        }
        r => r.map_err(merr(dest, "remount bind")),
    }
}

/// Propagation changes and recursive attributes, on the new mount.
fn after_mount(mounted: BorrowedFd<'_>, dest: &Path, options: &MountOptions) -> Result<()> {
    for p in &options.propagation {
        sys::mount(None, &fd_path(mounted), None, *p, None)
            .map_err(merr(dest, "set propagation"))?;
    }
    if options.has_rec_attrs() {
        sys::mount_setattr(mounted, true, options.attr_set, options.attr_clr, 0)
            .map_err(merr(dest, "mount_setattr (recursive attributes)"))?;
    }
    Ok(())
}

fn mount_spec(
    root: BorrowedFd<'_>,
    m: &PlannedMount,
    idmapped: Option<&super::idmap::IdmappedMounts>,
) -> Result<()> {
    let dest = &m.destination;
    match &m.kind {
        MountKind::Bind { .. } if m.options.idmap.is_some() => {
            let tree =
                idmapped
                    .and_then(|i| i.get(dest))
                    .ok_or_else(|| RootfsError::InvalidMount {
                        destination: dest.display().to_string(),
                        reason: "ID-mapped mount was not prepared on the host".into(),
                    })?;
            move_idmapped(root, tree, dest, &m.options)
        }
        MountKind::Bind { source, recursive } => {
            bind_host_path(root, source, dest, *recursive, &m.options)
        }
        MountKind::Fs { fstype, source } => {
            let target =
                ensure_in_root(root, dest, Want::Dir).map_err(rerr(dest, "create mount point"))?;
            // tmpcopyup: keep the directory under the mount point open to copy from.
            let below = if m.options.tmpcopyup {
                Some(
                    open_in_root(root, dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                        .map_err(rerr(dest, "open directory for tmpcopyup"))?,
                )
            } else {
                None
            };
            let data = m.options.data_string();
            sys::mount(
                Some(source),
                &fd_path(target.as_fd()),
                Some(fstype),
                m.options.flags,
                Some(&data),
            )
            .map_err(|errno| match errno {
                Errno::ENODEV => RootfsError::UnknownType {
                    destination: dest.clone(),
                    fstype: fstype.clone(),
                },
                errno => RootfsError::Mount {
                    destination: dest.clone(),
                    step: "mount",
                    errno,
                },
            })?;
            if let Some(below) = below {
                let above = open_in_root(root, dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                    .map_err(rerr(dest, "open tmpfs for tmpcopyup"))?;
                copy_dir(below.as_fd(), above.as_fd(), 0).map_err(rerr(dest, "tmpcopyup"))?;
                let st = fstat(below.as_fd()).map_err(rerr(dest, "tmpcopyup"))?;
                nix::sys::stat::fchmod(
                    above.as_fd(),
                    Mode::from_bits_truncate(st.st_mode & 0o7777),
                )
                .map_err(rerr(dest, "tmpcopyup chmod"))?;
                nix::unistd::fchown(
                    above.as_fd(),
                    Some(Uid::from_raw(st.st_uid)),
                    Some(Gid::from_raw(st.st_gid)),
                )
                .map_err(rerr(dest, "tmpcopyup chown"))?;
            }
            let mounted = open_in_root(root, dest, OFlag::O_PATH)
                .map_err(rerr(dest, "reopen after mount"))?;
            after_mount(mounted.as_fd(), dest, &m.options)
        }
    }
}

/// Copies the contents of directory `from` into directory `to`, by fd and without
/// following any symlink: directories, regular files, symlinks and device/fifo nodes,
/// with their modes and owners.
fn copy_dir(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    depth: usize,
) -> std::result::Result<(), Errno> {
    use nix::fcntl::AtFlags;
    if depth > 256 {
        return Err(Errno::ELOOP);
    }
    let mut dir = nix::dir::Dir::openat(
        from,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let names: Vec<std::ffi::CString> = dir
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    let nofollow = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    for name in names {
        let name = name.as_c_str();
        let st = nix::sys::stat::fstatat(from, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                mkdirat(to, name, mode)?;
                let a = openat(
                    from,
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | nofollow,
                    Mode::empty(),
                )?;
                let b = openat(
                    to,
                    name,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | nofollow,
                    Mode::empty(),
                )?;
                copy_dir(a.as_fd(), b.as_fd(), depth + 1)?;
            }
            libc::S_IFREG => {
                let a = openat(from, name, OFlag::O_RDONLY | nofollow, Mode::empty())?;
                let b = openat(
                    to,
                    name,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | nofollow,
                    mode,
                )?;
                std::io::copy(&mut std::fs::File::from(a), &mut std::fs::File::from(b))
                    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
            }
            libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(from, name)?;
                symlinkat(target.as_os_str(), to, name)?;
            }
            kind => match mknodat(to, name, SFlag::from_bits_truncate(kind), mode, st.st_rdev) {
                Ok(()) => {}
                // A user namespace cannot mknod: such a node cannot be copied.
                Err(Errno::EPERM) => continue,
                Err(e) => return Err(e),
            },
        }
        fchownat(
            to,
            name,
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .or_else(|e| if e == Errno::EINVAL { Ok(()) } else { Err(e) })?;
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            // Creation applied the umask: set the exact mode (a plain file: nothing to follow).
            fchmodat(to, name, mode, FchmodatFlags::FollowSymlink)?;
        }
    }
    Ok(())
}

fn mount_cgroup(
    root: BorrowedFd<'_>,
    dest: &Path,
    options: &MountOptions,
    cgroupns: bool,
) -> Result<()> {
    let mi = parse_mountinfo(&read_host("/proc/self/mountinfo")?)?;
    let own = parse_proc_cgroup(&read_host("/proc/self/cgroup")?)?;
    let steps = cgroup_steps(dest, cgroupns, &mi, &own)?;
    let mut tmpfs = false;
    let bind_opts = MountOptions {
        propagation: Vec::new(),
        attr_set: 0,
        attr_clr: 0,
        data: Vec::new(),
        ..options.clone()
    };
    for step in steps {
        match step {
            CgroupStep::Tmpfs { destination } => {
                let t = ensure_in_root(root, &destination, Want::Dir)
                    .map_err(rerr(&destination, "create mount point"))?;
                sys::mount(
                    Some("tmpfs"),
                    &fd_path(t.as_fd()),
                    Some("tmpfs"),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    Some("mode=755"),
                )
                .map_err(merr(&destination, "cgroup tmpfs"))?;
                tmpfs = true;
            }
            CgroupStep::Bind {
                source,
                destination,
            } => {
                bind_host_path(root, &source, &destination, true, &bind_opts)?;
            }
            CgroupStep::Mount {
                fstype,
                data,
                destination,
                fallback_bind,
            } => {
                let t = ensure_in_root(root, &destination, Want::Dir)
                    .map_err(rerr(&destination, "create mount point"))?;
                let r = sys::mount(
                    Some(fstype),
                    &fd_path(t.as_fd()),
                    Some(fstype),
                    options.flags & PER_MOUNT,
                    Some(&data),
                );
                match (r, fallback_bind) {
                    (Ok(()), _) => {}
                    (Err(Errno::EPERM | Errno::EBUSY), Some(src)) => {
                        bind_host_path(root, &src, &destination, true, &bind_opts)?;
                    }
                    (Err(e), _) => return Err(merr(&destination, "cgroup mount")(e)),
                }
            }
            CgroupStep::Symlink { target, link } => make_symlink(root, OsStr::new(&target), &link)?,
        }
    }
    let top = open_in_root(root, dest, OFlag::O_PATH).map_err(rerr(dest, "reopen after mount"))?;
    if tmpfs && options.flags & libc::MS_RDONLY != 0 {
        sys::mount_setattr(top.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0, 0)
            .map_err(merr(dest, "make cgroup tmpfs read-only"))?;
    }
    after_mount(top.as_fd(), dest, options)
}

fn create_device(root: BorrowedFd<'_>, d: &DeviceNode) -> Result<()> {
    let derr = |step: &'static str| {
        let path = d.path.clone();
        move |errno| RootfsError::Device { path, step, errno }
    };
    let (dir, name) = ensure_parent(root, &d.path).map_err(derr("open parent directory"))?;
    let name = name.as_os_str();
    // Whatever the image put there (a file, a symlink, another node) is replaced.
    match unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(derr("remove existing")(e)),
    }
    if !d.bind_from_host {
        let kind = SFlag::from_bits_truncate(d.kind);
        let mode = Mode::from_bits_truncate(d.mode);
        match mknodat(dir.as_fd(), name, kind, mode, makedev(d.major, d.minor)) {
            Ok(()) => {
                fchownat(
                    dir.as_fd(),
                    name,
                    Some(Uid::from_raw(d.uid)),
                    Some(Gid::from_raw(d.gid)),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(derr("chown"))?;
                // mknod applied the umask; set the mode asked for.
                return fchmodat(dir.as_fd(), name, mode, FchmodatFlags::FollowSymlink)
                    .map_err(derr("chmod"));
            }
            Err(Errno::EPERM) => {}
            Err(e) => return Err(derr("mknod")(e)),
        }
    }
    // No mknod in a user namespace: bind the host's node onto an empty file.
    let src = open(&d.path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(derr("open host device"))?;
    openat(
        dir.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(derr("create bind target"))?;
    let target = openat(
        dir.as_fd(),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(derr("open bind target"))?;
    sys::mount(
        Some(&fd_path(src.as_fd())),
        &fd_path(target.as_fd()),
        None,
        libc::MS_BIND,
        None,
    )
    .map_err(derr("bind host device"))
}

fn mount_console(root: BorrowedFd<'_>, slave: &Path) -> Result<()> {
    let console = Path::new("/dev/console");
    let (dir, name) = ensure_parent(root, console).map_err(rerr(console, "open /dev"))?;
    match unlinkat(dir.as_fd(), name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(rerr(console, "remove existing")(e)),
    }
    openat(
        dir.as_fd(),
        name.as_os_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o666),
    )
    .map_err(rerr(console, "create"))?;
    let target = openat(
        dir.as_fd(),
        name.as_os_str(),
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(rerr(console, "open"))?;
    let src = open(slave, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(|errno| {
        RootfsError::SourceMissing {
            destination: console.to_path_buf(),
            src: slave.to_path_buf(),
            errno,
        }
    })?;
    // By fd (open_tree + move_mount): works whether or not /proc is mounted.
    let tree = sys::clone_tree(src.as_fd(), false).map_err(merr(console, "clone pty slave"))?;
    sys::move_mount(tree.as_fd(), target.as_fd()).map_err(merr(console, "bind pty slave"))
}

/// `mount_console` for a root given by path.
pub(super) fn mount_console_in(root_dir: &Path, slave: &Path) -> Result<()> {
    let root = open_rootfs(root_dir)?;
    mount_console(root.as_fd(), slave)
}

/// Runs the `Pivot` op.
pub(super) fn run_pivot(cfg: &RootfsConfig, op: &MountOp) -> Result<()> {
    let rootfs = cfg.rootfs;
    let perr = |step: &'static str| {
        let rootfs = rootfs.to_path_buf();
        move |errno| RootfsError::Pivot {
            rootfs,
            step,
            errno,
        }
    };
    match op {
        MountOp::PivotRoot => {
            let dir = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
            let old = open("/", dir, Mode::empty()).map_err(perr("open old root"))?;
            let new = open(rootfs, dir, Mode::empty()).map_err(perr("open rootfs"))?;
            fchdir(&new).map_err(perr("chdir rootfs"))?;
            pivot_root(".", ".").map_err(perr("pivot_root"))?;
            // The old root is now stacked under "."; detach it without its unmount
            // propagating back to the host.
            fchdir(&old).map_err(perr("chdir old root"))?;
            sys::mount(None, ".", None, libc::MS_SLAVE | libc::MS_REC, None)
                .map_err(perr("make old root rslave"))?;
            umount2(".", MntFlags::MNT_DETACH).map_err(perr("unmount old root"))?;
            chdir("/").map_err(perr("chdir /"))
        }
        MountOp::MoveRoot => {
            chdir(rootfs).map_err(perr("chdir rootfs"))?;
            sys::mount(Some("."), "/", None, libc::MS_MOVE, None)
                .map_err(perr("move rootfs to /"))?;
            chroot(".").map_err(perr("chroot"))?;
            chdir("/").map_err(perr("chdir /"))
        }
        _ => Ok(()),
    }
}

/// Runs the `Finalize` ops, inside the new root.
pub(super) fn run_finalize<'a>(ops: impl Iterator<Item = &'a MountOp>) -> Result<()> {
    let root = open_rootfs(Path::new("/"))?;
    let root = root.as_fd();
    let mut null: Option<OwnedFd> = None;
    for op in ops {
        match op {
            MountOp::FinalPropagation { flags } => sys::mount(None, "/", None, *flags, None)
                .map_err(merr(Path::new("/"), "rootfs propagation"))?,
            MountOp::ReadonlyPath(p) => readonly_path(root, p)?,
            MountOp::MaskPath(p) => {
                if null.is_none() {
                    null = Some(verified_dev_null(root)?);
                }
                mask_path(root, null.as_ref().expect("set just above").as_fd(), p)?;
            }
            MountOp::RemountReadonly(p) => {
                let fd = open_in_root(root, p, OFlag::O_PATH | OFlag::O_DIRECTORY)
                    .map_err(rerr(p, "open"))?;
                sys::mount_setattr(fd.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0, 0)
                    .map_err(merr(p, "remount read-only"))?;
            }
            MountOp::ReadonlyRoot => {
                let fd = open_rootfs(Path::new("/"))?;
                sys::mount_setattr(fd.as_fd(), false, libc::MOUNT_ATTR_RDONLY, 0, 0)
                    .map_err(merr(Path::new("/"), "make root read-only"))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Opens the container's /dev/null without following a symlink and checks it is the
/// null device (char 1:3): a fake one would turn a mask into a window.
fn verified_dev_null(root: BorrowedFd<'_>) -> Result<OwnedFd> {
    let path = PathBuf::from("/dev/null");
    let fd = open_in_root(root, &path, OFlag::O_PATH | OFlag::O_NOFOLLOW)
        .map_err(rerr(&path, "open"))?;
    let st = fstat(fd.as_fd()).map_err(rerr(&path, "stat"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != makedev(1, 3) {
        return Err(RootfsError::NotDevNull { path });
    }
    Ok(fd)
}

/// Masks `path`: the verified /dev/null over a file (or a symlink, which is covered
/// itself, never followed), a read-only tmpfs over a directory. Missing paths are skipped.
fn mask_path(root: BorrowedFd<'_>, null: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let target = match open_in_root(root, path, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
        Err(e) => return Err(rerr(path, "open masked path")(e)),
    };
    let tree = if is_dir(target.as_fd()).map_err(rerr(path, "stat masked path"))? {
        sys::readonly_tmpfs().map_err(merr(path, "read-only tmpfs for mask"))?
    } else {
        sys::clone_tree(null, false).map_err(merr(path, "clone /dev/null"))?
    };
    sys::move_mount(tree.as_fd(), target.as_fd()).map_err(merr(path, "mask"))
}

/// Binds `path` on itself (with submounts) and makes it read-only, nosuid, nodev, noexec.
fn readonly_path(root: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let target = match open_in_root(root, path, OFlag::O_PATH) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
        Err(e) => return Err(rerr(path, "open read-only path")(e)),
    };
    let tree = sys::clone_tree(target.as_fd(), true).map_err(merr(path, "clone for read-only"))?;
    let attrs = libc::MOUNT_ATTR_RDONLY
        | libc::MOUNT_ATTR_NOSUID
        | libc::MOUNT_ATTR_NODEV
        | libc::MOUNT_ATTR_NOEXEC;
    sys::mount_setattr(tree.as_fd(), true, attrs, 0, 0)
        .map_err(merr(path, "read-only attributes"))?;
    sys::move_mount(tree.as_fd(), target.as_fd()).map_err(merr(path, "bind read-only"))
}
