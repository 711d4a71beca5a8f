//! Registry authentication: `WWW-Authenticate` challenges (RFC 7235) and the credentials
//! kubelet passes per pull (CRI `AuthConfig`: username/password, identity token, registry
//! token), turned into an `Authorization` header by the Docker token flow
//! (distribution `docs/spec/auth/token.md`, OAuth2 refresh-token variant `oauth.md`).

use std::collections::BTreeMap;

/// Credentials for one pull.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// Anonymous.
    #[default]
    Anonymous,
    /// Username and password (basic, or exchanged for a bearer token).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the realm.
    IdentityToken(String),
    /// A bearer token sent as is (`registrytoken`).
    RegistryToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(***)"),
            Credentials::RegistryToken(_) => f.write_str("RegistryToken(***)"),
        }
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased scheme (`bearer`, `basic`).
    pub scheme: String,
    /// Parameters with lowercased names.
    pub params: BTreeMap<String, String>,
}

/// Why a challenge header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed WWW-Authenticate header: {0}")]
pub struct ChallengeError(pub String);

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Parses a `WWW-Authenticate` value into its challenges.
pub fn parse_challenges(header: &str) -> Result<Vec<Challenge>, ChallengeError> {
    let b = header.as_bytes();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> &str {
        let s = *i;
        while *i < b.len() && is_tchar(b[*i]) {
            *i += 1;
        }
        &header[s..*i]
    };
    loop {
        skip_ws(&mut i);
        while i < b.len() && b[i] == b',' {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        let t = token(&mut i);
        if t.is_empty() {
            return Err(ChallengeError(format!("unexpected character at {start}")));
        }
        skip_ws(&mut i);
        if i < b.len() && b[i] == b'=' {
            // A parameter of the current challenge.
            let Some(cur) = out.last_mut() else {
                return Err(ChallengeError("parameter before any scheme".into()));
            };
            i += 1;
            skip_ws(&mut i);
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = Vec::new();
                loop {
                    if i >= b.len() {
                        return Err(ChallengeError("unterminated quoted string".into()));
                    }
                    match b[i] {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' if i + 1 < b.len() => {
                            v.push(b[i + 1]);
                            i += 2;
                        }
                        c => {
                            v.push(c);
                            i += 1;
                        }
                    }
                }
                String::from_utf8(v).map_err(|_| ChallengeError("non-UTF-8 value".into()))?
            } else {
                let v = token(&mut i);
                // token68 may end in '='
                let s = i;
                while i < b.len() && b[i] == b'=' {
                    i += 1;
                }
                format!("{v}{}", &header[s..i])
            };
            cur.params.insert(t.to_ascii_lowercase(), value);
            skip_ws(&mut i);
            if i < b.len() && b[i] != b',' {
                return Err(ChallengeError(format!("expected ',' at {i}")));
            }
        } else {
            out.push(Challenge {
                scheme: t.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    Ok(out)
}

/// How to authorize requests to one registry after its challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthPlan {
    /// Send these credentials as HTTP basic auth.
    Basic(String),
    /// Fetch a bearer token from `realm` for `service` and `scope`.
    Token {
        /// Token endpoint URL.
        realm: String,
        /// The `service` parameter.
        service: Option<String>,
        /// The scope, `repository:NAME:pull`.
        scope: String,
    },
    /// Use this bearer token as given.
    Bearer(String),
}

/// Why no authorization is possible.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The registry asks for basic auth and there are no credentials.
    #[error("registry requires credentials (basic auth) and none were given")]
    NeedCredentials,
    /// No challenge berth understands.
    #[error("registry answered 401 without a usable challenge ({0})")]
    NoUsableChallenge(String),
    /// A bearer challenge without realm, or a realm that is not http(s).
    #[error("bearer challenge with missing or invalid realm {0:?}")]
    BadRealm(String),
}

/// `Basic` header value for `user:password`.
pub fn basic_header(username: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

/// Decides how to answer `challenges` for pulling `repository` with `creds`.
pub fn plan(
    challenges: &[Challenge],
    creds: &Credentials,
    repository: &str,
) -> Result<AuthPlan, AuthError> {
    if let Credentials::RegistryToken(t) = creds {
        return Ok(AuthPlan::Bearer(t.clone()));
    }
    if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
        let realm = c.params.get("realm").cloned().unwrap_or_default();
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(AuthError::BadRealm(realm));
        }
        let scope = c
            .params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{repository}:pull"));
        return Ok(AuthPlan::Token {
            realm,
            service: c.params.get("service").cloned(),
            scope,
        });
    }
    if challenges.iter().any(|c| c.scheme == "basic") {
        return match creds {
            Credentials::Basic { username, password } => {
                Ok(AuthPlan::Basic(basic_header(username, password)))
            }
            _ => Err(AuthError::NeedCredentials),
        };
    }
    let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
    Err(AuthError::NoUsableChallenge(schemes.join(",")))
}

/// Extracts the token from a token endpoint's JSON answer (`token` or `access_token`).
pub fn token_from_response(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let t = v
        .get("token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .or_else(|| v.get("access_token").and_then(|t| t.as_str()))?;
    let ok = !t.is_empty() && t.len() < 64 * 1024 && t.bytes().all(|c| c.is_ascii_graphic());
    ok.then(|| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.docker.io/token");
        assert_eq!(c[0].params["scope"], "repository:library/busybox:pull");

        let c = parse_challenges(
            r#"Basic realm="Registry Realm", Bearer realm="https://x/t", service=x"#,
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].params["realm"], "Registry Realm");
        assert_eq!(c[1].params["service"], "x");

        let c = parse_challenges(r#"bearer realm="a\"b""#).unwrap();
        assert_eq!(c[0].params["realm"], "a\"b");
        assert!(parse_challenges("").unwrap().is_empty());
        for bad in [
            r#"Bearer realm="open"#,
            "realm=x",
            "Bearer realm=\"x\" junk",
            "@@@",
        ] {
            assert!(parse_challenges(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plans_auth() {
        let bearer =
            parse_challenges(r#"Bearer realm="https://auth/token",service="reg""#).unwrap();
        let basic = parse_challenges(r#"Basic realm="r""#).unwrap();
        let creds = Credentials::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        assert_eq!(
            plan(&bearer, &Credentials::Anonymous, "library/busybox").unwrap(),
            AuthPlan::Token {
                realm: "https://auth/token".into(),
                service: Some("reg".into()),
                scope: "repository:library/busybox:pull".into()
            }
        );
        assert_eq!(
            plan(&basic, &creds, "r").unwrap(),
            AuthPlan::Basic("Basic dTpw".into())
        );
        assert_eq!(
            plan(&basic, &Credentials::Anonymous, "r"),
            Err(AuthError::NeedCredentials)
        );
        assert_eq!(
            plan(&basic, &Credentials::RegistryToken("t".into()), "r").unwrap(),
            AuthPlan::Bearer("t".into())
        );
        let bad = parse_challenges(r#"Bearer realm="file:///etc/passwd""#).unwrap();
        assert!(matches!(
            plan(&bad, &creds, "r"),
            Err(AuthError::BadRealm(_))
        ));
        let neg = parse_challenges("Negotiate").unwrap();
        assert!(matches!(
            plan(&neg, &creds, "r"),
            Err(AuthError::NoUsableChallenge(_))
        ));
        assert_eq!(format!("{creds:?}"), "Basic(u, ***)");
    }

    #[test]
    fn token_responses() {
        assert_eq!(
            token_from_response(br#"{"token":"abc"}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(
            token_from_response(br#"{"access_token":"xyz"}"#).as_deref(),
            Some("xyz")
        );
        assert_eq!(
            token_from_response(br#"{"token":"","access_token":"x"}"#).as_deref(),
            Some("x")
        );
        assert_eq!(token_from_response(br#"{"token":"a b"}"#), None);
        assert_eq!(token_from_response(b"garbage"), None);
    }
}
