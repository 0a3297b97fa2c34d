//! Getting frames to clients: the `@connections` client ([`management`], signing its
//! requests itself with [`sigv4`] over [`crate::http`]'s pooled client), a room's fan-out with
//! 429 back-off ([`broadcast`]), handing large rooms to `FanoutFunction` workers
//! ([`fanout`]), taking out ids that answered 410 ([`prune`]) and the invocation's
//! deadline ([`budget`]).

pub mod broadcast;
pub mod budget;
pub mod fanout;
pub mod management;
pub mod prune;
pub mod sigv4;
