//! The `sluice` command: `serve`, `check`, `schema`, `prices`, `version`,
//! and the admin CLI (`tenants`, `apps`, `keys`, `users`, `subscriptions`, `audit`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use sluice::config;
use sluice::server::{shutdown_signal, spawn_config_watcher, spawn_sighup_reloader, Server};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A fast AI gateway in front of LLM providers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the gateway; reloads the config on change, SIGHUP and POST /admin/reload.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file: print every issue (file:line:col: key.path: message).
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the JSON Schema of the config file (for editor autocompletion).
    Schema,
    /// Print the built-in price table (USD per million tokens), or the
    /// built-in price a model id resolves to.
    Prices {
        /// An upstream model id, e.g. `gpt-4o-2024-08-06`.
        model: Option<String>,
    },
    /// Print the version.
    Version,
    #[command(flatten)]
    Admin(Box<sluice::cli::Command>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Admin(cmd) => admin(&cmd),
        Cmd::Version => {
            println!("sluice {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Cmd::Prices { model } => {
            match model {
                Some(m) => print!("{}", sluice::pricing::describe(&m)),
                None => print!("{}", sluice::pricing::render()),
            }
            ExitCode::SUCCESS
        }
        Cmd::Schema => {
            println!("{}", config::json_schema());
            ExitCode::SUCCESS
        }
        Cmd::Check { config: path } => match config::load_file(&path) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({} providers, {} models, {} keys)",
                    path.display(),
                    cfg.providers.len(),
                    cfg.models.len(),
                    cfg.keys.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("{} issue(s) found", e.0.len());
                ExitCode::FAILURE
            }
        },
        Cmd::Serve { config: path } => serve(path),
    }
}

/// Runs one admin CLI command (see `sluice::cli`).
fn admin(cmd: &sluice::cli::Command) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(sluice::cli::run(cmd))
}

fn serve(path: PathBuf) -> ExitCode {
    let cfg = match config::load_file(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let _log_guard = sluice::telemetry::init_logging(&cfg.log);
    // One single-threaded event loop per worker (this is worker 0; the server
    // starts the others), like nginx's worker processes.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let server = Server::bind(&cfg, Some(path.clone())).await?;
        tracing::info!(listen = %server.public_addr, admin = ?server.admin_addr, "sluice {} serving {}", env!("CARGO_PKG_VERSION"), path.display());
        spawn_sighup_reloader(server.app.clone());
        let _watcher = spawn_config_watcher(&server.app);
        server.run(shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}
