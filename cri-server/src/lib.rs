//! berth-cri: the CRI v1 runtime and image services (berthd) and their client (berthctl).
pub mod streaming;
