//! Fuzz the containerd `certs.d/<host>/hosts.toml` parser, then use what it accepted as
//! the pull does: build request URLs and request headers from each endpoint.

#![no_main]

use std::path::Path;

use berth_snapshotter::remote::hosts;
use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderName, HeaderValue};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let default_server = match sel % 3 {
        0 => None,
        1 => Some("registry.example:5000"),
        _ => Some("127.0.0.1:5000"),
    };
    let Ok(endpoints) = hosts::parse_hosts_toml(
        text,
        Path::new("/etc/berth/certs.d/h/hosts.toml"),
        default_server,
    ) else {
        return;
    };
    for e in &endpoints {
        assert!(
            matches!(e.base.scheme(), "http" | "https"),
            "endpoint scheme {:?} accepted",
            e.base.scheme()
        );
        for ns in [None, Some("docker.io")] {
            if let Ok(u) = e.url("/library/busybox/manifests/latest", ns) {
                assert_eq!(u.scheme(), e.base.scheme());
                assert_eq!(u.host_str(), e.base.host_str());
            }
        }
        // The client turns these into request headers: whatever the parser accepts
        // must be a valid header, or the error only shows at pull time.
        for (name, values) in &e.headers {
            assert!(
                HeaderName::from_bytes(name.as_bytes()).is_ok(),
                "header name {name:?}"
            );
            for v in values {
                assert!(
                    HeaderValue::from_str(v).is_ok(),
                    "header {name}: value {v:?}"
                );
            }
        }
    }
});
