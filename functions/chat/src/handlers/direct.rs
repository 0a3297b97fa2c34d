//! `dm`, served by the `onMessage` function: a direct message from one signed-in user to
//! another, kept in their conversation (numbered, `clientId` honoured, as in rooms) and
//! posted to every open connection of both users — the recipient's devices, and the
//! sender's own, the sending one included (its answer) — found through the connections
//! table's user index, which reads those two users' items only.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::{SecondsFormat, Utc};
use futures::future::join_all;

use super::chat::{Draft, Kept};
use super::{display_name, signed_in_user, status, App, Sent};
use crate::delivery::management::{Connections, Payload};
use crate::protocol::direct::{self, DmEnvelope};
use crate::protocol::{self, ErrorFrame};
use crate::stores::edits::author_key;

impl App {
    /// `dm`: check the sender (signed in, within its rate) and the recipient (known), keep
    /// the message, then post it to both users' connections.
    pub(super) async fn direct(
        &self,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(client) = self.management_client(event) else {
            return status(500);
        };
        let body = event.body.as_deref();
        let echo = protocol::client_id_of(body);
        let refuse = |error: ErrorFrame, code: i64| {
            self.refuse(&client, id, error.for_client_id(echo.as_deref()), code)
        };
        let Some(me) = signed_in_user(event) else {
            return refuse(direct::not_signed_in(), 403).await;
        };
        let request = match direct::dm_request(body) {
            Ok(request) => request,
            Err(error) => return refuse(error, 400).await,
        };
        let (known, admitted) = tokio::join!(
            self.users.known(&request.to),
            self.admit(&client, id, echo.as_deref()),
        );
        let record = match admitted {
            Ok(record) => record,
            Err(code) => return status(code),
        };
        match known {
            Ok(true) => {}
            Ok(false) => return refuse(direct::unknown_user(&request.to), 404).await,
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not look the recipient up");
                return refuse(ErrorFrame::unavailable(), 500).await;
            }
        }
        let now = Utc::now();
        let envelope = DmEnvelope {
            id: event.request_context.message_id.clone().unwrap_or_else(|| {
                format!("{id}-{}", now.timestamp_nanos_opt().unwrap_or_default())
            }),
            from: id.to_owned(),
            user: me.clone(),
            name: display_name(event, &record.name),
            to: request.to.clone(),
            sent_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            client_id: request.client_id.clone(),
        };
        if let Err(error) = direct::check_size(&envelope, &request.message) {
            return refuse(error, 400).await;
        }
        let draft = Draft {
            room: direct::conversation(&me, &request.to),
            message_id: envelope.id.clone(),
            client_id: request.client_id.clone(),
            author: author_key(Some(&me), id),
            frame: |seq| direct::dm_frame(&envelope, seq, &request.message),
        };
        let conversation = direct::conversation(&me, &request.to);
        let (kept, was_unsent) = match Box::pin(self.keep(&client, id, draft)).await {
            Kept::New(kept) => (kept, false),
            // A repeat of one whose delivery failed: deliver it now.
            Kept::Unsent(kept) => (kept, true),
            Kept::Repeat => return status(200),
            Kept::Failed(code) => return refuse(ErrorFrame::unavailable(), code).await,
        };
        let sent = self
            .deliver_direct(&client, id, &me, &request.to, &kept)
            .await
            .is_ok();
        // As for a room's message: a repeat delivers what failed, and only that.
        if let Some(client_id) = request.client_id.as_ref().filter(|_| sent == was_unsent) {
            if let Err(error) = self.history.mark_sent(&conversation, client_id, sent).await {
                tracing::warn!(client_id, %error, "could not record whether it was delivered");
            }
        }
        if sent {
            status(200)
        } else {
            refuse(ErrorFrame::unavailable(), 500).await
        }
    }

    /// Posts the kept direct message to every connection of both users, each side's view.
    async fn deliver_direct(
        &self,
        client: &Connections,
        sender: &str,
        me: &str,
        to: &str,
        kept: &str,
    ) -> Result<(), ()> {
        let for_me = Payload::new(direct::view(kept, me));
        let for_them = Payload::new(direct::view(kept, to));
        self.deliver_pair(client, sender, me, to, &for_me, &for_them)
            .await
    }

    /// Posts `for_me` to every connection of `me` (`sender` among them, even when the
    /// index does not list it yet) and `for_them` to every connection of `to`.
    pub(super) async fn deliver_pair(
        &self,
        client: &Connections,
        sender: &str,
        me: &str,
        to: &str,
        for_me: &Payload,
        for_them: &Payload,
    ) -> Result<(), ()> {
        let (mine, theirs) = if me == to {
            (self.store.of_user(me).await, Ok(Vec::new()))
        } else {
            tokio::join!(self.store.of_user(me), self.store.of_user(to))
        };
        let (Ok(mine), Ok(theirs)) = (mine, theirs) else {
            tracing::error!(
                connection_id = sender,
                "could not list the users' connections"
            );
            return Err(());
        };
        let mut mine: Vec<String> = mine.into_iter().map(|c| c.id).collect();
        if !mine.iter().any(|id| id == sender) {
            mine.push(sender.to_owned());
        }
        let posts = mine
            .iter()
            .map(|id| (id, for_me))
            .chain(theirs.iter().map(|c| (&c.id, for_them)))
            .map(|(id, payload)| self.send_outcome(client, id, payload));
        let outcomes = join_all(posts).await;
        let tally = |outcome| outcomes.iter().filter(|&&(o, _)| o == outcome).count() as u64;
        let sent = tally(Sent::Delivered);
        crate::metrics::count(crate::metrics::DELIVERIES, sent);
        crate::metrics::count(crate::metrics::GONE, tally(Sent::Gone));
        crate::metrics::count(crate::metrics::UNDELIVERED, tally(Sent::Failed));
        let throttled = outcomes.iter().map(|(_, throttled)| throttled).sum();
        crate::metrics::count(crate::metrics::THROTTLED, throttled);
        tracing::info!(
            connection_id = sender,
            user = me,
            to,
            sender_connections = mine.len(),
            recipient_connections = theirs.len(),
            delivered = sent,
            "direct message"
        );
        Ok(())
    }
}
