//! SCAFFOLD until the rlimits work lands.
/// Sets rlimits.
pub fn apply(_r: &[oci_spec::runtime::PosixRlimit]) -> Result<(), String> {
    Err("rlimits: not implemented yet".into())
}
/// Sets oom_score_adj of this process.
pub fn set_oom_score_adj(_pid: Option<i32>, _v: i32) -> Result<(), String> {
    Err("oom_score_adj: not implemented yet".into())
}
