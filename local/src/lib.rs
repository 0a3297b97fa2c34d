//! The local stack: the whole SAM template on one machine, with no AWS account and no Docker.
//!
//! [`start`] serves the template's WebSocket API and `@connections` on loopback, runs its
//! functions' real `bootstrap` binaries under an emulated Lambda Runtime API, and gives
//! them a DynamoDB (dynalite) holding the template's tables; [`server::invoke`] runs one
//! function once with an event: a Docker-free `sam local invoke`.
//!
//! Layers, each its own module, with data flowing one way:
//! [`template`] → [`sam`] → [`stack`] → [`dynamodb`] and [`functions`] (over [`runtime_api`]) →
//! [`registry`], [`throttle`] → [`gateway`], [`connections`] and [`lambda_api`] →
//! [`server`] (the wiring). [`metrics`] and [`on_failure`] stand in for CloudWatch
//! metrics and asynchronous invocations' on-failure destinations.
//! → the `chat-local` command line.

pub mod cargo;
pub mod connections;
pub mod custom;
pub mod dynamodb;
pub mod events;
pub mod functions;
pub mod gateway;
pub mod ids;
pub mod issuer;
pub mod lambda_api;
pub mod log;
pub mod metrics;
pub mod oauth;
pub mod on_failure;
pub mod process;
pub mod registry;
pub mod resources;
pub mod runtime_api;
pub mod s3;
pub mod sam;
pub mod server;
pub mod signing;
pub mod sigv4;
pub mod stack;
pub mod template;
pub mod throttle;
pub mod watch;
pub mod web;

pub use log::Log;
pub use server::{start, Database, Options, Running};
