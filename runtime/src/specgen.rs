//! SCAFFOLD until the spec work lands.
/// Default spec.
pub fn default_spec(_rootless: bool) -> oci_spec::runtime::Spec {
    oci_spec::runtime::Spec::default()
}
/// Features.
pub fn features() -> serde_json::Value {
    serde_json::json!({})
}
