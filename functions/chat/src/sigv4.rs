//! AWS Signature Version 4 for the fan-out's one request, `POST {stage}/@connections/{id}`
//! to `execute-api`, signed by AWS's own signer (`aws-sigv4`'s `http_request::sign`, the
//! signer the SDK runs) with the frame's SHA-256 computed once per broadcast and handed to
//! it precomputed. Checked against AWS's published SigV4 test suite
//! (`tests/fixtures/sigv4`, the suite the crate is tested with).

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

    #[test]
    fn ids_are_encoded_for_the_path() {
        assert_eq!(encode_segment("R1kmxc2VNjMCFIA="), "R1kmxc2VNjMCFIA%3D");
        assert_eq!(encode_segment("a+b/c"), "a%2Bb%2Fc");
        assert_eq!(hex(&[0, 15, 16, 255]), "000f10ff");
    }
}
