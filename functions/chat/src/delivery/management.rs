//! The `@connections` management API as the chat uses it: one `POST` per connection.
//!
//! [`Connections::Signed`], what the Lambdas use, builds the request itself, signs it with
//! the day's key from `aws-sigv4` ([`super::sigv4`]) and sends it over a pooled HTTP/1.1 client with keep-alive;
//! [`Connections::Sdk`] posts through the AWS SDK client (the handler tests mock it). Both
//! answer with the same [`Delivery`]. The signed path exists for CPU: the SDK runs its whole
//! request pipeline per post, which was most of onMessage's CPU per delivery (measured in
//! BENCHMARKS.md), and on a 128 MB Lambda CPU time is what a large room waits for.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use crate::delivery::sigv4;

/// How one post to one connection ended.
#[derive(Debug)]
pub enum Delivery {
    Delivered,
    /// The connection no longer exists (`GoneException`, HTTP 410).
    Gone,
    /// `LimitExceededException` (HTTP 429): the account's request rate is exceeded or the
    /// client's buffer is full. The connection stays open; the post may be tried later
    /// (the fan-out does, with backoff: [`crate::delivery::broadcast`]).
    Throttled(String),
    /// Not sent at all: the invocation had no time left for it (the caller hands it on).
    OutOfTime,
    Failed(String),
}

/// A frame to post, with its SHA-256 computed once however many posts carry it.
pub struct Payload {
    bytes: Bytes,
    hash: OnceLock<String>,
}

impl Payload {
    pub fn new(bytes: impl Into<Bytes>) -> Payload {
        Payload {
            bytes: bytes.into(),
            hash: OnceLock::new(),
        }
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    fn hash(&self) -> &str {
        self.hash.get_or_init(|| sigv4::payload_hash(&self.bytes))
    }
}

/// A client of one API's `@connections` endpoint.
#[derive(Clone)]
pub enum Connections {
    Sdk(aws_sdk_apigatewaymanagement::Client),
    Signed(Arc<Endpoint>),
}

impl Connections {
    /// Posts `payload` to one connection.
    pub async fn post(&self, connection_id: &str, payload: &Payload) -> Delivery {
        match self {
            Connections::Sdk(client) => sdk_post(client, connection_id, payload).await,
            Connections::Signed(endpoint) => endpoint.post(connection_id, payload).await,
        }
    }
}

async fn sdk_post(
    client: &aws_sdk_apigatewaymanagement::Client,
    connection_id: &str,
    payload: &Payload,
) -> Delivery {
    let result = client
        .post_to_connection()
        .connection_id(connection_id)
        .data(Blob::new(payload.bytes().to_vec()))
        .send()
        .await;
    match result {
        Ok(_) => Delivery::Delivered,
        Err(error) => {
            if error
                .as_service_error()
                .is_some_and(|service_error| service_error.is_gone_exception())
            {
                Delivery::Gone
            } else if error
                .as_service_error()
                .is_some_and(|service_error| service_error.is_limit_exceeded_exception())
            {
                Delivery::Throttled(aws_sdk_apigatewaymanagement::Error::from(error).to_string())
            } else {
                Delivery::Failed(aws_sdk_apigatewaymanagement::Error::from(error).to_string())
            }
        }
    }
}

/// Credentials and the day's signing key derived from them.
struct Keyed {
    access_key_id: String,
    session_token: Option<String>,
    /// When to fetch credentials again (five minutes before they expire).
    refresh_at: Option<SystemTime>,
    key: sigv4::DayKey,
}

/// What every signed endpoint of a container shares: the credentials, the current
/// signing key and the HTTP connection pool.
pub struct Signer {
    credentials: SharedCredentialsProvider,
    region: String,
    keyed: Mutex<Option<Arc<Keyed>>>,
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Attempts per post: a failed (5xx, transport) post is tried again here; a throttled one
/// (429) is answered at once, for the caller to try later without holding up others.
const ATTEMPTS: u32 = 3;

/// How long one attempt may take, connection included: a post that hangs is given up and
/// tried again rather than holding its slot until the function's Timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request produced no answer.
enum SendError {
    /// The connection failed or timed out: worth another attempt.
    Transport(String),
    /// The request could not be made (no credentials, a header that cannot be sent):
    /// another attempt would fail the same way.
    Fatal(String),
}

impl Signer {
    /// A signer for `region`; its pool keeps up to `pool` idle connections per host
    /// (the fan-out's concurrency).
    pub fn new(credentials: SharedCredentialsProvider, region: &str, pool: usize) -> Signer {
        Signer {
            credentials,
            region: region.to_owned(),
            keyed: Mutex::new(None),
            http: crate::http::client(pool),
        }
    }

    /// The credentials and key for the day of `at`, fetched and derived when needed.
    async fn keyed(&self, at: SystemTime, date: &str) -> Result<Arc<Keyed>, String> {
        if let Some(keyed) = self
            .keyed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .filter(|k| k.key.date == date && k.refresh_at.is_none_or(|at| SystemTime::now() < at))
        {
            return Ok(Arc::clone(keyed));
        }
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("no credentials to sign with: {e}"))?;
        let keyed = Arc::new(Keyed {
            // Five minutes before they expire, but not sooner than a minute from now, so
            // short-lived credentials are not fetched again for every post.
            refresh_at: credentials.expiry().map(|expiry| {
                let soonest = SystemTime::now() + Duration::from_secs(60);
                expiry
                    .checked_sub(Duration::from_secs(300))
                    .map_or(soonest, |at| at.max(soonest))
            }),
            key: sigv4::DayKey::new(
                credentials.secret_access_key(),
                at,
                &self.region,
                sigv4::SERVICE,
            ),
            access_key_id: credentials.access_key_id().to_owned(),
            session_token: credentials.session_token().map(str::to_owned),
        });
        *self
            .keyed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::clone(&keyed));
        Ok(keyed)
    }

    /// Forgets the credentials (after a 403 that says they expired).
    fn forget(&self) {
        *self
            .keyed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

/// One API's callback endpoint, posted to with signed requests.
pub struct Endpoint {
    signer: Arc<Signer>,
    /// `https` or `http`.
    scheme: String,
    /// Host, with the port when the URL has one: the `Host` header that is signed.
    authority: String,
    /// `/{stage}`
    base_path: String,
}

impl Endpoint {
    /// The endpoint at `url` (`https://{api}.execute-api.{region}.{suffix}/{stage}`, or the
    /// override); `None` for a URL it cannot take apart.
    pub fn new(signer: Arc<Signer>, url: &str) -> Option<Endpoint> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme != "https" && scheme != "http" {
            return None;
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let path = path.trim_end_matches('/');
        Some(Endpoint {
            signer,
            scheme: scheme.to_owned(),
            authority: authority.to_owned(),
            base_path: if path.is_empty() {
                String::new()
            } else {
                format!("/{path}")
            },
        })
    }

    async fn post(&self, connection_id: &str, payload: &Payload) -> Delivery {
        let path = format!(
            "{}/@connections/{}",
            self.base_path,
            sigv4::encode_segment(connection_id)
        );
        let mut last = String::new();
        let mut forgot = false;
        // No attempt outlives the invocation: each ends a second before it at the latest,
        // so the caller still has time to count, hand on and answer.
        let end = crate::delivery::budget::before_end(Duration::from_secs(1));
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left < Duration::from_millis(100) {
                return if attempt == 0 {
                    Delivery::OutOfTime
                } else {
                    Delivery::Failed(last)
                };
            }
            let attempted =
                tokio::time::timeout(ATTEMPT_TIMEOUT.min(left), self.send(&path, payload));
            let (status, body) = match attempted.await {
                Ok(Ok(answer)) => answer,
                Ok(Err(SendError::Transport(error))) => {
                    last = error;
                    continue;
                }
                Ok(Err(SendError::Fatal(error))) => return Delivery::Failed(error),
                Err(_) => {
                    last = format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs());
                    continue;
                }
            };
            match status {
                200..=299 => return Delivery::Delivered,
                410 => return Delivery::Gone,
                429 => return Delivery::Throttled(describe(status, &body)),
                500 | 502 | 503 | 504 => last = describe(status, &body),
                403 if !forgot && body.contains("xpired") => {
                    // Credentials that expired under us: fetch them again, once.
                    self.signer.forget();
                    forgot = true;
                    last = describe(status, &body);
                }
                _ => return Delivery::Failed(describe(status, &body)),
            }
        }
        Delivery::Failed(last)
    }

    /// One signed request; its status and body (read, so the connection goes back to
    /// the pool).
    async fn send(&self, path: &str, payload: &Payload) -> Result<(u16, String), SendError> {
        let now = SystemTime::now();
        let amz_date = chrono::DateTime::<chrono::Utc>::from(now)
            .format("%Y%m%dT%H%M%SZ")
            .to_string();
        let date = amz_date.get(..8).unwrap_or_default();
        let keyed = self
            .signer
            .keyed(now, date)
            .await
            .map_err(SendError::Fatal)?;
        let authorization = keyed.key.authorization(&sigv4::Post {
            access_key_id: &keyed.access_key_id,
            session_token: keyed.session_token.as_deref(),
            region: &self.signer.region,
            host: &self.authority,
            path,
            amz_date: &amz_date,
            payload_hash: payload.hash(),
        });
        let mut request =
            hyper::Request::post(format!("{}://{}{path}", self.scheme, self.authority))
                .header("host", &self.authority)
                .header("content-type", "application/octet-stream")
                .header("x-amz-date", &amz_date)
                .header("authorization", authorization);
        if let Some(token) = &keyed.session_token {
            request = request.header("x-amz-security-token", token);
        }
        let request = request
            .body(Full::new(payload.bytes().clone()))
            .map_err(|e| SendError::Fatal(format!("could not build the request: {e}")))?;
        let response = self
            .signer
            .http
            .request(request)
            .await
            .map_err(|e| SendError::Transport(format!("POST @connections: {e}")))?;
        let status = response.status().as_u16();
        // Read to the end (up to 64 KB), so the connection goes back to the pool.
        let body = Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .unwrap_or_default();
        // Only failures need the body's words.
        let text = if (200..300).contains(&status) {
            String::new()
        } else {
            String::from_utf8_lossy(&body).chars().take(300).collect()
        };
        Ok((status, text))
    }
}

fn describe(status: u16, body: &str) -> String {
    format!("@connections answered {status}: {body}")
}

/// Before attempt `attempt` (from 1): 50 ms, then 200 ms, each with up to half again of
/// jitter.
fn backoff(attempt: u32) -> Duration {
    jittered(Duration::from_millis(
        50 * 4u64.pow(attempt.saturating_sub(1)),
    ))
}

/// `base` plus up to half of it again, at random.
pub fn jittered(base: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX / 2);
    Duration::from_millis(base_ms + nanos % (base_ms / 2 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Arc<Signer> {
        let credentials = aws_credential_types::Credentials::new("a", "s", None, None, "test");
        Arc::new(Signer::new(
            SharedCredentialsProvider::new(credentials),
            "us-east-1",
            4,
        ))
    }

    #[test]
    fn endpoints_split_into_scheme_host_and_stage() {
        let aws = Endpoint::new(
            signer(),
            "https://abcdef1234.execute-api.us-east-1.amazonaws.com/Test",
        )
        .unwrap();
        assert_eq!(
            (
                aws.scheme.as_str(),
                aws.authority.as_str(),
                aws.base_path.as_str()
            ),
            (
                "https",
                "abcdef1234.execute-api.us-east-1.amazonaws.com",
                "/Test"
            )
        );
        let local = Endpoint::new(signer(), "http://127.0.0.1:3002/Test/").unwrap();
        assert_eq!(
            (local.authority.as_str(), local.base_path.as_str()),
            ("127.0.0.1:3002", "/Test")
        );
        for bad in [
            "ftp://x/Test",
            "no-scheme",
            "https:///Test",
            "https://u@h/Test",
        ] {
            assert!(Endpoint::new(signer(), bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!((50..=75).contains(&(backoff(1).as_millis() as u64)));
        assert!((200..=300).contains(&(backoff(2).as_millis() as u64)));
        let wait = jittered(Duration::from_secs(1)).as_millis() as u64;
        assert!((1000..=1500).contains(&wait));
    }
}
