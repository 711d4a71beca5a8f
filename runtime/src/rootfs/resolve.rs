//! Paths inside the rootfs, resolved without ever leaving it: every lookup is
//! openat2(`RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`) from a rootfs directory fd, and
//! missing components are created one at a time in a parent opened that way, so a
//! symlink in the rootfs (absolute, relative, `..`-laden, dangling) can only ever point
//! to somewhere inside it (the runc CVE-2021-30465 class).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{Mode, mkdirat};

/// What to create when the last component is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A directory.
    Dir,
    /// An empty regular file (a bind-mount target for a file or device).
    File,
}

/// `path` relative to the root ("." for the root itself).
fn relative(path: &Path) -> PathBuf {
    let p: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p
    }
}

/// Opens `path` (a container path) with `flags` (O_CLOEXEC always added), resolving
/// every component inside `root`.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, &relative(path), how)
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Opens `path` inside `root` as an `O_PATH` fd, creating what is missing (directories
/// on the way, and a `want` at the end). A dangling symlink on the way is followed
/// inside the root and its target created there.
pub fn ensure_in_root(root: BorrowedFd<'_>, path: &Path, want: Want) -> Result<OwnedFd, Errno> {
    let mut pending = components(path);
    let mut done = PathBuf::new();
    // Symlinks followed plus creations made: bounded so a racing or looping tree cannot
    // keep us here.
    let mut budget = 4 * pending.len() + 40;
    if pending.is_empty() {
        return open_in_root(root, Path::new("."), OFlag::O_PATH);
    }
    while let Some(comp) = pending.pop_front() {
        budget = budget.checked_sub(1).ok_or(Errno::ELOOP)?;
        let candidate = done.join(&comp);
        match open_in_root(root, &candidate, OFlag::O_PATH) {
            Ok(fd) => {
                if pending.is_empty() {
                    return Ok(fd);
                }
                done = candidate;
                continue;
            }
            Err(Errno::ENOENT) if comp != ".." => {}
            Err(e) => return Err(e),
        }
        let parent = open_in_root(root, &done, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        match readlinkat(parent.as_fd(), comp.as_os_str()) {
            Ok(target) => {
                // A dangling symlink: continue with its target, still inside the root.
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    done = PathBuf::new();
                }
                let mut next = components(&target);
                next.extend(pending);
                pending = next;
            }
            Err(Errno::ENOENT) => {
                let last = pending.is_empty();
                let made = if last && want == Want::File {
                    openat(
                        parent.as_fd(),
                        comp.as_os_str(),
                        OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_WRONLY
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map(drop)
                } else {
                    mkdirat(
                        parent.as_fd(),
                        comp.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    )
                };
                match made {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                pending.push_front(comp);
            }
            // Exists but is not a symlink, yet openat2 said ENOENT: changed under us.
            Err(Errno::EINVAL) => return Err(Errno::EAGAIN),
            Err(e) => return Err(e),
        }
    }
    Err(Errno::ENOENT)
}

/// Opens the parent directory of `path` inside `root` (created if missing) and returns
/// it with the last component's name.
pub fn ensure_parent(root: BorrowedFd<'_>, path: &Path) -> Result<(OwnedFd, OsString), Errno> {
    let name = path.file_name().ok_or(Errno::EINVAL)?.to_os_string();
    let parent = path.parent().unwrap_or(Path::new("/"));
    Ok((ensure_in_root(root, parent, Want::Dir)?, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::open;
    use std::os::unix::fs::symlink;

    /// A temp dir standing for a rootfs, with a sibling "outside" dir; removed on drop.
    struct Tree {
        base: PathBuf,
    }

    impl Tree {
        fn new(tag: &str) -> Tree {
            let base =
                std::env::temp_dir().join(format!("berth-resolve-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&base);
            std::fs::create_dir_all(base.join("root/etc")).expect("root");
            std::fs::create_dir_all(base.join("outside")).expect("outside");
            Tree { base }
        }
        fn root(&self) -> PathBuf {
            self.base.join("root")
        }
        fn fd(&self) -> OwnedFd {
            open(
                &self.root(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .expect("open root")
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }

    #[test]
    fn creates_missing_components_inside() {
        let t = Tree::new("create");
        let root = t.fd();
        ensure_in_root(root.as_fd(), Path::new("/a/b/c"), Want::Dir).expect("dirs");
        assert!(t.root().join("a/b/c").is_dir());
        ensure_in_root(root.as_fd(), Path::new("/a/f"), Want::File).expect("file");
        assert!(t.root().join("a/f").is_file());
        // Existing paths are opened, not recreated.
        ensure_in_root(root.as_fd(), Path::new("/a/f"), Want::File).expect("again");
        ensure_in_root(root.as_fd(), Path::new("/"), Want::Dir).expect("root itself");
    }

    #[test]
    fn escaping_symlinks_resolve_inside() {
        let t = Tree::new("escape");
        let root = t.fd();
        let outside = t.base.join("outside");
        symlink(&outside, t.root().join("abs")).expect("abs");
        symlink("../../../../../../../../outside", t.root().join("rel")).expect("rel");
        symlink("/nowhere/deeper", t.root().join("dangling")).expect("dangling");
        for (p, want_inside) in [
            (
                "/abs/x",
                t.root()
                    .join(outside.strip_prefix("/").expect("abs"))
                    .join("x"),
            ),
            ("/rel/y", t.root().join("outside/y")),
            ("/dangling/z", t.root().join("nowhere/deeper/z")),
            ("/../../../outside/w", t.root().join("outside/w")),
        ] {
            ensure_in_root(root.as_fd(), Path::new(p), Want::Dir).expect(p);
            assert!(want_inside.is_dir(), "{p} created at {want_inside:?}");
        }
        assert_eq!(
            std::fs::read_dir(&outside).expect("outside").count(),
            0,
            "nothing outside"
        );
        // A dangling final symlink to a file is created inside too.
        symlink("/etc/made", t.root().join("filelink")).expect("filelink");
        ensure_in_root(root.as_fd(), Path::new("/filelink"), Want::File).expect("file via link");
        assert!(t.root().join("etc/made").is_file());
    }

    #[test]
    fn loops_and_magic_links_are_refused() {
        let t = Tree::new("loop");
        let root = t.fd();
        symlink("b", t.root().join("a")).expect("a");
        symlink("a", t.root().join("b")).expect("b");
        assert_eq!(
            ensure_in_root(root.as_fd(), Path::new("/a/x"), Want::Dir).err(),
            Some(Errno::ELOOP)
        );
        symlink("/proc/self/root", t.root().join("magic")).expect("magic");
        std::fs::create_dir_all(t.root().join("proc/self")).expect("proc/self");
        // In the root, /proc/self/root is a plain missing path: created inside, never the host's.
        ensure_in_root(root.as_fd(), Path::new("/magic/x"), Want::Dir).expect("magic inside");
        assert!(t.root().join("proc/self/root/x").is_dir());
    }
}
