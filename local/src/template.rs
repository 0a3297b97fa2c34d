//! The SAM template, read as CloudFormation reads it: YAML (or JSON) with the short-form
//! intrinsic tags, and the intrinsics this project uses (`Ref`, `Fn::Sub`, `Fn::GetAtt`,
//! `Fn::Join`) resolved against local values.
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
}

/// A parsed template: parameters with their defaults, `Globals.Function`, and resources.
#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, Option<String>>,
    pub function_globals: Map<String, Value>,
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
                    },
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Template {
            parameters,
            function_globals,
            resources,
        })
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
}

impl Scope {
    /// Resolves every intrinsic in `value`, leaving plain values as they are.
    pub fn resolve(&self, value: &Value) -> Result<Value> {
        match value {
            Value::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|item| self.resolve(item))
                    .collect::<Result<_>>()?,
            )),
            Value::Object(map) if map.len() == 1 => {
                let (key, argument) = map.iter().next().expect("one entry");
                match key.as_str() {
                    "Ref" => self.reference(argument).map(Value::String),
                    "Fn::GetAtt" => self.get_att(argument).map(Value::String),
                    "Fn::Sub" => self.sub(argument).map(Value::String),
                    "Fn::Join" => self.join(argument).map(Value::String),
                    other if other.starts_with("Fn::") => {
                        bail!("{other} is not supported by the local stack (Ref, Fn::Sub, Fn::GetAtt and Fn::Join are)")
                    }
                    _ => Ok(Value::Object(
                        [(key.clone(), self.resolve(argument)?)]
                            .into_iter()
                            .collect(),
                    )),
                }
            }
            Value::Object(map) => Ok(Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve(v)?)))
                    .collect::<Result<_>>()?,
            )),
            other => Ok(other.clone()),
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
    fn bad_yaml_is_an_error_not_a_panic() {
        assert!(Template::parse("Resources: [").is_err());
        assert!(Template::parse("Resources:\n  X: {Properties: {}}").is_err());
    }
}
