//! `process.rlimits` and `process.oomScoreAdj` (runtime-spec `config.md#posix-process`).
//!
//! A kernel refusal (raising a hard limit, or lowering `oom_score_adj`, without
//! `CAP_SYS_RESOURCE`) is an error naming the setting and the values, as runc reports it.

use std::io::Write;

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

/// Errors of the rlimits module.
#[derive(Debug, thiserror::Error)]
pub enum RlimitsError {
    /// A name that is not an `RLIMIT_*` resource.
    #[error("unknown rlimit type {0:?}")]
    UnknownName(String),
    /// The same resource listed twice.
    #[error("rlimit {0} is listed more than once")]
    Duplicate(String),
    /// soft above hard.
    #[error("rlimit {name}: soft limit {soft} is above the hard limit {hard}")]
    SoftAboveHard {
        /// `RLIMIT_...`
        name: String,
        /// Requested soft limit.
        soft: u64,
        /// Requested hard limit.
        hard: u64,
    },
    /// The kernel refused the limit.
    #[error(
        "rlimit {name}: setting soft={soft} hard={hard} (current soft={cur_soft} hard={cur_hard}): {source}{hint}"
    )]
    Set {
        /// `RLIMIT_...`
        name: String,
        /// Requested soft limit.
        soft: u64,
        /// Requested hard limit.
        hard: u64,
        /// Soft limit before.
        cur_soft: u64,
        /// Hard limit before.
        cur_hard: u64,
        /// The errno.
        #[source]
        source: nix::errno::Errno,
        /// Why, when it is the usual reason.
        hint: &'static str,
    },
    /// `oomScoreAdj` outside -1000..=1000.
    #[error("oomScoreAdj {0} is out of range (-1000 to 1000)")]
    OomRange(i32),
    /// Writing `/proc/PID/oom_score_adj` failed.
    #[error("oomScoreAdj {value}: writing {path}: {source}{hint}")]
    Oom {
        /// Requested value.
        value: i32,
        /// The proc file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
        /// Why, when it is the usual reason.
        hint: &'static str,
    },
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, RlimitsError>;

const NEEDS_SYS_RESOURCE: &str =
    " (raising a hard limit needs CAP_SYS_RESOURCE, which this process lacks)";

/// Every rlimit type: its spec name and the kernel resource number.
pub const RLIMITS: &[(PosixRlimitType, &str, u32)] = &[
    (PosixRlimitType::RlimitCpu, "RLIMIT_CPU", libc::RLIMIT_CPU),
    (
        PosixRlimitType::RlimitFsize,
        "RLIMIT_FSIZE",
        libc::RLIMIT_FSIZE,
    ),
    (
        PosixRlimitType::RlimitData,
        "RLIMIT_DATA",
        libc::RLIMIT_DATA,
    ),
    (
        PosixRlimitType::RlimitStack,
        "RLIMIT_STACK",
        libc::RLIMIT_STACK,
    ),
    (
        PosixRlimitType::RlimitCore,
        "RLIMIT_CORE",
        libc::RLIMIT_CORE,
    ),
    (PosixRlimitType::RlimitRss, "RLIMIT_RSS", libc::RLIMIT_RSS),
    (
        PosixRlimitType::RlimitNproc,
        "RLIMIT_NPROC",
        libc::RLIMIT_NPROC,
    ),
    (
        PosixRlimitType::RlimitNofile,
        "RLIMIT_NOFILE",
        libc::RLIMIT_NOFILE,
    ),
    (
        PosixRlimitType::RlimitMemlock,
        "RLIMIT_MEMLOCK",
        libc::RLIMIT_MEMLOCK,
    ),
    (PosixRlimitType::RlimitAs, "RLIMIT_AS", libc::RLIMIT_AS),
    (
        PosixRlimitType::RlimitLocks,
        "RLIMIT_LOCKS",
        libc::RLIMIT_LOCKS,
    ),
    (
        PosixRlimitType::RlimitSigpending,
        "RLIMIT_SIGPENDING",
        libc::RLIMIT_SIGPENDING,
    ),
    (
        PosixRlimitType::RlimitMsgqueue,
        "RLIMIT_MSGQUEUE",
        libc::RLIMIT_MSGQUEUE,
    ),
    (
        PosixRlimitType::RlimitNice,
        "RLIMIT_NICE",
        libc::RLIMIT_NICE,
    ),
    (
        PosixRlimitType::RlimitRtprio,
        "RLIMIT_RTPRIO",
        libc::RLIMIT_RTPRIO,
    ),
    (
        PosixRlimitType::RlimitRttime,
        "RLIMIT_RTTIME",
        libc::RLIMIT_RTTIME,
    ),
];

/// The spec name and kernel resource of an rlimit type.
pub fn resource(typ: PosixRlimitType) -> (&'static str, u32) {
    RLIMITS
        .iter()
        .find(|(t, _, _)| *t == typ)
        .map(|(_, n, r)| (*n, *r))
        .expect("RLIMITS lists every PosixRlimitType")
}

/// Parses an `RLIMIT_*` name; unknown names are an error naming them.
pub fn parse_name(name: &str) -> Result<PosixRlimitType> {
    RLIMITS
        .iter()
        .find(|(_, n, _)| *n == name)
        .map(|(t, _, _)| *t)
        .ok_or_else(|| RlimitsError::UnknownName(name.to_string()))
}

/// One planned `setrlimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RlimitOp {
    /// `RLIMIT_...`
    pub name: &'static str,
    /// Kernel resource number.
    pub resource: u32,
    /// Soft limit (`u64::MAX` is RLIM_INFINITY).
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Validates the spec's rlimits (no duplicates, soft ≤ hard) into `setrlimit` calls.
pub fn plan(rlimits: &[PosixRlimit]) -> Result<Vec<RlimitOp>> {
    let mut ops: Vec<RlimitOp> = Vec::new();
    for rl in rlimits {
        let (name, resource) = resource(rl.typ());
        if ops.iter().any(|o| o.resource == resource) {
            return Err(RlimitsError::Duplicate(name.to_string()));
        }
        if rl.soft() > rl.hard() {
            return Err(RlimitsError::SoftAboveHard {
                name: name.to_string(),
                soft: rl.soft(),
                hard: rl.hard(),
            });
        }
        ops.push(RlimitOp {
            name,
            resource,
            soft: rl.soft(),
            hard: rl.hard(),
        });
    }
    Ok(ops)
}

/// The current (soft, hard) limits of a resource of the calling process.
pub fn current(resource: u32) -> std::result::Result<(u64, u64), nix::errno::Errno> {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: cur is a valid rlimit out-parameter.
    let rc = unsafe { libc::getrlimit(resource as _, &mut cur) };
    if rc != 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok((cur.rlim_cur, cur.rlim_max))
}

/// Applies the spec's rlimits to the calling process.
pub fn apply(rlimits: &[PosixRlimit]) -> Result<()> {
    for op in plan(rlimits)? {
        let (cur_soft, cur_hard) = current(op.resource).unwrap_or((0, 0));
        let new = libc::rlimit {
            rlim_cur: op.soft,
            rlim_max: op.hard,
        };
        // SAFETY: new is a valid rlimit for a known resource.
        let rc = unsafe { libc::setrlimit(op.resource as _, &new) };
        if rc != 0 {
            let source = nix::errno::Errno::last();
            let hint = if source == nix::errno::Errno::EPERM && op.hard > cur_hard {
                NEEDS_SYS_RESOURCE
            } else {
                ""
            };
            return Err(RlimitsError::Set {
                name: op.name.to_string(),
                soft: op.soft,
                hard: op.hard,
                cur_soft,
                cur_hard,
                source,
                hint,
            });
        }
    }
    Ok(())
}

/// Checks an `oomScoreAdj` value against the kernel's range.
pub fn validate_oom_score_adj(value: i32) -> Result<()> {
    if (-1000..=1000).contains(&value) {
        Ok(())
    } else {
        Err(RlimitsError::OomRange(value))
    }
}

/// Writes `oomScoreAdj` for `pid` (`None`: the calling process). Lowering the value below
/// the current one needs `CAP_SYS_RESOURCE`; without it the error says so.
pub fn set_oom_score_adj(pid: Option<i32>, value: i32) -> Result<()> {
    validate_oom_score_adj(value)?;
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/oom_score_adj"),
        None => "/proc/self/oom_score_adj".to_string(),
    };
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).open(&path)?;
        f.write_all(value.to_string().as_bytes())
    };
    write().map_err(|source| {
        let hint = match source.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => {
                " (lowering oom_score_adj needs CAP_SYS_RESOURCE, which this process lacks)"
            }
            _ => "",
        };
        RlimitsError::Oom {
            value,
            path,
            source,
            hint,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rl(typ: &str, soft: u64, hard: u64) -> PosixRlimit {
        serde_json::from_value(serde_json::json!({"type": typ, "soft": soft, "hard": hard}))
            .expect("valid rlimit")
    }

    #[test]
    fn every_name_round_trips() {
        for (typ, name, res) in RLIMITS {
            assert_eq!(parse_name(name).expect(name), *typ);
            assert_eq!(resource(*typ), (*name, *res));
            // the spec's serde names agree with ours
            let json = serde_json::to_value(typ).expect("serialises");
            assert_eq!(json, *name);
        }
        assert_eq!(RLIMITS.len(), 16);
        let err = parse_name("RLIMIT_FLY").expect_err("unknown");
        assert!(err.to_string().contains("RLIMIT_FLY"), "{err}");
        assert!(
            serde_json::from_value::<PosixRlimit>(
                serde_json::json!({"type": "RLIMIT_FLY", "soft": 1, "hard": 1})
            )
            .is_err()
        );
    }

    #[test]
    fn plan_cases() {
        let ok =
            plan(&[rl("RLIMIT_NOFILE", 10, 20), rl("RLIMIT_CORE", 0, u64::MAX)]).expect("valid");
        assert_eq!(
            ok,
            vec![
                RlimitOp {
                    name: "RLIMIT_NOFILE",
                    resource: libc::RLIMIT_NOFILE,
                    soft: 10,
                    hard: 20
                },
                RlimitOp {
                    name: "RLIMIT_CORE",
                    resource: libc::RLIMIT_CORE,
                    soft: 0,
                    hard: u64::MAX
                },
            ]
        );
        let cases: &[(&[PosixRlimit], &str)] = &[
            (
                &[rl("RLIMIT_NOFILE", 30, 20)],
                "soft limit 30 is above the hard limit 20",
            ),
            (
                &[rl("RLIMIT_AS", 1, 2), rl("RLIMIT_AS", 1, 2)],
                "RLIMIT_AS is listed more than once",
            ),
        ];
        for (input, want) in cases {
            let err = plan(input).expect_err(want);
            assert!(err.to_string().contains(want), "{err}");
        }
    }

    #[test]
    fn oom_range() {
        for ok in [-1000, -1, 0, 500, 1000] {
            validate_oom_score_adj(ok).expect("in range");
        }
        for bad in [-1001, 1001, i32::MIN] {
            let err = validate_oom_score_adj(bad).expect_err("out of range");
            assert!(err.to_string().contains(&bad.to_string()), "{err}");
        }
    }
}
