//! Host builds of the functions with cargo, for `chat-local` runs without `--bin-dir`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::log::Log;
use crate::stack::Stack;

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `cargo build` of every function's binary for this machine, in the workspace at `dir`.
pub fn build(release: bool, stack: &Stack, dir: &Path, log: &Log) -> Result<()> {
    let mut build = std::process::Command::new(cargo());
    build.arg("build").current_dir(dir);
    if release {
        build.arg("--release");
    }
    for function in stack.functions.values() {
        build.args(["--bin", &function.binary]);
    }
    log.line(&format!(
        "Building {} functions for this machine: {build:?}",
        stack.functions.len()
    ));
    let status = build.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(())
}

/// Where that build puts its binaries: `<target dir>/debug` or `/release`.
pub fn output_dir(release: bool, dir: &Path) -> Result<PathBuf> {
    let metadata = std::process::Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .output()
        .context("cannot run cargo metadata")?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&metadata.stdout).context("cargo metadata output")?;
    let target = metadata["target_directory"]
        .as_str()
        .ok_or_else(|| anyhow!("cargo metadata has no target_directory"))?;
    Ok(Path::new(target).join(if release { "release" } else { "debug" }))
}
