//! SCAFFOLD until the rootfs work lands.
use std::path::Path;
/// Inputs.
pub struct RootfsConfig<'a> {
    pub spec: &'a oci_spec::runtime::Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub no_pivot: bool,
    pub console_slave: Option<&'a Path>,
}
/// Prepare.
pub fn prepare(_c: &RootfsConfig) -> Result<(), String> {
    Err("rootfs: not implemented yet".into())
}
/// Pivot.
pub fn pivot(_c: &RootfsConfig) -> Result<(), String> {
    Err("rootfs: not implemented yet".into())
}
/// Finalize.
pub fn finalize(_c: &RootfsConfig) -> Result<(), String> {
    Err("rootfs: not implemented yet".into())
}
