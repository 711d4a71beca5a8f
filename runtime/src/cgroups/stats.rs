//! Resource usage statistics in the JSON shape of runc's `events --stats`
//! (runc `types/events.go`), read from v1 or v2 cgroup files.
//!
//! The readers take a closure returning a file's text, so the parsing is
//! unit-tested with sample texts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The event runc prints for `events --stats`: `{"type":"stats","id":…,"data":…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `"stats"`, `"oom"`, …
    #[serde(rename = "type")]
    pub typ: String,
    /// The container id.
    pub id: String,
    /// The statistics, for a stats event.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data: Option<Stats>,
}

/// Every statistic of one container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// CPU time and throttling.
    pub cpu: Cpu,
    /// cpuset (runc fills it on v1 only; berth leaves it empty).
    pub cpuset: CpuSet,
    /// Memory usage and limits.
    pub memory: Memory,
    /// Process counts.
    pub pids: Pids,
    /// Block I/O.
    pub blkio: Blkio,
    /// Per page size (`2MB`, …).
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Intel RDT (not supported by berth: always empty).
    pub intel_rdt: IntelRdt,
    /// Network interfaces (runc leaves this null for cgroup stats).
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

/// CPU usage (nanoseconds) and throttling.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    /// Time used.
    pub usage: CpuUsage,
    /// CFS throttling.
    pub throttling: Throttling,
}

/// CPU time in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuUsage {
    /// Total time.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    /// Per CPU.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Per CPU in kernel mode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// Per CPU in user mode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    /// Kernel mode time.
    pub kernel: u64,
    /// User mode time.
    pub user: u64,
}

/// CFS bandwidth throttling.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Throttling {
    /// Enforcement periods elapsed.
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    /// Periods in which the group was throttled.
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Total throttled time, nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// cpuset statistics (kept for the JSON shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuSet {
    /// CPUs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    /// Memory nodes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
}

/// One memory counter family.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryEntry {
    /// The limit (u64::MAX-ish when unlimited).
    pub limit: u64,
    /// Current usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Memory statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// Page cache.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Memory + swap (v1) or swap (v2, runc adds memory usage to it).
    pub swap: MemoryEntry,
    /// Kernel memory (v1).
    pub kernel: MemoryEntry,
    /// Kernel TCP memory (v1).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// Process counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pids {
    /// Processes now.
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// The limit (0 when unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// One block I/O counter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioEntry {
    /// Device major.
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    /// Device minor.
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// `Read`, `Write`, `Sync`, `Async`, `Discard`, `Total`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// The count.
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// Block I/O statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Blkio {
    /// Bytes transferred.
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// Requests.
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// Queued requests.
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    /// Service time.
    #[serde(
        rename = "ioServiceTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    /// Wait time.
    #[serde(rename = "ioWaitTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    /// Merged requests.
    #[serde(rename = "ioMergedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    /// Time.
    #[serde(rename = "ioTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    /// Sectors.
    #[serde(rename = "sectorsRecursive", skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

/// Hugetlb usage of one page size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hugetlb {
    /// Bytes in use.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak bytes (v1).
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Allocations that failed on the limit.
    pub failcnt: u64,
}

/// Intel RDT statistics (kept for the JSON shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntelRdt {}

/// A file reader relative to one controller's cgroup directory.
pub type Read<'a> = &'a dyn Fn(&str) -> Option<String>;

fn num(read: Read, file: &str) -> u64 {
    read(file).and_then(|s| parse_u64(s.trim())).unwrap_or(0)
}

/// Parses a counter; `max` (v2 unlimited) is `u64::MAX`.
fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// Parses `key value` lines (cpu.stat, memory.stat, memory.events, …).
pub fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), parse_u64(v.trim())?))
        })
        .collect()
}

const USER_HZ: u64 = 100;
const NS_PER_S: u64 = 1_000_000_000;

/// v1 cpu (`cpu` dir for throttling) and cpuacct (`cpuacct` dir for usage).
pub fn v1_cpu(cpu: Option<Read>, cpuacct: Option<Read>) -> Cpu {
    let mut out = Cpu::default();
    if let Some(read) = cpuacct {
        out.usage.total = num(read, "cpuacct.usage");
        let per = |f: &str| -> Vec<u64> {
            read(f)
                .map(|s| {
                    s.split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        out.usage.percpu = per("cpuacct.usage_percpu");
        out.usage.percpu_user = per("cpuacct.usage_percpu_user");
        out.usage.percpu_kernel = per("cpuacct.usage_percpu_sys");
        let st = flat_keyed(&read("cpuacct.stat").unwrap_or_default());
        out.usage.user = st
            .get("user")
            .copied()
            .unwrap_or(0)
            .saturating_mul(NS_PER_S / USER_HZ);
        out.usage.kernel = st
            .get("system")
            .copied()
            .unwrap_or(0)
            .saturating_mul(NS_PER_S / USER_HZ);
    }
    if let Some(read) = cpu {
        let st = flat_keyed(&read("cpu.stat").unwrap_or_default());
        out.throttling.periods = st.get("nr_periods").copied().unwrap_or(0);
        out.throttling.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
        out.throttling.throttled_time = st.get("throttled_time").copied().unwrap_or(0);
    }
    out
}

/// v2 cpu.stat (microseconds → nanoseconds).
pub fn v2_cpu(read: Read) -> Cpu {
    let st = flat_keyed(&read("cpu.stat").unwrap_or_default());
    let g = |k: &str| st.get(k).copied().unwrap_or(0);
    Cpu {
        usage: CpuUsage {
            total: g("usage_usec").saturating_mul(1000),
            user: g("user_usec").saturating_mul(1000),
            kernel: g("system_usec").saturating_mul(1000),
            ..Default::default()
        },
        throttling: Throttling {
            periods: g("nr_periods"),
            throttled_periods: g("nr_throttled"),
            throttled_time: g("throttled_usec").saturating_mul(1000),
        },
    }
}

/// v1 memory controller files.
pub fn v1_memory(read: Read) -> Memory {
    let entry = |prefix: &str| MemoryEntry {
        limit: num(read, &format!("{prefix}limit_in_bytes")),
        usage: num(read, &format!("{prefix}usage_in_bytes")),
        max: num(read, &format!("{prefix}max_usage_in_bytes")),
        failcnt: num(read, &format!("{prefix}failcnt")),
    };
    let raw = flat_keyed(&read("memory.stat").unwrap_or_default());
    Memory {
        cache: raw
            .get("total_cache")
            .or(raw.get("cache"))
            .copied()
            .unwrap_or(0),
        usage: entry("memory."),
        swap: entry("memory.memsw."),
        kernel: entry("memory.kmem."),
        kernel_tcp: entry("memory.kmem.tcp."),
        raw,
    }
}

/// v2 memory controller files.
pub fn v2_memory(read: Read) -> Memory {
    let raw = flat_keyed(&read("memory.stat").unwrap_or_default());
    let events = flat_keyed(&read("memory.events").unwrap_or_default());
    let usage = num(read, "memory.current");
    let swap_usage = num(read, "memory.swap.current");
    let swap_limit = num(read, "memory.swap.max");
    let limit = num(read, "memory.max");
    Memory {
        cache: raw.get("file").copied().unwrap_or(0),
        usage: MemoryEntry {
            limit,
            usage,
            max: num(read, "memory.peak"),
            failcnt: events.get("max").copied().unwrap_or(0),
        },
        // As runc: v1's memsw means memory + swap.
        swap: MemoryEntry {
            limit: if limit == u64::MAX || swap_limit == u64::MAX {
                u64::MAX
            } else {
                limit.saturating_add(swap_limit)
            },
            usage: usage.saturating_add(swap_usage),
            max: 0,
            failcnt: 0,
        },
        kernel: MemoryEntry::default(),
        kernel_tcp: MemoryEntry::default(),
        raw,
    }
}

/// pids.current and pids.max (`max` → 0 as runc reports it).
pub fn pids(read: Read) -> Pids {
    let limit = num(read, "pids.max");
    Pids {
        current: num(read, "pids.current"),
        limit: if limit == u64::MAX { 0 } else { limit },
    }
}

/// Parses v1 blkio lines `8:0 Read 4096` (a `Total` line has no device).
pub fn v1_blkio_entries(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f.as_slice() else {
                return None;
            };
            let (maj, min) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// v1 blkio files (the throttle counters, which every kernel has; CFQ/BFQ
/// counters when present, as runc prefers them).
pub fn v1_blkio(read: Read) -> Blkio {
    let pick = |names: &[&str]| -> Vec<BlkioEntry> {
        names
            .iter()
            .filter_map(|n| read(n))
            .map(|t| v1_blkio_entries(&t))
            .find(|v| !v.is_empty())
            .unwrap_or_default()
    };
    Blkio {
        io_service_bytes_recursive: pick(&[
            "blkio.io_service_bytes_recursive",
            "blkio.bfq.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes_recursive",
        ]),
        io_serviced_recursive: pick(&[
            "blkio.io_serviced_recursive",
            "blkio.bfq.io_serviced_recursive",
            "blkio.throttle.io_serviced_recursive",
        ]),
        io_queued_recursive: pick(&["blkio.io_queued_recursive"]),
        io_service_time_recursive: pick(&["blkio.io_service_time_recursive"]),
        io_wait_time_recursive: pick(&["blkio.io_wait_time_recursive"]),
        io_merged_recursive: pick(&["blkio.io_merged_recursive"]),
        io_time_recursive: pick(&["blkio.time_recursive"]),
        sectors_recursive: pick(&["blkio.sectors_recursive"]),
    }
}

/// v2 io.stat: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`.
pub fn v2_io(read: Read) -> Blkio {
    let mut out = Blkio::default();
    for l in read("io.stat").unwrap_or_default().lines() {
        let mut f = l.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse::<u64>() else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut out.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut out.io_service_bytes_recursive, "Write"),
                "rios" => (&mut out.io_serviced_recursive, "Read"),
                "wios" => (&mut out.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    out
}

/// Hugetlb per page size: v1 `hugetlb.<size>.usage_in_bytes`…, v2
/// `hugetlb.<size>.current` and `.events` (`max N` is the failure count).
pub fn hugetlb(read: Read, v2: bool, sizes: &[String]) -> BTreeMap<String, Hugetlb> {
    sizes
        .iter()
        .map(|s| {
            let h = if v2 {
                Hugetlb {
                    usage: num(read, &format!("hugetlb.{s}.current")),
                    max: 0,
                    failcnt: flat_keyed(&read(&format!("hugetlb.{s}.events")).unwrap_or_default())
                        .get("max")
                        .copied()
                        .unwrap_or(0),
                }
            } else {
                Hugetlb {
                    usage: num(read, &format!("hugetlb.{s}.usage_in_bytes")),
                    max: num(read, &format!("hugetlb.{s}.max_usage_in_bytes")),
                    failcnt: num(read, &format!("hugetlb.{s}.failcnt")),
                }
            };
            (s.clone(), h)
        })
        .collect()
}

/// The page sizes the kernel offers, in cgroup notation: `hugepages-2048kB` → `2MB`.
pub fn page_size_name(dir_name: &str) -> Option<String> {
    let kb: u64 = dir_name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    let (v, unit) = if kb >= 1 << 20 && kb.is_multiple_of(1 << 20) {
        (kb >> 20, "GB")
    } else if kb >= 1 << 10 && kb.is_multiple_of(1 << 10) {
        (kb >> 10, "MB")
    } else {
        (kb, "KB")
    };
    Some(format!("{v}{unit}"))
}

/// The `oom_kill` count from v1 memory.oom_control or v2 memory.events.
pub fn oom_kills(text: &str) -> u64 {
    flat_keyed(text).get("oom_kill").copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |f: &str| m.get(f).cloned()
    }

    #[test]
    fn v1_cpu_and_memory() {
        let acct = files(&[
            ("cpuacct.usage", "123456\n"),
            ("cpuacct.usage_percpu", "100 200 \n"),
            ("cpuacct.stat", "user 3\nsystem 4\n"),
        ]);
        let cpu = files(&[(
            "cpu.stat",
            "nr_periods 10\nnr_throttled 2\nthrottled_time 999\n",
        )]);
        let c = v1_cpu(Some(&cpu), Some(&acct));
        assert_eq!(c.usage.total, 123456);
        assert_eq!(c.usage.percpu, vec![100, 200]);
        assert_eq!((c.usage.user, c.usage.kernel), (30_000_000, 40_000_000));
        assert_eq!(c.throttling.throttled_time, 999);
        let mem = files(&[
            ("memory.limit_in_bytes", "1048576\n"),
            ("memory.usage_in_bytes", "4096\n"),
            ("memory.max_usage_in_bytes", "8192\n"),
            ("memory.failcnt", "3\n"),
            ("memory.stat", "cache 10\ntotal_cache 20\nrss 5\n"),
        ]);
        let m = v1_memory(&mem);
        assert_eq!(
            m.usage,
            MemoryEntry {
                limit: 1048576,
                usage: 4096,
                max: 8192,
                failcnt: 3
            }
        );
        assert_eq!(m.cache, 20);
        assert_eq!(m.raw.get("rss"), Some(&5));
    }

    #[test]
    fn v2_cpu_memory_pids_io() {
        let r = files(&[
            (
                "cpu.stat",
                "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 1\nnr_throttled 1\nthrottled_usec 7\n",
            ),
            ("memory.current", "100\n"),
            ("memory.max", "max\n"),
            ("memory.swap.current", "1\n"),
            ("memory.swap.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"),
            ("memory.stat", "anon 50\nfile 40\n"),
            ("pids.current", "3\n"),
            ("pids.max", "max\n"),
            (
                "io.stat",
                "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
            ),
        ]);
        let c = v2_cpu(&r);
        assert_eq!(
            (c.usage.total, c.usage.user, c.usage.kernel),
            (5000, 3000, 2000)
        );
        assert_eq!(c.throttling.throttled_time, 7000);
        let m = v2_memory(&r);
        assert_eq!(
            (m.usage.usage, m.usage.limit, m.usage.failcnt),
            (100, u64::MAX, 4)
        );
        assert_eq!((m.swap.usage, m.swap.limit), (101, u64::MAX));
        assert_eq!(m.cache, 40);
        assert_eq!(
            pids(&r),
            Pids {
                current: 3,
                limit: 0
            }
        );
        let io = v2_io(&r);
        assert_eq!(io.io_service_bytes_recursive.len(), 2);
        assert_eq!(io.io_serviced_recursive[1].op, "Write");
        assert_eq!(io.io_serviced_recursive[1].value, 2);
    }

    #[test]
    fn blkio_hugetlb_oom() {
        let e = v1_blkio_entries("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].major, e[0].minor, e[0].op.as_str(), e[0].value),
            (8, 0, "Read", 4096)
        );
        let r = files(&[
            ("hugetlb.2MB.current", "2097152\n"),
            ("hugetlb.2MB.events", "max 2\n"),
        ]);
        let h = hugetlb(&r, true, &["2MB".to_string()]);
        assert_eq!(
            h["2MB"],
            Hugetlb {
                usage: 2097152,
                max: 0,
                failcnt: 2
            }
        );
        assert_eq!(page_size_name("hugepages-2048kB").as_deref(), Some("2MB"));
        assert_eq!(
            page_size_name("hugepages-1048576kB").as_deref(),
            Some("1GB")
        );
        assert_eq!(page_size_name("hugepages-64kB").as_deref(), Some("64KB"));
        assert_eq!(page_size_name("bogus"), None);
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"),
            3
        );
        assert_eq!(oom_kills("low 0\noom 2\noom_kill 2\noom_group_kill 0\n"), 2);
        assert_eq!(oom_kills(""), 0);
    }

    #[test]
    fn json_shape_matches_runc() {
        let ev = Event {
            typ: "stats".into(),
            id: "c1".into(),
            data: Some(Stats {
                pids: Pids {
                    current: 2,
                    limit: 0,
                },
                ..Default::default()
            }),
        };
        let v: serde_json::Value = serde_json::to_value(&ev).expect("serialize");
        assert_eq!(v["type"], "stats");
        assert_eq!(v["id"], "c1");
        let d = &v["data"];
        for k in [
            "cpu",
            "cpuset",
            "memory",
            "pids",
            "blkio",
            "hugetlb",
            "intel_rdt",
            "network_interfaces",
        ] {
            assert!(d.get(k).is_some(), "missing {k}");
        }
        assert_eq!(d["pids"], serde_json::json!({"current": 2}));
        assert_eq!(
            d["cpu"]["usage"],
            serde_json::json!({"kernel": 0, "user": 0})
        );
        assert_eq!(
            d["memory"]["usage"],
            serde_json::json!({"limit": 0, "failcnt": 0})
        );
        assert!(d["memory"].get("kernelTCP").is_some());
        let back: Event = serde_json::from_value(v).expect("round trip");
        assert_eq!(back, ev);
    }
}
