//! Moderators' requests in their room: `{"action":"kick","user":…}` (closes that user's
//! connections in the room; they may come back), `{"action":"ban","user":…,"minutes":N}`
//! and `{"action":"unban","user":…}`; and the `banned` refusal a banned user gets.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::direct::user_field;
use super::{parse_object, ErrorCode, ErrorFrame};

pub const KICK_ACTION: &str = "kick";
pub const BAN_ACTION: &str = "ban";
pub const UNBAN_ACTION: &str = "unban";

/// The longest ban: a year.
pub const MAX_BAN_MINUTES: u64 = 366 * 24 * 60;

/// What a moderator asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    Kick { user: String },
    Ban { user: String, minutes: u64 },
    Unban { user: String },
}

impl Moderation {
    pub fn user(&self) -> &str {
        match self {
            Moderation::Kick { user }
            | Moderation::Ban { user, .. }
            | Moderation::Unban { user } => user,
        }
    }

    pub fn action(&self) -> &'static str {
        match self {
            Moderation::Kick { .. } => KICK_ACTION,
            Moderation::Ban { .. } => BAN_ACTION,
            Moderation::Unban { .. } => UNBAN_ACTION,
        }
    }
}

/// Parses a `kick`, `ban` or `unban` request (`action` is the route it came by).
pub fn moderation_request(action: &str, body: Option<&str>) -> Result<Moderation, ErrorFrame> {
    let object = parse_object(body)?;
    let example = format!(r#"{{"action":"{action}","user":"<their user id>"}}"#);
    let user = user_field(&object, "user", &example)?;
    Ok(match action {
        KICK_ACTION => Moderation::Kick { user },
        UNBAN_ACTION => Moderation::Unban { user },
        _ => {
            let minutes = match object.get("minutes") {
                Some(Value::Number(n)) => n.as_u64().filter(|m| (1..=MAX_BAN_MINUTES).contains(m)),
                _ => None,
            };
            let Some(minutes) = minutes else {
                return Err(ErrorFrame::new(
                    ErrorCode::InvalidMinutes,
                    format!(
                        "\"minutes\" must be a whole number from 1 to {MAX_BAN_MINUTES}; for example {{\"action\":\"ban\",\"user\":\"<their user id>\",\"minutes\":60}}."
                    ),
                ));
            };
            Moderation::Ban { user, minutes }
        }
    })
}

/// A banned user's request to `room`, refused until `until_ms`.
pub fn banned(room: &str, until_ms: i64) -> ErrorFrame {
    let until = DateTime::<Utc>::from_timestamp_millis(until_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    ErrorFrame {
        until: Some(until.clone()),
        ..ErrorFrame::new(
            ErrorCode::Banned,
            format!("You are banned from room \"{room}\" until {until}."),
        )
    }
}

/// A moderator's action asked by someone who is not one.
pub fn not_a_moderator(action: &str) -> ErrorFrame {
    ErrorFrame::new(
        ErrorCode::NotAllowed,
        format!("Only moderators may {action}."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_a_user_and_bans_a_duration() {
        assert_eq!(
            moderation_request("kick", Some(r#"{"action":"kick","user":"u1"}"#)).unwrap(),
            Moderation::Kick { user: "u1".into() }
        );
        assert_eq!(
            moderation_request("ban", Some(r#"{"action":"ban","user":"u1","minutes":5}"#)).unwrap(),
            Moderation::Ban {
                user: "u1".into(),
                minutes: 5
            }
        );
        for body in [
            r#"{"action":"ban","user":"u1"}"#,
            r#"{"action":"ban","user":"u1","minutes":0}"#,
            r#"{"action":"ban","user":"u1","minutes":1.5}"#,
            r#"{"action":"ban","user":"u1","minutes":"5"}"#,
        ] {
            assert_eq!(
                moderation_request("ban", Some(body)).unwrap_err().code,
                ErrorCode::InvalidMinutes,
                "{body}"
            );
        }
        assert_eq!(
            moderation_request("unban", Some(r#"{"action":"unban"}"#))
                .unwrap_err()
                .code,
            ErrorCode::InvalidUser
        );
    }

    #[test]
    fn a_ban_says_when_it_ends() {
        let error = banned("lobby", 1_700_000_000_000);
        assert_eq!(error.code, ErrorCode::Banned);
        assert_eq!(error.until.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert!(error.message.contains("lobby"));
    }
}
