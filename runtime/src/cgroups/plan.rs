//! Turning spec `linux.resources` into cgroup file writes: a pure plan that
//! [`super::Manager::apply`] carries out.
//!
//! Each controller goes to the hierarchy that holds it on this host (v1 if the
//! controller is mounted there, else v2), with runc's v1→v2 conversions.
//! Reference: runtime-spec `config-linux.md` "Control groups".

use std::collections::BTreeSet;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources, LinuxThrottleDevice};

use super::devices;

/// The hierarchy a write goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The v1 hierarchy of this controller.
    V1(&'static str),
    /// The v2 (unified) cgroup.
    V2,
}

/// One step of applying resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write `value` to `file` in the cgroup of `target`; `field` names the spec field.
    Write {
        /// Which hierarchy.
        target: Target,
        /// The file name inside the cgroup directory.
        file: String,
        /// What to write.
        value: String,
        /// The spec field this comes from, for error messages.
        field: &'static str,
    },
    /// As `Write`, skipped when the kernel has no such file.
    WriteIfPresent {
        /// Which hierarchy.
        target: Target,
        /// The file name inside the cgroup directory.
        file: String,
        /// What to write.
        value: String,
        /// The spec field this comes from, for error messages.
        field: &'static str,
    },
    /// Writes the first (file, value) whose file exists; none is an error.
    WriteFirstPresent {
        /// Which hierarchy.
        target: Target,
        /// Candidate files with their values, in order of preference.
        choices: Vec<(String, String)>,
        /// The spec field this comes from, for error messages.
        field: &'static str,
    },
    /// v1 memory limit and memory+swap limit: their order depends on the
    /// current values (the kernel refuses memsw below the memory limit).
    V1MemoryAndSwap {
        /// New memory.limit_in_bytes (`-1` for unlimited), if set.
        limit: Option<i64>,
        /// New memory.memsw.limit_in_bytes, if set.
        swap: Option<i64>,
    },
    /// Replace the v2 eBPF device filter with one built from these rules.
    V2DeviceFilter(Vec<LinuxDeviceCgroup>),
}

/// Errors planning the writes: a value the host cannot take, named by field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The controller the field needs is in no hierarchy of this host.
    #[error(
        "linux.resources.{field}: the {controller} cgroup controller is not available on this host"
    )]
    NoController {
        /// The spec field.
        field: &'static str,
        /// The missing controller.
        controller: &'static str,
    },
    /// The value is out of range or malformed.
    #[error("linux.resources.{field}: {reason}")]
    Invalid {
        /// The spec field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The field has no counterpart on the hierarchy that holds its controller.
    #[error("linux.resources.{field} is not supported on cgroup {version}")]
    Unsupported {
        /// The spec field.
        field: &'static str,
        /// "v1" or "v2".
        version: &'static str,
    },
}

/// Which controllers each hierarchy offers on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Available {
    /// v1 controllers that are mounted.
    pub v1: BTreeSet<String>,
    /// Controllers of the v2 hierarchy (its root `cgroup.controllers`), if mounted.
    pub v2: Option<BTreeSet<String>>,
}

impl Available {
    /// Where `controller` lives, preferring v1 (a controller is bound to one
    /// hierarchy at a time, so at most one has it).
    fn target(&self, controller: &'static str, field: &'static str) -> Result<Target, PlanError> {
        if self.v1.contains(controller) {
            Ok(Target::V1(controller))
        } else if self.v2.as_ref().is_some_and(|c| c.contains(controller)) {
            Ok(Target::V2)
        } else {
            Err(PlanError::NoController { field, controller })
        }
    }
}

struct Plan {
    ops: Vec<Op>,
}

impl Plan {
    fn w(
        &mut self,
        target: &Target,
        file: impl Into<String>,
        value: impl ToString,
        field: &'static str,
    ) {
        self.ops.push(Op::Write {
            target: target.clone(),
            file: file.into(),
            value: value.to_string(),
            field,
        });
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Notes about fields that are accepted but have no effect (runc ignores them too).
pub fn warnings(r: &LinuxResources) -> Vec<String> {
    let mut out = Vec::new();
    #[allow(deprecated)]
    if r.memory().as_ref().and_then(|m| m.kernel()).is_some() {
        out.push(
            "linux.resources.memory.kernel is ignored: kernel memory limits are obsolete since Linux 5.4"
                .to_string(),
        );
    }
    out
}

/// runc's `ConvertCPUSharesToCgroupV2Value`: cpu.shares [2, 262144] → cpu.weight [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262142
}

/// runc's `ConvertBlkIOToIOWeightValue`: blkio.weight [10, 1000] → io.weight [1, 10000].
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10) * 9999) / 990
}

/// runc's `ConvertMemorySwapToCgroupV2Value`: v1 memory+swap → v2 memory.swap.max
/// (`-1` for "max", `0` for unset).
pub fn swap_to_v2(swap: i64, memory: i64) -> Result<i64, PlanError> {
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        return Err(invalid("memory.swap", "a swap limit needs a memory limit"));
    }
    if memory < 0 {
        return Err(invalid("memory.limit", format!("invalid value {memory}")));
    }
    if swap < memory {
        return Err(invalid(
            "memory.swap",
            format!("memory+swap limit {swap} is below the memory limit {memory}"),
        ));
    }
    Ok(swap - memory)
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Checks a hugepage size like `2MB`, `1GB`, `64KB`.
fn valid_page_size(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty()
        && digits.len() <= 6
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
        && matches!(unit, "KB" | "MB" | "GB" | "TB")
}

/// Checks a cpuset list like `0-3,7`.
fn valid_cpuset(s: &str) -> bool {
    !s.is_empty()
        && s.split(',').all(|r| {
            let mut it = r.splitn(2, '-');
            let ok = |x: Option<&str>| {
                x.is_some_and(|x| {
                    !x.is_empty() && x.len() <= 6 && x.bytes().all(|b| b.is_ascii_digit())
                })
            };
            let a = it.next();
            match it.next() {
                None => ok(a),
                b => ok(a) && ok(b),
            }
        })
}

fn check_dev(field: &'static str, major: i64, minor: i64) -> Result<(), PlanError> {
    if !(0..=0xfff).contains(&major) || !(0..=0xfffff).contains(&minor) {
        return Err(invalid(
            field,
            format!("device {major}:{minor} out of range"),
        ));
    }
    Ok(())
}

fn throttle_lines(
    field: &'static str,
    devs: &Option<Vec<LinuxThrottleDevice>>,
) -> Result<Vec<(i64, i64, u64)>, PlanError> {
    let mut out = Vec::new();
    for d in devs.iter().flatten() {
        check_dev(field, d.major(), d.minor())?;
        out.push((d.major(), d.minor(), d.rate()));
    }
    Ok(out)
}

/// Checks a key of the v2 `unified` map: a plain file name `<controller>.<name>`.
pub fn valid_unified_key(key: &str) -> bool {
    let Some((ctrl, rest)) = key.split_once('.') else {
        return false;
    };
    !ctrl.is_empty()
        && !rest.is_empty()
        && key.len() <= 255
        && key.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
        && ctrl.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        && !key.contains("..")
        && !matches!(
            key,
            "cgroup.procs" | "cgroup.threads" | "cgroup.subtree_control"
        )
}

/// Plans the writes for `r` on a host offering `avail`.
pub fn plan(r: &LinuxResources, avail: &Available) -> Result<Vec<Op>, PlanError> {
    let mut p = Plan { ops: Vec::new() };
    memory(&mut p, r, avail)?;
    cpu(&mut p, r, avail)?;
    if let Some(pids) = r.pids() {
        let t = avail.target("pids", "pids.limit")?;
        match pids.limit() {
            0 => {}
            l => p.w(&t, "pids.max", max_or(l), "pids.limit"),
        }
    }
    blkio(&mut p, r, avail)?;
    for h in r.hugepage_limits().iter().flatten() {
        let field = "hugepageLimits";
        let t = avail.target("hugetlb", field)?;
        if !valid_page_size(h.page_size()) {
            return Err(invalid(
                field,
                format!("invalid page size {:?}", h.page_size()),
            ));
        }
        let (file, rsvd) = match t {
            Target::V1(_) => (
                format!("hugetlb.{}.limit_in_bytes", h.page_size()),
                format!("hugetlb.{}.rsvd.limit_in_bytes", h.page_size()),
            ),
            Target::V2 => (
                format!("hugetlb.{}.max", h.page_size()),
                format!("hugetlb.{}.rsvd.max", h.page_size()),
            ),
        };
        p.w(&t, file, max_or(h.limit()), field);
        // Reservations count against the limit too where the kernel has them (5.7+).
        p.ops.push(Op::WriteIfPresent {
            target: t.clone(),
            file: rsvd,
            value: max_or(h.limit()),
            field,
        });
    }
    if let Some(net) = r.network() {
        if let Some(class) = net.class_id() {
            let t = avail.target("net_cls", "network.classID")?;
            p.w(&t, "net_cls.classid", class, "network.classID");
        }
        for prio in net.priorities().iter().flatten() {
            let field = "network.priorities";
            let t = avail.target("net_prio", field)?;
            let name = prio.name();
            if name.is_empty()
                || name.len() > 15
                || name.contains(|c: char| c == '/' || c.is_whitespace() || c.is_control())
            {
                return Err(invalid(field, format!("invalid interface name {name:?}")));
            }
            p.w(
                &t,
                "net_prio.ifpriomap",
                format!("{name} {}", prio.priority()),
                field,
            );
        }
    }
    if let Some(rules) = r.devices() {
        if avail.v1.contains("devices") {
            for rule in rules {
                for (file, line) in devices::v1_lines(rule)? {
                    p.w(&Target::V1("devices"), file, line, "devices");
                }
            }
        } else if avail.v2.is_some() {
            for rule in rules {
                devices::check_rule(rule)?;
            }
            p.ops.push(Op::V2DeviceFilter(rules.clone()));
        } else {
            return Err(PlanError::NoController {
                field: "devices",
                controller: "devices",
            });
        }
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(invalid("rdma", "rdma limits are not implemented by berth"));
    }
    if let Some(unified) = r.unified() {
        let Some(v2) = &avail.v2 else {
            return Err(PlanError::Unsupported {
                field: "unified",
                version: "v1",
            });
        };
        let mut keys: Vec<&String> = unified.keys().collect();
        keys.sort();
        for k in keys {
            let v = &unified[k];
            if !valid_unified_key(k) {
                return Err(invalid("unified", format!("invalid key {k:?}")));
            }
            let ctrl = k.split('.').next().unwrap_or_default();
            if ctrl != "cgroup" && !v2.contains(ctrl) {
                return Err(invalid(
                    "unified",
                    format!(
                        "key {k:?}: controller {ctrl:?} is not on the v2 hierarchy of this host"
                    ),
                ));
            }
            if v.contains('\0') {
                return Err(invalid(
                    "unified",
                    format!("value of {k:?} contains a NUL byte"),
                ));
            }
            p.w(&Target::V2, k.clone(), v, "unified");
        }
    }
    Ok(p.ops)
}

fn memory(p: &mut Plan, r: &LinuxResources, avail: &Available) -> Result<(), PlanError> {
    let Some(m) = r.memory() else { return Ok(()) };
    let any = m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || m.kernel_tcp().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer().is_some()
        || m.use_hierarchy().is_some();
    if !any {
        return Ok(());
    }
    let t = avail.target("memory", "memory")?;
    for (field, v) in [
        ("memory.limit", m.limit()),
        ("memory.reservation", m.reservation()),
        ("memory.swap", m.swap()),
    ] {
        if let Some(v) = v
            && v < -1
        {
            return Err(invalid(field, format!("invalid value {v}")));
        }
    }
    if let Some(s) = m.swappiness()
        && s > 100
    {
        return Err(invalid(
            "memory.swappiness",
            format!("{s} is not in 0..=100"),
        ));
    }
    match t {
        Target::V1(_) => {
            let limit = m.limit().filter(|&v| v != 0);
            let mut swap = m.swap().filter(|&v| v != 0);
            // runc: an unlimited memory limit without an explicit swap limit
            // lifts the swap limit too.
            if limit == Some(-1) && swap.is_none() {
                swap = Some(-1);
            }
            if limit.is_some() || swap.is_some() {
                p.ops.push(Op::V1MemoryAndSwap { limit, swap });
            }
            if let Some(v) = m.reservation().filter(|&v| v != 0) {
                p.w(&t, "memory.soft_limit_in_bytes", v, "memory.reservation");
            }
            if let Some(v) = m.kernel_tcp().filter(|&v| v != 0) {
                p.w(&t, "memory.kmem.tcp.limit_in_bytes", v, "memory.kernelTCP");
            }
            if let Some(v) = m.swappiness() {
                p.w(&t, "memory.swappiness", v, "memory.swappiness");
            }
            if m.disable_oom_killer() == Some(true) {
                p.w(&t, "memory.oom_control", 1, "memory.disableOOMKiller");
            }
            if let Some(h) = m.use_hierarchy() {
                p.w(
                    &t,
                    "memory.use_hierarchy",
                    u8::from(h),
                    "memory.useHierarchy",
                );
            }
        }
        Target::V2 => {
            let limit = m.limit().unwrap_or(0);
            let swap = swap_to_v2(m.swap().unwrap_or(0), limit)?;
            // swap before limit is what runc does; both orders are accepted on v2.
            if swap != 0 {
                p.w(&t, "memory.swap.max", max_or(swap), "memory.swap");
            }
            if limit != 0 {
                p.w(&t, "memory.max", max_or(limit), "memory.limit");
            }
            if let Some(v) = m.reservation().filter(|&v| v != 0) {
                p.w(&t, "memory.low", max_or(v), "memory.reservation");
            }
            if m.swappiness().is_some() {
                return Err(PlanError::Unsupported {
                    field: "memory.swappiness",
                    version: "v2",
                });
            }
            if m.disable_oom_killer() == Some(true) {
                return Err(PlanError::Unsupported {
                    field: "memory.disableOOMKiller",
                    version: "v2",
                });
            }
            if m.kernel_tcp().is_some_and(|v| v != 0) {
                return Err(PlanError::Unsupported {
                    field: "memory.kernelTCP",
                    version: "v2",
                });
            }
        }
    }
    Ok(())
}

fn cpu(p: &mut Plan, r: &LinuxResources, avail: &Available) -> Result<(), PlanError> {
    let Some(c) = r.cpu() else { return Ok(()) };
    for (field, v) in [("cpu.cpus", c.cpus()), ("cpu.mems", c.mems())] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            if !valid_cpuset(v) {
                return Err(invalid(field, format!("invalid list {v:?}")));
            }
            let t = avail.target("cpuset", field)?;
            let file = if field == "cpu.cpus" {
                "cpuset.cpus"
            } else {
                "cpuset.mems"
            };
            p.w(&t, file, v, field);
        }
    }
    let any = c.shares().is_some_and(|v| v != 0)
        || c.quota().is_some_and(|v| v != 0)
        || c.period().is_some_and(|v| v != 0)
        || c.burst().is_some()
        || c.realtime_runtime().is_some_and(|v| v != 0)
        || c.realtime_period().is_some_and(|v| v != 0)
        || c.idle().is_some();
    if !any {
        return Ok(());
    }
    let t = avail.target("cpu", "cpu")?;
    if let Some(i) = c.idle()
        && !(0..=1).contains(&i)
    {
        return Err(invalid("cpu.idle", format!("{i} is not 0 or 1")));
    }
    match t {
        Target::V1(_) => {
            if let Some(v) = c.shares().filter(|&v| v != 0) {
                p.w(&t, "cpu.shares", v, "cpu.shares");
            }
            if let Some(v) = c.period().filter(|&v| v != 0) {
                p.w(&t, "cpu.cfs_period_us", v, "cpu.period");
            }
            if let Some(v) = c.quota().filter(|&v| v != 0) {
                p.w(&t, "cpu.cfs_quota_us", v, "cpu.quota");
            }
            if let Some(v) = c.burst() {
                p.w(&t, "cpu.cfs_burst_us", v, "cpu.burst");
            }
            if let Some(v) = c.realtime_period().filter(|&v| v != 0) {
                p.w(&t, "cpu.rt_period_us", v, "cpu.realtimePeriod");
            }
            if let Some(v) = c.realtime_runtime().filter(|&v| v != 0) {
                p.w(&t, "cpu.rt_runtime_us", v, "cpu.realtimeRuntime");
            }
            if let Some(v) = c.idle() {
                p.w(&t, "cpu.idle", v, "cpu.idle");
            }
        }
        Target::V2 => {
            if c.realtime_runtime().is_some_and(|v| v != 0)
                || c.realtime_period().is_some_and(|v| v != 0)
            {
                return Err(PlanError::Unsupported {
                    field: "cpu.realtimeRuntime",
                    version: "v2",
                });
            }
            if let Some(s) = c.shares().filter(|&v| v != 0) {
                p.w(&t, "cpu.weight", shares_to_weight(s), "cpu.shares");
            }
            let quota = c.quota().unwrap_or(0);
            let period = c.period().unwrap_or(0);
            if quota != 0 || period != 0 {
                let mut v = if quota > 0 {
                    quota.to_string()
                } else {
                    "max".to_string()
                };
                if period != 0 {
                    v.push_str(&format!(" {period}"));
                }
                p.w(&t, "cpu.max", v, "cpu.quota");
            }
            if let Some(b) = c.burst() {
                p.w(&t, "cpu.max.burst", b, "cpu.burst");
            }
            if let Some(i) = c.idle() {
                p.w(&t, "cpu.idle", i, "cpu.idle");
            }
        }
    }
    Ok(())
}

fn blkio(p: &mut Plan, r: &LinuxResources, avail: &Available) -> Result<(), PlanError> {
    let Some(b) = r.block_io() else { return Ok(()) };
    let throttles = [
        (
            "blockIO.throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            "blockIO.throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            "blockIO.throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            "blockIO.throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ];
    let any = b.weight().is_some_and(|w| w != 0)
        || b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|d| !d.is_empty())
        || throttles
            .iter()
            .any(|t| t.1.as_ref().is_some_and(|d| !d.is_empty()));
    if !any {
        return Ok(());
    }
    let t = if avail.v1.contains("blkio") {
        Target::V1("blkio")
    } else {
        avail.target("io", "blockIO")?
    };
    for w in [b.weight(), b.leaf_weight()].into_iter().flatten() {
        if w != 0 && !(10..=1000).contains(&w) {
            return Err(invalid(
                "blockIO.weight",
                format!("{w} is not in 10..=1000"),
            ));
        }
    }
    match t {
        Target::V1(_) => {
            if let Some(w) = b.weight().filter(|&w| w != 0) {
                // Kernels with BFQ instead of CFQ only have blkio.bfq.weight.
                p.ops.push(Op::WriteFirstPresent {
                    target: t.clone(),
                    choices: vec![
                        ("blkio.weight".into(), w.to_string()),
                        ("blkio.bfq.weight".into(), w.to_string()),
                    ],
                    field: "blockIO.weight",
                });
            }
            if let Some(w) = b.leaf_weight().filter(|&w| w != 0) {
                p.w(&t, "blkio.leaf_weight", w, "blockIO.leafWeight");
            }
            for d in b.weight_device().iter().flatten() {
                let field = "blockIO.weightDevice";
                check_dev(field, d.major(), d.minor())?;
                if let Some(w) = d.weight() {
                    p.w(
                        &t,
                        "blkio.weight_device",
                        format!("{}:{} {w}", d.major(), d.minor()),
                        field,
                    );
                }
                if let Some(w) = d.leaf_weight() {
                    p.w(
                        &t,
                        "blkio.leaf_weight_device",
                        format!("{}:{} {w}", d.major(), d.minor()),
                        field,
                    );
                }
            }
            for (field, devs, file, _) in &throttles {
                for (maj, min, rate) in throttle_lines(field, devs)? {
                    p.w(&t, *file, format!("{maj}:{min} {rate}"), field);
                }
            }
        }
        Target::V2 => {
            if let Some(w) = b.weight().filter(|&w| w != 0) {
                // As runc: BFQ takes the v1 weight as it is, io.weight the converted one.
                p.ops.push(Op::WriteFirstPresent {
                    target: t.clone(),
                    choices: vec![
                        ("io.bfq.weight".into(), w.to_string()),
                        (
                            "io.weight".into(),
                            format!("default {}", blkio_to_io_weight(w)),
                        ),
                    ],
                    field: "blockIO.weight",
                });
            }
            if b.leaf_weight().is_some_and(|w| w != 0) {
                return Err(PlanError::Unsupported {
                    field: "blockIO.leafWeight",
                    version: "v2",
                });
            }
            for d in b.weight_device().iter().flatten() {
                let field = "blockIO.weightDevice";
                check_dev(field, d.major(), d.minor())?;
                if let Some(w) = d.weight() {
                    p.w(
                        &t,
                        "io.weight",
                        format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(w)),
                        field,
                    );
                }
            }
            for (field, devs, _, key) in &throttles {
                for (maj, min, rate) in throttle_lines(field, devs)? {
                    let v = if rate == 0 {
                        "max".to_string()
                    } else {
                        rate.to_string()
                    };
                    p.w(&t, "io.max", format!("{maj}:{min} {key}={v}"), field);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).expect("test resources parse")
    }

    fn hybrid() -> Available {
        Available {
            v1: [
                "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            v2: Some(["hugetlb".to_string()].into()),
        }
    }

    fn unified() -> Available {
        Available {
            v1: BTreeSet::new(),
            v2: Some(
                ["cpu", "cpuset", "memory", "io", "pids", "hugetlb"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
        }
    }

    /// The plain writes of a plan as (v1 controller or "v2", file, value).
    fn writes(ops: &[Op]) -> Vec<(String, String, String)> {
        ops.iter()
            .filter_map(|o| match o {
                Op::Write {
                    target,
                    file,
                    value,
                    ..
                }
                | Op::WriteIfPresent {
                    target,
                    file,
                    value,
                    ..
                } => Some((
                    match target {
                        Target::V1(c) => c.to_string(),
                        Target::V2 => "v2".to_string(),
                    },
                    file.clone(),
                    value.clone(),
                )),
                Op::WriteFirstPresent {
                    target, choices, ..
                } => Some((
                    match target {
                        Target::V1(c) => c.to_string(),
                        Target::V2 => "v2".to_string(),
                    },
                    choices[0].0.clone(),
                    choices[0].1.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    fn w(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.into(), b.into(), c.into())
    }

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(swap_to_v2(0, -1), Ok(-1));
        assert_eq!(swap_to_v2(-1, 100), Ok(-1));
        assert_eq!(swap_to_v2(0, 100), Ok(0));
        assert_eq!(swap_to_v2(300, 100), Ok(200));
        assert!(swap_to_v2(50, 100).is_err());
        assert!(swap_to_v2(50, 0).is_err());
    }

    #[test]
    fn hybrid_plan() {
        let r = res(r#"{
            "memory": {"limit": 1048576, "reservation": 524288, "swappiness": 10, "disableOOMKiller": true, "kernel": 1},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000, "cpus": "0", "mems": "0", "idle": 1,
                    "realtimeRuntime": 10, "realtimePeriod": 1000},
            "pids": {"limit": 32},
            "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]
        }"#);
        let ops = plan(&r, &hybrid()).expect("plan");
        assert_eq!(
            ops[0],
            Op::V1MemoryAndSwap {
                limit: Some(1048576),
                swap: None
            }
        );
        assert_eq!(
            writes(&ops),
            vec![
                w("memory", "memory.soft_limit_in_bytes", "524288"),
                w("memory", "memory.swappiness", "10"),
                w("memory", "memory.oom_control", "1"),
                w("cpuset", "cpuset.cpus", "0"),
                w("cpuset", "cpuset.mems", "0"),
                w("cpu", "cpu.shares", "512"),
                w("cpu", "cpu.cfs_period_us", "100000"),
                w("cpu", "cpu.cfs_quota_us", "50000"),
                w("cpu", "cpu.cfs_burst_us", "1000"),
                w("cpu", "cpu.rt_period_us", "1000"),
                w("cpu", "cpu.rt_runtime_us", "10"),
                w("cpu", "cpu.idle", "1"),
                w("pids", "pids.max", "32"),
                w("blkio", "blkio.weight", "500"),
                w("blkio", "blkio.throttle.read_bps_device", "8:0 1000"),
                w("v2", "hugetlb.2MB.max", "4194304"),
                w("v2", "hugetlb.2MB.rsvd.max", "4194304"),
                w("devices", "devices.deny", "a *:* rwm"),
                w("devices", "devices.allow", "c 1:3 rw"),
            ]
        );
        assert_eq!(warnings(&r).len(), 1);
    }

    #[test]
    fn unified_plan() {
        let r = res(r#"{
            "memory": {"limit": 1000, "swap": 3000, "reservation": 500},
            "cpu": {"shares": 1024, "quota": -1, "period": 100000, "burst": 5, "idle": 0},
            "pids": {"limit": -1},
            "blockIO": {"weight": 10, "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 0}]},
            "hugepageLimits": [{"pageSize": "1GB", "limit": -1}],
            "unified": {"memory.oom.group": "1", "cgroup.max.depth": "3"},
            "devices": [{"allow": false, "access": "rwm"}]
        }"#);
        let ops = plan(&r, &unified()).expect("plan");
        assert_eq!(
            writes(&ops),
            vec![
                w("v2", "memory.swap.max", "2000"),
                w("v2", "memory.max", "1000"),
                w("v2", "memory.low", "500"),
                w("v2", "cpu.weight", "39"),
                w("v2", "cpu.max", "max 100000"),
                w("v2", "cpu.max.burst", "5"),
                w("v2", "cpu.idle", "0"),
                w("v2", "pids.max", "max"),
                w("v2", "io.bfq.weight", "10"),
                w("v2", "io.weight", "8:0 10000"),
                w("v2", "io.max", "8:16 wiops=max"),
                w("v2", "hugetlb.1GB.max", "max"),
                w("v2", "hugetlb.1GB.rsvd.max", "max"),
                w("v2", "cgroup.max.depth", "3"),
                w("v2", "memory.oom.group", "1"),
            ]
        );
        assert!(ops.iter().any(|o| matches!(o, Op::V2DeviceFilter(_))));
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(&str, Available, &str)] = &[
            (
                r#"{"memory": {"swappiness": 101}}"#,
                hybrid(),
                "memory.swappiness",
            ),
            (
                r#"{"memory": {"swappiness": 10}}"#,
                unified(),
                "memory.swappiness",
            ),
            (r#"{"memory": {"limit": -5}}"#, hybrid(), "memory.limit"),
            (
                r#"{"memory": {"disableOOMKiller": true}}"#,
                unified(),
                "memory.disableOOMKiller",
            ),
            (
                r#"{"memory": {"limit": 100, "swap": 50}}"#,
                unified(),
                "memory.swap",
            ),
            (
                r#"{"cpu": {"realtimeRuntime": 5}}"#,
                unified(),
                "cpu.realtimeRuntime",
            ),
            (r#"{"cpu": {"cpus": "0-a"}}"#, hybrid(), "cpu.cpus"),
            (r#"{"cpu": {"idle": 2}}"#, hybrid(), "cpu.idle"),
            (r#"{"blockIO": {"weight": 5}}"#, hybrid(), "blockIO.weight"),
            (
                r#"{"blockIO": {"leafWeight": 50}}"#,
                unified(),
                "blockIO.leafWeight",
            ),
            (
                r#"{"blockIO": {"throttleReadBpsDevice": [{"major": -1, "minor": 0, "rate": 1}]}}"#,
                hybrid(),
                "blockIO.throttleReadBpsDevice",
            ),
            (
                r#"{"hugepageLimits": [{"pageSize": "2MB/../x", "limit": 1}]}"#,
                hybrid(),
                "hugepageLimits",
            ),
            (
                r#"{"network": {"classID": 1}}"#,
                hybrid(),
                "network.classID",
            ),
            (
                r#"{"network": {"priorities": [{"name": "eth0", "priority": 1}]}}"#,
                unified(),
                "network.priorities",
            ),
            (r#"{"unified": {"memory.max": "1"}}"#, hybrid(), "unified"),
            (r#"{"unified": {"../x": "1"}}"#, unified(), "unified"),
            (
                r#"{"unified": {"cgroup.procs": "1"}}"#,
                unified(),
                "unified",
            ),
            (r#"{"unified": {"nosuch.x": "1"}}"#, unified(), "unified"),
            (
                r#"{"devices": [{"allow": true, "access": "rwx"}]}"#,
                hybrid(),
                "devices",
            ),
            (
                r#"{"devices": [{"allow": true, "access": "rwx"}]}"#,
                unified(),
                "devices",
            ),
            (r#"{"rdma": {"mlx": {"hcaHandles": 1}}}"#, unified(), "rdma"),
        ];
        for (json, avail, field) in cases {
            let err = plan(&res(json), avail).expect_err(json);
            assert!(
                err.to_string()
                    .contains(&format!("linux.resources.{field}")),
                "{json}: {err}"
            );
        }
        let legacy = Available {
            v1: ["memory".to_string()].into(),
            v2: None,
        };
        let err =
            plan(&res(r#"{"unified": {"memory.max": "1"}}"#), &legacy).expect_err("v1 unified");
        assert!(err.to_string().contains("linux.resources.unified"), "{err}");
        let err = plan(&res(r#"{"pids": {"limit": 3}}"#), &legacy).expect_err("no pids");
        assert!(
            err.to_string().contains("linux.resources.pids.limit"),
            "{err}"
        );
    }

    #[test]
    fn memory_unlimited_lifts_swap_on_v1() {
        let ops = plan(&res(r#"{"memory": {"limit": -1}}"#), &hybrid()).expect("plan");
        assert_eq!(
            ops,
            vec![Op::V1MemoryAndSwap {
                limit: Some(-1),
                swap: Some(-1)
            }]
        );
    }

    #[test]
    fn empty_resources_plan_nothing() {
        assert!(plan(&res("{}"), &hybrid()).expect("plan").is_empty());
        assert!(
            plan(
                &res(r#"{"memory": {}, "cpu": {}, "blockIO": {}}"#),
                &unified()
            )
            .expect("plan")
            .is_empty()
        );
    }
}
