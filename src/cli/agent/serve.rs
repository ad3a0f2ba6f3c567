//! The agent process itself: `authdeck agent` in the foreground, which becomes
//! `authdeck-agent` when it sits beside it (AGENT-18), and `authdeck-agent`'s own `main`; the
//! runtime and the allocator settings that keep its memory small (docs/benchmarks.md, "Agent").

use super::{fail, parse_duration, paths, socket_path};
use crate::agent::server::{Server, ServerConfig};
use crate::cli::context::Locations;
use crate::cli::exit;
use crate::vault::{self, KeyEnv};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AUTHDECK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

/// The agent's own executable, installed beside `authdeck` (`cargo install` installs both):
/// the agent server and nothing else, so the code it maps is its own and dense. Its RSS is
/// what the agent costs a machine all day (docs/benchmarks.md, "Agent").
pub const AGENT_EXE: &str = "authdeck-agent";

/// What `authdeck-agent --version` prints; `authdeck agent` runs only an executable that
/// prints exactly this.
fn agent_version_line() -> String {
    format!("{AGENT_EXE} {}\n", env!("CARGO_PKG_VERSION"))
}

/// `authdeck agent`: serves in the foreground until `agent stop`, SIGTERM or SIGINT. When
/// `authdeck-agent` of the same version sits beside this executable, this process becomes it
/// (`exec`: same pid, same environment, same standard streams) with the paths resolved here;
/// otherwise it serves itself, with the same code.
pub(super) fn foreground(loc: &Locations, lock_after: Option<Duration>) -> u8 {
    let (config_dir, vault, etcd) = match paths(loc) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("authdeck: {e}");
            return exit::ERROR;
        }
    };
    if let Some(exe) = own_agent_exe() {
        // A file vault by its absolute path; an etcd vault as it was named (`--vault`), or
        // not at all: `authdeck-agent` reads config.toml's `[vault]` again, as this did.
        let vault_arg = match &etcd {
            None => Some(vault.clone()),
            Some(_) => loc.vault.clone(),
        };
        let e = exec_agent(&exe, &config_dir, vault_arg.as_deref(), lock_after);
        eprintln!(
            "authdeck: warning: cannot run {}: {e}; the agent runs in this process",
            exe.display()
        );
    }
    serve(config_dir, vault, etcd, lock_after)
}

/// `authdeck-agent` beside this executable when it answers `--version` with this version
/// within 5 s; an older or newer one left there by another install is not used.
fn own_agent_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?.with_file_name(AGENT_EXE);
    if !exe.is_file() {
        return None;
    }
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    // HARD-2: the version check needs no key.
    crate::process::prepare_child(&mut cmd);
    let mut child = cmd.spawn().ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        use std::io::Read as _;
        let _ = stdout.take(256).read_to_end(&mut out);
    }
    (status.success() && out == agent_version_line().as_bytes()).then_some(exe)
}

/// Replaces this process with `authdeck-agent` serving `vault`; returns only on failure. The
/// environment goes along unchanged: it is this process's own (a passphrase in it unlocks at
/// start, AGENT-6), not a child's.
fn exec_agent(
    exe: &std::path::Path,
    config_dir: &std::path::Path,
    vault: Option<&std::path::Path>,
    lock_after: Option<Duration>,
) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--config").arg(config_dir);
    if let Some(v) = vault {
        cmd.arg("--vault").arg(v);
    }
    if let Some(d) = lock_after {
        cmd.arg("--lock-after").arg(format!("{}s", d.as_secs()));
    }
    // Nothing secret is held yet; the new image hardens itself first thing (HARD-1) and must
    // find the limit this process started with, for the hooks it runs.
    crate::process::restore_core_limit();
    let e = cmd.exec();
    let _ = crate::process::harden();
    e
}

/// `authdeck-agent [--config DIR] [--vault PATH] [--lock-after DURATION]`: the agent in the
/// foreground, as `authdeck agent` (which runs this executable). Without options, the same
/// environment as `authdeck`: `AUTHDECK_CONFIG_DIR`, `AUTHDECK_VAULT`.
pub fn agent_main() -> std::process::ExitCode {
    // HARD-1: before anything holds a secret.
    if let Err(e) = crate::process::harden() {
        eprintln!("{AGENT_EXE}: warning: cannot make the process non-dumpable: {e}");
    }
    let usage = |why: String| {
        eprintln!(
            "{AGENT_EXE}: {why}\nusage: {AGENT_EXE} [--config DIR] [--vault PATH] [--lock-after DURATION]"
        );
        std::process::ExitCode::from(exit::USAGE)
    };
    let mut loc = Locations::default();
    let mut lock_after = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let flag = arg.to_str().unwrap_or_default();
        match flag {
            "--version" | "-V" => {
                print!("{}", agent_version_line());
                return std::process::ExitCode::SUCCESS;
            }
            "--help" | "-h" => {
                println!(
                    "{AGENT_EXE}: the authdeck agent in the foreground, as `authdeck agent`\n\
                     usage: {AGENT_EXE} [--config DIR] [--vault PATH] [--lock-after DURATION]"
                );
                return std::process::ExitCode::SUCCESS;
            }
            "--config" | "--vault" | "--lock-after" => {
                let Some(value) = args.next() else {
                    return usage(format!("{flag} needs a value"));
                };
                match flag {
                    "--config" => loc.config = Some(value.into()),
                    "--vault" => loc.vault = Some(value.into()),
                    _ => match parse_duration(&value.to_string_lossy()) {
                        Ok(d) => lock_after = Some(d),
                        Err(e) => return usage(format!("--lock-after: {e}")),
                    },
                }
            }
            _ => {
                let shown: String = arg
                    .to_string_lossy()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(100)
                    .collect();
                return usage(format!("unexpected argument '{shown}'"));
            }
        }
    }
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    loc.config = loc.config.or_else(|| env("AUTHDECK_CONFIG_DIR"));
    loc.vault = loc.vault.or_else(|| env("AUTHDECK_VAULT"));
    let code = match paths(&loc) {
        Ok((config_dir, vault, etcd)) => serve(config_dir, vault, etcd, lock_after),
        Err(e) => {
            eprintln!("{AGENT_EXE}: {e}");
            exit::ERROR
        }
    };
    std::process::ExitCode::from(code)
}

/// The agent itself, in whichever executable runs it.
fn serve(
    config_dir: PathBuf,
    vault: PathBuf,
    etcd: Option<Box<vault::etcd::EtcdConfig>>,
    lock_after: Option<Duration>,
) -> u8 {
    init_logging();
    let mut cfg = ServerConfig::new(socket_path(), vault, config_dir);
    cfg.etcd = etcd;
    cfg.lock_after = lock_after;
    cfg.key_env = KeyEnv::from_process();
    // The tests shorten the wrong-passphrase delay (AGENT-7); a release build has no way to.
    #[cfg(feature = "test-support")]
    if let Some(ms) = std::env::var("AUTHDECK_AGENT_UNLOCK_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        cfg.unlock_delay = Duration::from_millis(ms);
    }
    let server = match Server::bind(cfg) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    one_malloc_arena();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("authdeck: cannot start the async runtime: {e}");
            return exit::ERROR;
        }
    };
    rt.spawn(release_free_memory());
    match rt.block_on(server.run()) {
        Ok(()) => exit::OK,
        Err(e) => fail(&e),
    }
}

/// One thread serves every connection and runs the scheduler, the few blocking jobs (vault
/// saves, unlock's key derivation, config reloads) go to a small pool: the agent's work is
/// light and mostly waiting, and fewer threads hold fewer stacks (docs/benchmarks.md, "Agent").
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(8)
        .enable_all()
        .build()
}

/// How often the agent gives its allocator's free memory back to the system.
const TRIM_EVERY: Duration = Duration::from_secs(30);

/// glibc keeps the memory that refreshes free inside its heap for reuse, and gives back only
/// the top of it: after ten minutes of refreshes about a third of the heap was free and held.
/// `malloc_trim` returns the free pages (not one byte in use) to the system; twice a minute it
/// costs microseconds (docs/benchmarks.md, "Agent").
async fn release_free_memory() {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free memory of the allocator; any pad is valid.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Before the runtime's threads start: one glibc malloc arena for the whole agent. With one
/// arena per thread (glibc's default, up to 8 per core) the agent's private memory grew by
/// 0.8 MiB over ten minutes of refreshes and stood at 5.0 MiB; with one, 3.0 MiB and flat after
/// the first minutes (docs/benchmarks.md, "Agent"). Its threads are few and mostly idle, so
/// they hardly contend for the arena's lock.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; M_ARENA_MAX takes any positive count.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
