//! `tenantflow auth explain` and `tenantflow auth whoami`.

use crate::cli::{AuthCommand, Format};
use crate::client::Client;
use crate::commands::CliError;
use crate::output::print;

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(client: &Client, c: &AuthCommand, format: Format) -> Result<(), CliError> {
    match c {
        AuthCommand::Whoami => {
            let me = client.get("/api/v1/me").await?;
            match format {
                Format::Table => {
                    println!(
                        "{} ({}){}",
                        me["subject"].as_str().unwrap_or("?"),
                        me["kind"].as_str().unwrap_or("?"),
                        if me["platform_admin"] == true { ", platform admin" } else { "" }
                    );
                    let rows: Vec<serde_json::Value> = me["roles"].as_array().cloned().unwrap_or_default();
                    print(
                        format,
                        &serde_json::Value::Array(rows),
                        &[
                            ("ROLE", "/role"),
                            ("TENANT", "/tenant"),
                            ("VIA", "/via/name"),
                            ("PROJECTS", "/projects"),
                            ("DOMAINS", "/domains"),
                        ],
                    );
                }
                _ => print(format, &me, &[]),
            }
        }
        AuthCommand::Explain { user, groups, service_account, permission, project, domain } => {
            let mut q = format!("/api/v1/authz/explain?permission={}&project={}", enc(permission), enc(project));
            if let Some(d) = domain {
                q.push_str(&format!("&domain={}", enc(d)));
            }
            if let Some(u) = user {
                q.push_str(&format!("&user={}", enc(u)));
            }
            if !groups.is_empty() {
                q.push_str(&format!("&groups={}", enc(&groups.join(","))));
            }
            if let Some(s) = service_account {
                q.push_str(&format!("&service_account={}", enc(s)));
            }
            let e = client.get(&q).await?;
            match format {
                Format::Table => {
                    println!("{}", e["explanation"]["summary"].as_str().unwrap_or(""));
                    let rows = e["explanation"]["considered"].clone();
                    if rows.as_array().is_some_and(|a| !a.is_empty()) {
                        print(
                            format,
                            &rows,
                            &[
                                ("ROLE", "/role"),
                                ("TENANT", "/role_tenant"),
                                ("BINDING", "/binding/name"),
                                ("APPLIES", "/applies"),
                                ("REASON", "/reason"),
                            ],
                        );
                    }
                }
                _ => print(format, &e, &[]),
            }
        }
    }
    Ok(())
}
