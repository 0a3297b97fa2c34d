//! The wire protocol: what the server sends and how client messages are validated.
//!
//! Every frame the server sends is one JSON object with a `type`:
//! `{"type":"message","id":…,"seq":…,"room":…,"from":…,"name":…,"message":…,"sentAt":…}`
//! for chat (`seq` numbers a room's kept messages 1, 2, 3, …; `clientId` is echoed when
//! the sender gave one), `joined`/`left` for presence, `members` and `history` answering
//! `who` and `history`, and `{"type":"error","code":…,"message":…}` when a request could
//! not be served.
//! Validation never panics: every way a body can be wrong maps to an [`ErrorFrame`]
//! whose message says what to change.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

pub mod changes;
pub mod direct;
pub mod moderation;
pub mod rooms;

/// API Gateway's WebSocket message quota: 128 KB per message, in either direction.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// The largest chat frame: 1 KB under the quota, so that it also fits, whole, in a
/// `history` answer around it.
pub const MAX_CHAT_FRAME_BYTES: usize = MAX_MESSAGE_BYTES - 1024;

/// The route that broadcasts a chat message.
pub const ON_MESSAGE_ACTION: &str = "onMessage";

/// The room actions, each its own route.
pub const JOIN_ACTION: &str = "join";
pub const WHO_ACTION: &str = "who";
pub const HISTORY_ACTION: &str = "history";

/// The actions on what was said, each its own route (served with `onMessage`).
pub const TYPING_ACTION: &str = "typing";
pub const EDIT_ACTION: &str = "edit";
pub const DELETE_ACTION: &str = "delete";

/// A request a person can copy to get it right.
pub const EXAMPLE_REQUEST: &str = r#"{"action":"onMessage","message":"Hello everyone"}"#;

/// Messages `history` returns unless asked for another number, and the most it returns.
pub const DEFAULT_HISTORY: u32 = 50;
pub const MAX_HISTORY: u32 = 100;

/// A frame sent to clients.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Frame {
    /// A chat message, delivered to every member of the room, the sender included.
    #[serde(rename_all = "camelCase")]
    Message {
        /// Unique per message (API Gateway's message id).
        id: String,
        /// The message's place in its room: 1 for the room's first kept message, one more
        /// for each next one (see [`crate::stores::history`]).
        seq: u64,
        room: String,
        /// The sender's connection id (kept for clients that predate names).
        from: String,
        /// The sender's display name (see [`crate::auth::identity`]).
        name: String,
        /// The signed-in sender's user id (the token's `sub`); none in open mode.
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        message: String,
        sent_at: String,
        /// The sender's own id for this message, when it gave one (idempotent resends).
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// A message of the room was edited by its author (or a moderator).
    #[serde(rename_all = "camelCase")]
    Edited {
        /// The room; empty (and left out) for a direct conversation …
        #[serde(skip_serializing_if = "String::is_empty")]
        room: String,
        /// … which names the other user instead.
        #[serde(skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        id: String,
        seq: u64,
        message: String,
        edited_at: String,
    },
    /// A message of the room was deleted; `history` keeps a tombstone in its place.
    Deleted {
        #[serde(skip_serializing_if = "String::is_empty")]
        room: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        id: String,
        seq: u64,
    },
    /// A moderator's action done, to the moderator: how many of the user's connections
    /// in the room it closed (`kick`) or marked (`ban`, `unban`), and until when a ban is.
    Moderated {
        action: String,
        room: String,
        user: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        until: Option<String>,
        connections: usize,
    },
    /// Someone in the room is typing (never kept; at most one per connection every 2 s).
    Typing(Presence),
    /// Someone entered the room.
    Joined(Presence),
    /// Someone left the room (moved on, or disconnected).
    Left(Presence),
    /// The room's members, to the one who asked (`who`); a large room takes several
    /// frames, all but the last with `more: true`.
    Members {
        room: String,
        /// The asker's own connection id.
        you: String,
        members: Vec<Member>,
        more: bool,
    },
    /// The room's chat frames, oldest first, exactly as they were broadcast: the most
    /// recent ones, or those after a `seq` the client names.
    History {
        /// The room asked about; empty (and left out) for a direct conversation …
        #[serde(skip_serializing_if = "String::is_empty")]
        room: String,
        /// … which names the other user instead.
        #[serde(skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        messages: Vec<Box<RawValue>>,
        /// Older messages were left out to keep the frame under the quota.
        truncated: bool,
        /// There are messages after the last one here: ask again after its `seq`.
        more: bool,
        /// Messages after the `seq` asked for are no longer kept (`HistoryHours`): these
        /// start at `oldest`.
        gap: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        oldest: Option<u64>,
    },
    /// Why the sender's request was not served.
    Error(ErrorFrame),
}

/// Who entered or left a room, or is typing in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Presence {
    pub room: String,
    pub from: String,
    /// The signed-in user's id; none in open mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub name: String,
}

/// One member of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub from: String,
    /// The signed-in user's id, to address a person rather than a connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub name: String,
    /// When the connection was made (epoch ms), as the members table has it; not sent.
    #[serde(skip)]
    pub connected_at_ms: Option<i64>,
}

/// The body of an error frame: a stable machine code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorFrame {
    pub code: ErrorCode,
    pub message: String,
    /// With `rate_limited`: how long until a message will be accepted.
    #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The `clientId` of the message this error answers, when it had one.
    #[serde(rename = "clientId", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// With `banned`: when the ban ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
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
    InvalidRoom,
    InvalidLimit,
    RateLimited,
    NotConnected,
    InvalidClientId,
    InvalidAfter,
    InvalidId,
    NotFound,
    NotAllowed,
    InvalidUser,
    NotSignedIn,
    UnknownUser,
    InvalidMinutes,
    Banned,
}

impl Frame {
    /// The frame's `type`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Message { .. } => "message",
            Frame::Edited { .. } => "edited",
            Frame::Deleted { .. } => "deleted",
            Frame::Typing(_) => "typing",
            Frame::Moderated { .. } => "moderated",
            Frame::Joined(_) => "joined",
            Frame::Left(_) => "left",
            Frame::Members { .. } => "members",
            Frame::History { .. } => "history",
            Frame::Error(_) => "error",
        }
    }

    /// Serialises the frame; frames are plain data so this cannot fail.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("frames serialise to JSON")
    }
}

impl ErrorFrame {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorFrame {
            code,
            message: message.into(),
            retry_after_ms: None,
            client_id: None,
            until: None,
        }
    }

    /// The error, echoing the `clientId` of the message it answers.
    pub fn for_client_id(self, client_id: Option<&str>) -> Self {
        ErrorFrame {
            client_id: client_id.map(str::to_owned),
            ..self
        }
    }

    /// The sender is over its message rate; nothing was posted.
    pub fn rate_limited(retry_after_ms: u64) -> Self {
        ErrorFrame {
            retry_after_ms: Some(retry_after_ms),
            ..ErrorFrame::new(
                ErrorCode::RateLimited,
                format!(
                    "You are sending too fast; this message was not sent. Try again in {:.1} s.",
                    retry_after_ms as f64 / 1000.0
                ),
            )
        }
    }

    /// The error sent when the service behind the chat cannot be reached.
    pub fn unavailable() -> Self {
        ErrorFrame::new(
            ErrorCode::Unavailable,
            "The chat service could not deliver your message right now; please try again.",
        )
    }

    /// The sender's connection is not in the table (its `$connect` did not complete, or it
    /// was pruned): nothing was posted.
    pub fn not_connected() -> Self {
        ErrorFrame::new(
            ErrorCode::NotConnected,
            "This connection is not registered with the chat, so the message was not sent; reconnect and try again.",
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

/// Who sent a chat message, where, when, under which id and `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    pub seq: u64,
    pub room: String,
    pub from: String,
    pub name: String,
    pub user: Option<String>,
    pub sent_at: String,
    pub client_id: Option<String>,
}

/// What an `onMessage` request asks: the text, and the sender's id for it if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    pub message: String,
    pub client_id: Option<String>,
}

/// The most characters a `clientId` may have.
pub const MAX_CLIENT_ID_CHARS: usize = 64;

/// Whether `id` is a valid `clientId`: 1–64 characters of `A-Z a-z 0-9 _ -`.
pub fn is_client_id(id: &str) -> bool {
    (1..=MAX_CLIENT_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The valid `clientId` of a request, if it has one: what its error frames echo, even
/// when something else in it is wrong.
pub fn client_id_of(body: Option<&str>) -> Option<String> {
    match parse_object(body).ok()?.get("clientId")? {
        Value::String(id) if is_client_id(id) => Some(id.clone()),
        _ => None,
    }
}

/// Parses the body of an `onMessage` request and builds the chat frame to broadcast.
///
/// The size check is on the frame that will be sent, since that is what API Gateway
/// measures against its 128 KB quota on the way out.
pub fn chat_frame(body: Option<&str>, envelope: Envelope) -> Result<Frame, ErrorFrame> {
    message_frame(envelope, chat_request(body)?.message)
}

/// An `onMessage` request, checked before anything is read or spent.
pub fn chat_request(body: Option<&str>) -> Result<ChatRequest, ErrorFrame> {
    let object = parse_object(body)?;
    let client_id = client_id_field(&object)?;
    Ok(ChatRequest {
        message: chat_text(&object)?,
        client_id,
    })
}

/// The optional `clientId` of a request that keeps a message.
pub(crate) fn client_id_field(
    object: &serde_json::Map<String, Value>,
) -> Result<Option<String>, ErrorFrame> {
    match object.get("clientId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if is_client_id(id) => Ok(Some(id.clone())),
        Some(_) => Err(ErrorFrame::new(
            ErrorCode::InvalidClientId,
            format!(
                "\"clientId\" must be 1 to {MAX_CLIENT_ID_CHARS} characters of A-Z, a-z, 0-9, _ and -; for example {{\"action\":\"onMessage\",\"message\":\"Hello\",\"clientId\":\"k3J9-x\"}}."
            ),
        )),
    }
}

/// The text of an `onMessage` request.
pub(crate) fn chat_text(object: &serde_json::Map<String, Value>) -> Result<String, ErrorFrame> {
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
    Ok(message.clone())
}

/// The chat frame of `message` (unchecked: see [`message_frame`]).
pub fn chat_message_frame(envelope: Envelope, message: String) -> Frame {
    let Envelope {
        id,
        seq,
        room,
        from,
        name,
        user,
        sent_at,
        client_id,
    } = envelope;
    Frame::Message {
        id,
        seq,
        room,
        from,
        name,
        user,
        message,
        sent_at,
        client_id,
    }
}

/// The chat frame of `message`, refused if it would pass the 128 KB quota on the way out
/// (measured with the largest `seq` there can be, so it may be checked before one is taken).
pub fn message_frame(envelope: Envelope, message: String) -> Result<Frame, ErrorFrame> {
    let digits = envelope.seq.to_string().len();
    let frame = chat_message_frame(envelope, message);
    let size = frame.to_json().len() + 20 - digits;
    if size > MAX_CHAT_FRAME_BYTES {
        return Err(ErrorFrame::new(
            ErrorCode::MessageTooLarge,
            format!(
                "The message is too large to deliver ({size} bytes as a frame, limit {MAX_CHAT_FRAME_BYTES}); send it in smaller parts."
            ),
        ));
    }
    Ok(frame)
}

/// The room a `join` request names.
pub fn join_room(body: Option<&str>) -> Result<String, ErrorFrame> {
    let object = parse_object(body)?;
    let example = r#"{"action":"join","room":"rust"}"#;
    match object.get("room") {
        Some(Value::String(room)) if rooms::is_valid(room) => Ok(room.clone()),
        Some(Value::String(room)) => Err(ErrorFrame::new(
            ErrorCode::InvalidRoom,
            format!(
                "\"{}\" is not a room name: {}; for example {example}.",
                shorten(room, 64),
                rooms::rule()
            ),
        )),
        _ => Err(ErrorFrame::new(
            ErrorCode::InvalidRoom,
            format!(
                "Name the room to join, for example {example} ({}).",
                rooms::rule()
            ),
        )),
    }
}

/// What a `history` request asks: at most `limit` messages, the most recent ones, or
/// those with a `seq` larger than `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    pub limit: u32,
    pub after: Option<u64>,
    /// The other user of a direct conversation, rather than the sender's room.
    pub with: Option<String>,
}

/// Parses a `history` request (`limit` [`DEFAULT_HISTORY`] if none).
pub fn history_request(body: Option<&str>) -> Result<HistoryRequest, ErrorFrame> {
    let object = parse_object(body)?;
    let after = match object.get("after") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(_) => {
            return Err(ErrorFrame::new(
                ErrorCode::InvalidAfter,
                "\"after\" must be the seq of the last message you have (a whole number, 0 for none); for example {\"action\":\"history\",\"after\":41,\"limit\":50}.",
            ))
        }
    };
    let with = match object.get("with") {
        None | Some(Value::Null) => None,
        Some(_) => Some(direct::user_field(
            &object,
            "with",
            r#"{"action":"history","with":"<their user id>","after":0}"#,
        )?),
    };
    Ok(HistoryRequest {
        limit: history_limit(&object)?,
        after,
        with,
    })
}

/// The number of messages a `history` request asks for ([`DEFAULT_HISTORY`] if none).
fn history_limit(object: &serde_json::Map<String, Value>) -> Result<u32, ErrorFrame> {
    let limit = match object.get("limit") {
        None | Some(Value::Null) => return Ok(DEFAULT_HISTORY),
        Some(Value::Number(n)) => n.as_u64(),
        Some(_) => None,
    };
    match limit {
        Some(n) if (1..=u64::from(MAX_HISTORY)).contains(&n) => Ok(n as u32),
        _ => Err(ErrorFrame::new(
            ErrorCode::InvalidLimit,
            format!(
                "\"limit\" must be a whole number from 1 to {MAX_HISTORY}; for example {{\"action\":\"history\",\"limit\":{DEFAULT_HISTORY}}}."
            ),
        )),
    }
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
                "Unknown action \"{}\"; the actions are \"{ON_MESSAGE_ACTION}\", \"dm\", \"{EDIT_ACTION}\", \"{DELETE_ACTION}\", \"{TYPING_ACTION}\", \"{JOIN_ACTION}\", \"{WHO_ACTION}\", \"{HISTORY_ACTION}\", \"kick\", \"ban\" and \"unban\", for example {EXAMPLE_REQUEST}.",
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

pub(crate) fn parse_object(
    body: Option<&str>,
) -> Result<serde_json::Map<String, Value>, ErrorFrame> {
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
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            id: "m1".into(),
            seq: 7,
            room: "lobby".into(),
            from: "R1kmxc2VNjMCFIA=".into(),
            name: "alice".into(),
            user: None,
            sent_at: "2026-01-01T00:00:00Z".into(),
            client_id: None,
        }
    }

    fn code_of(body: &str) -> ErrorCode {
        chat_frame(Some(body), envelope()).unwrap_err().code
    }

    #[test]
    fn valid_message_builds_a_chat_frame() {
        let frame = chat_frame(Some(EXAMPLE_REQUEST), envelope()).unwrap();
        let json: Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(json["type"], "message");
        assert_eq!(json["id"], "m1");
        assert_eq!(json["room"], "lobby");
        assert_eq!(json["from"], "R1kmxc2VNjMCFIA=");
        assert_eq!(json["name"], "alice");
        assert_eq!(json["message"], "Hello everyone");
        assert_eq!(json["sentAt"], "2026-01-01T00:00:00Z");
        assert_eq!(json["seq"], 7);
        assert!(json.get("clientId").is_none());
    }

    #[test]
    fn client_ids_are_checked_and_echoed() {
        let request = chat_request(Some(
            r#"{"action":"onMessage","message":"hi","clientId":"a-Z_9"}"#,
        ))
        .unwrap();
        assert_eq!(request.client_id.as_deref(), Some("a-Z_9"));
        let max = "x".repeat(MAX_CLIENT_ID_CHARS);
        assert!(is_client_id(&max));
        for bad in [
            r#""""#.to_owned(),
            r#""a b""#.into(),
            r#""é""#.into(),
            "7".into(),
            format!(r#""{max}x""#),
        ] {
            let body = format!(r#"{{"action":"onMessage","message":"hi","clientId":{bad}}}"#);
            assert_eq!(
                chat_request(Some(&body)).unwrap_err().code,
                ErrorCode::InvalidClientId,
                "{bad}"
            );
        }
        let empty = r#"{"action":"onMessage","message":" ","clientId":"c1"}"#;
        assert_eq!(client_id_of(Some(empty)).as_deref(), Some("c1"));
        assert_eq!(client_id_of(Some(r#"{"clientId":"a b"}"#)), None);
        let echoed: Value = serde_json::from_str(
            &ErrorFrame::unavailable()
                .for_client_id(Some("c1"))
                .into_frame()
                .to_json(),
        )
        .unwrap();
        assert_eq!(echoed["clientId"], "c1");
        let frame = chat_frame(
            Some(EXAMPLE_REQUEST),
            Envelope {
                client_id: Some("c1".into()),
                ..envelope()
            },
        )
        .unwrap();
        assert!(frame.to_json().ends_with(r#","clientId":"c1"}"#));
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
            chat_frame(None, envelope()).unwrap_err().code,
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
        assert!(!json.contains("retryAfterMs"));
        let limited: Value =
            serde_json::from_str(&ErrorFrame::rate_limited(1250).into_frame().to_json()).unwrap();
        assert_eq!(limited["code"], "rate_limited");
        assert_eq!(limited["retryAfterMs"], 1250);
        assert!(limited["message"].as_str().unwrap().contains("1.2 s"));
    }

    #[test]
    fn room_requests_are_validated() {
        assert_eq!(
            join_room(Some(r#"{"action":"join","room":"rust"}"#)).unwrap(),
            "rust"
        );
        for bad in [
            r#"{"action":"join"}"#,
            r#"{"action":"join","room":""}"#,
            r#"{"action":"join","room":"a b"}"#,
            r#"{"action":"join","room":7}"#,
        ] {
            assert_eq!(
                join_room(Some(bad)).unwrap_err().code,
                ErrorCode::InvalidRoom,
                "{bad}"
            );
        }
        assert_eq!(
            join_room(Some("nope")).unwrap_err().code,
            ErrorCode::InvalidJson
        );
        let history = |body: &str| history_request(Some(body));
        assert_eq!(
            history(r#"{"action":"history"}"#).unwrap(),
            HistoryRequest {
                limit: DEFAULT_HISTORY,
                after: None,
                with: None,
            }
        );
        assert_eq!(
            history(r#"{"action":"history","with":"sub-bob"}"#)
                .unwrap()
                .with
                .as_deref(),
            Some("sub-bob")
        );
        assert_eq!(
            history(r#"{"action":"history","with":""}"#)
                .unwrap_err()
                .code,
            ErrorCode::InvalidUser
        );
        assert_eq!(
            history(r#"{"action":"history","limit":1}"#).unwrap().limit,
            1
        );
        assert_eq!(
            history(r#"{"action":"history","limit":100,"after":0}"#).unwrap(),
            HistoryRequest {
                limit: 100,
                after: Some(0),
                with: None,
            }
        );
        for bad in ["0", "101", "2.5", "-1", "\"10\"", "true"] {
            let body = format!(r#"{{"action":"history","limit":{bad}}}"#);
            assert_eq!(
                history(&body).unwrap_err().code,
                ErrorCode::InvalidLimit,
                "{bad}"
            );
        }
        for bad in ["-1", "1.5", "\"3\"", "[]"] {
            let body = format!(r#"{{"action":"history","after":{bad}}}"#);
            assert_eq!(
                history(&body).unwrap_err().code,
                ErrorCode::InvalidAfter,
                "{bad}"
            );
        }
    }

    #[test]
    fn presence_members_and_history_frames_have_their_shape() {
        let joined = Frame::Joined(Presence {
            room: "r".into(),
            from: "id".into(),
            user: None,
            name: "n".into(),
        });
        assert_eq!(
            joined.to_json(),
            r#"{"type":"joined","room":"r","from":"id","name":"n"}"#
        );
        let typing = Frame::Typing(Presence {
            room: "r".into(),
            from: "id".into(),
            user: Some("sub-1".into()),
            name: "n".into(),
        });
        assert_eq!(
            typing.to_json(),
            r#"{"type":"typing","room":"r","from":"id","user":"sub-1","name":"n"}"#
        );
        let edited = Frame::Edited {
            room: "r".into(),
            with: None,
            id: "m".into(),
            seq: 3,
            message: "x".into(),
            edited_at: "t".into(),
        };
        assert_eq!(
            edited.to_json(),
            r#"{"type":"edited","room":"r","id":"m","seq":3,"message":"x","editedAt":"t"}"#
        );
        let deleted = Frame::Deleted {
            room: "r".into(),
            with: None,
            id: "m".into(),
            seq: 3,
        };
        assert_eq!(
            deleted.to_json(),
            r#"{"type":"deleted","room":"r","id":"m","seq":3}"#
        );
        let members = Frame::Members {
            room: "r".into(),
            you: "me".into(),
            members: vec![
                Member {
                    from: "id".into(),
                    user: None,
                    name: "n".into(),
                    connected_at_ms: Some(1),
                },
                Member {
                    from: "id2".into(),
                    user: Some("sub-2".into()),
                    name: "m".into(),
                    connected_at_ms: None,
                },
            ],
            more: false,
        };
        assert_eq!(
            members.to_json(),
            r#"{"type":"members","room":"r","you":"me","members":[{"from":"id","name":"n"},{"from":"id2","user":"sub-2","name":"m"}],"more":false}"#
        );
        let stored = r#"{"type":"message","z":1,"a":2}"#;
        let history = Frame::History {
            room: "r".into(),
            with: None,
            messages: vec![RawValue::from_string(stored.into()).unwrap()],
            truncated: false,
            more: true,
            gap: true,
            oldest: Some(4),
        };
        assert_eq!(
            history.to_json(),
            format!(
                r#"{{"type":"history","room":"r","messages":[{stored}],"truncated":false,"more":true,"gap":true,"oldest":4}}"#
            ),
            "stored frames are passed on byte for byte"
        );
    }
}
