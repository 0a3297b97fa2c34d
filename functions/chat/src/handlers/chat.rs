//! `onMessage` and `$default`: a chat message, within the sender's rate, is kept for
//! `history` and then posted to every member of the sender's room; anything else is
//! explained to the sender.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::{SecondsFormat, Utc};

use super::{display_name, status, App};
use crate::protocol::{self, Envelope, ErrorFrame};
use crate::ratelimit::{self, Admission};

impl App {
    /// `onMessage`: validate (before any read), spend from the sender's rate, keep the
    /// frame for `history`, then post it to the sender's room.
    pub(super) async fn on_message(
        &self,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(client) = self.management_client(event) else {
            return status(500);
        };
        if event.is_base64_encoded {
            self.reply(&client, id, ErrorFrame::binary_frame()).await;
            return status(400);
        }
        let message = match protocol::chat_message(event.body.as_deref()) {
            Ok(message) => message,
            Err(error) => {
                self.reply(&client, id, error).await;
                return status(400);
            }
        };
        let now_ms = || Utc::now().timestamp_millis();
        let record = match ratelimit::admit(&self.store, id, self.config.rate, now_ms).await {
            Ok(Admission::Allowed(record)) => record,
            Ok(Admission::Unknown) => {
                // Refused: sending as a guest would spend from no rate at all.
                tracing::warn!(connection_id = id, "sender is not in the table; refused");
                self.reply(&client, id, ErrorFrame::not_connected()).await;
                return status(403);
            }
            Ok(Admission::Limited { retry_after_ms }) => {
                let error = ErrorFrame::rate_limited(retry_after_ms);
                self.reply(&client, id, error).await;
                return status(429);
            }
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not read the sender");
                self.reply(&client, id, ErrorFrame::unavailable()).await;
                return status(500);
            }
        };
        let now = Utc::now();
        let envelope = Envelope {
            id: event.request_context.message_id.clone().unwrap_or_else(|| {
                format!("{id}-{}", now.timestamp_nanos_opt().unwrap_or_default())
            }),
            name: display_name(event, &record.name),
            room: record.room,
            from: id.to_owned(),
            sent_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        let (room, message_id, sent_at) = (
            envelope.room.clone(),
            envelope.id.clone(),
            envelope.sent_at.clone(),
        );
        let frame = match protocol::message_frame(envelope, message) {
            Ok(frame) => frame,
            Err(error) => {
                self.reply(&client, id, error).await;
                return status(400);
            }
        };
        let expires = now.timestamp() + i64::from(self.config.history_hours) * 3600;
        let kept = self
            .history
            .put(&room, &sent_at, &message_id, &frame.to_json(), expires)
            .await;
        if let Err(error) = kept {
            tracing::error!(connection_id = id, %error, "could not keep the message");
            self.reply(&client, id, ErrorFrame::unavailable()).await;
            return status(500);
        }
        // The endpoint was worked out for `client` above, so it is known to be good here.
        let endpoint = self
            .config
            .callback_endpoint(&event.request_context)
            .unwrap_or_default();
        let audience = self.audience(&room, None);
        match self
            .announce(&client, audience, &frame, Some(&endpoint))
            .await
        {
            Ok(()) => status(200),
            Err(_) => {
                self.reply(&client, id, ErrorFrame::unavailable()).await;
                status(500)
            }
        }
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
