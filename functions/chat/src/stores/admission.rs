//! Admitting one message: reads the sender's connection item and spends a token of its
//! rate ([`super::ratelimit`]) with a conditional update, retrying a lost race.

use super::connections::{ConnectionRecord, ConnectionStore, StoreError};
use super::ratelimit::Rate;

/// What the rate limit says of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Send it; the sender's record (room, name) as read.
    Allowed(ConnectionRecord),
    /// Do not send it; a token comes back in this many milliseconds.
    Limited { retry_after_ms: u64 },
    /// The table does not know the connection.
    Unknown,
}

/// How often a lost race for the bucket (another invocation spent from it first) is
/// retried: each round one of the racing invocations wins, so this covers that many
/// messages of one connection in flight at once.
const ATTEMPTS: usize = 16;

/// Reads the sender's record and spends one token from its bucket, retrying when another
/// invocation changed the bucket in between.
pub async fn admit(
    store: &ConnectionStore,
    id: &str,
    rate: Rate,
    now_ms: impl Fn() -> i64,
) -> Result<Admission, StoreError> {
    for _ in 0..ATTEMPTS {
        let Some(record) = store.get(id).await? else {
            return Ok(Admission::Unknown);
        };
        match rate.take(record.bucket, now_ms()) {
            Err(retry_after_ms) => return Ok(Admission::Limited { retry_after_ms }),
            Ok(next) => {
                if store.spend(id, record.bucket, next).await? {
                    return Ok(Admission::Allowed(record));
                }
            }
        }
    }
    // Contended this hard, the sender is sending far over any rate.
    Ok(Admission::Limited {
        retry_after_ms: (1000.0 / rate.per_second).ceil() as u64,
    })
}
