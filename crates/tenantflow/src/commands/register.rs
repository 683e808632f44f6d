//! `tenantflow register -p P -d D --version V FILE…`: one bundle, registered atomically.

use crate::cli::{Format, RegisterArgs};
use crate::client::Client;
use crate::commands::CliError;
use crate::output::print;
use std::path::{Path, PathBuf};

/// Expands directories into their `.yaml`, `.yml` and `.json` files, sorted.
fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| matches!(f.extension().and_then(|x| x.to_str()), Some("yaml" | "yml" | "json")))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        return Err(CliError::Usage("no spec files found".into()));
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))
}

/// Joins the files into one YAML stream (JSON is valid YAML).
pub fn bundle_text(paths: &[PathBuf]) -> Result<String, CliError> {
    let mut text = String::new();
    for f in collect(paths)? {
        let body = read(&f)?;
        if !text.is_empty() {
            text.push_str("\n---\n");
        }
        text.push_str(&body);
    }
    Ok(text)
}

pub async fn run(client: &Client, a: &RegisterArgs, format: Format) -> Result<(), CliError> {
    let text = bundle_text(&a.files)?;
    let path = format!("/api/v1/register/{}/{}?version={}", a.project, a.domain, a.version);
    let res = client.post_raw(&path, "application/yaml", text.into_bytes()).await?;
    match format {
        Format::Table => {
            let items = res.get("entities").cloned().unwrap_or_default();
            print(
                format,
                &items,
                &[("KIND", "/kind"), ("NAME", "/name"), ("VERSION", "/version"), ("STATUS", "/status")],
            );
        }
        _ => print(format, &res, &[]),
    }
    Ok(())
}
