//! Image references as users and kubelet write them (`busybox`, `ghcr.io/o/r:tag`,
//! `host:5000/r@sha256:…`), normalized the way containerd and Docker do: no domain means
//! `docker.io`, a one-component Docker Hub name gets `library/`, no tag means `latest`.

use std::fmt;

use crate::digest::Digest;

/// Docker Hub's canonical domain.
pub const DOCKER_HUB: &str = "docker.io";
/// The host serving Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Why a reference was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// Empty input.
    #[error("empty image reference")]
    Empty,
    /// The normalized name (`domain/repository`) is longer than 255 characters.
    #[error("image reference {0:?}: name longer than 255 characters")]
    TooLong(String),
    /// A repository path component is not `[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*`.
    #[error(
        "image reference {0:?}: invalid repository name (lowercase letters, digits and separators only)"
    )]
    BadRepository(String),
    /// The domain is not a hostname with an optional port.
    #[error("image reference {0:?}: invalid registry host")]
    BadDomain(String),
    /// The tag is not `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("image reference {0:?}: invalid tag")]
    BadTag(String),
    /// The digest part is not a valid digest.
    #[error("image reference {reference:?}: {source}")]
    BadDigest {
        /// The refused reference.
        reference: String,
        /// What is wrong with the digest.
        source: crate::digest::DigestError,
    },
}

/// A normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry domain as named (`docker.io`, `127.0.0.1:5000`).
    pub domain: String,
    /// Repository path (`library/busybox`).
    pub repository: String,
    /// Tag, if any (`latest` when neither tag nor digest was given).
    pub tag: Option<String>,
    /// Digest, if given; it wins over the tag.
    pub digest: Option<Digest>,
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ ( ( [._] | __ | -+ ) [a-z0-9]+ )*
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit())
}

fn valid_domain(d: &str) -> bool {
    if let Some(rest) = d.strip_prefix('[') {
        // [ipv6] or [ipv6]:port
        let Some((h, after)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(valid_port);
        return port_ok && !h.is_empty() && h.bytes().all(|c| c.is_ascii_hexdigit() || c == b':');
    }
    let host = match d.rsplit_once(':') {
        Some((h, p)) if valid_port(p) => h,
        Some(_) => return false,
        None => d,
    };
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

impl Reference {
    /// Parses and normalizes `s`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(
                    d.parse::<Digest>()
                        .map_err(|source| ReferenceError::BadDigest {
                            reference: s.to_owned(),
                            source,
                        })?,
                ),
            ),
            None => (s, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(ReferenceError::BadTag(s.to_owned()));
        }
        let (domain, mut repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let domain = if domain == "index.docker.io" {
            DOCKER_HUB.to_owned()
        } else {
            domain
        };
        if !valid_domain(&domain) {
            return Err(ReferenceError::BadDomain(s.to_owned()));
        }
        if repository.is_empty() || !repository.split('/').all(valid_component) {
            return Err(ReferenceError::BadRepository(s.to_owned()));
        }
        if domain == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        // The limit applies to the normalized name, as in distribution's reference
        // package: `docker.io/library/` counts, so every accepted reference prints to a
        // string that parses again.
        if domain.len() + 1 + repository.len() > 255 {
            return Err(ReferenceError::TooLong(s.chars().take(300).collect()));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            domain,
            repository,
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest if there is one, else the tag.
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// `domain/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.repository)
    }

    /// The host whose API serves this domain (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.domain == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.domain
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e9817a0cec28bcb73571fbfc43e1d4aa17b874039fecfa49b5830d626ecb05a6";

    #[test]
    fn normalizes() {
        let cases: &[(&str, &str)] = &[
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("user/repo", "docker.io/user/repo:latest"),
            ("index.docker.io/library/x:y", "docker.io/library/x:y"),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
            ("localhost/a/b", "localhost/a/b:latest"),
            (
                "127.0.0.1:5000/berth/busybox",
                "127.0.0.1:5000/berth/busybox:latest",
            ),
            ("host:5000/r:t", "host:5000/r:t"),
            ("[::1]:5000/r", "[::1]:5000/r:latest"),
            ("a.b/c__d/e-f.g_h", "a.b/c__d/e-f.g_h:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(
                Reference::parse(input).unwrap().to_string(),
                *want,
                "{input}"
            );
        }
        let r = Reference::parse(&format!("ghcr.io/o/r@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.object(), D);
        let r = Reference::parse(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1@{D}"));
        assert_eq!(r.object(), D);
        assert_eq!(r.api_host(), DOCKER_HUB_API);
        assert_eq!(r.name(), "docker.io/library/busybox");
    }

    #[test]
    fn refuses_bad_input() {
        let cases: &[&str] = &[
            "",
            "UPPER",
            "a//b",
            "a/-b",
            "a:",
            "a:-tag",
            "a:tag with space",
            "a@sha256:abc",
            "a@md5:0123",
            "host:port/x",
            "-bad.host/x",
            "a/b/",
            "a...b",
            "x/.hidden",
            "a/b:t:u",
        ];
        for c in cases {
            assert!(Reference::parse(c).is_err(), "{c:?} should be refused");
        }
        assert!(Reference::parse(&"a".repeat(300)).is_err());
    }

    /// Found by the `reference` fuzz target: a short name accepted, whose normalized form
    /// (`docker.io/library/` added) was over the limit and refused when parsed again.
    #[test]
    fn length_limit_applies_to_the_normalized_name() {
        let cases: &[(String, bool)] = &[
            // 18 + 237 = 255: the longest Docker Hub short name
            ("a".repeat(237), true),
            ("a".repeat(238), false),
            (format!("u/{}", "a".repeat(243)), true),
            (format!("u/{}", "a".repeat(244)), false),
            (format!("r.io/{}", "a".repeat(250)), true),
            (format!("r.io/{}", "a".repeat(251)), false),
            // index.docker.io is normalized to docker.io: the shorter form counts
            (format!("index.docker.io/u/{}", "a".repeat(243)), true),
        ];
        for (input, ok) in cases {
            let r = Reference::parse(input);
            assert_eq!(r.is_ok(), *ok, "{input}: {r:?}");
            if let Ok(r) = r {
                let again = Reference::parse(&r.to_string());
                assert_eq!(again.as_ref(), Ok(&r), "{input} does not round-trip");
            }
        }
    }
}
