//! `berth exec --cgroup`: run the exec'd process in an existing sub-cgroup of the
//! container's cgroup, as runc 1.1+ does. Each flag is `PATH` (every hierarchy) or
//! `CONTROLLER[,CONTROLLER]:PATH` (those v1 controllers; the rest stay in the
//! container's cgroup). Paths are relative to the container's cgroup and never leave it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Manager, Mode};

/// Errors of `--cgroup` values and of placing a process by them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubCgroupError {
    /// The path is empty or only slashes.
    #[error("--cgroup {0:?}: empty sub-cgroup path")]
    Empty(String),
    /// The path climbs (`..`) or names the current directory (`.`).
    #[error("--cgroup {0:?}: a sub-cgroup path may not contain . or .. components")]
    Climbs(String),
    /// A controller name is empty or holds a `/`.
    #[error("--cgroup {0:?}: bad controller name")]
    BadController(String),
    /// The same controller is given twice.
    #[error("--cgroup: controller {0} given more than once")]
    Duplicate(String),
    /// A path for every hierarchy is mixed with per-controller paths.
    #[error("--cgroup: a PATH for every controller cannot be combined with CONTROLLER:PATH")]
    Mixed,
    /// A per-controller path names a controller this host does not mount.
    #[error("--cgroup: controller {0} is not mounted on this host")]
    UnknownController(String),
    /// Co-mounted controllers (one hierarchy) are given different paths.
    #[error("--cgroup: controllers {a} and {b} share a hierarchy but got different paths")]
    Conflict {
        /// One controller.
        a: String,
        /// The other.
        b: String,
    },
    /// Per-controller paths on a pure cgroup v2 host.
    #[error("--cgroup: cgroup v2 has one hierarchy; give PATH without a controller")]
    ControllerOnV2,
    /// The sub-cgroup does not exist (it is not created, as with runc).
    #[error("--cgroup: sub-cgroup {0} does not exist")]
    Missing(PathBuf),
}

type Result<T> = std::result::Result<T, SubCgroupError>;

/// Parsed `--cgroup` flags; the default (no flag) means the container's own cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubCgroups {
    /// A sub-path for every hierarchy.
    all: Option<String>,
    /// v1 controller → sub-path.
    per: BTreeMap<String, String>,
}

/// Checks and normalizes a sub-cgroup path (`a//b/` → `a/b`; a leading `/` is still
/// below the container's cgroup).
fn clean_path(raw: &str, whole: &str) -> Result<String> {
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" => {}
            "." | ".." => return Err(SubCgroupError::Climbs(whole.to_string())),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(SubCgroupError::Empty(whole.to_string()));
    }
    Ok(parts.join("/"))
}

impl SubCgroups {
    /// Parses the values of every `--cgroup` flag.
    pub fn parse(flags: &[String]) -> Result<SubCgroups> {
        let mut out = SubCgroups::default();
        for f in flags {
            match f.split_once(':') {
                None => {
                    if out.all.is_some() {
                        return Err(SubCgroupError::Duplicate("(all)".into()));
                    }
                    out.all = Some(clean_path(f, f)?);
                }
                Some((ctrls, path)) => {
                    let path = clean_path(path, f)?;
                    for c in ctrls.split(',') {
                        if c.is_empty() || c.contains('/') {
                            return Err(SubCgroupError::BadController(f.clone()));
                        }
                        if out.per.insert(c.to_string(), path.clone()).is_some() {
                            return Err(SubCgroupError::Duplicate(c.to_string()));
                        }
                    }
                }
            }
        }
        if out.all.is_some() && !out.per.is_empty() {
            return Err(SubCgroupError::Mixed);
        }
        Ok(out)
    }

    /// Whether no flag was given.
    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.per.is_empty()
    }
}

/// The directories a process joins: each distinct hierarchy of the container's cgroup
/// (`v1`: controller → directory, `v2`), moved into the requested sub-cgroups (pure).
pub fn plan_dirs(
    mode: Mode,
    v1: &BTreeMap<String, PathBuf>,
    v2: Option<&Path>,
    sub: &SubCgroups,
) -> Result<Vec<PathBuf>> {
    if mode == Mode::Unified && !sub.per.is_empty() {
        return Err(SubCgroupError::ControllerOnV2);
    }
    if let Some(c) = sub.per.keys().find(|c| !v1.contains_key(*c)) {
        return Err(SubCgroupError::UnknownController(c.clone()));
    }
    // Per hierarchy directory: the sub-path asked for by any of its controllers.
    let mut chosen: Vec<(PathBuf, Option<(&str, &str)>)> = Vec::new();
    for (ctrl, dir) in v1 {
        let want = sub.per.get(ctrl).map(|p| (ctrl.as_str(), p.as_str()));
        match chosen.iter_mut().find(|(d, _)| d == dir) {
            Some((_, have)) => match (&have, want) {
                (Some((a, pa)), Some((b, pb))) if *pa != pb => {
                    return Err(SubCgroupError::Conflict {
                        a: a.to_string(),
                        b: b.to_string(),
                    });
                }
                (None, Some(_)) => *have = want,
                _ => {}
            },
            None => chosen.push((dir.clone(), want)),
        }
    }
    let mut out: Vec<PathBuf> = chosen
        .into_iter()
        .map(|(dir, want)| match (&sub.all, want) {
            (Some(all), _) => dir.join(all),
            (None, Some((_, p))) => dir.join(p),
            (None, None) => dir,
        })
        .collect();
    if let Some(v2) = v2
        && !out.iter().any(|d| d == v2)
    {
        out.push(match &sub.all {
            Some(all) => v2.join(all),
            None => v2.to_path_buf(),
        });
    }
    Ok(out)
}

impl Manager {
    /// Moves `pid` into the container's cgroup, or into the sub-cgroups `sub` names
    /// (which must exist), in every hierarchy.
    pub fn add_pid_sub(&self, pid: i32, sub: &SubCgroups) -> super::Result<()> {
        if sub.is_empty() {
            return self.add_pid(pid);
        }
        let dirs = plan_dirs(self.mode, &self.v1, self.v2.as_deref(), sub)?;
        if let Some(d) = dirs.iter().find(|d| !d.is_dir()) {
            return Err(SubCgroupError::Missing(d.clone()).into());
        }
        for dir in dirs {
            let f = dir.join("cgroup.procs");
            std::fs::write(&f, pid.to_string()).map_err(super::io("write", &f))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parsing() {
        let s = SubCgroups::parse(&flags(&["/a//b/"])).unwrap();
        assert_eq!(s.all.as_deref(), Some("a/b"));
        let s = SubCgroups::parse(&flags(&["cpu,cpuacct:x", "memory:y/z"])).unwrap();
        assert_eq!(s.per["cpu"], "x");
        assert_eq!(s.per["cpuacct"], "x");
        assert_eq!(s.per["memory"], "y/z");
        assert!(SubCgroups::parse(&[]).unwrap().is_empty());
        let bad = [
            (vec!["../up"], SubCgroupError::Climbs("../up".into())),
            (vec!["a/./b"], SubCgroupError::Climbs("a/./b".into())),
            (
                vec!["memory:.."],
                SubCgroupError::Climbs("memory:..".into()),
            ),
            (vec!["/"], SubCgroupError::Empty("/".into())),
            (vec!["memory:"], SubCgroupError::Empty("memory:".into())),
            (vec![":x"], SubCgroupError::BadController(":x".into())),
            (vec!["a/b:x"], SubCgroupError::BadController("a/b:x".into())),
            (
                vec!["memory:x", "memory:y"],
                SubCgroupError::Duplicate("memory".into()),
            ),
            (vec!["x", "memory:y"], SubCgroupError::Mixed),
            (vec!["x", "y"], SubCgroupError::Duplicate("(all)".into())),
        ];
        for (f, want) in bad {
            assert_eq!(SubCgroups::parse(&flags(&f)), Err(want), "{f:?}");
        }
    }

    fn hybrid() -> BTreeMap<String, PathBuf> {
        [
            ("cpu", "/cg/cpu,cpuacct/c"),
            ("cpuacct", "/cg/cpu,cpuacct/c"),
            ("memory", "/cg/memory/c"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
        .collect()
    }

    #[test]
    fn planning() {
        let v1 = hybrid();
        let v2 = Path::new("/cg/unified/c");
        let p = |f: &[&str]| {
            plan_dirs(
                Mode::Hybrid,
                &v1,
                Some(v2),
                &SubCgroups::parse(&flags(f)).unwrap(),
            )
        };
        let strs = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter().map(|p| p.display().to_string()).collect()
        };
        assert_eq!(
            strs(p(&["s"]).unwrap()),
            ["/cg/cpu,cpuacct/c/s", "/cg/memory/c/s", "/cg/unified/c/s"]
        );
        assert_eq!(
            strs(p(&["memory:m"]).unwrap()),
            ["/cg/cpu,cpuacct/c", "/cg/memory/c/m", "/cg/unified/c"]
        );
        // One controller of a co-mounted pair moves the whole hierarchy.
        assert_eq!(
            strs(p(&["cpuacct:k"]).unwrap()),
            ["/cg/cpu,cpuacct/c/k", "/cg/memory/c", "/cg/unified/c"]
        );
        assert_eq!(
            p(&["cpu:a", "cpuacct:b"]),
            Err(SubCgroupError::Conflict {
                a: "cpu".into(),
                b: "cpuacct".into()
            })
        );
        assert_eq!(
            p(&["pids:x"]),
            Err(SubCgroupError::UnknownController("pids".into()))
        );
        let v2only = BTreeMap::new();
        let sub = SubCgroups::parse(&flags(&["memory:x"])).unwrap();
        assert_eq!(
            plan_dirs(Mode::Unified, &v2only, Some(v2), &sub),
            Err(SubCgroupError::ControllerOnV2)
        );
        let sub = SubCgroups::parse(&flags(&["x/y"])).unwrap();
        assert_eq!(
            strs(plan_dirs(Mode::Unified, &v2only, Some(v2), &sub).unwrap()),
            ["/cg/unified/c/x/y"]
        );
    }
}
