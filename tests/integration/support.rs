//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod agent;

use authdeck::devserver::{DevServer, DevServerConfig};
use authdeck::oauth::testutil::{Recorded, Reply, Stub};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the `authdeck` binary built for this test run.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_authdeck"))
}

/// A child's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A child's stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// GETs an authorization URL like a browser, without following the redirect, and returns its
/// `Location` (an authorization server that approves at once, such as the devserver).
pub fn authorize_location(url: &str) -> String {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = client.get(url).send().unwrap();
    assert_eq!(resp.status().as_u16(), 302, "authorize should redirect");
    resp.headers()["location"].to_str().unwrap().to_owned()
}

/// Waits for `child` and collects its output; kills it and panics after `timeout`.
#[track_caller]
pub fn wait_with_timeout(mut child: std::process::Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("timed out; stderr: {}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `login NAME --mode paste` (`cmd` already holds its arguments and environment) like a
/// user on a VPS: reads the URL from stdout's first line, opens it at an authorization server
/// that approves at once, and pastes the redirect back on stdin. Panics unless the login succeeds.
#[track_caller]
pub fn paste_login(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    out.read_line(&mut url).unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "first stdout line: {url}"
    );
    let location = authorize_location(url.trim());
    writeln!(child.stdin.take().unwrap(), "{location}").unwrap();
    let done = wait_with_timeout(child, Duration::from_secs(20));
    assert!(
        done.status.success(),
        "paste login failed: {}",
        stderr(&done)
    );
    done
}

/// The authorization URL behind what a `$BROWSER` command was given: the path of a private
/// page that forwards to it (HARD-12). Panics if the argument itself carries `state`.
pub fn handed_url(browser_arg: &str) -> String {
    assert!(
        !browser_arg.contains("state=") && !browser_arg.contains("nonce="),
        "state or nonce in the browser's argv: {browser_arg}"
    );
    let page = std::fs::read_to_string(browser_arg)
        .unwrap_or_else(|e| panic!("the browser got {browser_arg:?}, not a readable page: {e}"));
    authdeck::app::browser::forwarded_url(&page).expect("the page forwards to a URL")
}

/// Plays the browser for what a `$BROWSER` command was given: opens the page, follows it to
/// the server (which approves at once) and then to the loopback redirect, like a browser would.
pub fn open_like_a_browser(browser_arg: &str) {
    let location = authorize_location(&handed_url(browser_arg));
    let page = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(location)
        .send()
        .unwrap();
    assert_eq!(page.status().as_u16(), 200, "the callback page");
}

/// The suite's one HTTP stub (`authdeck::oauth::testutil::Stub`, answering from a handler) on a
/// runtime of its own, for synchronous tests and tests whose proxy runs as a child process.
/// Stopped when dropped.
pub struct BackgroundStub {
    stub: Option<Stub>,
    rt: Option<tokio::runtime::Runtime>,
}

impl BackgroundStub {
    /// Starts the stub; `handler` answers each request (connections are served concurrently,
    /// the handler on a blocking thread).
    pub fn serve(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> BackgroundStub {
        BackgroundStub::start(Stub::serve(handler))
    }

    /// [`serve`](Self::serve) over HTTPS with a fresh self-signed certificate for 127.0.0.1
    /// ([`ca_pem`](Self::ca_pem)).
    pub fn serve_tls(
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> BackgroundStub {
        BackgroundStub::start(Stub::serve_tls(handler))
    }

    fn start(stub: impl std::future::Future<Output = Stub> + Send) -> BackgroundStub {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // Started from a plain thread: the caller may itself be inside a runtime.
        let stub = std::thread::scope(|s| s.spawn(|| rt.block_on(stub)).join().unwrap());
        BackgroundStub {
            stub: Some(stub),
            rt: Some(rt),
        }
    }

    fn stub(&self) -> &Stub {
        self.stub.as_ref().expect("the stub runs until dropped")
    }

    /// The absolute URL of `path` on the stub.
    pub fn url(&self, path: &str) -> String {
        self.stub().url(path).to_string()
    }

    /// The stub's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.stub().addr.port()
    }

    /// The certificate (PEM) of an HTTPS stub.
    pub fn ca_pem(&self) -> Option<&str> {
        self.stub().ca_pem.as_deref()
    }
}

impl Drop for BackgroundStub {
    fn drop(&mut self) {
        drop(self.stub.take());
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Logs `demo-public` in through the devserver's device grant (auto-approved, or approved by
/// the server's config) with scope `api`; the token response.
pub async fn device_login(srv: &authdeck::devserver::DevServer) -> serde_json::Value {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let dev: serde_json::Value = http
        .post(srv.url("/device_authorization"))
        .form(&[("client_id", "demo-public"), ("scope", "api")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.post(srv.url("/token"))
        .form(&[
            ("client_id", "demo-public"),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", dev["device_code"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// [`device_login`]'s refresh token.
pub async fn device_login_refresh_token(srv: &authdeck::devserver::DevServer) -> String {
    device_login(srv).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The devserver with `config`, on this runtime.
pub async fn devserver(config: DevServerConfig) -> DevServer {
    DevServer::start(config).await.unwrap()
}

/// Runs blocking test code (commands, sockets, sleeps) off the runtime that serves the
/// devserver.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Polls `pred` every 50 ms until it holds; panics with `what` after `within`. Returns how
/// long it took.
pub fn wait_until(what: &str, within: Duration, mut pred: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !pred() {
        assert!(t.elapsed() < within, "timed out after {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t.elapsed()
}

/// Debian's Chromium, for the tests that drive a real browser.
pub fn chromium() -> String {
    for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(path).exists() {
            return path.to_owned();
        }
    }
    panic!("chromium is not installed (apt-get install chromium; .ci/run installs it)");
}
