//! The `$connect` REQUEST authorizer. With `AUTH_MODE=jwt` it verifies the caller's token
//! as a JWT of `JWT_ISSUER` for `JWT_AUDIENCE` ([`verify`], keys from [`jwks`]) and
//! answers API Gateway with an IAM policy on the method ARN: Allow with `principalId` =
//! `sub` and `context` = `{userId, name, moderator}` (`moderator`: the token's groups
//! claim lists `MODERATOR_GROUP`; which every later route of the connection
//! receives in `requestContext.authorizer`), or Deny (403). Keys that cannot be fetched
//! fail the invocation (500). With `AUTH_MODE=open` it lets everyone in with no context
//! (the template puts the authorizer on `$connect` in every mode: see `template.yaml`).
//!
//! The token comes as `?token=` (wscat, scripts) or, from the web page, as an entry
//! `token.<JWT>` of the handshake's `Sec-WebSocket-Protocol` beside [`SUBPROTOCOL`], so that
//! it stays out of URLs and the logs that record them; `$connect` answers with
//! [`SUBPROTOCOL`], never the token entry. Nothing of the token is logged but its `sub`
//! and a deny's reason.

pub mod identity;
pub mod jwks;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

pub use verify::{Rejection, Verified, Verifier};

/// The query string parameter a token may come in.
pub const TOKEN_PARAMETER: &str = "token";

/// The WebSocket subprotocol the page asks for (and `$connect` answers with) when it
/// passes its token in `Sec-WebSocket-Protocol`.
pub const SUBPROTOCOL: &str = "chat";

/// The prefix of the `Sec-WebSocket-Protocol` entry that carries a token: `token.<JWT>`
/// (a JWT's characters are all valid in a subprotocol name).
pub const TOKEN_SUBPROTOCOL_PREFIX: &str = "token.";

/// The entries of a `Sec-WebSocket-Protocol` header value, trimmed, empty ones skipped.
pub fn subprotocols(header: &str) -> impl Iterator<Item = &str> {
    header.split(',').map(str::trim).filter(|p| !p.is_empty())
}

/// The token of a REQUEST authorizer event: `?token=`, else the `token.` entry of
/// `Sec-WebSocket-Protocol` (header names matched without regard to case).
pub fn event_token(event: &Value) -> Option<&str> {
    let query = event
        .pointer(&format!("/queryStringParameters/{TOKEN_PARAMETER}"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    query.or_else(|| {
        let headers = event.get("headers")?.as_object()?;
        let (_, value) = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-protocol"))?;
        subprotocols(value.as_str()?)
            .find_map(|p| p.strip_prefix(TOKEN_SUBPROTOCOL_PREFIX))
            .filter(|t| !t.is_empty())
    })
}

/// How the authorizer decides (`AUTH_MODE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Everyone is let in, with no identity (names come from `?name=`).
    Open,
    /// A valid token of the issuer is required.
    Jwt(AuthConfig),
}

impl Mode {
    /// Reads `AUTH_MODE` (`open`, or `jwt` — also when unset) and, for `jwt`, the
    /// [`AuthConfig`].
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Mode, String> {
        match var("AUTH_MODE").as_deref().map(str::trim) {
            Some("open") => Ok(Mode::Open),
            None | Some("jwt") => Ok(Mode::Jwt(AuthConfig::from_lookup(var)?)),
            Some(other) => Err(format!("AUTH_MODE {other:?} is neither open nor jwt")),
        }
    }
}

/// The authorizer's settings: whose tokens, for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    /// `JWT_ALLOW_LOOPBACK_ISSUER=true`, which only the local stack sets: an `http://`
    /// issuer on loopback is accepted. Deployed, the issuer must be `https://`.
    pub allow_loopback: bool,
    /// Members of this group (`MODERATOR_GROUP`, default `moderators`) are moderators …
    pub moderator_group: String,
    /// … as the token's claim `GROUPS_CLAIM` (default `cognito:groups`) lists them.
    pub groups_claim: String,
}

impl AuthConfig {
    /// Reads `JWT_ISSUER` and `JWT_AUDIENCE` through `var`; both are required, and the
    /// issuer must be `https://` (`http://` on loopback only with
    /// `JWT_ALLOW_LOOPBACK_ISSUER=true`). The issuer is kept exactly as given: tokens'
    /// `iss` must equal it, trailing slash and all.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<AuthConfig, String> {
        let required = |name: &str| {
            var(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
                .ok_or_else(|| format!("{name} must be set when AuthMode is jwt"))
        };
        let issuer = required("JWT_ISSUER")?;
        let allow_loopback = var("JWT_ALLOW_LOOPBACK_ISSUER").is_some_and(|v| v.trim() == "true");
        if !jwks::allowed_url(&issuer, allow_loopback) {
            return Err(format!("JWT_ISSUER {issuer:?} must be an https:// URL"));
        }
        let or = |name: &str, default: &str| {
            var(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Ok(AuthConfig {
            issuer,
            audience: required("JWT_AUDIENCE")?,
            allow_loopback,
            moderator_group: or("MODERATOR_GROUP", DEFAULT_MODERATOR_GROUP),
            groups_claim: or("GROUPS_CLAIM", verify::DEFAULT_GROUPS_CLAIM),
        })
    }
}

/// The moderators' group unless `MODERATOR_GROUP` names another.
pub const DEFAULT_MODERATOR_GROUP: &str = "moderators";

/// What one container builds once: the verifier and its key cache.
pub struct Authorizer {
    verifier: Verifier,
    moderator_group: String,
}

impl Authorizer {
    pub fn new(config: &AuthConfig, min_refresh: Duration) -> Authorizer {
        Authorizer {
            verifier: Verifier::with_loopback(
                &config.issuer,
                &config.audience,
                min_refresh,
                config.allow_loopback,
            )
            .with_groups_claim(&config.groups_claim),
            moderator_group: config.moderator_group.clone(),
        }
    }

    /// Answers one REQUEST authorizer event: the policy, or an error when the issuer's
    /// keys cannot be had (API Gateway then refuses the handshake with 500). An event
    /// without a `methodArn` is denied.
    pub async fn answer(&self, event: &Value) -> Result<Value, Unavailable> {
        let Some(method_arn) = method_arn(event) else {
            tracing::warn!(reason = "no methodArn", "denied");
            return Ok(policy("anonymous", "Deny", "*", None));
        };
        let Some(token) = event_token(event) else {
            tracing::info!(reason = "no token", "denied");
            return Ok(policy("anonymous", "Deny", method_arn, None));
        };
        match self.verifier.verify(token).await {
            Ok(Verified { sub, name, groups }) => {
                let moderator = groups.contains(&self.moderator_group);
                tracing::info!(sub, moderator, "allowed");
                let context = json!({"userId": sub, "name": name, "moderator": moderator});
                Ok(policy(&sub, "Allow", method_arn, Some(context)))
            }
            Err(Rejection::Deny(reason)) => {
                tracing::info!(reason, "denied");
                Ok(policy("anonymous", "Deny", method_arn, None))
            }
            Err(Rejection::Unavailable(error)) => {
                tracing::error!(%error, issuer = self.verifier.issuer(), "cannot fetch the issuer's keys");
                Err(error)
            }
        }
    }
}

pub use jwks::Unavailable;

/// The event's `methodArn`, when it has a non-empty one.
fn method_arn(event: &Value) -> Option<&str> {
    event
        .get("methodArn")
        .and_then(Value::as_str)
        .filter(|arn| !arn.is_empty())
}

/// An authorizer answer: an IAM policy for `execute-api:Invoke` on the method ARN.
fn policy(principal: &str, effect: &str, method_arn: &str, context: Option<Value>) -> Value {
    let mut answer = json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Action": "execute-api:Invoke",
                "Effect": effect,
                "Resource": method_arn,
            }],
        },
    });
    if let Some(context) = context {
        answer["context"] = context;
    }
    answer
}

/// Runs the authorizer under the Lambda runtime until the container is shut down.
pub async fn run() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    crate::metrics::init_from_env();
    let authorizer = match Mode::from_lookup(|name| std::env::var(name).ok())? {
        Mode::Open => None,
        Mode::Jwt(config) => Some(Arc::new(Authorizer::new(
            &config,
            jwks::DEFAULT_MIN_REFRESH,
        ))),
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let authorizer = authorizer.clone();
        async move {
            let answer = match authorizer {
                Some(authorizer) => authorizer.answer(&event.payload).await,
                None => Ok(open_answer(&event.payload)),
            };
            count_outcome(&answer);
            crate::metrics::flush();
            Ok::<Value, Error>(answer?)
        }
    }))
    .await
}

/// Counts an answer: Allow, Deny, or an error (API Gateway answers the handshake 500).
fn count_outcome(answer: &Result<Value, Unavailable>) {
    use crate::metrics::{count, AUTHORIZER_ALLOWS, AUTHORIZER_DENIES, AUTHORIZER_ERRORS};
    let name = match answer {
        Ok(policy) if policy["policyDocument"]["Statement"][0]["Effect"] == "Allow" => {
            AUTHORIZER_ALLOWS
        }
        Ok(_) => AUTHORIZER_DENIES,
        Err(_) => AUTHORIZER_ERRORS,
    };
    count(name, 1);
}

/// `AUTH_MODE=open`: everyone is let in, with no context (so no identity: the connection
/// is named from `?name=` or as a guest); an event without a `methodArn` is denied.
pub fn open_answer(event: &Value) -> Value {
    match method_arn(event) {
        Some(arn) => policy("anonymous", "Allow", arn, None),
        None => policy("anonymous", "Deny", "*", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<AuthConfig, String> {
        AuthConfig::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_issuer_and_audience_are_required_and_checked() {
        let cognito = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC/";
        assert_eq!(
            config(&[("JWT_ISSUER", cognito), ("JWT_AUDIENCE", "client")]).unwrap(),
            AuthConfig {
                issuer: cognito.into(),
                audience: "client".into(),
                allow_loopback: false,
                moderator_group: "moderators".into(),
                groups_claim: "cognito:groups".into(),
            }
        );
        assert!(config(&[("JWT_AUDIENCE", "client")])
            .unwrap_err()
            .contains("JWT_ISSUER"));
        assert!(config(&[("JWT_ISSUER", cognito), ("JWT_AUDIENCE", " ")])
            .unwrap_err()
            .contains("JWT_AUDIENCE"));
        assert!(config(&[
            ("JWT_ISSUER", "http://issuer.example"),
            ("JWT_AUDIENCE", "a")
        ])
        .unwrap_err()
        .contains("https"));
        // Loopback http only where the local stack allows it.
        assert!(config(&[
            ("JWT_ISSUER", "http://127.0.0.1:3003"),
            ("JWT_AUDIENCE", "a")
        ])
        .unwrap_err()
        .contains("https"));
        assert!(config(&[
            ("JWT_ISSUER", "http://127.0.0.1:3003"),
            ("JWT_AUDIENCE", "a"),
            ("JWT_ALLOW_LOOPBACK_ISSUER", "true")
        ])
        .is_ok_and(|c| c.allow_loopback));
    }

    #[test]
    fn the_mode_decides_whether_an_issuer_is_needed() {
        let mode = |vars: &[(&str, &str)]| {
            Mode::from_lookup(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(mode(&[("AUTH_MODE", "open")]), Ok(Mode::Open));
        assert!(mode(&[("AUTH_MODE", "jwt")])
            .unwrap_err()
            .contains("JWT_ISSUER"));
        assert!(mode(&[]).unwrap_err().contains("JWT_ISSUER"));
        assert!(mode(&[("AUTH_MODE", "cognito!")])
            .unwrap_err()
            .contains("neither"));
        let arn = "arn:aws:execute-api:us-east-1:123456789012:abc/Test/$connect";
        let open = open_answer(&json!({"methodArn": arn}));
        assert_eq!(open["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(open["policyDocument"]["Statement"][0]["Resource"], arn);
        assert!(open.get("context").is_none());
        for event in [json!({}), json!({"methodArn": ""}), json!({"methodArn": 7})] {
            let answer = open_answer(&event);
            assert_eq!(
                answer["policyDocument"]["Statement"][0]["Effect"], "Deny",
                "{event}"
            );
        }
    }

    #[test]
    fn the_token_comes_from_the_query_or_the_subprotocol_header() {
        let query = json!({"queryStringParameters": {"token": "a.b.c"},
            "headers": {"Sec-WebSocket-Protocol": "chat, token.x.y.z"}});
        assert_eq!(event_token(&query), Some("a.b.c"));
        let header = json!({"headers": {"sec-websocket-protocol": "chat,token.x.y.z"}});
        assert_eq!(event_token(&header), Some("x.y.z"));
        let empty = json!({"queryStringParameters": {"token": ""},
            "headers": {"Sec-WebSocket-Protocol": "chat, token."}});
        assert_eq!(event_token(&empty), None);
        assert_eq!(event_token(&json!({"headers": {"X": "token.a"}})), None);
        assert_eq!(event_token(&json!({})), None);
    }

    #[tokio::test]
    async fn no_token_is_denied_on_the_method_arn() {
        let config = config(&[
            ("JWT_ISSUER", "http://127.0.0.1:9"),
            ("JWT_AUDIENCE", "a"),
            ("JWT_ALLOW_LOOPBACK_ISSUER", "true"),
        ])
        .unwrap();
        let authorizer = Authorizer::new(&config, Duration::from_secs(30));
        let arn = "arn:aws:execute-api:us-east-1:123456789012:abc/Test/$connect";
        let answer = authorizer
            .answer(&json!({"type": "REQUEST", "methodArn": arn}))
            .await
            .unwrap();
        assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
        assert_eq!(answer["policyDocument"]["Statement"][0]["Resource"], arn);
        assert!(answer.get("context").is_none());
        // No methodArn: denied before anything else, token or not.
        let answer = authorizer
            .answer(&json!({"type": "REQUEST", "queryStringParameters": {"token": "a.b.c"}}))
            .await
            .unwrap();
        assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
    }
}
