//! `--watch`: rebuild when sources change, and restart a function when its binary changes.
//!
//! Polling once a second keeps this free of platform file-event APIs; the trees it scans
//! are small. A function is restarted only when its binary's modification time moves, so
//! an edit that cargo does not relink into a function leaves that function warm.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::functions::Functions;
use crate::log::Log;

/// Directories never scanned for sources.
const SKIPPED: &[&str] = &["target", "node_modules", ".git", ".aws-sam", ".venv"];

/// The newest modification time of any Rust source or manifest under `dir`.
pub fn newest_source(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !SKIPPED.contains(&name.as_ref()) && !name.starts_with('.') {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") || name == "Cargo.toml" || name == "Cargo.lock" {
                let modified = entry.metadata().and_then(|m| m.modified()).ok();
                newest = newest.max(modified);
            }
        }
    }
    newest
}

/// Runs the build and says whether it succeeded.
pub type Rebuild = Arc<dyn Fn() -> bool + Send + Sync>;

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Watches until the stack stops. `rebuild` runs the build and says whether it succeeded;
/// it is `None` when the binaries come from elsewhere (`--bin-dir`).
pub async fn run(
    source_dir: PathBuf,
    functions: Arc<Functions>,
    rebuild: Option<Rebuild>,
    log: Log,
) {
    let mut sources = newest_source(&source_dir);
    let mut binaries: BTreeMap<String, Option<SystemTime>> = functions
        .pools()
        .map(|pool| (pool.function().logical_id.clone(), modified(pool.binary())))
        .collect();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(rebuild) = &rebuild {
            let now = newest_source(&source_dir);
            if now != sources {
                sources = now;
                log.line("Sources changed: rebuilding");
                let rebuild = Arc::clone(rebuild);
                let built = tokio::task::spawn_blocking(move || rebuild())
                    .await
                    .unwrap_or(false);
                if !built {
                    log.line("Build failed: the functions keep running the previous binaries");
                    continue;
                }
            }
        }
        for pool in functions.pools() {
            let id = &pool.function().logical_id;
            let now = modified(pool.binary());
            if binaries.get(id) != Some(&now) {
                binaries.insert(id.clone(), now);
                log.line(&format!("{id}: new binary, restarting its instances"));
                pool.restart();
            }
        }
    }
}
