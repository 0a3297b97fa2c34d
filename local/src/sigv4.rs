//! Verifies AWS Signature Version 4 on the local AWS APIs (`@connections` for
//! `execute-api`, the Invoke API for `lambda`) as AWS does, with AWS's answers: 403 and
//! `x-amzn-ErrorType` `MissingAuthenticationTokenException` (no `Authorization`),
//! `IncompleteSignatureException` (a malformed one), `UnrecognizedClientException` (an
//! unknown access key or a session token that does not match), `InvalidSignatureException`
//! (a wrong signature, region, service or scope date, or a date more than 5 minutes off).
//!
//! Hand-written where no crate helps (percent-encoding comes from `percent-encoding`):
//! `aws-sigv4` signs requests but does not verify them,
//! and re-signing a received request with it cannot reproduce the client's own choice of
//! signed headers. So the canonical request is rebuilt here from the request as received
//! (checked against AWS's published SigV4 test suite in `tests/fixtures/sigv4`); the
//! signing key and the signature itself come from `aws-sigv4`. Only the `Authorization`
//! header form with `X-Amz-Date` is taken (no presigned URLs).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::json;

/// How far a request's date may be from the clock, either way.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// One set of credentials the stack accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl Credentials {
    pub fn new(id: &str, secret: &str, token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: id.to_owned(),
            secret_access_key: secret.to_owned(),
            session_token: token.map(str::to_owned),
        }
    }

    /// `ID:SECRET` or `ID:SECRET:SESSION_TOKEN`, as `--credentials` takes them.
    pub fn parse(text: &str) -> Option<Credentials> {
        let mut parts = text.splitn(3, ':');
        let (id, secret) = (parts.next()?, parts.next()?);
        let token = parts.next().filter(|t| !t.is_empty());
        (!id.is_empty() && !secret.is_empty()).then(|| Credentials::new(id, secret, token))
    }

    /// Fresh temporary credentials, as Lambda gives a function its role's session.
    pub fn temporary() -> Credentials {
        let id: String = format!("ASIA{}", crate::ids::base32(12));
        Credentials::new(&id, &crate::ids::base32(40), Some(&crate::ids::base32(64)))
    }
}

/// Why a request was refused: AWS's exception name and message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub kind: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(kind: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            message: message.into(),
        }
    }

    fn incomplete(message: impl Into<String>) -> Refusal {
        Refusal::new("IncompleteSignatureException", message)
    }

    fn invalid(message: impl Into<String>) -> Refusal {
        Refusal::new("InvalidSignatureException", message)
    }

    fn unrecognized() -> Refusal {
        Refusal::new(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    }

    /// The 403 AWS answers, with its error type header and JSON body.
    pub fn response(&self) -> Response {
        (
            StatusCode::FORBIDDEN,
            [("x-amzn-errortype", self.kind)],
            Json(json!({ "message": self.message })),
        )
            .into_response()
    }
}

/// The verifier of one service's requests in one region.
#[derive(Clone, Debug)]
pub struct Verifier {
    pub service: &'static str,
    pub region: String,
    pub accepted: Vec<Credentials>,
}

/// The parts of an `Authorization` header.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, Refusal> {
    let Some(rest) = value.strip_prefix("AWS4-HMAC-SHA256 ") else {
        let algorithm = value.split_whitespace().next().unwrap_or_default();
        return Err(Refusal::incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'"
        )));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    for (name, value) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed),
    ] {
        if value.is_none_or(str::is_empty) {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    if !missing.is_empty() {
        return Err(Refusal::incomplete(format!(
            "{} Authorization={value}",
            missing.join(" ")
        )));
    }
    let credential = credential.unwrap_or_default();
    let scope: Vec<&str> = credential.split('/').collect();
    let [id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(Refusal::incomplete(format!(
            "Credential should be scoped to a valid region, service and terminated by 'aws4_request'. Credential={credential}"
        )));
    };
    Ok(Authorization {
        access_key_id: id,
        date,
        region,
        service,
        signed_headers: signed.unwrap_or_default().split(';').collect(),
        signature: signature.unwrap_or_default(),
    })
}

/// `YYYYMMDD'T'HHMMSS'Z'` as a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let parsed = chrono::NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ").ok()?;
    let seconds = u64::try_from(parsed.and_utc().timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

fn amz_date(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time)
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// What SigV4 leaves unencoded: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// [`UNRESERVED`] and `/`: a path's segments encoded, its separators kept.
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Percent-encodes all but RFC 3986's unreserved characters (and `/` when `keep_slash`).
pub fn uri_encode(text: &[u8], keep_slash: bool) -> String {
    let set = if keep_slash {
        UNRESERVED_AND_SLASH
    } else {
        UNRESERVED
    };
    percent_encode(text, set).to_string()
}

/// The canonical URI of every service but S3: the path as sent with its dot segments
/// and empty segments removed, each segment encoded again.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut uri = String::from("/");
    uri.push_str(&uri_encode(segments.join("/").as_bytes(), true));
    if path.ends_with('/') && !segments.is_empty() {
        uri.push('/');
    }
    uri
}

/// The query's parameters decoded, encoded strictly and sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode_str(name).collect::<Vec<u8>>(), false),
                uri_encode(&percent_decode_str(value).collect::<Vec<u8>>(), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header's values, trimmed, inner runs of spaces folded, joined with commas.
fn canonical_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn hex_sha256(bytes: &[u8]) -> String {
    digest::digest(&digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a request is: its method, path and query as sent, headers and body.
pub struct Received<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The canonical request of `request` over `signed` headers.
pub fn canonical_request(request: &Received<'_>, signed: &[&str]) -> Result<String, Refusal> {
    let mut canonical = format!(
        "{}\n{}\n{}\n",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query)
    );
    for name in signed {
        let value = canonical_value(request.headers, name).ok_or_else(|| {
            Refusal::invalid(format!(
                "The request signature we calculated does not match the signature you provided: the signed header '{name}' is not in the request."
            ))
        })?;
        canonical.push_str(&format!("{name}:{value}\n"));
    }
    let payload = match request.headers.get("x-amz-content-sha256") {
        Some(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
        None => hex_sha256(request.body),
    };
    canonical.push_str(&format!("\n{}\n{payload}", signed.join(";")));
    Ok(canonical)
}

/// The string to sign for a canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical.as_bytes())
    )
}

/// The signing keys derived so far, by secret, day, region and service: the four HMACs of a
/// key are done once a day per credentials, as a signer does, not for every request.
static KEYS: LazyLock<Mutex<HashMap<[String; 4], Vec<u8>>>> = LazyLock::new(Default::default);

/// The signature of `to_sign` with `secret` for the day of `at`, region and service.
pub fn signature(
    secret: &str,
    at: SystemTime,
    region: &str,
    service: &str,
    to_sign: &str,
) -> String {
    let day = chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y%m%d")
        .to_string();
    let id = [
        secret.to_owned(),
        day,
        region.to_owned(),
        service.to_owned(),
    ];
    let mut keys = KEYS.lock().unwrap_or_else(|p| p.into_inner());
    if keys.len() > 256 {
        keys.clear();
    }
    let key = keys.entry(id).or_insert_with(|| {
        aws_sigv4::sign::v4::generate_signing_key(secret, at, region, service)
            .as_ref()
            .to_vec()
    });
    aws_sigv4::sign::v4::calculate_signature(key, to_sign.as_bytes())
}

impl Verifier {
    /// `Ok` when `request` is signed with accepted credentials, for this service and
    /// region, within [`MAX_SKEW`] of `now`.
    pub fn verify(&self, request: &Received<'_>, now: SystemTime) -> Result<(), Refusal> {
        let headers = request.headers;
        let Some(value) = headers.get("authorization") else {
            return Err(Refusal::new(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ));
        };
        let value = value
            .to_str()
            .map_err(|_| Refusal::incomplete("The Authorization header is not ASCII."))?;
        let auth = parse_authorization(value)?;
        let Some(sent_date) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()) else {
            return Err(Refusal::incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            ));
        };
        let at = parse_amz_date(sent_date).ok_or_else(|| {
            Refusal::incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{sent_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ))
        })?;
        let credentials = self
            .accepted
            .iter()
            .find(|c| c.access_key_id == auth.access_key_id)
            .ok_or_else(Refusal::unrecognized)?;
        let sent_token = headers.get("x-amz-security-token").map(|v| v.as_bytes());
        if sent_token != credentials.session_token.as_deref().map(str::as_bytes) {
            return Err(Refusal::unrecognized());
        }
        if auth.date != &sent_date[..8] {
            return Err(Refusal::invalid(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{sent_date}'.",
                auth.date,
                &sent_date[..8]
            )));
        }
        if auth.service != self.service {
            return Err(Refusal::invalid(format!(
                "Credential should be scoped to correct service: '{}'. ",
                self.service
            )));
        }
        if auth.region != self.region {
            return Err(Refusal::invalid(format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                auth.region
            )));
        }
        if at + MAX_SKEW < now {
            return Err(Refusal::invalid(format!(
                "Signature expired: {sent_date} is now earlier than {} ({} - 5 min.)",
                amz_date(now - MAX_SKEW),
                amz_date(now)
            )));
        }
        if at > now + MAX_SKEW {
            return Err(Refusal::invalid(format!(
                "Signature not yet current: {sent_date} is still later than {} ({} + 5 min.)",
                amz_date(now + MAX_SKEW),
                amz_date(now)
            )));
        }
        if !auth.signed_headers.contains(&"host")
            || auth.signed_headers.windows(2).any(|w| w[0] >= w[1])
            || auth
                .signed_headers
                .iter()
                .any(|h| h.bytes().any(|b| b.is_ascii_uppercase()))
        {
            return Err(Refusal::invalid(
                "SignedHeaders must be lower case, sorted, and include 'host'.",
            ));
        }
        let canonical = canonical_request(request, &auth.signed_headers)?;
        let scope = format!(
            "{}/{}/{}/aws4_request",
            auth.date, auth.region, auth.service
        );
        let to_sign = string_to_sign(sent_date, &scope, &canonical);
        let expected = signature(
            &credentials.secret_access_key,
            at,
            auth.region,
            auth.service,
            &to_sign,
        );
        let matches = aws_lc_rs::constant_time::verify_slices_are_equal(
            expected.as_bytes(),
            auth.signature.as_bytes(),
        )
        .is_ok();
        if matches {
            Ok(())
        } else {
            Err(Refusal::invalid(format!(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{to_sign}'\n"
            )))
        }
    }
}

/// Middleware: reads the body (up to `limit` bytes; a larger one is refused as AWS
/// refuses it, by the route) and passes only requests `verifier` accepts.
pub async fn require(
    State((verifier, limit)): State<(Arc<Verifier>, usize)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                [("x-amzn-errortype", "RequestTooLargeException")],
                Json(json!({"message": format!("Request must be smaller than {limit} bytes")})),
            )
                .into_response()
        }
    };
    let received = Received {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body: &bytes,
    };
    if let Err(refusal) = verifier.verify(&received, SystemTime::now()) {
        return refusal.response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};
    use std::path::PathBuf;

    fn suite() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sigv4")
    }

    /// A request of the suite: method, path, query, headers and body.
    struct Case {
        method: String,
        path: String,
        query: String,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    fn parse(text: &str) -> Case {
        let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let first = lines.next().unwrap();
        let target = first.strip_suffix(" HTTP/1.1").unwrap_or(first);
        let (method, target) = target.split_once(' ').unwrap();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut pairs: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with(char::is_whitespace) {
                let last = pairs.last_mut().unwrap();
                last.1.push(' ');
                last.1.push_str(line.trim());
            } else {
                let (name, value) = line.split_once(':').unwrap();
                pairs.push((name.to_owned(), value.trim().to_owned()));
            }
        }
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).unwrap(),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        Case {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn verifier(context: &serde_json::Value) -> Verifier {
        let c = &context["credentials"];
        Verifier {
            service: "service",
            region: context["region"].as_str().unwrap().to_owned(),
            accepted: vec![Credentials::new(
                c["access_key_id"].as_str().unwrap(),
                c["secret_access_key"].as_str().unwrap(),
                c["token"].as_str(),
            )],
        }
    }

    fn at(context: &serde_json::Value) -> SystemTime {
        let text = context["timestamp"].as_str().unwrap();
        let time = chrono::DateTime::parse_from_rfc3339(text).unwrap();
        SystemTime::UNIX_EPOCH + Duration::from_secs(time.timestamp() as u64)
    }

    fn received(case: &Case) -> Received<'_> {
        Received {
            method: &case.method,
            path: &case.path,
            query: &case.query,
            headers: &case.headers,
            body: &case.body,
        }
    }

    #[test]
    fn the_aws_signing_test_suite_verifies() {
        let mut cases = 0;
        for entry in std::fs::read_dir(suite()).unwrap() {
            let dir = entry.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
            let case = parse(&read("header-signed-request.txt"));
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            if !dir.join("context.json").exists() {
                // Canonical URI only (see the suite's README).
                let expected = read("header-canonical-request.txt");
                assert_eq!(
                    canonical_uri(&case.path),
                    expected.lines().nth(1).unwrap(),
                    "{name}"
                );
                continue;
            }
            let context: serde_json::Value = serde_json::from_str(&read("context.json")).unwrap();
            let signed: Vec<String> = {
                let auth = case.headers["authorization"].to_str().unwrap();
                let auth = parse_authorization(auth).unwrap();
                auth.signed_headers.iter().map(|s| s.to_string()).collect()
            };
            let signed: Vec<&str> = signed.iter().map(String::as_str).collect();
            assert_eq!(
                canonical_request(&received(&case), &signed).unwrap(),
                read("header-canonical-request.txt"),
                "{name}"
            );
            let verifier = verifier(&context);
            assert_eq!(
                verifier.verify(&received(&case), at(&context)),
                Ok(()),
                "{name}"
            );

            // One changed byte of the body, or a minute past the skew: refused.
            let mut tampered = parse(&read("header-signed-request.txt"));
            tampered.method = if tampered.method == "GET" {
                "PUT".into()
            } else {
                "GET".into()
            };
            let refusal = verifier
                .verify(&received(&tampered), at(&context))
                .unwrap_err();
            assert_eq!(refusal.kind, "InvalidSignatureException", "{name}");
            let late = at(&context) + MAX_SKEW + Duration::from_secs(60);
            let refusal = verifier.verify(&received(&case), late).unwrap_err();
            assert!(
                refusal.message.starts_with("Signature expired"),
                "{name}: {refusal:?}"
            );
            cases += 1;
        }
        assert!(cases >= 29, "only {cases} cases in the suite");
    }

    #[test]
    fn refusals_have_aws_names() {
        let context: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(suite().join("get-vanilla/context.json")).unwrap(),
        )
        .unwrap();
        let text =
            std::fs::read_to_string(suite().join("get-vanilla/header-signed-request.txt")).unwrap();
        let kind = |text: &str, verifier: &Verifier| {
            let case = parse(text);
            verifier
                .verify(&received(&case), at(&context))
                .map_err(|r| r.kind)
        };
        let good = verifier(&context);
        assert_eq!(kind(&text, &good), Ok(()));
        let unsigned: String = text
            .lines()
            .filter(|l| !l.starts_with("Authorization"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            kind(&unsigned, &good),
            Err("MissingAuthenticationTokenException")
        );
        let no_signature = text.replace(", Signature=", ", Sig=");
        assert_eq!(
            kind(&no_signature, &good),
            Err("IncompleteSignatureException")
        );
        let other_key = text.replace("Credential=AKIDEXAMPLE", "Credential=AKIDOTHER");
        assert_eq!(kind(&other_key, &good), Err("UnrecognizedClientException"));
        let with_token = text.replace("Host:", "X-Amz-Security-Token:forged\nHost:");
        assert_eq!(kind(&with_token, &good), Err("UnrecognizedClientException"));
        let mut wrong_region = good.clone();
        wrong_region.region = "eu-west-1".into();
        assert_eq!(kind(&text, &wrong_region), Err("InvalidSignatureException"));
        let mut wrong_service = good.clone();
        wrong_service.service = "execute-api";
        assert_eq!(
            kind(&text, &wrong_service),
            Err("InvalidSignatureException")
        );
        let mut wrong_secret = good.clone();
        wrong_secret.accepted[0].secret_access_key = "other".into();
        assert_eq!(kind(&text, &wrong_secret), Err("InvalidSignatureException"));
    }

    #[test]
    fn credentials_parse_from_the_command_line() {
        assert_eq!(
            Credentials::parse("id:secret"),
            Some(Credentials::new("id", "secret", None))
        );
        assert_eq!(
            Credentials::parse("id:se:cret"),
            Some(Credentials::new("id", "se", Some("cret")))
        );
        assert_eq!(Credentials::parse("id"), None);
        assert_eq!(Credentials::parse(":secret"), None);
        let made = Credentials::temporary();
        assert!(made.access_key_id.starts_with("ASIA") && made.session_token.is_some());
    }
}
