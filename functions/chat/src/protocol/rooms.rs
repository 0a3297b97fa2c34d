//! Rooms: what a room name may be, and the room a connection starts in.
//!
//! A message costs reads and posts for its own room only: members are kept per room (see
//! [`crate::stores::members`]), so a broadcast never looks at another room's connections.

/// The room of a client that names none (the article's session lives here).
pub const DEFAULT_ROOM: &str = "lobby";

/// The longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 64;

/// Whether `name` is a room name: 1–64 characters of `A-Z a-z 0-9 _ -`.
pub fn is_valid(name: &str) -> bool {
    (1..=MAX_ROOM_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a client is told when its room name is not one.
pub fn rule() -> String {
    format!("a room name is 1 to {MAX_ROOM_CHARS} characters of A-Z, a-z, 0-9, _ and -")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_rule() {
        for good in ["lobby", "rust", "A-Z_09", &"x".repeat(64)] {
            assert!(is_valid(good), "{good}");
        }
        for bad in [
            "",
            "two words",
            "ünïcode",
            "a/b",
            "a.b",
            &"x".repeat(65),
            "%41",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
