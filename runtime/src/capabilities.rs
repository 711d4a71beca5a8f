//! The five capability sets of `process.capabilities` (runtime-spec `config.md#process`),
//! applied as runc does.
//!
//! Order in the container's init, around the user switch:
//! 1. [`apply_bounding`] — drop from the bounding set what the spec does not list
//!    (needs `CAP_SETPCAP`, so before anything else is dropped);
//! 2. [`keep_caps_before_setuid`] — `PR_SET_KEEPCAPS`, so `setuid` keeps the permitted set;
//! 3. `setgroups` / `setgid` / `setuid` (the caller);
//! 4. [`apply_after_setuid`] — clear keep-caps, set effective, permitted and inheritable in
//!    one `capset`, then raise the ambient set.
//!
//! [`apply`] runs 1 and 4 back to back, for a process that does not switch user.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability as KCap};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

/// Errors of the capabilities module.
#[derive(Debug, thiserror::Error)]
pub enum CapabilitiesError {
    /// A capability name that is not a Linux capability.
    #[error("unknown capability {0:?}")]
    UnknownName(String),
    /// A capability this kernel does not know (beyond /proc/sys/kernel/cap_last_cap).
    #[error("capability {name} ({set} set) is not supported by this kernel")]
    NotInKernel {
        /// `CAP_...` name.
        name: String,
        /// Which set listed it.
        set: &'static str,
    },
    /// A capability system call failed.
    #[error("capabilities: {op}: {source}")]
    Sys {
        /// What was being done.
        op: String,
        /// The errno.
        #[source]
        source: nix::errno::Errno,
    },
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, CapabilitiesError>;

/// Parses a capability name as runc's `exec --cap` does: `CAP_SYS_ADMIN`, `SYS_ADMIN`,
/// any case. Unknown names are an error naming them.
pub fn parse(name: &str) -> Result<Capability> {
    serde_json::from_value::<Capability>(serde_json::Value::String(name.to_string()))
        .map_err(|_| CapabilitiesError::UnknownName(name.to_string()))
}

/// Parses a list of names (see [`parse`]) into a set.
pub fn parse_all<S: AsRef<str>>(names: &[S]) -> Result<Capabilities> {
    names.iter().map(|n| parse(n.as_ref())).collect()
}

/// Adds `exec --cap` names to a process's capabilities as current runc does: to the
/// bounding, effective and permitted sets, and to ambient only when the spec has an
/// inheritable set (ambient cannot be raised without it; inheritable itself is never
/// widened, per CVE-2022-29162).
pub fn add_exec_caps<S: AsRef<str>>(caps: &mut LinuxCapabilities, names: &[S]) -> Result<()> {
    let extra = parse_all(names)?;
    if extra.is_empty() {
        return Ok(());
    }
    let widen = |set: &Option<Capabilities>| -> Option<Capabilities> {
        let mut s = set.clone().unwrap_or_default();
        s.extend(extra.iter().copied());
        Some(s)
    };
    let bounding = widen(caps.bounding());
    let effective = widen(caps.effective());
    let permitted = widen(caps.permitted());
    caps.set_bounding(bounding);
    caps.set_effective(effective);
    caps.set_permitted(permitted);
    if caps.inheritable().is_some() {
        let ambient = widen(caps.ambient());
        caps.set_ambient(ambient);
    }
    Ok(())
}

/// The kernel's `CAP_...` name of a spec capability.
pub fn kernel_name(cap: Capability) -> String {
    format!("CAP_{cap}")
}

/// Translates a spec capability into the kernel's number (via the `caps` crate).
pub fn to_kernel(cap: Capability) -> Result<KCap> {
    let name = kernel_name(cap);
    KCap::from_str(&name).map_err(|_| CapabilitiesError::UnknownName(name))
}

/// The five sets, translated and checked against the capabilities this kernel knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapPlan {
    /// Bounding set to keep.
    pub bounding: HashSet<KCap>,
    /// Effective set.
    pub effective: HashSet<KCap>,
    /// Permitted set.
    pub permitted: HashSet<KCap>,
    /// Inheritable set.
    pub inheritable: HashSet<KCap>,
    /// Ambient set, raised in this order.
    pub ambient: Vec<KCap>,
}

/// Bit mask (as in /proc/PID/status `CapEff:` etc.) of a set of capabilities.
pub fn mask(set: &HashSet<KCap>) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

/// Builds the [`CapPlan`] for `spec`, refusing capabilities outside `supported` (the
/// kernel's, from [`kernel_supported`]). A missing set is empty, as in runc.
pub fn plan(spec: &LinuxCapabilities, supported: &HashSet<KCap>) -> Result<CapPlan> {
    let conv = |set: &Option<Capabilities>, which: &'static str| -> Result<Vec<KCap>> {
        let mut v: Vec<KCap> = Vec::new();
        for cap in set.iter().flatten() {
            let k = to_kernel(*cap)?;
            if !supported.contains(&k) {
                return Err(CapabilitiesError::NotInKernel {
                    name: kernel_name(*cap),
                    set: which,
                });
            }
            v.push(k);
        }
        // deterministic order for the ambient raises and for error messages
        v.sort_by_key(|c| c.index());
        Ok(v)
    };
    Ok(CapPlan {
        bounding: conv(spec.bounding(), "bounding")?.into_iter().collect(),
        effective: conv(spec.effective(), "effective")?.into_iter().collect(),
        permitted: conv(spec.permitted(), "permitted")?.into_iter().collect(),
        inheritable: conv(spec.inheritable(), "inheritable")?
            .into_iter()
            .collect(),
        ambient: conv(spec.ambient(), "ambient")?,
    })
}

/// The capabilities this kernel supports (from /proc/sys/kernel/cap_last_cap).
pub fn kernel_supported() -> HashSet<KCap> {
    caps::runtime::thread_all_supported()
}

fn sys(op: impl Into<String>) -> impl FnOnce(caps::errors::CapsError) -> CapabilitiesError {
    let op = op.into();
    move |e| CapabilitiesError::Sys {
        source: nix::errno::Errno::last(),
        op: format!("{op}: {e}"),
    }
}

/// Step 1: drops every capability the spec's bounding set does not list.
pub fn apply_bounding(spec: &LinuxCapabilities) -> Result<()> {
    let supported = kernel_supported();
    let plan = plan(spec, &supported)?;
    drop_bounding(&plan, &supported)
}

fn drop_bounding(plan: &CapPlan, supported: &HashSet<KCap>) -> Result<()> {
    let mut all: Vec<KCap> = supported.iter().copied().collect();
    all.sort_by_key(|c| c.index());
    for cap in all {
        if !plan.bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(sys(format!("dropping {cap} from the bounding set")))?;
        }
    }
    Ok(())
}

/// Step 2: `PR_SET_KEEPCAPS`, so the permitted set survives `setuid` to a non-zero uid.
pub fn keep_caps_before_setuid() -> Result<()> {
    caps::securebits::set_keepcaps(true).map_err(sys("PR_SET_KEEPCAPS 1"))
}

/// Step 4: clears keep-caps, sets effective/permitted/inheritable in one `capset`, then
/// raises the ambient capabilities. Returns the ambient capabilities the kernel refused
/// to raise (one missing from permitted or inheritable); runc only warns about those,
/// so the caller should log them and go on.
pub fn apply_after_setuid(spec: &LinuxCapabilities) -> Result<Vec<String>> {
    let plan = plan(spec, &kernel_supported())?;
    set_process_caps(&plan)
}

fn set_process_caps(plan: &CapPlan) -> Result<Vec<String>> {
    caps::securebits::set_keepcaps(false).map_err(sys("PR_SET_KEEPCAPS 0"))?;
    let held = caps::read(None, CapSet::Permitted).unwrap_or_default();
    capset(
        mask(&plan.effective),
        mask(&plan.permitted),
        mask(&plan.inheritable),
    )
    .map_err(|e| match e {
        CapabilitiesError::Sys { op, source } => CapabilitiesError::Sys {
            op: format!("{op}{}", missing_hint(&plan.permitted, &held)),
            source,
        },
        other => other,
    })?;
    caps::clear(None, CapSet::Ambient).map_err(sys("clearing the ambient set"))?;
    let mut refused = Vec::new();
    for cap in &plan.ambient {
        if caps::raise(None, CapSet::Ambient, *cap).is_err() {
            refused.push(cap.to_string());
        }
    }
    Ok(refused)
}

/// Names the requested permitted capabilities this process does not hold itself (the
/// usual reason `capset` refuses), e.g. `" (the runtime lacks CAP_SYS_RESOURCE)"`.
pub fn missing_hint(wanted: &HashSet<KCap>, held: &HashSet<KCap>) -> String {
    let mut missing: Vec<&KCap> = wanted.difference(held).collect();
    if missing.is_empty() {
        return String::new();
    }
    missing.sort_by_key(|c| c.index());
    let names: Vec<String> = missing.iter().map(|c| c.to_string()).collect();
    format!(" (the runtime lacks {})", names.join(", "))
}

/// Steps 1 and 4 for a process that keeps its user: bounding, then the other four sets.
/// Returns the ambient capabilities that could not be raised (see [`apply_after_setuid`]).
pub fn apply(spec: &LinuxCapabilities) -> Result<Vec<String>> {
    let supported = kernel_supported();
    let plan = plan(spec, &supported)?;
    drop_bounding(&plan, &supported)?;
    set_process_caps(&plan)
}

/// `capset(2)` of the calling thread, all three sets at once (version 3, 64 bits).
fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and data are valid, properly laid out v3 capset arguments that
    // outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if rc != 0 {
        return Err(CapabilitiesError::Sys {
            op: format!(
                "capset effective={effective:#x} permitted={permitted:#x} inheritable={inheritable:#x}"
            ),
            source: nix::errno::Errno::last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_or_without_prefix() {
        let cases = [
            ("CAP_SYS_ADMIN", Capability::SysAdmin),
            ("SYS_ADMIN", Capability::SysAdmin),
            ("cap_net_raw", Capability::NetRaw),
            ("chown", Capability::Chown),
            ("CAP_CHECKPOINT_RESTORE", Capability::CheckpointRestore),
            ("CAP_BPF", Capability::Bpf),
        ];
        for (name, want) in cases {
            assert_eq!(parse(name).expect(name), want);
        }
        for bad in ["CAP_FLY", "", "SYS", "CAP_"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        let err = parse_all(&["CAP_KILL", "CAP_NOPE"]).expect_err("one bad name");
        assert!(err.to_string().contains("CAP_NOPE"), "{err}");
    }

    #[test]
    fn exec_caps_widen_like_runc_exec() {
        let base = |json: serde_json::Value| -> LinuxCapabilities {
            serde_json::from_value(json).expect("valid")
        };
        let set = |s: &Option<Capabilities>| -> Vec<String> {
            let mut v: Vec<String> = s.iter().flatten().map(|c| kernel_name(*c)).collect();
            v.sort();
            v
        };
        // without inheritable: ambient untouched
        let mut c = base(serde_json::json!({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]}));
        add_exec_caps(&mut c, &["net_raw", "CAP_SYS_PTRACE"]).expect("known caps");
        let want = ["CAP_KILL", "CAP_NET_RAW", "CAP_SYS_PTRACE"];
        assert_eq!(set(c.bounding()), want);
        assert_eq!(set(c.effective()), want);
        assert_eq!(set(c.permitted()), ["CAP_NET_RAW", "CAP_SYS_PTRACE"]);
        assert!(c.inheritable().is_none());
        assert!(c.ambient().is_none());
        // with inheritable: ambient too, inheritable itself unchanged
        let mut c = base(serde_json::json!({"inheritable": ["CAP_CHOWN"]}));
        add_exec_caps(&mut c, &["CAP_NET_RAW"]).expect("known cap");
        assert_eq!(set(c.ambient()), ["CAP_NET_RAW"]);
        assert_eq!(set(c.inheritable()), ["CAP_CHOWN"]);
        let err = add_exec_caps(&mut c, &["CAP_NOPE"]).expect_err("unknown");
        assert!(err.to_string().contains("CAP_NOPE"), "{err}");
    }

    #[test]
    fn missing_hint_names_what_the_runtime_lacks() {
        let held: HashSet<KCap> = [KCap::CAP_KILL, KCap::CAP_CHOWN].into_iter().collect();
        let ok: HashSet<KCap> = [KCap::CAP_KILL].into_iter().collect();
        assert_eq!(missing_hint(&ok, &held), "");
        let want: HashSet<KCap> = [KCap::CAP_SYS_RESOURCE, KCap::CAP_KILL, KCap::CAP_BPF]
            .into_iter()
            .collect();
        assert_eq!(
            missing_hint(&want, &held),
            " (the runtime lacks CAP_SYS_RESOURCE, CAP_BPF)"
        );
    }

    #[test]
    fn every_spec_capability_maps_to_the_kernel_number() {
        let cases: &[(Capability, u8)] = &[
            (Capability::Chown, 0),
            (Capability::DacOverride, 1),
            (Capability::Kill, 5),
            (Capability::Setpcap, 8),
            (Capability::NetBindService, 10),
            (Capability::NetRaw, 13),
            (Capability::SysAdmin, 21),
            (Capability::SysResource, 24),
            (Capability::AuditWrite, 29),
            (Capability::Setfcap, 31),
            (Capability::Syslog, 34),
            (Capability::AuditRead, 37),
            (Capability::Perfmon, 38),
            (Capability::Bpf, 39),
            (Capability::CheckpointRestore, 40),
        ];
        for (cap, nr) in cases {
            assert_eq!(to_kernel(*cap).expect("known").index(), *nr, "{cap}");
        }
    }

    #[test]
    fn plan_translates_sets_and_masks() {
        let spec: LinuxCapabilities = serde_json::from_value(serde_json::json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "ambient": ["CAP_CHOWN", "CAP_KILL"]
        }))
        .expect("valid");
        let all: HashSet<KCap> = caps::all();
        let p = plan(&spec, &all).expect("plan");
        assert_eq!(mask(&p.bounding), (1 << 5) | 1 | (1 << 13));
        assert_eq!(mask(&p.effective), 1 << 5);
        assert_eq!(mask(&p.permitted), (1 << 5) | 1);
        assert!(p.inheritable.is_empty(), "a missing set is empty");
        assert_eq!(p.ambient, vec![KCap::CAP_CHOWN, KCap::CAP_KILL]);

        let old_kernel: HashSet<KCap> = all.into_iter().filter(|c| c.index() <= 37).collect();
        let spec: LinuxCapabilities = serde_json::from_value(serde_json::json!({
            "effective": ["CAP_BPF"]
        }))
        .expect("valid");
        let err = plan(&spec, &old_kernel).expect_err("BPF unknown to the kernel");
        assert!(err.to_string().contains("CAP_BPF"), "{err}");
        assert!(err.to_string().contains("effective"), "{err}");
    }
}
