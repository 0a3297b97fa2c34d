//! `onMessage` and `$default`: a chat message, within the sender's rate, is numbered and
//! kept for `history` ([`crate::stores::history`]) and then posted to every member of the sender's
//! room; anything else is explained to the sender.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::{SecondsFormat, Utc};

use super::{display_name, status, App};
use crate::delivery::management::{Connections, Payload};
use crate::protocol::{self, Envelope, ErrorFrame};
use crate::stores::edits::author_key;
use crate::stores::history::Claim;

/// A message to keep: where, under which ids, by whom, and its frame once it has a `seq`.
pub(super) struct Draft<F> {
    /// The room (or conversation) it is kept in.
    pub room: String,
    pub message_id: String,
    pub client_id: Option<String>,
    /// Who may change it (see [`author_key`]).
    pub author: String,
    pub frame: F,
}

/// How keeping a message ended.
pub(super) enum Kept {
    /// Kept under a new `seq`: the frame to broadcast, serialised once (as it was kept).
    New(String),
    /// A `clientId` kept before: the sender has been sent the original.
    Repeat,
    /// A `clientId` kept before whose broadcast failed: the original, to broadcast.
    Unsent(String),
    /// Not kept; the status to answer (the sender is told `unavailable`).
    Failed(i64),
}

impl App {
    /// `onMessage`: validate (before any read), spend from the sender's rate, take the
    /// room's next `seq` and keep the frame for `history`, then post it to the sender's
    /// room. A `clientId` the room has kept already is answered with the original frame,
    /// to the sender alone.
    pub(super) async fn on_message(
        &self,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(client) = self.management_client(event) else {
            return status(500);
        };
        let body = event.body.as_deref();
        // Every error about this message echoes its clientId, whatever else is wrong.
        let echo = protocol::client_id_of(body);
        let refuse = |error: ErrorFrame, code: i64| {
            self.refuse(&client, id, error.for_client_id(echo.as_deref()), code)
        };
        if event.is_base64_encoded {
            return refuse(ErrorFrame::binary_frame(), 400).await;
        }
        let request = match protocol::chat_request(body) {
            Ok(request) => request,
            Err(error) => return refuse(error, 400).await,
        };
        let record = match self.admit(&client, id, echo.as_deref()).await {
            Ok(record) => record,
            Err(code) => return status(code),
        };
        let now = Utc::now();
        if let Some(until_ms) = record.banned_until.filter(|&u| u > now.timestamp_millis()) {
            return refuse(protocol::moderation::banned(&record.room, until_ms), 403).await;
        }
        let envelope = Envelope {
            id: event.request_context.message_id.clone().unwrap_or_else(|| {
                format!("{id}-{}", now.timestamp_nanos_opt().unwrap_or_default())
            }),
            seq: 0,
            name: display_name(event, &record.name),
            user: super::signed_in_user(event).or(record.user),
            room: record.room,
            from: id.to_owned(),
            sent_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            client_id: request.client_id.clone(),
        };
        // The size is checked before a seq is taken, so no number goes to a refused message.
        if let Err(error) = protocol::message_frame(envelope.clone(), request.message.clone()) {
            return refuse(error, 400).await;
        }
        let room = envelope.room.clone();
        let draft = Draft {
            room: room.clone(),
            message_id: envelope.id.clone(),
            client_id: envelope.client_id.clone(),
            author: author_key(envelope.user.as_deref(), id),
            // Within the quota: its size was checked with the largest seq there can be.
            frame: move |seq| {
                protocol::chat_message_frame(Envelope { seq, ..envelope }, request.message)
                    .to_json()
            },
        };
        // Boxed: the whole handler's future would otherwise nest too deep for the compiler.
        let kept = Box::pin(self.keep(&client, id, draft));
        let (data, was_unsent) = match kept.await {
            Kept::New(data) => (data, false),
            // A repeat of a message kept before whose broadcast failed: broadcast now.
            Kept::Unsent(data) => (data, true),
            Kept::Repeat => return status(200),
            Kept::Failed(code) => return refuse(ErrorFrame::unavailable(), code).await,
        };
        // The endpoint was worked out for `client` above, so it is known to be good here.
        let endpoint = self
            .config
            .callback_endpoint(&event.request_context)
            .unwrap_or_default();
        let audience = self.audience(&room, None);
        let announced = Box::pin(self.announce_data(
            &client,
            audience,
            "message",
            data,
            Some(&endpoint),
            super::MESSAGE_RETRY_WINDOW,
        ));
        let sent = announced.await.is_ok();
        // Whether a repeat must broadcast it: written only on a failure, or on a success
        // after one.
        if let Some(client_id) = request.client_id.as_ref().filter(|_| sent == was_unsent) {
            if let Err(error) = self.history.mark_sent(&room, client_id, sent).await {
                tracing::warn!(client_id, %error, "could not record whether it was broadcast");
            }
        }
        if sent {
            status(200)
        } else {
            refuse(ErrorFrame::unavailable(), 500).await
        }
    }

    /// Keeps a message under the room's next `seq`: claims its `clientId` first (a repeat
    /// is answered here with the original frame), then takes the number, writes the
    /// message and its id (for edits) and settles the claim.
    pub(super) async fn keep(
        &self,
        client: &Connections,
        id: &str,
        draft: Draft<impl FnOnce(u64) -> String>,
    ) -> Kept {
        let now = Utc::now();
        let expires = now.timestamp() + i64::from(self.config.history_hours) * 3600;
        let Draft {
            room,
            message_id,
            client_id,
            author,
            frame,
        } = draft;
        if let Some(client_id) = &client_id {
            let claimed = match self.claim(&room, client_id, expires).await {
                // The message as it is now: edited, or a tombstone, never the text it had.
                Ok(Some((original, unsent))) => {
                    Ok(Some((self.as_kept_now(&room, original).await, unsent)))
                }
                other => other,
            };
            match claimed {
                Ok(None) => {}
                Ok(Some((original, true))) => {
                    tracing::info!(
                        connection_id = id,
                        client_id,
                        "a repeat of a message whose broadcast failed; broadcasting it"
                    );
                    return Kept::Unsent(original);
                }
                Ok(Some((original, false))) => {
                    tracing::info!(
                        connection_id = id,
                        client_id,
                        "a repeat; answered with the original"
                    );
                    self.send_payload(client, id, &Payload::new(original)).await;
                    return Kept::Repeat;
                }
                Err(code) => return Kept::Failed(code),
            }
        }
        let release = || async {
            if let Some(client_id) = &client_id {
                if let Err(error) = self.history.release(&room, client_id).await {
                    tracing::error!(client_id, %error, "could not release the clientId");
                }
            }
        };
        let seq = match self.history.take_seq(&room, now.timestamp_millis()).await {
            Ok(seq) => seq,
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not number the message");
                release().await;
                return Kept::Failed(500);
            }
        };
        let json = frame(seq);
        // The message and its id (for edits), written at once; both or neither stay.
        let (message, pointer) = tokio::join!(
            self.history
                .put(&room, seq, &json, now.timestamp_millis(), expires),
            self.history
                .index(&room, &message_id, seq, &author, expires),
        );
        if let Err(error) = message.and(pointer) {
            tracing::error!(connection_id = id, seq, %error, "could not keep the message");
            if let Err(error) = self.history.unkeep(&room, seq, &message_id).await {
                tracing::error!(seq, %error, "could not take back half a kept message");
            }
            release().await;
            return Kept::Failed(500);
        }
        if let Some(client_id) = &client_id {
            self.settle(&room, client_id, seq, &json).await;
        }
        crate::metrics::count(crate::metrics::MESSAGES_KEPT, 1);
        Kept::New(json)
    }

    /// A claimed message's frame as kept now (`original` names its `seq`): a repeat is
    /// answered with the edit or the tombstone, never with text since changed. The
    /// original when it cannot be read.
    async fn as_kept_now(&self, room: &str, original: String) -> String {
        let seq = serde_json::from_str::<serde_json::Value>(&original)
            .ok()
            .and_then(|frame| frame["seq"].as_u64());
        let Some(seq) = seq else { return original };
        match self
            .history
            .frame_at(room, seq, Utc::now().timestamp())
            .await
        {
            Ok(Some(now)) => now,
            Ok(None) => original,
            Err(error) => {
                tracing::warn!(room, seq, %error, "could not read the message as kept now");
                original
            }
        }
    }

    /// Records what a claimed `client_id` was kept as, trying three times. Should all
    /// fail, the message still goes out; a repeat finds the claim without a frame, waits,
    /// and after [`STALE_CLAIM_MS`](crate::stores::history::STALE_CLAIM_MS) keeps it again.
    async fn settle(&self, room: &str, client_id: &str, seq: u64, json: &str) {
        for attempt in 0..3u64 {
            match self.history.settle(room, client_id, seq, json).await {
                Ok(()) => return,
                Err(error) if attempt == 2 => {
                    tracing::error!(client_id, %error, "could not record the clientId's frame")
                }
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await
                }
            }
        }
    }

    /// Claims `client_id` in `room`: `None` when the message is new, the original frame
    /// (and whether its broadcast failed) when it was kept before. A claim still being
    /// kept by another invocation is waited for (up to about 2 s); an error is the status
    /// to answer.
    async fn claim(
        &self,
        room: &str,
        client_id: &str,
        expires: i64,
    ) -> Result<Option<(String, bool)>, i64> {
        for _ in 0..10 {
            match self
                .history
                .claim(room, client_id, Utc::now().timestamp_millis(), expires)
                .await
            {
                Ok(Claim::New) => return Ok(None),
                Ok(Claim::Kept { frame, unsent }) => return Ok(Some((frame, unsent))),
                Ok(Claim::Pending) => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await
                }
                Err(error) => {
                    tracing::error!(client_id, %error, "could not claim the clientId");
                    return Err(500);
                }
            }
        }
        tracing::warn!(
            client_id,
            "the clientId is still being kept by another request"
        );
        Err(409)
    }

    /// `$default`: tell the sender what was wrong with the request and how to fix it.
    pub(super) async fn default_route(
        &self,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(client) = self.management_client(event) else {
            return status(500);
        };
        let error = if event.is_base64_encoded {
            ErrorFrame::binary_frame()
        } else {
            protocol::explain_unrouted(event.body.as_deref())
        };
        self.reply(&client, id, error).await;
        status(200)
    }
}
