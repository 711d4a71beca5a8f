//! Mount option parsing: the fstab-style `options` of a runtime-spec mount turned into
//! mount(2) flags, propagation changes, recursive mount attributes and a data string,
//! accepting the same words runc accepts (runtime-spec `config.md`, "Mounts").

use libc::c_ulong;

use super::RootfsError;

/// A mount's options split the way the kernel takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2) (`MS_*`), after applying every set/clear word in order.
    pub flags: c_ulong,
    /// Per-mount flags the options cleared explicitly (`rw`, `suid`, `dev`, `exec`, ...):
    /// a bind remount must not put them back from the source mount.
    pub cleared: c_ulong,
    /// Propagation changes (`MS_SHARED`, `MS_SLAVE|MS_REC`, ...), applied in order after the mount.
    pub propagation: Vec<c_ulong>,
    /// Recursive mount attributes to set (`MOUNT_ATTR_*`, via mount_setattr with AT_RECURSIVE).
    pub attr_set: u64,
    /// Recursive mount attributes to clear.
    pub attr_clr: u64,
    /// Options the kernel does not know as flags, for the filesystem's data string.
    pub data: Vec<String>,
    /// `tmpcopyup`: copy the destination's former contents into a fresh tmpfs.
    pub tmpcopyup: bool,
    /// `idmap` / `ridmap`: an ID-mapped bind mount (see [`super::idmap`]).
    pub idmap: Option<Idmap>,
}

/// How far an ID mapping reaches on a bind mount (runtime-spec `config.md`, "Mounts").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idmap {
    /// `idmap`: the mount itself; submounts of an `rbind` keep their ids.
    Top,
    /// `ridmap`: the mount and every submount.
    Recursive,
}

impl MountOptions {
    /// The data string given to mount(2) (comma-joined unknown options).
    pub fn data_string(&self) -> String {
        self.data.join(",")
    }

    /// Whether the options ask for a bind mount (`bind` or `rbind`).
    pub fn is_bind(&self) -> bool {
        self.flags & libc::MS_BIND != 0
    }

    /// Whether the options carry any recursive mount attribute.
    pub fn has_rec_attrs(&self) -> bool {
        self.attr_set != 0 || self.attr_clr != 0
    }
}

/// `(word, clear, flag)`: the mount(2) flag words runc accepts.
const FLAG_WORDS: &[(&str, bool, c_ulong)] = &[
    ("async", true, libc::MS_SYNCHRONOUS),
    ("atime", true, libc::MS_NOATIME),
    ("bind", false, libc::MS_BIND),
    ("defaults", false, 0),
    ("dev", true, libc::MS_NODEV),
    ("diratime", true, libc::MS_NODIRATIME),
    ("dirsync", false, libc::MS_DIRSYNC),
    ("exec", true, libc::MS_NOEXEC),
    ("iversion", false, libc::MS_I_VERSION),
    ("lazytime", false, libc::MS_LAZYTIME),
    ("loud", true, libc::MS_SILENT),
    ("mand", false, libc::MS_MANDLOCK),
    ("noatime", false, libc::MS_NOATIME),
    ("nodev", false, libc::MS_NODEV),
    ("nodiratime", false, libc::MS_NODIRATIME),
    ("noexec", false, libc::MS_NOEXEC),
    ("noiversion", true, libc::MS_I_VERSION),
    ("nolazytime", true, libc::MS_LAZYTIME),
    ("nomand", true, libc::MS_MANDLOCK),
    ("norelatime", true, libc::MS_RELATIME),
    ("nostrictatime", true, libc::MS_STRICTATIME),
    ("nosuid", false, libc::MS_NOSUID),
    ("nosymfollow", false, libc::MS_NOSYMFOLLOW),
    ("rbind", false, libc::MS_BIND | libc::MS_REC),
    ("relatime", false, libc::MS_RELATIME),
    ("remount", false, libc::MS_REMOUNT),
    ("ro", false, libc::MS_RDONLY),
    ("rw", true, libc::MS_RDONLY),
    ("silent", false, libc::MS_SILENT),
    ("strictatime", false, libc::MS_STRICTATIME),
    ("suid", true, libc::MS_NOSUID),
    ("symfollow", true, libc::MS_NOSYMFOLLOW),
    ("sync", false, libc::MS_SYNCHRONOUS),
];

/// Propagation words and their mount(2) flags.
const PROPAGATION_WORDS: &[(&str, c_ulong)] = &[
    ("private", libc::MS_PRIVATE),
    ("rprivate", libc::MS_PRIVATE | libc::MS_REC),
    ("shared", libc::MS_SHARED),
    ("rshared", libc::MS_SHARED | libc::MS_REC),
    ("slave", libc::MS_SLAVE),
    ("rslave", libc::MS_SLAVE | libc::MS_REC),
    ("unbindable", libc::MS_UNBINDABLE),
    ("runbindable", libc::MS_UNBINDABLE | libc::MS_REC),
];

/// `(word, clear, attr)`: recursive mount attributes (mount_setattr, AT_RECURSIVE).
const REC_ATTR_WORDS: &[(&str, bool, u64)] = &[
    ("rro", false, libc::MOUNT_ATTR_RDONLY),
    ("rrw", true, libc::MOUNT_ATTR_RDONLY),
    ("rnosuid", false, libc::MOUNT_ATTR_NOSUID),
    ("rsuid", true, libc::MOUNT_ATTR_NOSUID),
    ("rnodev", false, libc::MOUNT_ATTR_NODEV),
    ("rdev", true, libc::MOUNT_ATTR_NODEV),
    ("rnoexec", false, libc::MOUNT_ATTR_NOEXEC),
    ("rexec", true, libc::MOUNT_ATTR_NOEXEC),
    ("rnodiratime", false, libc::MOUNT_ATTR_NODIRATIME),
    ("rdiratime", true, libc::MOUNT_ATTR_NODIRATIME),
    ("rrelatime", false, libc::MOUNT_ATTR_RELATIME),
    ("rnorelatime", true, libc::MOUNT_ATTR_RELATIME),
    ("rnoatime", false, libc::MOUNT_ATTR_NOATIME),
    ("ratime", true, libc::MOUNT_ATTR_NOATIME),
    ("rstrictatime", false, libc::MOUNT_ATTR_STRICTATIME),
    ("rnostrictatime", true, libc::MOUNT_ATTR_STRICTATIME),
    ("rnosymfollow", false, libc::MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", true, libc::MOUNT_ATTR_NOSYMFOLLOW),
];

/// Looks up a propagation word (`rslave`, `private`, ...), as used by
/// `linux.rootfsPropagation` too.
pub fn propagation_flag(word: &str) -> Option<c_ulong> {
    PROPAGATION_WORDS
        .iter()
        .find(|(w, _)| *w == word)
        .map(|(_, f)| *f)
}

/// Parses a mount's options in order (a later word overrides an earlier one, as in
/// runc). Words that are not flags go to the data string.
pub fn parse_options(destination: &str, options: &[String]) -> Result<MountOptions, RootfsError> {
    let mut out = MountOptions::default();
    for opt in options {
        let word = opt.as_str();
        if let Some((_, clear, flag)) = FLAG_WORDS.iter().find(|(w, _, _)| *w == word) {
            if *clear {
                out.flags &= !flag;
                out.cleared |= flag;
            } else {
                out.flags |= flag;
                out.cleared &= !flag;
            }
        } else if let Some(p) = propagation_flag(word) {
            out.propagation.push(p);
        } else if let Some((_, clear, attr)) = REC_ATTR_WORDS.iter().find(|(w, _, _)| *w == word) {
            if *clear {
                out.attr_clr |= attr;
                out.attr_set &= !attr;
            } else {
                out.attr_set |= attr;
                out.attr_clr &= !attr;
                // An atime mode replaces the whole atime field (MOUNT_ATTR__ATIME).
                if *attr & libc::MOUNT_ATTR__ATIME == *attr {
                    out.attr_clr |= libc::MOUNT_ATTR__ATIME;
                }
            }
        } else if word == "tmpcopyup" {
            out.tmpcopyup = true;
        } else if word == "idmap" {
            out.idmap = Some(Idmap::Top);
        } else if word == "ridmap" {
            out.idmap = Some(Idmap::Recursive);
        } else if word.is_empty() {
            return Err(RootfsError::InvalidOption {
                destination: destination.to_string(),
                option: String::new(),
                reason: "empty option",
            });
        } else {
            out.data.push(word.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(opts: &[&str]) -> MountOptions {
        let v: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        parse_options("/t", &v).expect("options parse")
    }

    #[test]
    fn every_flag_word() {
        use libc::*;
        let cases: &[(&str, c_ulong)] = &[
            ("ro", MS_RDONLY),
            ("rw", 0),
            ("suid", 0),
            ("nosuid", MS_NOSUID),
            ("dev", 0),
            ("nodev", MS_NODEV),
            ("exec", 0),
            ("noexec", MS_NOEXEC),
            ("sync", MS_SYNCHRONOUS),
            ("async", 0),
            ("dirsync", MS_DIRSYNC),
            ("remount", MS_REMOUNT),
            ("mand", MS_MANDLOCK),
            ("nomand", 0),
            ("atime", 0),
            ("noatime", MS_NOATIME),
            ("diratime", 0),
            ("nodiratime", MS_NODIRATIME),
            ("bind", MS_BIND),
            ("rbind", MS_BIND | MS_REC),
            ("relatime", MS_RELATIME),
            ("norelatime", 0),
            ("strictatime", MS_STRICTATIME),
            ("nostrictatime", 0),
            ("lazytime", MS_LAZYTIME),
            ("nolazytime", 0),
            ("silent", MS_SILENT),
            ("loud", 0),
            ("iversion", MS_I_VERSION),
            ("noiversion", 0),
            ("nosymfollow", MS_NOSYMFOLLOW),
            ("symfollow", 0),
            ("defaults", 0),
        ];
        for (word, flags) in cases {
            let o = parse(&[word]);
            assert_eq!(o.flags, *flags, "flags of {word}");
            assert!(o.data.is_empty(), "{word} must not reach the data string");
            assert!(o.propagation.is_empty());
        }
    }

    #[test]
    fn later_word_wins_and_clears_are_recorded() {
        use libc::*;
        let cases: &[(&[&str], c_ulong, c_ulong)] = &[
            (&["ro", "rw"], 0, MS_RDONLY),
            (&["rw", "ro"], MS_RDONLY, 0),
            (&["nosuid", "suid", "nodev"], MS_NODEV, MS_NOSUID),
            (&["noexec", "exec", "noexec"], MS_NOEXEC, 0),
            (
                &["bind", "ro", "nosuid"],
                MS_BIND | MS_RDONLY | MS_NOSUID,
                0,
            ),
        ];
        for (opts, flags, cleared) in cases {
            let o = parse(opts);
            assert_eq!(o.flags, *flags, "{opts:?}");
            assert_eq!(o.cleared, *cleared, "{opts:?}");
        }
    }

    #[test]
    fn propagation_words() {
        use libc::*;
        let cases: &[(&str, c_ulong)] = &[
            ("private", MS_PRIVATE),
            ("rprivate", MS_PRIVATE | MS_REC),
            ("shared", MS_SHARED),
            ("rshared", MS_SHARED | MS_REC),
            ("slave", MS_SLAVE),
            ("rslave", MS_SLAVE | MS_REC),
            ("unbindable", MS_UNBINDABLE),
            ("runbindable", MS_UNBINDABLE | MS_REC),
        ];
        for (word, flag) in cases {
            let o = parse(&["bind", word]);
            assert_eq!(o.propagation, vec![*flag], "{word}");
            assert_eq!(o.flags, MS_BIND, "{word} is not a mount(2) flag");
        }
        assert_eq!(
            parse(&["rprivate", "shared"]).propagation,
            vec![MS_PRIVATE | MS_REC, MS_SHARED]
        );
    }

    #[test]
    fn recursive_attrs() {
        use libc::*;
        let cases: &[(&[&str], u64, u64)] = &[
            (&["rro"], MOUNT_ATTR_RDONLY, 0),
            (&["rrw"], 0, MOUNT_ATTR_RDONLY),
            (&["rro", "rrw"], 0, MOUNT_ATTR_RDONLY),
            (
                &["rnosuid", "rnodev", "rnoexec"],
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                0,
            ),
            (
                &["rsuid", "rdev", "rexec"],
                0,
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            ),
            (&["rnodiratime"], MOUNT_ATTR_NODIRATIME, 0),
            (&["rdiratime"], 0, MOUNT_ATTR_NODIRATIME),
            (&["rnoatime"], MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
            (&["rstrictatime"], MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
            (&["rrelatime"], MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
            (&["ratime"], 0, MOUNT_ATTR_NOATIME),
            (&["rnosymfollow"], MOUNT_ATTR_NOSYMFOLLOW, 0),
            (&["rsymfollow"], 0, MOUNT_ATTR_NOSYMFOLLOW),
        ];
        for (opts, set, clr) in cases {
            let o = parse(opts);
            assert_eq!((o.attr_set, o.attr_clr), (*set, *clr), "{opts:?}");
            assert_eq!(o.flags, 0, "{opts:?} must not set mount(2) flags");
        }
    }

    #[test]
    fn unknown_words_go_to_data_in_order() {
        let o = parse(&[
            "nosuid",
            "mode=755",
            "size=65536k",
            "newinstance",
            "ptmxmode=0666",
        ]);
        assert_eq!(o.flags, libc::MS_NOSUID);
        assert_eq!(
            o.data_string(),
            "mode=755,size=65536k,newinstance,ptmxmode=0666"
        );
    }

    #[test]
    fn tmpcopyup_and_idmap_are_recorded() {
        assert!(parse(&["tmpcopyup"]).tmpcopyup);
        assert_eq!(parse(&["rbind"]).idmap, None);
        assert_eq!(parse(&["bind", "idmap"]).idmap, Some(Idmap::Top));
        assert_eq!(parse(&["rbind", "ridmap"]).idmap, Some(Idmap::Recursive));
        assert_eq!(parse(&["ridmap", "idmap"]).idmap, Some(Idmap::Top));
        assert!(parse(&["idmap"]).data.is_empty());
        let err = parse_options("/x", &[String::new()]).expect_err("empty refused");
        assert!(matches!(err, RootfsError::InvalidOption { .. }));
    }

    #[test]
    fn rootfs_propagation_lookup() {
        assert_eq!(
            propagation_flag("rslave"),
            Some(libc::MS_SLAVE | libc::MS_REC)
        );
        assert_eq!(propagation_flag("bogus"), None);
    }
}
