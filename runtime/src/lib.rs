//! berth-runtime: turns an OCI runtime-spec bundle into a running, isolated process,
//! with runc's command line on top (see `main.rs`).
//!
//! Pure logic (spec validation, mount planning, capability and seccomp translation)
//! lives apart from the thin modules that make syscalls.

pub mod capabilities;
pub mod cgroups;
pub mod console;
pub mod container;
pub mod exec;
pub mod hooks;
pub mod init;
pub mod namespaces;
pub mod process;
pub mod rlimits;
pub mod rootfs;
pub mod sched;
pub mod seal;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod specgen;
pub mod state;
pub mod sync;
