//! `tenantflow serve`: the control plane, until SIGINT or SIGTERM.

use crate::cli::ServeArgs;
use crate::commands::CliError;
use crate::config::{load_server, ServerConfig};
use std::net::SocketAddr;
use tf_server::{RunningServer, ServerOptions};

pub fn init_logging(format: &str, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

pub fn server_options(cfg: &ServerConfig) -> Result<ServerOptions, CliError> {
    let listen: SocketAddr = cfg
        .listen
        .parse()
        .map_err(|_| CliError::Usage(format!("listen: `{}` is not an address such as 127.0.0.1:8089", cfg.listen)))?;
    Ok(ServerOptions {
        listen,
        data_dir: cfg.data_dir.clone(),
        database_url: cfg.database_url.clone(),
        max_body_bytes: cfg.limits.max_body_bytes,
        auth: cfg.auth.clone(),
        executor: cfg.executor.clone(),
        storage: cfg.storage.clone(),
        workspaces: cfg.workspaces.clone(),
        audit: cfg.audit.clone(),
    })
}

/// Resolves when the process is asked to stop.
pub async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub async fn start(opts: &ServerOptions) -> Result<RunningServer, CliError> {
    tf_server::start(opts).await.map_err(|e| CliError::Failed(e.to_string()))
}

pub async fn run(args: &ServeArgs, started: std::time::Instant) -> Result<(), CliError> {
    let cfg = load_server(args)?;
    init_logging(&cfg.log.format, &cfg.log.level);
    let opts = server_options(&cfg)?;
    let server = start(&opts).await?;
    let store = match &cfg.database_url {
        Some(url) => format!("postgres {}", tf_store::redact(url)),
        None => format!("sqlite {}", cfg.data_dir.join("tenantflow.db").display()),
    };
    tracing::info!(
        addr = %server.addr,
        store = %store,
        data_dir = %cfg.data_dir.display(),
        ready_ms = started.elapsed().as_secs_f64() * 1000.0,
        "tenantflow ready"
    );
    if let Some(path) = &server.admin_token_written {
        eprintln!("First start: the platform-admin credential is in {} (mode 0600).", path.display());
    }
    eprintln!("tenantflow listening on http://{}", server.addr);
    server.wait(stop_signal()).await.map_err(|e| CliError::Failed(format!("server failed: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}
