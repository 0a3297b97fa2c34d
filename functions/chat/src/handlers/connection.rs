//! `$connect` and `$disconnect`: a connection enters its room (`?room=`, default `lobby`)
//! under its display name, and leaves it, and the room is told (`joined`, `left`); a
//! handshake that offers the `chat` subprotocol is answered with it.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::Utc;

use super::{status, App};
use crate::auth;
use crate::auth::identity::{self, Identity};
use crate::protocol::rooms;
use crate::protocol::Presence;
use crate::stores::connections::Who;

impl App {
    /// `$connect`: remember the connection, its room and its name (the signed-in user's,
    /// else the cleaned `?name=`, else `guest-…`) — a signed-in user banned from the room
    /// is refused (403), one who is not is recorded as seen — then tell the room's other
    /// members (the
    /// new connection cannot be posted to before its handshake completes). A room name
    /// that is not one answers 400 and a store failure 500, both refusing the handshake.
    pub(super) async fn connect(
        &self,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let query = &event.query_string_parameters;
        let room = query.first("room").unwrap_or(rooms::DEFAULT_ROOM);
        if !rooms::is_valid(room) {
            tracing::info!(connection_id = id, reason = %rooms::rule(), "refused a room name");
            return status(400);
        }
        let signed_in = Identity::from_authorizer(&event.request_context.authorizer.fields);
        let user = signed_in.as_ref().map(|identity| identity.user_id.clone());
        let name = match signed_in {
            Some(identity) => identity.name,
            None => query
                .first("name")
                .and_then(identity::clean_name)
                .unwrap_or_else(|| identity::guest_name(id)),
        };
        let connected_at = event.request_context.connected_at;
        let now = Utc::now().timestamp();
        if let Some(user) = &user {
            match self
                .users
                .banned_until(room, user, Utc::now().timestamp_millis())
                .await
            {
                Ok(None) => {}
                Ok(Some(until_ms)) => {
                    // The handshake is refused; the page learns why from the status.
                    tracing::info!(connection_id = id, user, room, until_ms, "refused: banned");
                    return status(403);
                }
                Err(error) => {
                    tracing::error!(connection_id = id, %error, "could not read the user's bans");
                    return status(500);
                }
            }
        }
        let who = Who {
            name: &name,
            user: user.as_deref(),
        };
        let stored = async {
            let seen = async {
                match &user {
                    // A direct message can then tell this user from one never seen.
                    Some(user) => {
                        self.users
                            .seen(user, &name, Utc::now().timestamp_millis())
                            .await
                    }
                    None => Ok(()),
                }
            };
            let added = async {
                self.store.add(id, room, who, connected_at, now).await?;
                self.members.add(room, id, who, connected_at, now).await
            };
            tokio::try_join!(seen, added).map(|_| ())
        };
        if let Err(error) = stored.await {
            tracing::error!(connection_id = id, %error, "could not store the connection");
            return status(500);
        }
        tracing::info!(connection_id = id, room, name, "connected");
        if let Some(client) = self.management_client(event) {
            let presence = Presence {
                room: room.to_owned(),
                from: id.to_owned(),
                user,
                name,
            };
            self.presence(&client, true, presence, Some(id)).await;
        }
        let mut response = status(200);
        if offers_chat_subprotocol(event) {
            // A browser drops a handshake whose answer names none of the subprotocols it
            // offered; the token entry it offered beside this one is never echoed.
            let value = aws_lambda_events::http::HeaderValue::from_static(auth::SUBPROTOCOL);
            response.headers.insert("Sec-WebSocket-Protocol", value);
        }
        response
    }
}

/// Whether the handshake offered [`auth::SUBPROTOCOL`] in `Sec-WebSocket-Protocol`.
fn offers_chat_subprotocol(event: &ApiGatewayWebsocketProxyRequest) -> bool {
    event
        .headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(auth::subprotocols)
        .any(|p| p == auth::SUBPROTOCOL)
}

impl App {
    /// `$disconnect`: forget the connection, take it out of its room and tell the room.
    /// API Gateway ignores the answer, so it is always 200.
    pub(super) async fn disconnect(
        &self,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let record = match self.store.remove(id).await {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not delete connection");
                None
            }
        };
        let Some(record) = record else {
            tracing::info!(connection_id = id, "disconnected (not in the table)");
            return status(200);
        };
        if let Err(error) = self.members.remove(&record.room, id).await {
            tracing::error!(connection_id = id, %error, "could not leave the room");
        }
        tracing::info!(connection_id = id, room = record.room, "disconnected");
        if let Some(client) = self.management_client(event) {
            let presence = Presence {
                name: super::display_name(event, &record.name),
                room: record.room,
                from: id.to_owned(),
                user: record.user,
            };
            self.presence(&client, false, presence, Some(id)).await;
        }
        status(200)
    }
}
