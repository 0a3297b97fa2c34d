//! The chat domain shared by every Lambda of the WebSocket API.
//!
//! The Lambda binaries under `functions/` are thin: each wires one [`Route`] into
//! [`lambda::run`]. Everything that decides what a chat does lives here, in plain
//! async functions that take their dependencies as arguments so tests can call them
//! with mocked AWS clients or against a real DynamoDB endpoint.
//!
//! The crate is layered; each folder opens with what it holds:
//!
//! - [`protocol`]: the frames the server sends, the validation of what clients send, and
//!   room names. Depends on nothing else here.
//! - [`stores`]: what is kept in DynamoDB (connections, members, history, the rate
//!   limit's bucket).
//! - [`delivery`]: `@connections` (signed requests), a room's fan-out, workers, pruning
//!   gone ids, the invocation's deadline.
//! - [`auth`]: the `$connect` authorizer and the identity every route sees.
//! - [`handlers`]: one function per route, over the layers above.
//! - [`config`]: settings from the environment; [`http`]: the pooled HTTP client
//!   `@connections` and the key fetches share; [`lambda`]: the runtime wiring shared by
//!   the route binaries.

pub mod auth;
pub mod config;
pub mod delivery;
pub mod handlers;
pub mod http;
pub mod lambda;
pub mod metrics;
pub mod protocol;
pub mod stores;

pub use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
pub use handlers::{App, Route};
