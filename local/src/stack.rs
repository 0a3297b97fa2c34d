//! The local view of the template: which WebSocket API, routes, functions and tables it
//! declares, with every value resolved the way CloudFormation would resolve it for a
//! local deployment (region, account `123456789012`, stack name `local`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::resources::{self, Bucket, CustomResource, Site, UserPool};
use crate::sam;
use crate::template::{scalar_string, Scope, Template};
use crate::throttle;

pub const ACCOUNT_ID: &str = "123456789012";
pub const STACK_NAME: &str = "local";

/// The Lambda runtimes whose functions this stack can run: OS-only ones, with a Rust `bootstrap`.
pub const RUNTIMES: &[&str] = &["provided.al2023", "provided.al2"];

/// A Lambda function of the template, ready to run locally.
#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`: the `FunctionName` property, else the logical id.
    pub name: String,
    pub arn: String,
    /// The cargo binary that is this function's `bootstrap`.
    pub binary: String,
    pub timeout: Duration,
    pub memory_mb: u64,
    pub environment: BTreeMap<String, String>,
    /// `LoggingConfig.LogFormat` (`JSON` or `Text`).
    pub log_format: Option<String>,
    /// How often an asynchronous invocation that fails is tried again
    /// (`EventInvokeConfig.MaximumRetryAttempts`, 0–2; Lambda's default is 2).
    pub async_retries: u32,
    /// `EventInvokeConfig.DestinationConfig.OnFailure.Destination` (the logical id of a
    /// `!GetAtt <Id>.Arn` or `!Ref <Id>`, or an ARN as written): where an asynchronous
    /// invocation that failed every try goes.
    pub on_failure: Option<String>,
}

/// A DynamoDB table of the template, with its properties resolved.
#[derive(Debug, Clone)]
pub struct Table {
    pub logical_id: String,
    pub name: String,
    pub properties: Value,
}

/// Where a REQUEST authorizer reads the caller's identity from; a handshake without it is
/// refused with 401 before the authorizer runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// `route.request.querystring.<name>`
    Query(String),
    /// `route.request.header.<name>` (matched without regard to case)
    Header(String),
}

/// A Lambda REQUEST authorizer on `$connect` (`AWS::ApiGatewayV2::Authorizer`).
#[derive(Debug, Clone)]
pub struct Authorizer {
    pub logical_id: String,
    /// The function's logical id.
    pub function: String,
    pub identity_sources: Vec<IdentitySource>,
    /// `arn:…:execute-api:{region}:{account}:{apiId}/{stage}/$connect`, the ARN the
    /// authorizer's policy must allow.
    pub method_arn: String,
}

/// Everything the local stack serves, derived from the template alone.
#[derive(Debug, Clone)]
pub struct Stack {
    pub region: String,
    pub api_id: String,
    pub stage: String,
    pub route_selection_expression: String,
    /// Route key (`$connect`, `onMessage`, …) to the logical id of its function.
    pub routes: BTreeMap<String, String>,
    /// The authorizer of `$connect`, if it has one (`AuthorizationType: CUSTOM`).
    pub connect_authorizer: Option<Authorizer>,
    pub functions: BTreeMap<String, Function>,
    pub tables: Vec<Table>,
    /// The stage's throttling, from its route settings.
    pub throttle: throttle::Settings,
    /// S3 buckets (the local S3 holds them).
    pub buckets: Vec<Bucket>,
    /// The Cognito user pool the development issuer stands in for.
    pub user_pool: Option<UserPool>,
    /// Custom resources, run through their functions at start.
    pub custom_resources: Vec<CustomResource>,
    /// The hosted page: a distribution in front of one of `buckets`.
    pub site: Option<Site>,
}

impl Stack {
    /// Reads the template's API, routes, functions and tables.
    ///
    /// `template_dir` anchors relative `CodeUri`s; `overrides` are `Name=Value` parameter
    /// overrides, as `sam deploy --parameter-overrides` takes them.
    pub fn from_template(
        template: &Template,
        template_dir: &Path,
        region: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Stack> {
        // SAM's WebSocket API is read as the resources the SAM transform makes of it
        // (before CloudFormation sees the template, as on AWS).
        let template = &sam::expand(template)?;
        let mut scope = pseudo_parameters(template, region, overrides)?;
        template.evaluate_conditions(&mut scope)?;
        template.check_rules(&scope)?;
        // Resources whose Condition is false are not deployed, so not emulated either.
        let template = &template.deployed(&scope)?;
        let (api_logical_id, api) = template
            .of_type("AWS::ApiGatewayV2::Api")
            .find(|(_, api)| api.properties["ProtocolType"] == "WEBSOCKET")
            .ok_or_else(|| {
                anyhow!(
                    "the template declares no AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET"
                )
            })?;
        let api_id = local_api_id(api_logical_id);
        scope.refs.insert(api_logical_id.clone(), api_id.clone());
        scope
            .attributes
            .insert(format!("{api_logical_id}.ApiId"), api_id.clone());
        scope.attributes.insert(
            format!("{api_logical_id}.ApiEndpoint"),
            format!(
                "wss://{api_id}.execute-api.{region}.{}",
                partition(region).1
            ),
        );
        let authorizers = template.of_type("AWS::ApiGatewayV2::Authorizer");
        for (n, (id, _)) in authorizers.enumerate() {
            // Six characters from the logical id, the last made unique by position.
            let mut local = local_id(id, 5);
            local.push(char::from_digit(n as u32 % 36, 36).unwrap_or('0'));
            scope.refs.insert(id.clone(), local);
        }
        let tables = name_tables(template, &mut scope, region)?;
        let buckets = resources::name_buckets(template, &mut scope, region)?;
        let user_pool = resources::name_user_pool(template, &mut scope, region);
        resources::name_roles(template, &mut scope, region)?;
        let function_ids = name_functions(template, &mut scope, region)?;
        resources::name_function_versions(template, &mut scope)?;
        let (stage, throttle) = stage(template, &scope, &api_id)?;
        let functions = function_ids
            .iter()
            .map(|id| Ok((id.clone(), function(template, id, &scope, template_dir)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let routes = routes(template, &scope, &api_id, &functions)?;
        if routes.is_empty() {
            bail!("the WebSocket API {api_logical_id} has no routes");
        }
        let method_arn = format!(
            "arn:{}:execute-api:{region}:{ACCOUNT_ID}:{api_id}/{stage}/$connect",
            partition(region).0
        );
        let connect_authorizer =
            connect_authorizer(template, &scope, &api_id, &functions, method_arn)?;
        let custom_resources = resources::custom_resources(template, &scope, &functions)?;
        let site = resources::site(template, &scope, &buckets)?;
        let tables = tables
            .into_iter()
            .map(|(id, name)| {
                let properties = scope.resolve(&template.resources[&id].properties)?;
                Ok(Table {
                    logical_id: id,
                    name,
                    properties,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Stack {
            region: region.to_owned(),
            api_id,
            stage,
            route_selection_expression: api.properties["RouteSelectionExpression"]
                .as_str()
                .unwrap_or("$request.body.action")
                .to_owned(),
            routes,
            connect_authorizer,
            functions,
            tables,
            throttle,
            buckets,
            user_pool,
            custom_resources,
            site,
        })
    }

    /// Points what names an emulated resource's AWS endpoint (`aws`, e.g. the user pool's
    /// issuer URL or the API's `wss://` endpoint) at its local stand-in (`local`): in the
    /// functions' environments and the custom resources' properties.
    pub fn stand_in(&mut self, aws: &str, local: &str) {
        for function in self.functions.values_mut() {
            for value in function.environment.values_mut() {
                if let Some(rest) = value.strip_prefix(aws) {
                    *value = format!("{local}{rest}");
                }
            }
        }
        for resource in &mut self.custom_resources {
            resources::stand_in(&mut resource.properties, aws, local);
        }
        // Headers name endpoints anywhere in their values (a CSP's sources).
        for (_, value) in self
            .site
            .iter_mut()
            .flat_map(|site| site.headers.iter_mut())
        {
            *value = value.replace(aws, local);
        }
    }

    /// The `$connect` authorizer's issuer when it is a plain `http://` one on loopback.
    pub fn loopback_issuer(&self) -> Option<String> {
        let authorizer = self.connect_authorizer.as_ref()?;
        let issuer = self.functions[&authorizer.function]
            .environment
            .get("JWT_ISSUER")?;
        let host = issuer.strip_prefix("http://")?.split(['/', ':']).next()?;
        matches!(host, "127.0.0.1" | "localhost" | "[::1]").then(|| issuer.clone())
    }

    /// The API's endpoint on AWS: `wss://{apiId}.execute-api.{region}.{suffix}`.
    pub fn aws_api_endpoint(&self) -> String {
        format!(
            "wss://{}.execute-api.{}.{}",
            self.api_id,
            self.region,
            partition(&self.region).1
        )
    }
}

impl Stack {
    /// How `$connect` lets people in: `open` without an authorizer or when the authorizer's
    /// function is told `AUTH_MODE=open` (it then lets everyone in), else the function's
    /// `AUTH_MODE` (`jwt` when it names none): tokens are checked, so an issuer is needed.
    pub fn auth_mode(&self) -> &str {
        let Some(authorizer) = &self.connect_authorizer else {
            return "open";
        };
        self.functions
            .get(&authorizer.function)
            .and_then(|f| f.environment.get("AUTH_MODE"))
            .map(String::as_str)
            .unwrap_or("jwt")
    }
}

/// The partition and its DNS suffix (`AWS::Partition`, `AWS::URLSuffix`) of a region.
pub fn partition(region: &str) -> (&'static str, &'static str) {
    if region.starts_with("cn-") {
        ("aws-cn", "amazonaws.com.cn")
    } else if region.starts_with("us-gov-") {
        ("aws-us-gov", "amazonaws.com")
    } else {
        ("aws", "amazonaws.com")
    }
}

/// The pseudo parameters and the template's parameters (defaults or overrides).
fn pseudo_parameters(
    template: &Template,
    region: &str,
    overrides: &BTreeMap<String, String>,
) -> Result<Scope> {
    for name in overrides.keys() {
        if !template.parameters.contains_key(name) {
            bail!("--parameter-overrides names {name}, which the template does not declare");
        }
    }
    let mut scope = Scope::default();
    let (partition, url_suffix) = partition(region);
    for (name, value) in [
        ("AWS::Region", region),
        ("AWS::AccountId", ACCOUNT_ID),
        ("AWS::Partition", partition),
        ("AWS::StackName", STACK_NAME),
        ("AWS::URLSuffix", url_suffix),
    ] {
        scope.refs.insert(name.into(), value.into());
    }
    for (name, default) in &template.parameters {
        let value = overrides
            .get(name)
            .cloned()
            .or_else(|| default.clone())
            .ok_or_else(|| {
                anyhow!("parameter {name} has no Default; pass --parameter-overrides {name}=…")
            })?;
        if let Some(allowed) = template.allowed_values.get(name) {
            if !allowed.contains(&value) {
                bail!(
                    "parameter {name} is {value:?}; its AllowedValues are {}",
                    allowed.join(", ")
                );
            }
        }
        scope.refs.insert(name.clone(), value);
    }
    for id in template.resources.keys() {
        scope.refs.insert(id.clone(), id.clone());
    }
    Ok(scope)
}

/// Each table's name (`TableName`, else CloudFormation's generated one) and ARN in `scope`.
fn name_tables(
    template: &Template,
    scope: &mut Scope,
    region: &str,
) -> Result<Vec<(String, String)>> {
    let partition = partition(region).0;
    let mut tables = Vec::new();
    for (id, table) in template.of_type("AWS::DynamoDB::Table") {
        let name = match table.properties.get("TableName") {
            Some(name) => scope
                .resolve_string(name)
                .with_context(|| format!("{id}.TableName"))?,
            None => format!("{STACK_NAME}-{id}"),
        };
        scope.refs.insert(id.clone(), name.clone());
        scope.attributes.insert(
            format!("{id}.Arn"),
            format!("arn:{partition}:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"),
        );
        tables.push((id.clone(), name));
    }
    Ok(tables)
}

/// Each function's name and ARN in `scope`; returns the functions' logical ids.
fn name_functions(template: &Template, scope: &mut Scope, region: &str) -> Result<Vec<String>> {
    let partition = partition(region).0;
    let ids: Vec<String> = template
        .resources
        .iter()
        .filter(|(_, r)| r.kind == "AWS::Serverless::Function" || r.kind == "AWS::Lambda::Function")
        .map(|(id, _)| id.clone())
        .collect();
    for id in &ids {
        let properties = &template.resources[id].properties;
        let name = match properties.get("FunctionName") {
            Some(name) => scope.resolve_string(name)?,
            None => id.clone(),
        };
        scope.attributes.insert(
            format!("{id}.Arn"),
            format!("arn:{partition}:lambda:{region}:{ACCOUNT_ID}:function:{name}"),
        );
        scope.refs.insert(id.clone(), name);
    }
    Ok(ids)
}

/// The API's stage name and its throttling (`DefaultRouteSettings`, `RouteSettings`).
fn stage(template: &Template, scope: &Scope, api_id: &str) -> Result<(String, throttle::Settings)> {
    let stage = template
        .of_type("AWS::ApiGatewayV2::Stage")
        .find(|(_, stage)| {
            scope
                .resolve_string(&stage.properties["ApiId"])
                .ok()
                .as_deref()
                == Some(api_id)
        });
    let Some((id, stage)) = stage else {
        return Ok(("local".to_owned(), throttle::Settings::default()));
    };
    let name = scope
        .resolve_string(&stage.properties["StageName"])
        .with_context(|| format!("{id}.StageName"))?;
    let limit = |settings: Option<&Value>, path: &str| -> Result<Option<throttle::Limit>> {
        let Some(settings) = settings else {
            return Ok(None);
        };
        let number = |key: &str| -> Result<Option<f64>> {
            settings
                .get(key)
                .map(|value| {
                    scope
                        .resolve_string(value)?
                        .parse::<f64>()
                        .with_context(|| format!("{id}.{path}.{key} is not a number"))
                })
                .transpose()
        };
        Ok(
            match (
                number("ThrottlingRateLimit")?,
                number("ThrottlingBurstLimit")?,
            ) {
                (Some(rate), Some(burst)) => Some(throttle::Limit {
                    rate_per_second: rate.max(0.0),
                    burst: burst.max(0.0) as u32,
                }),
                _ => None,
            },
        )
    };
    let mut settings = throttle::Settings {
        stage: limit(
            stage.properties.get("DefaultRouteSettings"),
            "DefaultRouteSettings",
        )?,
        routes: BTreeMap::new(),
    };
    if let Some(routes) = stage
        .properties
        .get("RouteSettings")
        .and_then(Value::as_object)
    {
        for (route, route_settings) in routes {
            let path = format!("RouteSettings.{route}");
            if let Some(limit) = limit(Some(route_settings), &path)? {
                settings.routes.insert(route.clone(), limit);
            }
        }
    }
    Ok((name, settings))
}

/// Route key to the logical id of the function its integration invokes.
fn routes(
    template: &Template,
    scope: &Scope,
    api_id: &str,
    functions: &BTreeMap<String, Function>,
) -> Result<BTreeMap<String, String>> {
    let mut routes = BTreeMap::new();
    for (id, route) in template.of_type("AWS::ApiGatewayV2::Route") {
        if scope.resolve_string(&route.properties["ApiId"])? != api_id {
            continue;
        }
        let key = scope
            .resolve_string(&route.properties["RouteKey"])
            .with_context(|| format!("{id}.RouteKey"))?;
        let target = scope
            .resolve_string(&route.properties["Target"])
            .with_context(|| format!("{id}.Target"))?;
        let integration_id = target
            .strip_prefix("integrations/")
            .ok_or_else(|| anyhow!("{id}.Target should be integrations/<id>, is {target}"))?;
        let integration = template.resources.get(integration_id).ok_or_else(|| {
            anyhow!("{id} targets {integration_id}, which is not in the template")
        })?;
        let uri = scope.resolve_string(&integration.properties["IntegrationUri"])?;
        let function = invoked_function(&uri, functions).ok_or_else(|| {
            anyhow!("{integration_id} integrates {uri}, which is no function of the template")
        })?;
        routes.insert(key, function.logical_id.clone());
    }
    Ok(routes)
}

/// The function an integration or authorizer URI invokes.
fn invoked_function<'a>(
    uri: &str,
    functions: &'a BTreeMap<String, Function>,
) -> Option<&'a Function> {
    functions
        .values()
        .find(|f| uri.contains(&format!("{}/invocations", f.arn)) || uri == f.arn)
}

/// The `$connect` route's authorizer. As on AWS, only `$connect` of a WebSocket API may
/// have one; it must be a Lambda REQUEST authorizer of this API with identity sources the
/// handshake can carry (query string parameters, headers).
fn connect_authorizer(
    template: &Template,
    scope: &Scope,
    api_id: &str,
    functions: &BTreeMap<String, Function>,
    method_arn: String,
) -> Result<Option<Authorizer>> {
    let mut found = None;
    for (id, route) in template.of_type("AWS::ApiGatewayV2::Route") {
        let properties = scope.resolve(&route.properties)?;
        if properties["ApiId"] != api_id {
            continue;
        }
        let key = properties["RouteKey"].as_str().unwrap_or_default();
        match properties["AuthorizationType"].as_str().unwrap_or("NONE") {
            "NONE" => continue,
            "CUSTOM" if key == "$connect" => {}
            "CUSTOM" => bail!("{id}: a WebSocket API authorizes $connect only, not {key}"),
            other => bail!("{id}: AuthorizationType {other} is not emulated (NONE and CUSTOM are)"),
        }
        let authorizer_id = properties["AuthorizerId"]
            .as_str()
            .ok_or_else(|| anyhow!("{id}: AuthorizationType CUSTOM needs an AuthorizerId"))?;
        let (logical_id, resource) = template
            .of_type("AWS::ApiGatewayV2::Authorizer")
            .find(|(logical_id, _)| scope.refs[*logical_id] == authorizer_id)
            .ok_or_else(|| {
                anyhow!("{id}: AuthorizerId {authorizer_id} is no authorizer of the template")
            })?;
        let authorizer = scope.resolve(&resource.properties)?;
        if authorizer["ApiId"] != api_id {
            bail!("{logical_id} belongs to another API");
        }
        if authorizer["AuthorizerType"] != "REQUEST" {
            bail!("{logical_id}: a WebSocket API's authorizer is AuthorizerType REQUEST");
        }
        let uri = authorizer["AuthorizerUri"].as_str().unwrap_or_default();
        let function = invoked_function(uri, functions).ok_or_else(|| {
            anyhow!("{logical_id}.AuthorizerUri {uri:?} invokes no function of the template")
        })?;
        let identity_sources = match &authorizer["IdentitySource"] {
            Value::Array(sources) => sources.iter().map(scalar_string).collect(),
            Value::Null => Vec::new(),
            other => vec![scalar_string(other)],
        };
        found = Some(Authorizer {
            logical_id: logical_id.clone(),
            function: function.logical_id.clone(),
            identity_sources: identity_sources
                .iter()
                .map(|source| {
                    identity_source(source).with_context(|| format!("{logical_id}.IdentitySource"))
                })
                .collect::<Result<_>>()?,
            method_arn: method_arn.clone(),
        });
    }
    Ok(found)
}

fn identity_source(source: &str) -> Result<IdentitySource> {
    if let Some(name) = source.strip_prefix("route.request.querystring.") {
        return Ok(IdentitySource::Query(name.to_owned()));
    }
    if let Some(name) = source.strip_prefix("route.request.header.") {
        return Ok(IdentitySource::Header(name.to_owned()));
    }
    bail!("{source} is not emulated (route.request.querystring.X and route.request.header.X are)")
}

fn function(template: &Template, id: &str, scope: &Scope, template_dir: &Path) -> Result<Function> {
    let resource = &template.resources[id];
    let setting = |key: &str| -> Option<Value> {
        resource
            .properties
            .get(key)
            .cloned()
            .or_else(|| template.function_globals.get(key).cloned())
    };
    let number = |key: &str, default: u64| -> Result<u64> {
        match setting(key) {
            None => Ok(default),
            Some(value) => scope
                .resolve_string(&value)?
                .parse()
                .with_context(|| format!("{id}.{key} is not a whole number")),
        }
    };
    let code_uri = setting("CodeUri")
        .map(|uri| scope.resolve_string(&uri))
        .transpose()?
        .unwrap_or_else(|| ".".to_owned());
    let runtime = setting("Runtime")
        .map(|runtime| scope.resolve_string(&runtime))
        .transpose()?
        .unwrap_or_else(|| "(none)".to_owned());
    let runs = "chat-local runs Rust functions on provided.al2023 or provided.al2, \
                built from a cargo package at their CodeUri";
    if !RUNTIMES.contains(&runtime.as_str()) {
        bail!("{id}: Runtime {runtime} cannot run here; {runs}");
    }
    let manifest = template_dir.join(&code_uri).join("Cargo.toml");
    let binary = match resource.metadata.pointer("/BuildProperties/Binary") {
        Some(binary) => scalar_string(binary),
        None if !manifest.is_file() => {
            bail!("{id}: Runtime {runtime}, but there is no Rust package at CodeUri {code_uri} (no Cargo.toml); {runs}")
        }
        None => package_name(&manifest)
            .with_context(|| format!("{id}: no Metadata.BuildProperties.Binary"))?,
    };
    let mut environment = BTreeMap::new();
    for source in [
        template.function_globals.get("Environment"),
        resource.properties.get("Environment"),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(variables) = source.get("Variables").and_then(Value::as_object) {
            for (name, value) in variables {
                let value = scope
                    .resolve_string(value)
                    .with_context(|| format!("{id}.Environment.Variables.{name}"))?;
                environment.insert(name.clone(), value);
            }
        }
    }
    Ok(Function {
        logical_id: id.to_owned(),
        name: scope.refs[id].clone(),
        arn: scope.attributes[&format!("{id}.Arn")].clone(),
        binary,
        timeout: Duration::from_secs(number("Timeout", 3)?),
        memory_mb: number("MemorySize", 128)?,
        environment,
        log_format: setting("LoggingConfig")
            .and_then(|config| config.get("LogFormat").map(scalar_string)),
        async_retries: async_retries(id, setting("EventInvokeConfig"), scope)?,
        on_failure: on_failure(setting("EventInvokeConfig")),
    })
}

/// Where an `EventInvokeConfig`'s on-failure records go: the logical id its destination
/// names with `GetAtt` or `Ref`, or the ARN it spells out.
fn on_failure(config: Option<Value>) -> Option<String> {
    let destination = config?
        .pointer("/DestinationConfig/OnFailure/Destination")?
        .clone();
    if let Value::String(arn) = &destination {
        return Some(arn.clone());
    }
    if let Some(Value::String(id)) = destination.get("Ref") {
        return Some(id.clone());
    }
    match destination.get("Fn::GetAtt")? {
        Value::String(dotted) => dotted.split('.').next().map(str::to_owned),
        Value::Array(parts) => parts.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// `EventInvokeConfig.MaximumRetryAttempts`: 2 unless set, and only 0, 1 or 2.
fn async_retries(id: &str, config: Option<Value>, scope: &Scope) -> Result<u32> {
    let Some(value) = config.as_ref().and_then(|c| c.get("MaximumRetryAttempts")) else {
        return Ok(2);
    };
    match scope.resolve_string(value)?.parse::<u32>() {
        Ok(n) if n <= 2 => Ok(n),
        _ => bail!("{id}.EventInvokeConfig.MaximumRetryAttempts must be 0, 1 or 2"),
    }
}

/// The `[package] name` of a Cargo manifest.
fn package_name(manifest: &Path) -> Result<String> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(value) = line
                .strip_prefix("name")
                .map(str::trim)
                .and_then(|l| l.strip_prefix('='))
            {
                return Ok(value.trim().trim_matches('"').to_owned());
            }
        }
    }
    bail!("{} has no [package] name", manifest.display())
}

/// API ids are ten lowercase letters and digits; the local one is derived from the logical id.
fn local_api_id(logical_id: &str) -> String {
    local_id(logical_id, 10)
}

/// A lowercase alphanumeric id of `len` characters derived from a logical id (API ids
/// have ten, authorizer ids six).
fn local_id(logical_id: &str, len: usize) -> String {
    let mut id: String = logical_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(len)
        .collect();
    while id.len() < len {
        id.push('0');
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_on_failure_destination_is_named_by_getatt_ref_or_arn() {
        let config = |destination: Value| {
            Some(
                serde_json::json!({"DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": destination}}}),
            )
        };
        let named = |destination| on_failure(config(destination));
        assert_eq!(
            named(serde_json::json!({"Fn::GetAtt": "Queue.Arn"})).as_deref(),
            Some("Queue")
        );
        assert_eq!(
            named(serde_json::json!({"Fn::GetAtt": ["Queue", "Arn"]})).as_deref(),
            Some("Queue")
        );
        assert_eq!(
            named(serde_json::json!({"Ref": "Topic"})).as_deref(),
            Some("Topic")
        );
        let arn = "arn:aws:sqs:us-east-1:123456789012:dropped";
        assert_eq!(named(serde_json::json!(arn)).as_deref(), Some(arn));
        assert_eq!(named(serde_json::json!({"Fn::Sub": "x"})), None);
        assert_eq!(on_failure(None), None);
    }

    fn project_stack(overrides: &[(&str, &str)]) -> Result<Stack> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let template = Template::load(&root.join("template.yaml"))?;
        let overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Stack::from_template(&template, &root, "us-east-1", &overrides)
    }

    #[test]
    fn the_project_template_maps_every_route_to_its_function() {
        let stack = project_stack(&[]).unwrap();
        assert_eq!(stack.stage, "Test");
        assert_eq!(stack.route_selection_expression, "$request.body.action");
        assert_eq!(stack.routes["$connect"], "ConnectFunction");
        assert_eq!(stack.routes["$disconnect"], "DisconnectFunction");
        assert_eq!(stack.routes["onMessage"], "OnMessageFunction");
        assert_eq!(stack.routes["$default"], "DefaultFunction");
        let on_message = &stack.functions["OnMessageFunction"];
        assert_eq!(on_message.binary, "chat-on-message");
        assert_eq!(on_message.environment["TABLE_NAME"], "Chat");
        assert_eq!(on_message.environment["FANOUT_CONCURRENCY"], "64");
        assert_eq!(on_message.timeout, Duration::from_secs(29));
        assert_eq!(
            stack.throttle.stage,
            Some(throttle::Limit {
                rate_per_second: 50.0,
                burst: 100
            })
        );
        assert_eq!(
            stack.functions["ConnectFunction"].timeout,
            Duration::from_secs(10)
        );
        assert_eq!(stack.functions["ConnectFunction"].memory_mb, 128);
        let tables: Vec<&str> = stack.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            tables,
            ["Chat", "Chat-members", "Chat-messages", "Chat-users"]
        );
        for route in ["join", "who", "history", "kick", "ban", "unban"] {
            assert_eq!(stack.routes[route], "RoomsFunction");
        }
        for route in ["dm", "edit", "delete", "typing"] {
            assert_eq!(stack.routes[route], "OnMessageFunction");
        }
    }

    #[test]
    fn parameter_overrides_flow_into_tables_and_environment() {
        let stack = project_stack(&[("TableName", "Other"), ("StageName", "dev")]).unwrap();
        assert_eq!(stack.tables[0].name, "Other");
        assert_eq!(
            stack.functions["ConnectFunction"].environment["TABLE_NAME"],
            "Other"
        );
        assert_eq!(stack.stage, "dev");
        assert!(project_stack(&[("Nope", "x")]).is_err());
    }

    /// A one-function template: a WebSocket API with `$default` and `function` as its body.
    fn tiny(function: &str, extra: &str) -> Result<Stack> {
        let text = format!(
            r#"
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {{ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}}
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties: {{ApiId: !Ref Api, RouteKey: $default, Target: !Join ['/', [integrations, !Ref Integration]]}}
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationUri: !Sub arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/${{Fn.Arn}}/invocations
  Fn:
    Type: AWS::Serverless::Function
{function}
{extra}
"#
        );
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let template = Template::parse(&text)?;
        Stack::from_template(&template, &root, "cn-north-1", &BTreeMap::new())
    }

    #[test]
    fn functions_the_stack_cannot_run_are_refused_in_one_line_naming_them() {
        let node = tiny(
            "    Properties: {Runtime: nodejs20.x, CodeUri: functions/connect, Handler: index.handler}",
            "",
        )
        .unwrap_err()
        .to_string();
        assert!(
            node.starts_with("Fn: Runtime nodejs20.x cannot run here"),
            "{node}"
        );
        assert!(
            node.contains("provided.al2023") && !node.contains('\n'),
            "{node}"
        );
        let missing = tiny(
            "    Properties: {Runtime: provided.al2023, CodeUri: nowhere/}",
            "",
        )
        .unwrap_err()
        .to_string();
        assert!(
            missing.starts_with(
                "Fn: Runtime provided.al2023, but there is no Rust package at CodeUri nowhere/"
            ),
            "{missing}"
        );
        let rust = tiny(
            "    Properties: {Runtime: provided.al2023, CodeUri: functions/connect}",
            "",
        )
        .unwrap();
        assert_eq!(rust.functions["Fn"].binary, "chat-connect");
    }

    #[test]
    fn china_regions_get_their_partition_and_dns_suffix_and_route_throttles_are_read() {
        let stack = tiny(
            "    Properties: {Runtime: provided.al2023, CodeUri: functions/connect}",
            r#"  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties:
      ApiId: !Ref Api
      StageName: dev
      DefaultRouteSettings: {ThrottlingBurstLimit: 10, ThrottlingRateLimit: 5}
      RouteSettings:
        $default: {ThrottlingBurstLimit: 2, ThrottlingRateLimit: 1}"#,
        )
        .unwrap();
        assert_eq!(
            stack.functions["Fn"].arn,
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:Fn"
        );
        assert_eq!(partition("cn-north-1"), ("aws-cn", "amazonaws.com.cn"));
        assert_eq!(partition("eu-west-1"), ("aws", "amazonaws.com"));
        assert_eq!(stack.stage, "dev");
        assert_eq!(stack.throttle.stage.unwrap().burst, 10);
        assert_eq!(stack.throttle.routes["$default"].rate_per_second, 1.0);
    }

    /// A `$connect` route with `authorization` properties and an authorizer with `sources`.
    fn with_authorizer(route_key: &str, authorization: &str, sources: &str) -> Result<Stack> {
        tiny(
            "    Properties: {Runtime: provided.al2023, CodeUri: functions/connect}",
            &format!(
                r#"  Connect:
    Type: AWS::ApiGatewayV2::Route
    Properties: {{ApiId: !Ref Api, RouteKey: {route_key}, {authorization}, Target: !Join ['/', [integrations, !Ref Integration]]}}
  Auth:
    Type: AWS::ApiGatewayV2::Authorizer
    Properties:
      ApiId: !Ref Api
      AuthorizerType: REQUEST
      IdentitySource: {sources}
      AuthorizerUri: !Sub arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/${{Fn.Arn}}/invocations"#
            ),
        )
    }

    #[test]
    fn connect_authorizers_are_read_and_what_aws_refuses_is_refused() {
        let custom = "AuthorizationType: CUSTOM, AuthorizerId: !Ref Auth";
        let sources = "[route.request.querystring.token, route.request.header.X-Key]";
        let stack = with_authorizer("$connect", custom, sources).unwrap();
        let authorizer = stack.connect_authorizer.unwrap();
        assert_eq!(authorizer.function, "Fn");
        assert_eq!(
            authorizer.identity_sources,
            [
                IdentitySource::Query("token".into()),
                IdentitySource::Header("X-Key".into())
            ]
        );
        assert_eq!(
            authorizer.method_arn,
            "arn:aws-cn:execute-api:cn-north-1:123456789012:api0000000/local/$connect"
        );
        let refused = |route: &str, authorization: &str, sources: &str| {
            format!(
                "{:#}",
                with_authorizer(route, authorization, sources).unwrap_err()
            )
        };
        assert!(refused("onMessage", custom, sources).contains("$connect only"));
        let iam = refused("$connect", "AuthorizationType: AWS_IAM", sources);
        assert!(iam.contains("AWS_IAM is not emulated"), "{iam}");
        let stage_variable = refused("$connect", custom, "[stageVariables.key]");
        assert!(
            stage_variable.contains("stageVariables.key is not emulated"),
            "{stage_variable}"
        );
        let none = with_authorizer("$connect", "AuthorizationType: NONE", sources).unwrap();
        assert!(none.connect_authorizer.is_none());
    }

    #[test]
    fn rules_are_checked_where_their_condition_holds() {
        let rules = |value: &str| {
            let text = format!(
                r#"
Parameters:
  Mode: {{Type: String, Default: {value}, AllowedValues: [a, b]}}
  Key: {{Type: String, Default: ''}}
Rules:
  BNeedsKey:
    RuleCondition: !Equals [!Ref Mode, b]
    Assertions:
      - Assert: !Not [!Equals [!Ref Key, '']]
        AssertDescription: Mode b needs Key.
Resources: {{}}
"#
            );
            let template = Template::parse(&text).unwrap();
            let scope = pseudo_parameters(&template, "us-east-1", &BTreeMap::new())?;
            template.check_rules(&scope)
        };
        assert!(rules("a").is_ok());
        let error = rules("b").unwrap_err().to_string();
        assert_eq!(error, "rule BNeedsKey: Mode b needs Key.");
        let error = rules("c").unwrap_err().to_string();
        assert!(error.contains("AllowedValues are a, b"), "{error}");
    }
}
