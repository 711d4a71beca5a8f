//! `berth` is a static PIE (see build.rs): no program interpreter, no shared library,
//! and position independent so it keeps ASLR. A missing static archive makes build.rs
//! fall back to a dynamic link with only a warning; this test is what catches it.

use std::path::Path;

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const ET_DYN: u16 = 3;
const DT_NEEDED: i64 = 1;

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// The facts of an ELF64 little-endian executable this test checks.
#[derive(Debug, Default)]
struct Linkage {
    pie: bool,
    interpreter: bool,
    needed: usize,
}

fn linkage(path: &Path) -> Linkage {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..4], b"\x7fELF", "{}: not ELF", path.display());
    assert_eq!((b[4], b[5]), (2, 1), "ELF64 little-endian expected");
    let mut l = Linkage {
        pie: u16_at(&b, 0x10) == ET_DYN,
        ..Default::default()
    };
    let phoff = u64_at(&b, 0x20) as usize;
    let phentsize = u16_at(&b, 0x36) as usize;
    for i in 0..u16_at(&b, 0x38) as usize {
        let ph = phoff + i * phentsize;
        match u32_at(&b, ph) {
            PT_INTERP => l.interpreter = true,
            PT_DYNAMIC => {
                let (off, size) = (u64_at(&b, ph + 8) as usize, u64_at(&b, ph + 32) as usize);
                l.needed += b[off..off + size]
                    .chunks_exact(16)
                    .filter(|d| {
                        i64::from_le_bytes(d[..8].try_into().expect("8 bytes")) == DT_NEEDED
                    })
                    .count();
            }
            _ => {}
        }
    }
    l
}

#[test]
fn berth_is_a_static_pie() {
    let l = linkage(Path::new(env!("CARGO_BIN_EXE_berth")));
    assert!(
        !l.interpreter && l.needed == 0,
        "berth is linked dynamically ({l:?}): build.rs found no static libc/libseccomp \
         archives (install libc6-dev libseccomp-dev), or BERTH_DYNAMIC=1 or \
         LIBSECCOMP_LIB_PATH was set (see the cargo warning)"
    );
    assert!(l.pie, "berth must stay position independent (ASLR)");
}

#[test]
fn the_check_sees_a_dynamic_binary() {
    // The test binary itself is an ordinary dynamic PIE.
    let me = std::env::current_exe().expect("current exe");
    let l = linkage(&me);
    assert!(l.interpreter && l.needed > 0, "{l:?}");
}
