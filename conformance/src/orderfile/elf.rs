//! The function symbols of an ELF64 little-endian executable (`.symtab`), for mapping
//! executed addresses to the names a linker's symbol ordering file takes.

/// Errors reading the symbol table.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Not an ELF64 little-endian file.
    #[error("not an ELF64 little-endian file")]
    NotElf64,
    /// A header or table points outside the file.
    #[error("truncated or corrupt ELF: {0}")]
    Corrupt(&'static str),
    /// The file has no `.symtab` (it was stripped).
    #[error("no symbol table: build berth unstripped (CARGO_PROFILE_RELEASE_STRIP=false)")]
    Stripped,
}

/// One function symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Virtual address relative to the image's load base (for a PIE).
    pub addr: u64,
    /// Size in bytes (never 0).
    pub size: u64,
    /// The symbol name as the linker sees it (mangled).
    pub name: String,
}

const SHT_SYMTAB: u32 = 2;
const STT_FUNC: u8 = 2;
const SHN_UNDEF: u16 = 0;

fn slice<'a>(b: &'a [u8], off: u64, len: u64, what: &'static str) -> Result<&'a [u8], ElfError> {
    let off = usize::try_from(off).map_err(|_| ElfError::Corrupt(what))?;
    let len = usize::try_from(len).map_err(|_| ElfError::Corrupt(what))?;
    b.get(off..off.checked_add(len).ok_or(ElfError::Corrupt(what))?)
        .ok_or(ElfError::Corrupt(what))
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes, bounds checked"))
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes, bounds checked"))
}

/// Every defined, sized function symbol of `elf`, sorted by address.
pub fn functions(elf: &[u8]) -> Result<Vec<Function>, ElfError> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err(ElfError::NotElf64);
    }
    let shoff = u64_at(elf, 0x28);
    let shentsize = u64::from(u16_at(elf, 0x3a));
    let shnum = u64::from(u16_at(elf, 0x3c));
    if shentsize < 64 {
        return Err(ElfError::Corrupt("section header size"));
    }
    let shdrs = slice(elf, shoff, shentsize * shnum, "section headers")?;
    let shdr = |i: u64| -> Result<&[u8], ElfError> {
        let s = (i * shentsize) as usize;
        shdrs
            .get(s..s + 64)
            .ok_or(ElfError::Corrupt("section index"))
    };
    let mut out = Vec::new();
    let mut found = false;
    for i in 0..shnum {
        let h = shdr(i)?;
        if u32_at(h, 4) != SHT_SYMTAB {
            continue;
        }
        found = true;
        let syms = slice(elf, u64_at(h, 0x18), u64_at(h, 0x20), "symbol table")?;
        let strh = shdr(u64::from(u32_at(h, 0x28)))?;
        let strs = slice(elf, u64_at(strh, 0x18), u64_at(strh, 0x20), "string table")?;
        for s in syms.chunks_exact(24) {
            let (name_off, info, shndx) = (u32_at(s, 0) as usize, s[4], u16_at(s, 6));
            let (addr, size) = (u64_at(s, 8), u64_at(s, 16));
            if info & 0xf != STT_FUNC || shndx == SHN_UNDEF || size == 0 {
                continue;
            }
            let tail = strs
                .get(name_off..)
                .ok_or(ElfError::Corrupt("symbol name"))?;
            let end = tail
                .iter()
                .position(|&c| c == 0)
                .ok_or(ElfError::Corrupt("unterminated symbol name"))?;
            let name = String::from_utf8_lossy(&tail[..end]).into_owned();
            if !name.is_empty() {
                out.push(Function { addr, size, name });
            }
        }
    }
    if !found {
        return Err(ElfError::Stripped);
    }
    out.sort_by_key(|f| (f.addr, f.size));
    out.dedup_by(|a, b| a.addr == b.addr && a.name == b.name);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn a_function_this_test_looks_for() -> u32 {
        std::hint::black_box(7)
    }

    #[test]
    fn finds_this_test_binarys_own_functions() {
        assert_eq!(a_function_this_test_looks_for(), 7);
        let me = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        let f = functions(&me).expect("symbols");
        assert!(
            f.iter()
                .any(|f| f.name.contains("a_function_this_test_looks_for")),
            "own function not among {} symbols",
            f.len()
        );
        assert!(f.windows(2).all(|w| w[0].addr <= w[1].addr), "sorted");
        assert!(f.iter().all(|f| f.size > 0));
    }

    #[test]
    fn hostile_input_is_an_error() {
        assert!(matches!(functions(b"not elf"), Err(ElfError::NotElf64)));
        let mut hdr = vec![0u8; 64];
        hdr[..6].copy_from_slice(b"\x7fELF\x02\x01");
        hdr[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        hdr[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        hdr[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        assert!(matches!(functions(&hdr), Err(ElfError::Corrupt(_))));
        hdr[0x3c..0x3e].copy_from_slice(&0u16.to_le_bytes());
        hdr[0x28..0x30].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(functions(&hdr), Err(ElfError::Stripped)));
    }
}
