//! The `$connect` REQUEST authorizer: it verifies the `token` query parameter as a JWT of
//! `JWT_ISSUER` for `JWT_AUDIENCE` ([`verify`], keys from [`jwks`]) and answers API
//! Gateway with an IAM policy on the method ARN: Allow with `principalId` = `sub` and
//! `context` = `{userId, name}` (which every later route of the connection receives in
//! `requestContext.authorizer`), or Deny (403). Keys that cannot be fetched fail the
//! invocation (500). Nothing of the token is logged but its `sub` and a deny's reason.

pub mod jwks;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

pub use verify::{Rejection, Verified, Verifier};

/// The query string parameter the template names as the authorizer's identity source.
pub const TOKEN_PARAMETER: &str = "token";

/// The authorizer's settings: whose tokens, for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
}

impl AuthConfig {
    /// Reads `JWT_ISSUER` and `JWT_AUDIENCE` through `var`; both are required, and the
    /// issuer must be `https://` (or `http://` on loopback, for local issuers). The issuer
    /// is kept exactly as given: tokens' `iss` must equal it, trailing slash and all.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<AuthConfig, String> {
        let required = |name: &str| {
            var(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
                .ok_or_else(|| format!("{name} must be set when AuthMode is jwt"))
        };
        let issuer = required("JWT_ISSUER")?;
        if !jwks::allowed_url(&issuer) {
            return Err(format!(
                "JWT_ISSUER {issuer:?} must be an https:// URL (http:// only on loopback)"
            ));
        }
        Ok(AuthConfig {
            issuer,
            audience: required("JWT_AUDIENCE")?,
        })
    }
}

/// What one container builds once: the verifier and its key cache.
pub struct Authorizer {
    verifier: Verifier,
}

impl Authorizer {
    pub fn new(config: &AuthConfig, min_refresh: Duration) -> Authorizer {
        Authorizer {
            verifier: Verifier::new(&config.issuer, &config.audience, min_refresh),
        }
    }

    /// Answers one REQUEST authorizer event: the policy, or an error when the issuer's
    /// keys cannot be had (API Gateway then refuses the handshake with 500).
    pub async fn answer(&self, event: &Value) -> Result<Value, Unavailable> {
        let method_arn = event
            .get("methodArn")
            .and_then(Value::as_str)
            .unwrap_or("*");
        let token = event
            .pointer(&format!("/queryStringParameters/{TOKEN_PARAMETER}"))
            .and_then(Value::as_str);
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            tracing::info!(reason = "no token", "denied");
            return Ok(policy("anonymous", "Deny", method_arn, None));
        };
        match self.verifier.verify(token).await {
            Ok(Verified { sub, name }) => {
                tracing::info!(sub, "allowed");
                let context = json!({"userId": sub, "name": name});
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
    let config = AuthConfig::from_lookup(|name| std::env::var(name).ok())?;
    let authorizer = Arc::new(Authorizer::new(&config, jwks::DEFAULT_MIN_REFRESH));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let authorizer = Arc::clone(&authorizer);
        async move { Ok::<Value, Error>(authorizer.answer(&event.payload).await?) }
    }))
    .await
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
                audience: "client".into()
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
        assert!(config(&[
            ("JWT_ISSUER", "http://127.0.0.1:3003"),
            ("JWT_AUDIENCE", "a")
        ])
        .is_ok());
    }

    #[tokio::test]
    async fn no_token_is_denied_on_the_method_arn() {
        let config =
            config(&[("JWT_ISSUER", "http://127.0.0.1:9"), ("JWT_AUDIENCE", "a")]).unwrap();
        let authorizer = Authorizer::new(&config, Duration::from_secs(30));
        let arn = "arn:aws:execute-api:us-east-1:123456789012:abc/Test/$connect";
        let answer = authorizer
            .answer(&json!({"type": "REQUEST", "methodArn": arn}))
            .await
            .unwrap();
        assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Deny");
        assert_eq!(answer["policyDocument"]["Statement"][0]["Resource"], arn);
        assert!(answer.get("context").is_none());
    }
}
