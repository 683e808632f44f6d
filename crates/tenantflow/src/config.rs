//! Configuration layering: defaults < file (`--config`) < `TENANTFLOW_*` env (nested keys with
//! `__`, e.g. `TENANTFLOW_LIMITS__MAX_BODY_BYTES`) < flags. The client side reads its own small
//! file for the server URL and credential.

use crate::cli::{Connection, ServeArgs};
use crate::commands::CliError;
use figment::providers::{Env, Format, Serialized, Yaml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8089";
pub const DEFAULT_URL: &str = "http://127.0.0.1:8089";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    /// PostgreSQL URL; the embedded SQLite store when unset.
    pub database_url: Option<String>,
    pub limits: Limits,
    pub log: LogConfig,
    /// OIDC and platform administrators.
    #[serde(default)]
    pub auth: tf_server::AuthOptions,
    /// How task attempts run: isolation, slots, bubblewrap path.
    #[serde(default)]
    pub executor: tf_server::ExecutorSettings,
    /// Where inputs, outputs and logs are kept.
    #[serde(default)]
    pub storage: tf_server::StorageSettings,
    /// Workspaces: retention of retired ones, reconcile interval, event webhook, links.
    #[serde(default)]
    pub workspaces: tf_server::WorkspaceSettings,
    /// Audit record retention per tenant tier.
    #[serde(default)]
    pub audit: tf_server::AuditSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    /// Largest request body accepted (registration bundles included).
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `tenantflow=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.into(),
            data_dir: default_data_dir(),
            database_url: None,
            limits: Limits { max_body_bytes: 16 * 1024 * 1024 },
            log: LogConfig { format: "text".into(), level: "info".into() },
            auth: Default::default(),
            executor: Default::default(),
            storage: Default::default(),
            workspaces: Default::default(),
            audit: Default::default(),
        }
    }
}

/// `$XDG_DATA_HOME/tenantflow`, else `~/.local/share/tenantflow`, else `./tenantflow-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("tenantflow");
    }
    match std::env::var_os("HOME").filter(|x| !x.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/share/tenantflow"),
        None => PathBuf::from("tenantflow-data"),
    }
}

/// Flags that were given, as a partial config to merge last.
#[derive(Serialize, Default)]
struct FlagLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<serde_json::Value>,
}

/// Keys under `TENANTFLOW_` that belong to the client, not the server.
const CLIENT_ENV: &[&str] = &["URL", "TOKEN", "TOKEN_FILE", "CLIENT_CONFIG", "TEST_DATABASE_URL", "REQUIRE_ALL"];

pub fn load_server(args: &ServeArgs) -> Result<ServerConfig, CliError> {
    let mut fig = Figment::from(Serialized::defaults(ServerConfig::default()));
    if let Some(path) = &args.config {
        if !path.exists() {
            return Err(CliError::Usage(format!("config file {} does not exist", path.display())));
        }
        fig = fig.merge(Yaml::file(path));
    }
    fig = fig.merge(Env::prefixed("TENANTFLOW_").split("__").ignore(CLIENT_ENV));
    let flags = FlagLayer {
        listen: args.listen.clone(),
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone(),
        log: args.log_format.as_ref().map(|f| serde_json::json!({"format": f})),
    };
    fig = fig.merge(Serialized::defaults(flags));
    let cfg: ServerConfig = fig.extract().map_err(|e| CliError::Usage(format!("bad configuration: {e}")))?;
    if cfg.limits.max_body_bytes < 1024 {
        return Err(CliError::Usage("bad configuration: limits.max_body_bytes must be at least 1024".into()));
    }
    if !matches!(cfg.log.format.as_str(), "text" | "json") {
        return Err(CliError::Usage(format!(
            "bad configuration: log.format must be `text` or `json`, got `{}`",
            cfg.log.format
        )));
    }
    Ok(cfg)
}

/// The client's file: `url`, and `token` or `token_file`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    url: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
}

/// Server URL and credential for client commands: flags > env > client file > defaults.
pub fn resolve_connection(c: &Connection) -> Result<(String, Option<String>), CliError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let file_path = c
        .client_config
        .clone()
        .or_else(|| env("TENANTFLOW_CLIENT_CONFIG").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/tenantflow/client.yaml")));
    let file = match &file_path {
        Some(p) if p.exists() => {
            let text =
                std::fs::read_to_string(p).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", p.display())))?;
            serde_yaml::from_str::<ClientFile>(&text)
                .map_err(|e| CliError::Usage(format!("bad client config {}: {e}", p.display())))?
        }
        _ => ClientFile::default(),
    };
    let url = c.url.clone().or_else(|| env("TENANTFLOW_URL")).or(file.url).unwrap_or_else(|| DEFAULT_URL.to_string());
    let token = match (&c.token, &c.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(f)) => Some(read_token(f)?),
        (None, None) => match (env("TENANTFLOW_TOKEN"), env("TENANTFLOW_TOKEN_FILE")) {
            (Some(t), _) => Some(t),
            (None, Some(f)) => Some(read_token(Path::new(&f))?),
            (None, None) => match (file.token, file.token_file) {
                (Some(t), _) => Some(t),
                (None, Some(f)) => Some(read_token(&f)?),
                (None, None) => None,
            },
        },
    };
    Ok((url.trim_end_matches('/').to_string(), token))
}

fn read_token(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| CliError::Usage(format!("cannot read credential file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_defaults_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tf.yaml");
        std::fs::write(
            &file,
            "listen: 127.0.0.1:7001\ndata_dir: /from/file\nlimits: {max_body_bytes: 2048}\nauth: {oidc: {issuer: https://idp.example.com/, audience: tf}}\n",
        )
        .unwrap();
        // The only test in this binary that touches these variables.
        std::env::set_var("TENANTFLOW_LIMITS__MAX_BODY_BYTES", "4096");
        std::env::set_var("TENANTFLOW_LISTEN", "127.0.0.1:7002");
        let args =
            ServeArgs { config: Some(file.clone()), listen: Some("127.0.0.1:7003".into()), ..Default::default() };
        let cfg = load_server(&args).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:7003", "flags win");
        assert_eq!(cfg.limits.max_body_bytes, 4096, "env beats the file");
        assert_eq!(cfg.data_dir, PathBuf::from("/from/file"), "the file beats defaults");
        assert_eq!(cfg.log.format, "text", "defaults fill the rest");
        assert_eq!(cfg.auth.oidc.as_ref().unwrap().user_claim, "email");
        let no_flags = ServeArgs { config: Some(file), ..Default::default() };
        assert_eq!(load_server(&no_flags).unwrap().listen, "127.0.0.1:7002", "env beats the file");
        std::env::set_var("TENANTFLOW_LIMITS__MAX_BODY_BYTES", "lots");
        let e = load_server(&no_flags).unwrap_err().to_string();
        assert!(e.to_lowercase().contains("max_body_bytes"), "{e}");
        std::env::remove_var("TENANTFLOW_LIMITS__MAX_BODY_BYTES");
        std::env::remove_var("TENANTFLOW_LISTEN");
        let missing = ServeArgs { config: Some(dir.path().join("nope.yaml")), ..Default::default() };
        assert!(load_server(&missing).unwrap_err().to_string().contains("does not exist"));
    }
}
