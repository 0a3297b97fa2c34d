//! The local view of the template: which WebSocket API, routes, functions and tables it
//! declares, with every value resolved the way CloudFormation would resolve it for a
//! local deployment (region, account `123456789012`, stack name `local`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::template::{scalar_string, Scope, Template};

pub const ACCOUNT_ID: &str = "123456789012";
pub const STACK_NAME: &str = "local";

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
}

/// A DynamoDB table of the template, with its properties resolved.
#[derive(Debug, Clone)]
pub struct Table {
    pub logical_id: String,
    pub name: String,
    pub properties: Value,
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
    pub functions: BTreeMap<String, Function>,
    pub tables: Vec<Table>,
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
        for name in overrides.keys() {
            if !template.parameters.contains_key(name) {
                bail!("--parameter-overrides names {name}, which the template does not declare");
            }
        }
        let mut scope = Scope::default();
        for (name, value) in [
            ("AWS::Region", region),
            ("AWS::AccountId", ACCOUNT_ID),
            ("AWS::Partition", "aws"),
            ("AWS::StackName", STACK_NAME),
            ("AWS::URLSuffix", "amazonaws.com"),
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
            scope.refs.insert(name.clone(), value);
        }
        for id in template.resources.keys() {
            scope.refs.insert(id.clone(), id.clone());
        }

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
                format!("arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"),
            );
            tables.push((id.clone(), name));
        }
        let function_ids: Vec<&String> = template
            .resources
            .iter()
            .filter(|(_, r)| {
                r.kind == "AWS::Serverless::Function" || r.kind == "AWS::Lambda::Function"
            })
            .map(|(id, _)| id)
            .collect();
        for id in &function_ids {
            let properties = &template.resources[*id].properties;
            let name = match properties.get("FunctionName") {
                Some(name) => scope.resolve_string(name)?,
                None => (*id).clone(),
            };
            scope.attributes.insert(
                format!("{id}.Arn"),
                format!("arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"),
            );
            scope.refs.insert((*id).clone(), name);
        }

        let stage = template
            .of_type("AWS::ApiGatewayV2::Stage")
            .filter(|(_, stage)| {
                scope
                    .resolve_string(&stage.properties["ApiId"])
                    .ok()
                    .as_ref()
                    == Some(&api_id)
            })
            .map(|(id, stage)| {
                scope
                    .resolve_string(&stage.properties["StageName"])
                    .with_context(|| format!("{id}.StageName"))
            })
            .next()
            .transpose()?
            .unwrap_or_else(|| "local".to_owned());

        let functions = function_ids
            .iter()
            .map(|id| Ok(((*id).clone(), function(template, id, &scope, template_dir)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;

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
            let function = functions
                .values()
                .find(|f| uri.contains(&format!("{}/invocations", f.arn)) || uri == f.arn)
                .ok_or_else(|| {
                    anyhow!(
                        "{integration_id} integrates {uri}, which is no function of the template"
                    )
                })?;
            routes.insert(key, function.logical_id.clone());
        }
        if routes.is_empty() {
            bail!("the WebSocket API {api_logical_id} has no routes");
        }

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
            functions,
            tables,
        })
    }
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
    let code_uri = template_dir.join(code_uri);
    let binary = match resource.metadata.pointer("/BuildProperties/Binary") {
        Some(binary) => scalar_string(binary),
        None => package_name(&code_uri.join("Cargo.toml")).with_context(|| {
            format!("{id}: no Metadata.BuildProperties.Binary and no package name")
        })?,
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
    })
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
    let mut id: String = logical_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(10)
        .collect();
    while id.len() < 10 {
        id.push('0');
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(on_message.timeout, Duration::from_secs(30));
        assert_eq!(
            stack.functions["ConnectFunction"].timeout,
            Duration::from_secs(10)
        );
        assert_eq!(stack.functions["ConnectFunction"].memory_mb, 128);
        assert_eq!(stack.tables.len(), 1);
        assert_eq!(stack.tables[0].name, "Chat");
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
}
