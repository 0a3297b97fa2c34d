//! Settings read once per Lambda container, and the `@connections` callback endpoint.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequestContext;

/// The standard AWS SDK variable that overrides the management API endpoint.
pub const ENDPOINT_OVERRIDE_VAR: &str = "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI";

/// Rooms larger than this get no presence notices, unless `PRESENCE_LIMIT` says otherwise.
pub const DEFAULT_PRESENCE_LIMIT: usize = 200;

/// Posts in flight at once during a fan-out, unless `FANOUT_CONCURRENCY` says otherwise.
pub const DEFAULT_FANOUT_CONCURRENCY: usize = 64;

/// Rooms with more recipients than this are handed to workers in chunks of this many,
/// unless `FANOUT_CHUNK_SIZE` says otherwise.
pub const DEFAULT_FANOUT_CHUNK_SIZE: usize = 2000;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// DynamoDB table of connection ids (`TABLE_NAME`, default `Chat`).
    pub table_name: String,
    /// Table of each room's members (`MEMBERS_TABLE`, default `<TABLE_NAME>-members`).
    pub members_table: String,
    /// Table of each room's messages (`MESSAGES_TABLE`, default `<TABLE_NAME>-messages`).
    pub messages_table: String,
    /// Table of the users who have signed in and of rooms' bans (`USERS_TABLE`, default
    /// `<TABLE_NAME>-users`).
    pub users_table: String,
    /// Rooms with more members than this get no `joined`/`left` notices
    /// (`PRESENCE_LIMIT`, default 200): each would cost a post per member.
    pub presence_limit: usize,
    /// How long messages are kept for `history` (`HISTORY_HOURS`, default 24).
    pub history_hours: u32,
    /// The per-connection message rate: `MESSAGE_BURST` (default 20) at once, refilled at
    /// `MESSAGES_PER_SECOND` (default 5).
    pub rate: crate::stores::ratelimit::Rate,
    /// Posts in flight at once during a broadcast (`FANOUT_CONCURRENCY`).
    pub fanout_concurrency: usize,
    /// The worker function large rooms are handed to (`FANOUT_FUNCTION`); none: every
    /// broadcast is posted by the function that sends it.
    pub fanout_function: Option<String>,
    /// Recipients per worker invocation (`FANOUT_CHUNK_SIZE`, default 2000).
    pub fanout_chunk_size: usize,
    /// `AWS_REGION`, used to build the callback endpoint.
    pub region: String,
    /// `AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI`, which wins over the derived endpoint.
    pub endpoint_override: Option<String>,
    /// This stack's API id and stage (`CHAT_API_ID`, `CHAT_STAGE`): the only callback
    /// endpoint a fan-out worker posts to.
    pub own_api: Option<(String, String)>,
}

impl Config {
    /// Reads the configuration through `var`, so tests need not touch the process environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let whole = |name: &str, default: usize| -> Result<usize, String> {
            match var(name) {
                None => Ok(default),
                Some(text) => match text.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!(
                        "{name} must be a positive whole number, not {text:?}"
                    )),
                },
            }
        };
        let fanout_concurrency = whole("FANOUT_CONCURRENCY", DEFAULT_FANOUT_CONCURRENCY)?;
        let fanout_chunk_size = whole("FANOUT_CHUNK_SIZE", DEFAULT_FANOUT_CHUNK_SIZE)?;
        let table_name = var("TABLE_NAME")
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "Chat".to_owned());
        let positive = |name: &str, default: f64| -> Result<f64, String> {
            match var(name) {
                None => Ok(default),
                Some(text) => match text.trim().parse::<f64>() {
                    Ok(n) if n > 0.0 && n.is_finite() => Ok(n),
                    _ => Err(format!("{name} must be a positive number, not {text:?}")),
                },
            }
        };
        let table = |name: &str, suffix: &str| {
            var(name)
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| format!("{table_name}-{suffix}"))
        };
        Ok(Config {
            members_table: table("MEMBERS_TABLE", "members"),
            messages_table: table("MESSAGES_TABLE", "messages"),
            users_table: table("USERS_TABLE", "users"),
            history_hours: positive("HISTORY_HOURS", 24.0)?.ceil() as u32,
            presence_limit: match var("PRESENCE_LIMIT") {
                None => DEFAULT_PRESENCE_LIMIT,
                Some(text) => text
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("PRESENCE_LIMIT must be a whole number, not {text:?}"))?,
            },
            rate: crate::stores::ratelimit::Rate {
                burst: positive("MESSAGE_BURST", 20.0)?,
                per_second: positive("MESSAGES_PER_SECOND", 5.0)?,
            },
            table_name,
            fanout_concurrency,
            fanout_function: var("FANOUT_FUNCTION").filter(|name| !name.is_empty()),
            fanout_chunk_size,
            region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
            endpoint_override: var(ENDPOINT_OVERRIDE_VAR).filter(|url| !url.is_empty()),
            own_api: var("CHAT_API_ID")
                .filter(|id| !id.is_empty())
                .zip(var("CHAT_STAGE").filter(|stage| !stage.is_empty())),
        })
    }

    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The `@connections` endpoint for the API that sent `context`.
    ///
    /// Built from the API id, region and stage rather than `domainName`, which names the
    /// custom domain (and drops the stage) when the API is behind one.
    pub fn callback_endpoint(
        &self,
        context: &ApiGatewayWebsocketProxyRequestContext,
    ) -> Result<String, String> {
        if let Some(url) = &self.endpoint_override {
            return Ok(url.trim_end_matches('/').to_owned());
        }
        let api_id = context
            .apiid
            .as_deref()
            .ok_or("the event has no requestContext.apiId")?;
        let stage = context
            .stage
            .as_deref()
            .ok_or("the event has no requestContext.stage")?;
        Ok(format!(
            "https://{api_id}.execute-api.{}.{}/{stage}",
            self.region,
            dns_suffix(&self.region)
        ))
    }
}

impl Config {
    /// Whether `url` is a callback endpoint this function may post to: the override when
    /// one is set; else this stack's own API and stage when `CHAT_API_ID` and `CHAT_STAGE`
    /// name them; else (nothing configured) any `execute-api` endpoint of its own region
    /// with a stage, IAM being the only bound then. A fan-out worker checks the endpoint its
    /// job names before it signs anything for it.
    pub fn is_callback_endpoint(&self, url: &str) -> bool {
        if let Some(own) = &self.endpoint_override {
            return url == own.trim_end_matches('/');
        }
        if let Some((api_id, stage)) = &self.own_api {
            return url
                == format!(
                    "https://{api_id}.execute-api.{}.{}/{stage}",
                    self.region,
                    dns_suffix(&self.region)
                );
        }
        let Some((host, stage)) = url
            .strip_prefix("https://")
            .and_then(|rest| rest.split_once('/'))
        else {
            return false;
        };
        let suffix = format!(".execute-api.{}.{}", self.region, dns_suffix(&self.region));
        let api_id_ok = host
            .strip_suffix(&suffix)
            .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()));
        let stage_ok = !stage.is_empty()
            && stage
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        api_id_ok && stage_ok
    }
}

/// The DNS suffix of a region's partition (`AWS::URLSuffix`): China regions have their own.
pub fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    fn context() -> ApiGatewayWebsocketProxyRequestContext {
        serde_json::from_value(serde_json::json!({
            "apiId": "abcdef1234", "stage": "Test", "domainName": "chat.example.com",
            "connectedAt": 1, "requestTimeEpoch": 1
        }))
        .unwrap()
    }

    #[test]
    fn defaults_apply() {
        let config = config(&[]).unwrap();
        assert_eq!(config.table_name, "Chat");
        assert_eq!(config.members_table, "Chat-members");
        assert_eq!(config.messages_table, "Chat-messages");
        assert_eq!(config.history_hours, 24);
        assert_eq!(config.presence_limit, DEFAULT_PRESENCE_LIMIT);
        assert_eq!(config.rate.burst, 20.0);
        assert_eq!(config.rate.per_second, 5.0);
        assert_eq!(config.fanout_concurrency, DEFAULT_FANOUT_CONCURRENCY);
    }

    #[test]
    fn bad_rates_are_refused() {
        assert!(config(&[("MESSAGE_BURST", "0")]).is_err());
        assert!(config(&[("MESSAGES_PER_SECOND", "fast")]).is_err());
        assert!(config(&[("HISTORY_HOURS", "-1")]).is_err());
        assert!(config(&[("PRESENCE_LIMIT", "lots")]).is_err());
        assert_eq!(
            config(&[("PRESENCE_LIMIT", "0")]).unwrap().presence_limit,
            0
        );
        let tables = config(&[("MEMBERS_TABLE", "M"), ("TABLE_NAME", "T")]).unwrap();
        assert_eq!(
            (
                tables.members_table.as_str(),
                tables.messages_table.as_str()
            ),
            ("M", "T-messages")
        );
        assert_eq!(tables.users_table, "T-users");
    }

    #[test]
    fn bad_concurrency_is_refused() {
        assert!(config(&[("FANOUT_CONCURRENCY", "0")]).is_err());
        assert!(config(&[("FANOUT_CONCURRENCY", "many")]).is_err());
        assert_eq!(
            config(&[("FANOUT_CONCURRENCY", "8")])
                .unwrap()
                .fanout_concurrency,
            8
        );
    }

    #[test]
    fn endpoint_comes_from_api_id_region_and_stage_not_the_domain() {
        let ireland = config(&[("AWS_REGION", "eu-west-1")]).unwrap();
        assert_eq!(
            ireland.callback_endpoint(&context()).unwrap(),
            "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/Test"
        );
        let china = config(&[("AWS_REGION", "cn-northwest-1")]).unwrap();
        assert_eq!(
            china.callback_endpoint(&context()).unwrap(),
            "https://abcdef1234.execute-api.cn-northwest-1.amazonaws.com.cn/Test"
        );
    }

    #[test]
    fn fan_out_workers_are_configured_by_name_and_chunk_size() {
        let plain = config(&[]).unwrap();
        assert_eq!(plain.fanout_function, None);
        assert_eq!(plain.fanout_chunk_size, DEFAULT_FANOUT_CHUNK_SIZE);
        let set = config(&[("FANOUT_FUNCTION", "fan"), ("FANOUT_CHUNK_SIZE", "1000")]).unwrap();
        assert_eq!(set.fanout_function.as_deref(), Some("fan"));
        assert_eq!(set.fanout_chunk_size, 1000);
        assert!(config(&[("FANOUT_CHUNK_SIZE", "0")]).is_err());
    }

    #[test]
    fn workers_post_only_to_their_own_kind_of_endpoint() {
        let ireland = config(&[("AWS_REGION", "eu-west-1")]).unwrap();
        let own = ireland.callback_endpoint(&context()).unwrap();
        assert!(ireland.is_callback_endpoint(&own));
        for other in [
            "https://abcdef1234.execute-api.us-east-1.amazonaws.com/Test",
            "https://evil.example.com/Test",
            "http://abcdef1234.execute-api.eu-west-1.amazonaws.com/Test",
            "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/",
            "https://a.b.execute-api.eu-west-1.amazonaws.com/Test",
            "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/Test/x",
        ] {
            assert!(!ireland.is_callback_endpoint(other), "{other}");
        }
        let own = config(&[
            ("AWS_REGION", "eu-west-1"),
            ("CHAT_API_ID", "abcdef1234"),
            ("CHAT_STAGE", "Test"),
        ])
        .unwrap();
        assert!(
            own.is_callback_endpoint("https://abcdef1234.execute-api.eu-west-1.amazonaws.com/Test")
        );
        for other in [
            "https://zzzzzz9999.execute-api.eu-west-1.amazonaws.com/Test",
            "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/Prod",
        ] {
            assert!(!own.is_callback_endpoint(other), "{other}");
        }
        let local = config(&[(ENDPOINT_OVERRIDE_VAR, "http://127.0.0.1:3002/Test/")]).unwrap();
        assert!(local.is_callback_endpoint("http://127.0.0.1:3002/Test"));
        assert!(!local.is_callback_endpoint("http://127.0.0.1:9/Test"));
    }

    #[test]
    fn endpoint_override_wins() {
        let config = config(&[(ENDPOINT_OVERRIDE_VAR, "http://127.0.0.1:3001/Test/")]).unwrap();
        assert_eq!(
            config.callback_endpoint(&context()).unwrap(),
            "http://127.0.0.1:3001/Test"
        );
    }
}
