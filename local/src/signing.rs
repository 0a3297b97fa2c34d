//! Keys that sign JWTs, made on the spot with aws-lc-rs: RSA (RS256) and P-256 (ES256),
//! each with its public JWK and compact-JWS signing. The development issuer signs with
//! one; tests make their own to play other issuers.

use anyhow::{anyhow, Result};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A private signing key with its key id.
pub struct SigningKey {
    pub kid: String,
    pair: Pair,
}

impl SigningKey {
    /// A new 2048-bit RSA key for RS256.
    pub fn rs256(kid: &str) -> Result<SigningKey> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| anyhow!("cannot generate an RSA key"))?;
        Ok(SigningKey {
            kid: kid.to_owned(),
            pair: Pair::Rsa(pair),
        })
    }

    /// A new P-256 key for ES256.
    pub fn es256(kid: &str) -> Result<SigningKey> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| anyhow!("cannot generate a P-256 key"))?;
        Ok(SigningKey {
            kid: kid.to_owned(),
            pair: Pair::Ec(pair),
        })
    }

    /// `RS256` or `ES256`.
    pub fn alg(&self) -> &'static str {
        match self.pair {
            Pair::Rsa(_) => "RS256",
            Pair::Ec(_) => "ES256",
        }
    }

    /// The public key as a JWK, as an issuer's JWKS lists it.
    pub fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Rsa(pair) => {
                let public = pair.public_key();
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero())})
            }
            Pair::Ec(pair) => {
                // An uncompressed point: 0x04, then x and y, 32 bytes each.
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "kid": self.kid, "use": "sig", "alg": "ES256", "crv": "P-256",
                    "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
        }
    }

    /// The public key's raw bytes (DER for RSA, the point for EC): what an attacker who
    /// reads the JWKS has, and might try as an HMAC secret.
    pub fn public_bytes(&self) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Ec(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    /// A token: header `{alg, typ, kid}` and `claims`, signed.
    pub fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg(), "typ": "JWT", "kid": self.kid});
        self.sign(&header, claims)
    }

    /// `header` and `claims` as they are, signed by this key (a test may lie in the header).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
                    .expect("an RSA key signs any input");
                signature
            }
            Pair::Ec(pair) => pair
                .sign(&rng, input.as_bytes())
                .expect("a P-256 key signs any input")
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }
}

/// `base64url(header).base64url(claims)`, the part of a JWS that is signed.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// Unpadded base64url, as JOSE writes bytes.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
