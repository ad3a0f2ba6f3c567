//! Side-by-side benchmark of `authdeck proxy` deployments, all in one run (docs/proxy.md):
//!
//! 1. one replica, clients connect directly;
//! 2. HAProxy (`contrib/haproxy/haproxy.cfg`, PROXY v2) in front of three replicas;
//! 3. one replica with `metrics = true`, not scraped;
//! 4. the same with `GET /metrics` scraped every second during the load.
//!
//! Each replica is the real binary (bench profile) as a separate process, logging every
//! access line to a file; the upstream is an instant in-process token endpoint. The load is a
//! closed loop of `PROXY_LB_BENCH_CONNS` keep-alive connections (default 32) for
//! `PROXY_LB_BENCH_SECS` (default 5) after 1 s of warm-up. Run: `cargo bench --bench proxy_lb`
//! (needs haproxy).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

const TOKEN_JSON: &str = r#"{"access_token":"at-bench","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-bench","scope":"openid"}"#;
const REDIRECT: &str = "http://localhost:3100/auth/callback";
const WARMUP: Duration = Duration::from_secs(1);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn instant_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    let mut resp =
                        hyper::Response::new(Full::new(Bytes::from_static(TOKEN_JSON.as_bytes())));
                    resp.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    Ok::<_, Infallible>(resp)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}/token")
}

/// A child process stopped on drop: SIGTERM first, so that nginx's master stops its worker
/// processes (a SIGKILLed master leaves them running); SIGKILL after 5 s.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: kill(2) on our own child's pid, which is not reaped yet.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while matches!(self.0.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts one replica on `port`; waits until it listens.
fn replica(dir: &Path, name: &str, upstream: &str, port: u16, extra: &str) -> Proc {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "rate_limit_per_minute = 0\n{extra}\n[clients.bench]\ntoken_endpoint = \"{upstream}\"\n\
             client_id = \"bench\"\nclient_secret_env = \"BENCH_SECRET\"\nredirect_uris = [\"{REDIRECT}\"]\n"
        ),
    )
    .unwrap();
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_authdeck"))
        .args(["proxy", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("BENCH_SECRET", "bench-secret")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("listening on")
    {
        assert!(Instant::now() < deadline, "replica {name} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(child)
}

fn haproxy(dir: &Path, bind: &str, replicas: &[u16]) -> Proc {
    let cfg = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/haproxy/haproxy.cfg");
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db")
        .arg("-f")
        .arg(cfg)
        .env("AUTHDECK_LB_BIND", bind)
        .env("AUTHDECK_LB_STATS", dir.join("haproxy.sock"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (i, port) in replicas.iter().enumerate() {
        cmd.env(
            format!("AUTHDECK_REPLICA{}", i + 1),
            format!("127.0.0.1:{port}"),
        );
    }
    let child = cmd.spawn().expect("haproxy is not installed");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(bind).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the first health checks pass.
    std::thread::sleep(Duration::from_millis(1500));
    Proc(child)
}

async fn worker(
    addr: String,
    started: Instant,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) -> Vec<u32> {
    let stream = TcpStream::connect(&addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let body = Bytes::from(format!(
        r#"{{"code":"bench-code","code_verifier":"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk","redirect_uri":"{REDIRECT}"}}"#
    ));
    let mut latencies = Vec::with_capacity(50_000);
    while !stop.load(Ordering::Relaxed) {
        let req = hyper::Request::post("/api/auth/exchange")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .unwrap();
        let t0 = Instant::now();
        let ok = match sender.send_request(req).await {
            Ok(resp) => {
                let status = resp.status();
                resp.into_body().collect().await.is_ok() && status == 200
            }
            Err(_) => false,
        };
        if !ok {
            errors.fetch_add(1, Ordering::Relaxed);
            if sender.ready().await.is_err() {
                break;
            }
            continue;
        }
        if t0.duration_since(started) >= WARMUP {
            latencies.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
    }
    latencies
}

struct Stats {
    latencies_us: Vec<u32>,
    errors: u64,
    scrapes: Vec<u32>,
}

/// Closed-loop load on `addr`; with `scrape`, GET `scrape`/metrics every second meanwhile.
async fn run_load(addr: &str, conns: u64, secs: u64, scrape: Option<String>) -> Stats {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(worker(
                addr.to_owned(),
                started,
                stop.clone(),
                errors.clone(),
            ))
        })
        .collect();
    let scraper = scrape.map(|base| {
        let stop = stop.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut took = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let t0 = Instant::now();
                let text = http
                    .get(format!("http://{base}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                assert!(text.contains("authdeck_proxy_requests_total"));
                took.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            took
        })
    });
    tokio::time::sleep(WARMUP + Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.unwrap());
    }
    latencies_us.sort_unstable();
    let scrapes = match scraper {
        Some(s) => s.await.unwrap(),
        None => Vec::new(),
    };
    Stats {
        latencies_us,
        errors: errors.load(Ordering::Relaxed),
        scrapes,
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx]) / 1000.0
}

fn row(name: &str, secs: u64, s: &Stats) {
    let n = s.latencies_us.len();
    let scrape = if s.scrapes.is_empty() {
        "—".to_owned()
    } else {
        let mut v = s.scrapes.clone();
        v.sort_unstable();
        format!("{} scrapes, max {:.1} ms", v.len(), percentile(&v, 1.0))
    };
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {scrape} |",
        n as f64 / secs as f64,
        percentile(&s.latencies_us, 0.50),
        percentile(&s.latencies_us, 0.99),
        percentile(&s.latencies_us, 1.0),
        s.errors
    );
}

fn main() {
    let conns = env_num("PROXY_LB_BENCH_CONNS", 32);
    let secs = env_num("PROXY_LB_BENCH_SECS", 5);
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let upstream = instant_upstream().await;
        let dir = tempfile::tempdir().unwrap();
        println!("authdeck proxy deployments, one run: {conns} keep-alive connections, {secs} s after {} s warm-up, {} cores, loadavg at start {}",
            WARMUP.as_secs(), std::thread::available_parallelism().map_or(0, |n| n.get()), loadavg.trim());
        println!();
        println!("| setup | exchanges/s | p50 ms | p99 ms | max ms | errors | /metrics scrapes |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");

        let port = free_port();
        let direct = replica(dir.path(), "direct", &upstream, port, "");
        let s = run_load(&format!("127.0.0.1:{port}"), conns, secs, None).await;
        row("1 replica, direct", secs, &s);
        drop(direct);

        let ports = [free_port(), free_port(), free_port()];
        let lb_extra = "trusted_proxies = [\"127.0.0.1/32\"]\nproxy_protocol = true";
        let replicas: Vec<Proc> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| replica(dir.path(), &format!("r{i}"), &upstream, *p, lb_extra))
            .collect();
        let bind = format!("127.0.0.1:{}", free_port());
        let lb = haproxy(dir.path(), &bind, &ports);
        let s = run_load(&bind, conns, secs, None).await;
        row("HAProxy + 3 replicas (PROXY v2)", secs, &s);
        drop(lb);
        drop(replicas);

        let port = free_port();
        let metrics = replica(dir.path(), "metrics", &upstream, port, "metrics = true");
        let addr = format!("127.0.0.1:{port}");
        let s = run_load(&addr, conns, secs, None).await;
        row("1 replica, metrics on, not scraped", secs, &s);
        let s = run_load(&addr, conns, secs, Some(addr.clone())).await;
        row("1 replica, metrics on, scraped every 1 s", secs, &s);
        drop(metrics);
    });
}
