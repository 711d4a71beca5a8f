//! SCAFFOLD until the seccomp work lands.
/// A compiled filter.
pub struct Filter;
/// Compiles a filter.
pub fn compile(_s: &oci_spec::runtime::LinuxSeccomp) -> Result<Filter, String> {
    Err("seccomp: not implemented yet".into())
}
impl Filter {
    /// Loads the filter.
    pub fn load(self) -> Result<Option<std::os::fd::OwnedFd>, String> {
        Err("seccomp: not implemented yet".into())
    }
}
/// Sends the listener fd.
pub fn send_listener_fd(_p: &std::path::Path, _m: &str, _fd: std::os::fd::OwnedFd, _s: &[u8]) -> Result<(), String> {
    Err("seccomp: not implemented yet".into())
}
