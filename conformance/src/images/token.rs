//! A small registry token server for tests (the Docker token auth flow that
//! docker-registry's `auth: token` expects), and the client side of that flow for pushing.
//!
//! `GET /token?service=S&scope=repository:NAME:pull,push` with HTTP basic credentials that
//! match `--user` answers `{"token": JWT, "access_token": JWT, "expires_in": 3600}`; the JWT
//! is ES256-signed with `--key` and carries `--cert` in its `x5c` header, so a registry
//! whose `rootcertbundle` is that certificate accepts it. Anonymous or wrong credentials get
//! 401. `POST /token` with a form `grant_type=refresh_token&refresh_token=T&scope=…`
//! answers an `access_token` when T matches `--refresh-token` (the OAuth2 flow used with
//! identity tokens). scripts/registry.sh starts it beside the auth registry.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;

/// Arguments of `berth-conformance images token-server`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (host:port).
    #[arg(long)]
    listen: String,
    /// PKCS#8 PEM P-256 private key that signs tokens.
    #[arg(long)]
    key: PathBuf,
    /// PEM certificate of that key (the registry's rootcertbundle).
    #[arg(long)]
    cert: PathBuf,
    /// `iss` claim; must match the registry's `issuer`.
    #[arg(long, default_value = "berth-test-issuer")]
    issuer: String,
    /// The only accepted credentials, user:password.
    #[arg(long)]
    user: String,
    /// The only accepted OAuth2 refresh token (`POST grant_type=refresh_token`, the
    /// flow kubelet's identity tokens use). Without it, POST is refused.
    #[arg(long)]
    refresh_token: Option<String>,
}

/// Decodes the first PEM block labelled `label`.
pub fn pem_block(text: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .with_context(|| format!("no {label} PEM block"))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .with_context(|| format!("unterminated {label} PEM block"))?
        + start;
    let b64: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).context("bad base64 in PEM")
}

/// Signs tokens.
pub struct Signer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    issuer: String,
    rng: SystemRandom,
}

impl Signer {
    /// A signer from a PKCS#8 PEM key and its PEM certificate.
    pub fn new(key_pem: &str, cert_pem: &str, issuer: &str) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = pem_block(key_pem, "PRIVATE KEY")?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|e| anyhow::anyhow!("token key is not a P-256 PKCS#8 key: {e}"))?;
        Ok(Self {
            key,
            cert_der: pem_block(cert_pem, "CERTIFICATE")?,
            issuer: issuer.to_owned(),
            rng,
        })
    }

    /// A JWT for `subject` granting `access` (`[{type, name, actions}]`) on `service`.
    pub fn token(
        &self,
        subject: &str,
        service: &str,
        access: serde_json::Value,
    ) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let header =
            json!({ "typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&self.cert_der)] });
        let claims = json!({
            "iss": self.issuer, "sub": subject, "aud": service,
            "exp": now + 3600, "nbf": now - 60, "iat": now,
            "jti": format!("{now}-{}", std::process::id()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?)
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        ))
    }
}

/// Parses `repository:NAME:a,b` scopes into the JWT `access` claim.
pub fn access_for(scopes: &[String]) -> serde_json::Value {
    let mut v = Vec::new();
    for s in scopes {
        let mut parts = s.splitn(3, ':');
        let (Some(t), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        // NAME may contain ':' only before a port, which repository names do not have.
        let (name, actions) = match parts.next() {
            Some(a) => (rest, a),
            None => continue,
        };
        let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
        v.push(json!({ "type": t, "name": name, "actions": actions }));
    }
    serde_json::Value::Array(v)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hexval = |c: u8| (c as char).to_digit(16);
                match (hexval(b[i + 1]), hexval(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the token server until killed.
pub fn serve(args: Args) -> anyhow::Result<()> {
    let key = std::fs::read_to_string(&args.key)
        .with_context(|| format!("read {}", args.key.display()))?;
    let cert = std::fs::read_to_string(&args.cert)
        .with_context(|| format!("read {}", args.cert.display()))?;
    let signer = std::sync::Arc::new(Signer::new(&key, &cert, &args.issuer)?);
    let expected = format!("Basic {}", STANDARD.encode(args.user.as_bytes()));
    let refresh = std::sync::Arc::new(args.refresh_token.clone());
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("listen on {}", args.listen))?;
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let signer = signer.clone();
        let expected = expected.clone();
        let refresh = refresh.clone();
        std::thread::spawn(move || {
            if let Err(e) = handle(conn, &signer, &expected, refresh.as_deref()) {
                eprintln!("token-server: {e:#}");
            }
        });
    }
    Ok(())
}

fn handle(
    conn: TcpStream,
    signer: &Signer,
    expected_auth: &str,
    refresh_token: Option<&str>,
) -> anyhow::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let method = line.split_whitespace().next().unwrap_or("").to_owned();
    let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut auth = None;
    let mut content_length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            auth = Some(v.trim().to_owned());
        } else if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            content_length = v.trim().parse().unwrap_or(0).min(64 * 1024);
        }
    }
    let mut form = vec![0u8; content_length];
    std::io::Read::read_exact(&mut reader, &mut form)?;
    let form = String::from_utf8_lossy(&form).into_owned();
    let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
    // POST carries its parameters in the form body.
    let query = if method == "POST" {
        form.as_str()
    } else {
        query
    };
    let mut presented_refresh = None;
    let mut service = String::new();
    let mut scopes = Vec::new();
    for kv in query.split('&') {
        if let Some((k, v)) = kv.split_once('=') {
            match k {
                "service" => service = percent_decode(v),
                "scope" => scopes.extend(percent_decode(v).split(' ').map(str::to_owned)),
                "refresh_token" => presented_refresh = Some(percent_decode(v)),
                _ => {}
            }
        }
    }
    let mut out = conn;
    let (status, body) = if path != "/token" {
        ("404 Not Found", json!({ "error": "not found" }))
    } else if method == "POST" {
        match (refresh_token, presented_refresh) {
            (Some(want), Some(got)) if want == got => {
                let t = signer.token("berth", &service, access_for(&scopes))?;
                ("200 OK", json!({ "access_token": t, "expires_in": 3600 }))
            }
            _ => ("401 Unauthorized", json!({ "error": "invalid_grant" })),
        }
    } else if auth.as_deref() != Some(expected_auth) {
        (
            "401 Unauthorized",
            json!({ "error": "bad or missing credentials" }),
        )
    } else {
        let t = signer.token("berth", &service, access_for(&scopes))?;
        (
            "200 OK",
            json!({ "token": t, "access_token": t, "expires_in": 3600 }),
        )
    };
    let body = serde_json::to_vec(&body)?;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(&body)?;
    Ok(())
}

/// The `Authorization` value for pushing to `repo` on `registry` with `user:password`:
/// Basic if the registry asks for basic auth, else a bearer token from its realm.
pub fn authorization_for_push(registry: &str, repo: &str, creds: &str) -> anyhow::Result<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let basic = format!("Basic {}", STANDARD.encode(creds.as_bytes()));
    let r = agent.get(&format!("http://{registry}/v2/")).call()?;
    if r.status().as_u16() == 200 {
        return Ok(basic);
    }
    let challenge = r
        .headers()
        .get("www-authenticate")
        .context("401 without WWW-Authenticate")?
        .to_str()?
        .to_owned();
    if challenge.to_ascii_lowercase().starts_with("basic") {
        return Ok(basic);
    }
    let param = |name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let start = challenge.find(&key)? + key.len();
        let end = challenge[start..].find('"')? + start;
        Some(challenge[start..end].to_owned())
    };
    let realm = param("realm").context("bearer challenge without realm")?;
    let service = param("service").unwrap_or_default();
    let url = format!("{realm}?service={service}&scope=repository:{repo}:pull,push");
    let mut r = agent.get(&url).header("Authorization", &basic).call()?;
    if r.status().as_u16() != 200 {
        bail!("token request to {realm} failed: {}", r.status());
    }
    let v: serde_json::Value = serde_json::from_str(&r.body_mut().read_to_string()?)?;
    let t = v["token"]
        .as_str()
        .or(v["access_token"].as_str())
        .context("token response without token")?;
    Ok(format!("Bearer {t}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_become_access_claims() {
        let a = access_for(&[
            "repository:berth/busybox:pull,push".into(),
            "registry:catalog:*".into(),
            "bogus".into(),
        ]);
        assert_eq!(
            a,
            json!([
                { "type": "repository", "name": "berth/busybox", "actions": ["pull", "push"] },
                { "type": "registry", "name": "catalog", "actions": ["*"] },
            ])
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("repository%3Aa%2Fb%3Apull"),
            "repository:a/b:pull"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn pem_blocks_decode() {
        let pem = "junk\n-----BEGIN CERTIFICATE-----\naGVs\nbG8=\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_block(pem, "CERTIFICATE").unwrap(), b"hello");
        assert!(pem_block(pem, "PRIVATE KEY").is_err());
    }
}
