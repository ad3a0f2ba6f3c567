//! The agent's test fixture, shared by every test of the agent and of its clients
//! (`agent`, `agent_bg`, `agent_dash`, `agent_path`, `agent_etcd`, `os_keyring`): a config dir
//! with accounts at a devserver, a passphrase vault path, a private runtime directory, the
//! commands run in exactly that environment (or in a pseudo-terminal), and a foreground agent.

use crate::pty::PtySession;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PASS: &str = "correct horse battery staple";

/// A config dir with account `demo` at a devserver, a passphrase vault path, a private socket
/// directory, and the environment every command of the test gets (nothing from the test's).
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new(issuer: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config/providers")).unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        set_mode(&run, 0o700);
        let env = Env { dir };
        env.account_file("demo", issuer);
        env
    }

    /// Writes `providers/NAME.toml`: account `name` at `issuer` as the devserver's public
    /// client, with a refresh token (`offline_access`).
    pub fn account_file(&self, name: &str, issuer: &str) {
        std::fs::write(
            self.path(&format!("config/providers/{name}.toml")),
            format!(
                "extends = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"demo-public\"\n\
                 scopes = [\"openid\", \"email\", \"offline_access\"]\n"
            ),
        )
        .unwrap();
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn sock(&self) -> PathBuf {
        self.path("run/authdeck/agent.sock")
    }

    /// The binary with this environment: `XDG_RUNTIME_DIR` points into the temp dir, so the
    /// default socket rule (AGENT-1) is the one used. No passphrase unless added.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::support::bin());
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("AUTHDECK_CONFIG_DIR", self.path("config"))
            .env("AUTHDECK_VAULT", self.path("vault.bin"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .args(args);
        c
    }

    /// The environment [`cmd`](Self::cmd) gives (no passphrase anywhere), for a
    /// pseudo-terminal session.
    pub fn pty_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HOME", self.dir.path().display().to_string()),
            ("XDG_RUNTIME_DIR", self.path("run").display().to_string()),
            (
                "AUTHDECK_CONFIG_DIR",
                self.path("config").display().to_string(),
            ),
            (
                "AUTHDECK_VAULT",
                self.path("vault.bin").display().to_string(),
            ),
            ("NO_PROXY", "127.0.0.1,localhost".into()),
        ]
    }

    /// `authdeck ARGS` (no arguments: the dashboard) in a `cols`×`rows` pseudo-terminal, with
    /// [`pty_env`](Self::pty_env) and `extra`.
    pub fn pty(&self, args: &[&str], extra: &[(&str, &str)], cols: u16, rows: u16) -> PtySession {
        let envs = self.pty_env();
        let mut envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        envs.extend_from_slice(extra);
        PtySession::spawn(&crate::support::bin(), args, &envs, cols, rows)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn run_with_pass(&self, args: &[&str], pass: &str) -> Output {
        self.cmd(args)
            .env("AUTHDECK_PASSPHRASE", pass)
            .output()
            .unwrap()
    }

    /// Logs `demo` in through paste mode, creating the passphrase vault.
    pub fn login(&self) {
        self.login_account("demo");
    }

    /// Logs `name` in through paste mode, directly on the vault (no agent).
    pub fn login_account(&self, name: &str) {
        let mut c = self.cmd(&["login", name, "--mode", "paste"]);
        c.env("AUTHDECK_PASSPHRASE", PASS)
            .env("AUTHDECK_AGENT", "off");
        crate::support::paste_login(c);
    }

    /// `token NAME` on the direct path (no agent), for comparison.
    pub fn direct_token(&self, name: &str) -> String {
        let out = self
            .cmd(&["token", name])
            .env("AUTHDECK_PASSPHRASE", PASS)
            .env("AUTHDECK_AGENT", "off")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", crate::support::stderr(&out));
        crate::support::stdout(&out).trim_end().to_string()
    }

    /// `authdeck agent` in the foreground, its stderr in `agent-N.log`; waits until it answers.
    pub fn agent(&self, extra_env: &[(&str, &str)]) -> Agent {
        self.agent_with(&[], extra_env)
    }

    /// `authdeck agent ARGS...` in the foreground.
    pub fn agent_with(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Agent {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        let log = self.path(&format!("agent-{n}.log"));
        let mut c = self.cmd(&["agent"]);
        c.args(args);
        c.env("AUTHDECK_AGENT_UNLOCK_DELAY_MS", "200")
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let child = c.spawn().unwrap();
        let agent = Agent {
            child,
            sock: extra_env
                .iter()
                .find(|(k, _)| *k == "AUTHDECK_AGENT_SOCK")
                .map_or_else(|| self.sock(), |(_, v)| PathBuf::from(v)),
            log,
        };
        agent.wait_ready();
        agent
    }
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A foreground agent, killed on drop.
pub struct Agent {
    pub child: Child,
    pub sock: PathBuf,
    pub log: PathBuf,
}

impl Agent {
    /// Waits (up to 20 s) until the agent answers at its socket.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("agent did not answer; log: {}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn call(&self, frame: &str) -> serde_json::Value {
        call(&self.sock, frame)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request frame on a fresh connection; the answer as JSON.
pub fn call(sock: &Path, frame: &str) -> serde_json::Value {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(frame.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}
