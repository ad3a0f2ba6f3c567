//! Integration test: `authdeck proxy` (the real binary) reloads its config and secrets on
//! SIGHUP without downtime (PROXY-14) and refuses a broken config, keeping the running one
//! (PROXY-15). An in-test upstream records the `Authorization` header of every token request,
//! so the test sees which secret each request was sent with.

use crate::support;
use authdeck::oauth::testutil::Reply as Up;
use base64::Engine;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:8765/callback";
const TOKEN_JSON: &str = r#"{"access_token":"at-reload","token_type":"Bearer","expires_in":60}"#;

/// The secret each recorded token request carried (decoded from HTTP Basic).
type Seen = Arc<Mutex<Vec<String>>>;

/// A token endpoint (the suite's shared stub on its own runtime); a request whose code is
/// `SLOW` waits 1.5 s.
fn start_upstream() -> (String, Seen, support::BackgroundStub) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let stub = support::BackgroundStub::serve(move |req| {
        let secret = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Basic ").map(str::to_owned))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .and_then(|auth| auth.split_once(':').map(|(_, s)| s.to_owned()));
        log.lock().unwrap().push(secret.unwrap_or_default());
        let reply = Up::json(200, TOKEN_JSON);
        if req.body.contains("code=SLOW") {
            reply.delay(Duration::from_millis(1500))
        } else {
            reply
        }
    });
    (stub.url("/token"), seen, stub)
}

fn write_config(path: &Path, token_endpoint: &str) {
    std::fs::write(
        path,
        format!(
            r#"rate_limit_per_minute = 0
[clients.app]
token_endpoint = "{token_endpoint}"
client_id = "app"
client_secret_file = "secret"
redirect_uris = ["{REDIRECT}"]
"#
        ),
    )
    .unwrap();
}

/// The proxy child; killed on drop.
pub(crate) struct Running {
    child: Child,
    lines: Receiver<String>,
    pub(crate) addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for a stderr line containing `needle`; lines before it are skipped.
    pub(crate) fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line containing {needle:?} within 15 s"),
            }
        }
    }
}

pub(crate) fn start_proxy(config: &Path) -> Running {
    let mut child = Command::new(support::bin())
        .args(["proxy", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("AUTHDECK_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut running = Running {
        child,
        lines: rx,
        addr: String::new(),
    };
    let line = running.wait_for("listening on http://");
    running.addr = line
        .split("listening on http://")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    running
}

/// One HTTP/1.1 request on a fresh connection; returns the status code.
pub(crate) fn http(addr: &str, method: &str, path: &str, body: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {reply:?}"))
}

fn exchange(addr: &str, code: &str) -> u16 {
    let body =
        format!(r#"{{"code":"{code}","code_verifier":"{VERIFIER}","redirect_uri":"{REDIRECT}"}}"#);
    http(addr, "POST", "/api/auth/exchange", &body)
}

#[test]
fn sighup_rotates_the_secret_without_downtime_and_refuses_a_broken_config_proxy_14_15() {
    let (token_endpoint, seen, _rt) = start_upstream();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.toml");
    let secret = dir.path().join("secret");
    write_config(&config, &token_endpoint);
    std::fs::write(&secret, "secret-one\n").unwrap();
    let proxy = start_proxy(&config);

    // /healthz is polled every 10 ms for the whole test: every answer must be 200.
    let stop = Arc::new(AtomicBool::new(false));
    let (probes, failures) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let poller = {
        let (stop, probes, failures, addr) = (
            Arc::clone(&stop),
            Arc::clone(&probes),
            Arc::clone(&failures),
            proxy.addr.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let status = http(&addr, "GET", "/healthz", "");
                probes.fetch_add(1, Ordering::Relaxed);
                if status != 200 {
                    failures.lock().unwrap().push(status);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    assert_eq!(exchange(&proxy.addr, "c1"), 200);

    // A slow request is in flight while the secret is rotated.
    let slow = {
        let addr = proxy.addr.clone();
        std::thread::spawn(move || exchange(&addr, "SLOW"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(&secret, "secret-two\n").unwrap();
    proxy.signal("-HUP");
    proxy.wait_for("reloaded: 1 client(s)");
    assert_eq!(exchange(&proxy.addr, "c2"), 200);
    assert_eq!(slow.join().unwrap(), 200, "the in-flight request finished");

    // A broken file is refused with its location; the running config (secret two) stays.
    std::fs::write(&config, "rate_limit_per_minute = \"lots\"\n").unwrap();
    proxy.signal("-HUP");
    let refused = proxy.wait_for("reload refused");
    assert!(refused.contains("proxy.toml:1:"), "{refused}");
    assert_eq!(exchange(&proxy.addr, "c3"), 200);

    // A valid file whose secret is missing is refused as a whole too.
    write_config(&config, &token_endpoint);
    std::fs::remove_file(&secret).unwrap();
    proxy.signal("-HUP");
    let refused = proxy.wait_for("reload refused");
    assert!(refused.contains("client_secret_file"), "{refused}");
    assert_eq!(exchange(&proxy.addr, "c4"), 200);

    // Fixed again: the third secret applies.
    std::fs::write(&secret, "secret-three").unwrap();
    proxy.signal("-HUP");
    proxy.wait_for("reloaded: 1 client(s)");
    assert_eq!(exchange(&proxy.addr, "c5"), 200);

    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "secret-one",
            "secret-one",
            "secret-two",
            "secret-two",
            "secret-two",
            "secret-three"
        ]
    );
    assert!(
        failures.lock().unwrap().is_empty(),
        "{:?}",
        failures.lock().unwrap()
    );
    assert!(probes.load(Ordering::Relaxed) >= 20, "the poller ran");

    // SIGTERM still drains and exits 0 after reloads.
    proxy.signal("-TERM");
    let mut proxy = proxy;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = proxy.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
