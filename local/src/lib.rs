//! The local stack: the whole SAM template on one machine, with no AWS account and no Docker.
//!
//! `start` (the default) serves the template's WebSocket API and `@connections` on
//! loopback, runs its functions' real `bootstrap` binaries under an emulated Lambda
//! Runtime API, and gives them a DynamoDB (dynalite) holding the template's tables.
//! `invoke` runs one function once with an event file: a Docker-free `sam local invoke`.
//!
//! Layers, each its own module, with data flowing one way:
//! [`template`] → [`stack`] → [`dynamodb`] and [`functions`] (over [`runtime_api`]) →
//! [`gateway`] and [`connections`].

pub mod connections;
pub mod dynamodb;
pub mod events;
pub mod functions;
pub mod gateway;
pub mod ids;
pub mod process;
pub mod runtime_api;
pub mod stack;
pub mod template;
pub mod watch;
pub mod web;
