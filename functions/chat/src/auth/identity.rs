//! Who is talking: display names, cleaned the same way whether they come from a signed
//! token's claims (`AuthMode=jwt`) or from the `?name=` of an open chat, and the identity
//! API Gateway hands every route in `requestContext.authorizer`.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// The longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// The claims a display name is taken from, first present (and non-empty once cleaned) wins.
pub const NAME_CLAIMS: &[&str] = &[
    "name",
    "preferred_username",
    "cognito:username",
    // Cognito access tokens carry the user name as `username`.
    "username",
    "email",
    "sub",
];

/// A display name safe to show: control characters removed, whitespace runs collapsed to
/// one space, trimmed, at most [`MAX_NAME_CHARS`] characters. `None` when nothing is left.
pub fn clean_name(raw: &str) -> Option<String> {
    let mut name = String::new();
    let mut space = false;
    for c in raw.chars().filter(|c| !c.is_control()) {
        if c.is_whitespace() {
            space = !name.is_empty();
            continue;
        }
        if std::mem::take(&mut space) {
            name.push(' ');
        }
        name.push(c);
    }
    match name.char_indices().nth(MAX_NAME_CHARS) {
        Some((end, _)) => Some(name[..end].trim_end().to_owned()),
        None if name.is_empty() => None,
        None => Some(name),
    }
}

/// The display name of a token's claims (see [`NAME_CLAIMS`]).
pub fn display_name(claims: &Map<String, Value>) -> Option<String> {
    NAME_CLAIMS
        .iter()
        .filter_map(|claim| claims.get(*claim)?.as_str())
        .find_map(clean_name)
}

/// The name of someone who gave none: `guest-` and four characters of the connection id.
pub fn guest_name(connection_id: &str) -> String {
    let tag: String = connection_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(4)
        .collect();
    format!("guest-{tag}")
}

/// The signed-in user a `$connect` authorizer vouched for, as every later event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub name: String,
}

impl Identity {
    /// Reads `requestContext.authorizer` (`userId`, `name`); `None` when the authorizer
    /// vouched for no user (open mode: it lets everyone in with a `principalId` only).
    pub fn from_authorizer(fields: &HashMap<String, Value>) -> Option<Identity> {
        let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
        let user_id = text("userId")?;
        let name = text("name")
            .as_deref()
            .and_then(clean_name)
            .unwrap_or_else(|| clean_name(&user_id).unwrap_or_else(|| "user".to_owned()));
        Some(Identity { user_id, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_cleaned_and_capped() {
        assert_eq!(clean_name("  alice  ").as_deref(), Some("alice"));
        assert_eq!(clean_name("al\u{0}i\u{7}ce\n").as_deref(), Some("alice"));
        assert_eq!(
            clean_name("Ada \t\n Lovelace").as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(clean_name(" \u{1b}\r\n "), None);
        assert_eq!(clean_name(""), None);
        let long = clean_name(&"é".repeat(100)).unwrap();
        assert_eq!(long.chars().count(), MAX_NAME_CHARS);
        let cut_at_space = clean_name(&format!("{} b", "a".repeat(31))).unwrap();
        assert_eq!(
            cut_at_space,
            "a".repeat(31),
            "no trailing space after the cut"
        );
    }

    #[test]
    fn display_name_follows_the_claim_order() {
        let claims = |value: Value| value.as_object().unwrap().clone();
        let all = claims(
            json!({"sub": "s-1", "email": "e@x", "cognito:username": "cog",
            "preferred_username": "pref", "name": "Full Name"}),
        );
        assert_eq!(display_name(&all).as_deref(), Some("Full Name"));
        let cognito = claims(json!({"sub": "s-1", "cognito:username": "cog", "name": " \n "}));
        assert_eq!(display_name(&cognito).as_deref(), Some("cog"));
        let access = claims(json!({"sub": "s-1", "username": "alice", "email": "a@x"}));
        assert_eq!(display_name(&access).as_deref(), Some("alice"));
        let only_sub = claims(json!({"sub": "s-1", "email": 7}));
        assert_eq!(display_name(&only_sub).as_deref(), Some("s-1"));
        assert_eq!(display_name(&claims(json!({}))), None);
    }

    #[test]
    fn guests_are_named_from_their_connection() {
        assert_eq!(guest_name("R1kmxc2VNjMCFIA="), "guest-R1km");
        assert_eq!(guest_name("+/=a"), "guest-a");
    }

    #[test]
    fn identity_comes_from_the_authorizer_context() {
        let fields: HashMap<String, Value> = serde_json::from_value(json!({
            "principalId": "sub-1", "userId": "sub-1", "name": "alice", "integrationLatency": 3
        }))
        .unwrap();
        assert_eq!(
            Identity::from_authorizer(&fields),
            Some(Identity {
                user_id: "sub-1".into(),
                name: "alice".into()
            })
        );
        assert_eq!(Identity::from_authorizer(&HashMap::new()), None);
        let open: HashMap<String, Value> =
            serde_json::from_value(json!({"principalId": "anonymous", "integrationLatency": 1}))
                .unwrap();
        assert_eq!(Identity::from_authorizer(&open), None, "open mode: no user");
    }
}
