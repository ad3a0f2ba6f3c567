//! Load benchmark for `authdeck proxy`: the real binary, as a separate process, in
//! front of an instant upstream, driven by a keep-alive load generator on loopback.
//!
//! Run with `cargo bench --bench proxy`. Tunables: `PROXY_BENCH_CONNS` (64),
//! `PROXY_BENCH_SECS` (5). The upstream and the load generator share this process; the proxy
//! runs as `authdeck proxy` (built with the bench profile) and logs one access line per
//! request to a file, as it would in production.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
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

/// An upstream that answers every request at once with a fixed token.
async fn instant_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
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
    format!("http://{addr}")
}

/// Reads `VmHWM` / `VmRSS` (kB) of `pid` from /proc.
fn proc_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// User + system CPU time of `pid` in clock ticks (1/100 s on Linux).
fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    // After the command name: state is field 3; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

struct Stats {
    latencies_us: Vec<u32>,
    errors: u64,
}

/// One keep-alive connection sending exchanges back to back until `stop`.
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

async fn run_load(addr: &str, conns: u64, secs: u64) -> Stats {
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
    tokio::time::sleep(WARMUP + Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.unwrap());
    }
    latencies_us.sort_unstable();
    Stats {
        latencies_us,
        errors: errors.load(Ordering::Relaxed),
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx]) / 1000.0
}

fn main() {
    let conns = env_num("PROXY_BENCH_CONNS", 64);
    let secs = env_num("PROXY_BENCH_SECS", 5);
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let upstream = instant_upstream().await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("proxy.toml");
        std::fs::write(
            &config,
            format!(
                "rate_limit_per_minute = 0\n[clients.bench]\ntoken_endpoint = \"{upstream}/token\"\nclient_id = \"bench\"\nclient_secret_env = \"BENCH_SECRET\"\nredirect_uris = [\"{REDIRECT}\"]\n"
            ),
        )
        .unwrap();
        let log_path = dir.path().join("proxy.log");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authdeck"))
            .args(["proxy", "--config"])
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            .env("BENCH_SECRET", "bench-secret")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(rest) = log.split("listening on http://").nth(1) {
                break rest.lines().next().unwrap().trim().to_owned();
            }
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                panic!("the proxy did not start:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let pid = child.id();
        let rss_idle = proc_kb(pid, "VmRSS:").unwrap_or(0);

        let cpu_before = proc_cpu_ticks(pid).unwrap_or(0);
        let stats = run_load(&addr, conns, secs).await;
        let cpu_ticks = proc_cpu_ticks(pid).unwrap_or(0).saturating_sub(cpu_before);

        let hwm = proc_kb(pid, "VmHWM:").unwrap_or(0);
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let exit = child.wait().unwrap();
        let access_lines = std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("access method=POST"))
            .count();

        let n = stats.latencies_us.len();
        let throughput = n as f64 / secs as f64;
        println!("authdeck proxy benchmark: real binary (bench profile) as a separate process");
        println!("conditions: {conns} keep-alive connections, {secs} s measured after {} s warm-up, {} cores, loadavg at start {}", WARMUP.as_secs(), std::thread::available_parallelism().map_or(0, |n| n.get()), loadavg.trim());
        println!();
        println!("| metric                    | value       |");
        println!("|---------------------------|-------------|");
        println!("| exchanges measured        | {n:>11} |");
        println!("| errors (non-200/failed)   | {:>11} |", stats.errors);
        println!("| throughput (exchanges/s)  | {throughput:>11.0} |");
        println!("| latency p50 (ms)          | {:>11.2} |", percentile(&stats.latencies_us, 0.50));
        println!("| latency p90 (ms)          | {:>11.2} |", percentile(&stats.latencies_us, 0.90));
        println!("| latency p99 (ms)          | {:>11.2} |", percentile(&stats.latencies_us, 0.99));
        println!("| latency max (ms)          | {:>11.2} |", percentile(&stats.latencies_us, 1.0));
        // CPU was sampled over warm-up and measurement, so divide by every request served.
        println!(
            "| proxy CPU per exchange (us)| {:>10.0} |",
            cpu_ticks as f64 * 10_000.0 / (access_lines as f64).max(1.0)
        );
        println!("| proxy RSS idle (MiB)      | {:>11.1} |", rss_idle as f64 / 1024.0);
        println!("| proxy peak RSS VmHWM (MiB)| {:>11.1} |", hwm as f64 / 1024.0);
        println!("| access-log lines written  | {access_lines:>11} |");
        println!("| exit after SIGTERM        | {:>11} |", exit.code().map_or("signal".into(), |c| c.to_string()));
        println!();
        println!(
            "target: >= 5000 exchanges/s and p99 <= 20 ms: {}",
            if throughput >= 5000.0 && percentile(&stats.latencies_us, 0.99) <= 20.0 { "MET" } else { "NOT MET" }
        );
    });
}
