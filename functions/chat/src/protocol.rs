//! The wire protocol: what the server sends and how client messages are validated.
//!
//! Every frame the server sends is one JSON object with a `type`:
//! `{"type":"message","from":…,"name":…,"message":…,"sentAt":…}` for chat and
//! `{"type":"error","code":…,"message":…}` when a request could not be served.
//! Validation never panics: every way a body can be wrong maps to an [`ErrorFrame`]
//! whose message says what to change.

use serde::Serialize;
use serde_json::Value;

/// API Gateway's WebSocket message quota: 128 KB per message, in either direction.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// The route that broadcasts a chat message.
pub const ON_MESSAGE_ACTION: &str = "onMessage";

/// A request a person can copy to get it right.
pub const EXAMPLE_REQUEST: &str = r#"{"action":"onMessage","message":"Hello everyone"}"#;

/// A frame sent to clients.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Frame {
    /// A chat message, delivered to every connection including the sender.
    #[serde(rename_all = "camelCase")]
    Message {
        /// The sender's connection id (kept for clients that predate names).
        from: String,
        /// The sender's display name (see [`crate::identity`]).
        name: String,
        message: String,
        sent_at: String,
    },
    /// Why the sender's request was not served.
    Error(ErrorFrame),
}

/// The body of an error frame: a stable machine code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorFrame {
    pub code: ErrorCode,
    pub message: String,
}

/// Machine-readable error codes, serialised in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    NotAnObject,
    MissingAction,
    UnknownAction,
    MissingMessage,
    InvalidMessage,
    EmptyMessage,
    MessageTooLarge,
    BinaryFrame,
    Unavailable,
}

impl Frame {
    /// Serialises the frame; frames are plain data so this cannot fail.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("frames serialise to JSON")
    }
}

impl ErrorFrame {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorFrame {
            code,
            message: message.into(),
        }
    }

    /// The error sent when the service behind the chat cannot be reached.
    pub fn unavailable() -> Self {
        ErrorFrame::new(
            ErrorCode::Unavailable,
            "The chat service could not deliver your message right now; please try again.",
        )
    }

    /// The error sent for a binary frame: the chat speaks JSON text only.
    pub fn binary_frame() -> Self {
        ErrorFrame::new(
            ErrorCode::BinaryFrame,
            format!(
                "Binary frames are not supported; send a text frame such as {EXAMPLE_REQUEST}."
            ),
        )
    }

    pub fn into_frame(self) -> Frame {
        Frame::Error(self)
    }
}

/// Parses the body of an `onMessage` request and builds the chat frame to broadcast.
///
/// The size check is on the frame that will be sent, since that is what API Gateway
/// measures against its 128 KB quota on the way out.
pub fn chat_frame(
    body: Option<&str>,
    from: &str,
    name: &str,
    sent_at: String,
) -> Result<Frame, ErrorFrame> {
    let object = parse_object(body)?;
    let message = match object.get("message") {
        None | Some(Value::Null) => {
            return Err(ErrorFrame::new(
                ErrorCode::MissingMessage,
                format!("Add a \"message\" string to your request, for example {EXAMPLE_REQUEST}."),
            ))
        }
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(ErrorFrame::new(
                ErrorCode::InvalidMessage,
                format!(
                    "\"message\" must be a string, not {}; for example {EXAMPLE_REQUEST}.",
                    json_kind(other)
                ),
            ))
        }
    };
    if message.trim().is_empty() {
        return Err(ErrorFrame::new(
            ErrorCode::EmptyMessage,
            format!(
                "\"message\" is empty; write some text to send, for example {EXAMPLE_REQUEST}."
            ),
        ));
    }
    let frame = Frame::Message {
        from: from.to_owned(),
        name: name.to_owned(),
        message: message.clone(),
        sent_at,
    };
    let size = frame.to_json().len();
    if size > MAX_MESSAGE_BYTES {
        return Err(ErrorFrame::new(
            ErrorCode::MessageTooLarge,
            format!(
                "The message is too large to deliver ({size} bytes as a frame, limit {MAX_MESSAGE_BYTES}); send it in smaller parts."
            ),
        ));
    }
    Ok(frame)
}

/// Explains why a request reached the `$default` route.
pub fn explain_unrouted(body: Option<&str>) -> ErrorFrame {
    let object = match parse_object(body) {
        Ok(object) => object,
        Err(error) => return error,
    };
    match object.get("action") {
        None | Some(Value::Null) => ErrorFrame::new(
            ErrorCode::MissingAction,
            format!("Your request has no \"action\"; send for example {EXAMPLE_REQUEST}."),
        ),
        Some(Value::String(action)) => ErrorFrame::new(
            ErrorCode::UnknownAction,
            format!(
                "Unknown action \"{}\"; the only action is \"{ON_MESSAGE_ACTION}\", for example {EXAMPLE_REQUEST}.",
                shorten(action, 64)
            ),
        ),
        Some(other) => ErrorFrame::new(
            ErrorCode::UnknownAction,
            format!(
                "\"action\" must be a string, not {}; send for example {EXAMPLE_REQUEST}.",
                json_kind(other)
            ),
        ),
    }
}

fn parse_object(body: Option<&str>) -> Result<serde_json::Map<String, Value>, ErrorFrame> {
    let body = body.unwrap_or_default();
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(ErrorFrame::new(
            ErrorCode::NotAnObject,
            format!(
                "Requests must be a JSON object, not {}; send for example {EXAMPLE_REQUEST}.",
                json_kind(&other)
            ),
        )),
        Err(error) => Err(ErrorFrame::new(
            ErrorCode::InvalidJson,
            format!("Requests must be JSON ({error}); send for example {EXAMPLE_REQUEST}."),
        )),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Cuts `text` to at most `max` characters so an echoed value cannot bloat a frame.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(body: &str) -> ErrorCode {
        chat_frame(Some(body), "id", "n", "t".into())
            .unwrap_err()
            .code
    }

    #[test]
    fn valid_message_builds_a_chat_frame() {
        let frame = chat_frame(
            Some(EXAMPLE_REQUEST),
            "R1kmxc2VNjMCFIA=",
            "alice",
            "2026-01-01T00:00:00Z".into(),
        )
        .unwrap();
        let json: Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(json["type"], "message");
        assert_eq!(json["from"], "R1kmxc2VNjMCFIA=");
        assert_eq!(json["name"], "alice");
        assert_eq!(json["message"], "Hello everyone");
        assert_eq!(json["sentAt"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn invalid_messages_map_to_codes() {
        assert_eq!(code_of("not json"), ErrorCode::InvalidJson);
        assert_eq!(code_of("[1,2]"), ErrorCode::NotAnObject);
        assert_eq!(
            code_of(r#"{"action":"onMessage"}"#),
            ErrorCode::MissingMessage
        );
        assert_eq!(
            code_of(r#"{"action":"onMessage","message":null}"#),
            ErrorCode::MissingMessage
        );
        assert_eq!(
            code_of(r#"{"action":"onMessage","message":7}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code_of(r#"{"action":"onMessage","message":"  "}"#),
            ErrorCode::EmptyMessage
        );
        let big = format!(
            r#"{{"action":"onMessage","message":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(code_of(&big), ErrorCode::MessageTooLarge);
        assert_eq!(
            chat_frame(None, "id", "n", "t".into()).unwrap_err().code,
            ErrorCode::InvalidJson
        );
    }

    #[test]
    fn unrouted_requests_are_explained() {
        assert_eq!(explain_unrouted(Some("hello")).code, ErrorCode::InvalidJson);
        assert_eq!(
            explain_unrouted(Some(r#"{"message":"hi"}"#)).code,
            ErrorCode::MissingAction
        );
        let unknown = explain_unrouted(Some(r#"{"action":"shout"}"#));
        assert_eq!(unknown.code, ErrorCode::UnknownAction);
        assert!(unknown.message.contains("\"shout\""));
        assert!(unknown.message.contains(EXAMPLE_REQUEST));
        let long = explain_unrouted(Some(&format!(r#"{{"action":"{}"}}"#, "a".repeat(10_000))));
        assert!(long.message.len() < 400, "echoed action is shortened");
    }

    #[test]
    fn error_frames_serialise_with_snake_case_codes() {
        let json = ErrorFrame::unavailable().into_frame().to_json();
        assert!(json.starts_with(r#"{"type":"error","code":"unavailable","message":"#));
    }
}
