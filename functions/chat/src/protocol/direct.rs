//! Direct messages between two signed-in users: the `dm` request, and the frame
//! `{"type":"dm","id","seq","with","from","user","name","to","message","sentAt","clientId"?}`.
//!
//! A conversation is kept once, as the sender sees it (`with` = the recipient); every
//! viewer is shown it with `with` naming the *other* user ([`view`]), whether it is the
//! recipient's devices, the sender's own, or a `history` answer.

use serde_json::{json, Map, Value};

use super::{
    chat_text, client_id_field, parse_object, shorten, ErrorCode, ErrorFrame, MAX_CHAT_FRAME_BYTES,
};

/// The route of a direct message.
pub const DM_ACTION: &str = "dm";

/// The longest user id accepted.
pub const MAX_USER_CHARS: usize = 256;

/// What a `dm` request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmRequest {
    pub to: String,
    pub message: String,
    pub client_id: Option<String>,
}

/// Parses `{"action":"dm","to":…,"message":…,"clientId"?:…}`.
pub fn dm_request(body: Option<&str>) -> Result<DmRequest, ErrorFrame> {
    let object = parse_object(body)?;
    let example = r#"{"action":"dm","to":"<their user id>","message":"Hello"}"#;
    let to = user_field(&object, "to", example)?;
    let client_id = client_id_field(&object)?;
    Ok(DmRequest {
        to,
        message: chat_text(&object)?,
        client_id,
    })
}

/// A user id named by `field` of a request.
pub fn user_field(
    object: &Map<String, Value>,
    field: &str,
    example: &str,
) -> Result<String, ErrorFrame> {
    match object.get(field) {
        Some(Value::String(user))
            if !user.is_empty()
                && user.chars().count() <= MAX_USER_CHARS
                && !user.chars().any(char::is_control) =>
        {
            Ok(user.clone())
        }
        _ => Err(ErrorFrame::new(
            ErrorCode::InvalidUser,
            format!(
                "Name the user by \"{field}\": their user id (the \"user\" of their messages and of the member list), a string of at most {MAX_USER_CHARS} characters; for example {example}."
            ),
        )),
    }
}

/// Who sent a direct message, to whom, when, under which ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmEnvelope {
    pub id: String,
    pub from: String,
    pub user: String,
    pub name: String,
    pub to: String,
    pub sent_at: String,
    pub client_id: Option<String>,
}

/// The kept frame of a direct message with `seq` (the sender's view).
pub fn dm_frame(envelope: &DmEnvelope, seq: u64, message: &str) -> String {
    let mut frame = json!({
        "type": "dm",
        "id": envelope.id,
        "seq": seq,
        "with": envelope.to,
        "from": envelope.from,
        "user": envelope.user,
        "name": envelope.name,
        "to": envelope.to,
        "message": message,
        "sentAt": envelope.sent_at,
    });
    if let Some(client_id) = &envelope.client_id {
        frame["clientId"] = json!(client_id);
    }
    frame.to_string()
}

/// Refuses a direct message whose frame would not fit the quota (measured with the
/// largest `seq` there can be, before one is taken).
pub fn check_size(envelope: &DmEnvelope, message: &str) -> Result<(), ErrorFrame> {
    let size = dm_frame(envelope, u64::MAX, message).len();
    if size > MAX_CHAT_FRAME_BYTES {
        return Err(ErrorFrame::new(
            ErrorCode::MessageTooLarge,
            format!(
                "The message is too large to deliver ({size} bytes as a frame, limit {MAX_CHAT_FRAME_BYTES}); send it in smaller parts."
            ),
        ));
    }
    Ok(())
}

/// The kept direct-message frame `kept` as `viewer` sees it: `with` names the other user.
pub fn view(kept: &str, viewer: &str) -> String {
    let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(kept) else {
        return kept.to_owned();
    };
    let text = |key: &str| frame.get(key).and_then(Value::as_str).map(str::to_owned);
    let other = if text("user").as_deref() == Some(viewer) {
        text("to")
    } else {
        text("user")
    };
    if let Some(other) = other {
        frame.insert("with".into(), Value::String(other));
    }
    Value::Object(frame).to_string()
}

/// Where a conversation between two users is kept in the messages table: the same key
/// whoever of the two asks (a JSON pair in order, so no user id can forge another's).
pub fn conversation(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("dm#{}", json!([first, second]))
}

/// Direct messages need a signed-in sender (open mode has no users).
pub fn not_signed_in() -> ErrorFrame {
    ErrorFrame::new(
        ErrorCode::NotSignedIn,
        "Direct messages are between signed-in users; this chat lets people in without signing in, so there is no one to address.",
    )
}

/// No such user has ever signed in here.
pub fn unknown_user(user: &str) -> ErrorFrame {
    ErrorFrame::new(
        ErrorCode::UnknownUser,
        format!(
            "No user \"{}\" has signed in to this chat; pick them from the member list (their \"user\").",
            shorten(user, 64)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> DmEnvelope {
        DmEnvelope {
            id: "m1".into(),
            from: "conn-a".into(),
            user: "alice".into(),
            name: "Alice".into(),
            to: "bob".into(),
            sent_at: "t".into(),
            client_id: Some("k1".into()),
        }
    }

    #[test]
    fn requests_name_a_user_and_a_text() {
        let dm = dm_request(Some(
            r#"{"action":"dm","to":"bob","message":"hi","clientId":"k"}"#,
        ))
        .unwrap();
        assert_eq!((dm.to.as_str(), dm.message.as_str()), ("bob", "hi"));
        assert_eq!(dm.client_id.as_deref(), Some("k"));
        for body in [
            r#"{"action":"dm","message":"hi"}"#,
            r#"{"action":"dm","to":"","message":"hi"}"#,
            r#"{"action":"dm","to":["bob"],"message":"hi"}"#,
        ] {
            assert_eq!(
                dm_request(Some(body)).unwrap_err().code,
                ErrorCode::InvalidUser
            );
        }
        let empty = r#"{"action":"dm","to":"bob","message":""}"#;
        assert_eq!(
            dm_request(Some(empty)).unwrap_err().code,
            ErrorCode::EmptyMessage
        );
        let bad_id = r#"{"action":"dm","to":"bob","message":"x","clientId":"no spaces"}"#;
        assert_eq!(
            dm_request(Some(bad_id)).unwrap_err().code,
            ErrorCode::InvalidClientId
        );
    }

    #[test]
    fn each_side_sees_the_other_as_with() {
        let kept = dm_frame(&envelope(), 4, "hi");
        let frame: Value = serde_json::from_str(&kept).unwrap();
        assert_eq!(
            (
                &frame["type"],
                &frame["seq"],
                &frame["with"],
                &frame["clientId"]
            ),
            (&json!("dm"), &json!(4), &json!("bob"), &json!("k1"))
        );
        let bobs: Value = serde_json::from_str(&view(&kept, "bob")).unwrap();
        assert_eq!(bobs["with"], "alice");
        let alices: Value = serde_json::from_str(&view(&kept, "alice")).unwrap();
        assert_eq!(alices["with"], "bob");
        assert!(check_size(&envelope(), "hi").is_ok());
        let huge = "x".repeat(MAX_CHAT_FRAME_BYTES);
        assert_eq!(
            check_size(&envelope(), &huge).unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
    }

    #[test]
    fn a_conversation_is_one_key_whoever_asks_and_cannot_be_forged() {
        assert_eq!(conversation("alice", "bob"), conversation("bob", "alice"));
        assert_ne!(conversation("a\",\"b", "c"), conversation("a", "b\",\"c"));
        assert_ne!(conversation("a", "bc"), conversation("ab", "c"));
    }
}
