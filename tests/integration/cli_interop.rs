//! The account commands through the real `authdeck` binary against the real `oidc-provider`
//! from npm (tests/interop/): login in each mode —
//! paste (the redirect URL piped into stdin), browser (`$BROWSER` replaced by a script, the
//! harness plays the browser and then hits authdeck's own loopback listener), device (the
//! harness approves the printed code) — then `token`, `status --json`, `--export` eval'd by
//! `sh`, `refresh`, `revoke` (the server refuses the refresh token afterwards), `logout`,
//! `request` and `exec`. Plus the server's redirect delivered to the library's own callback
//! listener.
//!
//! The tests share the process-wide server (`OidcProvider::shared()`); each one has its own
//! config dir, vault, browser and grant, so they run in parallel.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use authdeck::oauth::ClientAuth;
use authdeck::oauth::callback::CallbackListener;
use authdeck::oauth::{AuthorizationRequest, ClientConfig, ClientSettings, OAuthClient};
use authdeck::secret::RefreshToken;
use authdeck::vault::{KeySource, Vault};

use crate::oidc_provider::{
    BASIC_CLIENT_ID, BASIC_CLIENT_SECRET, DEFAULT_LOGIN, MACHINE_BASIC_CLIENT_ID,
    MACHINE_BASIC_SECRET, MACHINE_JWT_CLIENT_ID, OidcProvider, PUBLIC_CLIENT_ID,
    approve_device_with_code, browse_authorization, deliver_callback,
};

/// The account every test logs in; its export variable is `OP_ACCESS_TOKEN`.
const NAME: &str = "op";
/// The environment variable that holds the confidential client's secret for the child.
const SECRET_ENV: &str = "AUTHDECK_INTEROP_CLIENT_SECRET";
/// Bound for any single step: a browser run, a command, reading a line from a child.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound for a device login: oidc-provider sends no `interval`, so the first poll comes
/// after RFC 8628's default 5 s.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(25);

/// The email the harness's default login gets from oidc-provider.
fn login_email() -> String {
    format!("{DEFAULT_LOGIN}@example.test")
}

/// The process-wide oidc-provider (started, and installed with `npm ci`, on first use).
fn provider() -> &'static OidcProvider {
    OidcProvider::shared().unwrap_or_else(|e| panic!("oidc-provider: {e}"))
}

/// A small runtime for the harness's async browser, from synchronous tests.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `fut` with [`STEP_TIMEOUT`] on `rt`.
fn bounded<T>(rt: &tokio::runtime::Runtime, what: &str, fut: impl Future<Output = T>) -> T {
    rt.block_on(async { tokio::time::timeout(STEP_TIMEOUT, fut).await })
        .unwrap_or_else(|_| panic!("{what}: no answer within {STEP_TIMEOUT:?}"))
}

/// Which oidc-provider client the account file uses.
#[derive(Clone, Copy)]
enum Client {
    /// `authdeck-public`, `client_auth = "none"`.
    Public,
    /// `authdeck-basic`, `client_auth = "basic"`, the secret through [`SECRET_ENV`].
    Basic,
}

/// A config dir with one account file for oidc-provider, a key-file vault, and a clean
/// environment for the children (nothing of the test's own but `PATH`).
struct Env {
    dir: tempfile::TempDir,
    client: Client,
}

impl Env {
    fn new(issuer: &str, client: Client) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("config/providers");
        std::fs::create_dir_all(&providers).unwrap();
        let client_lines = match client {
            Client::Public => format!("client_id = \"{PUBLIC_CLIENT_ID}\"\n"),
            Client::Basic => format!(
                "client_id = \"{BASIC_CLIENT_ID}\"\nclient_auth = \"basic\"\n\
                 client_secret_env = \"{SECRET_ENV}\"\n"
            ),
        };
        std::fs::write(
            providers.join(format!("{NAME}.toml")),
            format!(
                "extends = \"oidc\"\nissuer = \"{issuer}\"\n{client_lines}\
                 scopes = [\"openid\", \"email\", \"offline_access\"]\n"
            ),
        )
        .unwrap();
        authdeck::vault::generate_key_file(&dir.path().join("vault.key")).unwrap();
        Env { dir, client }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `program` with this environment only.
    fn program(&self, program: &std::ffi::OsStr) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AUTHDECK_CONFIG_DIR", self.path("config"))
            .env("AUTHDECK_VAULT", self.path("vault.bin"))
            .env("AUTHDECK_KEY_FILE", self.path("vault.key"))
            .env("NO_PROXY", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Client::Basic = self.client {
            c.env(SECRET_ENV, BASIC_CLIENT_SECRET);
        }
        c
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.program(crate::support::bin().as_os_str());
        c.args(args);
        c
    }

    /// Runs `authdeck args…` to the end (bounded).
    fn run(&self, args: &[&str]) -> Finished {
        Running::spawn(self.cmd(args)).finish(STEP_TIMEOUT)
    }

    /// `sh -c script` with this environment (bounded).
    fn shell(&self, script: &str) -> Finished {
        let mut c = self.program("sh".as_ref());
        c.arg("-c").arg(script);
        Running::spawn(c).finish(STEP_TIMEOUT)
    }

    /// `authdeck token op`, which must succeed.
    fn token(&self) -> String {
        let out = self.run(&["token", NAME]);
        assert!(out.ok(), "token failed: {}", out.stderr);
        let token = out.stdout.trim_end().to_owned();
        assert!(!token.is_empty() && !token.contains('\n'), "one token only");
        token
    }

    /// The account's refresh token, read from the vault through the library.
    fn vault_refresh_token(&self) -> RefreshToken {
        let vault = Vault::open(
            self.path("vault.bin"),
            KeySource::KeyFile(self.path("vault.key")),
        )
        .unwrap();
        let record = vault.get(NAME).unwrap().expect("no record after login");
        record.refresh_token.expect("no refresh token stored")
    }

    /// `login op --mode paste`: the URL from stdout's first line goes through the harness's
    /// browser; the Location it ends on is pasted into stdin.
    fn login_paste(&self, rt: &tokio::runtime::Runtime) {
        let mut cmd = self.cmd(&["login", NAME, "--mode", "paste"]);
        cmd.stdin(Stdio::piped());
        let mut login = Running::spawn(cmd);
        let url = login.stdout_line(STEP_TIMEOUT);
        assert!(
            url.starts_with(&format!("{}/auth?", provider().issuer)),
            "first stdout line is the authorization URL: {url}"
        );
        assert!(
            url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"),
            "default loopback redirect on a free port: {url}"
        );
        let location = bounded(rt, "browser", browse_authorization(&url)).unwrap();
        assert!(location.contains("code="), "login failed: {location}");
        let mut stdin = login.child.stdin.take().unwrap();
        writeln!(stdin, "{location}").unwrap();
        drop(stdin);
        let out = login.finish(STEP_TIMEOUT);
        assert!(out.ok(), "paste login failed: {}", out.stderr);
    }
}

/// A child whose stdout and stderr are read line by line by two threads, so the test can
/// wait for a line with a bound and still get the whole output at the end.
struct Running {
    child: Child,
    stdout: Pipe,
    stderr: Pipe,
}

/// One pipe of a [`Running`] child: its lines as they come, all of it when it closes.
struct Pipe {
    lines: mpsc::Receiver<String>,
    all: JoinHandle<String>,
}

impl Pipe {
    fn read(pipe: impl Read + Send + 'static) -> Pipe {
        let (tx, lines) = mpsc::channel();
        let all = std::thread::spawn(move || {
            // Byte-exact: a last line without '\n' stays without one.
            let mut reader = BufReader::new(pipe);
            let mut all = Vec::new();
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                all.extend_from_slice(&line);
                let text = String::from_utf8_lossy(&line);
                let _ = tx.send(text.trim_end_matches(['\n', '\r']).to_owned());
            }
            String::from_utf8_lossy(&all).into_owned()
        });
        Pipe { lines, all }
    }

    /// The first line (skipping others) that starts with `prefix`, within `timeout`.
    fn line_starting(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.line(&format!("{prefix:?}"), left);
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// The next line, or a panic naming `what` after `timeout`.
    fn line(&self, what: &str, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no {what} line within {timeout:?}: {e}"))
    }
}

/// What a finished child left.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn ok(&self) -> bool {
        self.status.success()
    }

    fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl Running {
    fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd.spawn().unwrap();
        let stdout = Pipe::read(child.stdout.take().unwrap());
        let stderr = Pipe::read(child.stderr.take().unwrap());
        Running {
            child,
            stdout,
            stderr,
        }
    }

    fn stdout_line(&self, timeout: Duration) -> String {
        self.stdout.line("stdout", timeout)
    }

    /// Waits for the exit (killing the child after `timeout`) and collects the output.
    fn finish(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr.all.join().unwrap_or_default();
                panic!("timed out after {timeout:?}; stderr: {stderr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Finished {
            status,
            stdout: self.stdout.all.join().unwrap(),
            stderr: self.stderr.all.join().unwrap(),
        }
    }
}

/// The discovery document of the shared server.
fn discovery() -> serde_json::Value {
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(STEP_TIMEOUT)
        .build()
        .unwrap();
    http.get(provider().discovery_url())
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// A raw refresh_token grant for the public client; returns the status and the JSON body.
fn raw_refresh(refresh_token: &RefreshToken) -> (u16, serde_json::Value) {
    let endpoint = discovery()["token_endpoint"].as_str().unwrap().to_owned();
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(STEP_TIMEOUT)
        .build()
        .unwrap();
    let resp = http
        .post(endpoint)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.secret()),
            ("client_id", PUBLIC_CLIENT_ID),
        ])
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or_default())
}

/// Asserts the server refuses `refresh_token` with 400 `invalid_grant` (REF-3, REV-1).
fn assert_refused(refresh_token: &RefreshToken, why: &str) {
    let (status, body) = raw_refresh(refresh_token);
    assert_eq!(status, 400, "{why}: {body}");
    assert_eq!(body["error"], "invalid_grant", "{why}: {body}");
}

#[test]
fn interop_cli_paste_login_token_status_export_refresh_logout() {
    let op = provider();
    let rt = runtime();
    let env = Env::new(&op.issuer, Client::Public);
    env.login_paste(&rt);
    let t1 = env.token();
    // A second `token` gives the same still-valid token (no refresh when not due, EXP-4).
    assert_eq!(env.token(), t1);

    let out = env.run(&["status", "--json"]);
    assert!(out.ok(), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["account"], NAME);
    assert_eq!(v[0]["state"], "valid");
    assert_eq!(v[0]["identity"], login_email().as_str());
    assert_eq!(v[0]["has_refresh_token"], true);
    // The server's access tokens live 60 s (tests/interop/README.md).
    let expires_in = v[0]["expires_in"].as_i64().unwrap();
    assert!((30..=60).contains(&expires_in), "expires_in {expires_in}");
    // offline_access is dropped without prompt=consent: the granted scope is recorded (TOK-6).
    let scopes: Vec<&str> = v[0]["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        scopes.contains(&"openid") && scopes.contains(&"email"),
        "{scopes:?}"
    );

    // --export eval'd by sh gives the same token back.
    let script = format!(
        "eval \"$('{}' --export)\" && printf %s \"$OP_ACCESS_TOKEN\"",
        crate::support::bin().display()
    );
    let out = env.shell(&script);
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(out.stdout, t1);

    // refresh now: a new access token, a rotated refresh token, and the old one is refused.
    let old_refresh = env.vault_refresh_token();
    let out = env.run(&["refresh", NAME]);
    assert!(out.ok(), "refresh failed: {}", out.stderr);
    let t2 = env.token();
    assert_ne!(t1, t2, "refresh must give a new access token");
    let new_refresh = env.vault_refresh_token();
    assert_ne!(
        old_refresh.secret(),
        new_refresh.secret(),
        "oidc-provider rotates refresh tokens; the new one must be saved (REF-3)"
    );
    let out = env.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["refresh_count"], 1);
    assert_eq!(v[0]["last_refresh_ok"], true);
    assert_refused(&old_refresh, "a rotated-away refresh token");

    // logout: local only; the account needs a login again (exit 3).
    let out = env.run(&["logout", NAME]);
    assert!(out.ok(), "{}", out.stderr);
    let out = env.run(&["token", NAME]);
    assert_eq!(out.code(), Some(3), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn interop_cli_browser_login_basic_client() {
    let op = provider();
    let rt = runtime();
    let env = Env::new(&op.issuer, Client::Basic);
    // $BROWSER records the URL; the test plays the browser from it.
    let url_file = env.path("url.txt");
    let script = env.path("browser.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf %s \"$1\" > '{0}.tmp' && mv '{0}.tmp' '{0}'\n",
            url_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = env.cmd(&["login", NAME, "--mode", "browser"]);
    cmd.env("BROWSER", &script);
    let login = Running::spawn(cmd);
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !url_file.exists() {
        assert!(Instant::now() < deadline, "the browser command never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    // HARD-12: the browser got a private page that forwards to the URL.
    let url = crate::support::handed_url(&std::fs::read_to_string(&url_file).unwrap());
    assert!(
        url.contains(&format!("client_id={BASIC_CLIENT_ID}")),
        "{url}"
    );
    assert!(
        !url.contains("secret"),
        "no client secret in the URL (SECRET-2)"
    );
    let location = bounded(&rt, "browser", browse_authorization(&url)).unwrap();
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    // A real GET to authdeck's loopback listener (CB-1): the success page, then the exchange
    // authenticated with client_secret_basic.
    let (status, page) = bounded(&rt, "callback", deliver_callback(&location)).unwrap();
    assert_eq!(status, 200, "{page}");
    let out = login.finish(STEP_TIMEOUT);
    assert!(out.ok(), "browser login failed: {}", out.stderr);
    assert!(!env.token().is_empty());
    let out = env.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["identity"], login_email().as_str());
    // The confidential client can refresh too (basic auth on the refresh grant).
    let out = env.run(&["refresh", NAME]);
    assert!(out.ok(), "refresh with basic auth failed: {}", out.stderr);
}

#[test]
fn interop_cli_device_login() {
    let op = provider();
    let rt = runtime();
    let env = Env::new(&op.issuer, Client::Public);
    let login = Running::spawn(env.cmd(&["login", NAME, "--mode", "device"]));
    // The user code alone on stdout; "Go to URI and enter the code:" and
    // "(or open COMPLETE)" on stderr (DEV-3).
    let user_code = login.stdout_line(STEP_TIMEOUT).trim().to_owned();
    assert!(!user_code.is_empty());
    let go_to = login.stderr.line_starting("Go to ", STEP_TIMEOUT);
    let uri = go_to
        .strip_prefix("Go to ")
        .and_then(|rest| rest.strip_suffix(" and enter the code:"))
        .unwrap_or_else(|| panic!("unexpected stderr line: {go_to}"))
        .to_owned();
    assert_eq!(uri, format!("{}/device", op.issuer));
    let or_open = login.stderr.line("stderr", STEP_TIMEOUT);
    assert!(
        or_open.starts_with(&format!("(or open {uri}?user_code=")),
        "{or_open}"
    );
    // Typing the printed code at the printed URI is what a user would do.
    bounded(
        &rt,
        "device approval",
        approve_device_with_code(&uri, &user_code),
    )
    .unwrap();
    let out = login.finish(DEVICE_TIMEOUT);
    assert!(out.ok(), "device login failed: {}", out.stderr);
    assert!(!env.token().is_empty());
    let out = env.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["identity"], login_email().as_str());
    assert_eq!(v[0]["has_refresh_token"], true);
}

#[test]
fn interop_cli_revoke_then_refresh_refused() {
    let op = provider();
    let rt = runtime();
    let env = Env::new(&op.issuer, Client::Public);
    env.login_paste(&rt);
    let refresh_token = env.vault_refresh_token();
    let out = env.run(&["revoke", NAME]);
    assert!(out.ok(), "revoke failed: {}", out.stderr);
    // At the provider (RFC 7009): the refresh token is refused afterwards...
    assert_refused(&refresh_token, "a revoked refresh token");
    // ...and locally: the account needs a login.
    let out = env.run(&["token", NAME]);
    assert_eq!(out.code(), Some(3), "{}", out.stderr);
}

#[test]
fn interop_cli_request_and_exec() {
    let op = provider();
    let rt = runtime();
    let userinfo = discovery()["userinfo_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(userinfo, op.url("/me"));
    let env = Env::new(&op.issuer, Client::Public);
    env.login_paste(&rt);

    let out = env.run(&["request", NAME, &userinfo]);
    assert!(out.ok(), "request failed: {}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["sub"], DEFAULT_LOGIN);
    assert_eq!(v["email"], login_email().as_str());

    // The exit code reflects the HTTP status: a 404 is an error (1), named on stderr.
    let out = env.run(&["request", NAME, &op.url("/no-such-endpoint")]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("HTTP 404"), "{}", out.stderr);

    let token = env.token();
    let out = env.run(&[
        "exec",
        NAME,
        "--",
        "sh",
        "-c",
        "printf %s \"$OP_ACCESS_TOKEN\"; exit 5",
    ]);
    assert_eq!(out.code(), Some(5), "{}", out.stderr);
    assert_eq!(out.stdout, token);
}

/// The real server's redirect, delivered by an HTTP client, reaches the library's
/// loopback listener (CB-1, CB-2), with RFC 9207 `iss` checked (AUTHZ-4), and the code
/// it hands over is exchanged (TOK-1, PKCE-3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_callback_listener_receives_code() {
    let op = tokio::task::spawn_blocking(provider).await.unwrap();
    let engine = OAuthClient::with_settings(ClientSettings {
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        system_proxy: false,
        ..ClientSettings::default()
    })
    .unwrap();
    let meta = tokio::time::timeout(STEP_TIMEOUT, engine.discover(&op.issuer))
        .await
        .unwrap()
        .unwrap();
    let mut cfg = ClientConfig {
        client_id: PUBLIC_CLIENT_ID.to_owned(),
        client_auth: ClientAuth::None,
        scopes: vec!["openid".into(), "email".into()],
        ..ClientConfig::default()
    };
    cfg.fill_from(&meta);

    let listener = CallbackListener::bind(
        &"http://127.0.0.1:0/callback".parse().unwrap(),
        Default::default(),
    )
    .await
    .unwrap();
    let redirect = listener.redirect_uri();
    assert_ne!(
        redirect.port(),
        Some(0),
        "CB-2: the bound port is in the URI"
    );
    let req = AuthorizationRequest::new(&cfg, redirect.as_str()).unwrap();
    let pending = listener
        .register(req.state.clone(), Some(op.issuer.clone()))
        .unwrap();
    pending.set_require_iss(true);
    // A second login on the same listener keeps it open after the first one finishes
    // (CB-3 closes it with its last login), so a repeat hit can be checked (CB-10).
    let other = listener
        .register(authdeck::secret::CsrfState::new("another-login"), None)
        .unwrap();

    let location = tokio::time::timeout(STEP_TIMEOUT, browse_authorization(req.url.as_str()))
        .await
        .unwrap()
        .unwrap();
    assert!(location.starts_with(redirect.as_str()), "{location}");
    let (status, page) = tokio::time::timeout(STEP_TIMEOUT, deliver_callback(&location))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200, "the success page: {page}");
    let result = tokio::time::timeout(STEP_TIMEOUT, pending.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.iss.as_deref(), Some(op.issuer.as_str()));
    assert!(
        !page.contains(result.code.secret()),
        "the code never reaches the page"
    );
    // A second hit for the finished login is refused (CB-10).
    let (again, _) = tokio::time::timeout(STEP_TIMEOUT, deliver_callback(&location))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, 400);
    drop(other);

    let tokens = tokio::time::timeout(
        STEP_TIMEOUT,
        engine.exchange_code(&cfg, &result.code, req.verifier, &req.redirect_uri),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!tokens.access_token.is_empty());
    let claims = tokens.claims.expect("id_token claims");
    assert_eq!(claims.email.as_deref(), Some(login_email().as_str()));
}

/// MACH-1 and MACH-2 at the real oidc-provider: a machine account with a secret (Basic) and
/// one with `private_key_jwt` (ES256, its key made by the server at start) each fetch a token
/// with the client credentials grant, the second call is served from the vault, and `status`
/// shows both as machine accounts.
#[test]
fn mach_1_mach_2_client_credentials_at_oidc_provider() {
    use std::os::unix::fs::PermissionsExt;
    let op = provider();
    assert!(
        op.machine_key.contains("BEGIN PRIVATE KEY"),
        "the interop server hands out its machine client's key"
    );
    let env = Env::new(&op.issuer, Client::Public);
    let key = env.path("machine.pem");
    std::fs::write(&key, &op.machine_key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let providers = env.path("config/providers");
    std::fs::write(
        providers.join("mbasic.toml"),
        format!(
            "extends = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{MACHINE_BASIC_CLIENT_ID}\"\n\
             client_auth = \"basic\"\nclient_secret_env = \"MACHINE_SECRET\"\n\
             grant = \"client_credentials\"\nscopes = [\"api\"]\n",
            op.issuer
        ),
    )
    .unwrap();
    std::fs::write(
        providers.join("mjwt.toml"),
        format!(
            "extends = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{MACHINE_JWT_CLIENT_ID}\"\n\
             client_auth = \"private_key_jwt\"\nclient_key_file = \"{}\"\n\
             client_key_id = \"machine-1\"\ngrant = \"client_credentials\"\nscopes = [\"api\"]\n",
            op.issuer,
            key.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut cmd = env.cmd(args);
        cmd.env("MACHINE_SECRET", MACHINE_BASIC_SECRET);
        Running::spawn(cmd).finish(STEP_TIMEOUT)
    };
    let mut tokens = Vec::new();
    for name in ["mbasic", "mjwt"] {
        let first = run(&["token", name]);
        assert!(
            first.ok(),
            "{name}: {}\nserver: {}",
            first.stderr,
            op.stderr()
        );
        let token = first.stdout.trim().to_owned();
        assert!(!token.is_empty(), "{name}: a token");
        let again = run(&["token", name]);
        assert!(again.ok(), "{name}: {}", again.stderr);
        assert_eq!(again.stdout.trim(), token, "{name}: served from the vault");
        tokens.push(token);
    }
    assert_ne!(tokens[0], tokens[1], "two clients, two tokens");
    let status = run(&["status"]);
    assert!(status.ok(), "{}", status.stderr);
    assert_eq!(
        status.stdout.matches("(machine)").count(),
        2,
        "{}",
        status.stdout
    );
}
