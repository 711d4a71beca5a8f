//! Links `berth` with packed relative relocations (DT_RELR, glibc 2.36+): a PIE Rust
//! binary carries thousands of R_X86_64_RELATIVE entries, and processing them is most
//! of the dynamic loader's time at every start. `berth` starts several times per
//! container (create re-executes itself sealed, then start, delete), so this is on
//! the container lifecycle's critical path.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=berth=-Wl,-z,pack-relative-relocs");
    }
}
