//! The development issuer's OAuth 2.0 authorization server: the authorization-code flow
//! with PKCE (S256 only) for one public client, shaped like a Cognito user pool's managed
//! login so the page signs in the same way locally and on AWS.
//!
//! - `GET /oauth2/authorize` checks the client and its redirect URI (an error page, never a
//!   redirect, when either is wrong), then the request (errors go back to the redirect URI
//!   as `error=`), and serves a small sign-in page asking a name (a new name signs up).
//! - `POST /oauth2/authorize` (the page's form) mints a code bound to the client, redirect
//!   URI, PKCE challenge and nonce: single use, valid [`CODE_SECONDS`].
//! - `POST /oauth2/token` trades a code (with its verifier) or a refresh token for tokens
//!   shaped like Cognito's: an ID token (`aud` = client id, `token_use: id`,
//!   `cognito:username`, `cognito:groups`, `nonce`) and an access token (`client_id`,
//!   `token_use: access`, `username`, `scope`), with RFC 6749's error answers.
//! - `GET /logout` sends the browser back to a registered sign-out URI.
//!
//! Hand-written: the OAuth crates on crates.io are clients, not servers; this is the small
//! part of a server a local stand-in needs, over axum as the rest of the stack.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::signing::SigningKey;

/// How long a code may wait to be traded for tokens.
pub const CODE_SECONDS: u64 = 300;

/// How long an ID or access token is valid (Cognito's default is one hour).
pub const TOKEN_SECONDS: i64 = 3600;

/// The scopes the app client may ask for.
pub const SCOPES: &[&str] = &["openid", "email", "profile"];

/// The longest user name the sign-in page takes, in characters.
const MAX_NAME_CHARS: usize = 64;

/// One public app client (no secret): its id and the URIs it may be sent back to
/// (callback and sign-out URLs alike), which grow as the stack's page gets its address.
#[derive(Debug)]
pub struct Client {
    pub id: String,
    pub redirect_uris: RwLock<Vec<String>>,
}

impl Client {
    pub fn new(id: &str) -> Client {
        Client {
            id: id.to_owned(),
            redirect_uris: RwLock::new(Vec::new()),
        }
    }

    /// Registers `uri` as a callback and sign-out URL.
    pub fn allow(&self, uri: &str) {
        let mut uris = self.redirect_uris.write().unwrap();
        if !uris.iter().any(|u| u == uri) {
            uris.push(uri.to_owned());
        }
    }

    fn allows(&self, uri: &str) -> bool {
        self.redirect_uris.read().unwrap().iter().any(|u| u == uri)
    }
}

/// What a code was issued for.
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    user: String,
    scope: String,
    issued: Instant,
}

/// The server's state: its client, codes waiting to be traded and refresh tokens.
pub struct Server {
    pub issuer: String,
    pub client: Client,
    /// Users in `cognito:groups` claims: name → groups.
    pub groups: HashMap<String, Vec<String>>,
    /// How long the tokens it issues are valid, in seconds.
    pub token_seconds: i64,
    codes: Mutex<HashMap<String, Grant>>,
    refresh: Mutex<HashMap<String, (String, String)>>,
}

/// An OAuth error answer of the token endpoint (RFC 6749 §5.2).
fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (status, Json(body)).into_response()
}

/// The parameters of an authorization request (query or sign-in form).
#[derive(Debug, Deserialize, Default)]
pub struct AuthorizeRequest {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    scope: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// Only in the sign-in form.
    username: Option<String>,
}

/// The parameters of a token request.
#[derive(Debug, Deserialize, Default)]
pub struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
}

impl Server {
    pub fn new(issuer: &str, client: Client) -> Server {
        Server {
            issuer: issuer.to_owned(),
            client,
            groups: HashMap::new(),
            token_seconds: TOKEN_SECONDS,
            codes: Mutex::new(HashMap::new()),
            refresh: Mutex::new(HashMap::new()),
        }
    }

    /// The same server, its tokens valid `seconds`.
    pub fn with_token_seconds(mut self, seconds: i64) -> Server {
        self.token_seconds = seconds;
        self
    }

    /// Checks an authorization request: `Err` is the answer (an error page for a wrong
    /// client or redirect URI, else a redirect carrying `error=`); `Ok` the redirect URI
    /// and the scope granted.
    fn check(&self, request: &AuthorizeRequest) -> Result<(String, String), Box<Response>> {
        let client_ok = request.client_id.as_deref() == Some(self.client.id.as_str());
        if !client_ok {
            return Err(Box::new(error_page(
                "unknown client_id: this issuer has one app client",
            )));
        }
        let Some(redirect) = request
            .redirect_uri
            .clone()
            .filter(|uri| self.client.allows(uri))
        else {
            return Err(Box::new(error_page(
                "redirect_uri is not one of the client's callback URLs",
            )));
        };
        let fail = |error: &str, description: &str| {
            let mut params = vec![("error", error), ("error_description", description)];
            if let Some(state) = &request.state {
                params.push(("state", state));
            }
            Err(Box::new(redirect_with(&redirect, &params)))
        };
        if request.response_type.as_deref() != Some("code") {
            return fail("unsupported_response_type", "only response_type=code");
        }
        let challenge_ok = request
            .code_challenge
            .as_deref()
            .is_some_and(|c| (43..=128).contains(&c.len()));
        if !challenge_ok || request.code_challenge_method.as_deref() != Some("S256") {
            return fail(
                "invalid_request",
                "PKCE is required: code_challenge (43-128 characters) with code_challenge_method=S256",
            );
        }
        let scope = request.scope.as_deref().unwrap_or("openid");
        if let Some(unknown) = scope.split(' ').find(|s| !SCOPES.contains(s)) {
            return fail("invalid_scope", &format!("scope {unknown} is not allowed"));
        }
        Ok((redirect, scope.to_owned()))
    }

    /// `GET /oauth2/authorize`: the sign-in page, or the request's error.
    pub fn authorize_page(&self, request: &AuthorizeRequest) -> Response {
        if let Err(answer) = self.check(request) {
            return *answer;
        }
        sign_in_page(request, None)
    }

    /// `POST /oauth2/authorize`: the sign-in form; a code back to the redirect URI.
    pub fn sign_in(&self, request: &AuthorizeRequest) -> Response {
        let (redirect, scope) = match self.check(request) {
            Ok(checked) => checked,
            Err(answer) => return *answer,
        };
        let user = request
            .username
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty() && n.chars().count() <= MAX_NAME_CHARS)
            .filter(|n| n.chars().all(|c| !c.is_control()));
        let Some(user) = user else {
            let problem = format!("Give a user name of 1 to {MAX_NAME_CHARS} characters.");
            return sign_in_page(request, Some(&problem));
        };
        let code = random_token();
        let grant = Grant {
            client_id: self.client.id.clone(),
            redirect_uri: redirect.clone(),
            challenge: request.code_challenge.clone().unwrap_or_default(),
            nonce: request.nonce.clone(),
            user: user.to_owned(),
            scope,
            issued: Instant::now(),
        };
        let mut codes = self.codes.lock().unwrap();
        codes.retain(|_, g| g.issued.elapsed() < Duration::from_secs(CODE_SECONDS));
        codes.insert(code.clone(), grant);
        let mut params = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        redirect_with(&redirect, &params)
    }

    /// `POST /oauth2/token`.
    pub fn token(&self, key: &SigningKey, request: &TokenRequest) -> Response {
        if request.client_id.as_deref() != Some(self.client.id.as_str()) {
            return token_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "unknown client_id",
            );
        }
        match request.grant_type.as_deref() {
            Some("authorization_code") => self.trade_code(key, request),
            Some("refresh_token") => self.refresh(key, request),
            _ => token_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type is authorization_code or refresh_token",
            ),
        }
    }

    fn trade_code(&self, key: &SigningKey, request: &TokenRequest) -> Response {
        let invalid = |why: &str| token_error(StatusCode::BAD_REQUEST, "invalid_grant", why);
        let (Some(code), Some(verifier)) = (&request.code, &request.code_verifier) else {
            return token_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "code and code_verifier are required",
            );
        };
        // A code is spent by its first use, whatever the outcome.
        let Some(grant) = self.codes.lock().unwrap().remove(code) else {
            return invalid("the code is unknown or was used already");
        };
        if grant.issued.elapsed() >= Duration::from_secs(CODE_SECONDS) {
            return invalid("the code expired");
        }
        if request.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
            return invalid("redirect_uri differs from the authorization request's");
        }
        if grant.client_id != self.client.id || s256(verifier) != grant.challenge {
            return invalid("code_verifier does not match the code_challenge");
        }
        let refresh_token = random_token();
        self.refresh.lock().unwrap().insert(
            refresh_token.clone(),
            (grant.user.clone(), grant.scope.clone()),
        );
        let mut answer = self.tokens(key, &grant.user, &grant.scope, grant.nonce.as_deref());
        answer["refresh_token"] = json!(refresh_token);
        Json(answer).into_response()
    }

    fn refresh(&self, key: &SigningKey, request: &TokenRequest) -> Response {
        let known = request
            .refresh_token
            .as_ref()
            .and_then(|token| self.refresh.lock().unwrap().get(token).cloned());
        match known {
            Some((user, scope)) => Json(self.tokens(key, &user, &scope, None)).into_response(),
            None => token_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the refresh token is unknown",
            ),
        }
    }

    /// An ID and an access token for `user`, shaped like a Cognito user pool's.
    fn tokens(&self, key: &SigningKey, user: &str, scope: &str, nonce: Option<&str>) -> Value {
        let now = chrono::Utc::now().timestamp();
        let sub = subject(user);
        let groups = self.groups.get(user).cloned().unwrap_or_default();
        let mut id = json!({
            "iss": self.issuer, "sub": sub, "aud": self.client.id, "token_use": "id",
            "cognito:username": user, "name": user, "auth_time": now, "iat": now,
            "exp": now + self.token_seconds,
        });
        if !groups.is_empty() {
            id["cognito:groups"] = json!(groups);
        }
        if let Some(nonce) = nonce {
            id["nonce"] = json!(nonce);
        }
        let access = json!({
            "iss": self.issuer, "sub": sub, "client_id": self.client.id, "token_use": "access",
            "username": user, "scope": scope, "auth_time": now, "iat": now,
            "exp": now + self.token_seconds, "cognito:groups": groups,
        });
        json!({
            "id_token": key.token(&id),
            "access_token": key.token(&access),
            "token_type": "Bearer",
            "expires_in": self.token_seconds,
        })
    }

    /// `GET /logout?client_id=…&logout_uri=…`: back to a registered URI, as Cognito does.
    pub fn logout(&self, query: &HashMap<String, String>) -> Response {
        if query.get("client_id") != Some(&self.client.id) {
            return error_page("unknown client_id");
        }
        match query.get("logout_uri") {
            Some(uri) if self.client.allows(uri) => Redirect::to(uri).into_response(),
            _ => error_page("logout_uri is not one of the client's sign-out URLs"),
        }
    }
}

/// A stable subject per user name, so the same name is the same user across sign-ins.
pub fn subject(name: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, name.as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("dev-{hex}")
}

/// PKCE's S256: base64url(SHA-256(verifier)), unpadded.
pub fn s256(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A 302 to `uri` with `params` added to its query.
fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    let joiner = if uri.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{uri}{joiner}{query}")).into_response()
}

/// An error shown to the user (not sent to an unverified redirect URI).
fn error_page(problem: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>Sign-in error</title><p>{}</p>",
        escape(problem)
    );
    let mut response = (StatusCode::BAD_REQUEST, Html(body)).into_response();
    no_framing(&mut response, None);
    response
}

/// The sign-in page: one name field; the request's parameters ride along hidden.
fn sign_in_page(request: &AuthorizeRequest, problem: Option<&str>) -> Response {
    let hidden: String = [
        ("response_type", &request.response_type),
        ("client_id", &request.client_id),
        ("redirect_uri", &request.redirect_uri),
        ("state", &request.state),
        ("nonce", &request.nonce),
        ("scope", &request.scope),
        ("code_challenge", &request.code_challenge),
        ("code_challenge_method", &request.code_challenge_method),
    ]
    .iter()
    .filter_map(|(name, value)| {
        let value = value.as_deref()?;
        Some(format!(
            "<input type=hidden name=\"{name}\" value=\"{}\">",
            escape(value)
        ))
    })
    .collect();
    let problem = problem
        .map(|p| format!("<p class=problem role=alert>{}</p>", escape(p)))
        .unwrap_or_default();
    let body = format!(
        r#"<!doctype html><html lang=en><meta charset=utf-8>
<meta name=viewport content="width=device-width,initial-scale=1">
<title>Sign in - chat (local)</title>
<style>body{{font:16px system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}}
input,button{{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.3rem 0}}
.problem{{color:#a00}}</style>
<h1>Sign in</h1>
<p>Development sign-in of the local stack: a name you have not used before signs you up.</p>
{problem}<form method=post action="/oauth2/authorize">{hidden}
<label for=username>User name</label>
<input id=username name=username autocomplete=username required maxlength={MAX_NAME_CHARS} autofocus>
<button id=sign-in type=submit>Sign in</button></form>"#
    );
    let mut response = Html(body).into_response();
    no_framing(&mut response, request.redirect_uri.as_deref());
    response
}

/// A sign-in page must not be framed by another site (clickjacking); its form may go to the
/// issuer itself, and on to the origin of the (checked) redirect URI it answers with.
fn no_framing(response: &mut Response, redirect: Option<&str>) {
    let target = redirect.and_then(origin).unwrap_or_default();
    let policy = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {target}; frame-ancestors 'none'"
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_str(&policy)
            .unwrap_or(header::HeaderValue::from_static("default-src 'none'")),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
}

/// `scheme://host[:port]` of an http(s) URL with a plain host, else `None`.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
    };
    (matches!(scheme, "http" | "https") && plain(host)).then(|| format!("{scheme}://{host}"))
}

/// HTML-escapes text for element content and quoted attributes.
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "http://127.0.0.1:3001/";

    fn server() -> Server {
        let client = Client::new("client-1");
        client.allow(PAGE);
        Server::new("http://127.0.0.1:3003", client)
    }

    fn request(challenge: &str) -> AuthorizeRequest {
        AuthorizeRequest {
            response_type: Some("code".into()),
            client_id: Some("client-1".into()),
            redirect_uri: Some(PAGE.into()),
            state: Some("st".into()),
            nonce: Some("n-1".into()),
            scope: Some("openid email profile".into()),
            code_challenge: Some(challenge.into()),
            code_challenge_method: Some("S256".into()),
            username: Some("alice".into()),
        }
    }

    fn location(response: &Response) -> String {
        response.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn pkce_s256_matches_rfc_7636s_example() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_wrong_client_or_redirect_uri_is_an_error_page_never_a_redirect() {
        let server = server();
        let challenge = s256(&"v".repeat(43));
        let mut wrong = request(&challenge);
        wrong.redirect_uri = Some("https://evil.example/".into());
        let answer = server.authorize_page(&wrong);
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        assert!(answer.headers().get(header::LOCATION).is_none());
        let mut wrong = request(&challenge);
        wrong.client_id = Some("other".into());
        assert_eq!(server.sign_in(&wrong).status(), StatusCode::BAD_REQUEST);
        let mut plain = request(&challenge);
        plain.code_challenge_method = Some("plain".into());
        let answer = server.authorize_page(&plain);
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
        let to = location(&answer);
        assert!(
            to.starts_with(PAGE) && to.contains("error=invalid_request") && to.contains("state=st"),
            "{to}"
        );
    }

    #[test]
    fn the_sign_in_page_escapes_what_it_carries() {
        let mut evil = request(&s256(&"v".repeat(43)));
        evil.state = Some("\"><script>alert(1)</script>".into());
        let answer = sign_in_page(&evil, None);
        let csp = answer.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(escape("\"><script>").starts_with("&quot;&gt;&lt;script"));
    }
}
