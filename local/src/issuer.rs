//! The development issuer: an OpenID Connect issuer on loopback so `AuthMode=jwt` works
//! with no identity provider. It serves a discovery document, its JWKS (one RSA key made
//! at start), a token endpoint minting RS256 tokens for a name
//! (`GET /token?name=alice[&groups=moderators]` → `{"token", "name", "expiresIn"}`;
//! groups go in `cognito:groups`), which
//! `chat-local token --name alice` and the web page call, and the authorization-code flow
//! with PKCE of a Cognito-like managed login ([`crate::oauth`]) for one public client
//! whose id is the audience. Cross-origin reads are allowed to the stack's page only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::oauth;
use crate::signing::SigningKey;

/// The template parameter naming the token issuer; when a stack whose `$connect` has an
/// authorizer is started without it, the development issuer stands in.
pub const ISSUER_PARAMETER: &str = "JwtIssuer";

/// The template parameter naming the tokens' audience.
pub const AUDIENCE_PARAMETER: &str = "JwtAudience";

/// The audience of development tokens when the template's `JwtAudience` is not given.
pub const DEV_AUDIENCE: &str = "chat-local";

/// How long a development token is valid.
pub const TOKEN_SECONDS: i64 = 3600;

/// The longest name the token endpoint signs, in characters.
const MAX_NAME_CHARS: usize = 64;

struct Issuer {
    url: String,
    audience: String,
    key: SigningKey,
    oauth: oauth::Server,
    /// The origins of the stack's page: the only ones answered cross-origin.
    origins: Mutex<Vec<String>>,
}

/// A running development issuer; dropping it stops it.
pub struct DevIssuer {
    pub url: String,
    pub audience: String,
    issuer: Arc<Issuer>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Drop for DevIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl DevIssuer {
    /// Serves the issuer on `listener`, its URL being `http://{address}`.
    /// Its tokens are valid `token_seconds`.
    pub fn start(listener: TcpListener, audience: &str, token_seconds: i64) -> Result<DevIssuer> {
        let address: SocketAddr = listener.local_addr()?;
        if !address.ip().is_loopback() {
            bail!("the development issuer serves on loopback only, not {address}");
        }
        let url = format!("http://{address}");
        let issuer = Arc::new(Issuer {
            url: url.clone(),
            audience: audience.to_owned(),
            key: SigningKey::rs256(&format!("dev-{}", crate::ids::gateway_id()))?,
            oauth: oauth::Server::new(&url, oauth::Client::new(audience))
                .with_token_seconds(token_seconds),
            origins: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/jwks.json", get(jwks))
            .route("/token", get(token))
            .route("/oauth2/authorize", get(authorize_page).post(sign_in))
            .route("/oauth2/token", post(oauth_token))
            .route("/logout", get(logout))
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&issuer),
                cors,
            ))
            .with_state(Arc::clone(&issuer));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(DevIssuer {
            url,
            audience: audience.to_owned(),
            issuer,
            server,
        })
    }

    /// Registers `uri` as a callback and sign-out URL of the issuer's app client (the
    /// stack's page, once its address is known).
    pub fn allow_redirect(&self, uri: &str) {
        self.issuer.oauth.client.allow(uri);
        if let Some(origin) = origin_of(uri) {
            let mut origins = self
                .issuer
                .origins
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
    }

    /// `{url}/token`, the endpoint that mints tokens.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url)
    }
}

async fn discovery(State(issuer): State<Arc<Issuer>>) -> Response {
    let url = &issuer.url;
    Json(json!({
        "issuer": url,
        "jwks_uri": format!("{url}/.well-known/jwks.json"),
        "authorization_endpoint": format!("{url}/oauth2/authorize"),
        "token_endpoint": format!("{url}/oauth2/token"),
        "end_session_endpoint": format!("{url}/logout"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": oauth::SCOPES,
        "token_endpoint_auth_methods_supported": ["none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn jwks(State(issuer): State<Arc<Issuer>>) -> Response {
    Json(json!({"keys": [issuer.key.jwk()]})).into_response()
}

async fn authorize_page(
    State(issuer): State<Arc<Issuer>>,
    request: Result<Query<oauth::AuthorizeRequest>, QueryRejection>,
) -> Response {
    let request = request.map(|Query(r)| r).unwrap_or_default();
    issuer.oauth.authorize_page(&request)
}

async fn sign_in(
    State(issuer): State<Arc<Issuer>>,
    request: Result<Form<oauth::AuthorizeRequest>, FormRejection>,
) -> Response {
    let request = request.map(|Form(r)| r).unwrap_or_default();
    issuer.oauth.sign_in(&request)
}

async fn oauth_token(
    State(issuer): State<Arc<Issuer>>,
    request: Result<Form<oauth::TokenRequest>, FormRejection>,
) -> Response {
    let request = request.map(|Form(r)| r).unwrap_or_default();
    issuer.oauth.token(&issuer.key, &request)
}

async fn logout(
    State(issuer): State<Arc<Issuer>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    issuer.oauth.logout(&query)
}

#[derive(Deserialize)]
struct TokenRequest {
    name: Option<String>,
    /// Space- or comma-separated groups for `cognito:groups` (`groups=moderators`).
    groups: Option<String>,
}

async fn token(
    State(issuer): State<Arc<Issuer>>,
    request: Result<Query<TokenRequest>, QueryRejection>,
) -> Response {
    let (name, groups) = match request {
        Ok(Query(request)) => (request.name, request.groups),
        Err(_) => (None, None),
    };
    let name = name.map(|name| name.trim().to_owned()).unwrap_or_default();
    let groups: Vec<&str> = groups
        .as_deref()
        .unwrap_or_default()
        .split([' ', ','])
        .filter(|group| !group.is_empty())
        .collect();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        let error = format!("give a name of 1 to {MAX_NAME_CHARS} characters: /token?name=alice");
        return (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response();
    }
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": issuer.url,
        "sub": oauth::subject(&name),
        "aud": issuer.audience,
        "name": name,
        "iat": now,
        "nbf": now,
        "exp": now + issuer.oauth.token_seconds,
    });
    // As Cognito lists a user's groups (a moderator: groups=moderators).
    if !groups.is_empty() {
        claims["cognito:groups"] = json!(groups);
    }
    let token = issuer.key.token(&claims);
    Json(json!({"token": token, "name": name, "expiresIn": issuer.oauth.token_seconds}))
        .into_response()
}

/// The stack's page calls from another origin (the WebSocket port): its origins, and only
/// they, may read the issuer's answers.
async fn cors(State(issuer): State<Arc<Issuer>>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut response = next.run(request).await;
    let allowed = origin.filter(|origin| {
        let origins = issuer.origins.lock().unwrap_or_else(|p| p.into_inner());
        origin
            .to_str()
            .is_ok_and(|o| origins.iter().any(|allowed| allowed == o))
    });
    let headers = response.headers_mut();
    headers.append(header::VARY, header::HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// Asks the issuer at `url` for a token for `name` in `groups` (comma-separated; what
/// `chat-local token` does).
pub async fn fetch_token(url: &str, name: &str, groups: &str) -> Result<String> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let query = if groups.is_empty() {
        serde_urlencoded::to_string([("name", name)])?
    } else {
        serde_urlencoded::to_string([("name", name), ("groups", groups)])?
    };
    let uri: hyper::Uri = format!("{}/token?{query}", url.trim_end_matches('/')).parse()?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let no_issuer = || {
        format!("no development issuer answers at {url}; is `chat-local start` running with AuthMode=jwt?")
    };
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), client.get(uri))
        .await
        .with_context(no_issuer)?
        .with_context(no_issuer)?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("{url}/token did not answer JSON"))?;
    match answer.get("token").and_then(serde_json::Value::as_str) {
        Some(token) if status.is_success() => Ok(token.to_owned()),
        _ => bail!("{url}/token answered {status}: {answer}"),
    }
}
