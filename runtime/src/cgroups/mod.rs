//! cgroups for one container, v1, v2 and the v1/v2 hybrid.
//!
//! SCAFFOLD: this is the interface the rest of the runtime codes against; the
//! cgroups work replaces the bodies.

use serde::{Deserialize, Serialize};

/// Errors of the cgroup manager.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroups: {0} is not implemented yet")]
    Unimplemented(&'static str),
}

type Result<T> = std::result::Result<T, CgroupError>;

/// One container's cgroup, resolved in every hierarchy of this host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manager {
    path: String,
}

impl Manager {
    /// Resolves `cgroups_path` (spec `linux.cgroupsPath`; default `/berth/<id>`).
    pub fn new(cgroups_path: Option<&str>, id: &str) -> Result<Manager> {
        Ok(Manager {
            path: cgroups_path.map(str::to_string).unwrap_or(format!("/berth/{id}")),
        })
    }
    /// Creates the cgroup in every hierarchy (idempotent).
    pub fn create(&self) -> Result<()> {
        Err(CgroupError::Unimplemented("create"))
    }
    /// Writes the spec's resource limits.
    pub fn apply(&self, _resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        Err(CgroupError::Unimplemented("apply"))
    }
    /// Moves `pid` into the cgroup.
    pub fn add_pid(&self, _pid: i32) -> Result<()> {
        Err(CgroupError::Unimplemented("add_pid"))
    }
    /// Every process in the cgroup and its descendants.
    pub fn pids(&self) -> Result<Vec<i32>> {
        Err(CgroupError::Unimplemented("pids"))
    }
    /// Freezes every process of the cgroup.
    pub fn freeze(&self) -> Result<()> {
        Err(CgroupError::Unimplemented("freeze"))
    }
    /// Thaws the cgroup.
    pub fn thaw(&self) -> Result<()> {
        Err(CgroupError::Unimplemented("thaw"))
    }
    /// Whether the cgroup is frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        Err(CgroupError::Unimplemented("is_frozen"))
    }
    /// Removes the cgroup from every hierarchy.
    pub fn destroy(&self) -> Result<()> {
        Err(CgroupError::Unimplemented("destroy"))
    }
}
