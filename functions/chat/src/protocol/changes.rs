//! Changing what was said: the `edit` and `delete` requests (of a room's message, or with
//! `with` of a direct message), and the kept chat or `dm` frame as it
//! reads after an edit (the new text, `editedAt`) or a deletion (a tombstone: the same
//! `id`, `seq`, sender and time, `"message":""` and `"deleted":true`), which is what
//! `history` answers from then on.

use serde_json::{Map, Value};

use super::direct::user_field;
use super::{chat_text, parse_object, shorten, ErrorCode, ErrorFrame, MAX_CHAT_FRAME_BYTES};

/// The longest message id accepted (API Gateway's are 16 characters).
pub const MAX_ID_CHARS: usize = 128;

/// What an `edit` or `delete` request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    /// The message's `id`.
    pub id: String,
    /// The other user of the direct conversation it is in; none: the sender's room.
    pub with: Option<String>,
    /// The new text (`edit`), or none (`delete`).
    pub message: Option<String>,
}

/// Parses `{"action":"edit","id":…,"message":…}`.
pub fn edit_request(body: Option<&str>) -> Result<ChangeRequest, ErrorFrame> {
    let object = parse_object(body)?;
    let example = r#"{"action":"edit","id":"<the message's id>","message":"Hello, everyone"}"#;
    Ok(ChangeRequest {
        id: message_id(&object, example)?,
        with: with(&object, example)?,
        message: Some(chat_text(&object)?),
    })
}

/// Parses `{"action":"delete","id":…}`.
pub fn delete_request(body: Option<&str>) -> Result<ChangeRequest, ErrorFrame> {
    let object = parse_object(body)?;
    let example = r#"{"action":"delete","id":"<the message's id>"}"#;
    Ok(ChangeRequest {
        id: message_id(&object, example)?,
        with: with(&object, example)?,
        message: None,
    })
}

/// The optional `with` of a change to a direct message.
fn with(object: &Map<String, Value>, example: &str) -> Result<Option<String>, ErrorFrame> {
    match object.get("with") {
        None | Some(Value::Null) => Ok(None),
        Some(_) => user_field(object, "with", example).map(Some),
    }
}

fn message_id(object: &Map<String, Value>, example: &str) -> Result<String, ErrorFrame> {
    match object.get("id") {
        Some(Value::String(id))
            if !id.is_empty()
                && id.chars().count() <= MAX_ID_CHARS
                && !id.chars().any(char::is_control) =>
        {
            Ok(id.clone())
        }
        _ => Err(ErrorFrame::new(
            ErrorCode::InvalidId,
            format!(
                "Name the message by its \"id\" (a string of at most {MAX_ID_CHARS} characters, as its frame carries it); for example {example}."
            ),
        )),
    }
}

/// The kept frame `kept` with its text replaced by `message` and `editedAt` set; refused
/// when it would no longer fit the quota, or when `kept` is not a chat frame.
pub fn edited(kept: &str, message: &str, edited_at: &str) -> Result<String, ErrorFrame> {
    let mut frame = chat_object(kept)?;
    frame.insert("message".into(), Value::String(message.to_owned()));
    frame.insert("editedAt".into(), Value::String(edited_at.to_owned()));
    let data = Value::Object(frame).to_string();
    if data.len() > MAX_CHAT_FRAME_BYTES {
        return Err(ErrorFrame::new(
            ErrorCode::MessageTooLarge,
            format!(
                "The edited message is too large to deliver ({} bytes as a frame, limit {MAX_CHAT_FRAME_BYTES}).",
                data.len()
            ),
        ));
    }
    Ok(data)
}

/// The tombstone of the kept frame `kept`: its text (and any edit, and its `clientId`)
/// gone, `deleted` set.
pub fn tombstone(kept: &str, deleted_at: &str) -> Result<String, ErrorFrame> {
    let mut frame = chat_object(kept)?;
    frame.insert("message".into(), Value::String(String::new()));
    frame.remove("editedAt");
    frame.remove("clientId");
    frame.insert("deleted".into(), Value::Bool(true));
    frame.insert("deletedAt".into(), Value::String(deleted_at.to_owned()));
    Ok(Value::Object(frame).to_string())
}

/// Whether the kept frame is a tombstone.
pub fn is_deleted(kept: &str) -> bool {
    chat_object(kept).is_ok_and(|frame| frame.get("deleted") == Some(&Value::Bool(true)))
}

fn chat_object(kept: &str) -> Result<Map<String, Value>, ErrorFrame> {
    match serde_json::from_str::<Value>(kept) {
        Ok(Value::Object(frame))
            if frame.get("type") == Some(&Value::from("message"))
                || frame.get("type") == Some(&Value::from("dm")) =>
        {
            Ok(frame)
        }
        _ => Err(ErrorFrame::new(
            ErrorCode::NotFound,
            format!("No chat message is kept as \"{}\".", shorten(kept, 32)),
        )),
    }
}

/// A message that is not (or no longer) in the room.
pub fn not_found(id: &str) -> ErrorFrame {
    ErrorFrame::new(
        ErrorCode::NotFound,
        format!(
            "There is no message \"{}\" in this room (it may have been deleted, or be older than the room keeps).",
            shorten(id, 64)
        ),
    )
}

/// A message someone else wrote: only its author edits it; its author or a moderator
/// deletes it.
pub fn not_allowed(id: &str) -> ErrorFrame {
    ErrorFrame::new(
        ErrorCode::NotAllowed,
        format!(
            "Only the author of message \"{}\" may edit it, and only its author or a moderator delete it.",
            shorten(id, 64)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEPT: &str = r#"{"type":"message","id":"m1","seq":3,"room":"lobby","from":"c1","name":"al","message":"hi","sentAt":"t0","clientId":"k"}"#;

    #[test]
    fn requests_name_a_message() {
        let edit = edit_request(Some(r#"{"action":"edit","id":"m1","message":"hey"}"#)).unwrap();
        assert_eq!(
            (edit.id.as_str(), edit.message.as_deref()),
            ("m1", Some("hey"))
        );
        let delete = delete_request(Some(r#"{"action":"delete","id":"m1"}"#)).unwrap();
        assert_eq!((delete.id.as_str(), delete.message), ("m1", None));
        let direct = r#"{"action":"delete","id":"m1","with":"sub-bob"}"#;
        assert_eq!(
            delete_request(Some(direct)).unwrap().with.as_deref(),
            Some("sub-bob")
        );
        let nobody = r#"{"action":"edit","id":"m1","with":"","message":"x"}"#;
        assert_eq!(
            edit_request(Some(nobody)).unwrap_err().code,
            ErrorCode::InvalidUser
        );
        for body in [
            r#"{"action":"delete"}"#,
            r#"{"action":"delete","id":""}"#,
            r#"{"action":"delete","id":7}"#,
            r#"{"action":"delete","id":"a\u0000b"}"#,
        ] {
            assert_eq!(
                delete_request(Some(body)).unwrap_err().code,
                ErrorCode::InvalidId
            );
        }
        let long = json!({"action":"delete","id":"x".repeat(MAX_ID_CHARS + 1)}).to_string();
        assert_eq!(
            delete_request(Some(&long)).unwrap_err().code,
            ErrorCode::InvalidId
        );
        let empty = r#"{"action":"edit","id":"m1","message":"  "}"#;
        assert_eq!(
            edit_request(Some(empty)).unwrap_err().code,
            ErrorCode::EmptyMessage
        );
        assert_eq!(
            edit_request(Some("nope")).unwrap_err().code,
            ErrorCode::InvalidJson
        );
    }

    #[test]
    fn an_edit_keeps_everything_but_the_text() {
        let frame: Value = serde_json::from_str(&edited(KEPT, "hey", "t1").unwrap()).unwrap();
        assert_eq!(frame["message"], "hey");
        assert_eq!(frame["editedAt"], "t1");
        assert_eq!(
            (frame["id"].clone(), frame["seq"].clone()),
            (json!("m1"), json!(3))
        );
        let huge = "x".repeat(MAX_CHAT_FRAME_BYTES);
        assert_eq!(
            edited(KEPT, &huge, "t1").unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
        assert_eq!(
            edited("{}", "x", "t").unwrap_err().code,
            ErrorCode::NotFound
        );
    }

    #[test]
    fn a_tombstone_keeps_its_place_and_not_its_text() {
        let edited = edited(KEPT, "hey", "t1").unwrap();
        let stone = tombstone(&edited, "t2").unwrap();
        let frame: Value = serde_json::from_str(&stone).unwrap();
        assert_eq!(frame["message"], "");
        assert_eq!(frame["deleted"], true);
        assert_eq!(frame["seq"], 3);
        assert!(frame.get("editedAt").is_none());
        assert!(
            frame.get("clientId").is_none(),
            "nothing left to ask for it by"
        );
        assert!(is_deleted(&stone));
        assert!(!is_deleted(KEPT));
    }
}
