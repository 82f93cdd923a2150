//! `cardea`: load the configuration, run until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{reload, EnvFilter};

use cardea::{Config, StartOptions};

/// Cardea: SIP, RTSP cameras and RTP feeds to WebRTC browsers, over the Janus API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Without it, the built-in defaults (= conf/cardea.toml).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the configuration and exit: non-zero, naming the bad key, if it is wrong.
    #[arg(long)]
    check_config: bool,
}

fn level_filter(level: u8) -> LevelFilter {
    match level {
        0 => LevelFilter::OFF,
        1..=2 => LevelFilter::ERROR,
        3 => LevelFilter::WARN,
        4 => LevelFilter::INFO,
        5..=6 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cardea: invalid configuration: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| "(built-in defaults)".into());
    #[allow(clippy::disallowed_methods)] // the process's environment, read once at start
    let config = match config.with_env(|k| std::env::var(k).ok(), &path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cardea: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        if let Err(e) = cardea::check_plugins(&config, &path) {
            eprintln!("cardea: invalid configuration: {e}");
            return ExitCode::from(2);
        }
        println!(
            "configuration OK{}",
            cli.config
                .as_ref()
                .map(|p| format!(": {}", p.display()))
                .unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    match run(config, cli.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cardea: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    // RUST_LOG overrides; the admin API's set_log_level adjusts the global ceiling.
    // rsipstack logs every SIP message whole at info (SDES-SRTP keys in SDP bodies,
    // digest Authorization headers): only its warnings by default.
    let env =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rsipstack=warn"));
    let (ceiling, handle) = reload::Layer::new(LevelFilter::TRACE);
    tracing_subscriber::registry()
        .with(ceiling)
        .with(env)
        .with(tracing_subscriber::fmt::layer())
        .init();
    let log_control = Box::new(move |level: u8| {
        let _ = handle.modify(|f| *f = level_filter(level));
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        // Listening for SIGTERM/SIGINT before anything starts: one arriving while the
        // listeners come up must stop us in order, not kill us with the default action.
        let stop = shutdown_signal()?;
        let mut running = cardea::start(
            config,
            StartOptions {
                log_control: Some(log_control),
                config_path,
                ..StartOptions::default()
            },
        )
        .await?;
        if let Some(http) = running.http {
            tracing::info!("demo page: http://{}/", display_addr(http));
        }
        // A task that ends by itself is fatal: exit non-zero so a supervisor restarts us.
        let fatal = tokio::select! {
            _ = stop => {
                tracing::info!("shutting down");
                None
            }
            why = running.wait() => {
                tracing::error!(%why, "stopping");
                Some(why)
            }
        };
        running.shutdown().await;
        match fatal {
            Some(why) => Err(anyhow::anyhow!(why)),
            None => Ok(()),
        }
    })
}

fn display_addr(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Installs the SIGTERM and SIGINT handlers now; the future resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Ctrl-C (the handler is installed when first polled, right at start).
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
