//! The host's cgroup layout: which hierarchies are mounted where (v1, v2 or the
//! hybrid of both), and where a container's cgroup path lands in each.
//!
//! Everything here is pure parsing of `/proc/self/mountinfo` and
//! `/proc/self/cgroup` text, so it is unit-tested without root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The v1 subsystems berth knows; other super options of a `cgroup` mount
/// (`rw`, `relatime`, `xattr`, …) are mount flags, not controllers.
const V1_SUBSYSTEMS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "net_cls",
    "net_prio",
    "hugetlb",
    "perf_event",
    "rdma",
    "misc",
];

/// Errors reading the host layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A line of /proc/self/mountinfo did not have the documented fields.
    #[error("malformed /proc/self/mountinfo line: {0:?}")]
    MountInfo(String),
    /// A line of /proc/self/cgroup did not have the documented fields.
    #[error("malformed /proc/self/cgroup line: {0:?}")]
    ProcCgroup(String),
    /// No cgroup hierarchy at all is mounted.
    #[error("no cgroup hierarchy is mounted (neither cgroup nor cgroup2 in /proc/self/mountinfo)")]
    NoCgroups,
}

/// One cgroup filesystem mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory`.
    pub mount_point: PathBuf,
    /// The cgroup shown at the mount point (`/` unless inside a cgroup namespace or bind).
    pub root: String,
    /// `None` for cgroup2; the v1 controllers (and `name=…`) bound to it otherwise.
    pub v1_controllers: Option<Vec<String>>,
}

/// Which kind of layout the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 controllers plus a v2 hierarchy (usually at /sys/fs/cgroup/unified).
    Hybrid,
    /// One v2 hierarchy at the cgroup root.
    Unified,
}

/// The host's cgroup layout as this process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// v1 controller → (mount point, mount root). Co-mounted controllers share a mount point.
    pub v1: BTreeMap<String, (PathBuf, String)>,
    /// The v2 mount point and its root, if cgroup2 is mounted.
    pub v2: Option<(PathBuf, String)>,
    /// This process's own cgroup per v1 controller (key) and for v2 (key `""`).
    pub own: BTreeMap<String, String>,
}

impl Layout {
    /// Builds the layout from the texts of /proc/self/mountinfo and /proc/self/cgroup.
    pub fn parse(mountinfo: &str, proc_cgroup: &str) -> Result<Layout, LayoutError> {
        let mut v1 = BTreeMap::new();
        let mut v2 = None;
        for m in parse_mountinfo(mountinfo)? {
            match m.v1_controllers {
                None => {
                    if v2.is_none() {
                        v2 = Some((m.mount_point, m.root));
                    }
                }
                Some(ctrls) => {
                    for c in ctrls {
                        v1.entry(c)
                            .or_insert_with(|| (m.mount_point.clone(), m.root.clone()));
                    }
                }
            }
        }
        if v1.is_empty() && v2.is_none() {
            return Err(LayoutError::NoCgroups);
        }
        Ok(Layout {
            v1,
            v2,
            own: parse_proc_cgroup(proc_cgroup)?,
        })
    }

    /// Reads this process's layout from /proc.
    pub fn current() -> std::io::Result<Layout> {
        let mi = std::fs::read_to_string("/proc/self/mountinfo")?;
        let pc = std::fs::read_to_string("/proc/self/cgroup")?;
        Layout::parse(&mi, &pc).map_err(std::io::Error::other)
    }

    /// The kind of layout: v1 only, v2 only, or both.
    pub fn mode(&self) -> Mode {
        let real_v1 = self.v1.keys().any(|k| !k.starts_with("name="));
        match (real_v1, self.v2.is_some()) {
            (true, true) => Mode::Hybrid,
            (false, true) => Mode::Unified,
            _ => Mode::Legacy,
        }
    }

    /// The directory of `cgroup` (a validated, normalized cgroup path) in the
    /// hierarchy of v1 controller `ctrl`; `None` when that controller is not mounted.
    ///
    /// An absolute path is taken from the mount point, as runc does; a relative
    /// one is placed under this process's own cgroup of that controller.
    pub fn v1_dir(&self, ctrl: &str, cgroup: &CgroupPath) -> Option<PathBuf> {
        let (mnt, root) = self.v1.get(ctrl)?;
        let base = if cgroup.absolute {
            mnt.clone()
        } else {
            let own = self.own.get(ctrl).map(String::as_str).unwrap_or("/");
            join_under(mnt, strip_root(own, root))
        };
        Some(join_under(&base, &cgroup.rel))
    }

    /// The directory of `cgroup` in the v2 hierarchy; `None` without cgroup2.
    ///
    /// A relative path goes under the parent of this process's own v2 cgroup
    /// (runc's fs2 rule: the own cgroup usually holds processes, so it cannot
    /// delegate controllers to a child).
    pub fn v2_dir(&self, cgroup: &CgroupPath) -> Option<PathBuf> {
        let (mnt, root) = self.v2.as_ref()?;
        let base = if cgroup.absolute {
            mnt.clone()
        } else {
            let own = self.own.get("").map(String::as_str).unwrap_or("/");
            let own = strip_root(own, root);
            let parent = Path::new(own)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            join_under(mnt, &parent)
        };
        Some(join_under(&base, &cgroup.rel))
    }
}

/// `own` with the mount root removed (`/docker/x/sub` under root `/docker/x` is `/sub`).
fn strip_root<'a>(own: &'a str, root: &str) -> &'a str {
    if root == "/" {
        return own;
    }
    match own.strip_prefix(root) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        // The own cgroup is outside the visible part: use the mount point itself.
        _ => "",
    }
}

/// Joins a `/`-separated cgroup path below `base`, never climbing out of it
/// (`..` and `.` components are dropped; inputs here come from the kernel or
/// from [`CgroupPath::parse`], which already refused them).
fn join_under(base: &Path, rel: &str) -> PathBuf {
    let mut p = base.to_path_buf();
    for c in rel.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            continue;
        }
        p.push(c);
    }
    p
}

/// One line of /proc/self/mountinfo (the fields berth uses), escapes undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Root of the mount within its filesystem.
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Optional fields (`shared:N`, `master:N`, ...).
    pub optional: Vec<String>,
    /// Filesystem type.
    pub fstype: String,
    /// Super-block options (for cgroup v1: the controllers).
    pub super_options: String,
}

/// Parses every line of /proc/self/mountinfo; a malformed line is an error.
pub fn parse_mountinfo_lines(text: &str) -> Result<Vec<MountInfo>, LayoutError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let bad = || LayoutError::MountInfo(line.to_string());
        let (pre, post) = line.split_once(" - ").ok_or_else(bad)?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 6 || post.len() < 3 {
            return Err(bad());
        }
        out.push(MountInfo {
            root: PathBuf::from(unescape(pre[3])),
            mount_point: PathBuf::from(unescape(pre[4])),
            optional: pre[6..].iter().map(|s| s.to_string()).collect(),
            fstype: post[0].to_string(),
            super_options: post[2].to_string(),
        });
    }
    Ok(out)
}

/// Parses the cgroup mounts out of /proc/self/mountinfo.
pub fn parse_mountinfo(text: &str) -> Result<Vec<CgroupMount>, LayoutError> {
    let mut out = Vec::new();
    for m in parse_mountinfo_lines(text)? {
        let root = m.root.to_string_lossy().into_owned();
        match m.fstype.as_str() {
            "cgroup2" => out.push(CgroupMount {
                mount_point: m.mount_point,
                root,
                v1_controllers: None,
            }),
            "cgroup" => {
                let ctrls = m
                    .super_options
                    .split(',')
                    .filter(|o| V1_SUBSYSTEMS.contains(o) || o.starts_with("name="))
                    .map(str::to_string)
                    .collect();
                out.push(CgroupMount {
                    mount_point: m.mount_point,
                    root,
                    v1_controllers: Some(ctrls),
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, …).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of /proc/self/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    /// Hierarchy id (0 for the unified hierarchy).
    pub id: u32,
    /// Controllers (`cpu,cpuacct`, `name=systemd`; empty for the unified one).
    pub controllers: String,
    /// The process's cgroup path in that hierarchy.
    pub path: String,
}

/// Parses every line of /proc/self/cgroup; a malformed line is an error.
pub fn parse_proc_cgroup_lines(text: &str) -> Result<Vec<CgroupLine>, LayoutError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let bad = || LayoutError::ProcCgroup(line.to_string());
            let mut it = line.splitn(3, ':');
            let id = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let controllers = it.next().ok_or_else(bad)?.to_string();
            let path = it.next().ok_or_else(bad)?.to_string();
            Ok(CgroupLine {
                id,
                controllers,
                path,
            })
        })
        .collect()
}

/// Parses /proc/self/cgroup: v1 controller → path, and `""` → the v2 path.
pub fn parse_proc_cgroup(text: &str) -> Result<BTreeMap<String, String>, LayoutError> {
    let mut out = BTreeMap::new();
    for l in parse_proc_cgroup_lines(text)? {
        if l.controllers.is_empty() {
            out.insert(String::new(), l.path);
        } else {
            for c in l.controllers.split(',') {
                out.insert(c.to_string(), l.path.clone());
            }
        }
    }
    Ok(out)
}

/// Why a `linux.cgroupsPath` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// Empty, or only slashes: it would name the hierarchy root.
    #[error("linux.cgroupsPath {0:?} names the cgroup root")]
    Root(String),
    /// A `..` component could climb out of the hierarchy.
    #[error("linux.cgroupsPath {0:?} contains a \"..\" component")]
    DotDot(String),
    /// A NUL byte, a newline or another control character.
    #[error("linux.cgroupsPath {0:?} contains a control character")]
    Control(String),
    /// A component longer than a file name can be.
    #[error("linux.cgroupsPath {0:?} has a component longer than 255 bytes")]
    TooLong(String),
    /// A component that is a cgroupfs control file name, not a cgroup.
    #[error("linux.cgroupsPath {0:?}: component {1:?} looks like a cgroup control file")]
    ControlFile(String, String),
    /// The systemd `slice:prefix:name` form is malformed.
    #[error("linux.cgroupsPath {0:?} is not of the systemd form \"slice:prefix:name\"")]
    SystemdForm(String),
    /// A container id unfit for the default path.
    #[error("container id {0:?} cannot name a cgroup")]
    Id(String),
}

/// A checked cgroup path: normalized components, absolute or relative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPath {
    /// Whether the spec gave it from the hierarchy root.
    pub absolute: bool,
    /// The components joined with `/`, no leading slash, no empty, `.` or `..` component.
    pub rel: String,
}

impl CgroupPath {
    /// Checks a cgroupfs-driver `linux.cgroupsPath`.
    pub fn parse(raw: &str) -> Result<CgroupPath, PathError> {
        if raw.chars().any(char::is_control) {
            return Err(PathError::Control(raw.to_string()));
        }
        let mut comps = Vec::new();
        for c in raw.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err(PathError::DotDot(raw.to_string())),
                c if c.len() > 255 => return Err(PathError::TooLong(raw.to_string())),
                c if looks_like_control_file(c) => {
                    return Err(PathError::ControlFile(raw.to_string(), c.to_string()));
                }
                c => comps.push(c),
            }
        }
        if comps.is_empty() {
            return Err(PathError::Root(raw.to_string()));
        }
        Ok(CgroupPath {
            absolute: raw.starts_with('/'),
            rel: comps.join("/"),
        })
    }

    /// The default `/berth/<id>` path.
    pub fn default_for(id: &str) -> Result<CgroupPath, PathError> {
        if id.is_empty()
            || id == "."
            || id == ".."
            || id.contains('/')
            || id.chars().any(char::is_control)
        {
            return Err(PathError::Id(id.to_string()));
        }
        CgroupPath::parse(&format!("/berth/{id}"))
    }

    /// The path as written in messages, `/a/b` or `a/b`.
    pub fn display(&self) -> String {
        if self.absolute {
            format!("/{}", self.rel)
        } else {
            self.rel.clone()
        }
    }
}

/// Whether a component would collide with a cgroupfs file (`cgroup.procs`,
/// `memory.max`, `tasks`, …) rather than name a child cgroup.
fn looks_like_control_file(c: &str) -> bool {
    const PLAIN: &[&str] = &["tasks", "notify_on_release", "release_agent"];
    if PLAIN.contains(&c) {
        return true;
    }
    match c.split_once('.') {
        Some((prefix, _)) => {
            prefix == "cgroup" || V1_SUBSYSTEMS.contains(&prefix) || prefix == "io"
        }
        None => false,
    }
}

/// Expands the systemd `slice:prefix:name` form to the cgroupfs path systemd
/// gives it: `a-b.slice:docker:x` → `/a.slice/a-b.slice/docker-x.scope`.
pub fn systemd_path(raw: &str, id: &str) -> Result<CgroupPath, PathError> {
    let bad = || PathError::SystemdForm(raw.to_string());
    let parts: Vec<&str> = raw.split(':').collect();
    let [slice, prefix, name] = parts.as_slice() else {
        return Err(bad());
    };
    let name = if name.is_empty() { id } else { name };
    let ok_unit = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '\\'))
    };
    if !ok_unit(name) || (!prefix.is_empty() && !ok_unit(prefix)) {
        return Err(bad());
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let base = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if !ok_unit(base) || base.contains('/') {
        return Err(bad());
    }
    let mut path = String::new();
    if base != "-" {
        if base.starts_with('-') || base.ends_with('-') || base.contains("--") {
            return Err(bad());
        }
        let mut acc = String::new();
        for part in base.split('-') {
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(part);
            path.push('/');
            path.push_str(&acc);
            path.push_str(".slice");
        }
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    path.push('/');
    path.push_str(&unit);
    CgroupPath::parse(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MI: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_PC: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/89947e597ebbee6a913dc0bb80b01447
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";
    const V2_MI: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
    const V2_PC: &str = "0::/user.slice/user-0.slice/session-1.scope\n";
    const V1_MI: &str = "\
30 23 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
31 23 0:27 /docker/abc /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
32 23 0:28 / /sys/fs/cgroup/my\\040dir rw - cgroup cgroup rw,xattr,pids
";
    const V1_PC: &str = "3:pids:/\n2:memory:/docker/abc/inner\n1:cpu,cpuacct:/\n";

    fn p(s: &str) -> CgroupPath {
        CgroupPath::parse(s).expect("valid path")
    }

    #[test]
    fn modes() {
        let cases = [
            (HYBRID_MI, HYBRID_PC, Mode::Hybrid),
            (V2_MI, V2_PC, Mode::Unified),
            (V1_MI, V1_PC, Mode::Legacy),
        ];
        for (mi, pc, mode) in cases {
            assert_eq!(Layout::parse(mi, pc).expect("parse").mode(), mode);
        }
    }

    #[test]
    fn hybrid_dirs() {
        let l = Layout::parse(HYBRID_MI, HYBRID_PC).expect("parse");
        assert!(!l.v1.contains_key("hugetlb"));
        assert_eq!(
            l.v1_dir("memory", &p("/berth/x")),
            Some("/sys/fs/cgroup/memory/berth/x".into())
        );
        assert_eq!(
            l.v1_dir("memory", &p("berth/x")),
            Some(
                "/sys/fs/cgroup/memory/process_api/89947e597ebbee6a913dc0bb80b01447/berth/x".into()
            )
        );
        assert_eq!(
            l.v1_dir("cpu", &p("b/x")),
            Some("/sys/fs/cgroup/cpu/b/x".into())
        );
        assert_eq!(l.v1_dir("hugetlb", &p("/b")), None);
        assert_eq!(
            l.v2_dir(&p("/berth/x")),
            Some("/sys/fs/cgroup/unified/berth/x".into())
        );
        assert_eq!(l.v2_dir(&p("x")), Some("/sys/fs/cgroup/unified/x".into()));
    }

    #[test]
    fn unified_dirs() {
        let l = Layout::parse(V2_MI, V2_PC).expect("parse");
        assert!(l.v1.is_empty());
        assert_eq!(l.v2_dir(&p("/a/b")), Some("/sys/fs/cgroup/a/b".into()));
        assert_eq!(
            l.v2_dir(&p("ctr")),
            Some("/sys/fs/cgroup/user.slice/user-0.slice/ctr".into())
        );
    }

    #[test]
    fn legacy_dirs_with_mount_root_and_escapes() {
        let l = Layout::parse(V1_MI, V1_PC).expect("parse");
        assert_eq!(
            l.v1_dir("cpuacct", &p("/a")),
            Some("/sys/fs/cgroup/cpu,cpuacct/a".into())
        );
        assert_eq!(
            l.v1_dir("memory", &p("a")),
            Some("/sys/fs/cgroup/memory/inner/a".into())
        );
        assert_eq!(
            l.v1_dir("pids", &p("/a")),
            Some("/sys/fs/cgroup/my dir/a".into())
        );
        assert!(!l.v1.contains_key("xattr"));
        assert_eq!(l.v2, None);
    }

    #[test]
    fn line_parsers_keep_every_field() {
        let mi = parse_mountinfo_lines(V1_MI).expect("parse");
        assert_eq!(mi.len(), 3);
        assert_eq!(mi[1].root, PathBuf::from("/docker/abc"));
        assert_eq!(mi[2].mount_point, PathBuf::from("/sys/fs/cgroup/my dir"));
        assert_eq!(mi[2].super_options, "rw,xattr,pids");
        assert_eq!(mi[0].optional, Vec::<String>::new());
        let shared = parse_mountinfo_lines(V2_MI).expect("parse");
        assert_eq!(shared[1].optional, vec!["shared:9".to_string()]);
        assert_eq!(shared[1].fstype, "cgroup2");
        let pc = parse_proc_cgroup_lines(V1_PC).expect("parse");
        assert_eq!(
            pc[2],
            CgroupLine {
                id: 1,
                controllers: "cpu,cpuacct".into(),
                path: "/".into()
            }
        );
        for bad in ["x:y\n", "a:memory:/\n", "3:pids\n"] {
            assert!(parse_proc_cgroup_lines(bad).is_err(), "{bad:?}");
        }
        assert_eq!(unescape("a\\040b\\134"), "a b\\");
    }

    #[test]
    fn malformed_inputs() {
        assert!(Layout::parse("garbage\n", "").is_err());
        assert!(Layout::parse(V2_MI, "nonsense\n").is_err());
        assert!(matches!(
            Layout::parse("1 2 3:4 / / rw - ext4 /dev/x rw\n", ""),
            Err(LayoutError::NoCgroups)
        ));
    }

    #[test]
    fn cgroups_path_checks() {
        let ok = [
            ("/berth/abc", true, "berth/abc"),
            ("berth//abc/", false, "berth/abc"),
            ("/./a", true, "a"),
            (
                "/kubepods/burstable/pod1/c1",
                true,
                "kubepods/burstable/pod1/c1",
            ),
        ];
        for (raw, abs, rel) in ok {
            let c = p(raw);
            assert_eq!((c.absolute, c.rel.as_str()), (abs, rel), "{raw}");
        }
        let bad = [
            "",
            "/",
            "//./",
            "../x",
            "/a/../../etc",
            "/a/..",
            "a\0b",
            "a\nb",
            "/a/cgroup.procs",
            "/a/memory.limit_in_bytes",
            "/tasks",
        ];
        for raw in bad {
            assert!(CgroupPath::parse(raw).is_err(), "{raw:?} accepted");
        }
        assert!(CgroupPath::parse(&format!("/{}", "a".repeat(256))).is_err());
        assert!(CgroupPath::default_for("../x").is_err());
        assert!(CgroupPath::default_for("").is_err());
        assert_eq!(
            CgroupPath::default_for("c1").expect("id").display(),
            "/berth/c1"
        );
    }

    /// Every path `parse` accepts stays inside the hierarchy, whatever the input.
    #[test]
    fn accepted_paths_never_escape() {
        let alphabet = ['a', 'b', '/', '.', '.', ':', '\0', '\n', '-', ' '];
        let l = Layout::parse(HYBRID_MI, HYBRID_PC).expect("parse");
        // A small deterministic generator (xorshift) instead of a fuzzing crate.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let raw: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let Ok(c) = CgroupPath::parse(&raw) else {
                continue;
            };
            assert!(
                c.rel
                    .split('/')
                    .all(|p| !p.is_empty() && p != "." && p != ".."),
                "{raw:?} -> {c:?}"
            );
            for dir in [l.v1_dir("memory", &c), l.v1_dir("cpu", &c), l.v2_dir(&c)] {
                let dir = dir.expect("mounted");
                assert!(dir.starts_with("/sys/fs/cgroup/"), "{raw:?} -> {dir:?}");
                assert!(
                    dir.components()
                        .all(|c| c != std::path::Component::ParentDir),
                    "{raw:?} -> {dir:?}"
                );
            }
        }
    }

    #[test]
    fn systemd_form() {
        let cases = [
            ("system.slice:docker:abc", "/system.slice/docker-abc.scope"),
            (
                "a-b-c.slice:cri:x",
                "/a.slice/a-b.slice/a-b-c.slice/cri-x.scope",
            ),
            ("-.slice:p:n", "/p-n.scope"),
            (":berth:", "/system.slice/berth-ID.scope"),
            ("machine.slice::n", "/machine.slice/n.scope"),
        ];
        for (raw, want) in cases {
            assert_eq!(systemd_path(raw, "ID").expect(raw).display(), want, "{raw}");
        }
        for raw in [
            "/a/b",
            "a:b",
            "x:p:n",
            "a--b.slice:p:n",
            "s.slice:p:../n",
            "s.slice:p/q:n",
        ] {
            assert!(systemd_path(raw, "ID").is_err(), "{raw:?} accepted");
        }
    }
}
