//! An OpenID Connect issuer a test serves itself on loopback: its own keys (made in the
//! test), its own JWKS at a path only its discovery document names, keys it can rotate,
//! keys it can withdraw, a `Cache-Control` it can set on the key set, and a count of how
//! often its key set was fetched.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chat_local::signing::SigningKey;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Where the key set is, unless the issuer serves the conventional path only.
pub const JWKS_PATH: &str = "/keys/published.json";

#[derive(Default)]
struct Published {
    keys: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    url: Mutex<String>,
    cache_control: Mutex<Option<String>>,
}

/// A running test issuer; dropping it stops it.
pub struct TestIssuer {
    pub url: String,
    published: Arc<Published>,
    server: JoinHandle<()>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestIssuer {
    /// Serves `keys`. With `discovery`, `/.well-known/openid-configuration` names
    /// [`JWKS_PATH`]; without, only `/.well-known/jwks.json` holds the keys.
    pub async fn start(keys: &[&SigningKey], discovery: bool) -> TestIssuer {
        let published = Arc::new(Published::default());
        *published.keys.lock().unwrap() = keys.iter().map(|key| key.jwk()).collect();
        let mut app = Router::new();
        if discovery {
            app = app
                .route("/.well-known/openid-configuration", get(configuration))
                .route(JWKS_PATH, get(jwks));
        } else {
            app = app.route("/.well-known/jwks.json", get(jwks));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address: SocketAddr = listener.local_addr().unwrap();
        let url = format!("http://{address}");
        *published.url.lock().unwrap() = url.clone();
        let app = app.with_state(Arc::clone(&published));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestIssuer {
            url,
            published,
            server,
        }
    }

    /// Publishes one more key (a rotation).
    pub fn publish(&self, key: &SigningKey) {
        self.published.keys.lock().unwrap().push(key.jwk());
    }

    /// Stops publishing the key `kid`.
    pub fn withdraw(&self, kid: &str) {
        self.published
            .keys
            .lock()
            .unwrap()
            .retain(|key| key["kid"] != kid);
    }

    /// Answers the key set with this `Cache-Control` from now on.
    pub fn set_cache_control(&self, value: &str) {
        *self.published.cache_control.lock().unwrap() = Some(value.to_owned());
    }

    /// How many times the key set was fetched.
    pub fn fetches(&self) -> usize {
        self.published.fetches.load(Ordering::SeqCst)
    }

    /// Claims of a valid token from this issuer for `audience`, valid for an hour.
    pub fn claims(&self, audience: &str, sub: &str, name: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": self.url, "sub": sub, "aud": audience, "name": name,
            "iat": now, "exp": now + 3600})
    }
}

async fn configuration(State(published): State<Arc<Published>>) -> Json<Value> {
    let url = published.url.lock().unwrap().clone();
    Json(json!({"issuer": url, "jwks_uri": format!("{url}{JWKS_PATH}")}))
}

async fn jwks(State(published): State<Arc<Published>>) -> Response {
    published.fetches.fetch_add(1, Ordering::SeqCst);
    let mut response = Json(json!({"keys": *published.keys.lock().unwrap()})).into_response();
    if let Some(value) = published.cache_control.lock().unwrap().as_deref() {
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_str(value).expect("a header value"),
        );
    }
    response
}
