//! Signed-in users: the `$connect` JWT authorizer with keys made in the test, first on
//! its own against an issuer the test serves (every way a token can be wrong is a deny,
//! never a panic; keys are discovered, cached and re-fetched on rotation), then through
//! the real local stack in `AuthMode=jwt`: 403 without a token and for each bad one, a
//! token in `?token=` or in `Sec-WebSocket-Protocol` (answered with the `chat` protocol),
//! names in chat frames, the authorizer's answer in every later event, the development
//! issuer with `chat-local token`, and `?name=` in open mode.

mod common;

use std::time::Duration;

use aws_lc_rs::hmac;
use chat::auth::{AuthConfig, Authorizer, Rejection, Verifier};
use chat_local::signing::{b64, signing_input, SigningKey};
use common::*;
use e2e::issuer::TestIssuer;
use serde_json::{json, Value};

const AUDIENCE: &str = "chat-test-client";

struct Keys {
    rsa: SigningKey,
    ec: SigningKey,
    /// Never published: a token it signs has a good header and a bad signature.
    rogue: SigningKey,
}

fn keys() -> Keys {
    Keys {
        rsa: SigningKey::rs256("rsa-1").unwrap(),
        ec: SigningKey::es256("ec-1").unwrap(),
        rogue: SigningKey::rs256("rsa-1").unwrap(),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Every kind of bad token, named, for the issuer at `issuer`.
fn bad_tokens(keys: &Keys, issuer: &TestIssuer) -> Vec<(&'static str, String)> {
    let good = issuer.claims(AUDIENCE, "user-1", "alice");
    let with = |changes: Value| {
        let mut claims = good.clone();
        for (key, value) in changes.as_object().unwrap() {
            claims[key] = value.clone();
        }
        claims
    };
    let valid = keys.rsa.token(&good);
    let header = |alg: &str| json!({"alg": alg, "typ": "JWT", "kid": "rsa-1"});
    let hs256 = {
        let input = signing_input(&header("HS256"), &good);
        let secret = hmac::Key::new(hmac::HMAC_SHA256, &keys.rsa.public_bytes());
        format!(
            "{input}.{}",
            b64(hmac::sign(&secret, input.as_bytes()).as_ref())
        )
    };
    let unknown_kid = SigningKey::rs256("rsa-unpublished").unwrap();
    vec![
        (
            "expired",
            keys.rsa.token(&with(json!({"exp": now() - 120}))),
        ),
        (
            "not yet valid",
            keys.rsa.token(&with(json!({"nbf": now() + 120}))),
        ),
        (
            "wrong iss",
            keys.rsa
                .token(&with(json!({"iss": "https://elsewhere.example"}))),
        ),
        (
            "wrong aud",
            keys.rsa.token(&with(json!({"aud": "another-client"}))),
        ),
        ("bad signature", keys.rogue.token(&good)),
        ("unknown kid", unknown_kid.token(&good)),
        (
            "alg none",
            format!(
                "{}.",
                signing_input(&json!({"alg": "none", "typ": "JWT"}), &good)
            ),
        ),
        ("HS256 with the public key", hs256),
        ("truncated", valid[..valid.len() - 20].to_owned()),
        ("garbage", "x".repeat(10 * 1024)),
        ("garbage in three parts", {
            let part = "eyJ".repeat(800);
            format!("{part}.{part}.{part}")
        }),
        (
            "a header that is not JSON",
            format!("{}.{}.c2ln", b64(b"{\"alg\":"), b64(b"{}")),
        ),
        ("empty parts", "..".into()),
        ("RS256 header on the EC key", {
            let header = json!({"alg": "RS256", "typ": "JWT", "kid": "ec-1"});
            keys.ec.sign(&header, &good)
        }),
        (
            "no sub",
            keys.rsa.token(&{
                let mut claims = good.clone();
                claims.as_object_mut().unwrap().remove("sub");
                claims
            }),
        ),
    ]
}

#[tokio::test]
async fn valid_rs256_and_es256_tokens_are_allowed_and_every_bad_one_denied() {
    let keys = keys();
    let issuer = TestIssuer::start(&[&keys.rsa, &keys.ec], true).await;
    let verifier = Verifier::with_loopback(&issuer.url, AUDIENCE, Duration::from_secs(30), true);

    for key in [&keys.rsa, &keys.ec] {
        let verified = verifier
            .verify(&key.token(&issuer.claims(AUDIENCE, "user-1", "  Alice\u{7} ")))
            .await
            .unwrap_or_else(|e| panic!("{} token refused: {e:?}", key.alg()));
        assert_eq!(verified.sub, "user-1");
        assert_eq!(verified.name, "Alice", "the name is cleaned");
    }
    // Inside the 60 s leeway, and an aud list holding the audience.
    let mut lenient = issuer.claims(AUDIENCE, "user-2", "bob");
    lenient["exp"] = json!(now() - 30);
    lenient["aud"] = json!(["other", AUDIENCE]);
    assert!(verifier.verify(&keys.rsa.token(&lenient)).await.is_ok());

    for (what, token) in bad_tokens(&keys, &issuer) {
        match verifier.verify(&token).await {
            Err(Rejection::Deny(reason)) => assert!(!reason.is_empty(), "{what}"),
            other => panic!("{what}: expected a deny, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn cognito_access_tokens_carry_the_audience_as_client_id() {
    let keys = keys();
    let issuer = TestIssuer::start(&[&keys.rsa], true).await;
    let verifier = Verifier::with_loopback(&issuer.url, AUDIENCE, Duration::from_secs(30), true);
    let access = |client_id: &str| {
        json!({"iss": issuer.url, "sub": "c0ffee", "client_id": client_id, "token_use": "access",
            "username": "alice", "exp": now() + 600})
    };
    let verified = verifier
        .verify(&keys.rsa.token(&access(AUDIENCE)))
        .await
        .unwrap();
    assert_eq!(verified.name, "alice");
    assert!(matches!(
        verifier
            .verify(&keys.rsa.token(&access("someone-else")))
            .await,
        Err(Rejection::Deny(_))
    ));
}

#[tokio::test]
async fn keys_are_discovered_cached_and_refetched_for_a_new_kid_at_most_so_often() {
    let keys = keys();
    // No discovery document: the conventional jwks.json is used.
    let plain = TestIssuer::start(&[&keys.rsa], false).await;
    let verifier = Verifier::with_loopback(&plain.url, AUDIENCE, Duration::ZERO, true);
    let claims = plain.claims(AUDIENCE, "u", "u");
    for _ in 0..3 {
        verifier.verify(&keys.rsa.token(&claims)).await.unwrap();
    }
    assert_eq!(plain.fetches(), 1, "the key set is fetched once and kept");
    // A rotation: the new key is found by refetching.
    let next = SigningKey::es256("ec-2").unwrap();
    plain.publish(&next);
    verifier.verify(&next.token(&claims)).await.unwrap();
    assert_eq!(plain.fetches(), 2);

    // With a long refresh interval, unknown kids do not make it fetch again.
    let issuer = TestIssuer::start(&[&keys.rsa], true).await;
    let patient = Verifier::with_loopback(&issuer.url, AUDIENCE, Duration::from_secs(3600), true);
    let claims = issuer.claims(AUDIENCE, "u", "u");
    patient.verify(&keys.rsa.token(&claims)).await.unwrap();
    for n in 0..5 {
        let stranger = SigningKey::es256(&format!("stranger-{n}")).unwrap();
        assert!(matches!(
            patient.verify(&stranger.token(&claims)).await,
            Err(Rejection::Deny(_))
        ));
    }
    assert_eq!(issuer.fetches(), 1, "unknown kids are rate-limited");
}

#[tokio::test]
async fn an_issuer_with_a_trailing_slash_is_matched_as_written() {
    let keys = keys();
    let issuer = TestIssuer::start(&[&keys.rsa], true).await;
    let with_slash = format!("{}/", issuer.url);
    let verifier = Verifier::with_loopback(&with_slash, AUDIENCE, Duration::from_secs(30), true);
    let mut claims = issuer.claims(AUDIENCE, "u", "u");
    claims["iss"] = json!(with_slash);
    assert!(verifier.verify(&keys.rsa.token(&claims)).await.is_ok());
    claims["iss"] = json!(issuer.url);
    assert!(matches!(
        verifier.verify(&keys.rsa.token(&claims)).await,
        Err(Rejection::Deny(_))
    ));
}

#[tokio::test]
async fn an_unreachable_issuer_fails_the_authorizer_rather_than_deny() {
    let keys = keys();
    let config = AuthConfig {
        issuer: "http://127.0.0.1:9".into(),
        audience: AUDIENCE.into(),
        allow_loopback: true,
        moderator_group: "moderators".into(),
        groups_claim: "cognito:groups".into(),
    };
    let authorizer = Authorizer::new(&config, Duration::from_secs(30));
    let claims = json!({"iss": config.issuer, "sub": "u", "aud": AUDIENCE, "exp": now() + 60});
    let event = json!({"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:1:a/b/$connect",
        "queryStringParameters": {"token": keys.rsa.token(&claims)}});
    assert!(authorizer.answer(&event).await.is_err());
    // The failed fetch is not repeated on the next connect, which fails at once.
    let again = authorizer.answer(&event).await.unwrap_err();
    assert!(
        again.to_string().contains("could not be fetched"),
        "{again}"
    );
}

#[tokio::test]
async fn the_answer_allows_the_method_arn_with_the_users_context() {
    let keys = keys();
    let issuer = TestIssuer::start(&[&keys.ec], true).await;
    let config = AuthConfig {
        issuer: issuer.url.clone(),
        audience: AUDIENCE.into(),
        allow_loopback: true,
        moderator_group: "moderators".into(),
        groups_claim: "cognito:groups".into(),
    };
    let authorizer = Authorizer::new(&config, Duration::from_secs(30));
    let fixture = common::repo().join(
        "tests/fixtures/aws-events/example-apigw-v2-custom-authorizer-websocket-request.json",
    );
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let token = keys.ec.token(&issuer.claims(AUDIENCE, "sub-9", "Zoë"));
    event["queryStringParameters"]["token"] = json!(token);

    let answer = authorizer.answer(&event).await.unwrap();

    assert_eq!(answer["principalId"], "sub-9");
    let statement = &answer["policyDocument"]["Statement"][0];
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(statement["Action"], "execute-api:Invoke");
    assert_eq!(statement["Resource"], event["methodArn"]);
    assert_eq!(
        answer["context"],
        json!({"userId": "sub-9", "name": "Zoë", "moderator": false})
    );

    // A member of the moderators' group, as Cognito lists groups …
    let mut claims = issuer.claims(AUDIENCE, "sub-10", "Mo");
    claims["cognito:groups"] = json!(["readers", "moderators"]);
    event["queryStringParameters"]["token"] = json!(keys.ec.token(&claims));
    assert_eq!(
        authorizer.answer(&event).await.unwrap()["context"]["moderator"],
        true
    );
    // … and as another issuer does, in a claim named by GROUPS_CLAIM, for another group.
    let other = Authorizer::new(
        &AuthConfig {
            moderator_group: "mods".into(),
            groups_claim: "roles".into(),
            ..config.clone()
        },
        Duration::from_secs(30),
    );
    assert_eq!(
        other.answer(&event).await.unwrap()["context"]["moderator"],
        false
    );
    claims["roles"] = json!("staff mods");
    event["queryStringParameters"]["token"] = json!(keys.ec.token(&claims));
    assert_eq!(
        other.answer(&event).await.unwrap()["context"]["moderator"],
        true
    );
}

fn jwt_stack(issuer: &TestIssuer) -> Options {
    Options::jwt(&issuer.url, AUDIENCE)
}

fn with_token(url: &str, token: &str) -> String {
    format!("{url}/Test?token={token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_stack_tokens_decide_the_handshake_and_name_the_sender() {
    let keys = keys();
    let issuer = TestIssuer::start(&[&keys.rsa, &keys.ec], true).await;
    let stack = Stack::start(jwt_stack(&issuer)).await;
    assert!(
        stack.dev_issuer.is_none(),
        "JwtIssuer given: no development issuer"
    );

    // The authorizer lists no identity source (a token may come in the query or in
    // Sec-WebSocket-Protocol), so a handshake without one reaches it and is denied: 403.
    assert_eq!(
        handshake_status(&format!("{}/Test", stack.ws_url)).await,
        403
    );
    assert_eq!(
        handshake_status(&format!("{}/Test?token=", stack.ws_url)).await,
        403
    );
    for (what, token) in bad_tokens(&keys, &issuer) {
        let url = with_token(&stack.ws_url, &urlencode(&token));
        assert_eq!(handshake_status(&url).await, 403, "{what}");
    }

    let alice = keys
        .rsa
        .token(&issuer.claims(AUDIENCE, "sub-alice", "Alice"));
    let bob = keys.ec.token(&issuer.claims(AUDIENCE, "sub-bob", "Bob"));
    let mut alice = Client::connect(&with_token(&stack.ws_url, &alice))
        .await
        .unwrap();
    // ?name= cannot override a signed-in name.
    let url = format!("{}&name=mallory", with_token(&stack.ws_url, &bob));
    let mut bob = Client::connect(&url).await.unwrap();
    alice.say("Hello everyone").await;
    for client in [&mut alice, &mut bob] {
        let frame = client.json().await;
        assert_eq!(frame["type"], "message");
        assert_eq!(frame["name"], "Alice");
        assert_eq!(frame["message"], "Hello everyone");
        assert!(frame["from"].is_string(), "from stays for compatibility");
    }
    bob.say("hi Alice").await;
    assert_eq!(alice.json().await["name"], "Bob");
    assert_eq!(bob.json().await["name"], "Bob");
    alice.close().await;
    bob.close().await;
    let _ = stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_sec_websocket_protocol_signs_in_and_the_chat_protocol_is_answered() {
    let keys = keys();
    let issuer = TestIssuer::start(&[&keys.rsa], true).await;
    let stack = Stack::start(jwt_stack(&issuer)).await;
    let url = format!("{}/Test", stack.ws_url);
    let token = keys.rsa.token(&issuer.claims(AUDIENCE, "sub-ada", "Ada"));
    let offered = format!("token.{token}");
    let (mut ada, chosen) = Client::connect_with_protocols(&url, &["chat", &offered])
        .await
        .expect("a valid token in the header is let in");
    assert_eq!(
        chosen.as_deref(),
        Some("chat"),
        "$connect answers the chat protocol, never the token entry"
    );
    ada.say("no token in my URL").await;
    let frame = ada.json().await;
    assert_eq!(frame["name"], "Ada");

    let forged = keys.rogue.token(&issuer.claims(AUDIENCE, "sub-ada", "Ada"));
    let refused = Client::connect_with_protocols(&url, &["chat", &format!("token.{forged}")])
        .await
        .err();
    assert_eq!(
        refused,
        Some(403),
        "a forged token in the header is refused"
    );
    let refused = Client::connect_with_protocols(&url, &["chat"]).await.err();
    assert_eq!(
        refused,
        Some(403),
        "the chat protocol alone carries no token"
    );
    ada.close().await;
    let _ = stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorizer_that_cannot_reach_its_issuer_refuses_with_500() {
    let keys = keys();
    let mut options = Options::project();
    options.overrides.extend([
        "AuthMode=jwt".to_owned(),
        "JwtIssuer=http://127.0.0.1:9".to_owned(),
        format!("JwtAudience={AUDIENCE}"),
    ]);
    let stack = Stack::start(options).await;
    let claims =
        json!({"iss": "http://127.0.0.1:9", "sub": "u", "aud": AUDIENCE, "exp": now() + 60});
    let url = with_token(&stack.ws_url, &keys.rsa.token(&claims));
    assert_eq!(handshake_status(&url).await, 500);
    let _ = stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizers_answer_reaches_every_later_event_of_the_connection() {
    let keys = keys();
    let issuer = TestIssuer::start(&[&keys.rsa], true).await;
    let log = EventLog::new("auth-events");
    let mut options = log.options();
    options.overrides.extend([
        format!("TokenIssuer={}", issuer.url),
        format!("TokenAudience={AUDIENCE}"),
    ]);
    let stack = Stack::start(options).await;
    let token = keys.rsa.token(&issuer.claims(AUDIENCE, "sub-7", "Grace"));
    let mut client = Client::connect(&format!("{}/faults?token={token}", stack.ws_url))
        .await
        .unwrap();
    client.send_text(r#"{"action":"fault","reply":"ok"}"#).await;
    client.close().await;

    let events = log.wait_for(3).await;
    let mut kinds: Vec<&str> = events
        .iter()
        .map(|e| e["requestContext"]["eventType"].as_str().unwrap())
        .collect();
    // The message's invocation may still run when the close's $disconnect starts.
    kinds.sort();
    assert_eq!(kinds, ["CONNECT", "DISCONNECT", "MESSAGE"]);
    for event in &events {
        let authorizer = &event["requestContext"]["authorizer"];
        assert_eq!(authorizer["principalId"], "sub-7", "{event}");
        assert_eq!(authorizer["userId"], "sub-7");
        assert_eq!(authorizer["name"], "Grace");
        assert!(authorizer["integrationLatency"].is_u64());
    }
    let _ = stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_issuer_signs_users_in_through_chat_local_token() {
    let mut options = Options::project();
    options.overrides.push("AuthMode=jwt".into());
    let stack = Stack::start(options).await;
    let issuer = stack
        .dev_issuer
        .clone()
        .expect("AuthMode=jwt without JwtIssuer runs a dev issuer");
    assert!(stack
        .output()
        .iter()
        .any(|line| line.starts_with("Dev issuer:")));

    let token = |name: &str| {
        let output = std::process::Command::new(bin_dir().join("chat-local"))
            .args(["token", "--name", name, "--issuer", &issuer])
            .output()
            .expect("run chat-local token");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let mut alice = Client::connect(&with_token(&stack.ws_url, &token("alice")))
        .await
        .unwrap();
    let mut bob = Client::connect(&with_token(&stack.ws_url, &token("bob")))
        .await
        .unwrap();
    bob.say("hello alice").await;
    assert_eq!(alice.json().await["name"], "bob");
    assert_eq!(bob.json().await["name"], "bob");
    assert_eq!(
        handshake_status(&format!("{}/Test", stack.ws_url)).await,
        403
    );

    // Asking with no name is a clear error, not a token.
    let refused = std::process::Command::new(bin_dir().join("chat-local"))
        .args(["token", "--name", " ", "--issuer", &issuer])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("name"));
    alice.close().await;
    bob.close().await;
    let _ = stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mode_names_come_from_the_query_or_are_guests() {
    let stack = Stack::start(Options::project()).await;
    assert!(stack.dev_issuer.is_none());
    let mut alice = Client::connect(&format!("{}/Test?name=%20alice%0A", stack.ws_url))
        .await
        .unwrap();
    let mut guest = Client::connect(&stack.ws_url).await.unwrap();
    alice.say("Hello everyone").await;
    assert_eq!(guest.json().await["name"], "alice");
    assert_eq!(alice.json().await["name"], "alice");
    guest.say("hi").await;
    let frame = alice.json().await;
    let from = frame["from"].as_str().unwrap();
    let expected: String = from
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(4)
        .collect();
    assert_eq!(frame["name"], format!("guest-{expected}"));
    alice.close().await;
    guest.close().await;
    let _ = stack.stop().await;
}

/// Percent-encodes a token for a query string (bad tokens may hold any character).
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_withdrawn_key_stops_verifying_once_its_max_age_has_passed() {
    let keys = keys();
    let issuer = TestIssuer::start(&[&keys.rsa, &keys.ec], true).await;
    issuer.set_cache_control("public, max-age=1");
    // A long refresh interval: only the key set's max-age makes it fetch again.
    let verifier = Verifier::with_loopback(&issuer.url, AUDIENCE, Duration::from_secs(3600), true);
    let claims = issuer.claims(AUDIENCE, "u", "u");
    verifier.verify(&keys.rsa.token(&claims)).await.unwrap();
    verifier.verify(&keys.ec.token(&claims)).await.unwrap();
    issuer.withdraw(&keys.rsa.kid);
    // Still within max-age: kept.
    verifier.verify(&keys.rsa.token(&claims)).await.unwrap();
    assert_eq!(issuer.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(matches!(
        verifier.verify(&keys.rsa.token(&claims)).await,
        Err(Rejection::Deny(_))
    ));
    verifier.verify(&keys.ec.token(&claims)).await.unwrap();
    assert_eq!(issuer.fetches(), 2);
}

#[tokio::test]
async fn token_use_decides_which_claim_holds_the_audience() {
    let keys = keys();
    let issuer = TestIssuer::start(&[&keys.rsa], true).await;
    let verifier = Verifier::with_loopback(&issuer.url, AUDIENCE, Duration::from_secs(30), true);
    let token = |extra: Value| {
        let mut claims = json!({"iss": issuer.url, "sub": "s", "exp": now() + 600});
        for (name, value) in extra.as_object().unwrap() {
            claims[name] = value.clone();
        }
        keys.rsa.token(&claims)
    };
    let allowed = [
        json!({"token_use": "id", "aud": AUDIENCE}),
        json!({"token_use": "access", "client_id": AUDIENCE}),
        json!({"aud": AUDIENCE}),
        json!({"client_id": AUDIENCE}),
    ];
    for claims in allowed {
        assert!(
            verifier.verify(&token(claims.clone())).await.is_ok(),
            "{claims}"
        );
    }
    let denied = [
        // An ID token must name the audience in aud, not client_id.
        json!({"token_use": "id", "client_id": AUDIENCE}),
        // An access token carries client_id, never aud.
        json!({"token_use": "access", "aud": AUDIENCE}),
        json!({"token_use": "access", "aud": AUDIENCE, "client_id": AUDIENCE}),
        json!({"token_use": "refresh", "aud": AUDIENCE}),
        json!({"token_use": 1, "aud": AUDIENCE}),
        json!({"aud": "other", "client_id": AUDIENCE}),
    ];
    for claims in denied {
        assert!(
            matches!(
                verifier.verify(&token(claims.clone())).await,
                Err(Rejection::Deny(_))
            ),
            "{claims}"
        );
    }
}

#[tokio::test]
async fn a_deployed_verifier_never_fetches_keys_over_http() {
    let keys = keys();
    let issuer = TestIssuer::start(&[&keys.rsa], true).await;
    let deployed = Verifier::new(&issuer.url, AUDIENCE, Duration::from_secs(30));
    let claims = issuer.claims(AUDIENCE, "u", "u");
    assert!(matches!(
        deployed.verify(&keys.rsa.token(&claims)).await,
        Err(Rejection::Unavailable(_))
    ));
    assert_eq!(issuer.fetches(), 0);
}
