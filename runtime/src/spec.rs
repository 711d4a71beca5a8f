//! Reading and checking a bundle's config.json (runtime-spec `config.md`,
//! `config-linux.md`). Everything here is pure: a hostile config.json is refused with an
//! error naming the field before anything is created.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// Errors in a bundle or its config.json.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("bundle {0}: {1}")]
    Bundle(PathBuf, std::io::Error),
    #[error("config.json in {0}: {1}")]
    Parse(PathBuf, String),
    #[error("config.json: {field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A loaded, checked bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute, canonical bundle directory.
    pub dir: PathBuf,
    /// Absolute, canonical rootfs directory.
    pub rootfs: PathBuf,
    pub spec: Spec,
}

/// Largest config.json berth reads; a larger one is refused rather than parsed.
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads `<bundle>/config.json`, checks it and resolves the rootfs.
pub fn load_bundle(bundle: &Path) -> Result<Bundle, SpecError> {
    let dir = bundle
        .canonicalize()
        .map_err(|e| SpecError::Bundle(bundle.to_path_buf(), e))?;
    let cfg = dir.join("config.json");
    let meta = std::fs::metadata(&cfg).map_err(|e| SpecError::Bundle(cfg.clone(), e))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(SpecError::Parse(
            dir,
            format!("larger than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    let data = std::fs::read(&cfg).map_err(|e| SpecError::Bundle(cfg.clone(), e))?;
    let spec: Spec =
        serde_json::from_slice(&data).map_err(|e| SpecError::Parse(dir.clone(), e.to_string()))?;
    validate(&spec)?;
    let root = spec.root().as_ref().expect("validate checked root");
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs = rootfs
        .canonicalize()
        .map_err(|e| invalid("root.path", format!("{}: {e}", rootfs.display())))?;
    if !rootfs.is_dir() {
        return Err(invalid(
            "root.path",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    Ok(Bundle { dir, rootfs, spec })
}

/// Checks the parts of a spec berth relies on. Pure.
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    if !spec.version().starts_with("1.") {
        return Err(invalid(
            "ociVersion",
            format!("{:?} is not a 1.x runtime-spec version", spec.version()),
        ));
    }
    let Some(root) = spec.root() else {
        return Err(invalid("root", "missing"));
    };
    if root.path().as_os_str().is_empty() {
        return Err(invalid("root.path", "empty"));
    }
    let Some(process) = spec.process() else {
        return Err(invalid("process", "missing"));
    };
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => return Err(invalid("process.args", "must name a program")),
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!("{} is not absolute", process.cwd().display()),
        ));
    }
    for e in process.env().iter().flatten() {
        if !e.contains('=') || e.starts_with('=') || e.contains('\0') {
            return Err(invalid("process.env", format!("{e:?} is not NAME=VALUE")));
        }
    }
    if process
        .apparmor_profile()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(invalid(
            "process.apparmorProfile",
            "AppArmor is not available on this host",
        ));
    }
    if process
        .selinux_label()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(invalid(
            "process.selinuxLabel",
            "SELinux is not available on this host",
        ));
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(invalid(
                "mounts.destination",
                format!("{} is not absolute", m.destination().display()),
            ));
        }
    }
    let Some(linux) = spec.linux() else {
        return Err(invalid("linux", "missing"));
    };
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    let mut seen = HashSet::new();
    for ns in namespaces {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                "linux.namespaces",
                format!("{} listed twice", ns.typ()),
            ));
        }
        if let Some(p) = ns.path()
            && !p.is_absolute()
        {
            return Err(invalid(
                "linux.namespaces.path",
                format!("{} is not absolute", p.display()),
            ));
        }
    }
    let has = |t| namespaces.iter().any(|n| n.typ() == t);
    let new_user = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_maps && !new_user {
        return Err(invalid(
            "linux.uidMappings",
            "mappings need a new user namespace",
        ));
    }
    if new_user && !has_maps {
        return Err(invalid(
            "linux.uidMappings",
            "a new user namespace needs uid and gid mappings",
        ));
    }
    if (spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        || spec.domainname().as_deref().is_some_and(|h| !h.is_empty()))
        && !has(LinuxNamespaceType::Uts)
    {
        return Err(invalid(
            "hostname",
            "setting a hostname needs a private UTS namespace",
        ));
    }
    for (key, _) in linux.sysctl().iter().flatten() {
        check_sysctl(key, &has)?;
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        let new_time = namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none());
        if !new_time {
            return Err(invalid(
                "linux.timeOffsets",
                "time offsets need a new time namespace",
            ));
        }
        for k in linux.time_offsets().iter().flatten().map(|(k, _)| k) {
            if k != "monotonic" && k != "boottime" {
                return Err(invalid("linux.timeOffsets", format!("unknown clock {k:?}")));
            }
        }
    }
    if linux
        .mount_label()
        .as_deref()
        .is_some_and(|l| !l.is_empty())
    {
        return Err(invalid(
            "linux.mountLabel",
            "SELinux is not available on this host",
        ));
    }
    if process.exec_cpu_affinity().is_some() {
        return Err(invalid("process.execCPUAffinity", "not supported by berth"));
    }
    if linux.memory_policy().is_some() {
        return Err(invalid("linux.memoryPolicy", "not supported by berth"));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(invalid("linux.netDevices", "not supported by berth"));
    }
    if linux.intel_rdt().is_some() {
        return Err(invalid(
            "linux.intelRdt",
            "Intel RDT is not supported by berth",
        ));
    }
    if let Some(p) = linux.rootfs_propagation()
        && !matches!(
            p.as_str(),
            "" | "private"
                | "rprivate"
                | "slave"
                | "rslave"
                | "shared"
                | "rshared"
                | "unbindable"
                | "runbindable"
        )
    {
        return Err(invalid(
            "linux.rootfsPropagation",
            format!("{p:?} is not a propagation mode"),
        ));
    }
    Ok(())
}

/// Checks one sysctl key as runc does: only namespaced keys, and only when the container
/// has the namespace they belong to.
fn check_sysctl(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<(), SpecError> {
    let bad_chars = key.is_empty()
        || key.contains("..")
        || key.starts_with('.')
        || key.starts_with('/')
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
    if bad_chars {
        return Err(invalid(
            "linux.sysctl",
            format!("{key:?} is not a sysctl name"),
        ));
    }
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let uts = ["kernel.domainname", "kernel.hostname"];
    let need = if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if uts.contains(&key) {
        LinuxNamespaceType::Uts
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else {
        return Err(invalid(
            "linux.sysctl",
            format!("{key} is not in a namespace the container can own"),
        ));
    };
    if has(need) {
        Ok(())
    } else {
        Err(invalid(
            "linux.sysctl",
            format!("{key} needs a private {need} namespace"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).expect("test spec parses")
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        })
    }

    fn with(path: &[&str], v: serde_json::Value) -> Spec {
        let mut j = base();
        let mut cur = &mut j;
        for p in &path[..path.len() - 1] {
            cur = cur
                .as_object_mut()
                .unwrap()
                .entry(*p)
                .or_insert(serde_json::json!({}));
        }
        cur[path[path.len() - 1]] = v;
        spec(j)
    }

    fn field_of(s: &Spec) -> Option<String> {
        match validate(s) {
            Ok(()) => None,
            Err(SpecError::Invalid { field, .. }) => Some(field),
            Err(e) => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn base_spec_is_valid() {
        assert_eq!(field_of(&spec(base())), None);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases: Vec<(Spec, &str)> = vec![
            (with(&["ociVersion"], "0.9".into()), "ociVersion"),
            (
                with(&["process", "args"], serde_json::json!([])),
                "process.args",
            ),
            (with(&["process", "cwd"], "rel".into()), "process.cwd"),
            (
                with(&["process", "env"], serde_json::json!(["NOEQUALS"])),
                "process.env",
            ),
            (
                with(&["process", "apparmorProfile"], "x".into()),
                "process.apparmorProfile",
            ),
            (
                with(
                    &["mounts"],
                    serde_json::json!([{"destination": "rel", "type": "tmpfs"}]),
                ),
                "mounts.destination",
            ),
            (
                with(
                    &["linux", "namespaces"],
                    serde_json::json!([{"type": "pid"}, {"type": "pid"}]),
                ),
                "linux.namespaces",
            ),
            (
                with(
                    &["linux", "namespaces"],
                    serde_json::json!([{"type": "network", "path": "rel"}]),
                ),
                "linux.namespaces.path",
            ),
            (
                with(
                    &["linux", "uidMappings"],
                    serde_json::json!([{"hostID": 0, "containerID": 0, "size": 1}]),
                ),
                "linux.uidMappings",
            ),
            (with(&["hostname"], "h".into()), "hostname"),
            (
                with(
                    &["linux", "sysctl"],
                    serde_json::json!({"net.ipv4.ip_forward": "1"}),
                ),
                "linux.sysctl",
            ),
            (
                with(
                    &["linux", "sysctl"],
                    serde_json::json!({"kernel.panic": "1"}),
                ),
                "linux.sysctl",
            ),
            (
                with(&["linux", "sysctl"], serde_json::json!({"../../x": "1"})),
                "linux.sysctl",
            ),
            (
                with(&["linux", "rootfsPropagation"], "sideways".into()),
                "linux.rootfsPropagation",
            ),
            (
                with(
                    &["linux", "timeOffsets"],
                    serde_json::json!({"monotonic": {"secs": 1}}),
                ),
                "linux.timeOffsets",
            ),
        ];
        for (s, want) in cases {
            assert_eq!(field_of(&s).as_deref(), Some(want));
        }
    }

    #[test]
    fn sysctl_allowed_with_its_namespace() {
        let mut j = base();
        j["linux"]["namespaces"] = serde_json::json!([{"type": "network"}, {"type": "ipc"}]);
        j["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "10"});
        assert_eq!(field_of(&spec(j)), None);
    }

    #[test]
    fn user_namespace_needs_mappings() {
        let mut j = base();
        j["linux"]["namespaces"] = serde_json::json!([{"type": "user"}]);
        assert_eq!(
            field_of(&spec(j.clone())).as_deref(),
            Some("linux.uidMappings")
        );
        j["linux"]["uidMappings"] =
            serde_json::json!([{"hostID": 1000, "containerID": 0, "size": 1}]);
        j["linux"]["gidMappings"] =
            serde_json::json!([{"hostID": 1000, "containerID": 0, "size": 1}]);
        assert_eq!(field_of(&spec(j)), None);
    }

    #[test]
    fn missing_bundle_and_bad_json_are_errors() {
        assert!(matches!(
            load_bundle(Path::new("/nonexistent/bundle")),
            Err(SpecError::Bundle(..))
        ));
        let d = std::env::temp_dir().join(format!("berth-spec-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.json"), b"{ not json").unwrap();
        assert!(matches!(load_bundle(&d), Err(SpecError::Parse(..))));
        std::fs::write(d.join("config.json"), serde_json::to_vec(&base()).unwrap()).unwrap();
        let e = load_bundle(&d).unwrap_err();
        assert!(e.to_string().contains("root.path"), "{e}");
        std::fs::create_dir(d.join("rootfs")).unwrap();
        let b = load_bundle(&d).unwrap();
        assert!(b.rootfs.ends_with("rootfs"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
