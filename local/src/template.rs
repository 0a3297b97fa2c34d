//! The SAM template, read as CloudFormation reads it: YAML (or JSON) with the short-form
//! intrinsic tags, and the intrinsics this project uses (`Ref`, `Fn::Sub`, `Fn::GetAtt`,
//! `Fn::Join`, `Fn::Split`, `Fn::Select`, and `Conditions` with `Fn::If`, `Fn::Equals`, `Fn::Not`, `Fn::And`,
//! `Fn::Or` and `AWS::NoValue`) resolved against local values.
//!
//! Short tags become their long form while loading (`!Ref X` is `{"Ref": "X"}`), so the
//! rest of the stack works on plain JSON values.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

/// One resource of the template.
#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: String,
    pub properties: Value,
    pub metadata: Value,
    /// The resource's `Condition`: it exists only where that condition holds.
    pub condition: Option<String>,
}

/// A parsed template: parameters with their defaults, `Globals.Function`, and resources.
#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, Option<String>>,
    /// Parameters' `AllowedValues`, where declared.
    pub allowed_values: BTreeMap<String, Vec<String>>,
    /// `Rules`, unevaluated: assertions on parameter values checked before deploying.
    pub rules: Map<String, Value>,
    pub function_globals: Map<String, Value>,
    /// `Conditions`, unevaluated.
    pub conditions: Map<String, Value>,
    pub resources: BTreeMap<String, Resource>,
}

impl Template {
    pub fn load(path: &Path) -> Result<Template> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the template {}", path.display()))?;
        Template::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Template> {
        let yaml: serde_norway::Value = serde_norway::from_str(text).context("not valid YAML")?;
        let root = to_json(yaml)?;
        let parameters = root
            .get("Parameters")
            .and_then(Value::as_object)
            .map(|params| {
                params
                    .iter()
                    .map(|(name, spec)| (name.clone(), spec.get("Default").map(scalar_string)))
                    .collect()
            })
            .unwrap_or_default();
        let allowed_values = root
            .get("Parameters")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(name, spec)| {
                let values = spec.get("AllowedValues")?.as_array()?;
                Some((name.clone(), values.iter().map(scalar_string).collect()))
            })
            .collect();
        let rules = root
            .get("Rules")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let function_globals = root
            .pointer("/Globals/Function")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let resources = root
            .get("Resources")
            .and_then(Value::as_object)
            .ok_or_else(|| anyhow!("the template has no Resources"))?
            .iter()
            .map(|(id, resource)| {
                let kind = resource
                    .get("Type")
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("resource {id} has no Type"))?;
                Ok((
                    id.clone(),
                    Resource {
                        kind: kind.to_owned(),
                        properties: resource.get("Properties").cloned().unwrap_or(Value::Null),
                        metadata: resource.get("Metadata").cloned().unwrap_or(Value::Null),
                        condition: resource
                            .get("Condition")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    },
                ))
            })
            .collect::<Result<_>>()?;
        let conditions = root
            .get("Conditions")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Ok(Template {
            parameters,
            allowed_values,
            rules,
            function_globals,
            conditions,
            resources,
        })
    }

    /// Evaluates every condition in `scope`, as CloudFormation does at deploy time.
    pub fn evaluate_conditions(&self, scope: &mut Scope) -> Result<()> {
        let mut pending: Vec<&String> = self.conditions.keys().collect();
        // Conditions may refer to each other; evaluate until nothing new resolves.
        while !pending.is_empty() {
            let before = pending.len();
            let mut waiting = Vec::new();
            for name in pending {
                match scope.condition_value(&self.conditions[name]) {
                    Ok(value) => {
                        scope.conditions.insert(name.clone(), value);
                    }
                    Err(_) => waiting.push(name),
                }
            }
            if waiting.len() == before {
                let name = waiting[0];
                scope
                    .condition_value(&self.conditions[name])
                    .with_context(|| format!("condition {name}"))?;
            }
            pending = waiting;
        }
        Ok(())
    }

    /// Checks `Rules` as CloudFormation does before it deploys: where a rule's
    /// `RuleCondition` holds (or it has none), every `Assert` must hold, else the deploy
    /// fails with the assertion's `AssertDescription`.
    pub fn check_rules(&self, scope: &Scope) -> Result<()> {
        for (name, rule) in &self.rules {
            let applies = match rule.get("RuleCondition") {
                Some(condition) => scope
                    .condition_value(condition)
                    .with_context(|| format!("rule {name}"))?,
                None => true,
            };
            if !applies {
                continue;
            }
            let assertions = rule.get("Assertions").and_then(Value::as_array);
            for assertion in assertions.into_iter().flatten() {
                let holds = scope
                    .condition_value(&assertion["Assert"])
                    .with_context(|| format!("rule {name}"))?;
                if !holds {
                    let description = assertion
                        .get("AssertDescription")
                        .map(scalar_string)
                        .unwrap_or_else(|| "an assertion does not hold".into());
                    bail!("rule {name}: {description}");
                }
            }
        }
        Ok(())
    }

    /// The template without the resources whose `Condition` is false in `scope`.
    pub fn deployed(&self, scope: &Scope) -> Result<Template> {
        let mut deployed = self.clone();
        for (id, resource) in &self.resources {
            if let Some(condition) = &resource.condition {
                let holds = scope.conditions.get(condition).ok_or_else(|| {
                    anyhow!("{id} has Condition {condition}, which Conditions does not declare")
                })?;
                if !holds {
                    deployed.resources.remove(id);
                }
            }
        }
        Ok(deployed)
    }

    /// Logical ids of the resources of one type, in template order of their names.
    pub fn of_type<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Resource)> {
        self.resources.iter().filter(move |(_, r)| r.kind == kind)
    }
}

/// Renders a scalar parameter default (`Default: 64`) as CloudFormation passes it: a string.
pub fn scalar_string(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn to_json(value: serde_norway::Value) -> Result<Value> {
    use serde_norway::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or_default())
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect::<Result<_>>()?),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match to_json(key)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, to_json(value)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = to_json(tagged.value)?;
            let (key, inner) = match name {
                "Ref" | "Condition" => (name.to_owned(), inner),
                "GetAtt" => match inner {
                    Value::String(s) => {
                        let (resource, attribute) = s.split_once('.').ok_or_else(|| {
                            anyhow!("!GetAtt {s} needs the form Resource.Attribute")
                        })?;
                        (
                            "Fn::GetAtt".to_owned(),
                            serde_json::json!([resource, attribute]),
                        )
                    }
                    other => ("Fn::GetAtt".to_owned(), other),
                },
                other => (format!("Fn::{other}"), inner),
            };
            let mut out = Map::new();
            out.insert(key, inner);
            Value::Object(out)
        }
    })
}

/// What names resolve to: parameters and pseudo parameters for `Ref`, resource
/// attributes for `Fn::GetAtt`.
#[derive(Debug, Default, Clone)]
pub struct Scope {
    /// `Ref` targets: parameters, pseudo parameters and resources' physical ids.
    pub refs: BTreeMap<String, String>,
    /// `Fn::GetAtt` targets, keyed by `Resource.Attribute`.
    pub attributes: BTreeMap<String, String>,
    /// Evaluated `Conditions`.
    pub conditions: BTreeMap<String, bool>,
}

impl Scope {
    /// Resolves every intrinsic in `value`, leaving plain values as they are. A value that
    /// resolves to `AWS::NoValue` is left out of its object or list (`null` on its own).
    pub fn resolve(&self, value: &Value) -> Result<Value> {
        Ok(self.resolve_or_absent(value)?.unwrap_or(Value::Null))
    }

    /// `None` for `AWS::NoValue`.
    fn resolve_or_absent(&self, value: &Value) -> Result<Option<Value>> {
        match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.extend(self.resolve_or_absent(item)?);
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(map) if map.len() == 1 => {
                let (key, argument) = map.iter().next().expect("one entry");
                self.intrinsic(key, argument)
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, value) in map {
                    if let Some(value) = self.resolve_or_absent(value)? {
                        out.insert(key.clone(), value);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            other => Ok(Some(other.clone())),
        }
    }

    /// A one-key object: an intrinsic function, or a plain object with one property.
    fn intrinsic(&self, key: &str, argument: &Value) -> Result<Option<Value>> {
        Ok(Some(match key {
            "Ref" if argument == "AWS::NoValue" => return Ok(None),
            "Ref" => Value::String(self.reference(argument)?),
            "Fn::GetAtt" => Value::String(self.get_att(argument)?),
            "Fn::Sub" => Value::String(self.sub(argument)?),
            "Fn::Join" => Value::String(self.join(argument)?),
            "Fn::Split" => {
                let parts = argument.as_array().filter(|parts| parts.len() == 2);
                let parts = parts.ok_or_else(|| anyhow!("Fn::Split takes [delimiter, string]"))?;
                let delimiter = parts[0]
                    .as_str()
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| anyhow!("Fn::Split needs a delimiter"))?;
                let text = self.resolve_string(&parts[1])?;
                Value::Array(text.split(delimiter).map(Value::from).collect())
            }
            "Fn::Select" => {
                let parts = argument.as_array().filter(|parts| parts.len() == 2);
                let parts = parts.ok_or_else(|| anyhow!("Fn::Select takes [index, list]"))?;
                let index: usize = self
                    .resolve_string(&parts[0])?
                    .parse()
                    .map_err(|_| anyhow!("Fn::Select needs a whole number index"))?;
                match self.resolve(&parts[1])? {
                    Value::Array(items) => items.get(index).cloned().ok_or_else(|| {
                        anyhow!("Fn::Select: no item {index} in a list of {}", items.len())
                    })?,
                    other => bail!("Fn::Select needs a list, not {other}"),
                }
            }
            "Fn::If" => {
                let parts = argument.as_array().filter(|parts| parts.len() == 3);
                let parts = parts.ok_or_else(|| anyhow!("Fn::If takes [condition, then, else]"))?;
                let name = parts[0]
                    .as_str()
                    .ok_or_else(|| anyhow!("Fn::If names its condition first"))?;
                let holds = *self
                    .conditions
                    .get(name)
                    .ok_or_else(|| anyhow!("Fn::If: no condition {name}"))?;
                return self.resolve_or_absent(&parts[if holds { 1 } else { 2 }]);
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                let condition = [(key.to_owned(), argument.clone())].into_iter().collect();
                Value::Bool(self.condition_value(&Value::Object(condition))?)
            }
            other if other.starts_with("Fn::") => {
                bail!("{other} is not supported by the local stack (Ref, Fn::Sub, Fn::GetAtt, Fn::Join, Fn::Split, Fn::Select, Fn::If and the condition functions are)")
            }
            _ => Value::Object(
                [(key.to_owned(), self.resolve(argument)?)]
                    .into_iter()
                    .collect(),
            ),
        }))
    }

    /// The truth of a condition expression (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`,
    /// `Condition`).
    pub fn condition_value(&self, value: &Value) -> Result<bool> {
        let (key, argument) = value
            .as_object()
            .filter(|map| map.len() == 1)
            .and_then(|map| map.iter().next())
            .ok_or_else(|| anyhow!("a condition is one function, not {value}"))?;
        let list = || {
            argument
                .as_array()
                .ok_or_else(|| anyhow!("{key} takes a list, not {argument}"))
        };
        match key.as_str() {
            "Fn::Equals" => {
                let items = list()?;
                if items.len() != 2 {
                    bail!("Fn::Equals takes two values");
                }
                Ok(self.resolve_string(&items[0])? == self.resolve_string(&items[1])?)
            }
            "Fn::Not" => match list()?.as_slice() {
                [inner] => Ok(!self.condition_value(inner)?),
                _ => bail!("Fn::Not takes one condition"),
            },
            "Fn::And" => list()?
                .iter()
                .try_fold(true, |all, c| Ok(all && self.condition_value(c)?)),
            "Fn::Or" => list()?
                .iter()
                .try_fold(false, |any, c| Ok(any || self.condition_value(c)?)),
            "Condition" => {
                let name = argument.as_str().unwrap_or_default();
                self.conditions
                    .get(name)
                    .copied()
                    .ok_or_else(|| anyhow!("no condition {name}"))
            }
            other => bail!("{other} is not a condition function"),
        }
    }

    /// Resolves `value` and renders it as a string, as environment variables need.
    pub fn resolve_string(&self, value: &Value) -> Result<String> {
        Ok(scalar_string(&self.resolve(value)?))
    }

    fn reference(&self, argument: &Value) -> Result<String> {
        let name = argument
            .as_str()
            .ok_or_else(|| anyhow!("Ref takes a name, not {argument}"))?;
        self.refs
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("Ref {name}: no such parameter or resource"))
    }

    fn get_att(&self, argument: &Value) -> Result<String> {
        let key = match argument {
            Value::Array(parts) if parts.len() == 2 => {
                format!(
                    "{}.{}",
                    self.resolve_string(&parts[0])?,
                    self.resolve_string(&parts[1])?
                )
            }
            Value::String(s) => s.clone(),
            other => bail!("Fn::GetAtt takes [Resource, Attribute], not {other}"),
        };
        self.attributes
            .get(&key)
            .cloned()
            .ok_or_else(|| anyhow!("Fn::GetAtt {key}: the local stack knows no such attribute"))
    }

    fn sub(&self, argument: &Value) -> Result<String> {
        let (text, variables) = match argument {
            Value::String(text) => (text.as_str(), Map::new()),
            Value::Array(parts) if parts.len() == 2 => (
                parts[0]
                    .as_str()
                    .ok_or_else(|| anyhow!("Fn::Sub needs a string first"))?,
                parts[1].as_object().cloned().unwrap_or_default(),
            ),
            other => bail!("Fn::Sub takes a string or [string, variables], not {other}"),
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| anyhow!("Fn::Sub: unclosed ${{ in {text}"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(&self.resolve_string(value)?);
            } else if self.refs.contains_key(name) {
                out.push_str(&self.refs[name]);
            } else if self.attributes.contains_key(name) {
                out.push_str(&self.attributes[name]);
            } else {
                bail!("Fn::Sub: ${{{name}}} names nothing the local stack knows");
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn join(&self, argument: &Value) -> Result<String> {
        let parts = argument.as_array().filter(|parts| parts.len() == 2);
        let (delimiter, items) = parts
            .map(|parts| (&parts[0], &parts[1]))
            .ok_or_else(|| anyhow!("Fn::Join takes [delimiter, [values]]"))?;
        let delimiter = delimiter
            .as_str()
            .ok_or_else(|| anyhow!("Fn::Join delimiter must be a string"))?;
        let items = match self.resolve(items)? {
            Value::Array(items) => items,
            other => bail!("Fn::Join needs a list of values, not {other}"),
        };
        Ok(items
            .iter()
            .map(scalar_string)
            .collect::<Vec<_>>()
            .join(delimiter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  StageName: {Type: String, Default: Test}
  Count: {Type: Number, Default: 64}
Globals:
  Function: {Timeout: 10}
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Ref StageName
      Target: !Join ['/', ['integrations', !Ref Table]]
      Arn: !GetAtt Table.Arn
      Long: !Sub 'arn:${AWS::Partition}:x:${Table.Arn}/${StageName}/${!Literal}/${Extra}'
      Pair: !Sub ['${A}-${Count}', {A: !Ref StageName}]
"#;

    fn scope() -> Scope {
        let mut scope = Scope::default();
        scope.refs.insert("StageName".into(), "Test".into());
        scope.refs.insert("Count".into(), "64".into());
        scope.refs.insert("Table".into(), "Chat".into());
        scope.refs.insert("AWS::Partition".into(), "aws".into());
        scope
            .attributes
            .insert("Table.Arn".into(), "arn:table".into());
        scope
    }

    #[test]
    fn short_tags_become_long_form_and_resolve() {
        let template = Template::parse(TEMPLATE).unwrap();
        assert_eq!(template.parameters["Count"].as_deref(), Some("64"));
        assert_eq!(template.function_globals["Timeout"], 10);
        let props = &template.resources["Table"].properties;
        let scope = scope();
        assert_eq!(scope.resolve_string(&props["TableName"]).unwrap(), "Test");
        assert_eq!(
            scope.resolve_string(&props["Target"]).unwrap(),
            "integrations/Chat"
        );
        assert_eq!(scope.resolve_string(&props["Arn"]).unwrap(), "arn:table");
        assert_eq!(scope.resolve_string(&props["Pair"]).unwrap(), "Test-64");
        let error = scope
            .resolve_string(&props["Long"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("${Extra}"), "{error}");
    }

    #[test]
    fn sub_keeps_literals_and_unknown_functions_are_named() {
        let scope = scope();
        let value = serde_json::json!({"Fn::Sub": "a-${!Literal}-${StageName}"});
        assert_eq!(scope.resolve_string(&value).unwrap(), "a-${Literal}-Test");
        let value = serde_json::json!({"Fn::If": ["c", 1, 2]});
        assert!(scope
            .resolve(&value)
            .unwrap_err()
            .to_string()
            .contains("Fn::If"));
    }

    #[test]
    fn select_and_split_pick_a_part() {
        let scope = scope();
        let host = serde_json::json!({"Fn::Select": [2, {"Fn::Split": ["/", "https://issuer.example/pool"]}]});
        assert_eq!(scope.resolve_string(&host).unwrap(), "issuer.example");
        let beyond = serde_json::json!({"Fn::Select": [5, {"Fn::Split": ["/", "a/b"]}]});
        assert!(scope
            .resolve(&beyond)
            .unwrap_err()
            .to_string()
            .contains("no item 5"));
    }

    #[test]
    fn bad_yaml_is_an_error_not_a_panic() {
        assert!(Template::parse("Resources: [").is_err());
        assert!(Template::parse("Resources:\n  X: {Properties: {}}").is_err());
    }

    #[test]
    fn conditions_choose_values_and_resources_as_cloudformation_does() {
        let template = Template::parse(
            r#"
Parameters:
  AuthMode: {Type: String, Default: open}
Conditions:
  UseJwt: !Equals [!Ref AuthMode, jwt]
  Open: !Not [!Condition UseJwt]
  Both: !And [!Condition UseJwt, !Condition Open]
Resources:
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      AuthorizationType: !If [UseJwt, CUSTOM, NONE]
      AuthorizerId: !If [UseJwt, !Ref Authorizer, !Ref AWS::NoValue]
      List: [a, !If [UseJwt, b, !Ref AWS::NoValue], c]
  Authorizer:
    Type: AWS::ApiGatewayV2::Authorizer
    Condition: UseJwt
"#,
        )
        .unwrap();
        for (mode, jwt) in [("open", false), ("jwt", true)] {
            let mut scope = scope();
            scope.refs.insert("AuthMode".into(), mode.into());
            scope.refs.insert("Authorizer".into(), "abc123".into());
            template.evaluate_conditions(&mut scope).unwrap();
            assert_eq!(scope.conditions["UseJwt"], jwt);
            assert_eq!(scope.conditions["Open"], !jwt);
            assert!(!scope.conditions["Both"]);
            let route = scope
                .resolve(&template.resources["Route"].properties)
                .unwrap();
            let deployed = template.deployed(&scope).unwrap();
            if jwt {
                assert_eq!(route["AuthorizationType"], "CUSTOM");
                assert_eq!(route["AuthorizerId"], "abc123");
                assert_eq!(route["List"], serde_json::json!(["a", "b", "c"]));
                assert!(deployed.resources.contains_key("Authorizer"));
            } else {
                assert_eq!(route["AuthorizationType"], "NONE");
                assert!(
                    route.get("AuthorizerId").is_none(),
                    "AWS::NoValue removes the key"
                );
                assert_eq!(route["List"], serde_json::json!(["a", "c"]));
                assert!(!deployed.resources.contains_key("Authorizer"));
            }
        }
    }
}
