use std::process::ExitCode;

use clap::Parser;
use sheetgpt::Config;
use sheetgpt::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    // One TLS provider for every client in the process (database, model providers).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("sheetgpt: {err}");
            return ExitCode::from(2);
        }
    };
    match cli::run(cli, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sheetgpt: {err:#}");
            ExitCode::FAILURE
        }
    }
}
