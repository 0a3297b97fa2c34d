//! What the chat keeps in DynamoDB, one module per table or concern:
//! [`connections`] (the table of live connections: room, name, rate bucket),
//! [`members`] (each room's members), [`history`] (each room's numbered messages),
//! [`edits`] (finding a kept message by its id, and rewriting it),
//! [`ratelimit`] (the token bucket's arithmetic), [`admission`] (spending from it) and
//! [`users`] (who has signed in, and rooms' bans).

pub mod admission;
pub mod connections;
pub mod edits;
pub mod history;
pub mod members;
pub mod ratelimit;
pub mod users;
