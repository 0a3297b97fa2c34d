//! `kick`, `ban` and `unban`, served by the rooms function: a moderator (the authorizer
//! found them in `ModeratorGroup`) acts on a user in the moderator's own room. A kick
//! closes the user's connections in the room through `@connections` DELETE (their
//! `$disconnect` runs; they may come back). A ban is kept in the users table (refusing
//! `$connect` and `join` to the room until it ends) and marked on the user's connections
//! in the room (refusing their messages, which read that item anyway). Every action is
//! logged with who did what to whom, and the moderator is answered with a `moderated`
//! frame.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::join_all;

use super::{is_moderator, signed_in_user, status, App};
use crate::delivery::management::Connections;
use crate::protocol::moderation::{self, Moderation};
use crate::protocol::{ErrorFrame, Frame};

impl App {
    /// A moderator's `kick`, `ban` or `unban` (`action`, the route key).
    pub(super) async fn moderate(
        &self,
        client: &Connections,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
        action: &str,
    ) -> ApiGatewayProxyResponse {
        let request = match moderation::moderation_request(action, event.body.as_deref()) {
            Ok(request) => request,
            Err(error) => {
                self.reply(client, id, error).await;
                return status(400);
            }
        };
        let (Some(me), true) = (signed_in_user(event), is_moderator(event)) else {
            tracing::warn!(connection_id = id, action, "refused: not a moderator");
            self.reply(client, id, moderation::not_a_moderator(action))
                .await;
            return status(403);
        };
        // The moderator's own room, as the table has it: a connection it does not know
        // moderates nowhere.
        let record = match self.store.get(id).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                self.reply(client, id, ErrorFrame::not_connected()).await;
                return status(403);
            }
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not read the moderator");
                self.reply(client, id, ErrorFrame::unavailable()).await;
                return status(500);
            }
        };
        let room = record.room;
        let user = request.user().to_owned();
        let until_ms = match request {
            Moderation::Ban { minutes, .. } => {
                Some(Utc::now().timestamp_millis() + minutes as i64 * 60_000)
            }
            _ => None,
        };
        let done = match &request {
            Moderation::Kick { .. } => self.kick(event, &room, &user).await,
            Moderation::Ban { .. } | Moderation::Unban { .. } => {
                self.set_ban(&room, &user, until_ms, &me).await
            }
        };
        let connections = match done {
            Ok(connections) => connections,
            Err(error) => {
                tracing::error!(connection_id = id, action, %error, "could not moderate");
                self.reply(client, id, ErrorFrame::unavailable()).await;
                return status(500);
            }
        };
        tracing::info!(
            moderator = me,
            action,
            user,
            room,
            until_ms,
            connections,
            "moderator action"
        );
        let until = until_ms.and_then(DateTime::<Utc>::from_timestamp_millis);
        let answer = Frame::Moderated {
            action: action.to_owned(),
            room,
            user,
            until: until.map(|until| until.to_rfc3339_opts(SecondsFormat::Secs, true)),
            connections,
        };
        self.send(client, id, &answer).await;
        status(200)
    }

    /// Closes `user`'s connections in `room`; how many were closed.
    async fn kick(
        &self,
        event: &ApiGatewayWebsocketProxyRequest,
        room: &str,
        user: &str,
    ) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let endpoint = self.config.callback_endpoint(&event.request_context)?;
        let management = self.sdk_client_for(&endpoint);
        let theirs = self.store.of_user(user).await?;
        let closes = theirs
            .iter()
            .filter(|connection| connection.room == room)
            .map(|connection| {
                management
                    .delete_connection()
                    .connection_id(&connection.id)
                    .send()
            });
        let (mut closed, mut failed) = (0, 0);
        for result in join_all(closes).await {
            match result {
                Ok(_) => closed += 1,
                // Gone already: nothing to close.
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|error| error.is_gone_exception()) => {}
                Err(error) => {
                    failed += 1;
                    let error = aws_sdk_apigatewaymanagement::Error::from(error);
                    tracing::warn!(user, room, %error, "could not close a connection");
                }
            }
        }
        // Some closed: that is the answer (the log has the rest); none of many: an error.
        if closed == 0 && failed > 0 {
            return Err(format!("none of {failed} connections could be closed").into());
        }
        Ok(closed)
    }

    /// Bans `user` from `room` until `until_ms` (`None`: lifts the ban), by `by`: kept in
    /// the users table and marked on their connections in the room; how many were marked.
    async fn set_ban(
        &self,
        room: &str,
        user: &str,
        until_ms: Option<i64>,
        by: &str,
    ) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        match until_ms {
            Some(until) => self.users.ban(room, user, until, by).await?,
            None => {
                self.users.unban(room, user).await?;
            }
        }
        let theirs = self.store.of_user(user).await?;
        let marks = theirs
            .iter()
            .filter(|connection| connection.room == room)
            .map(|connection| self.store.set_ban(&connection.id, room, until_ms));
        let mut marked = 0;
        for result in join_all(marks).await {
            marked += usize::from(result?);
        }
        Ok(marked)
    }
}
