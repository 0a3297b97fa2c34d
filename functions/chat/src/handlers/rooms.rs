//! `join`, `who` and `history`, one Lambda told apart by the route key: moving between
//! rooms (the old room told `left`, the new one, the joiner included, `joined`), the
//! room's members, and its recent messages, each answer under the 128 KB frame quota.

use crate::delivery::management::Connections;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::Utc;
use serde_json::value::RawValue;

use super::{display_name, status, App};
use crate::protocol::moderation::{self, BAN_ACTION, KICK_ACTION, UNBAN_ACTION};
use crate::protocol::{self, direct, ErrorFrame, Frame, Member, Presence, MAX_MESSAGE_BYTES};
use crate::stores::connections::ConnectionRecord;
use crate::stores::history::After;

/// Room for the frame around a `members` or `history` list, under the quota.
const ENVELOPE_BYTES: usize = 1024;

impl App {
    pub(super) async fn rooms(
        &self,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(client) = self.management_client(event) else {
            return status(500);
        };
        let body = event.body.as_deref();
        match event.request_context.route_key.as_deref() {
            Some(protocol::JOIN_ACTION) => self.join(&client, id, event).await,
            Some(protocol::WHO_ACTION) => self.who(&client, id).await,
            Some(protocol::HISTORY_ACTION) => self.history(&client, id, event).await,
            Some(action @ (KICK_ACTION | BAN_ACTION | UNBAN_ACTION)) => {
                self.moderate(&client, id, event, action).await
            }
            _ => {
                self.reply(&client, id, protocol::explain_unrouted(body))
                    .await;
                status(400)
            }
        }
    }

    /// `join`: enter the new room first (so no message to it is missed), then move the
    /// connection's record and leave the old room; tell both rooms.
    async fn join(
        &self,
        client: &Connections,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let room = match protocol::join_room(event.body.as_deref()) {
            Ok(room) => room,
            Err(error) => {
                self.reply(client, id, error).await;
                return status(400);
            }
        };
        let Some(record) = self.record(client, id).await else {
            return status(500);
        };
        let name = display_name(event, &record.name);
        let user = super::signed_in_user(event).or(record.user);
        if let Some(user) = &user {
            let now_ms = Utc::now().timestamp_millis();
            match self.users.banned_until(&room, user, now_ms).await {
                Ok(None) => {}
                Ok(Some(until_ms)) => {
                    tracing::info!(connection_id = id, user, room, "join refused: banned");
                    self.reply(client, id, moderation::banned(&room, until_ms))
                        .await;
                    return status(403);
                }
                Err(error) => {
                    tracing::error!(connection_id = id, %error, "could not read the user's bans");
                    self.reply(client, id, ErrorFrame::unavailable()).await;
                    return status(500);
                }
            }
        }
        let presence = |room: &str| Presence {
            room: room.to_owned(),
            from: id.to_owned(),
            user: user.clone(),
            name: name.clone(),
        };
        if record.room == room {
            self.send(client, id, &Frame::Joined(presence(&room))).await;
            return status(200);
        }
        let now = Utc::now().timestamp();
        let connected_at = event.request_context.connected_at;
        // DynamoDB Local emulators lack transactions, so the three writes are ordered so that
        // a failure never leaves the connection in two rooms: the new membership is undone
        // unless the record moved.
        let who = crate::stores::connections::Who {
            name: &name,
            user: user.as_deref(),
        };
        if let Err(error) = self.members.add(&room, id, who, connected_at, now).await {
            tracing::error!(connection_id = id, %error, "could not enter the room");
            self.reply(client, id, ErrorFrame::unavailable()).await;
            return status(500);
        }
        let old = match self.store.set_room(id, &room).await {
            Ok(Some(old)) => old,
            Ok(None) => {
                // The connection is gone ($disconnect ran meanwhile): take the membership back.
                tracing::info!(connection_id = id, "left before its join completed");
                self.undo_join(&room, id).await;
                return status(200);
            }
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not move to the room");
                self.undo_join(&room, id).await;
                self.reply(client, id, ErrorFrame::unavailable()).await;
                return status(500);
            }
        };
        if let Err(error) = self.members.remove(&old, id).await {
            // The record says the new room; the old membership goes with TTL or a 410.
            tracing::error!(connection_id = id, %error, room = old, "could not leave the old room");
        }
        tracing::info!(connection_id = id, from = old, to = room, "joined");
        self.presence(client, false, presence(&old), Some(id)).await;
        self.presence(client, true, presence(&room), None).await;
        status(200)
    }

    /// Takes back a membership written for a join that did not complete.
    async fn undo_join(&self, room: &str, id: &str) {
        if let Err(error) = self.members.remove(room, id).await {
            tracing::error!(connection_id = id, %error, room, "could not take back the membership");
        }
    }

    /// `who`: every member of the sender's room, in as many frames as the quota needs.
    async fn who(&self, client: &Connections, id: &str) -> ApiGatewayProxyResponse {
        let Some(ConnectionRecord { room, .. }) = self.record(client, id).await else {
            return status(500);
        };
        let members = match self.members.all(&room).await {
            Ok((members, _)) => members,
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not list the room");
                self.reply(client, id, ErrorFrame::unavailable()).await;
                return status(500);
            }
        };
        let pages = members_pages(members);
        let last = pages.len() - 1;
        for (n, members) in pages.into_iter().enumerate() {
            let frame = Frame::Members {
                room: room.clone(),
                you: id.to_owned(),
                members,
                more: n < last,
            };
            self.send(client, id, &frame).await;
        }
        status(200)
    }

    /// `history`: the room's (or, with `with`, a direct conversation's) most recent
    /// messages, or those after a `seq`, oldest first, as many as fit a frame.
    async fn history(
        &self,
        client: &Connections,
        id: &str,
        event: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let request = match protocol::history_request(event.body.as_deref()) {
            Ok(request) => request,
            Err(error) => {
                self.reply(client, id, error).await;
                return status(400);
            }
        };
        // A direct conversation (signed in only), or the sender's room.
        let (key, room, viewer) = match &request.with {
            Some(with) => match super::signed_in_user(event) {
                Some(me) => (direct::conversation(&me, with), String::new(), Some(me)),
                None => {
                    self.reply(client, id, direct::not_signed_in()).await;
                    return status(403);
                }
            },
            None => {
                let Some(ConnectionRecord { room, .. }) = self.record(client, id).await else {
                    return status(500);
                };
                (room.clone(), room, None)
            }
        };
        let now_ms = Utc::now().timestamp_millis();
        let read = match request.after {
            None => self
                .history
                .recent(&key, request.limit, now_ms / 1000)
                .await
                .map(|frames| After {
                    frames,
                    ..After::default()
                }),
            Some(after) => self.history.after(&key, after, request.limit, now_ms).await,
        };
        let found = match read {
            // Each direct message as this side sees it (`with`: the other user).
            Ok(mut found) => {
                crate::metrics::count(crate::metrics::HISTORY_READS, 1);
                if let Some(viewer) = &viewer {
                    for frame in &mut found.frames {
                        *frame = direct::view(frame, viewer);
                    }
                }
                found
            }
            Err(error) => {
                tracing::error!(connection_id = id, %error, "could not read the history");
                self.reply(client, id, ErrorFrame::unavailable()).await;
                return status(500);
            }
        };
        let frame = match request.after {
            // The most recent: the newest that fit, older ones left out.
            None => {
                let (messages, truncated) = newest_that_fit(found.frames);
                Frame::History {
                    room,
                    with: request.with,
                    messages,
                    truncated,
                    more: false,
                    gap: false,
                    oldest: None,
                }
            }
            // After a seq: the oldest that fit, newer ones left for the next request.
            Some(_) => {
                let (messages, cut) = oldest_that_fit(found.frames);
                Frame::History {
                    room,
                    with: request.with,
                    messages,
                    truncated: false,
                    more: found.more || cut,
                    gap: found.gap,
                    oldest: found.oldest,
                }
            }
        };
        self.send(client, id, &frame).await;
        status(200)
    }
}

/// Members split into lists that each fit one frame (at least one list, maybe empty).
fn members_pages(members: Vec<Member>) -> Vec<Vec<Member>> {
    let budget = MAX_MESSAGE_BYTES - ENVELOPE_BYTES;
    let mut pages = vec![Vec::new()];
    let mut size = 0;
    for member in members {
        // {"from":"…","name":"…"}, plus a comma; names are short and cleaned, ids are ids.
        let user = member.user.as_ref().map_or(0, |user| user.len() * 6 + 10);
        let bytes = member.from.len() + member.name.len() * 6 + user + 24;
        if size + bytes > budget {
            pages.push(Vec::new());
            size = 0;
        }
        size += bytes;
        pages.last_mut().expect("one page at least").push(member);
    }
    pages
}

/// The oldest stored frames whose total fits one frame, and whether newer ones were left
/// out.
fn oldest_that_fit(frames: Vec<String>) -> (Vec<Box<RawValue>>, bool) {
    let budget = MAX_MESSAGE_BYTES - ENVELOPE_BYTES;
    let mut size = 0;
    let mut kept = Vec::new();
    let total = frames.len();
    let mut taken = 0;
    for frame in frames {
        // A frame too large for any answer (kept before the chat frame limit left room for
        // one) is passed over, so paging goes on past it.
        if frame.len() > budget {
            tracing::warn!(
                bytes = frame.len(),
                "a stored message too large for history; left out"
            );
            taken += 1;
            continue;
        }
        if size + frame.len() + 1 > budget + 1 {
            break;
        }
        size += frame.len() + 1;
        taken += 1;
        match RawValue::from_string(frame) {
            Ok(raw) => kept.push(raw),
            Err(error) => tracing::warn!(%error, "a stored message is not JSON; left out"),
        }
    }
    (kept, taken < total)
}

/// The newest stored frames (oldest first) whose total fits one frame, and whether older
/// ones were left out.
fn newest_that_fit(frames: Vec<String>) -> (Vec<Box<RawValue>>, bool) {
    let budget = MAX_MESSAGE_BYTES - ENVELOPE_BYTES;
    let mut size = 0;
    let mut kept = Vec::new();
    let total = frames.len();
    for frame in frames.into_iter().rev() {
        // The first separator-less frame may take the whole budget.
        if size + frame.len() + 1 > budget + 1 {
            break;
        }
        size += frame.len() + 1;
        match RawValue::from_string(frame) {
            Ok(raw) => kept.push(raw),
            Err(error) => tracing::warn!(%error, "a stored message is not JSON; left out"),
        }
    }
    let truncated = kept.len() < total;
    kept.reverse();
    (kept, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_paged_under_the_quota() {
        let member = |n: usize| Member {
            from: format!("R1kmxc2VNj{n:05}="),
            user: Some(format!("{n:036}")),
            name: "é".repeat(32),
            connected_at_ms: None,
        };
        let pages = members_pages((0..3000).map(member).collect());
        assert!(pages.len() > 1);
        assert_eq!(pages.iter().map(Vec::len).sum::<usize>(), 3000);
        for page in &pages {
            let frame = Frame::Members {
                room: "r".repeat(64),
                you: "R1kmxc2VNjMCFIA=".into(),
                members: page.clone(),
                more: true,
            };
            assert!(frame.to_json().len() <= MAX_MESSAGE_BYTES);
        }
        assert_eq!(
            members_pages(Vec::new()).len(),
            1,
            "an empty room is one empty list"
        );
    }

    #[test]
    fn the_largest_chat_frame_fits_a_history_answer_alone() {
        use crate::protocol::MAX_CHAT_FRAME_BYTES;
        let largest = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_CHAT_FRAME_BYTES - 10));
        assert_eq!(largest.len(), MAX_CHAT_FRAME_BYTES);
        let (kept, cut) = oldest_that_fit(vec![largest.clone(), largest.clone()]);
        assert_eq!((kept.len(), cut), (1, true));
        let (kept, truncated) = newest_that_fit(vec![largest.clone(), largest]);
        assert_eq!((kept.len(), truncated), (1, true));
        let answer = Frame::History {
            with: None,
            room: "r".repeat(64),
            messages: kept,
            truncated: true,
            more: true,
            gap: true,
            oldest: Some(u64::MAX),
        };
        assert!(answer.to_json().len() <= MAX_MESSAGE_BYTES);
        let too_big = "x".repeat(MAX_MESSAGE_BYTES);
        let (kept, cut) = oldest_that_fit(vec![too_big, r#"{"n":1}"#.into()]);
        assert_eq!((kept.len(), cut), (1, false), "passed over, paging goes on");
    }

    #[test]
    fn history_keeps_the_newest_that_fit() {
        let frame = |n: usize, size: usize| format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(size));
        let small: Vec<String> = (0..5).map(|n| frame(n, 10)).collect();
        let (kept, truncated) = newest_that_fit(small.clone());
        assert!(!truncated);
        assert_eq!(
            kept.iter().map(|r| r.get().to_owned()).collect::<Vec<_>>(),
            small
        );
        let big: Vec<String> = (0..5).map(|n| frame(n, 50_000)).collect();
        let (kept, truncated) = newest_that_fit(big);
        assert!(truncated);
        assert_eq!(kept.len(), 2);
        assert!(kept[0].get().starts_with(r#"{"n":3"#), "oldest kept first");
        let big: Vec<String> = (0..5).map(|n| frame(n, 50_000)).collect();
        let (kept, cut) = oldest_that_fit(big);
        assert!(cut);
        assert_eq!(kept.len(), 2);
        assert!(
            kept[0].get().starts_with(r#"{"n":0"#),
            "paging forward keeps the oldest"
        );
    }
}
