//! Command-line and dashboard benchmarks (issues 5 and 6), run against the built binary:
//! 1. `authdeck --export` of 50 valid accounts (key-file vault), beside `cat` of the vault and
//!    beside benches/minimal_export, the least program that prints the same 50 lines (a key
//!    file read, 50 AES-256-GCM decryptions); the bench builds it with cargo, same profile;
//! 2. `authdeck refresh --all` of 1,000 due accounts against the in-process devserver;
//! 3. the dashboard idle for 10 s with 100 accounts in a pseudo-terminal (CPU %, peak RSS).
//!
//! Run: `cargo bench --bench cli [export] [refresh] [idle]` (no name: all three). Figures go in
//! docs/benchmarks.md. `AUTHDECK_BENCH_BIN` points at another authdeck binary (e.g. a plain
//! `cargo build --release` one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use authdeck::devserver::{DevServer, DevServerConfig};
use authdeck::secret::{AccessToken, RefreshToken};
use authdeck::vault::{KeySource, Record, StoredState, Vault, generate_key_file};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Builds benches/minimal_export (a crate of its own, release profile with fat LTO as
/// authdeck's) into `minimal-export/` under this bench's target directory and returns the binary.
/// Profile overrides in the environment (`CARGO_PROFILE_…`) are not passed on: the baseline is
/// always built as the release profile says.
fn build_minimal_export() -> PathBuf {
    let target_dir = Path::new(env!("CARGO_BIN_EXE_authdeck"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("minimal-export");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/minimal_export/Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--release", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target_dir);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CARGO_PROFILE_") {
            cmd.env_remove(k);
        }
    }
    assert!(
        cmd.status().unwrap().success(),
        "cannot build {}",
        manifest.display()
    );
    target_dir.join("release").join("minimal_export")
}

/// The sealed-token file benches/minimal_export reads: each `export NAME='TOKEN'` line of
/// `export` as name, nonce, length and AES-256-GCM ciphertext under `key`.
fn seal_tokens(export: &str, key: &Path, out: &Path) {
    use aes_gcm::aead::{Aead, KeyInit};
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&std::fs::read(key).unwrap()).unwrap();
    let mut file = Vec::new();
    for line in export.lines() {
        let (name, quoted) = line
            .strip_prefix("export ")
            .and_then(|l| l.split_once('='))
            .unwrap();
        let token = quoted.trim_matches('\'');
        let nonce: [u8; 12] = rand::random();
        let sealed = cipher
            .encrypt(aes_gcm::Nonce::from_slice(&nonce), token.as_bytes())
            .unwrap();
        file.push(u8::try_from(name.len()).unwrap());
        file.extend_from_slice(name.as_bytes());
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&u16::try_from(sealed.len()).unwrap().to_le_bytes());
        file.extend_from_slice(&sealed);
    }
    std::fs::write(out, file).unwrap();
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A config dir, a key file and a vault path inside one temp dir.
struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    key: PathBuf,
    vault: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join("providers")).unwrap();
        let key = dir.path().join("vault.key");
        generate_key_file(&key).unwrap();
        let vault = dir.path().join("vault.bin");
        Vault::create(&vault, KeySource::KeyFile(key.clone())).unwrap();
        Setup {
            _dir: dir,
            config,
            key,
            vault,
        }
    }

    /// Writes `providers/NAME.toml` for an OIDC account whose endpoints are all explicit.
    fn account(&self, name: &str, issuer: &str, client_id: &str) {
        let text = format!(
            "extends = \"oidc\"\nissuer = \"{issuer}\"\n\
             authorization_endpoint = \"{issuer}/authorize\"\n\
             token_endpoint = \"{issuer}/token\"\nclient_id = \"{client_id}\"\n\
             scopes = [\"api\"]\n"
        );
        std::fs::write(
            self.config.join("providers").join(format!("{name}.toml")),
            text,
        )
        .unwrap();
    }

    fn insert(&self, records: Vec<(String, Record)>) {
        let vault = Vault::open(&self.vault, KeySource::KeyFile(self.key.clone())).unwrap();
        vault
            .update(|r| {
                r.extend(records);
                Ok::<_, authdeck::vault::VaultError>(())
            })
            .unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(common::bin());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AUTHDECK_CONFIG_DIR", &self.config)
            .env("AUTHDECK_VAULT", &self.vault)
            .env("AUTHDECK_KEY_FILE", &self.key);
        cmd
    }
}

fn valid_record(i: usize, issuer: &str, expires_at: i64) -> Record {
    Record {
        provider: "oidc".into(),
        issuer: Some(issuer.into()),
        client_id: Some("x".into()),
        access_token: Some(AccessToken::new(format!("at_{i:0>40}"))),
        token_type: Some("Bearer".into()),
        obtained_at: Some(now()),
        expires_at: Some(expires_at),
        state: StoredState::Valid,
        ..Record::default()
    }
}

/// Median and 90th percentile of `samples` (sorted in place).
fn stats(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    (at(0.5), at(0.9))
}

/// Peak RSS (KiB) of every child waited for so far.
fn children_maxrss_kib() -> i64 {
    // SAFETY: `ru` is a plain C struct the kernel fills in; zeroed is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage; RUSAGE_CHILDREN is a constant the kernel knows.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    assert_eq!(rc, 0);
    ru.ru_maxrss
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn bench_export() {
    const ACCOUNTS: usize = 50;
    const RUNS: usize = 200;
    let s = Setup::new();
    let issuer = "https://as.example";
    let exp = now() + 3600;
    for i in 0..ACCOUNTS {
        s.account(&format!("acc{i}"), issuer, "x");
    }
    s.insert(
        (0..ACCOUNTS)
            .map(|i| (format!("acc{i}"), valid_record(i, issuer, exp)))
            .collect(),
    );
    // Check once that it works and prints every token.
    let out = s.command(&["--export"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(lines, ACCOUNTS, "--export printed {lines} lines");
    // Once the files are older than the index's racy window, one run writes the account index
    // (`<vault>.accounts`) that the next runs answer from.
    std::thread::sleep(authdeck::provider::index::RACY + Duration::from_millis(500));
    assert!(s.command(&["--export"]).status().unwrap().success());
    let index = authdeck::app::export::index_path(&s.vault);
    assert!(index.exists(), "no account index at {}", index.display());

    let run = |cmd: &mut Command| {
        let t = Instant::now();
        let st = cmd.stdout(Stdio::null()).status().unwrap();
        assert!(st.success());
        t.elapsed()
    };
    let (mut export, mut cat, mut edited) = (Vec::new(), Vec::new(), Vec::new());
    let first = s.config.join("providers").join("acc0.toml");
    let first_text = std::fs::read(&first).unwrap();
    // The minimal program, fed the same tokens, must print the same lines.
    let minimal_bin = build_minimal_export();
    let sealed = s._dir.path().join("sealed.bin");
    let printed = String::from_utf8(out.stdout.clone()).unwrap();
    seal_tokens(&printed, &s.key, &sealed);
    let mut minimal_cmd = Command::new(&minimal_bin);
    minimal_cmd.arg(&s.key).arg(&sealed).stdout(Stdio::null());
    let minimal_out = Command::new(&minimal_bin)
        .arg(&s.key)
        .arg(&sealed)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&minimal_out.stdout), printed);
    // CPU time and page faults from wait4 (peak RSS from GNU time, after), interleaved.
    let (mut c_export, mut c_minimal, mut c_cat) = (
        common::Series::default(),
        common::Series::default(),
        common::Series::default(),
    );
    for _ in 0..RUNS {
        export.push(run(&mut s.command(&["--export"])));
        let mut c = Command::new("cat");
        c.arg(&s.vault);
        cat.push(run(&mut c));
        c_export.push(common::run(
            s.command(&["--export"]).stdout(Stdio::null()),
            None,
        ));
        c_minimal.push(common::run(&mut minimal_cmd, None));
        c_cat.push(common::run(
            Command::new("cat").arg(&s.vault).stdout(Stdio::null()),
            None,
        ));
    }
    // The first run after an edit: the index is stale, every account file is read and checked
    // (and the index is not rewritten while the edit is younger than the racy window).
    for _ in 0..RUNS {
        std::fs::write(&first, &first_text).unwrap();
        edited.push(run(&mut s.command(&["--export"])));
    }
    let rss = children_maxrss_kib();
    c_export.peak_rss_kib =
        common::peak_rss_kib(s.command(&["--export"]).stdout(Stdio::null()), None);
    c_minimal.peak_rss_kib = common::peak_rss_kib(&minimal_cmd, None);
    if std::env::var_os("CLI_BENCH_KEEP").is_some() {
        // For profiling by hand: keep the fixture and say how to run it.
        let dir = s._dir.path().to_path_buf();
        std::mem::forget(s);
        println!("kept: {}", dir.display());
    }
    let (em, e9) = stats(&mut export);
    let (cm, c9) = stats(&mut cat);
    let (fm, f9) = stats(&mut edited);
    println!(
        "## export ({ACCOUNTS} accounts, {RUNS} runs; load {})",
        load_average()
    );
    println!("| command                     | median ms | p90 ms |");
    println!("| --------------------------- | --------: | -----: |");
    println!("| authdeck --export           | {em:>9.2} | {e9:>6.2} |");
    println!("| … right after an edit       | {fm:>9.2} | {f9:>6.2} |");
    println!("| cat vault.bin               | {cm:>9.2} | {c9:>6.2} |");
    println!(
        "peak RSS of any child so far: {:.1} MB",
        rss as f64 / 1024.0
    );
    println!("\n{}", common::header());
    println!("{}", c_export.row("authdeck --export"));
    println!("{}", c_minimal.row("minimal_export (same 50 lines)"));
    println!("{}", c_cat.row("cat vault.bin"));
    println!(
        "authdeck --export / minimal_export: wall {:.2}×, CPU {:.2}×",
        c_export.wall(0.5) / c_minimal.wall(0.5),
        c_export.cpu_mean() / c_minimal.cpu_mean()
    );
}

fn bench_refresh() {
    const ACCOUNTS: usize = 1000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(DevServer::start(DevServerConfig {
            auto_approve_device: true,
            ..DevServerConfig::default()
        }))
        .unwrap();
    let issuer = server.issuer();
    let t = Instant::now();
    let tokens = rt.block_on(common::device_logins(&server, ACCOUNTS));
    let login_time = t.elapsed();
    let s = Setup::new();
    let due = now() - 10;
    let mut records = Vec::new();
    for (i, rt_token) in tokens.into_iter().enumerate() {
        let name = format!("acc{i:04}");
        s.account(&name, &issuer, "demo-public");
        let mut rec = valid_record(i, &issuer, due);
        rec.client_id = Some("demo-public".into());
        rec.obtained_at = Some(due - 3600);
        rec.refresh_token = Some(RefreshToken::new(rt_token));
        records.push((name, rec));
    }
    s.insert(records);
    let before = server.stats().refreshes;
    let gen_before = Vault::open(&s.vault, KeySource::KeyFile(s.key.clone()))
        .unwrap()
        .generation()
        .unwrap();
    let t = Instant::now();
    let out = s
        .command(&["refresh", "--all"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let wall = t.elapsed();
    let rss = children_maxrss_kib();
    let refreshed = server.stats().refreshes - before;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = stderr
        .lines()
        .filter(|l| l.starts_with("authdeck:"))
        .count();
    if !out.status.success() {
        eprintln!("{}", stderr.lines().take(5).collect::<Vec<_>>().join("\n"));
    }
    // Every record must now hold a fresh, future expiry.
    let vault = Vault::open(&s.vault, KeySource::KeyFile(s.key.clone())).unwrap();
    let saves = vault.generation().unwrap() - gen_before;
    let fresh = vault
        .read()
        .unwrap()
        .values()
        .filter(|r| r.expires_at.is_some_and(|e| e > now()))
        .count();
    println!(
        "## refresh --all ({ACCOUNTS} due accounts; load {}; {ACCOUNTS} device logins took {:.0} ms)",
        load_average(),
        ms(login_time)
    );
    println!(
        "| wall s | peak RSS MB | server refreshes | fresh records | vault saves | errors | exit |"
    );
    println!(
        "| -----: | ----------: | ---------------: | ------------: | ----------: | -----: | ---: |"
    );
    println!(
        "| {:>6.2} | {:>11.1} | {refreshed:>16} | {fresh:>13} | {saves:>11} | {errors:>6} | {:>4} |",
        wall.as_secs_f64(),
        rss as f64 / 1024.0,
        out.status.code().unwrap_or(-1)
    );
    drop(rt);
}

/// utime + stime of `pid` in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn bench_idle() {
    const ACCOUNTS: usize = 100;
    const SECONDS: u64 = 10;
    let s = Setup::new();
    let issuer = "https://as.example";
    let exp = now() + 3600;
    for i in 0..ACCOUNTS {
        s.account(&format!("acc{i:03}"), issuer, "x");
    }
    s.insert(
        (0..ACCOUNTS)
            .map(|i| (format!("acc{i:03}"), valid_record(i, issuer, exp)))
            .collect(),
    );
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(common::bin());
    cmd.env_clear();
    cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.env("TERM", "xterm-256color");
    cmd.env("AUTHDECK_CONFIG_DIR", &s.config);
    cmd.env("AUTHDECK_VAULT", &s.vault);
    cmd.env("AUTHDECK_KEY_FILE", &s.key);
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let pid = child.process_id().unwrap();
    let mut reader = pair.master.try_clone_reader().unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            seen2.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // Wait for the first frame (a screenful of output), then let it settle.
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.load(std::sync::atomic::Ordering::Relaxed) < 2000 {
        assert!(Instant::now() < deadline, "the dashboard drew nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    let tick = 100.0; // USER_HZ on Linux
    let (c0, b0, t0) = (
        cpu_ticks(pid),
        seen.load(std::sync::atomic::Ordering::Relaxed),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(SECONDS));
    let (c1, b1, el) = (
        cpu_ticks(pid),
        seen.load(std::sync::atomic::Ordering::Relaxed),
        t0.elapsed(),
    );
    let hwm = status_kib(pid, "VmHWM:");
    let rss = status_kib(pid, "VmRSS:");
    child.kill().ok();
    child.wait().ok();
    let cpu_s = (c1 - c0) as f64 / tick;
    println!(
        "## dashboard idle ({ACCOUNTS} accounts, {SECONDS} s; load {})",
        load_average()
    );
    println!("| CPU s used | CPU % | bytes drawn | peak RSS MB (VmHWM) | RSS MB |");
    println!("| ---------: | ----: | ----------: | ------------------: | -----: |");
    println!(
        "| {cpu_s:>10.2} | {:>5.2} | {:>11} | {:>19.1} | {:>6.1} |",
        100.0 * cpu_s / el.as_secs_f64(),
        b1 - b0,
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0
    );
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |n: &str| wanted.is_empty() || wanted.iter().any(|w| w == n);
    println!("binary: {}", common::bin().display());
    if want("export") {
        bench_export();
    }
    if want("refresh") {
        bench_refresh();
    }
    if want("idle") {
        bench_idle();
    }
}
