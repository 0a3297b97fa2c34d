//! Verifying a token: an asymmetric signature by a key of the issuer's JWKS (in an
//! algorithm that key allows), `iss`, `exp`/`nbf` with [`LEEWAY_SECS`], and the audience.
//! Where the token says what it is (`token_use`, as Cognito's do), it must be an ID token
//! whose `aud` is the audience or an access token whose `client_id` is; any other use is
//! refused. Without `token_use`, `aud` must hold the audience (or, with no `aud`,
//! `client_id` must be it). Every way a token can be wrong is a [`Rejection::Deny`] with a
//! reason; none panics.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::jwks::{Jwks, Unavailable};
use crate::auth::identity;

/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;

/// A token longer than this is not parsed at all.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The signature algorithms accepted: asymmetric only, so a public key can never sign.
const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub sub: String,
    pub name: String,
    /// The groups the token's groups claim lists (see [`Verifier::with_groups_claim`]).
    pub groups: Vec<String>,
}

/// Why a token was not accepted.
#[derive(Debug)]
pub enum Rejection {
    /// The token is not good: the handshake is refused (403).
    Deny(String),
    /// The issuer's keys could not be fetched: the authorizer fails (500).
    Unavailable(Unavailable),
}

fn deny(reason: impl Into<String>) -> Rejection {
    Rejection::Deny(reason.into())
}

/// Checks tokens of one issuer for one audience.
pub struct Verifier {
    issuer: String,
    audience: String,
    keys: Jwks,
    groups_claim: String,
}

/// The claim a token lists its user's groups in, unless told otherwise: Cognito's.
pub const DEFAULT_GROUPS_CLAIM: &str = "cognito:groups";

impl Verifier {
    /// A verifier fetching keys over `https://` only.
    pub fn new(issuer: &str, audience: &str, min_refresh: Duration) -> Verifier {
        Verifier::with_loopback(issuer, audience, min_refresh, false)
    }

    /// A verifier that, with `allow_loopback` (the local stack's), also fetches keys from
    /// an `http://` issuer on loopback.
    pub fn with_loopback(
        issuer: &str,
        audience: &str,
        min_refresh: Duration,
        allow_loopback: bool,
    ) -> Verifier {
        Verifier {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys: Jwks::new(issuer, min_refresh, allow_loopback),
            groups_claim: DEFAULT_GROUPS_CLAIM.to_owned(),
        }
    }

    /// Reads the user's groups from `claim` (a list of strings, or one string of
    /// space-separated names) rather than `cognito:groups`.
    pub fn with_groups_claim(mut self, claim: &str) -> Verifier {
        self.groups_claim = claim.to_owned();
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub async fn verify(&self, token: &str) -> Result<Verified, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(deny(format!(
                "token is {} bytes, over {MAX_TOKEN_BYTES}",
                token.len()
            )));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| deny(format!("malformed token: {error}")))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(deny(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let jwk = self
            .keys
            .key(header.kid.as_deref())
            .await
            .map_err(Rejection::Unavailable)?
            .ok_or_else(|| match &header.kid {
                Some(_) => deny("signed by a key the issuer does not publish (unknown kid)"),
                None => deny("token names no key (kid) and the issuer has several"),
            })?;
        if !key_allows(&jwk, header.alg) {
            return Err(deny(format!(
                "algorithm {:?} is not the one of key {}",
                header.alg,
                jwk.common.key_id.as_deref().unwrap_or("(no kid)")
            )));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|error| deny(format!("the issuer's key is unusable: {error}")))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|error| deny(reason(error.kind())))?
            .claims;
        self.check_audience(&claims).map_err(deny)?;
        let sub = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => return Err(deny("sub is not a non-empty string")),
        };
        let name = identity::display_name(&claims).unwrap_or_else(|| "user".to_owned());
        let groups = match claims.get(&self.groups_claim) {
            Some(Value::Array(groups)) => groups
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(groups)) => groups.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        Ok(Verified { sub, name, groups })
    }

    /// The audience rule of the module's doc comment.
    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), String> {
        let aud_holds = || match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.audience,
            Some(Value::Array(auds)) => auds.iter().any(|aud| *aud == *self.audience),
            _ => false,
        };
        let client_id_is =
            || claims.get("client_id").and_then(Value::as_str) == Some(&self.audience);
        let matches = match claims.get("token_use") {
            Some(Value::String(used)) if used == "id" => aud_holds(),
            Some(Value::String(used)) if used == "access" => {
                claims.get("aud").is_none() && client_id_is()
            }
            Some(other) => return Err(format!("token_use {other} is neither id nor access")),
            None if claims.contains_key("aud") => aud_holds(),
            None => client_id_is(),
        };
        if matches {
            Ok(())
        } else {
            Err("wrong audience".into())
        }
    }
}

/// Whether `jwk` may verify `alg`: its `alg` if it names one, else its key type and curve;
/// a key published for encryption never verifies.
fn key_allows(jwk: &Jwk, alg: Algorithm) -> bool {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return false;
    }
    if let Some(key_alg) = jwk.common.key_algorithm {
        return signing_algorithm(key_alg) == Some(alg);
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        _ => false,
    }
}

/// The signature algorithm a JWK's `alg` names (`None` for encryption algorithms).
fn signing_algorithm(key_alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match key_alg {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "expired".into(),
        ErrorKind::ImmatureSignature => "not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "wrong issuer".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("no {claim} claim"),
        other => format!("invalid token: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::{CommonParameters, KeyAlgorithm, RSAKeyParameters, RSAKeyType};

    fn rsa_key(alg: Option<KeyAlgorithm>, key_use: Option<PublicKeyUse>) -> Jwk {
        Jwk {
            common: CommonParameters {
                public_key_use: key_use,
                key_algorithm: alg,
                ..Default::default()
            },
            algorithm: AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: "AQAB".into(),
                e: "AQAB".into(),
            }),
        }
    }

    #[test]
    fn a_key_verifies_only_its_own_algorithm() {
        assert!(key_allows(&rsa_key(None, None), Algorithm::RS256));
        assert!(!key_allows(&rsa_key(None, None), Algorithm::ES256));
        assert!(key_allows(
            &rsa_key(Some(KeyAlgorithm::RS256), None),
            Algorithm::RS256
        ));
        assert!(!key_allows(
            &rsa_key(Some(KeyAlgorithm::RS256), None),
            Algorithm::RS512
        ));
        assert!(!key_allows(
            &rsa_key(None, Some(PublicKeyUse::Encryption)),
            Algorithm::RS256
        ));
    }
}
