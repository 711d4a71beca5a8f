//! `berth update`: runc's flags, and the pure merge of those flags (or of a
//! `-r` resources JSON) into a container's current `linux.resources`.

use std::io::Read as _;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

/// Errors of `berth update`'s arguments.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// A size flag (`--memory 512m`) that does not parse.
    #[error("invalid value {value:?} for --{flag}: {reason}")]
    Size {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// The `-r` file could not be read.
    #[error("reading resources from {path}: {source}")]
    Read {
        /// The file (`-` for stdin).
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The `-r` JSON is not a runtime-spec `LinuxResources`.
    #[error("decoding resources from {path}: {source}")]
    Decode {
        /// The file (`-` for stdin).
        path: String,
        /// The error.
        source: serde_json::Error,
    },
    /// A flag berth does not implement.
    #[error("--{0} is not implemented by berth (Intel RDT is not supported)")]
    NotImplemented(&'static str),
}

/// `berth update`'s command line, as runc's.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct Args {
    /// Path to a file with the resources to update (runtime-spec
    /// `LinuxResources` JSON), or `-` for stdin. The other flags are then ignored.
    #[arg(short = 'r', long = "resources", value_name = "FILE")]
    pub resources: Option<String>,
    /// Block I/O weight, 10 to 1000.
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds per period.
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS burst in microseconds.
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds.
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use (`0-3`, `0,1`).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use (`0-3`, `0,1`).
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (`512m`, `1g`, or `-1` for unlimited).
    #[arg(long = "memory", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (`-1` for unlimited swap).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of processes (`-1` for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Kernel memory limit: accepted and ignored, as runc does (obsolete since Linux 5.4).
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Kernel TCP buffer memory limit (cgroup v1).
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Intel RDT L3 cache schema (not supported by berth).
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported by berth).
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    /// The container.
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
}

/// Parses a memory size as runc does (docker's `RAMInBytes`): a number with
/// an optional binary unit `b`, `k`, `m`, `g`, `t`, `p`, optionally followed
/// by `b` or `ib`, any case (`512m`, `1.5GiB`, `1024`); `-1` means unlimited.
pub fn parse_size(flag: &'static str, value: &str) -> Result<i64, UpdateError> {
    let bad = |reason: &str| UpdateError::Size {
        flag,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let v = value.trim();
    if v == "-1" {
        return Ok(-1);
    }
    let num_end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(bad("not a size"));
    }
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(bad("unknown unit")),
    };
    let n: f64 = num.parse().map_err(|_| bad("not a number"))?;
    let bytes = n * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(bad("too large"));
    }
    Ok(bytes as i64)
}

/// The `-r` input (file or stdin), read.
pub fn read_resources_input(path: &str) -> Result<String, UpdateError> {
    let err = |source| UpdateError::Read {
        path: path.to_string(),
        source,
    };
    if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(err)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(err)
    }
}

/// The container's new resources: `current` with the flags (or the `-r` JSON)
/// laid over it. Reads the `-r` input, then calls [`merge`].
pub fn resources(args: &Args, current: &LinuxResources) -> Result<LinuxResources, UpdateError> {
    let input = match &args.resources {
        Some(p) => Some(read_resources_input(p)?),
        None => None,
    };
    merge(args, input.as_deref(), current)
}

/// Pure part of [`resources`]: `resources_json` is the text of the `-r` input
/// when one was given. A field the patch leaves out (or sets to 0, as runc
/// reads it) keeps its current value.
pub fn merge(
    args: &Args,
    resources_json: Option<&str>,
    current: &LinuxResources,
) -> Result<LinuxResources, UpdateError> {
    if args.l3_cache_schema.is_some() {
        return Err(UpdateError::NotImplemented("l3-cache-schema"));
    }
    if args.mem_bw_schema.is_some() {
        return Err(UpdateError::NotImplemented("mem-bw-schema"));
    }
    let patch = match resources_json {
        Some(text) => {
            serde_json::from_str::<LinuxResources>(text).map_err(|source| UpdateError::Decode {
                path: args.resources.clone().unwrap_or_else(|| "-".into()),
                source,
            })?
        }
        None => from_flags(args)?,
    };
    Ok(overlay(current, &patch))
}

fn size(flag: &'static str, v: &Option<String>) -> Result<Option<i64>, UpdateError> {
    v.as_deref().map(|s| parse_size(flag, s)).transpose()
}

fn from_flags(a: &Args) -> Result<LinuxResources, UpdateError> {
    let mut r = LinuxResources::default();
    let mut mem = LinuxMemory::default();
    mem.set_limit(size("memory", &a.memory)?);
    mem.set_reservation(size("memory-reservation", &a.memory_reservation)?);
    mem.set_swap(size("memory-swap", &a.memory_swap)?);
    // --kernel-memory is checked, then ignored as runc does.
    size("kernel-memory", &a.kernel_memory)?;
    mem.set_kernel_tcp(size("kernel-memory-tcp", &a.kernel_memory_tcp)?);
    r.set_memory(Some(mem));
    let mut cpu = LinuxCpu::default();
    cpu.set_shares(a.cpu_share)
        .set_quota(a.cpu_quota)
        .set_period(a.cpu_period)
        .set_burst(a.cpu_burst)
        .set_realtime_period(a.cpu_rt_period)
        .set_realtime_runtime(a.cpu_rt_runtime)
        .set_cpus(a.cpuset_cpus.clone())
        .set_mems(a.cpuset_mems.clone());
    r.set_cpu(Some(cpu));
    let mut bio = LinuxBlockIo::default();
    bio.set_weight(a.blkio_weight);
    r.set_block_io(Some(bio));
    if let Some(l) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(l);
        r.set_pids(Some(p));
    }
    Ok(r)
}

/// `patch` over `cur`, field by field; `None` and runc's "0 means unchanged"
/// keep the current value.
fn overlay(cur: &LinuxResources, patch: &LinuxResources) -> LinuxResources {
    fn pick<T: Copy + PartialEq + Default>(cur: Option<T>, new: Option<T>) -> Option<T> {
        match new {
            Some(v) if v != T::default() => Some(v),
            _ => cur,
        }
    }
    fn pick_s(cur: &Option<String>, new: &Option<String>) -> Option<String> {
        match new {
            Some(v) if !v.is_empty() => Some(v.clone()),
            _ => cur.clone(),
        }
    }
    let mut out = cur.clone();
    if let Some(pm) = patch.memory() {
        let c = cur.memory().unwrap_or_default();
        let mut m = c;
        m.set_limit(pick(c.limit(), pm.limit()))
            .set_reservation(pick(c.reservation(), pm.reservation()))
            .set_swap(pick(c.swap(), pm.swap()))
            .set_kernel_tcp(pick(c.kernel_tcp(), pm.kernel_tcp()))
            .set_swappiness(pm.swappiness().or(c.swappiness()))
            .set_disable_oom_killer(pm.disable_oom_killer().or(c.disable_oom_killer()));
        if m != LinuxMemory::default() {
            out.set_memory(Some(m));
        }
    }
    if let Some(pc) = patch.cpu() {
        let c = cur.cpu().clone().unwrap_or_default();
        let mut n = c.clone();
        n.set_shares(pick(c.shares(), pc.shares()))
            .set_quota(pick(c.quota(), pc.quota()))
            .set_period(pick(c.period(), pc.period()))
            .set_burst(pc.burst().or(c.burst()))
            .set_realtime_period(pick(c.realtime_period(), pc.realtime_period()))
            .set_realtime_runtime(pick(c.realtime_runtime(), pc.realtime_runtime()))
            .set_cpus(pick_s(c.cpus(), pc.cpus()))
            .set_mems(pick_s(c.mems(), pc.mems()))
            .set_idle(pc.idle().or(c.idle()));
        if n != LinuxCpu::default() {
            out.set_cpu(Some(n));
        }
    }
    if let Some(pb) = patch.block_io() {
        let c = cur.block_io().clone().unwrap_or_default();
        let mut n = c.clone();
        n.set_weight(pick(c.weight(), pb.weight()))
            .set_leaf_weight(pick(c.leaf_weight(), pb.leaf_weight()));
        if pb.weight_device().is_some() {
            n.set_weight_device(pb.weight_device().clone());
        }
        if pb.throttle_read_bps_device().is_some() {
            n.set_throttle_read_bps_device(pb.throttle_read_bps_device().clone());
        }
        if pb.throttle_write_bps_device().is_some() {
            n.set_throttle_write_bps_device(pb.throttle_write_bps_device().clone());
        }
        if pb.throttle_read_iops_device().is_some() {
            n.set_throttle_read_iops_device(pb.throttle_read_iops_device().clone());
        }
        if pb.throttle_write_iops_device().is_some() {
            n.set_throttle_write_iops_device(pb.throttle_write_iops_device().clone());
        }
        if n != LinuxBlockIo::default() {
            out.set_block_io(Some(n));
        }
    }
    if let Some(pp) = patch.pids()
        && pp.limit() != 0
    {
        out.set_pids(Some(*pp));
    }
    if patch.hugepage_limits().is_some() {
        out.set_hugepage_limits(patch.hugepage_limits().clone());
    }
    if patch.network().is_some() {
        out.set_network(patch.network().clone());
    }
    if let Some(u) = patch.unified() {
        let mut m = cur.unified().clone().unwrap_or_default();
        m.extend(u.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.set_unified(Some(m));
    }
    // runc's update does not touch device rules.
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Args {
        let mut v = vec!["update"];
        v.extend_from_slice(argv);
        Cli::try_parse_from(v).expect("flags parse").args
    }

    fn current() -> LinuxResources {
        serde_json::from_str(
            r#"{"memory": {"limit": 1073741824, "swappiness": 5},
                "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1"},
                "pids": {"limit": 100},
                "devices": [{"allow": false, "access": "rwm"}]}"#,
        )
        .expect("current")
    }

    #[test]
    fn sizes() {
        let cases = [
            ("512m", 512 << 20),
            ("1g", 1 << 30),
            ("1G", 1 << 30),
            ("1GiB", 1 << 30),
            ("64kb", 64 << 10),
            ("1024", 1024),
            ("100b", 100),
            ("1.5g", 3 << 29),
            ("-1", -1),
            ("2 MB", 2 << 20),
        ];
        for (s, want) in cases {
            assert_eq!(parse_size("memory", s).expect(s), want, "{s}");
        }
        for s in ["", "m", "12x", "-2", "1..5m", ".5g", "1e3", "99999999p"] {
            assert!(parse_size("memory", s).is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn flags_overlay_current() {
        let a = parse(&[
            "--memory",
            "512m",
            "--memory-swap",
            "-1",
            "--cpu-quota",
            "-1",
            "--pids-limit",
            "20",
            "--cpuset-mems",
            "0",
            "c1",
        ]);
        assert_eq!(a.id, "c1");
        let r = merge(&a, None, &current()).expect("merge");
        let m = r.memory().as_ref().expect("memory");
        assert_eq!(m.limit(), Some(512 << 20));
        assert_eq!(m.swap(), Some(-1));
        assert_eq!(m.swappiness(), Some(5), "untouched fields stay");
        let c = r.cpu().as_ref().expect("cpu");
        assert_eq!(
            (c.shares(), c.quota(), c.period()),
            (Some(1024), Some(-1), Some(100000))
        );
        assert_eq!(
            (c.cpus().as_deref(), c.mems().as_deref()),
            (Some("0-1"), Some("0"))
        );
        assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(20));
        assert_eq!(r.devices(), current().devices());
    }

    #[test]
    fn no_flags_change_nothing() {
        let a = parse(&["c1"]);
        assert_eq!(merge(&a, None, &current()).expect("merge"), current());
    }

    #[test]
    fn resources_json_overlays() {
        let a = parse(&["-r", "-", "--memory", "1g", "c1"]);
        let json = r#"{"cpu": {"shares": 2048, "quota": 0}, "blockIO": {"weight": 300},
                       "unified": {"memory.high": "100000"}}"#;
        let r = merge(&a, Some(json), &current()).expect("merge");
        let c = r.cpu().as_ref().expect("cpu");
        assert_eq!((c.shares(), c.quota()), (Some(2048), Some(50000)));
        assert_eq!(
            r.memory().as_ref().and_then(|m| m.limit()),
            Some(1073741824),
            "flags ignored with -r"
        );
        assert_eq!(r.block_io().as_ref().and_then(|b| b.weight()), Some(300));
        assert_eq!(
            r.unified()
                .as_ref()
                .and_then(|u| u.get("memory.high"))
                .map(String::as_str),
            Some("100000")
        );
        assert!(merge(&a, Some("{not json"), &current()).is_err());
        assert!(merge(&a, Some(r#"{"memory": {"limit": "x"}}"#), &current()).is_err());
    }

    #[test]
    fn rejected_flags() {
        for argv in [
            &["--l3-cache-schema", "L3:0=f", "c1"][..],
            &["--mem-bw-schema", "MB:0=50", "c1"][..],
            &["--memory", "lots", "c1"][..],
        ] {
            assert!(merge(&parse(argv), None, &current()).is_err(), "{argv:?}");
        }
        assert!(merge(&parse(&["--kernel-memory", "1g", "c1"]), None, &current()).is_ok());
    }
}
