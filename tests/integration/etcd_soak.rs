//! The shared vault's soak (docs/etcd.md, "Soak"): two machines and a CI runner share one
//! rotating account through a real 3-member etcd cluster for a while, with short-lived tokens,
//! and one member is down for the middle third of the run. Not one call may fail and the
//! refresh-token chain must stay unbroken (REF-2 across machines, ETCD-3, ETCD-6).
//!
//! CI runs it for 30 s with 4 s tokens. `scripts/etcd-soak.sh SECONDS [TOKEN_TTL]` runs the long
//! version (a day with 30 s tokens is `scripts/etcd-soak.sh 86400 30`); the figures it prints go
//! in docs/etcd.md.

use crate::etcd::{Machine, key_file, shared_vault};
use crate::etcd_cluster::Cluster;
use crate::support::{stderr, stdout, wait_with_timeout};
use authdeck::devserver::{DevServer, DevServerConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Seconds from the environment, or `default`.
fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// What one caller saw.
#[derive(Default)]
struct Tally {
    calls: u64,
    failures: Vec<String>,
    latencies: Vec<Duration>,
}

/// Calls `args` on `m` every `every` until `stop`; every call must print a token.
fn caller(m: &Machine, args: &[&str], every: Duration, stop: &AtomicBool) -> Tally {
    let mut t = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let out = wait_with_timeout(m.spawn(args), Duration::from_secs(60));
        t.latencies.push(started.elapsed());
        t.calls += 1;
        let printed = stdout(&out);
        if !out.status.success() || printed.trim().is_empty() {
            t.failures.push(format!(
                "{args:?} exit {:?}: {}",
                out.status.code(),
                stderr(&out).trim()
            ));
        }
        std::thread::sleep(every.saturating_sub(started.elapsed()));
    }
    t
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_soak_two_machines_and_a_runner_share_a_rotating_account() {
    let run_for = env_secs("AUTHDECK_SOAK_SECS", 30);
    let ttl = env_secs("AUTHDECK_SOAK_TTL_SECS", 4);
    let mut cluster = Cluster::start();
    let srv = DevServer::start(DevServerConfig {
        rotate_refresh_tokens: true,
        auto_approve_device: true,
        access_token_ttl: ttl,
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    shared_vault(&cluster, "/soak", &srv, &key).await;
    let machines: Vec<Arc<Machine>> = (0..3)
        .map(|i| {
            Arc::new(Machine::new(
                dir.path(),
                i,
                &cluster,
                "/soak",
                &srv.issuer(),
                &key,
            ))
        })
        .collect();
    // The soak checks what a user with the default bounds sees (ETCD-6: 5 s per request), not
    // the 1.5 s the failure tests set to fail fast: with one member killed, a leader election
    // on a loaded CI machine has held a read for longer than 1.5 s.
    for m in &machines {
        let path = m.config_dir().join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("timeout_ms = 1500\n"), "{text}");
        std::fs::write(&path, text.replace("timeout_ms = 1500\n", "")).unwrap();
    }
    let before = srv.stats().refreshes;
    let stop = Arc::new(AtomicBool::new(false));
    // Two laptops/servers asking for the token every 300 ms, a CI runner exporting every second.
    let plans: [(usize, &'static [&'static str], u64); 3] = [
        (0, &["token", "acct"], 300),
        (1, &["token", "acct"], 300),
        (2, &["--export", "acct"], 1000),
    ];
    let callers: Vec<_> = plans
        .iter()
        .map(|&(i, args, every)| {
            let (m, stop) = (machines[i].clone(), stop.clone());
            std::thread::spawn(move || caller(&m, args, Duration::from_millis(every), &stop))
        })
        .collect();

    // One member down for the middle third (ETCD-6: nobody notices).
    let started = Instant::now();
    let third = run_for / 3;
    tokio::time::sleep(third).await;
    cluster.kill(2);
    tokio::time::sleep(third).await;
    cluster.restart(2);
    tokio::time::sleep(run_for.saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    let tallies: Vec<Tally> = callers.into_iter().map(|h| h.join().unwrap()).collect();
    let elapsed = started.elapsed();

    let refreshes = srv.stats().refreshes - before;
    let calls: u64 = tallies.iter().map(|t| t.calls).sum();
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    let mut lat: Vec<Duration> = tallies.iter().flat_map(|t| t.latencies.clone()).collect();
    lat.sort();
    // A token is due `margin` before it expires (EXP-4: half the lifetime for tokens this short),
    // so the most refreshes one chain can need is one per half lifetime, plus the first.
    let most = elapsed.as_secs_f64() / (ttl.as_secs_f64() / 2.0) + 2.0;
    eprintln!(
        "etcd soak: {:.0} s, {}-s tokens, one member down for {} s: {calls} calls, {} failed, \
         {refreshes} refreshes at the server (at most {most:.0} possible), \
         latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        elapsed.as_secs_f64(),
        ttl.as_secs(),
        third.as_secs(),
        failures.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        percentile(&lat, 1.0).as_secs_f64() * 1e3,
    );
    assert!(
        failures.is_empty(),
        "{} failed calls: {failures:?}",
        failures.len()
    );
    assert!(calls >= 3, "the callers ran: {calls}");
    let least = (elapsed.as_secs_f64() / ttl.as_secs_f64()).floor() as u64;
    assert!(
        refreshes >= least.max(1),
        "tokens were kept fresh: {refreshes} refreshes in {elapsed:?} with {ttl:?} tokens"
    );
    assert!(
        (refreshes as f64) <= most,
        "no duplicate refreshes: {refreshes} > {most:.0}"
    );

    // The chain is unbroken: a forced refresh from any machine still works.
    let out = tokio::task::block_in_place(|| {
        wait_with_timeout(
            machines[1].spawn(&["refresh", "acct"]),
            Duration::from_secs(60),
        )
    });
    assert!(
        out.status.success(),
        "the refresh token survived the soak: {}",
        stderr(&out)
    );
}
