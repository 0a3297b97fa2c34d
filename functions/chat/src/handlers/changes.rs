//! `edit`, `delete` and `typing`, served by the `onMessage` function: changing a message
//! of one's room (its author edits or deletes it, a moderator may delete it; within the
//! sender's rate) and telling the
//! room (`edited`, `deleted`), and telling the room that someone is typing (never kept, at
//! most one per connection every [`TYPING_GAP_MS`], none in rooms above `PresenceLimit`).

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::{SecondsFormat, Utc};

use super::{display_name, is_moderator, signed_in_user, status, App};
use crate::delivery::broadcast::Audience;
use crate::delivery::management::Payload;
use crate::protocol::changes::{self, ChangeRequest};
use crate::protocol::direct;
use crate::protocol::{ErrorFrame, Frame, Presence};
use crate::stores::edits::{author_key, Found};

/// A connection's typing notices are at least this far apart; more are dropped.
pub const TYPING_GAP_MS: i64 = 2_000;

/// How often an edit that lost a race with another change of the same message is tried
/// again on the frame that change wrote.
const ATTEMPTS: usize = 3;

impl App {
    /// `edit` or `delete` (`deleting`): find the message in the sender's room (or, with
    /// `with`, in a direct conversation), check who may change it, rewrite it where it is
    /// kept and tell the room (or both users' connections).
    pub(super) async fn change(
        &self,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
        deleting: bool,
    ) -> ApiGatewayProxyResponse {
        let Some(client) = self.management_client(event) else {
            return status(500);
        };
        let body = event.body.as_deref();
        let request = if deleting {
            changes::delete_request(body)
        } else {
            changes::edit_request(body)
        };
        let request = match request {
            Ok(request) => request,
            Err(error) => return self.refuse(&client, id, error, 400).await,
        };
        let record = match self.admit(&client, id, None).await {
            Ok(record) => record,
            Err(code) => return status(code),
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        let banned = record.banned_until.filter(|&until| until > now_ms);
        if let (Some(until_ms), None) = (banned, &request.with) {
            let error = crate::protocol::moderation::banned(&record.room, until_ms);
            return self.refuse(&client, id, error, 403).await;
        }
        let user = signed_in_user(event).or(record.user.clone());
        // A direct conversation's message (signed in only), or one of the sender's room.
        let (key, other) = match (&request.with, &user) {
            (Some(with), Some(me)) => (direct::conversation(me, with), Some(with.clone())),
            (Some(_), None) => return self.refuse(&client, id, direct::not_signed_in(), 403).await,
            (None, _) => (record.room.clone(), None),
        };
        // In a conversation there is nobody to moderate: only its two users are in it.
        let moderator = other.is_none() && is_moderator(event);
        let author = author_key(user.as_deref(), id);
        let changed = match self.rewrite(&key, &request, &author, moderator).await {
            Ok(changed) => changed,
            Err((error, code)) => return self.refuse(&client, id, error, code).await,
        };
        tracing::info!(
            connection_id = id,
            user,
            room = record.room,
            with = other,
            message_id = request.id,
            action = if deleting { "delete" } else { "edit" },
            author = changed.author,
            by_moderator = changed.by_moderator,
            "changed a message"
        );
        let frame = |room: &str, with: Option<String>| match &request.message {
            Some(message) => Frame::Edited {
                room: room.to_owned(),
                with,
                id: request.id.clone(),
                seq: changed.seq,
                message: message.clone(),
                edited_at: changed.at.clone(),
            },
            None => Frame::Deleted {
                room: room.to_owned(),
                with,
                id: request.id.clone(),
                seq: changed.seq,
            },
        };
        let told = match (&other, &user) {
            (Some(other), Some(me)) => {
                // Each side is told with `with` naming the other.
                let for_me = Payload::new(frame("", Some(other.clone())).to_json());
                let for_them = Payload::new(frame("", Some(me.clone())).to_json());
                self.deliver_pair(&client, id, me, other, &for_me, &for_them)
                    .await
            }
            _ => {
                let endpoint = self
                    .config
                    .callback_endpoint(&event.request_context)
                    .unwrap_or_default();
                let audience = self.audience(&record.room, None);
                let frame = frame(&record.room, None);
                Box::pin(self.announce(&client, audience, &frame, Some(&endpoint)))
                    .await
                    .map_err(|_| ())
            }
        };
        match told {
            Ok(()) => status(200),
            // Changed, but not told: the author hears so, and a reload shows the change.
            Err(()) => {
                self.refuse(&client, id, ErrorFrame::unavailable(), 500)
                    .await
            }
        }
    }

    /// Rewrites message `request.id` of `room` as `author` (or a moderator) asks: the new
    /// frame's `seq` and time, or the error to answer and its status.
    async fn rewrite(
        &self,
        room: &str,
        request: &ChangeRequest,
        author: &str,
        moderator: bool,
    ) -> Result<Changed, (ErrorFrame, i64)> {
        for _ in 0..ATTEMPTS {
            let now = Utc::now();
            let found = self.history.find(room, &request.id, now.timestamp()).await;
            let Found {
                seq,
                author: by,
                frame,
            } = match found {
                Ok(Some(found)) if !changes::is_deleted(&found.frame) => found,
                Ok(_) => return Err((changes::not_found(&request.id), 404)),
                Err(error) => {
                    tracing::error!(room, message_id = request.id, %error, "could not read the message");
                    return Err((ErrorFrame::unavailable(), 500));
                }
            };
            // A moderator may take anyone's message down, never put words in it.
            let by_moderator = by != author;
            if by_moderator && (!moderator || request.message.is_some()) {
                return Err((changes::not_allowed(&request.id), 403));
            }
            let at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
            let next = match &request.message {
                Some(message) => changes::edited(&frame, message, &at),
                None => changes::tombstone(&frame, &at),
            }
            .map_err(|error| (error, 400))?;
            match self.history.rewrite(room, seq, &frame, &next).await {
                Ok(true) => {
                    return Ok(Changed {
                        seq,
                        at,
                        author: by,
                        by_moderator,
                    })
                }
                // Changed meanwhile: read it again.
                Ok(false) => continue,
                Err(error) => {
                    tracing::error!(room, message_id = request.id, %error, "could not change the message");
                    return Err((ErrorFrame::unavailable(), 500));
                }
            }
        }
        Err((ErrorFrame::unavailable(), 409))
    }

    /// `typing`: tell the others in the sender's room, at most once every
    /// [`TYPING_GAP_MS`]; more are dropped without an answer.
    pub(super) async fn typing(
        &self,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let now_ms = Utc::now().timestamp_millis();
        let record = match self.store.mark_typing(id, now_ms, TYPING_GAP_MS).await {
            // A banned user's typing is nobody's business.
            Ok(Some(record)) if record.banned_until.is_some_and(|until| until > now_ms) => {
                return status(200)
            }
            Ok(Some(record)) => record,
            Ok(None) => return status(200),
            Err(error) => {
                tracing::warn!(connection_id = id, %error, "could not note the typing");
                return status(500);
            }
        };
        let Some(client) = self.management_client(event) else {
            return status(500);
        };
        let frame = Frame::Typing(Presence {
            room: record.room.clone(),
            from: id.to_owned(),
            user: signed_in_user(event).or(record.user),
            name: display_name(event, &record.name),
        });
        let audience = Audience {
            limit: Some(self.config.presence_limit),
            ..self.audience(&record.room, Some(id))
        };
        let _ = self.announce(&client, audience, &frame, None).await;
        status(200)
    }
}

/// A message rewritten: its `seq`, when, its author, and whether a moderator (not its
/// author) changed it.
struct Changed {
    seq: u64,
    at: String,
    author: String,
    by_moderator: bool,
}
