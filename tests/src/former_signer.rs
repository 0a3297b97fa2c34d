//! The `@connections` signer the chat used before it signed with `aws-sigv4`: a
//! hand-written canonical request for its one `POST`, the day's signing key derived once
//! and an HMAC per post. Kept here, outside the product, only so that `make bench` can
//! measure the change side by side with the signer that replaced it (`chat::delivery::sigv4`).

use aws_lc_rs::{digest, hmac};

pub use chat::delivery::sigv4::{hex, payload_hash, SERVICE};

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
    use std::time::{Duration, SystemTime};

    /// Both signers sign the same post alike, so the benchmark compares equal work.
    #[test]
    fn the_former_signer_signs_as_aws_sigv4_does() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_674_346);
        let (secret, token) = (
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "FwoGZXIvYXdzEXAMPLE",
        );
        let path = format!(
            "/Test/@connections/{}",
            uri_encode("R1kmxc2VNjMCFIA=", false)
        );
        let host = "abcdef1234.execute-api.eu-west-1.amazonaws.com";
        let hash = payload_hash(br#"{"type":"message","message":"Hello everyone"}"#);
        let former = authorization(
            &signing_key(secret, "20261126", "eu-west-1"),
            &Identity {
                access_key_id: "AKIDEXAMPLE",
                session_token: Some(token),
                region: "eu-west-1",
            },
            &Request {
                host,
                path: &path,
                amz_date: "20261126T062546Z",
                payload_hash: &hash,
            },
        );
        let identity = aws_credential_types::Credentials::new(
            "AKIDEXAMPLE",
            secret,
            Some(token.to_owned()),
            None,
            "test",
        )
        .into();
        let url = format!("https://{host}{path}");
        let signed = chat::delivery::sigv4::sign_headers(
            &identity,
            "eu-west-1",
            SERVICE,
            at,
            &chat::delivery::sigv4::Request {
                method: "POST",
                url: &url,
                headers: &[("host", host)],
                payload_hash: &hash,
            },
        )
        .unwrap();
        let current = signed.iter().find(|(n, _)| *n == "authorization").unwrap();
        assert_eq!(former, current.1);
    }
}
