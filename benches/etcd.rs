//! The shared vault on a local 3-member etcd cluster (docs/etcd.md), against the built binary:
//! 1. `authdeck token NAME` of a valid token, etcd backend beside the file backend, the runs
//!    interleaved so both see the same machine load;
//! 2. a refresh storm: 3 "machines" (config dirs) run `authdeck --export` at once over 100 due
//!    accounts with rotating refresh tokens: exactly 100 refreshes must reach the server.
//!
//! Run: `cargo bench --bench etcd [token] [storm]` (needs /usr/bin/etcd). Figures go in
//! docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../tests/integration/etcd_cluster.rs"]
mod etcd_cluster;

use authdeck::devserver::{DevServer, DevServerConfig};
use authdeck::secret::{AccessToken, RefreshToken};
use authdeck::vault::etcd::EtcdConfig;
use authdeck::vault::{Backend, KeySource, Record, StoredState, VaultError, generate_key_file};
use etcd_cluster::Cluster;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_authdeck");

/// `AUTHDECK_BENCH_BASELINE_BIN=PATH` adds a third series, that binary on the etcd backend,
/// interleaved with the other two: a change is measured against the build before it.
const BASELINE_ENV: &str = "AUTHDECK_BENCH_BASELINE_BIN";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median and 90th percentile of `samples` (sorted in place).
fn stats(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    (at(0.5), at(0.9))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn record(i: usize, issuer: &str, rt: Option<String>, expires_at: i64) -> Record {
    Record {
        provider: "oidc".into(),
        issuer: Some(issuer.into()),
        client_id: Some("demo-public".into()),
        access_token: Some(AccessToken::new(format!("at_{i:0>40}"))),
        refresh_token: rt.map(RefreshToken::new),
        token_type: Some("Bearer".into()),
        obtained_at: Some(now() - 3600),
        expires_at: Some(expires_at),
        state: StoredState::Valid,
        ..Record::default()
    }
}

/// A config dir with `names` as OIDC accounts at `issuer`, and `config.toml` when given.
fn config_dir(
    root: &Path,
    name: &str,
    issuer: &str,
    names: &[String],
    toml: Option<&str>,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("providers")).unwrap();
    for n in names {
        std::fs::write(
            dir.join("providers").join(format!("{n}.toml")),
            format!(
                "extends = \"oidc\"\nissuer = \"{issuer}\"\n\
                 authorization_endpoint = \"{issuer}/authorize\"\n\
                 token_endpoint = \"{issuer}/token\"\nclient_id = \"demo-public\"\n\
                 scopes = [\"api\"]\n"
            ),
        )
        .unwrap();
    }
    if let Some(t) = toml {
        std::fs::write(dir.join("config.toml"), t).unwrap();
    }
    dir
}

fn etcd_toml(cluster: &Cluster, prefix: &str) -> String {
    let eps: Vec<String> = cluster
        .endpoints()
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect();
    format!(
        "[vault]\nbackend = \"etcd\"\nendpoints = [{}]\nprefix = \"{prefix}\"\n\
         lease_ttl_secs = 5\n",
        eps.join(", ")
    )
}

fn etcd_backend(cluster: &Cluster, prefix: &str) -> Backend {
    Backend::Etcd(Box::new(
        EtcdConfig::new(cluster.endpoints(), prefix).unwrap(),
    ))
}

fn authdeck(config: &Path, key: &Path, home: &Path, args: &[&str]) -> Command {
    authdeck_bin(BIN, config, key, home, args)
}

fn authdeck_bin(bin: &str, config: &Path, key: &Path, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AUTHDECK_CONFIG_DIR", config)
        .env("AUTHDECK_KEY_FILE", key)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null());
    c
}

fn timed(mut cmd: Command) -> (Duration, Output) {
    let t = Instant::now();
    let out = cmd.output().unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (took, out)
}

fn bench_token() {
    const RUNS: usize = 200;
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("vault.key");
    generate_key_file(&key).unwrap();
    let names = vec!["acct".to_string()];
    let rec = record(0, "https://issuer.example", None, now() + 86_400);
    let file_vault = dir.path().join("vault.bin");
    let file_cfg = config_dir(
        dir.path(),
        "file",
        "https://issuer.example",
        &names,
        Some(&format!(
            "[vault]\nbackend = \"file\"\npath = \"{}\"\n",
            file_vault.display()
        )),
    );
    let etcd_cfg = config_dir(
        dir.path(),
        "etcd",
        "https://issuer.example",
        &names,
        Some(&etcd_toml(&cluster, "/bench")),
    );
    for backend in [
        Backend::File(file_vault.clone()),
        etcd_backend(&cluster, "/bench"),
    ] {
        let vault = backend.create(KeySource::KeyFile(key.clone())).unwrap();
        vault
            .update(|r| {
                r.insert("acct".into(), rec.clone());
                Ok::<_, VaultError>(())
            })
            .unwrap();
    }
    let baseline = std::env::var(BASELINE_ENV).ok();
    let (mut file, mut etcd, mut base) = (Vec::new(), Vec::new(), Vec::new());
    // Warm-up (page cache, etcd's first requests).
    for _ in 0..5 {
        timed(authdeck(&file_cfg, &key, dir.path(), &["token", "acct"]));
        timed(authdeck(&etcd_cfg, &key, dir.path(), &["token", "acct"]));
    }
    for _ in 0..RUNS {
        let (t, out) = timed(authdeck(&file_cfg, &key, dir.path(), &["token", "acct"]));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("at_{:0>40}", 0)
        );
        file.push(t);
        let (t, out) = timed(authdeck(&etcd_cfg, &key, dir.path(), &["token", "acct"]));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("at_{:0>40}", 0)
        );
        etcd.push(t);
        if let Some(bin) = &baseline {
            let (t, out) = timed(authdeck_bin(
                bin,
                &etcd_cfg,
                &key,
                dir.path(),
                &["token", "acct"],
            ));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                format!("at_{:0>40}", 0)
            );
            base.push(t);
        }
    }
    let (fm, f9) = stats(&mut file);
    let (em, e9) = stats(&mut etcd);
    println!(
        "token, valid token, {RUNS} runs each, interleaved (load {}):",
        load_average()
    );
    println!("  file backend : median {fm:.2} ms, p90 {f9:.2} ms");
    println!("  etcd backend : median {em:.2} ms, p90 {e9:.2} ms (3 local members)");
    println!("  ratio of medians: {:.2}x", em / fm);
    if let Some(bin) = &baseline {
        let (bm, b9) = stats(&mut base);
        println!("  etcd backend, baseline {bin}: median {bm:.2} ms, p90 {b9:.2} ms");
        println!("  baseline ratio of medians (to file): {:.2}x", bm / fm);
    }
}

fn bench_storm() {
    const ACCOUNTS: usize = 100;
    const MACHINES: usize = 3;
    let cluster = Cluster::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt
        .block_on(DevServer::start(DevServerConfig {
            rotate_refresh_tokens: true,
            auto_approve_device: true,
            ..DevServerConfig::default()
        }))
        .unwrap();
    let issuer = srv.issuer();
    let tokens = rt.block_on(common::device_logins(&srv, ACCOUNTS));
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("vault.key");
    generate_key_file(&key).unwrap();
    let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("acct{i:03}")).collect();
    let vault = etcd_backend(&cluster, "/storm")
        .create(KeySource::KeyFile(key.clone()))
        .unwrap();
    vault
        .update(|r| {
            for (i, (n, t)) in names.iter().zip(&tokens).enumerate() {
                r.insert(n.clone(), record(i, &issuer, Some(t.clone()), now() - 10));
            }
            Ok::<_, VaultError>(())
        })
        .unwrap();
    let toml = etcd_toml(&cluster, "/storm");
    let machines: Vec<PathBuf> = (0..MACHINES)
        .map(|m| {
            config_dir(
                dir.path(),
                &format!("machine{m}"),
                &issuer,
                &names,
                Some(&toml),
            )
        })
        .collect();
    let before = srv.stats().refreshes;
    let t = Instant::now();
    let children: Vec<_> = machines
        .iter()
        .map(|m| {
            authdeck(m, &key, dir.path(), &["--export"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let took = t.elapsed();
    let refreshes = srv.stats().refreshes - before;
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let first = String::from_utf8_lossy(&outs[0].stdout).into_owned();
    let same = outs
        .iter()
        .all(|o| String::from_utf8_lossy(&o.stdout) == first);
    println!(
        "refresh storm: {MACHINES} machines x {ACCOUNTS} due accounts (`--export` at once, load {}):",
        load_average()
    );
    println!(
        "  {refreshes} refresh requests at the server, all machines printed the same tokens: {same}; total {:.0} ms",
        ms(took)
    );
    assert_eq!(
        refreshes, ACCOUNTS as u64,
        "exactly one refresh per account"
    );
    assert!(same, "every machine exported the same tokens");
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    if want("token") {
        bench_token();
    }
    if want("storm") {
        bench_storm();
    }
}
