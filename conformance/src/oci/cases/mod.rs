//! The suite's cases, grouped as the runtime-spec groups the fields.

use anyhow::bail;

use super::ctx::{Ctx, Need, Skip};

mod badinput;
mod cgroups;
mod hooks;
mod lifecycle;
mod mounts;
mod namespaces;
mod process;
mod security;
mod terminal;

/// One case: a name, an optional feature the runtime may declare unsupported, and
/// the check itself.
pub struct Case {
    /// Printed on the case's line; `--filter` matches it.
    pub name: &'static str,
    /// Skipped when the runtime's `features` does not list this.
    pub needs: Option<Need>,
    /// The check; an error is the failure reason.
    pub run: fn(&mut Ctx) -> anyhow::Result<()>,
}

/// A case needing nothing special.
const fn case(name: &'static str, run: fn(&mut Ctx) -> anyhow::Result<()>) -> Case {
    Case {
        name,
        needs: None,
        run,
    }
}

/// Every case, in the order they run.
pub fn all() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(process::cases());
    v.extend(namespaces::cases());
    v.extend(mounts::cases());
    v.extend(security::cases());
    v.extend(terminal::cases());
    v.extend(cgroups::cases());
    v.extend(hooks::cases());
    v.extend(lifecycle::cases());
    v.extend(badinput::cases());
    v
}

/// Fails with a message naming `what` unless `got == want`.
pub fn expect_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: T,
    want: T,
) -> anyhow::Result<()> {
    if got != want {
        bail!("{what}: got {got:?}, want {want:?}");
    }
    Ok(())
}

/// Fails unless `hay` contains `needle`.
pub fn expect_contains(what: &str, hay: &str, needle: &str) -> anyhow::Result<()> {
    if !hay.contains(needle) {
        bail!("{what}: {needle:?} not in {:?}", super::one_line(hay));
    }
    Ok(())
}

/// Returns the `Skip` error.
#[allow(dead_code)]
pub fn skip(reason: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Skip(reason.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique_and_plain() {
        let all = all();
        let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
        assert!(names.len() > 40, "only {} cases", names.len());
        for n in &names {
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "case name {n:?}"
            );
        }
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate case names");
    }

    #[test]
    fn expectations_fail_on_mismatch() {
        assert!(expect_eq("x", 1, 1).is_ok());
        let e = expect_eq("uid", 0, 1000).expect_err("mismatch must fail");
        assert_eq!(e.to_string(), "uid: got 0, want 1000");
        assert!(expect_contains("out", "a b c", "b").is_ok());
        assert!(expect_contains("out", "a b c", "d").is_err());
    }
}
