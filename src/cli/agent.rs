//! `authdeck agent [start|stop|status]`, `authdeck unlock`, `authdeck lock`.

use super::context::Locations;
use crate::agent::protocol::{AgentInfo, ErrorCode, KeyState, Origin, Request};
use crate::agent::{AgentError, Client, SocketEnv, SocketPath, socket};
use crate::app::status::{human_duration, unix};
use crate::provider;
use crate::vault::{self, KeyEnv, PromptPurpose};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::app::exit::LOCKED;

mod serve;

use serve::foreground;
pub use serve::{AGENT_EXE, agent_main};

/// `authdeck agent`: with no subcommand, runs in the foreground.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// What to do; nothing runs the agent in the foreground (logs on stderr).
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    /// Lock after this much time without a request, e.g. `15m`, `1h`, `90s` (AGENT-8).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_after: Option<Duration>,
}

/// The agent's subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Start the agent in the background; returns once it answers, printing its socket.
    Start {
        /// Lock after this much time without a request, e.g. `15m`, `1h`, `90s`.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        lock_after: Option<Duration>,
    },
    /// Stop the agent (it forgets the key).
    Stop,
    /// Which agent answers, on which host, for which vault, locked or not.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Parses `90`, `90s`, `15m`, `1h`, `1d` (and combinations such as `1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        if secs == 0 {
            return Err("the duration must be more than zero".into());
        }
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "'{text}': use a number with s, m, h or d (e.g. 15m)"
                ));
            }
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("'{text}': a unit needs a number before it (e.g. 15m)"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("'{text}' is too long"))?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!("'{text}': the last number has no unit"));
    }
    if total == 0 {
        return Err("the duration must be more than zero".into());
    }
    Ok(Duration::from_secs(total))
}

/// The socket every command uses (AGENT-1).
pub fn socket_path() -> SocketPath {
    SocketEnv::from_process().socket_path()
}

fn fail(e: &AgentError) -> u8 {
    eprintln!("authdeck: {e}");
    match e {
        AgentError::Refused(f) if f.code == ErrorCode::Locked => LOCKED,
        AgentError::Refused(f) if f.code == ErrorCode::NeedsLogin => super::exit::NEEDS_LOGIN,
        _ => super::exit::ERROR,
    }
}

/// The config directory, the vault (a file, or an etcd vault's `etcd://…` name) and, for an
/// etcd vault, its cluster: `--vault`, else `config.toml`'s `[vault]`, else the default file,
/// as every command chooses (docs/etcd.md).
type Paths = (PathBuf, PathBuf, Option<Box<vault::etcd::EtcdConfig>>);

fn paths(loc: &Locations) -> Result<Paths, String> {
    let config = provider::config_dir(loc.config.as_deref()).map_err(|e| e.to_string())?;
    match vault::Backend::resolve(loc.vault.as_deref(), &config).map_err(|e| e.to_string())? {
        vault::Backend::File(p) => Ok((config, absolute(p), None)),
        vault::Backend::Etcd(c) => Ok((config, PathBuf::from(c.display()), Some(c))),
    }
}

fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        return p;
    }
    std::env::current_dir().map_or(p.clone(), |d| d.join(p))
}

/// Runs `authdeck agent ...`.
pub fn run(loc: &Locations, args: &AgentArgs) -> u8 {
    match &args.command {
        None => foreground(loc, args.lock_after),
        Some(AgentCommand::Start { lock_after }) => start(loc, lock_after.or(args.lock_after)),
        Some(AgentCommand::Stop) => stop(),
        Some(AgentCommand::Status { json }) => status(*json),
    }
}

/// Asks the agent at `sock` who it is; `None` when nothing answers.
fn agent_info(sock: &SocketPath) -> Result<Option<AgentInfo>, AgentError> {
    let Some(mut client) = Client::connect(sock)? else {
        return Ok(None);
    };
    let r = client.call(&Request::Status {
        origin: Origin::default(),
    })?;
    Ok(r.agent)
}

/// `authdeck agent start`: runs `authdeck agent` detached (its own session, logs to
/// `agent.log` beside the socket), returns once the socket answers, prints the socket path.
fn start(loc: &Locations, lock_after: Option<Duration>) -> u8 {
    let sock = socket_path();
    match agent_info(&sock) {
        Ok(Some(a)) => {
            eprintln!(
                "authdeck: {}",
                AgentError::AlreadyRunning {
                    socket: sock.path.clone(),
                    pid: a.pid,
                    vault: a.vault,
                }
            );
            return super::exit::ERROR;
        }
        Ok(None) => {}
        Err(e) => return fail(&e),
    }
    if let Err(e) = socket::prepare_dir(&sock, socket::current_uid()) {
        return fail(&e);
    }
    let log_path = log_path(&sock);
    let log = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::File::options()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
    };
    let log = match log {
        Ok(f) => f,
        Err(e) => return fail(&AgentError::io("cannot open", &log_path, e)),
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("authdeck: cannot find my own executable: {e}");
            return super::exit::ERROR;
        }
    };
    let mut cmd = std::process::Command::new(exe);
    if let Some(c) = &loc.config {
        cmd.arg("--config").arg(c);
    }
    if let Some(v) = &loc.vault {
        cmd.arg("--vault").arg(absolute(v.clone()));
    }
    cmd.arg("agent");
    if let Some(d) = lock_after {
        cmd.arg("--lock-after").arg(format!("{}s", d.as_secs()));
    }
    // The socket the caller resolved, so the agent cannot end up elsewhere.
    cmd.env(socket::ENV_SOCK, &sock.path);
    // HARD-2: no passphrase in the agent's environment (it is unlocked below instead); a key
    // file's path is not a secret and is what a key-file vault's agent opens it with.
    crate::process::prepare_child(&mut cmd);
    if let Some(key_file) = std::env::var_os(vault::ENV_KEY_FILE).filter(|v| !v.is_empty()) {
        cmd.env(vault::ENV_KEY_FILE, key_file);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe; it detaches the agent from the caller's
        // terminal and process group, so closing the terminal does not stop it.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("authdeck: cannot start the agent: {e}");
            return super::exit::ERROR;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let pinned = SocketPath {
        path: sock.path.clone(),
        managed_dir: sock.managed_dir,
    };
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!(
                "authdeck: the agent exited at start ({status}); its log {} says:",
                log_path.display()
            );
            eprint!("{}", log_tail(&log_path));
            return super::exit::ERROR;
        }
        if let Ok(Some(info)) = agent_info(&pinned) {
            println!("{}", sock.path.display());
            let env = KeyEnv::from_process();
            if info.state == KeyState::Locked
                && (env.passphrase.is_some() || env.passphrase_file.is_some())
            {
                // The passphrase in our environment unlocks it at once (AGENT-6).
                return match unlock_at(&pinned) {
                    Ok(info) => {
                        eprintln!("authdeck: agent started and unlocked{}", lock_note(&info));
                        super::exit::OK
                    }
                    Err(e) => fail(&e),
                };
            }
            return super::exit::OK;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "authdeck: the agent did not answer within 15 s; see {}",
                log_path.display()
            );
            return super::exit::ERROR;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Where a detached agent logs: `agent.log` beside the socket.
pub fn log_path(sock: &SocketPath) -> PathBuf {
    let mut name = sock.path.file_name().unwrap_or_default().to_os_string();
    name.push(".log");
    sock.path.with_file_name(name)
}

fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(10);
    lines[from..]
        .iter()
        .map(|l| {
            format!(
                "  {}\n",
                l.chars().filter(|c| !c.is_control()).collect::<String>()
            )
        })
        .collect()
}

/// `authdeck agent stop`.
fn stop() -> u8 {
    let sock = socket_path();
    let mut client = match Client::connect_running(&sock) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    if let Err(e) = client.call(&Request::Stop) {
        return fail(&e);
    }
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !matches!(socket::probe(&sock.path), Ok(socket::Existing::Live)) {
            eprintln!("authdeck: agent stopped");
            return super::exit::OK;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("authdeck: the agent was asked to stop but still answers");
    super::exit::ERROR
}

/// `authdeck agent status [--json]`: exit 0 when an agent answers, 1 when none does.
fn status(json: bool) -> u8 {
    let sock = socket_path();
    let info = match agent_info(&sock) {
        Ok(Some(info)) => info,
        Ok(None) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"running": false, "socket": sock.path})
                );
            }
            return fail(&AgentError::NotRunning { socket: sock.path });
        }
        Err(e) => return fail(&e),
    };
    let here = socket::host_name();
    if json {
        let mut v = serde_json::to_value(&info).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("running".into(), true.into());
            obj.insert("forwarded".into(), (info.host != here).into());
            obj.insert(
                "client_socket".into(),
                sock.path.display().to_string().into(),
            );
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return super::exit::OK;
    }
    let whose = if info.host == here {
        format!("pid {} on this host ({here})", info.pid)
    } else {
        format!(
            "pid {} on host {} (forwarded; this is {here})",
            info.pid, info.host
        )
    };
    println!("agent:  {whose}, authdeck {}", info.version);
    println!("socket: {}", sock.path.display());
    println!("vault:  {}", info.vault.display());
    let mut state = info.state.word().to_string();
    if let Some(k) = &info.key {
        state.push_str(&format!(" ({})", k.replace('_', " ")));
    }
    if let Some(at) = info.lock_at {
        state.push_str(&format!(
            "; locks in {} without use",
            human_duration(at - unix(SystemTime::now()))
        ));
    }
    println!("state:  {state}");
    super::exit::OK
}

/// `authdeck unlock`: the passphrase from AUTHDECK_PASSPHRASE(_FILE) or the terminal, checked
/// by the agent, which keeps only the derived key.
pub fn unlock() -> u8 {
    let sock = socket_path();
    match unlock_at(&sock) {
        Ok(info) => {
            eprintln!("authdeck: agent unlocked{}", lock_note(&info));
            super::exit::OK
        }
        Err(e) => fail(&e),
    }
}

fn lock_note(info: &AgentInfo) -> String {
    info.lock_at.map_or_else(String::new, |at| {
        format!(
            "; it locks after {} without use",
            human_duration(at - unix(SystemTime::now()))
        )
    })
}

/// Unlocks the agent at `sock` (asking for the passphrase only when it is locked).
pub fn unlock_at(sock: &SocketPath) -> Result<AgentInfo, AgentError> {
    let mut client = Client::connect_running(sock)?;
    let status = client.call(&Request::Status {
        origin: Origin::default(),
    })?;
    if let Some(info) = status.agent
        && info.state != KeyState::Locked
    {
        return Ok(info);
    }
    let env = KeyEnv::from_process();
    let passphrase = match (env.passphrase, env.passphrase_file) {
        (Some(p), _) => p,
        (None, Some(f)) => vault::read_passphrase_file(&f).map_err(refused)?,
        (None, None) => vault::prompt_terminal(PromptPurpose::Unlock).map_err(refused)?,
    };
    let r = client.call(&Request::Unlock { passphrase })?;
    r.agent.ok_or_else(|| AgentError::Protocol {
        socket: sock.path.clone(),
        why: "no agent information in the answer".into(),
    })
}

fn refused(e: vault::VaultError) -> AgentError {
    AgentError::Refused(crate::agent::protocol::Failure::new(
        ErrorCode::Error,
        e.to_string(),
    ))
}

/// `authdeck lock`.
pub fn lock() -> u8 {
    let sock = socket_path();
    let result = Client::connect_running(&sock).and_then(|mut c| c.call(&Request::Lock));
    match result {
        Ok(_) => {
            eprintln!("authdeck: agent locked");
            super::exit::OK
        }
        Err(e) => fail(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "m", "15x", "15m3", "0", "0s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
