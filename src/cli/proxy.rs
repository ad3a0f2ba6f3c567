//! `authdeck proxy --config proxy.toml [--listen ADDR]`: runs the exchange proxy until SIGTERM
//! or Ctrl-C, then lets in-flight requests finish.

use crate::app::exit;
use crate::proxy::{MetricsMode, Proxy, ProxyConfig, Reloader, TracingSink};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `authdeck proxy`.
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Address to listen on, overriding the config's `listen` (default 127.0.0.1:3100).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// Runs the proxy; `config` is the global `--config`, here the proxy's TOML file.
pub fn run(config: Option<&Path>, args: &ProxyArgs) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        // Colour codes only on a terminal: in a log file or journal they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AUTHDECK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    match run_inner(config, args) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(message) => {
            eprintln!("authdeck: error: {message}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn run_inner(config: Option<&Path>, args: &ProxyArgs) -> Result<(), String> {
    let given = config.ok_or("authdeck proxy needs --config FILE (the proxy's TOML file)")?;
    // The global --config names the config directory elsewhere; a directory here means its
    // `proxy.toml` (so AUTHDECK_CONFIG_DIR works for the proxy too).
    let in_dir = given.join("proxy.toml");
    let path = if given.is_dir() {
        in_dir.as_path()
    } else {
        given
    };
    if given.is_dir() && !path.exists() {
        return Err(format!(
            "{} is a directory without proxy.toml; authdeck proxy needs --config naming its TOML file",
            given.display()
        ));
    }
    let mut config = ProxyConfig::from_path(path).map_err(|e| e.to_string())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let env = |name: &str| std::env::var(name).ok();
        let proxy = Proxy::build(&config, &env, Arc::new(TracingSink))
            .await
            .map_err(|e| e.to_string())?;
        spawn_reload_on_sighup(proxy.reloader(), path.to_path_buf(), args.listen);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))?;
        // Tests and scripts read the port from this line when they pass --listen ADDR:0.
        tracing::info!(target: "authdeck::proxy", "listening on http://{local}");
        if let MetricsMode::Separate(addr) = config.metrics {
            let metrics_listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on metrics_listen {addr}: {e}"))?;
            let bound = metrics_listener.local_addr().map_or(addr, |a| a);
            tracing::info!(target: "authdeck::proxy", "metrics on http://{bound}/metrics");
            tokio::spawn(proxy.metrics().serve(metrics_listener));
        }
        proxy
            .serve(listener, shutdown_signal())
            .await
            .map_err(|e| format!("server error: {e}"))?;
        tracing::info!(target: "authdeck::proxy", "stopped");
        Ok(())
    })
}

/// SIGHUP re-reads the config file and the secrets and swaps them in (PROXY-14); a file that
/// does not load is refused with one log line and the running configuration stays (PROXY-15).
fn spawn_reload_on_sighup(reloader: Reloader, path: PathBuf, listen: Option<SocketAddr>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!(target: "authdeck::proxy", "cannot watch SIGHUP; reload needs a restart");
            return;
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let env = |name: &str| std::env::var(name).ok();
                // Refusals are logged by the reloader; the old configuration stays.
                let _ = reloader.reload_file(&path, listen, &env).await;
            }
        });
    }
    #[cfg(not(unix))]
    {
        let _ = (reloader, path, listen);
    }
}

/// Completes on SIGTERM (what a service manager or orchestrator sends) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
