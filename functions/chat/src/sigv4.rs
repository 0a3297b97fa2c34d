//! AWS Signature Version 4 for the fan-out's one request: `POST {stage}/@connections/{id}`
//! to `execute-api`.
//!
//! The SDK derives the day's signing key (four HMACs) and runs its whole request pipeline
//! for every post; here the key is derived once a day per secret and each post costs one
//! SHA-256 of its canonical request and one HMAC. The payload's hash is computed once per
//! frame by the caller. The result is what the SDK's signer produces for the same request
//! (the tests compare them), so API Gateway accepts it as it accepts the SDK's.

use aws_lc_rs::{digest, hmac};

/// The service name `@connections` requests are signed for.
pub const SERVICE: &str = "execute-api";

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// The SHA-256 of a payload, as the canonical request carries it.
pub fn payload_hash(payload: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, payload).as_ref())
}

/// The signing key of one secret, day (`YYYYMMDD`) and region.
pub fn signing_key(secret: &str, date: &str, region: &str) -> hmac::Key {
    let step = |key: &[u8], data: &[u8]| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let k_date = step(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = step(k_date.as_ref(), region.as_bytes());
    let k_service = step(k_region.as_ref(), SERVICE.as_bytes());
    let k_signing = step(k_service.as_ref(), b"aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

/// Percent-encodes everything but RFC 3986's unreserved characters (and, with
/// `keep_slash`, `/`), as SigV4 requires.
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            b'/' if keep_slash => out.push('/'),
            other => {
                const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(DIGITS[usize::from(other >> 4)] as char);
                out.push(DIGITS[usize::from(other & 0x0f)] as char);
            }
        }
    }
    out
}

/// One request to sign. `path` is the path as sent (its segments already encoded once);
/// `host` is the `Host` header as sent (with the port when it is not the scheme's).
pub struct Request<'a> {
    pub host: &'a str,
    pub path: &'a str,
    /// `YYYYMMDDTHHMMSSZ`, also sent as `x-amz-date`.
    pub amz_date: &'a str,
    pub payload_hash: &'a str,
}

/// The credentials a request is signed with.
pub struct Identity<'a> {
    pub access_key_id: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
}

/// The `Authorization` header for `request`, signed with `key` (the key of the request's
/// day, see [`signing_key`]). The request must also carry `x-amz-date` and, when there is
/// one, `x-amz-security-token`.
pub fn authorization(key: &hmac::Key, identity: &Identity<'_>, request: &Request<'_>) -> String {
    let signed_headers = if identity.session_token.is_some() {
        "host;x-amz-date;x-amz-security-token"
    } else {
        "host;x-amz-date"
    };
    let mut canonical = String::with_capacity(256 + request.path.len());
    canonical.push_str("POST\n");
    // Double encoding, as the SDK signs every service but S3: the path as sent, encoded again.
    canonical.push_str(&uri_encode(request.path, true));
    canonical.push_str("\n\nhost:");
    canonical.push_str(request.host);
    canonical.push_str("\nx-amz-date:");
    canonical.push_str(request.amz_date);
    canonical.push('\n');
    if let Some(token) = identity.session_token {
        canonical.push_str("x-amz-security-token:");
        canonical.push_str(token);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(signed_headers);
    canonical.push('\n');
    canonical.push_str(request.payload_hash);
    let scope = format!(
        "{}/{}/{SERVICE}/aws4_request",
        request.amz_date.get(..8).unwrap_or_default(),
        identity.region
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        request.amz_date,
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let signature = hex(hmac::sign(key, to_sign.as_bytes()).as_ref());
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        identity.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    use std::time::{Duration, SystemTime};

    /// The `Authorization` the SDK's own signer (aws-sigv4, default settings, as the
    /// management client signs) gives the same request.
    fn reference(
        url: &str,
        host: &str,
        body: &[u8],
        token: Option<&str>,
        at: SystemTime,
    ) -> String {
        let credentials = aws_credential_types::Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_owned),
            None,
            "test",
        );
        let identity: aws_smithy_runtime_api::client::identity::Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name(SERVICE)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [("host", host)];
        let request =
            SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
                .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let authorization = instructions
            .headers()
            .find(|(name, _)| *name == "authorization")
            .map(|(_, value)| value.to_owned())
            .unwrap();
        authorization
    }

    #[test]
    fn signatures_match_the_sdks_signer() {
        // 2026-11-26T06:25:46Z
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_674_346);
        let amz_date = "20261126T062546Z";
        let body = br#"{"type":"message","message":"Hello everyone"}"#;
        for (id, token) in [
            ("R1kmxc2VNjMCFIA=", None),
            ("a+b/c=", Some("FwoGZXIvYXdzEXAMPLE//token+=")),
        ] {
            for (host, stage) in [
                ("abcdef1234.execute-api.eu-west-1.amazonaws.com", "Test"),
                ("127.0.0.1:3002", "local-stage_1"),
            ] {
                let path = format!("/{stage}/@connections/{}", uri_encode(id, false));
                let url = format!("https://{host}{path}");
                let key = signing_key(
                    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    "20261126",
                    "eu-west-1",
                );
                let ours = authorization(
                    &key,
                    &Identity {
                        access_key_id: "AKIDEXAMPLE",
                        session_token: token,
                        region: "eu-west-1",
                    },
                    &Request {
                        host,
                        path: &path,
                        amz_date,
                        payload_hash: &payload_hash(body),
                    },
                );
                assert_eq!(
                    ours,
                    reference(&url, host, body, token, at),
                    "{id} at {host}"
                );
            }
        }
    }

    #[test]
    fn ids_are_encoded_for_the_path() {
        assert_eq!(uri_encode("R1kmxc2VNjMCFIA=", false), "R1kmxc2VNjMCFIA%3D");
        assert_eq!(uri_encode("a+b/c", false), "a%2Bb%2Fc");
        assert_eq!(
            uri_encode("/Test/@connections/a%3D", true),
            "/Test/%40connections/a%253D"
        );
        assert_eq!(hex(&[0, 15, 16, 255]), "000f10ff");
    }
}
