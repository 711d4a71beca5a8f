//! Links the `berth` binary as a static PIE (glibc and libseccomp archives, no dynamic
//! loader), with packed relative relocations (DT_RELR), and its code laid out by
//! `berth.order` (see `order_functions`).
//!
//! Why: `berth` starts several times per container (create re-executes itself sealed,
//! then start, state, delete), and each start is on the container lifecycle's critical
//! path and counted in a node's memory. A dynamic `berth` spends most of its start-up in
//! the dynamic loader, and maps all of ld.so, libc.so, libgcc_s and libseccomp, whose
//! IFUNC resolvers and relocations touch pages all over them (about 0.55 MiB of RSS per
//! invocation). A static PIE keeps ASLR and maps only the libc code berth calls; it also
//! cannot be broken by the libraries of a host whose libc changes under a running node
//! (runc's release binaries are static for the same reasons).
//!
//! How: cargo has no stable per-binary `-C target-feature=+crt-static` (it cannot be set
//! for one binary, and setting it for the whole build breaks proc-macros unless every
//! build passes `--target`). So for the `berth` binary only, this script gives the linker
//! `-static-pie` and a search directory, placed before the system ones, in which each
//! library rustc asks for (`-lc`, `-lm`, `-lpthread`, `-lrt`, `-ldl`, `-lutil`,
//! `-lseccomp`, `-lgcc_s`) names the host's static archive; `libgcc_s` becomes a linker
//! script for `libgcc_eh.a` and `libgcc.a`, as gcc's own `-static-pie` does. The library's
//! tests and the other targets link as usual. When an archive is missing (no `libc6-dev`
//! or `libseccomp-dev`), the build stays dynamic and says so in a cargo warning;
//! `tests/static_binary.rs` fails then, so CI cannot drift to a dynamic `berth` unseen.
//! `BERTH_DYNAMIC=1` asks for the dynamic build on purpose.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Libraries rustc links for a gnu target whose archives stand in for the shared ones.
const ARCHIVES: &[&str] = &[
    "libc.a",
    "libm.a",
    "libpthread.a",
    "librt.a",
    "libdl.a",
    "libutil.a",
    "libseccomp.a",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=BERTH_DYNAMIC");
    println!("cargo:rerun-if-env-changed=CC");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os != "linux" || env != "gnu" {
        return;
    }
    println!("cargo:rustc-link-arg-bin=berth=-Wl,-z,pack-relative-relocs");
    order_functions();
    if std::env::var_os("BERTH_DYNAMIC").is_some_and(|v| v == "1") {
        return;
    }
    // libseccomp-sys puts LIBSECCOMP_LIB_PATH on the search path ahead of our
    // directory, where the shared libraries would be found first.
    println!("cargo:rerun-if-env-changed=LIBSECCOMP_LIB_PATH");
    if std::env::var_os("LIBSECCOMP_LIB_PATH").is_some() {
        println!("cargo:warning=berth is linked dynamically: LIBSECCOMP_LIB_PATH is set");
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    match static_lib_dir(&out.join("static-libs")) {
        Ok(dir) => {
            println!("cargo:rustc-link-arg-bin=berth=-L{}", dir.display());
            println!("cargo:rustc-link-arg-bin=berth=-static-pie");
        }
        Err(why) => println!("cargo:warning=berth is linked dynamically: {why}"),
    }
}

/// Lays out berth's code with `berth.order` (written by `berth-conformance orderfile`,
/// see conformance/src/orderfile): the functions the container lifecycle runs come
/// first and together, so each invocation maps few 64 KiB fault-around windows of
/// text instead of most of the binary. Needs lld, rustc's default linker for this
/// target; with another linker configured (`target.<triple>.linker`, `-C linker=`,
/// `-C linker-flavor=`, `-C linker-features=`) the order is skipped.
fn order_functions() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let order = dir.join("berth.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") || std::env::var_os("RUSTC_LINKER").is_some() {
        println!("cargo:warning=berth.order not used: a custom linker is configured");
        return;
    }
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=berth=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // Names the toolchain no longer produces are expected after updates.
        println!("cargo:rustc-link-arg-bin=berth=-Wl,--no-warn-symbol-ordering");
    }
}

/// Fills `dir` with links to the host's static archives under the names the linker
/// looks for, and returns it.
fn static_lib_dir(dir: &Path) -> Result<PathBuf, String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let find = |name: &str| -> Result<PathBuf, String> {
        let out = Command::new(&cc)
            .arg(format!("-print-file-name={name}"))
            .output()
            .map_err(|e| format!("running {cc}: {e}"))?;
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        // cc prints the bare name when it finds no such file.
        if path.is_absolute() && path.exists() {
            Ok(path)
        } else {
            Err(format!(
                "{name} not found (install libc6-dev and libseccomp-dev)"
            ))
        }
    };
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for name in ARCHIVES {
        let target = find(name)?;
        std::os::unix::fs::symlink(&target, dir.join(name))
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))?;
    }
    let script = format!(
        "GROUP ( {} {} )\n",
        find("libgcc_eh.a")?.display(),
        find("libgcc.a")?.display()
    );
    std::fs::write(dir.join("libgcc_s.a"), script).map_err(|e| format!("libgcc_s.a: {e}"))?;
    Ok(dir.to_path_buf())
}
