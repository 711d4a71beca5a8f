//! Fuzz image reference parsing (`name[:tag][@digest]`, as kubelet and users give it).
//!
//! An accepted reference must print back to a string that parses to the same
//! reference, and its parts must be usable as they are used: the repository and
//! object go into registry URL paths, the domain picks a certs.d directory.

#![no_main]

use berth_snapshotter::remote::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(r) = Reference::parse(s) else {
        return;
    };
    let printed = r.to_string();
    let again = Reference::parse(&printed)
        .unwrap_or_else(|e| panic!("{s:?} parsed, but its form {printed:?} does not: {e}"));
    assert_eq!(again, r, "{s:?} -> {printed:?} does not round-trip");
    assert!(!r.domain.is_empty() && !r.repository.is_empty());
    // The domain names a certs.d directory and the repository a URL path: neither may
    // climb out or carry separators that change their meaning.
    assert!(!r.domain.contains('/') && !r.domain.starts_with('.'));
    for c in r.repository.split('/') {
        assert!(
            !c.is_empty() && c != "." && c != "..",
            "repository {:?}",
            r.repository
        );
    }
    let object = r.object();
    assert!(!object.is_empty() && !object.contains('/') && !object.contains('?'));
    assert!(!r.api_host().is_empty());
    assert!(r.name().starts_with(&r.domain));
});
