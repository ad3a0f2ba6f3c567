//! Integration test: three `authdeck proxy` replicas (the real binary) behind a real HAProxy
//! running `contrib/haproxy/haproxy.cfg` as shipped, and behind a real nginx running
//! `contrib/nginx/authdeck-proxy.conf` (its ports and paths rewritten), on loopback. Under a fixed-rate load one
//! replica gets SIGTERM and is started again; every request must still succeed (HAProxy
//! retries only requests that never reached a replica). Then the replicas are reloaded with a
//! tiny rate limit and the limit is shown to apply per real client address (PROXY-11..13),
//! which HAProxy passes in a PROXY v2 header.
//!
//! The load generator connects from 127.0.0.2 and the rate-limit clients from 127.0.0.3 and
//! 127.0.0.4 (all local on Linux), so HAProxy's own 127.0.0.1 is distinct from every client.
//! Length and rate: `AUTHDECK_LB_SECS` (default 12) and `AUTHDECK_LB_RATE` per second
//! (default 100); `scripts/proxy-lb-soak.sh` runs it longer.

use crate::support;
use authdeck::oauth::testutil::Reply as Up;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:8765/callback";
const TOKEN_JSON: &str = r#"{"access_token":"at-lb","token_type":"Bearer","expires_in":60}"#;
const LOAD_SOURCE: &str = "127.0.0.2";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

/// An instant token endpoint (the suite's shared stub on its own runtime, usable from sync
/// and async tests); stopped when dropped.
pub(crate) struct Upstream {
    pub(crate) url: String,
    _stub: support::BackgroundStub,
}

pub(crate) fn start_upstream() -> Upstream {
    let stub = support::BackgroundStub::serve(|_| Up::json(200, TOKEN_JSON));
    Upstream {
        url: stub.url("/token"),
        _stub: stub,
    }
}

/// The load balancer in front of the replicas, as contrib/ ships it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Balancer {
    /// contrib/haproxy/haproxy.cfg: PROXY v2, active health checks, retries with redispatch.
    Haproxy,
    /// contrib/nginx/authdeck-proxy.conf: X-Forwarded-For, passive health checks.
    Nginx,
}

/// A replica's config: the balancer on 127.0.0.1 is trusted, and passes the client address
/// in a PROXY v2 header (HAProxy) or X-Forwarded-For (nginx), as contrib/ says.
fn write_replica_config(path: &Path, lb: Balancer, token_endpoint: &str, per_minute: u32) {
    std::fs::write(
        path,
        format!(
            r#"rate_limit_per_minute = {per_minute}
trusted_proxies = ["127.0.0.1/32"]
proxy_protocol = {}
[clients.app]
token_endpoint = "{token_endpoint}"
client_id = "app"
client_secret_file = "secret"
redirect_uris = ["{REDIRECT}"]
"#,
            lb == Balancer::Haproxy
        ),
    )
    .unwrap();
}

/// A child process stopped (and reaped) on drop; its output lines are collected.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    /// SIGTERM first, so that nginx's master stops its worker processes (a SIGKILLed master
    /// leaves them running); SIGKILL after 5 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid, which is not reaped yet.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Self { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn wait_for(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.lines().iter().any(|l| l.contains(needle)) {
            assert!(
                Instant::now() < deadline,
                "no line containing {needle:?} within {timeout:?}: {:?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit by itself; panics after `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn start_replica(config: &Path, port: u16) -> Proc {
    let mut cmd = Command::new(support::bin());
    cmd.args(["proxy", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("AUTHDECK_LOG");
    let p = Proc::spawn(cmd);
    p.wait_for("listening on http://", Duration::from_secs(15));
    p
}

fn contrib_nginx() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/nginx/authdeck-proxy.conf")
}

fn contrib_haproxy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/haproxy/haproxy.cfg")
}

/// One line of `show stat` for the backend, as column name → value.
fn haproxy_backend_stats(socket: &Path) -> BTreeMap<String, String> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.write_all(b"show stat\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let row = lines
        .find(|l| l.starts_with("authdeck_replicas,BACKEND,"))
        .unwrap_or_else(|| panic!("no backend row in {text}"));
    header
        .iter()
        .zip(row.split(','))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A client bound to a local source address, so HAProxy sees that address.
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(Some(source.parse().unwrap()))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn exchange(http: &reqwest::Client, lb: &str, n: u64) -> Result<u16, String> {
    let body = serde_json::json!({
        "code": format!("code-{n}"),
        "code_verifier": VERIFIER,
        "redirect_uri": REDIRECT,
    });
    match http
        .post(format!("http://{lb}/api/auth/exchange"))
        .json(&body)
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let _ = resp.bytes().await;
            Ok(status)
        }
        Err(e) => Err(format!("{e}")),
    }
}

fn access_ips(replica: &Proc) -> Vec<String> {
    replica
        .lines()
        .iter()
        .filter(|l| l.contains(" access ") && l.contains("/api/auth/exchange"))
        .filter_map(|l| {
            l.split(' ')
                .find_map(|w| w.strip_prefix("ip="))
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn haproxy_three_replicas_survive_a_restart_and_limit_per_client_ip() {
    three_replicas_behind(Balancer::Haproxy);
}

/// The same with nginx and contrib/nginx/authdeck-proxy.conf (its ports and paths rewritten
/// for the test): the client address comes in X-Forwarded-For (PROXY-12).
#[test]
fn nginx_three_replicas_survive_a_restart_and_limit_per_client_ip() {
    three_replicas_behind(Balancer::Nginx);
}

/// Starts `lb` on `lb_addr` in front of `ports`; its stats socket (HAProxy) or nothing.
fn start_balancer(
    lb: Balancer,
    dir: &Path,
    lb_addr: &str,
    ports: [u16; 3],
) -> (Proc, Option<PathBuf>) {
    match lb {
        Balancer::Haproxy => {
            if Command::new("haproxy").arg("-v").output().is_err() {
                panic!("haproxy is not installed (apt-get install haproxy; .ci/run installs it)");
            }
            let stats = dir.join("haproxy.sock");
            let mut cmd = Command::new("haproxy");
            cmd.arg("-db")
                .arg("-f")
                .arg(contrib_haproxy())
                .env("AUTHDECK_LB_BIND", lb_addr)
                .env("AUTHDECK_LB_STATS", &stats);
            for (i, port) in ports.iter().enumerate() {
                cmd.env(
                    format!("AUTHDECK_REPLICA{}", i + 1),
                    format!("127.0.0.1:{port}"),
                );
            }
            (Proc::spawn(cmd), Some(stats))
        }
        Balancer::Nginx => {
            if Command::new("nginx").arg("-v").output().is_err() {
                panic!("nginx is not installed (apt-get install nginx; .ci/run installs it)");
            }
            let mut conf = std::fs::read_to_string(contrib_nginx()).unwrap();
            for (i, port) in ports.iter().enumerate() {
                conf = conf.replace(
                    &format!("127.0.0.1:310{}", i + 1),
                    &format!("127.0.0.1:{port}"),
                );
            }
            conf = conf
                .replace("listen 127.0.0.1:8080;", &format!("listen {lb_addr};"))
                .replace(
                    "/tmp/authdeck-nginx",
                    &dir.join("nginx").display().to_string(),
                );
            let path = dir.join("nginx.conf");
            std::fs::write(&path, conf).unwrap();
            let mut cmd = Command::new("nginx");
            cmd.arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&path)
                .arg("-g")
                .arg("daemon off;");
            (Proc::spawn(cmd), None)
        }
    }
}

fn three_replicas_behind(lb_kind: Balancer) {
    let secs = env_u64("AUTHDECK_LB_SECS", 12);
    let rate = env_u64("AUTHDECK_LB_RATE", 100);
    let upstream = start_upstream();
    let token_endpoint = upstream.url.clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "lb-secret").unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let configs: Vec<PathBuf> = (1..=3)
        .map(|i| dir.path().join(format!("replica{i}.toml")))
        .collect();
    for config in &configs {
        write_replica_config(config, lb_kind, &token_endpoint, 1_000_000);
    }
    let mut replicas: Vec<Proc> = configs
        .iter()
        .zip(ports)
        .map(|(c, p)| start_replica(c, p))
        .collect();

    let lb_port = free_port();
    let lb = format!("127.0.0.1:{lb_port}");
    let (balancer, stats) = start_balancer(lb_kind, dir.path(), &lb, ports);
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(&lb).is_err() || stats.as_ref().is_some_and(|s| !s.exists())
    {
        assert!(
            Instant::now() < deadline,
            "{lb_kind:?} did not start: {:?}",
            balancer.lines()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Phase 1: fixed-rate load for `secs`; replica 2 is stopped at 1/3 and restarted at 1/2.
    let results: Arc<Mutex<Vec<Result<u16, String>>>> = Arc::default();
    let load = {
        let (results, lb) = (Arc::clone(&results), lb.clone());
        rt.spawn(async move {
            let http = client_from(LOAD_SOURCE);
            let period = Duration::from_micros(1_000_000 / rate);
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut tasks = tokio::task::JoinSet::new();
            for n in 0..secs * rate {
                ticker.tick().await;
                let (http, lb, results) = (http.clone(), lb.clone(), Arc::clone(&results));
                tasks.spawn(async move {
                    let r = exchange(&http, &lb, n).await;
                    results.lock().unwrap().push(r);
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    };
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs) / 3);
    replicas[1].signal("-TERM");
    let status = replicas[1].wait_exit(Duration::from_secs(20));
    assert!(status.success(), "replica 2 exited {status:?}");
    let stopped_at = started.elapsed();
    std::thread::sleep((Duration::from_secs(secs) / 2).saturating_sub(started.elapsed()));
    replicas[1] = start_replica(&configs[1], ports[1]);
    let restarted_at = started.elapsed();
    rt.block_on(load).unwrap();

    let results = results.lock().unwrap().clone();
    let ok = results.iter().filter(|r| matches!(r, Ok(200))).count();
    let failed: Vec<&Result<u16, String>> =
        results.iter().filter(|r| !matches!(r, Ok(200))).collect();
    let backend = stats
        .as_deref()
        .map(haproxy_backend_stats)
        .unwrap_or_default();
    let retries = backend.get("wretr").cloned().unwrap_or_else(|| "-".into());
    let redispatches = backend.get("wredis").cloned().unwrap_or_else(|| "-".into());
    eprintln!(
        "{lb_kind:?} load: {} requests at {rate}/s over {secs} s, {ok} ok, {} failed; replica 2 \
         stopped at {stopped_at:.1?}, restarted at {restarted_at:.1?}; balancer retries={retries} \
         redispatches={redispatches}",
        results.len(),
        failed.len()
    );
    assert_eq!(results.len() as u64, secs * rate);
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    // The load reached every replica, and the restarted one served again.
    for (i, r) in replicas.iter().enumerate() {
        let ips = access_ips(r);
        assert!(!ips.is_empty(), "replica {} served nothing", i + 1);
        // The replicas saw the load generator's address, not the balancer's (PROXY v2 or
        // X-Forwarded-For).
        assert!(
            ips.iter().all(|ip| ip == LOAD_SOURCE),
            "replica {}: {ips:?}",
            i + 1
        );
    }

    // Phase 2: the limit applies per real client. 3 per minute per replica, round robin over
    // 3 replicas: a client gets 9, the next 3 are refused, and another client is unaffected.
    for (config, replica) in configs.iter().zip(&replicas) {
        write_replica_config(config, lb_kind, &token_endpoint, 3);
        replica.signal("-HUP");
    }
    for replica in &replicas {
        replica.wait_for("reloaded: 1 client(s)", Duration::from_secs(15));
    }
    let (a, b) = (client_from("127.0.0.3"), client_from("127.0.0.4"));
    let (first, second) = rt.block_on(async {
        let mut first = Vec::new();
        for n in 0..12 {
            first.push(exchange(&a, &lb, 10_000 + n).await);
        }
        let mut second = Vec::new();
        for n in 0..3 {
            second.push(exchange(&b, &lb, 20_000 + n).await);
        }
        (first, second)
    });
    let count = |v: &[Result<u16, String>], s: u16| v.iter().filter(|r| **r == Ok(s)).count();
    assert_eq!(
        (count(&first, 200), count(&first, 429)),
        (9, 3),
        "{first:?}"
    );
    assert_eq!(count(&second, 200), 3, "{second:?}");

    // Stop everything: replicas drain and exit 0 on SIGTERM.
    drop(balancer);
    for r in &mut replicas {
        r.signal("-TERM");
        assert!(r.wait_exit(Duration::from_secs(20)).success());
    }
    drop(rt);
    drop(upstream);
}

/// The nginx configuration in contrib/ is valid for the installed nginx (`nginx -t`).
#[test]
fn nginx_config_in_contrib_passes_nginx_t() {
    let config =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/nginx/authdeck-proxy.conf");
    let prefix = tempfile::tempdir().unwrap();
    let out = Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(prefix.path())
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap_or_else(|e| panic!("nginx is not installed ({e}); .ci/run installs it"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("syntax is ok"), "{stderr}");
}
