//! Registry host configuration in containerd's `certs.d` format
//! (containerd `docs/hosts.md`): `<config_dir>/<host>/hosts.toml`, falling back to
//! `<config_dir>/_default/hosts.toml`, with a `server` and ordered `[host."URL"]` mirrors.
//!
//! The result is the ordered list of [`Endpoint`]s to try: every `[host]` entry in file
//! order, then `server`. Without a file the endpoint is the registry itself over HTTPS —
//! or plain HTTP when the host is loopback. Plain HTTP is used only where a file says
//! `http://` or the host is loopback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reqwest::Url;

/// The largest hosts.toml read.
const MAX_HOSTS_FILE: u64 = 1 << 20;

/// Why a hosts.toml was refused.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    /// The file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than 1 MiB.
    #[error("{0}: larger than 1 MiB")]
    TooLarge(PathBuf),
    /// Not valid TOML.
    #[error("{path}: not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key has the wrong type or value.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending key (`host."https://m".capabilities`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A setting berth does not implement.
    #[error("{path}: {key}: not implemented in berth")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
}

/// What an endpoint may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Fetch blobs and manifests by digest.
    pub pull: bool,
    /// Resolve a tag to a digest.
    pub resolve: bool,
    /// Push.
    pub push: bool,
}

impl Capabilities {
    /// All capabilities (the default for `server`).
    pub const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };
}

/// One place to send registry API requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Base URL of the API, ending in `/v2` unless `override_path` said otherwise
    /// (`https://mirror.example/v2`).
    pub base: Url,
    /// What this endpoint may be used for.
    pub capabilities: Capabilities,
    /// Do not verify the server's TLS certificate.
    pub skip_verify: bool,
    /// Extra CA certificate files (PEM) to trust.
    pub ca: Vec<PathBuf>,
    /// Extra request headers.
    pub headers: BTreeMap<String, Vec<String>>,
}

impl Endpoint {
    /// The URL of `path` (`/library/busybox/manifests/latest`) under this endpoint, with
    /// `ns=<domain>` added for mirrors as containerd does.
    pub fn url(&self, path: &str, namespace: Option<&str>) -> Result<Url, url_error::UrlError> {
        let mut s = self.base.as_str().trim_end_matches('/').to_owned();
        s.push_str(path);
        let mut u = Url::parse(&s).map_err(|e| url_error::UrlError(e.to_string()))?;
        if let Some(ns) = namespace {
            u.query_pairs_mut().append_pair("ns", ns);
        }
        Ok(u)
    }
}

/// The URL error type, kept apart so callers need not name the url crate.
pub mod url_error {
    /// A URL could not be built.
    #[derive(Debug, thiserror::Error)]
    #[error("invalid URL: {0}")]
    pub struct UrlError(pub String);
}

/// Whether `host` (a `host[:port]` authority) is a loopback address.
pub fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The endpoint used when no hosts.toml configures `host`.
pub fn default_endpoint(host: &str) -> Result<Endpoint, url_error::UrlError> {
    let scheme = if is_loopback(host) { "http" } else { "https" };
    let base = Url::parse(&format!("{scheme}://{host}/v2"))
        .map_err(|e| url_error::UrlError(e.to_string()))?;
    Ok(Endpoint {
        base,
        capabilities: Capabilities::ALL,
        skip_verify: false,
        ca: Vec::new(),
        headers: BTreeMap::new(),
    })
}

/// The endpoints for `domain` (`docker.io`, `host:5000`) from `config_dir`, or the default
/// endpoint (`api_host` over HTTPS, HTTP on loopback) when no file applies.
pub fn endpoints_for(
    config_dir: Option<&Path>,
    domain: &str,
    api_host: &str,
) -> Result<Vec<Endpoint>, HostsError> {
    if let Some(dir) = config_dir {
        for name in [domain, "_default"] {
            // The directory name comes from a validated reference domain; refuse anything
            // that could leave config_dir all the same.
            if name.contains('/') || name.starts_with('.') {
                continue;
            }
            let path = dir.join(name).join("hosts.toml");
            match std::fs::metadata(&path) {
                Ok(m) => {
                    if m.len() > MAX_HOSTS_FILE {
                        return Err(HostsError::TooLarge(path));
                    }
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| HostsError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    return parse_hosts_toml(&text, &path, Some(api_host));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(HostsError::Read { path, source }),
            }
        }
    }
    let path = PathBuf::from(format!("<default for {domain}>"));
    default_endpoint(api_host)
        .map(|e| vec![e])
        .map_err(|e| HostsError::Invalid {
            path,
            key: "server".into(),
            message: e.to_string(),
        })
}

/// Parses one hosts.toml. `default_server` is the host used when the file has no
/// `server` key (containerd then uses the registry itself).
pub fn parse_hosts_toml(
    text: &str,
    path: &Path,
    default_server: Option<&str>,
) -> Result<Vec<Endpoint>, HostsError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| HostsError::Syntax {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
    let inv = |key: &str, message: &str| HostsError::Invalid {
        path: path.to_owned(),
        key: key.to_owned(),
        message: message.to_owned(),
    };
    let base_dir = path.parent().unwrap_or(Path::new("/"));
    let mut out = Vec::new();
    if let Some(hosts) = table.get("host") {
        let hosts = hosts
            .as_table()
            .ok_or_else(|| inv("host", "must be a table of [host.\"URL\"] sections"))?;
        for (url, v) in hosts {
            let key = format!("host.{url:?}");
            let t = v.as_table().ok_or_else(|| inv(&key, "must be a table"))?;
            out.push(endpoint_from(url, t, &key, path, base_dir, false)?);
        }
    }
    match table.get("server") {
        Some(s) => {
            let url = s
                .as_str()
                .ok_or_else(|| inv("server", "must be a string"))?;
            out.push(endpoint_from(url, &table, "server", path, base_dir, true)?);
        }
        None => {
            if let Some(h) = default_server {
                let mut e = default_endpoint(h).map_err(|e| inv("server", &e.to_string()))?;
                apply_settings(&mut e, &table, "", path, base_dir, true)?;
                out.push(e);
            }
        }
    }
    if out.is_empty() {
        return Err(inv("server", "no server and no [host] entries"));
    }
    Ok(out)
}

fn endpoint_from(
    url: &str,
    t: &toml::Table,
    key: &str,
    path: &Path,
    base_dir: &Path,
    is_server: bool,
) -> Result<Endpoint, HostsError> {
    let inv = |message: String| HostsError::Invalid {
        path: path.to_owned(),
        key: key.to_owned(),
        message,
    };
    // A URL without a scheme is https, as in containerd.
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("https://{url}")
    };
    let mut u = Url::parse(&full).map_err(|e| inv(format!("invalid URL {url:?}: {e}")))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(inv(format!("URL {url:?}: scheme must be http or https")));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(inv(format!("URL {url:?} has no host")));
    }
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return Err(inv(format!(
            "URL {url:?}: no query, fragment or user info allowed"
        )));
    }
    let override_path = match t.get("override_path") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| inv("override_path must be a boolean".into()))?,
    };
    let p = u.path().trim_end_matches('/').to_owned();
    let p = if override_path || p.ends_with("/v2") {
        p
    } else {
        format!("{p}/v2")
    };
    u.set_path(&p);
    let mut e = Endpoint {
        base: u,
        capabilities: Capabilities::ALL,
        skip_verify: false,
        ca: Vec::new(),
        headers: BTreeMap::new(),
    };
    let prefix = if is_server {
        String::new()
    } else {
        format!("{key}.")
    };
    apply_settings(&mut e, t, &prefix, path, base_dir, is_server)?;
    Ok(e)
}

fn string_list(v: &toml::Value) -> Option<Vec<String>> {
    match v {
        toml::Value::String(s) => Some(vec![s.clone()]),
        toml::Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

fn apply_settings(
    e: &mut Endpoint,
    t: &toml::Table,
    prefix: &str,
    path: &Path,
    base_dir: &Path,
    is_server: bool,
) -> Result<(), HostsError> {
    let inv = |k: &str, message: &str| HostsError::Invalid {
        path: path.to_owned(),
        key: format!("{prefix}{k}"),
        message: message.to_owned(),
    };
    if let Some(v) = t.get("capabilities") {
        let list = string_list(v)
            .filter(|_| v.is_array())
            .ok_or_else(|| inv("capabilities", "must be an array of strings"))?;
        let mut c = Capabilities {
            pull: false,
            resolve: false,
            push: false,
        };
        for s in &list {
            match s.as_str() {
                "pull" => c.pull = true,
                "resolve" => c.resolve = true,
                "push" => c.push = true,
                other => {
                    return Err(inv(
                        "capabilities",
                        &format!("unknown capability {other:?} (pull, resolve, push)"),
                    ));
                }
            }
        }
        e.capabilities = c;
    } else if !is_server {
        // containerd's default for a [host] entry: pull and resolve.
        e.capabilities = Capabilities {
            pull: true,
            resolve: true,
            push: false,
        };
    }
    if let Some(v) = t.get("skip_verify") {
        e.skip_verify = v
            .as_bool()
            .ok_or_else(|| inv("skip_verify", "must be a boolean"))?;
    }
    if let Some(v) = t.get("ca") {
        let list =
            string_list(v).ok_or_else(|| inv("ca", "must be a string or array of strings"))?;
        for c in list {
            if c.is_empty() {
                return Err(inv("ca", "empty path"));
            }
            let p = PathBuf::from(&c);
            e.ca.push(if p.is_absolute() { p } else { base_dir.join(p) });
        }
    }
    if let Some(v) = t.get("header") {
        let h = v
            .as_table()
            .ok_or_else(|| inv("header", "must be a table"))?;
        for (k, v) in h {
            let vals = string_list(v).ok_or_else(|| {
                inv(
                    &format!("header.{k}"),
                    "must be a string or array of strings",
                )
            })?;
            let name_ok = !k.is_empty()
                && k.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
            // Exactly what the client will send: a value it would refuse (a control
            // character, DEL) is refused here, naming the key, not at pull time.
            if !name_ok
                || vals
                    .iter()
                    .any(|x| reqwest::header::HeaderValue::from_str(x).is_err())
            {
                return Err(inv(&format!("header.{k}"), "invalid header name or value"));
            }
            e.headers.insert(k.clone(), vals);
        }
    }
    if t.contains_key("client") {
        return Err(HostsError::Unsupported {
            path: path.to_owned(),
            key: format!("{prefix}client (TLS client certificates)"),
        });
    }
    if t.contains_key("dial_timeout") {
        let ok = t.get("dial_timeout").is_some_and(toml::Value::is_str);
        if !ok {
            return Err(inv("dial_timeout", "must be a string"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Endpoint>, HostsError> {
        parse_hosts_toml(
            text,
            Path::new("/etc/berth/certs.d/docker.io/hosts.toml"),
            Some("registry-1.docker.io"),
        )
    }

    #[test]
    fn mirrors_in_file_order_then_server() {
        let eps = parse(
            r#"
server = "https://registry-1.docker.io"

[host."https://mirror-b.example"]
  capabilities = ["pull", "resolve"]
  ca = "mirror.crt"

[host."http://10.0.0.5:5000"]
  capabilities = ["pull"]
  skip_verify = true

[host."https://proxy.example/registry/v2/x"]
  override_path = true
  [host."https://proxy.example/registry/v2/x".header]
    x-custom = "1"
"#,
        )
        .unwrap();
        let bases: Vec<&str> = eps.iter().map(|e| e.base.as_str()).collect();
        assert_eq!(
            bases,
            [
                "https://mirror-b.example/v2",
                "http://10.0.0.5:5000/v2",
                "https://proxy.example/registry/v2/x",
                "https://registry-1.docker.io/v2",
            ]
        );
        assert_eq!(
            eps[0].ca,
            [PathBuf::from("/etc/berth/certs.d/docker.io/mirror.crt")]
        );
        assert!(eps[0].capabilities.resolve && !eps[0].capabilities.push);
        assert!(eps[1].skip_verify);
        assert!(eps[1].capabilities.pull && !eps[1].capabilities.resolve);
        assert_eq!(eps[2].headers["x-custom"], ["1"]);
        assert!(!eps[2].capabilities.push);
        assert_eq!(eps[3].capabilities, Capabilities::ALL);
    }

    #[test]
    fn defaults_without_server() {
        let eps = parse("[host.\"mirror.local\"]\n").unwrap();
        assert_eq!(eps[0].base.as_str(), "https://mirror.local/v2");
        assert_eq!(eps[1].base.as_str(), "https://registry-1.docker.io/v2");
        let eps = parse("skip_verify = true\nca = [\"/a.pem\", \"/b.pem\"]\n").unwrap();
        assert_eq!(eps.len(), 1);
        assert!(eps[0].skip_verify);
        assert_eq!(eps[0].ca.len(), 2);
    }

    #[test]
    fn malformed_files_are_refused() {
        let cases: &[(&str, &str)] = &[
            ("server = ", "TOML"),
            ("server = 5", "server"),
            ("server = \"ftp://x\"", "scheme"),
            ("server = \"https://\"", "server"),
            ("server = \"https://u:p@x\"", "user info"),
            ("capabilities = [\"fly\"]", "unknown capability"),
            ("capabilities = \"pull\"", "array"),
            ("skip_verify = \"yes\"", "boolean"),
            ("ca = 3", "ca"),
            ("host = 3", "host"),
            ("[host.\"https://m\"]\noverride_path = 1", "override_path"),
            ("[header]\n\"bad name\" = \"x\"", "header"),
            ("[header]\nx = \"a\\nb\"", "header"),
            // control characters and DEL the HTTP client refuses (the `hosts_toml` fuzz
            // target's header check)
            ("[header]\nx = \"a\\u0001b\"", "header"),
            ("[header]\nx = \"a\\u007fb\"", "header"),
            ("[header]\nx = [\"ok\", \"a\\tb\\u001b\"]", "header"),
            (
                "[host.\"https://m\"]\nclient = \"/c.pem\"",
                "not implemented",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text)
                .err()
                .unwrap_or_else(|| panic!("{text:?} accepted"));
            let msg = err.to_string();
            assert!(msg.contains(want), "{text:?}: {msg}");
        }
    }

    #[test]
    fn loopback_is_plain_http_by_default() {
        for (h, scheme) in [
            ("127.0.0.1:5000", "http"),
            ("localhost:5000", "http"),
            ("[::1]:5000", "http"),
            ("registry.k8s.io", "https"),
            ("10.0.0.1:5000", "https"),
        ] {
            assert_eq!(default_endpoint(h).unwrap().base.scheme(), scheme, "{h}");
        }
    }

    #[test]
    fn reads_certs_d_layout_with_default_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let none = endpoints_for(Some(dir.path()), "ghcr.io", "ghcr.io").unwrap();
        assert_eq!(none[0].base.as_str(), "https://ghcr.io/v2");
        std::fs::create_dir_all(dir.path().join("_default")).unwrap();
        std::fs::write(
            dir.path().join("_default/hosts.toml"),
            "[host.\"https://all.mirror\"]\n",
        )
        .unwrap();
        let d = endpoints_for(Some(dir.path()), "ghcr.io", "ghcr.io").unwrap();
        assert_eq!(d[0].base.as_str(), "https://all.mirror/v2");
        assert_eq!(d[1].base.as_str(), "https://ghcr.io/v2");
        std::fs::create_dir_all(dir.path().join("ghcr.io")).unwrap();
        std::fs::write(
            dir.path().join("ghcr.io/hosts.toml"),
            "server = \"https://x.example\"",
        )
        .unwrap();
        let d = endpoints_for(Some(dir.path()), "ghcr.io", "ghcr.io").unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].base.as_str(), "https://x.example/v2");
        std::fs::write(dir.path().join("ghcr.io/hosts.toml"), "server = [").unwrap();
        assert!(endpoints_for(Some(dir.path()), "ghcr.io", "ghcr.io").is_err());
    }
}
