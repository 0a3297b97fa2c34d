//! The chat domain shared by every Lambda of the WebSocket API.
//!
//! The Lambda binaries under `functions/` are thin: each wires one [`Route`] into
//! [`lambda::run`]. Everything that decides what a chat does lives here, in plain
//! async functions that take their dependencies as arguments so tests can call them
//! with mocked AWS clients or against a real DynamoDB endpoint.
//!
//! - [`protocol`]: the frames the server sends and the validation of what clients send.
//! - [`rooms`]: room names; [`store`]: the table of live connections (room, name, rate);
//!   [`members`]: each room's members; [`history`]: each room's messages (DynamoDB).
//! - [`ratelimit`]: the per-connection token bucket.
//! - [`broadcast`]: posting frames through the `@connections` management API, and fan-out
//!   to a room (429s retried with backoff); [`prune`]: taking out ids that answered 410,
//!   off the posting path; [`budget`]: the invocation's deadline.
//! - [`fanout`]: handing a large room to `FanoutFunction` workers, a chunk each.
//! - [`management`]: the `@connections` client, signing its posts itself ([`sigv4`]) over
//!   [`http`]'s pooled client.
//! - [`config`]: settings from the environment and the callback endpoint.
//! - [`identity`]: display names and the signed-in user every route sees.
//! - [`handlers`]: one function per route.
//! - [`lambda`]: the runtime wiring shared by the route binaries.
//! - [`auth`]: the `$connect` authorizer (JWT verification against the issuer's keys).

pub mod auth;
pub mod broadcast;
pub mod budget;
pub mod config;
pub mod fanout;
pub mod handlers;
pub mod history;
pub mod http;
pub mod identity;
pub mod lambda;
pub mod management;
pub mod members;
pub mod protocol;
pub mod prune;
pub mod ratelimit;
pub mod rooms;
pub mod sigv4;
pub mod store;

pub use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
pub use handlers::{App, Route};
