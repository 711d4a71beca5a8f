//! Fuzz a bundle's config.json as `berth create` reads it: parse ([`Spec`] via
//! serde_json), validate ([`spec::validate`]), then every pure planner the container's
//! setup runs on the accepted spec: mounts, namespaces, rlimits, capabilities, cgroup
//! path and resource writes, device rules, scheduling, seccomp.
//!
//! Besides "never panics": what the planners accept must stay inside the container
//! (normalized absolute paths, cgroup files without `/`).

#![no_main]

use std::collections::{BTreeSet, HashSet};
use std::path::{Component, Path};
use std::sync::OnceLock;

use berth_runtime::cgroups::{self, CgroupPath};
use berth_runtime::rootfs::{self, MountOp, RootfsConfig};
use berth_runtime::{capabilities, namespaces, rlimits, sched, seccomp, spec};
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::Spec;

fn normal_absolute(p: &Path) -> bool {
    let mut c = p.components();
    c.next() == Some(Component::RootDir) && c.all(|c| matches!(c, Component::Normal(_)))
}

fn check_cgroup_file(file: &str) {
    assert!(
        !file.is_empty() && !file.contains('/') && file != "." && file != "..",
        "cgroup write to {file:?} leaves the cgroup directory"
    );
}

fn supported_caps() -> &'static HashSet<caps::Capability> {
    static S: OnceLock<HashSet<caps::Capability>> = OnceLock::new();
    S.get_or_init(capabilities::kernel_supported)
}

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<Spec>(data) else {
        return;
    };
    if spec::validate(&spec).is_err() {
        return;
    }
    let linux = spec.linux().as_ref().expect("validate requires linux");
    let process = spec.process().as_ref().expect("validate requires process");

    for console in [None, Some(Path::new("/dev/pts/3"))] {
        let cfg = RootfsConfig {
            spec: &spec,
            rootfs: Path::new("/run/berth-fuzz/bundle/rootfs"),
            bundle: Path::new("/run/berth-fuzz/bundle"),
            no_pivot: console.is_some(),
            console_slave: console,
            idmapped: None,
        };
        let Ok(ops) = rootfs::plan(&cfg) else {
            continue;
        };
        for op in &ops {
            let inside = match op {
                MountOp::Mount(m) => vec![m.destination.as_path()],
                MountOp::Cgroup { destination, .. } => vec![destination.as_path()],
                MountOp::Device(d) => vec![d.path.as_path()],
                MountOp::Symlink { link, .. } => vec![link.as_path()],
                MountOp::ReadonlyPath(p) | MountOp::MaskPath(p) | MountOp::RemountReadonly(p) => {
                    vec![p.as_path()]
                }
                _ => vec![],
            };
            for p in inside {
                assert!(normal_absolute(p), "{op:?}: container path not normalized");
            }
            if let MountOp::Mount(m) = op
                && let rootfs::MountKind::Bind { source, .. } = &m.kind
            {
                assert!(source.is_absolute(), "{op:?}: bind source not absolute");
            }
        }
    }

    let ns = namespaces::plan(linux);
    assert!(ns.join.iter().all(|(_, p)| p.is_absolute()));
    let _ = namespaces::map_text(linux.uid_mappings().as_deref().unwrap_or_default());
    let _ = namespaces::time_offsets_text(linux);

    if let Some(r) = process.rlimits() {
        let _ = rlimits::plan(r);
    }
    if let Some(c) = process.capabilities() {
        let _ = capabilities::plan(c, supported_caps());
    }
    if let Some(p) = linux.personality() {
        let _ = sched::personality_value(p);
    }
    if let Some(s) = process.scheduler() {
        let _ = sched::sched_attr(s);
    }
    if let Some(io) = process.io_priority() {
        let _ = sched::ioprio_value(io.class(), io.priority());
    }

    if let Some(p) = linux.cgroups_path()
        && let Ok(cg) = CgroupPath::parse(&p.to_string_lossy())
    {
        assert!(
            cg.rel
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."),
            "cgroupsPath {p:?} parsed to {:?}",
            cg.rel
        );
    }
    if let Some(r) = linux.resources() {
        let _ = cgroups::warnings(r);
        let all: BTreeSet<String> = [
            "cpu",
            "cpuacct",
            "cpuset",
            "memory",
            "pids",
            "blkio",
            "io",
            "hugetlb",
            "devices",
            "freezer",
            "net_cls",
            "net_prio",
            "perf_event",
            "rdma",
            "misc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let hosts = [
            cgroups::plan::Available {
                v1: all.clone(),
                v2: None,
            },
            cgroups::plan::Available {
                v1: BTreeSet::new(),
                v2: Some(all),
            },
        ];
        for avail in &hosts {
            let Ok(ops) = cgroups::plan::plan(r, avail) else {
                continue;
            };
            for op in &ops {
                match op {
                    cgroups::plan::Op::Write { file, .. }
                    | cgroups::plan::Op::WriteIfPresent { file, .. } => check_cgroup_file(file),
                    cgroups::plan::Op::WriteFirstPresent { choices, .. } => {
                        choices.iter().for_each(|(f, _)| check_cgroup_file(f))
                    }
                    cgroups::plan::Op::V2DeviceFilter(rules) => {
                        let _ = cgroups::devices::build_filter(rules)
                            .map(|p| cgroups::devices::encode(&p));
                    }
                    _ => {}
                }
            }
        }
        for rule in r.devices().iter().flatten() {
            let _ = cgroups::devices::v1_lines(rule);
        }
    }
    if let Some(s) = linux.seccomp()
        && let Ok(filter) = seccomp::compile(s)
    {
        let _ = filter.to_bpf();
    }
});
