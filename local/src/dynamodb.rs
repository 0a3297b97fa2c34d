//! The local DynamoDB: a dynalite process (unless the user names another endpoint) and
//! the template's tables created in it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ProvisionedThroughput, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use serde_json::Value;
use tokio::process::Child;

use crate::process;
use crate::stack::Table;

/// A dynalite server this stack started; it is stopped when dropped.
pub struct Dynalite {
    pub endpoint: String,
    child: Child,
}

impl Dynalite {
    /// Starts dynalite on a free loopback port, in memory or persisting to `persist`.
    pub async fn start(project_dir: &Path, persist: Option<&Path>) -> Result<Dynalite> {
        let cli = find_dynalite(project_dir)?;
        let port = process::free_port()?;
        let mut command = tokio::process::Command::new("node");
        command
            .arg(&cli)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit());
        if let Some(dir) = persist {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            command.arg("--path").arg(dir);
        }
        let child = process::spawn_tied(&mut command).context("cannot start dynalite with node")?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(address).await.is_ok() {
                return Ok(Dynalite {
                    endpoint: format!("http://{address}"),
                    child,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("dynalite did not start listening on {address} within 10 s")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn find_dynalite(project_dir: &Path) -> Result<PathBuf> {
    let cli = project_dir.join("node_modules/dynalite/cli.js");
    if cli.exists() {
        Ok(cli)
    } else {
        Err(anyhow!(
            "dynalite is not installed at {}; run `make setup` (npm install), or pass --dynamodb-endpoint",
            cli.display()
        ))
    }
}

/// A DynamoDB client for `endpoint` with dummy credentials (local endpoints do not check them).
pub async fn client(endpoint: &str, region: &str) -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "chat-local",
        ))
        .load()
        .await;
    Client::new(&config)
}

/// Creates each table that does not exist yet. Returns the names it created.
pub async fn ensure_tables(client: &Client, tables: &[Table]) -> Result<Vec<String>> {
    let mut created = Vec::new();
    for table in tables {
        match client.describe_table().table_name(&table.name).send().await {
            Ok(_) => continue,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(error) => {
                return Err(aws_sdk_dynamodb::Error::from(error)).with_context(|| {
                    format!("cannot reach DynamoDB to look up table {}", table.name)
                })
            }
        }
        create(client, table).await.with_context(|| {
            format!("cannot create table {} ({})", table.name, table.logical_id)
        })?;
        created.push(table.name.clone());
    }
    Ok(created)
}

async fn create(client: &Client, table: &Table) -> Result<()> {
    let p = &table.properties;
    let mut request = client
        .create_table()
        .table_name(&table.name)
        .set_attribute_definitions(Some(
            array(p, "AttributeDefinitions")
                .iter()
                .map(|a| {
                    Ok(AttributeDefinition::builder()
                        .attribute_name(text(a, "AttributeName")?)
                        .attribute_type(ScalarAttributeType::from(
                            text(a, "AttributeType")?.as_str(),
                        ))
                        .build()?)
                })
                .collect::<Result<Vec<_>>>()?,
        ))
        .set_key_schema(Some(key_schema(&p["KeySchema"])?));
    let provisioned = p.get("BillingMode").and_then(Value::as_str) != Some("PAY_PER_REQUEST");
    request = if provisioned {
        request.provisioned_throughput(throughput(p.get("ProvisionedThroughput"))?)
    } else {
        request.billing_mode(BillingMode::PayPerRequest)
    };
    for index in array(p, "GlobalSecondaryIndexes") {
        let projection = &index["Projection"];
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(text(index, "IndexName")?)
            .set_key_schema(Some(key_schema(&index["KeySchema"])?))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::from(
                        projection
                            .get("ProjectionType")
                            .and_then(Value::as_str)
                            .unwrap_or("ALL"),
                    ))
                    .set_non_key_attributes(
                        projection
                            .get("NonKeyAttributes")
                            .and_then(Value::as_array)
                            .map(|names| {
                                names
                                    .iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_owned)
                                    .collect()
                            }),
                    )
                    .build(),
            );
        if provisioned {
            gsi = gsi.provisioned_throughput(throughput(index.get("ProvisionedThroughput"))?);
        }
        request = request.global_secondary_indexes(gsi.build()?);
    }
    request
        .send()
        .await
        .map_err(aws_sdk_dynamodb::Error::from)?;
    for _ in 0..200 {
        let description = client.describe_table().table_name(&table.name).send().await;
        let active = description
            .ok()
            .and_then(|d| d.table?.table_status)
            .is_some_and(|s| s.as_str() == "ACTIVE");
        if active {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("table {} did not become ACTIVE", table.name)
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn text(value: &Value, key: &str) -> Result<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("{key} is missing in {value}"))
}

fn key_schema(value: &Value) -> Result<Vec<KeySchemaElement>> {
    let elements = value
        .as_array()
        .ok_or_else(|| anyhow!("KeySchema must be a list"))?;
    elements
        .iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(text(k, "AttributeName")?)
                .key_type(KeyType::from(text(k, "KeyType")?.as_str()))
                .build()?)
        })
        .collect()
}

fn throughput(value: Option<&Value>) -> Result<ProvisionedThroughput> {
    let units = |key: &str| {
        value
            .and_then(|v| v.get(key))
            .map(crate::template::scalar_string)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(5)
    };
    Ok(ProvisionedThroughput::builder()
        .read_capacity_units(units("ReadCapacityUnits"))
        .write_capacity_units(units("WriteCapacityUnits"))
        .build()?)
}
