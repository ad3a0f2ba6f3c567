//! Test support: a real, independent authorization server (the npm package `oidc-provider`,
//! see tests/interop/) started per test on a free 127.0.0.1 port, plus a cookie-keeping
//! "browser" that completes its login, consent and device pages over plain HTTP.
//!
//! ```ignore
//! let op = OidcProvider::start()?;                  // installs node deps on first use
//! let location = browse_authorization(&url).await?;  // ends at our redirect_uri
//! approve_device(&verification_uri_complete).await?;
//! ```
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The public client (`token_endpoint_auth_method: none`).
pub const PUBLIC_CLIENT_ID: &str = "authdeck-public";
/// The `client_secret_basic` client.
pub const BASIC_CLIENT_ID: &str = "authdeck-basic";
/// Its secret: contains characters that RFC 6749 §2.3.1 requires to be form-urlencoded
/// before base64 (space, `:`, `+`, `%`, `&`, `=`), so a client that skips it is refused.
pub const BASIC_CLIENT_SECRET: &str = "basic secret:with+reserved%chars&=";
/// The `client_secret_post` client.
pub const POST_CLIENT_ID: &str = "authdeck-post";
/// Its secret, sent as `client_secret` in the form body.
pub const POST_CLIENT_SECRET: &str = "post-secret+with reserved&chars=%";
/// Path of the registered loopback redirect URIs (`http://127.0.0.1/callback`,
/// `http://[::1]/callback`, `http://localhost/callback`); the port may be anything
/// (native clients, RFC 8252 §7.3). More can be registered with
/// [`ProviderOptions::extra_redirect_uris`].
pub const REDIRECT_PATH: &str = "/callback";
/// Login the browser types unless told otherwise; it becomes the `sub` of the tokens.
pub const DEFAULT_LOGIN: &str = "alice";
/// A client-credentials client with a secret (Basic), as tests/interop/server.mjs registers it.
pub const MACHINE_BASIC_CLIENT_ID: &str = "authdeck-machine-basic";
/// Its secret.
pub const MACHINE_BASIC_SECRET: &str = "machine secret:+%&=";
/// A client-credentials client with `private_key_jwt` (ES256, key id `machine-1`); its private
/// key is [`OidcProvider::machine_key`].
pub const MACHINE_JWT_CLIENT_ID: &str = "authdeck-machine-jwt";

/// How long `start` waits for the server's ready line: node loads oidc-provider in about 2 s
/// alone, but beside the rest of `cargo test` on two cores it has taken over 20 s.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many pages or redirects per browser run (a loop guard).
const MAX_BROWSER_STEPS: usize = 25;

/// Marks the error line of oidc-provider's device pages.
const DEVICE_ERROR_MARK: &str = "<p class=\"red\">";

/// How a test client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Public client: `client_id` in the body, no secret.
    None,
    /// `Authorization: Basic base64(urlencode(id):urlencode(secret))`.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// One of the clients registered in the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestClient {
    /// The `client_id`.
    pub id: &'static str,
    /// The client secret, `None` for the public client.
    pub secret: Option<&'static str>,
    /// Its token endpoint authentication method.
    pub auth: ClientAuth,
}

/// The public client.
pub const PUBLIC_CLIENT: TestClient = TestClient {
    id: PUBLIC_CLIENT_ID,
    secret: None,
    auth: ClientAuth::None,
};
/// The `client_secret_basic` client.
pub const BASIC_CLIENT: TestClient = TestClient {
    id: BASIC_CLIENT_ID,
    secret: Some(BASIC_CLIENT_SECRET),
    auth: ClientAuth::Basic,
};
/// The `client_secret_post` client.
pub const POST_CLIENT: TestClient = TestClient {
    id: POST_CLIENT_ID,
    secret: Some(POST_CLIENT_SECRET),
    auth: ClientAuth::Post,
};
/// All three registered clients.
pub const CLIENTS: [TestClient; 3] = [PUBLIC_CLIENT, BASIC_CLIENT, POST_CLIENT];

/// Server settings; `Default` gives the server's own defaults (access token 60 s,
/// refresh token 3600 s, device code 120 s).
#[derive(Debug, Clone, Default)]
pub struct ProviderOptions {
    /// Access token lifetime in seconds.
    pub access_token_ttl: Option<u64>,
    /// Refresh token lifetime in seconds.
    pub refresh_token_ttl: Option<u64>,
    /// Device code lifetime in seconds.
    pub device_code_ttl: Option<u64>,
    /// Redirect URIs registered for every client in addition to the loopback `/callback`
    /// ones (loopback ones match on any port).
    pub extra_redirect_uris: Vec<String>,
}

/// A running `oidc-provider` on 127.0.0.1; killed when dropped.
pub struct OidcProvider {
    /// `http://127.0.0.1:PORT`, exactly as in its discovery document.
    pub issuer: String,
    /// The port it listens on.
    pub port: u16,
    /// The PKCS#8 PEM private key of [`MACHINE_JWT_CLIENT_ID`], made by the server at start.
    pub machine_key: String,
    child: Child,
    /// Held open: the server exits when it closes (also when this test process dies).
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
}

impl OidcProvider {
    /// Starts a server with default options. Blocks until it is ready (well under a second
    /// once installed); on first use runs `npm ci` in tests/interop.
    pub fn start() -> Result<Self, String> {
        Self::start_with(&ProviderOptions::default())
    }

    /// Starts a server with the given options.
    pub fn start_with(options: &ProviderOptions) -> Result<Self, String> {
        ensure_node_modules()?;
        let mut command = Command::new("node");
        command
            .arg("server.mjs")
            .current_dir(interop_dir())
            .env("OIDC_PORT", "0")
            .env("OIDC_REDIRECT_URIS", options.extra_redirect_uris.join(" "))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in [
            ("OIDC_ACCESS_TOKEN_TTL", options.access_token_ttl),
            ("OIDC_REFRESH_TOKEN_TTL", options.refresh_token_ttl),
            ("OIDC_DEVICE_CODE_TTL", options.device_code_ttl),
        ] {
            if let Some(value) = value {
                command.env(name, value.to_string());
            }
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run node: {e}"))?;
        let stdin = child.stdin.take();
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            spawn_stderr_collector(pipe, Arc::clone(&stderr));
        }
        let Some(stdout) = child.stdout.take() else {
            return Err("node's stdout was not captured".to_owned());
        };
        let ready = wait_ready_line(stdout);
        let mut server = OidcProvider {
            issuer: String::new(),
            port: 0,
            machine_key: String::new(),
            child,
            stdin,
            stderr,
        };
        let (issuer, port, machine_key) =
            ready.map_err(|e| format!("{e}; server stderr:\n{}", server.stderr()))?;
        server.issuer = issuer;
        server.port = port;
        server.machine_key = machine_key;
        Ok(server)
    }

    /// One server with default options shared by every test of this process that asks for
    /// it (saves ~0.5 s of node start-up per test). Tests sharing it must not depend on its
    /// state: each login has its own browser, grant and tokens. It is never dropped; it exits
    /// when this process ends and its stdin closes.
    pub fn shared() -> Result<&'static OidcProvider, String> {
        static SHARED: OnceLock<Result<OidcProvider, String>> = OnceLock::new();
        SHARED
            .get_or_init(Self::start)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// `issuer` + `path` (path starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The discovery document URL.
    pub fn discovery_url(&self) -> String {
        self.url("/.well-known/openid-configuration")
    }

    /// Everything the server wrote to stderr so far (warnings, server errors).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Closes the server's stdin (as when this process dies) and waits up to `timeout` for
    /// it to exit by itself.
    pub fn close_stdin_and_wait(mut self, timeout: Duration) -> Result<ExitStatus, String> {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => return Err("server still running after its stdin closed".to_owned()),
                Err(e) => return Err(format!("cannot wait for the server: {e}")),
            }
        }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The loopback redirect URI registered for every client, on `port`.
pub fn redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}{REDIRECT_PATH}")
}

/// tests/interop, where package.json and server.mjs live.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

/// Reads the first stdout line (the ready line) with a bound, then drains the rest in the
/// background so the server never blocks on a full pipe.
fn wait_ready_line(stdout: impl Read + Send + 'static) -> Result<(String, u16, String), String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let first = reader.read_line(&mut line).map(|_| line);
        let _ = tx.send(first);
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    let line = match rx.recv_timeout(READY_TIMEOUT) {
        Ok(Ok(line)) if !line.is_empty() => line,
        Ok(Ok(_)) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err("oidc-provider exited before it was ready".to_owned());
        }
        Ok(Err(e)) => return Err(format!("cannot read oidc-provider's stdout: {e}")),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            return Err(format!("oidc-provider not ready within {READY_TIMEOUT:?}"));
        }
    };
    let ready: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("bad ready line {line:?}: {e}"))?;
    let issuer = ready["issuer"]
        .as_str()
        .ok_or("ready line without issuer")?;
    let port = ready["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    let machine_key = ready["machine_key"].as_str().unwrap_or_default().to_owned();
    Ok((
        issuer.to_owned(),
        port.ok_or("ready line without port")?,
        machine_key,
    ))
}

fn spawn_stderr_collector(pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut text) = into.lock() {
                // Bounded: a chatty server must not eat the test's memory.
                if text.len() < 64 * 1024 {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        }
    });
}

/// Installs tests/interop/node_modules with `npm ci` unless it already holds the locked
/// versions. Once per process (`OnceLock`), and serialised across processes (several test
/// binaries or `cargo test` runs at once) by an exclusive file lock.
fn ensure_node_modules() -> Result<(), String> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED.get_or_init(install_node_modules).clone()
}

fn install_node_modules() -> Result<(), String> {
    check_tool("node")?;
    let dir = interop_dir();
    if node_modules_current(&dir) {
        return Ok(());
    }
    check_tool("npm")?;
    let lock_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oidc-provider-npm-ci.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    // Another process may have installed while we waited for the lock.
    let result = if node_modules_current(&dir) {
        Ok(())
    } else {
        run_npm_ci(&dir)
    };
    let _ = File::unlock(&lock);
    result
}

fn run_npm_ci(dir: &Path) -> Result<(), String> {
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if output.status.success() && node_modules_current(dir) {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!(
        "`npm ci` in {} failed ({}):\n{stderr}",
        dir.display(),
        output.status
    ))
}

/// True when node_modules has every direct dependency at the version package-lock.json pins.
fn node_modules_current(dir: &Path) -> bool {
    let read = |path: PathBuf| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    };
    let Some(lock) = read(dir.join("package-lock.json")) else {
        return false;
    };
    // Every direct dependency (oidc-provider, playwright-core) at its locked version.
    let Some(direct) = lock["packages"][""]["dependencies"].as_object() else {
        return false;
    };
    direct.keys().all(|name| {
        let wanted = &lock["packages"][format!("node_modules/{name}")]["version"];
        let installed = read(dir.join(format!("node_modules/{name}/package.json")));
        wanted.is_string() && installed.is_some_and(|i| i["version"] == *wanted)
    })
}

fn check_tool(tool: &str) -> Result<(), String> {
    match Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err(format!(
            "`{tool}` not found: the oidc-provider interop tests need Node.js >= 20.19 and npm \
             (e.g. `apt-get install nodejs npm`, or run .ci/setup-node.sh)"
        )),
    }
}

/// A cookie-keeping HTTP "browser" for oidc-provider's built-in (dev) interaction pages.
pub struct Browser {
    http: reqwest::Client,
    login: String,
    deny: bool,
}

/// What the browser ended on.
enum Outcome {
    /// A redirect to the stop target, not followed.
    Redirect(String),
    /// A page with no form (the device flow's success page), its body.
    Page(String),
}

impl Browser {
    /// A browser that logs in as [`DEFAULT_LOGIN`] and approves everything.
    pub fn new() -> Result<Self, String> {
        Self::with_login(DEFAULT_LOGIN)
    }

    /// A browser that logs in as `login` (the tokens' `sub`).
    pub fn with_login(login: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the browser's HTTP client: {e}"))?;
        Ok(Browser {
            http,
            login: login.to_owned(),
            deny: false,
        })
    }

    /// Makes this browser refuse: it cancels the login page (authorization code flow) or
    /// presses "Abort" on the device confirmation page, so the client gets `access_denied`.
    pub fn denying(mut self) -> Self {
        self.deny = true;
        self
    }

    /// Opens `url` (an authorization request), signs in, consents, and returns the
    /// `Location` of the redirect back to the request's `redirect_uri` without following it
    /// (its query holds `code`/`state`/`iss` or `error`).
    pub async fn authorize(&self, url: &str) -> Result<String, String> {
        let target = redirect_target(url)?;
        let stop = |location: &str| location.starts_with(&target);
        match self.run(url, None, &stop).await? {
            Outcome::Redirect(location) => Ok(location),
            Outcome::Page(body) => Err(format!(
                "ended on a page instead of {target}: {}",
                excerpt(&body)
            )),
        }
    }

    /// Completes the user side of a device authorization: enters `user_code` at
    /// `verification_uri` (if given; else it is in the complete URI), signs in and consents.
    pub async fn approve_device(
        &self,
        verification_uri: &str,
        user_code: Option<&str>,
    ) -> Result<(), String> {
        let never = |_: &str| false;
        match self.run(verification_uri, user_code, &never).await? {
            Outcome::Page(body) if body.contains("Sign-in Success") => Ok(()),
            Outcome::Page(body) => Err(format!("device flow ended on: {}", page_message(&body))),
            Outcome::Redirect(location) => Err(format!("unexpected redirect to {location}")),
        }
    }

    /// The page/redirect loop: follows redirects, submits each page's form, stops at a
    /// redirect accepted by `stop` or a page without a form.
    async fn run(
        &self,
        start: &str,
        user_code: Option<&str>,
        stop: &dyn Fn(&str) -> bool,
    ) -> Result<Outcome, String> {
        let mut current = url::Url::parse(start).map_err(|e| format!("bad URL {start:?}: {e}"))?;
        let mut request = self.http.get(current.clone());
        for _ in 0..MAX_BROWSER_STEPS {
            let response = request
                .send()
                .await
                .map_err(|e| format!("GET/POST {current}: {e}"))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| format!("{status} without Location from {current}"))?;
                let next = current
                    .join(location)
                    .map_err(|e| format!("bad Location {location:?}: {e}"))?;
                if stop(next.as_str()) {
                    return Ok(Outcome::Redirect(next.to_string()));
                }
                current = next;
                request = self.http.get(current.clone());
                continue;
            }
            let body = response
                .text()
                .await
                .map_err(|e| format!("reading {current}: {e}"))?;
            if !status.is_success() {
                return Err(format!("HTTP {status} at {current}: {}", excerpt(&body)));
            }
            // The device pages re-render their form under a red error line (wrong code,
            // aborted, expired): stop there instead of submitting it again.
            let Some(form) = Form::parse(&body).filter(|_| !body.contains(DEVICE_ERROR_MARK))
            else {
                return Ok(Outcome::Page(body));
            };
            if self.deny && current.path().starts_with("/interaction/") {
                // The dev login/consent pages link "[ Cancel ]" to <interaction>/abort.
                let abort = current.join(&format!("{}/abort", current.path()));
                current = abort.map_err(|e| format!("abort URL: {e}"))?;
                request = self.http.get(current.clone());
                continue;
            }
            let fields = self.fill(form.fields, user_code);
            let action = if form.action.is_empty() {
                current.clone()
            } else {
                current
                    .join(&form.action)
                    .map_err(|e| format!("bad form action {:?}: {e}", form.action))?
            };
            current = action;
            request = self.http.post(current.clone()).form(&fields);
        }
        Err(format!(
            "no end after {MAX_BROWSER_STEPS} pages/redirects (last: {current})"
        ))
    }

    /// Types into the form what a user would: any login and password, the user code, and
    /// "confirm" (or "abort" when denying) on the device confirmation page.
    fn fill(
        &self,
        fields: Vec<(String, String)>,
        user_code: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            let value = match name.as_str() {
                "login" => self.login.clone(),
                "password" => "any password".to_owned(),
                "user_code" if value.is_empty() => user_code.unwrap_or_default().to_owned(),
                "confirm" if self.deny => {
                    out.push(("abort".to_owned(), "yes".to_owned()));
                    continue;
                }
                _ => value,
            };
            out.push((name, value));
        }
        out
    }
}

/// Completes an authorization request in a fresh browser (login [`DEFAULT_LOGIN`], consent)
/// and returns the final redirect `Location` to the request's `redirect_uri`, not followed.
pub async fn browse_authorization(url: &str) -> Result<String, String> {
    Browser::new()?.authorize(url).await
}

/// Approves a device authorization at its `verification_uri_complete` in a fresh browser.
pub async fn approve_device(verification_uri_complete: &str) -> Result<(), String> {
    Browser::new()?
        .approve_device(verification_uri_complete, None)
        .await
}

/// Approves a device authorization by typing `user_code` at `verification_uri`.
pub async fn approve_device_with_code(
    verification_uri: &str,
    user_code: &str,
) -> Result<(), String> {
    Browser::new()?
        .approve_device(verification_uri, Some(user_code))
        .await
}

/// Delivers a callback `Location` (from [`browse_authorization`]) the way the browser would:
/// a GET to the client's loopback listener. Returns the listener's status and body.
pub async fn deliver_callback(location: &str) -> Result<(u16, String), String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = http
        .get(location)
        .send()
        .await
        .map_err(|e| format!("callback GET failed: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| format!("reading the callback page: {e}"))?;
    Ok((status, body))
}

/// The `redirect_uri` of an authorization URL, without query: where the browser stops.
fn redirect_target(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("bad authorization URL: {e}"))?;
    let redirect = parsed
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .ok_or("authorization URL without redirect_uri")?;
    Ok(redirect
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// The red error line of a device page if any, else the start of the page.
fn page_message(body: &str) -> String {
    body.split(DEVICE_ERROR_MARK)
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .map_or_else(|| excerpt(body), str::to_owned)
}

fn excerpt(body: &str) -> String {
    body.chars().take(400).collect()
}

/// The first `<form>` of a page: its action and named inputs, in order. A minimal parser
/// for oidc-provider's own pages, not for arbitrary HTML.
struct Form {
    action: String,
    fields: Vec<(String, String)>,
}

impl Form {
    fn parse(html: &str) -> Option<Form> {
        let lower = html.to_ascii_lowercase();
        let start = lower.find("<form")?;
        let tag_end = start + lower[start..].find('>')?;
        let end = lower[tag_end..]
            .find("</form")
            .map_or(html.len(), |i| tag_end + i);
        let action = attribute(&html[start + 5..tag_end], "action").unwrap_or_default();
        let mut fields = Vec::new();
        let mut rest = tag_end;
        while let Some(i) = lower[rest..end].find("<input") {
            let open = rest + i + 6;
            let close = open + lower[open..end].find('>')?;
            let attrs = &html[open..close];
            if let Some(name) = attribute(attrs, "name") {
                fields.push((name, attribute(attrs, "value").unwrap_or_default()));
            }
            rest = close;
        }
        Some(Form { action, fields })
    }
}

/// The value of attribute `name` in the inside of a tag (`a="1" b='2' c=3 d`), entities
/// decoded. Bare attributes have the empty value.
fn attribute(attrs: &str, name: &str) -> Option<String> {
    let mut rest = attrs.trim_start_matches('/');
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            return None;
        }
        let key_end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = rest[key_end..].trim_start();
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (raw, remaining) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let close = after[1..].find(q).map_or(after.len(), |i| i + 1);
                    (&after[1..close], after.get(close + 1..).unwrap_or_default())
                }
                _ => {
                    let e = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..e], &after[e..])
                }
            };
            value = decode_entities(raw);
            rest = remaining;
        }
        if key.eq_ignore_ascii_case(name) {
            return Some(value);
        }
    }
}

fn decode_entities(text: &str) -> String {
    [
        ("&quot;", "\""),
        ("&#34;", "\""),
        ("&#39;", "'"),
        ("&#x27;", "'"),
        ("&#x2F;", "/"),
        ("&#47;", "/"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(text.to_owned(), |acc, (entity, plain)| {
        acc.replace(entity, plain)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interop_form_parser_reads_action_and_inputs() {
        let html = r#"<html><form autocomplete="off" action="http://127.0.0.1:1/interaction/a&amp;b" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
  <input
    value="AB&#39;C" type=text name=user_code></input>
</form><form action="/other"><input name="x" value="y"></form>"#;
        let form = Form::parse(html).unwrap();
        assert_eq!(form.action, "http://127.0.0.1:1/interaction/a&b");
        assert_eq!(
            form.fields,
            vec![
                ("prompt".to_owned(), "login".to_owned()),
                ("login".to_owned(), String::new()),
                ("user_code".to_owned(), "AB'C".to_owned()),
            ]
        );
        assert!(Form::parse("<p>Sign-in Success</p>").is_none());
    }

    #[test]
    fn interop_redirect_target_drops_the_query() {
        let url =
            "http://op/auth?client_id=x&redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2Fcallback%3Fa%3D1";
        assert_eq!(redirect_target(url).unwrap(), "http://127.0.0.1:5/callback");
        assert!(redirect_target("http://op/auth?client_id=x").is_err());
    }
}
