//! The users who have signed in, and each room's bans, kept in DynamoDB (`USERS_TABLE`):
//! partition key `user` (the token's `sub`), sort key `sk`:
//!
//! - `profile`: `name` and `seenAt` (epoch ms), written at every signed-in `$connect`, so a
//!   direct message can tell a user who has never connected (`unknown_user`) from one who
//!   is away (kept for them, delivered to none);
//! - `ban#<room>`: `until` (epoch ms), `by` (the moderator's user id) and `expiresAt` (TTL,
//!   epoch seconds). TTL deletes late, so `until` is what is checked.
//!
//! A user's items are read by key only: nothing here reads another user's items.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::connections::{store_error, StoreError, NAME};

/// The table's partition key.
pub const USER: &str = "user";

const PROFILE: &str = "profile";

fn ban_key(room: &str) -> String {
    format!("ban#{room}")
}

/// The users table.
#[derive(Clone, Debug)]
pub struct UserStore {
    client: Client,
    table: String,
}

impl UserStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        UserStore {
            client,
            table: table.into(),
        }
    }

    /// Records that `user` signed in as `name` at `now_ms`.
    pub async fn seen(&self, user: &str, name: &str, now_ms: i64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(USER, AttributeValue::S(user.to_owned()))
            .item("sk", AttributeValue::S(PROFILE.to_owned()))
            .item(NAME, AttributeValue::S(name.to_owned()))
            .item("seenAt", AttributeValue::N(now_ms.to_string()))
            .send()
            .await
            .map_err(store_error("PutItem"))?;
        Ok(())
    }

    /// Whether `user` has ever signed in here.
    pub async fn known(&self, user: &str) -> Result<bool, StoreError> {
        Ok(self.get(user, PROFILE).await?.is_some())
    }

    /// Bans `user` from `room` until `until_ms`, by the moderator `by`.
    pub async fn ban(
        &self,
        room: &str,
        user: &str,
        until_ms: i64,
        by: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(USER, AttributeValue::S(user.to_owned()))
            .item("sk", AttributeValue::S(ban_key(room)))
            .item("until", AttributeValue::N(until_ms.to_string()))
            .item("by", AttributeValue::S(by.to_owned()))
            .item(
                "expiresAt",
                AttributeValue::N((until_ms / 1000 + 1).to_string()),
            )
            .send()
            .await
            .map_err(store_error("PutItem"))?;
        Ok(())
    }

    /// Lifts `user`'s ban from `room`; whether there was one.
    pub async fn unban(&self, room: &str, user: &str) -> Result<bool, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(USER, AttributeValue::S(user.to_owned()))
            .key("sk", AttributeValue::S(ban_key(room)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(store_error("DeleteItem"))?;
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }

    /// Until when (epoch ms) `user` is banned from `room` at `now_ms`, if they are.
    pub async fn banned_until(
        &self,
        room: &str,
        user: &str,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let until = self
            .get(user, &ban_key(room))
            .await?
            .and_then(|item| item.get("until")?.as_n().ok()?.parse::<i64>().ok());
        Ok(until.filter(|&until| until > now_ms))
    }

    async fn get(
        &self,
        user: &str,
        sk: &str,
    ) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key(USER, AttributeValue::S(user.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error("GetItem"))?
            .item)
    }
}
