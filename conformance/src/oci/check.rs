//! Pure parsers for what a container prints about itself: /proc/self/status,
//! /proc/self/mountinfo, capability names and masks.

/// Capability names in bit order (linux/capability.h).
pub const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Errors parsing what a container printed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckError {
    /// Not a capability name.
    #[error("unknown capability {0:?}")]
    UnknownCap(String),
    /// A /proc/self/status line is missing.
    #[error("no {0:?} line in /proc/self/status output")]
    MissingField(String),
    /// A capability mask is not hex.
    #[error("{0:?} is not a hex capability mask")]
    BadMask(String),
}

/// The bit mask of a set of capability names.
pub fn cap_mask(names: &[&str]) -> Result<u64, CheckError> {
    names.iter().try_fold(0u64, |acc, n| {
        CAP_NAMES
            .iter()
            .position(|c| c == n)
            .map(|bit| acc | (1u64 << bit))
            .ok_or_else(|| CheckError::UnknownCap((*n).to_string()))
    })
}

/// The value of `Key:` in /proc/PID/status text, trimmed.
pub fn status_field<'a>(status: &'a str, key: &str) -> Result<&'a str, CheckError> {
    status
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == key).then(|| v.trim())
        })
        .ok_or_else(|| CheckError::MissingField(key.to_string()))
}

/// A capability mask line (`CapEff:` etc.) of /proc/PID/status.
pub fn status_caps(status: &str, key: &str) -> Result<u64, CheckError> {
    let v = status_field(status, key)?;
    u64::from_str_radix(v, 16).map_err(|_| CheckError::BadMask(v.to_string()))
}

/// One line of /proc/PID/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Where it is mounted (octal escapes left as they are).
    pub mount_point: String,
    /// Per-mount options (`rw`, `nosuid`, ...).
    pub options: Vec<String>,
    /// Optional fields (`shared:N`, `master:N`, ...).
    pub optional: Vec<String>,
    /// Filesystem type.
    pub fstype: String,
    /// Mount source.
    pub source: String,
    /// Superblock options.
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// Whether the mount is read-only.
    pub fn readonly(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }

    /// Whether the mount is in a shared peer group.
    pub fn shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }

    /// Whether the mount is a slave of a peer group.
    pub fn slave(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("master:"))
    }
}

/// Parses /proc/PID/mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    if sep < 6 || fields.len() < sep + 3 {
        return None;
    }
    Some(MountInfo {
        mount_point: fields[4].to_string(),
        options: fields[5].split(',').map(str::to_string).collect(),
        optional: fields[6..sep].iter().map(|s| s.to_string()).collect(),
        fstype: fields[sep + 1].to_string(),
        source: fields[sep + 2].to_string(),
        super_options: fields
            .get(sep + 3)
            .map(|s| s.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
    })
}

/// The last (topmost) mount at `point`.
pub fn mount_at<'a>(mounts: &'a [MountInfo], point: &str) -> Option<&'a MountInfo> {
    mounts.iter().rev().find(|m| m.mount_point == point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_masks() {
        let table: &[(&[&str], u64)] = &[
            (&[], 0),
            (&["CAP_CHOWN"], 1),
            (&["CAP_KILL", "CAP_NET_BIND_SERVICE"], (1 << 5) | (1 << 10)),
            (&["CAP_AUDIT_WRITE"], 1 << 29),
            (&["CAP_CHECKPOINT_RESTORE"], 1 << 40),
        ];
        for (names, want) in table {
            assert_eq!(cap_mask(names), Ok(*want), "{names:?}");
        }
        assert_eq!(
            cap_mask(&["CAP_NOPE"]),
            Err(CheckError::UnknownCap("CAP_NOPE".into()))
        );
    }

    #[test]
    fn status_parsing() {
        let s =
            "Name:\tsh\nUmask:\t0027\nCapEff:\t0000000000000420\nNoNewPrivs:\t1\nGroups:\t5 6 \n";
        assert_eq!(status_field(s, "Umask"), Ok("0027"));
        assert_eq!(status_field(s, "Groups"), Ok("5 6"));
        assert_eq!(status_caps(s, "CapEff"), Ok(0x420));
        assert_eq!(
            status_field(s, "CapAmb"),
            Err(CheckError::MissingField("CapAmb".into()))
        );
        assert!(matches!(
            status_caps("CapEff:\tzz\n", "CapEff"),
            Err(CheckError::BadMask(_))
        ));
    }

    #[test]
    fn mountinfo_parsing() {
        let text = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
40 22 0:36 / /mnt/s rw,nosuid shared:5 master:2 - tmpfs tmpfs rw,size=1024k,mode=1777\n\
41 22 0:37 / /mnt/p ro,relatime - tmpfs none ro\n\
garbage line\n\
42 22 0:38 / /mnt/p rw - proc proc rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 4);
        assert!(m[1].shared() && m[1].slave());
        assert_eq!(m[1].super_options, ["rw", "size=1024k", "mode=1777"]);
        assert!(m[2].readonly() && !m[2].shared());
        // The topmost mount at a point wins.
        assert_eq!(
            mount_at(&m, "/mnt/p").map(|x| x.fstype.as_str()),
            Some("proc")
        );
        assert!(mount_at(&m, "/nope").is_none());
    }
}
