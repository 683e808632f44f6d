//! `tenantflow`: the server and its command-line client in one binary.
//!
//! Data goes to stdout, diagnostics to stderr. Exit codes: 0 success, 1 the API refused or
//! failed, 2 bad usage or configuration, 3 the server could not be reached.

mod cli;
mod client;
mod commands;
mod config;
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(commands::run(cli, started)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
