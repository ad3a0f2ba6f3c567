//! Agent benchmarks, run against the built binary (docs/benchmarks.md, "Agent"):
//! 1. `token`: `authdeck token NAME` through the agent (passphrase vault, unlocked) beside the
//!    direct key-file and passphrase paths and beside `oidc-token` served by Debian's
//!    `oidc-agent`, both holding an account at the same `oidc-provider` (tests/interop);
//! 2. `export`: `--export` of 50 accounts through the agent beside the direct key-file path;
//! 3. `cred`: `git-credential get` and `kube-credential` beside `token` for the same account,
//!    through the agent and on the direct key-file path;
//! 4. `load`: 1,000 socket requests a second for 10 s, a fresh connection each;
//! 5. `soak`: the agent with 50 accounts whose tokens live 30 s, refreshing at the in-process
//!    devserver for `AGENT_SOAK_SECS` (600), RSS sampled; beside it an agent with nothing due,
//!    whose CPU time is read over `AGENT_IDLE_SECS` (60). scripts/agent-soak.sh runs this.
//!
//! Run: `cargo bench --bench agent [token] [export] [cred] [load] [soak]` (no name: all but
//! `soak`). Every comparison interleaves its commands run by run, so machine load hits all
//! of them alike. `AUTHDECK_BENCH_BIN` points at another authdeck binary (e.g. a plain
//! `cargo build --release` one); `AUTHDECK_BENCH_BIN_BEFORE` adds an older binary's runs beside
//! it, in the same rounds. `MALLOC_ARENA_MAX` and `AUTHDECK_LOG` are passed on to the agents.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/integration/oidc_provider.rs"]
#[allow(clippy::all, unused)]
mod oidc_provider;

mod common;

use authdeck::agent::protocol::{Narrow, Origin, Request};
use authdeck::agent::{Client, SocketPath};
use authdeck::devserver::{DevServer, DevServerConfig};
use authdeck::secret::{AccessToken, Passphrase, RefreshToken};
use authdeck::vault::{KeySource, Record, StoredState, Vault, generate_key_file};
use common::{Series, bin, cpu_ticks, header, load_average, status_field};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PASS: &str = "correct horse battery staple";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An account file and its vault record.
struct Account {
    name: String,
    file: String,
    record: Record,
}

/// An OIDC account whose endpoints are all explicit (nothing is discovered), asking for
/// `openid email offline_access`.
fn account_file(issuer: &str, client_id: &str, extra: &str) -> String {
    account_file_scoped(
        issuer,
        client_id,
        "\"openid\", \"email\", \"offline_access\"",
        extra,
    )
}

fn account_file_scoped(issuer: &str, client_id: &str, scopes: &str, extra: &str) -> String {
    format!(
        "extends = \"oidc\"\nissuer = \"{issuer}\"\n\
         authorization_endpoint = \"{issuer}/auth\"\n\
         token_endpoint = \"{issuer}/token\"\nclient_id = \"{client_id}\"\n\
         scopes = [{scopes}]\n{extra}"
    )
}

fn record(issuer: &str, client_id: &str, access: &str, refresh: Option<&str>, exp: i64) -> Record {
    Record {
        provider: "oidc".into(),
        issuer: Some(issuer.into()),
        client_id: Some(client_id.into()),
        access_token: Some(AccessToken::new(access)),
        refresh_token: refresh.map(RefreshToken::new),
        token_type: Some("Bearer".into()),
        scopes: vec!["openid".into(), "email".into(), "offline_access".into()],
        obtained_at: Some(exp.min(now())),
        expires_at: Some(exp),
        state: StoredState::Valid,
        ..Record::default()
    }
}

/// `n` accounts at a made-up issuer with tokens valid for an hour; the first can be asked
/// for by git (`https://git.example`).
fn fake_accounts(n: usize) -> Vec<Account> {
    let issuer = "https://as.example";
    let exp = now() + 3600;
    (0..n)
        .map(|i| Account {
            name: format!("acc{i:02}"),
            file: account_file(
                issuer,
                "x",
                if i == 0 {
                    "git_urls = [\"https://git.example\"]\n"
                } else {
                    ""
                },
            ),
            record: record(issuer, "x", &format!("at_{i:0>40}"), None, exp),
        })
        .collect()
}

/// A config dir with the accounts, a passphrase vault (what the agent serves and the direct
/// passphrase path opens) and a key-file vault holding the same records.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(accounts: &[Account]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let f = Fixture { dir };
        std::fs::create_dir_all(f.path("config/providers")).unwrap();
        for a in accounts {
            std::fs::write(
                f.path(&format!("config/providers/{}.toml", a.name)),
                &a.file,
            )
            .unwrap();
        }
        generate_key_file(&f.path("vault.key")).unwrap();
        let records: Vec<(String, Record)> = accounts
            .iter()
            .map(|a| (a.name.clone(), a.record.clone()))
            .collect();
        for (path, key) in [
            (
                f.path("pass.bin"),
                KeySource::Passphrase(Passphrase::new(PASS)),
            ),
            (f.path("key.bin"), KeySource::KeyFile(f.path("vault.key"))),
        ] {
            let vault = Vault::create(&path, key).unwrap();
            vault
                .update(|r| {
                    r.extend(records.clone());
                    Ok::<_, authdeck::vault::VaultError>(())
                })
                .unwrap();
        }
        let run = f.path("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        f
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn sock(&self) -> PathBuf {
        self.path("run/agent.sock")
    }

    /// The binary with nothing of this process's environment but `PATH`.
    fn base(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AUTHDECK_CONFIG_DIR", self.path("config"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdout(Stdio::null())
            .args(args);
        c
    }

    /// Through the agent (passphrase vault, no passphrase in the environment).
    fn via_agent(&self, args: &[&str]) -> Command {
        let mut c = self.base(args);
        c.env("AUTHDECK_VAULT", self.path("pass.bin"))
            .env("AUTHDECK_AGENT_SOCK", self.sock());
        c
    }

    /// The direct key-file path.
    fn key_file(&self, args: &[&str]) -> Command {
        let mut c = self.base(args);
        c.env("AUTHDECK_VAULT", self.path("key.bin"))
            .env("AUTHDECK_KEY_FILE", self.path("vault.key"))
            .env("AUTHDECK_AGENT", "off");
        c
    }

    /// The direct passphrase path (Argon2id on every call).
    fn passphrase(&self, args: &[&str]) -> Command {
        let mut c = self.base(args);
        c.env("AUTHDECK_VAULT", self.path("pass.bin"))
            .env("AUTHDECK_PASSPHRASE", PASS)
            .env("AUTHDECK_AGENT", "off");
        c
    }

    /// `authdeck agent` in the foreground on the passphrase vault, unlocked at start from the
    /// environment, its log in `agent.log`; returns once it answers unlocked.
    fn agent(&self) -> Agent {
        let mut c = self.base(&["agent"]);
        c.env("AUTHDECK_VAULT", self.path("pass.bin"))
            .env("AUTHDECK_AGENT_SOCK", self.sock())
            .env("AUTHDECK_PASSPHRASE", PASS)
            .stderr(std::fs::File::create(self.path("agent.log")).unwrap());
        for var in ["MALLOC_ARENA_MAX", "AUTHDECK_LOG"] {
            if let Some(v) = std::env::var_os(var) {
                c.env(var, v);
            }
        }
        let child = c.spawn().unwrap();
        let agent = Agent {
            child,
            sock: self.sock(),
            log: self.path("agent.log"),
        };
        agent.wait_unlocked();
        agent
    }

    /// Runs the command once and returns its stdout, checking that it succeeded.
    fn output(cmd: &mut Command, stdin: Option<&[u8]>) -> String {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
        String::from_utf8(out.stdout).unwrap()
    }

    /// Waits past the account index's racy window and runs `--export` on the key-file path
    /// once, so the direct paths answer from the index as they do day to day.
    fn settle_index(&self) {
        std::thread::sleep(authdeck::provider::index::RACY + Duration::from_millis(500));
        Fixture::output(&mut self.key_file(&["--export"]), None);
        Fixture::output(&mut self.passphrase(&["--export"]), None);
    }
}

/// A foreground agent, killed on drop.
struct Agent {
    child: Child,
    sock: PathBuf,
    log: PathBuf,
}

impl Agent {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn client(&self) -> Client {
        Client::connect(&SocketPath {
            path: self.sock.clone(),
            managed_dir: false,
        })
        .unwrap()
        .expect("the agent answers")
    }

    fn wait_unlocked(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if UnixStream::connect(&self.sock).is_ok() {
                let r = self
                    .client()
                    .call(&Request::Status {
                        origin: Origin::default(),
                    })
                    .unwrap();
                let unlocked = r
                    .agent
                    .is_some_and(|a| a.state == authdeck::agent::protocol::KeyState::Unlocked);
                if unlocked {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the agent did not answer unlocked; log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cmd` with another program: the same arguments and environment (the environment is
/// always cleared first, as every command of these benches does).
fn rebin(cmd: &Command, program: &Path) -> Command {
    let mut c = Command::new(program);
    c.args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdout(Stdio::null());
    c
}

/// `AUTHDECK_BENCH_BIN_BEFORE`: an older binary measured beside the current one, in the same
/// run, for before/after figures.
fn before_bin() -> Option<PathBuf> {
    std::env::var_os("AUTHDECK_BENCH_BIN_BEFORE").map(PathBuf::from)
}

/// Adds, for each contender whose name starts with `authdeck`, the same command run by the
/// `AUTHDECK_BENCH_BIN_BEFORE` binary.
fn with_before(contenders: Vec<Contender>) -> Vec<Contender> {
    let Some(before) = before_bin() else {
        return contenders;
    };
    let mut out = Vec::new();
    for c in contenders {
        if c.name.starts_with("authdeck") && c.every == 1 {
            let mut b = Contender::new(&format!("before: {}", c.name), rebin(&c.cmd, &before));
            b.stdin = c.stdin.clone();
            out.push(c);
            out.push(b);
        } else {
            out.push(c);
        }
    }
    out
}

/// One named command of an interleaved comparison.
struct Contender {
    name: String,
    cmd: Command,
    stdin: Option<Vec<u8>>,
    /// Runs once every `every` rounds (the slow passphrase path).
    every: usize,
    series: Series,
}

impl Contender {
    fn new(name: &str, cmd: Command) -> Contender {
        Contender {
            name: name.into(),
            cmd,
            stdin: None,
            every: 1,
            series: Series::default(),
        }
    }
    fn stdin(mut self, input: &[u8]) -> Contender {
        self.stdin = Some(input.to_vec());
        self
    }
    fn every(mut self, n: usize) -> Contender {
        self.every = n;
        self
    }
}

/// Runs every contender once per round for `rounds` rounds, rotating which goes first, after
/// one warm-up run each; prints the table.
fn interleave(title: &str, rounds: usize, contenders: &mut [Contender]) {
    for c in contenders.iter_mut() {
        common::run(&mut c.cmd, c.stdin.as_deref());
    }
    let n = contenders.len();
    for round in 0..rounds {
        for k in 0..n {
            let c = &mut contenders[(round + k) % n];
            if round % c.every == 0 {
                let cost = common::run(&mut c.cmd, c.stdin.as_deref());
                c.series.push(cost);
            }
        }
    }
    for c in contenders.iter_mut() {
        c.series.peak_rss_kib = common::peak_rss_kib(&c.cmd, c.stdin.as_deref());
    }
    println!("\n## {title} (load {})", load_average());
    println!("{}", header());
    for c in contenders.iter() {
        println!("{}", c.series.row(&c.name));
    }
}

fn median_cpu(c: &[Contender], name: &str) -> f64 {
    c.iter().find(|c| c.name == name).unwrap().series.cpu_mean()
}
fn median_wall(c: &[Contender], name: &str) -> f64 {
    c.iter().find(|c| c.name == name).unwrap().series.wall(0.5)
}

fn ratio_line(c: &[Contender], a: &str, b: &str) {
    println!(
        "{a} / {b}: wall {:.2}×, CPU {:.2}×",
        median_wall(c, a) / median_wall(c, b),
        median_cpu(c, a) / median_cpu(c, b)
    );
}

// ---------------------------------------------------------------------------------------
// 1. token, beside oidc-agent

/// The token response of a device grant at oidc-provider, approved by the test browser.
async fn op_device_login(
    op: &oidc_provider::OidcProvider,
    client_id: &str,
    secret: Option<&str>,
) -> serde_json::Value {
    let http = reqwest::Client::new();
    let with_auth = |r: reqwest::RequestBuilder| match secret {
        Some(s) => r.basic_auth(client_id, Some(s)),
        None => r,
    };
    let mut form = vec![("scope", "openid email offline_access")];
    if secret.is_none() {
        form.push(("client_id", client_id));
    }
    let dev: serde_json::Value = with_auth(http.post(op.url("/device/auth")).form(&form))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uri = dev["verification_uri_complete"]
        .as_str()
        .unwrap_or_else(|| panic!("no device authorization: {dev}"));
    oidc_provider::approve_device(uri).await.unwrap();
    let code = dev["device_code"].as_str().unwrap();
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", code),
    ];
    if secret.is_none() {
        form.push(("client_id", client_id));
    }
    let tok: serde_json::Value = with_auth(http.post(op.url("/token")).form(&form))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tok["refresh_token"].is_string(), "no refresh token: {tok}");
    tok
}

/// oidc-agent in the foreground with its own config dir, and one account loaded into it.
struct OidcAgent {
    child: Child,
    env: Vec<(String, PathBuf)>,
}

impl OidcAgent {
    /// Starts `oidc-agent` and loads account `op` from a refresh token with `oidc-gen`
    /// (refresh flow, no browser, no prompt).
    fn start(dir: &Path, issuer: &str, refresh_token: &str) -> Result<OidcAgent, String> {
        let config = dir.join("oidc-config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let sock = dir.join("oidc-agent.sock");
        let env = vec![
            ("OIDC_CONFIG_DIR".to_owned(), config),
            ("OIDC_SOCK".to_owned(), sock.clone()),
            ("HOME".to_owned(), dir.to_path_buf()),
        ];
        let mut c = Command::new("oidc-agent");
        c.args(["-d", "--quiet", "-a"])
            .arg(&sock)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("oidc-agent.log")).unwrap());
        let child = c
            .spawn()
            .map_err(|e| format!("cannot run oidc-agent ({e}): apt-get install oidc-agent-cli"))?;
        let agent = OidcAgent { child, env };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&sock).is_err() {
            if Instant::now() > deadline {
                return Err("oidc-agent did not open its socket".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = agent
            .cmd("oidc-gen")
            .args([
                &format!("--iss={issuer}"),
                "--client-id=authdeck-bench-plain",
                "--client-secret=benchplainsecret0123456789",
                &format!("--rt={refresh_token}"),
                "--scope=openid email offline_access",
                "--pw-env",
                "--prompt=none",
                "--confirm-default",
                "--no-url-call",
                "op",
            ])
            .env("OIDC_ENCRYPTION_PW", PASS)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!(
                "oidc-gen failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(agent)
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null());
        c
    }
}

impl Drop for OidcAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bench_token(rounds: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let op = oidc_provider::OidcProvider::start_with(&oidc_provider::ProviderOptions {
        access_token_ttl: Some(3600),
        ..Default::default()
    })
    .unwrap();
    let mine = rt.block_on(op_device_login(&op, "authdeck-public", None));
    let theirs = rt.block_on(op_device_login(
        &op,
        "authdeck-bench-plain",
        Some("benchplainsecret0123456789"),
    ));
    let issuer = op.issuer.clone();
    let exp = now() + mine["expires_in"].as_i64().unwrap();
    let accounts = [Account {
        name: "op".into(),
        file: account_file(&issuer, "authdeck-public", ""),
        record: record(
            &issuer,
            "authdeck-public",
            mine["access_token"].as_str().unwrap(),
            mine["refresh_token"].as_str(),
            exp,
        ),
    }];
    let f = Fixture::new(&accounts);
    f.settle_index();
    let agent = f.agent();
    let token = Fixture::output(&mut f.via_agent(&["token", "op"]), None);
    assert_eq!(token.trim(), mine["access_token"].as_str().unwrap());
    assert_eq!(
        Fixture::output(&mut f.key_file(&["token", "op"]), None),
        token
    );
    let oidc = OidcAgent::start(
        f.dir.path(),
        &issuer,
        theirs["refresh_token"].as_str().unwrap(),
    );
    let contenders = vec![
        Contender::new("authdeck token op (agent, passphrase vault)", {
            f.via_agent(&["token", "op"])
        }),
        Contender::new("authdeck token op (direct, key file)", {
            f.key_file(&["token", "op"])
        }),
        Contender::new("authdeck token op (direct, passphrase)", {
            f.passphrase(&["token", "op"])
        })
        .every(10),
        Contender::new("authdeck --version", f.base(&["--version"])),
        Contender::new("true (fork + exec floor)", {
            let mut c = Command::new("true");
            c.stdout(Stdio::null());
            c
        }),
    ];
    let mut contenders = with_before(contenders);
    match &oidc {
        Ok(o) => {
            let mut c = o.cmd("oidc-token");
            c.arg("op");
            let theirs_now = Fixture::output(&mut c, None);
            assert!(
                theirs_now.trim().len() > 20,
                "oidc-token printed {theirs_now:?}"
            );
            contenders.insert(1, Contender::new("oidc-token op (oidc-agent)", c));
        }
        Err(e) => println!("oidc-agent comparison skipped: {e}"),
    }
    interleave(
        &format!("token, one account at oidc-provider, {rounds} rounds"),
        rounds,
        &mut contenders,
    );
    let a = "authdeck token op (agent, passphrase vault)";
    ratio_line(&contenders, "authdeck token op (direct, passphrase)", a);
    ratio_line(&contenders, "authdeck token op (direct, key file)", a);
    if oidc.is_ok() {
        ratio_line(&contenders, a, "oidc-token op (oidc-agent)");
        ratio_line(
            &contenders,
            "authdeck token op (direct, key file)",
            "oidc-token op (oidc-agent)",
        );
    }
    println!(
        "agent after the run: VmRSS {} KiB, VmHWM {} KiB",
        status_field(agent.pid(), "VmRSS:"),
        status_field(agent.pid(), "VmHWM:")
    );
    if let Ok(o) = &oidc {
        println!(
            "oidc-agent after the run: VmRSS {} KiB, VmHWM {} KiB",
            status_field(o.child.id(), "VmRSS:"),
            status_field(o.child.id(), "VmHWM:")
        );
    }
    drop(op);
}

// ---------------------------------------------------------------------------------------
// 2. export of 50 accounts; 3. git-credential and kube-credential beside token

fn bench_export(rounds: usize) {
    let f = Fixture::new(&fake_accounts(50));
    f.settle_index();
    let _agent = f.agent();
    let via = Fixture::output(&mut f.via_agent(&["--export"]), None);
    let direct = Fixture::output(&mut f.key_file(&["--export"]), None);
    assert_eq!(via.lines().count(), 50);
    assert_eq!(via, direct, "the agent and the vault disagree");
    let mut contenders = with_before(vec![
        Contender::new("authdeck --export (agent)", f.via_agent(&["--export"])),
        Contender::new(
            "authdeck --export (direct, key file)",
            f.key_file(&["--export"]),
        ),
    ]);
    interleave(
        &format!("--export, 50 accounts, {rounds} rounds"),
        rounds,
        &mut contenders,
    );
    ratio_line(
        &contenders,
        "authdeck --export (agent)",
        "authdeck --export (direct, key file)",
    );
}

fn bench_cred(rounds: usize) {
    let f = Fixture::new(&fake_accounts(50));
    f.settle_index();
    let _agent = f.agent();
    let git_in: &[u8] = b"protocol=https\nhost=git.example\n\n";
    for cmd in [
        &mut f.via_agent(&["git-credential", "get"]),
        &mut f.key_file(&["git-credential", "get"]),
    ] {
        let out = Fixture::output(cmd, Some(git_in));
        assert!(out.contains(&format!("password=at_{:0>40}", 0)), "{out}");
    }
    for cmd in [
        &mut f.via_agent(&["kube-credential", "acc00"]),
        &mut f.key_file(&["kube-credential", "acc00"]),
    ] {
        let out = Fixture::output(cmd, None);
        assert!(out.contains("ExecCredential"), "{out}");
    }
    let mut contenders = vec![
        Contender::new("token acc00 (agent)", f.via_agent(&["token", "acc00"])),
        Contender::new(
            "git-credential get (agent)",
            f.via_agent(&["git-credential", "get"]),
        )
        .stdin(git_in),
        Contender::new(
            "kube-credential acc00 (agent)",
            f.via_agent(&["kube-credential", "acc00"]),
        ),
        Contender::new(
            "token acc00 (direct, key file)",
            f.key_file(&["token", "acc00"]),
        ),
        Contender::new(
            "git-credential get (direct, key file)",
            f.key_file(&["git-credential", "get"]),
        )
        .stdin(git_in),
        Contender::new(
            "kube-credential acc00 (direct, key file)",
            f.key_file(&["kube-credential", "acc00"]),
        ),
    ];
    interleave(
        &format!("git-credential and kube-credential beside token, 50 accounts, {rounds} rounds"),
        rounds,
        &mut contenders,
    );
    for (a, b) in [
        ("git-credential get (agent)", "token acc00 (agent)"),
        ("kube-credential acc00 (agent)", "token acc00 (agent)"),
        (
            "git-credential get (direct, key file)",
            "token acc00 (direct, key file)",
        ),
        (
            "kube-credential acc00 (direct, key file)",
            "token acc00 (direct, key file)",
        ),
    ] {
        ratio_line(&contenders, a, b);
    }
}

// ---------------------------------------------------------------------------------------
// 4. 1,000 requests a second for 10 s

fn bench_load(rate: u64, seconds: u64) {
    let f = Fixture::new(&fake_accounts(50));
    let agent = f.agent();
    let total = rate * seconds;
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let late = Arc::new(AtomicUsize::new(0));
    let sock = agent.sock.clone();
    let cpu0 = cpu_ticks(agent.pid());
    let t0 = Instant::now() + Duration::from_millis(100);
    // Enough senders that one slow answer never holds up the schedule.
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (next, errors, late, sock) =
                (next.clone(), errors.clone(), late.clone(), sock.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return lat;
                    }
                    let at = t0 + Duration::from_nanos(i * 1_000_000_000 / rate);
                    let now = Instant::now();
                    if at > now {
                        std::thread::sleep(at - now);
                    } else if now - at > Duration::from_millis(10) {
                        late.fetch_add(1, Ordering::Relaxed);
                    }
                    let start = Instant::now();
                    let account = format!("acc{:02}", i % 50);
                    let ok = Client::connect(&SocketPath {
                        path: sock.clone(),
                        managed_dir: false,
                    })
                    .ok()
                    .flatten()
                    .and_then(|mut c| {
                        c.call(&Request::Token {
                            account: account.clone(),
                            min_valid: 0,
                            force: false,
                            narrow: Narrow::default(),
                            id_token: false,
                            origin: Origin::default(),
                        })
                        .ok()
                    })
                    .and_then(|r| r.token)
                    .is_some_and(|t| t.secret() == format!("at_{:0>40}", i % 50));
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    lat.push(start.elapsed());
                }
            })
        })
        .collect();
    let mut lat: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let elapsed = t0.elapsed();
    let cpu = (cpu_ticks(agent.pid()) - cpu0) as f64 / 100.0;
    lat.sort();
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "\n## load: {rate} token requests a second for {seconds} s, a connection each (load {})",
        load_average()
    );
    println!(
        "| requests | errors | sent >10 ms late | achieved req/s | p50 ms | p99 ms | max ms | agent CPU % | agent VmHWM KiB |"
    );
    println!(
        "| -------: | -----: | ---------------: | -------------: | -----: | -----: | -----: | ----------: | --------------: |"
    );
    println!(
        "| {:>8} | {:>6} | {:>16} | {:>14.0} | {:>6.2} | {:>6.2} | {:>6.2} | {:>11.1} | {:>15} |",
        lat.len(),
        errors.load(Ordering::Relaxed),
        late.load(Ordering::Relaxed),
        lat.len() as f64 / elapsed.as_secs_f64(),
        q(0.5),
        q(0.99),
        q(1.0),
        100.0 * cpu / elapsed.as_secs_f64(),
        status_field(agent.pid(), "VmHWM:")
    );
}

// ---------------------------------------------------------------------------------------
// 5. soak: 50 accounts, 30 s tokens; idle CPU with nothing due

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_soak() {
    const ACCOUNTS: usize = 50;
    let soak = Duration::from_secs(env_secs("AGENT_SOAK_SECS", 600));
    let idle = Duration::from_secs(env_secs("AGENT_IDLE_SECS", 60));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(DevServer::start(DevServerConfig {
            auto_approve_device: true,
            access_token_ttl: Duration::from_secs(30),
            ..DevServerConfig::default()
        }))
        .unwrap();
    let issuer = server.issuer();
    let tokens = rt.block_on(common::device_logins(&server, ACCOUNTS));
    // Due at once: the agent refreshes all 50 on start, then each about every 15 s (a 30 s
    // token is refreshed with 15 s left, EXP-4).
    let due = now() - 10;
    let accounts: Vec<Account> = tokens
        .iter()
        .enumerate()
        .map(|(i, rt_token)| Account {
            name: format!("acc{i:02}"),
            // The devserver grants `api`, what the device logins asked for.
            file: account_file_scoped(&issuer, "demo-public", "\"api\"", ""),
            record: Record {
                scopes: vec!["api".into()],
                ..record(&issuer, "demo-public", "expired", Some(rt_token), due)
            },
        })
        .collect();
    let busy = Fixture::new(&accounts);
    let quiet = Fixture::new(&fake_accounts(ACCOUNTS));
    let before = server.stats().refreshes;
    let busy_agent = busy.agent();
    let quiet_agent = quiet.agent();
    let t0 = Instant::now();
    // Idle: the quiet agent has nothing due for an hour; let it settle, then read its CPU.
    std::thread::sleep(Duration::from_secs(5));
    let (q0, qt) = (cpu_ticks(quiet_agent.pid()), Instant::now());
    // (t, VmRSS, VmHWM, threads, refreshes, RssAnon, RssFile)
    let mut samples: Vec<(f64, u64, u64, u64, u64, u64, u64)> = Vec::new();
    let mut quiet_cpu = None;
    let cpu_busy0 = cpu_ticks(busy_agent.pid());
    while t0.elapsed() < soak.max(idle + Duration::from_secs(6)) {
        std::thread::sleep(Duration::from_secs(5));
        if quiet_cpu.is_none() && qt.elapsed() >= idle {
            quiet_cpu = Some((cpu_ticks(quiet_agent.pid()) - q0, qt.elapsed()));
        }
        if t0.elapsed() <= soak + Duration::from_secs(5) {
            let pid = busy_agent.pid();
            samples.push((
                t0.elapsed().as_secs_f64(),
                status_field(pid, "VmRSS:"),
                status_field(pid, "VmHWM:"),
                status_field(pid, "Threads:"),
                server.stats().refreshes - before,
                status_field(pid, "RssAnon:"),
                status_field(pid, "RssFile:"),
            ));
        }
    }
    let busy_cpu = (cpu_ticks(busy_agent.pid()) - cpu_busy0) as f64 / 100.0;
    let refreshed = server.stats().refreshes - before;
    let fresh = {
        let mut c = busy.via_agent(&["--export"]);
        Fixture::output(&mut c, None).lines().count()
    };
    let log = std::fs::read_to_string(&busy_agent.log).unwrap_or_default();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    let failures = warned.len();
    for line in warned.iter().take(3) {
        println!("agent log: {line}");
    }
    println!(
        "\n## soak: {ACCOUNTS} accounts, 30 s tokens, {} s (load {})",
        soak.as_secs(),
        load_average()
    );
    println!(
        "| t s | VmRSS KiB | RssAnon KiB | RssFile KiB | VmHWM KiB | threads | refreshes so far |"
    );
    println!(
        "| --: | --------: | ----------: | ----------: | --------: | ------: | ---------------: |"
    );
    for (k, (t, rss, hwm, threads, n, anon, file)) in samples.iter().enumerate() {
        // Every sample in the first minute, then one a minute, and the last.
        if *t < 65.0 || (*t as u64 % 60) < 5 || k + 1 == samples.len() {
            println!(
                "| {t:>3.0} | {rss:>9} | {anon:>11} | {file:>11} | {hwm:>9} | {threads:>7} | {n:>16} |"
            );
        }
    }
    let after_minute: Vec<_> = samples.iter().filter(|s| s.0 >= 60.0).collect();
    if let (Some(first), Some(last)) = (after_minute.first(), after_minute.last()) {
        let max = after_minute.iter().map(|s| s.1).max().unwrap();
        println!(
            "VmRSS after the first minute: {} KiB at {:.0} s, {} KiB at the end, max {} KiB; growth {} KiB (RssAnon {:+} KiB, RssFile {:+} KiB)",
            first.1,
            first.0,
            last.1,
            max,
            last.1 as i64 - first.1 as i64,
            last.5 as i64 - first.5 as i64,
            last.6 as i64 - first.6 as i64
        );
    }
    println!(
        "server refreshes: {refreshed} ({:.1} a second), accounts exported at the end: {fresh}, \
         warnings/errors in the agent log: {failures}, agent CPU during the soak: {:.1} %",
        refreshed as f64 / t0.elapsed().as_secs_f64(),
        100.0 * busy_cpu / t0.elapsed().as_secs_f64()
    );
    if let Some((ticks, el)) = quiet_cpu {
        println!(
            "idle agent ({ACCOUNTS} accounts, nothing due): {:.2} s CPU over {:.0} s = {:.3} %, VmRSS {} KiB, VmHWM {} KiB",
            ticks as f64 / 100.0,
            el.as_secs_f64(),
            100.0 * ticks as f64 / 100.0 / el.as_secs_f64(),
            status_field(quiet_agent.pid(), "VmRSS:"),
            status_field(quiet_agent.pid(), "VmHWM:")
        );
    }
    println!("{}", smaps_summary(busy_agent.pid()));
    drop(busy_agent);
    drop(quiet_agent);
    drop(rt);
}

/// Where a process's resident memory is (`/proc/PID/smaps`): Rss by mapped file and
/// permissions (code `r-xp`, read-only data `r--p`, …) and the anonymous total, largest first.
/// Empty when smaps cannot be read (a non-dumpable process of another user).
fn smaps_summary(pid: u32) -> String {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return String::new();
    };
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    let mut current = String::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            let perms = words.next().unwrap_or_default();
            let path = words.nth(3).unwrap_or("[anon]");
            let name = Path::new(path)
                .file_name()
                .map_or(path.to_string(), |n| n.to_string_lossy().into_owned());
            current = format!("{name} {perms}");
        } else if first == "Rss:" {
            let kib: u64 = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            *by.entry(current.clone()).or_default() += kib;
        }
    }
    let mut rows: Vec<(String, u64)> = by.into_iter().filter(|(_, k)| *k > 0).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    let list: Vec<String> = rows.iter().map(|(n, k)| format!("{n} {k}")).collect();
    format!("smaps Rss KiB by mapping: {}", list.join(", "))
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |n: &str| {
        if wanted.is_empty() {
            n != "soak"
        } else {
            wanted.iter().any(|w| w == n)
        }
    };
    let rounds = env_secs("AGENT_BENCH_ROUNDS", 200) as usize;
    println!(
        "binary: {} ({} bytes); load {}",
        bin().display(),
        std::fs::metadata(bin()).map(|m| m.len()).unwrap_or(0),
        load_average()
    );
    if want("token") {
        bench_token(rounds);
    }
    if want("export") {
        bench_export(rounds);
    }
    if want("cred") {
        bench_cred(rounds);
    }
    if want("load") {
        bench_load(
            env_secs("AGENT_LOAD_RATE", 1000),
            env_secs("AGENT_LOAD_SECS", 10),
        );
    }
    if want("soak") {
        bench_soak();
    }
}
