//! AWS Signature Version 4 for the fan-out's one request, `POST {stage}/@connections/{id}`
//! to `execute-api`, on `aws-sigv4`, the signer the SDK runs.
//!
//! [`sign_headers`] is the crate's whole signer (`http_request::sign`), with the frame's
//! SHA-256 handed to it precomputed. It derives the day's key (four HMACs) and builds a
//! general canonical request for every post, which costs more CPU than a delivery can
//! spare (measured in BENCHMARKS.md), so the posts use [`DayKey::authorization`]: the
//! key derived once a day by the crate (`sign::v4::generate_signing_key`), the signature
//! computed by the crate (`sign::v4::calculate_signature`), and between them the canonical
//! request of this one request shape: `POST`, no query, the signed headers `host`,
//! `x-amz-date` and, with a session token, `x-amz-security-token`, the payload's hash.
//! Both are checked against AWS's published SigV4 test suite (`tests/fixtures/sigv4`, the
//! suite the crate is tested with), and against each other.

use std::time::SystemTime;

use aws_lc_rs::digest;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// The service name `@connections` requests are signed for.
pub const SERVICE: &str = "execute-api";

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// The SHA-256 of a payload, as the canonical request carries it.
pub fn payload_hash(payload: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, payload).as_ref())
}

/// Percent-encodes everything but RFC 3986's unreserved characters: a connection id as a
/// path segment.
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte))
            }
            other => {
                const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(DIGITS[usize::from(other >> 4)]));
                out.push(char::from(DIGITS[usize::from(other & 0x0f)]));
            }
        }
    }
    out
}

/// The signing key of one secret for one day (`YYYYMMDD`), region and service, derived
/// by `aws-sigv4`.
pub struct DayKey {
    pub date: String,
    service: String,
    key: Vec<u8>,
}

/// One `POST` to sign with a [`DayKey`].
pub struct Post<'a> {
    pub access_key_id: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    /// The `Host` header as sent (with the port when it is not the scheme's).
    pub host: &'a str,
    /// The path as sent (its segments already encoded once).
    pub path: &'a str,
    /// `YYYYMMDDTHHMMSSZ`, also sent as `x-amz-date`; its day must be the key's.
    pub amz_date: &'a str,
    pub payload_hash: &'a str,
}

impl DayKey {
    /// The key of `secret` for the day of `at` (UTC).
    pub fn new(secret: &str, at: SystemTime, region: &str, service: &str) -> DayKey {
        let date = chrono::DateTime::<chrono::Utc>::from(at)
            .format("%Y%m%d")
            .to_string();
        let key = v4::generate_signing_key(secret, at, region, service);
        DayKey {
            date,
            service: service.to_owned(),
            key: key.as_ref().to_vec(),
        }
    }

    /// The `Authorization` header of `post`. The request also carries
    /// `x-amz-date` and, with a session token, `x-amz-security-token`.
    pub fn authorization(&self, post: &Post<'_>) -> String {
        let signed_headers = if post.session_token.is_some() {
            "host;x-amz-date;x-amz-security-token"
        } else {
            "host;x-amz-date"
        };
        let mut canonical = String::with_capacity(320 + post.path.len());
        canonical.push_str("POST\n");
        // Double encoding, as the SDK signs every service but S3: the path as sent,
        // encoded again (its `/` kept).
        for (i, segment) in post.path.split('/').enumerate() {
            if i > 0 {
                canonical.push('/');
            }
            canonical.push_str(&encode_segment(segment));
        }
        for part in ["\n\nhost:", post.host, "\nx-amz-date:", post.amz_date, "\n"] {
            canonical.push_str(part);
        }
        if let Some(token) = post.session_token {
            for part in ["x-amz-security-token:", token, "\n"] {
                canonical.push_str(part);
            }
        }
        for part in ["\n", signed_headers, "\n", post.payload_hash] {
            canonical.push_str(part);
        }
        let scope = format!(
            "{}/{}/{}/aws4_request",
            self.date, post.region, self.service
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            post.amz_date,
            payload_hash(canonical.as_bytes())
        );
        let signature = v4::calculate_signature(&self.key, to_sign.as_bytes());
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            post.access_key_id
        )
    }
}

/// One request to sign.
pub struct Request<'a> {
    pub method: &'a str,
    /// The URL as sent (its path segments already encoded once).
    pub url: &'a str,
    /// The headers sent that are to be signed (`host` among them).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body's SHA-256 (lower-case hex), see [`payload_hash`].
    pub payload_hash: &'a str,
}

/// The headers signing adds: `x-amz-date`, `authorization` and, with a session token,
/// `x-amz-security-token`.
pub fn sign_headers(
    identity: &Identity,
    region: &str,
    service: &str,
    at: SystemTime,
    request: &Request<'_>,
) -> Result<Vec<(&'static str, String)>, String> {
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name(service)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign: {e}"))?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Precomputed(request.payload_hash.to_owned()),
    )
    .map_err(|e| format!("cannot sign {}: {e}", request.url))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| format!("cannot sign: {e}"))?
        .into_parts();
    let (headers, _) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|header| (header.name(), header.value().to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn identity(id: &str, secret: &str, token: Option<&str>) -> Identity {
        aws_credential_types::Credentials::new(id, secret, token.map(str::to_owned), None, "test")
            .into()
    }

    /// The suite's requests (`request.txt`) signed here give its signatures.
    #[test]
    fn the_aws_signing_test_suite_signs_alike() {
        let suite = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sigv4");
        let mut cases = 0;
        for entry in std::fs::read_dir(&suite).unwrap() {
            let dir = entry.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
            if !dir.join("context.json").exists() {
                continue; // canonical-URI-only cases: the verifier's
            }
            let context: serde_json::Value = serde_json::from_str(&read("context.json")).unwrap();
            if context["omit_session_token"] == true || context["sign_body"] == true {
                // Options the chat never uses (an unsigned token, x-amz-content-sha256).
                continue;
            }
            let text = read("request.txt");
            let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
            let mut lines = head.lines();
            let target = lines.next().unwrap().strip_suffix(" HTTP/1.1").unwrap();
            let (method, path) = target.split_once(' ').unwrap();
            let mut headers: Vec<(String, String)> = Vec::new();
            for line in lines {
                if line.starts_with(char::is_whitespace) {
                    let last = headers.last_mut().unwrap();
                    last.1 = format!("{} {}", last.1, line.trim());
                } else {
                    let (name, value) = line.split_once(':').unwrap();
                    headers.push((name.to_ascii_lowercase(), value.to_owned()));
                }
            }
            let host = headers.iter().find(|(n, _)| n == "host").unwrap().1.clone();
            let url = format!("https://{host}{path}");
            let pairs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let c = &context["credentials"];
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
            let signed = sign_headers(
                &identity(
                    c["access_key_id"].as_str().unwrap(),
                    c["secret_access_key"].as_str().unwrap(),
                    c["token"].as_str(),
                ),
                context["region"].as_str().unwrap(),
                context["service"].as_str().unwrap(),
                at,
                &Request {
                    method,
                    url: &url,
                    headers: &pairs,
                    payload_hash: &payload_hash(body.as_bytes()),
                },
            );
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let Ok(signed) = signed else {
                panic!("{name}: {signed:?}");
            };
            let authorization = &signed
                .iter()
                .find(|(n, _)| *n == "authorization")
                .unwrap()
                .1;
            assert!(
                authorization.ends_with(&format!(
                    "Signature={}",
                    read("header-signature.txt").trim()
                )),
                "{name}: {authorization}"
            );
            cases += 1;
        }
        assert!(cases >= 25, "only {cases} cases");
    }

    /// The suite's `POST` cases of this shape (`post-vanilla`; `post-sts-header-before`,
    /// with a session token), signed with a [`DayKey`].
    #[test]
    fn the_day_key_signs_the_suites_posts_alike() {
        let suite = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sigv4");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        for case in ["post-vanilla", "post-sts-header-before"] {
            let read = |name: &str| std::fs::read_to_string(suite.join(case).join(name)).unwrap();
            let context: serde_json::Value = serde_json::from_str(&read("context.json")).unwrap();
            let c = &context["credentials"];
            let key = DayKey::new(
                c["secret_access_key"].as_str().unwrap(),
                at,
                "us-east-1",
                "service",
            );
            assert_eq!(key.date, "20150830");
            let hash = payload_hash(b"");
            let authorization = key.authorization(&Post {
                access_key_id: c["access_key_id"].as_str().unwrap(),
                session_token: c["token"].as_str(),
                region: "us-east-1",
                host: "example.amazonaws.com",
                path: "/",
                amz_date: "20150830T123600Z",
                payload_hash: &hash,
            });
            assert!(
                authorization.ends_with(&format!(
                    "Signature={}",
                    read("header-signature.txt").trim()
                )),
                "{case}: {authorization}"
            );
        }
    }

    /// The day key's posts are what the crate's whole signer makes of the same request.
    #[test]
    fn the_day_key_signs_as_the_whole_signer_does() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_674_346); // 2026-11-26T06:25:46Z
        let body = br#"{"type":"message","message":"Hello everyone"}"#;
        let hash = payload_hash(body);
        for (id, token) in [
            ("R1kmxc2VNjMCFIA=", None),
            ("a+b/c=~_.-", Some("FwoGZXIvYXdzEXAMPLE//token+=")),
        ] {
            for (host, stage) in [
                ("abcdef1234.execute-api.eu-west-1.amazonaws.com", "Test"),
                ("127.0.0.1:3002", "local-stage_1"),
            ] {
                let path = format!("/{stage}/@connections/{}", encode_segment(id));
                let key = DayKey::new(secret, at, "eu-west-1", SERVICE);
                let ours = key.authorization(&Post {
                    access_key_id: "AKIDEXAMPLE",
                    session_token: token,
                    region: "eu-west-1",
                    host,
                    path: &path,
                    amz_date: "20261126T062546Z",
                    payload_hash: &hash,
                });
                let url = format!("https://{host}{path}");
                let whole = sign_headers(
                    &identity("AKIDEXAMPLE", secret, token),
                    "eu-west-1",
                    SERVICE,
                    at,
                    &Request {
                        method: "POST",
                        url: &url,
                        headers: &[("host", host)],
                        payload_hash: &hash,
                    },
                )
                .unwrap();
                let theirs = &whole.iter().find(|(n, _)| *n == "authorization").unwrap().1;
                assert_eq!(&ours, theirs, "{id} at {host}");
            }
        }
    }

    #[test]
    fn ids_are_encoded_for_the_path() {
        assert_eq!(encode_segment("R1kmxc2VNjMCFIA="), "R1kmxc2VNjMCFIA%3D");
        assert_eq!(encode_segment("a+b/c"), "a%2Bb%2Fc");
        assert_eq!(hex(&[0, 15, 16, 255]), "000f10ff");
    }
}
