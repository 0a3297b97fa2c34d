//! The development issuer as an OAuth 2.0 authorization server, through the real local
//! stack in `AuthMode=jwt`: discovery names the endpoints; the authorization-code flow with
//! PKCE (S256) signs alice in through the sign-in page; her ID and access tokens are shaped
//! like a Cognito user pool's, verify against the issuer's keys and let her chat (token in
//! `Sec-WebSocket-Protocol`); a refresh token renews them; sign-out returns to the page; and
//! every wrong request gets OAuth's error answer: a wrong verifier, a reused code, a wrong
//! redirect URI, an unknown client, a plain challenge, an unknown refresh token.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chat::auth::Verifier;
use common::*;
use serde_json::Value;

/// The claims of a JWT, decoded (the signature is checked separately).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn s256(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

struct Flow {
    http: reqwest::Client,
    issuer: String,
    client_id: String,
    page: String,
}

impl Flow {
    /// An authorization request's parameters, `extra` added or replacing.
    fn params<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.page),
            ("scope", "openid email profile"),
            ("state", "state-1"),
            ("nonce", "nonce-1"),
            ("code_challenge_method", "S256"),
        ];
        for (key, value) in extra {
            params.retain(|(k, _)| k != key);
            params.push((key, value));
        }
        params
    }

    /// `GET /oauth2/authorize` with these parameters (PKCE's defaults filled in).
    async fn authorize(&self, extra: &[(&str, &str)]) -> reqwest::Response {
        let params = self.params(extra);
        self.http
            .get(format!("{}/oauth2/authorize", self.issuer))
            .query(&params)
            .send()
            .await
            .unwrap()
    }

    /// Signs `user` in through the sign-in form; the code the page is sent back with.
    async fn code(&self, user: &str, verifier: &str) -> String {
        let challenge = s256(verifier);
        let page = self.authorize(&[("code_challenge", &challenge)]).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("name=username"), "a sign-in form: {html}");
        let form = self.params(&[("code_challenge", &challenge), ("username", user)]);
        let answer = self
            .http
            .post(format!("{}/oauth2/authorize", self.issuer))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_redirection(), "{}", answer.status());
        let back = reqwest::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(back.as_str().split('?').next(), Some(self.page.as_str()));
        let query: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
        assert_eq!(query["state"], "state-1", "state comes back as sent");
        query["code"].clone()
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let answer = self
            .http
            .post(format!("{}/oauth2/token", self.issuer))
            .form(form)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.json().await.unwrap())
    }

    async fn trade(&self, code: &str, verifier: &str, redirect: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &self.client_id),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect),
        ])
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_and_pkce_sign_alice_in_with_cognito_shaped_tokens_and_wrong_requests_get_oauth_errors(
) {
    let mut options = Options::project();
    options.overrides.push("AuthMode=jwt".into());
    let stack = Stack::start(options).await;
    let issuer = stack.dev_issuer.clone().expect("a development issuer");
    let page = format!("{}/", stack.ws_url.replacen("ws://", "http://", 1));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let discovery: Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (key, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/oauth2/token"),
        ("end_session_endpoint", "/logout"),
    ] {
        assert_eq!(discovery[key], format!("{issuer}{path}"), "{key}");
    }
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    // Cross-origin reads: the stack's page only.
    let page_origin = page.trim_end_matches('/').to_owned();
    for (origin, allowed) in [
        (page_origin.as_str(), true),
        ("http://evil.example", false),
        ("null", false),
    ] {
        let answer = http
            .get(format!("{issuer}/.well-known/jwks.json"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        let allow = answer.headers().get("access-control-allow-origin");
        assert_eq!(
            allow.map(|v| v.to_str().unwrap()),
            allowed.then_some(origin),
            "{origin}"
        );
    }
    let flow = Flow {
        http,
        issuer: issuer.clone(),
        client_id: "chat-local".into(),
        page: page.clone(),
    };

    let verifier = "alice-verifier-0123456789-0123456789-0123456789";
    let code = flow.code("alice", verifier).await;
    let (status, tokens) = flow.trade(&code, verifier, &page).await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap();
    let access_token = tokens["access_token"].as_str().unwrap();
    let id = claims(id_token);
    assert_eq!(id["aud"], "chat-local");
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["cognito:username"], "alice");
    assert_eq!(id["nonce"], "nonce-1");
    assert_eq!(id["iss"], issuer);
    let access = claims(access_token);
    assert_eq!(access["client_id"], "chat-local");
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["username"], "alice");
    assert!(
        access.get("aud").is_none(),
        "Cognito access tokens carry no aud"
    );
    assert_eq!(tokens["token_type"], "Bearer");
    // Both verify against the issuer's published keys, as the authorizer checks them.
    let verifier_of = Verifier::with_loopback(&issuer, "chat-local", Duration::from_secs(30), true);
    for token in [id_token, access_token] {
        let Ok(verified) = verifier_of.verify(token).await else {
            panic!("the issuer's token does not verify");
        };
        assert_eq!(verified.name, "alice");
    }

    // Alice chats with the ID token, passed in Sec-WebSocket-Protocol.
    let url = format!("{}/Test", stack.ws_url);
    let offered = format!("token.{id_token}");
    let (mut alice, chosen) = Client::connect_with_protocols(&url, &["chat", &offered])
        .await
        .expect("signed in");
    assert_eq!(chosen.as_deref(), Some("chat"));
    alice.say("signed in through the code flow").await;
    assert_eq!(alice.json().await["name"], "alice");
    alice.close().await;

    // The code is single use.
    let (status, error) = flow.trade(&code, verifier, &page).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // A wrong verifier, and the code it spent.
    let code = flow.code("alice", verifier).await;
    let (status, error) = flow
        .trade(&code, "another-verifier-0123456789-0123456789-01234", &page)
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant")),
        "{error}"
    );
    let (status, _) = flow.trade(&code, verifier, &page).await;
    assert_eq!(status, 400, "a code a wrong verifier spent is gone");
    // A redirect URI other than the authorization request's.
    let code = flow.code("alice", verifier).await;
    let (status, error) = flow.trade(&code, verifier, "http://127.0.0.1:9/").await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // An unknown client.
    let (status, error) = flow
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", "nobody"),
            ("code", "x"),
            ("code_verifier", verifier),
        ])
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_client"))
    );
    let (status, error) = flow
        .token(&[("grant_type", "password"), ("client_id", "chat-local")])
        .await;
    assert_eq!(error["error"], "unsupported_grant_type", "{status}");

    // The authorization endpoint: a wrong redirect URI or client is shown, never followed.
    let challenge = s256(verifier);
    let wrong = flow
        .authorize(&[
            ("code_challenge", &challenge),
            ("redirect_uri", "https://evil.example/"),
        ])
        .await;
    assert_eq!(wrong.status(), 400);
    assert!(wrong.headers().get("location").is_none());
    let wrong = flow
        .authorize(&[("code_challenge", &challenge), ("client_id", "nobody")])
        .await;
    assert_eq!(wrong.status(), 400);
    // No PKCE, or plain: back to the page with error=invalid_request and the state.
    let plain = flow
        .authorize(&[
            ("code_challenge", &challenge),
            ("code_challenge_method", "plain"),
        ])
        .await;
    let to = plain.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to.starts_with(&page)
            && to.contains("error=invalid_request")
            && to.contains("state=state-1"),
        "{to}"
    );

    // A refresh token renews the tokens; an unknown one is refused.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, renewed) = flow
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", "chat-local"),
            ("refresh_token", refresh),
        ])
        .await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(
        claims(renewed["id_token"].as_str().unwrap())["cognito:username"],
        "alice"
    );
    let (status, error) = flow
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", "chat-local"),
            ("refresh_token", "nope"),
        ])
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // Sign-out goes back to a registered URI only.
    let out = flow
        .http
        .get(format!("{issuer}/logout"))
        .query(&[("client_id", "chat-local"), ("logout_uri", page.as_str())])
        .send()
        .await
        .unwrap();
    assert!(out.status().is_redirection());
    assert_eq!(out.headers()["location"], page.as_str());
    let out = flow
        .http
        .get(format!("{issuer}/logout"))
        .query(&[
            ("client_id", "chat-local"),
            ("logout_uri", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 400);
    let _ = stack.stop().await;
}
