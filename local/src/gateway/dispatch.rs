//! From a client frame to an invocation: route selection by the template's expression
//! (falling back to `$default`, else `Forbidden`), the stage's throttle (`Too Many
//! Requests`, nothing routed), and the function's failure answered `Internal server error`;
//! each counted under API Gateway's metric names.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::{gateway_error, now_ms, Gateway};
use crate::events;
use crate::registry::{Connection, Outgoing};

/// Routes one client message and invokes its function in the background; `permit` is
/// the connection's in-flight slot, held until the invocation ends.
pub(super) fn dispatch(
    gateway: &Arc<Gateway>,
    connection: &Arc<Connection>,
    body: String,
    is_base64: bool,
    permit: OwnedSemaphorePermit,
) {
    let route = select(gateway, &body, is_base64);
    let gateway = Arc::clone(gateway);
    let connection = Arc::clone(connection);
    tokio::spawn(async move {
        let _permit = permit;
        let id = &connection.info.connection_id;
        let answer = |message: &str| Outgoing::Text(gateway_error(message, id));
        gateway.count("MessageCount");
        let Some(route) = route else {
            gateway.count("ClientError");
            let _ = connection.send(answer("Forbidden")).await;
            return;
        };
        if !gateway.throttle.admit(&route) {
            gateway.count("ClientError");
            let _ = connection.send(answer("Too Many Requests")).await;
            return;
        }
        let event = events::message(&connection.info, &route, body, is_base64, now_ms());
        let function = &gateway.routes[&route];
        match gateway.functions.invoke(function, &event).await {
            // As AWS counts: an integration's 4XX or 5XX answer is an IntegrationError.
            Ok(response) => {
                let status = response
                    .get("statusCode")
                    .and_then(serde_json::Value::as_u64);
                if status.is_some_and(|status| status >= 400) {
                    gateway.count("IntegrationError");
                }
            }
            Err(_) => {
                gateway.count("IntegrationError");
                let _ = connection.send(answer("Internal server error")).await;
            }
        }
    });
}

/// The route a message goes to, or `None` when nothing matches and there is no `$default`.
fn select(gateway: &Gateway, body: &str, is_base64: bool) -> Option<String> {
    let selected = if is_base64 {
        None
    } else {
        events::select_route(&gateway.route_selection_expression, body)
    };
    selected
        .filter(|key| gateway.routes.contains_key(key) && !key.starts_with('$'))
        .or_else(|| {
            gateway
                .routes
                .contains_key("$default")
                .then(|| "$default".to_owned())
        })
}
