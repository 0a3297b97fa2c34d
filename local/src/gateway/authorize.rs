//! The `$connect` Lambda REQUEST authorizer, run as API Gateway runs it: identity sources
//! first (one missing or empty → 401, the function not invoked), then the function with
//! the REQUEST event, then its answer: an IAM policy that must allow `execute-api:Invoke`
//! on the method ARN (an explicit Deny, or no Allow → 403), and a `context` of strings,
//! numbers and booleans. A failed invocation or a malformed answer → 500. What it allowed
//! becomes `requestContext.authorizer` of every event of the connection.

use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::Gateway;
use crate::events::{self, ConnectionInfo};
use crate::stack::{Authorizer, IdentitySource};

/// The largest `context` API Gateway accepts from an authorizer, serialised.
pub const MAX_CONTEXT_BYTES: usize = 8 * 1024;

/// Runs the authorizer for one handshake: `requestContext.authorizer` for the connection's
/// events, or the status and message that refuse the handshake.
pub(super) async fn authorize(
    gateway: &Gateway,
    authorizer: &Authorizer,
    info: &ConnectionInfo,
    headers: &[(String, String)],
    query: &[(String, String)],
) -> Result<Value, (StatusCode, &'static str)> {
    let unauthorized = (StatusCode::UNAUTHORIZED, "Unauthorized");
    let forbidden = (StatusCode::FORBIDDEN, "Forbidden");
    let failed = (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    if !authorizer
        .identity_sources
        .iter()
        .all(|source| present(source, headers, query))
    {
        return Err(unauthorized);
    }
    let event = events::authorizer_request(
        info,
        headers,
        query,
        &authorizer.method_arn,
        super::now_ms(),
    );
    let started = Instant::now();
    let answer = gateway
        .functions
        .invoke(&authorizer.function, &event)
        .await
        .map_err(|_| failed)?;
    let latency = started.elapsed().as_millis() as u64;
    match allowed(&answer, &authorizer.method_arn) {
        Err(problem) => {
            gateway.log.line(&format!(
                "{}: malformed authorizer answer ({problem}); the handshake gets 500",
                authorizer.logical_id
            ));
            Err(failed)
        }
        Ok(false) => Err(forbidden),
        Ok(true) => request_context_authorizer(&answer, latency).map_err(|problem| {
            gateway.log.line(&format!(
                "{}: {problem}; the handshake gets 500",
                authorizer.logical_id
            ));
            failed
        }),
    }
}

/// Whether the handshake carries a non-empty value for `source`: the last one given, the
/// one the event's single-value map carries.
fn present(
    source: &IdentitySource,
    headers: &[(String, String)],
    query: &[(String, String)],
) -> bool {
    let found = match source {
        IdentitySource::Query(name) => query.iter().rev().find(|(key, _)| key == name),
        IdentitySource::Header(name) => headers
            .iter()
            .rev()
            .find(|(key, _)| key.eq_ignore_ascii_case(name)),
    };
    found.is_some_and(|(_, value)| !value.is_empty())
}

/// Whether the answer's policy allows invoking `method_arn`; `Err` for an answer API
/// Gateway cannot read.
fn allowed(answer: &Value, method_arn: &str) -> Result<bool, String> {
    if !answer.get("principalId").is_some_and(Value::is_string) {
        return Err("no principalId string".into());
    }
    let statements = match answer.pointer("/policyDocument/Statement") {
        Some(Value::Array(statements)) => statements.clone(),
        Some(statement @ Value::Object(_)) => vec![statement.clone()],
        _ => return Err("no policyDocument.Statement".into()),
    };
    let mut allow = false;
    for statement in &statements {
        let strings = |key: &str| -> Result<Vec<String>, String> {
            match statement.get(key) {
                Some(Value::String(one)) => Ok(vec![one.clone()]),
                Some(Value::Array(many)) => many
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or(format!("{key} holds a non-string"))
                    })
                    .collect(),
                _ => Err(format!("a statement has no {key}")),
            }
        };
        let invokes = strings("Action")?
            .iter()
            .any(|action| glob(&action.to_ascii_lowercase(), "execute-api:invoke"));
        let covers = strings("Resource")?
            .iter()
            .any(|resource| glob(resource, method_arn));
        match statement.get("Effect").and_then(Value::as_str) {
            Some("Deny") if invokes && covers => return Ok(false),
            Some("Allow") => allow |= invokes && covers,
            Some("Deny") => {}
            _ => return Err("a statement's Effect is neither Allow nor Deny".into()),
        }
    }
    Ok(allow)
}

/// `principalId`, the `context` entries and `integrationLatency`, as later events carry them.
fn request_context_authorizer(answer: &Value, latency_ms: u64) -> Result<Value, String> {
    let mut fields = Map::new();
    match answer.get("context") {
        None | Some(Value::Null) => {}
        Some(Value::Object(context)) => {
            if serde_json::to_string(context).map_or(0, |text| text.len()) > MAX_CONTEXT_BYTES {
                return Err(format!("its context is over {MAX_CONTEXT_BYTES} bytes"));
            }
            for (key, value) in context {
                if !(value.is_string() || value.is_number() || value.is_boolean()) {
                    return Err(format!("context.{key} is not a string, number or boolean"));
                }
                fields.insert(key.clone(), value.clone());
            }
        }
        Some(_) => return Err("its context is not an object".into()),
    }
    fields.insert("principalId".into(), answer["principalId"].clone());
    fields.insert("integrationLatency".into(), Value::from(latency_ms));
    Ok(Value::Object(fields))
}

/// IAM's wildcard match: `*` any run of characters, `?` any one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:chatapi000/Test/$connect";

    fn answer(effect: &str, resource: &str) -> Value {
        json!({"principalId": "u1", "policyDocument": {"Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]}})
    }

    #[test]
    fn the_policy_decides() {
        assert_eq!(allowed(&answer("Allow", ARN), ARN), Ok(true));
        assert_eq!(allowed(&answer("Deny", ARN), ARN), Ok(false));
        assert_eq!(
            allowed(
                &answer(
                    "Allow",
                    "arn:aws:execute-api:us-east-1:123456789012:chatapi000/*"
                ),
                ARN
            ),
            Ok(true)
        );
        assert_eq!(
            allowed(
                &answer(
                    "Allow",
                    "arn:aws:execute-api:us-east-1:123456789012:other/*"
                ),
                ARN
            ),
            Ok(false),
            "an Allow on another API allows nothing here"
        );
        let mut both = answer("Allow", "*");
        both["policyDocument"]["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Action": ["execute-api:*"], "Effect": "Deny", "Resource": [ARN]}));
        assert_eq!(allowed(&both, ARN), Ok(false), "an explicit Deny wins");
        assert!(allowed(&json!({"policyDocument": {}}), ARN).is_err());
        assert!(allowed(&json!({"principalId": "u"}), ARN).is_err());
        assert!(allowed(&answer("Maybe", ARN), ARN).is_err());
        assert!(allowed(&Value::Null, ARN).is_err());
    }

    #[test]
    fn the_context_must_be_flat_and_small() {
        let mut ok = answer("Allow", ARN);
        ok["context"] = json!({"userId": "u1", "admin": false, "n": 3});
        let fields = request_context_authorizer(&ok, 7).unwrap();
        assert_eq!(fields["principalId"], "u1");
        assert_eq!(fields["userId"], "u1");
        assert_eq!(fields["integrationLatency"], 7);
        let mut nested = answer("Allow", ARN);
        nested["context"] = json!({"roles": ["a"]});
        assert!(request_context_authorizer(&nested, 1).is_err());
        let mut big = answer("Allow", ARN);
        big["context"] = json!({"blob": "x".repeat(MAX_CONTEXT_BYTES)});
        assert!(request_context_authorizer(&big, 1).is_err());
    }

    #[test]
    fn globs_match_like_iam() {
        assert!(glob("*", "anything"));
        assert!(glob("arn:*/Test/$connect", ARN));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b", "aXXc"));
        assert!(glob("", ""));
        assert!(!glob("", "x"));
    }

    #[test]
    fn identity_sources_must_be_present_and_non_empty() {
        let query = vec![
            ("token".to_owned(), "abc".to_owned()),
            ("e".to_owned(), String::new()),
            ("twice".to_owned(), "x".to_owned()),
            ("twice".to_owned(), String::new()),
        ];
        let headers = vec![("Authorization".to_owned(), "Bearer x".to_owned())];
        assert!(present(
            &IdentitySource::Query("token".into()),
            &headers,
            &query
        ));
        assert!(
            !present(&IdentitySource::Query("twice".into()), &headers, &query),
            "the last value counts, as in the event"
        );
        assert!(!present(
            &IdentitySource::Query("e".into()),
            &headers,
            &query
        ));
        assert!(!present(
            &IdentitySource::Query("Token".into()),
            &headers,
            &query
        ));
        assert!(present(
            &IdentitySource::Header("authorization".into()),
            &headers,
            &query
        ));
        assert!(!present(
            &IdentitySource::Header("x-key".into()),
            &headers,
            &query
        ));
    }
}
