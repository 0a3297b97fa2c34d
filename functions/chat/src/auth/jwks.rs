//! The issuer's signing keys: found through OpenID Connect discovery
//! (`{issuer}/.well-known/openid-configuration` → `jwks_uri`, else
//! `{issuer}/.well-known/jwks.json`), kept as long as the key set's `Cache-Control: max-age`
//! says (at most [`MAX_KEY_AGE`], [`DEFAULT_KEY_AGE`] without one, so a key the issuer
//! withdrew stops verifying), and fetched again on a key id they do not hold, at most once
//! per [`Jwks::min_refresh`]. Keys that are due and cannot be fetched again fail closed.
//! Only `https://` is fetched; `http://` on loopback only when the local stack allows it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde_json::Value;
use tokio::sync::Mutex;

/// How long one discovery or JWKS request may take; a fetch makes at most two, well
/// inside the authorizer's timeout.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest discovery document or key set read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The shortest time between two fetches of the key set, so unknown key ids cannot make
/// the authorizer hammer the issuer.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(30);

/// How long keys are kept when the key set's answer names no `max-age`.
pub const DEFAULT_KEY_AGE: Duration = Duration::from_secs(3600);

/// The longest keys are kept, whatever `max-age` says.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(24 * 3600);

/// The shortest keys are kept, so a `max-age=0` cannot make every connect fetch them.
pub const MIN_KEY_AGE: Duration = Duration::from_secs(1);

/// How long a key set may be kept, from its answer's `Cache-Control`.
pub fn key_age(cache_control: Option<&str>) -> Duration {
    let max_age = cache_control.and_then(|value| {
        value.split(',').find_map(|directive| {
            let (name, seconds) = directive.trim().split_once('=')?;
            name.eq_ignore_ascii_case("max-age")
                .then(|| seconds.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        })
    });
    max_age
        .map_or(DEFAULT_KEY_AGE, Duration::from_secs)
        .clamp(MIN_KEY_AGE, MAX_KEY_AGE)
}

/// Whether `url` may be fetched: `https://`, or — only with `allow_loopback`, which the
/// local stack sets — `http://` to a loopback address.
pub fn allowed_url(url: &str, allow_loopback: bool) -> bool {
    let Ok(uri) = url.parse::<Uri>() else {
        return false;
    };
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") => !host.is_empty(),
        Some("http") if allow_loopback => {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_matches(['[', ']'])
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

/// The keys could not be fetched: the authorizer fails (500) rather than deny a good token.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

#[derive(Default)]
struct Cache {
    keys: Option<Arc<JwkSet>>,
    fetched_at: Option<Instant>,
    /// When the keys are due to be fetched again (their `max-age`).
    expires_at: Option<Instant>,
    /// The `jwks_uri` discovery found, so later fetches skip discovery.
    jwks_uri: Option<String>,
}

/// One issuer's key set, cached.
pub struct Jwks {
    issuer: String,
    min_refresh: Duration,
    allow_loopback: bool,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    cache: Mutex<Cache>,
}

impl Jwks {
    pub fn new(issuer: &str, min_refresh: Duration, allow_loopback: bool) -> Jwks {
        Jwks {
            issuer: issuer.trim_end_matches('/').to_owned(),
            min_refresh,
            allow_loopback,
            client: crate::http::client(4),
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn min_refresh(&self) -> Duration {
        self.min_refresh
    }

    /// The key a token names (`kid`), or the only key when the token names none.
    /// `Ok(None)` means the issuer has no such key, even after a (rate-limited) refetch.
    pub async fn key(&self, kid: Option<&str>) -> Result<Option<Jwk>, Unavailable> {
        let mut cache = self.cache.lock().await;
        if cache.expires_at.is_some_and(|at| Instant::now() >= at) {
            // Due: fetched again before any key verifies; failing that, nothing verifies.
            cache.keys = None;
            cache.expires_at = None;
            cache.fetched_at = None;
        }
        if cache.keys.is_none() {
            // A failed fetch is not retried on every connect either.
            if let Some(at) = cache
                .fetched_at
                .filter(|at| at.elapsed() < self.min_refresh)
            {
                return Err(Unavailable(format!(
                    "the issuer's keys could not be fetched {} s ago; retrying after {} s",
                    at.elapsed().as_secs(),
                    self.min_refresh.as_secs()
                )));
            }
            self.refresh(&mut cache).await?;
        }
        let find = |keys: &JwkSet| match kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        };
        if let Some(key) = cache.keys.as_deref().and_then(find) {
            return Ok(Some(key));
        }
        let stale = cache
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.min_refresh);
        if kid.is_none() || !stale {
            return Ok(None);
        }
        self.refresh(&mut cache).await?;
        Ok(cache.keys.as_deref().and_then(find))
    }

    async fn refresh(&self, cache: &mut Cache) -> Result<(), Unavailable> {
        cache.fetched_at = Some(Instant::now());
        let jwks_uri = match &cache.jwks_uri {
            Some(uri) => uri.clone(),
            None => self.discover().await,
        };
        let (document, cache_control) = self.get_json(&jwks_uri).await?;
        let keys: JwkSet = serde_json::from_value(document)
            .map_err(|error| Unavailable(format!("{jwks_uri} is not a JWK set: {error}")))?;
        let age = key_age(cache_control.as_deref());
        tracing::info!(
            keys = keys.keys.len(),
            jwks_uri,
            max_age_s = age.as_secs(),
            "fetched the issuer's keys"
        );
        cache.jwks_uri = Some(jwks_uri);
        cache.keys = Some(Arc::new(keys));
        cache.expires_at = Some(Instant::now() + age);
        Ok(())
    }

    /// The discovery document's `jwks_uri`, else the conventional location.
    async fn discover(&self) -> String {
        let fallback = format!("{}/.well-known/jwks.json", self.issuer);
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer);
        match self.get_json(&discovery).await {
            Ok((document, _)) => match document.get("jwks_uri").and_then(Value::as_str) {
                Some(uri) if allowed_url(uri, self.allow_loopback) => uri.to_owned(),
                Some(uri) => {
                    tracing::warn!(
                        jwks_uri = uri,
                        "discovery names a jwks_uri that is not https; using {fallback}"
                    );
                    fallback
                }
                None => fallback,
            },
            Err(error) => {
                tracing::info!(%error, "no OpenID discovery document; using {fallback}");
                fallback
            }
        }
    }

    /// The JSON document at `url`, with its answer's `Cache-Control`.
    async fn get_json(&self, url: &str) -> Result<(Value, Option<String>), Unavailable> {
        let fail = |what: String| Unavailable(format!("GET {url}: {what}"));
        if !allowed_url(url, self.allow_loopback) {
            return Err(fail("only https is fetched".into()));
        }
        let uri: Uri = url.parse().map_err(|e| fail(format!("{e}")))?;
        let fetch = async {
            let response = self
                .client
                .get(uri)
                .await
                .map_err(|e| fail(format!("{e}")))?;
            if response.status() != hyper::StatusCode::OK {
                return Err(fail(format!("status {}", response.status())));
            }
            let cache_control = response
                .headers()
                .get(hyper::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|e| fail(format!("{e}")))?
                .to_bytes();
            let document =
                serde_json::from_slice(&body).map_err(|e| fail(format!("not JSON: {e}")))?;
            Ok((document, cache_control))
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .unwrap_or_else(|_| Err(fail(format!("no answer in {FETCH_TIMEOUT:?}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_allowed_loopback_http_is_fetched() {
        let allowed = |url| allowed_url(url, true);
        assert!(allowed(
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc"
        ));
        assert!(allowed("http://127.0.0.1:3003"));
        assert!(allowed("http://localhost:3003/x"));
        assert!(allowed("http://[::1]:80/"));
        assert!(!allowed("http://example.com"));
        assert!(!allowed("http://10.0.0.1"));
        assert!(!allowed("ftp://127.0.0.1"));
        assert!(!allowed("not a url"));
        assert!(!allowed(""));
        // Deployed: https only.
        assert!(allowed_url("https://issuer.example", false));
        assert!(!allowed_url("http://127.0.0.1:3003", false));
        assert!(!allowed_url("http://localhost:3003", false));
    }

    #[test]
    fn keys_are_kept_as_long_as_max_age_says_within_bounds() {
        assert_eq!(key_age(None), DEFAULT_KEY_AGE);
        assert_eq!(
            key_age(Some("public, max-age=600")),
            Duration::from_secs(600)
        );
        assert_eq!(
            key_age(Some("Max-Age=\"60\", must-revalidate")),
            Duration::from_secs(60)
        );
        assert_eq!(key_age(Some("max-age=31536000")), MAX_KEY_AGE);
        assert_eq!(key_age(Some("max-age=0")), MIN_KEY_AGE);
        assert_eq!(key_age(Some("no-cache")), DEFAULT_KEY_AGE);
        assert_eq!(key_age(Some("max-age=soon")), DEFAULT_KEY_AGE);
    }
}
