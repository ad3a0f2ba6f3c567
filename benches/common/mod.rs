//! What the process benchmarks (benches/cli.rs, benches/agent.rs, benches/etcd.rs) share:
//! running a child and reading what it cost from `wait4` (wall time, CPU time, minor page
//! faults, peak RSS), the summary statistics, and logging accounts in at the devserver.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: `AUTHDECK_BENCH_BIN` when set (a plain `cargo build --release`
/// binary, reused across bench runs), else the one `cargo bench` built beside the bench.
pub fn bin() -> PathBuf {
    std::env::var_os("AUTHDECK_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_authdeck")))
}

/// What one child process cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    /// fork + exec + wait, as the caller sees it.
    pub wall: Duration,
    /// User + system CPU time of the child.
    pub cpu: Duration,
    /// Minor page faults of the child.
    pub minflt: i64,
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Runs `cmd` (stdout to /dev/null unless the caller set it), feeding `stdin` when given, and
/// returns its cost. Panics when it fails: a benchmark of a failing command measures nothing.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Cost {
    use std::io::Write;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let t = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).unwrap();
        drop(pipe);
    }
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `ru` is a plain C struct the kernel fills in; zeroed is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child with valid pointers to locals.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t.elapsed();
    assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
    // The child is reaped: `Child` must not wait for it again (dropping it does not).
    drop(child);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed: status {status:#x}"
    );
    Cost {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        minflt: ru.ru_minflt,
    }
}

/// Peak RSS (KiB) of one run of `cmd`, read by GNU time. `wait4`'s `ru_maxrss` cannot tell:
/// Linux starts a child's figure at the RSS of the process that forked it, and a bench process
/// that ran Argon2id holds 70 MiB.
pub fn peak_rss_kib(cmd: &Command, stdin: Option<&[u8]>) -> u64 {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M", "-o"])
        .arg(out.path())
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdout(Stdio::null());
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    if !std::path::Path::new("/usr/bin/time").exists() {
        return 0;
    }
    run(&mut timed, stdin);
    std::fs::read_to_string(out.path())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A series of costs of one command.
#[derive(Debug, Default, Clone)]
pub struct Series {
    pub costs: Vec<Cost>,
    /// Peak RSS of one run, KiB ([`peak_rss_kib`]).
    pub peak_rss_kib: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn quantile<T: Copy + Ord>(mut v: Vec<T>, q: f64) -> T {
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

impl Series {
    pub fn push(&mut self, c: Cost) {
        self.costs.push(c);
    }
    pub fn wall(&self, q: f64) -> f64 {
        ms(quantile(self.costs.iter().map(|c| c.wall).collect(), q))
    }
    pub fn cpu(&self, q: f64) -> f64 {
        ms(quantile(self.costs.iter().map(|c| c.cpu).collect(), q))
    }
    /// Mean CPU time: `getrusage` counts in scheduler ticks on some kernels, so the mean over
    /// many runs is steadier than the median of a coarse figure.
    pub fn cpu_mean(&self) -> f64 {
        ms(self.costs.iter().map(|c| c.cpu).sum::<Duration>()) / self.costs.len() as f64
    }
    pub fn minflt(&self) -> i64 {
        quantile(self.costs.iter().map(|c| c.minflt).collect(), 0.5)
    }
    pub fn maxrss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
    /// One Markdown table row: name, runs, wall median / p90, CPU median / mean, minor
    /// faults, peak RSS.
    pub fn row(&self, name: &str) -> String {
        format!(
            "| {name:<44} | {:>4} | {:>8.3} | {:>7.3} | {:>8.3} | {:>8.3} | {:>6} | {:>6.1} |",
            self.costs.len(),
            self.wall(0.5),
            self.wall(0.9),
            self.cpu(0.5),
            self.cpu_mean(),
            self.minflt(),
            self.maxrss_mib()
        )
    }
}

/// The header of [`Series::row`]'s table.
pub fn header() -> String {
    format!(
        "| {:<44} | runs | wall med | wall p90 | CPU med | CPU mean | minflt | RSS MiB |\n| {} | ---: | -------: | -------: | ------: | -------: | -----: | ------: |",
        "command (ms)",
        "-".repeat(44)
    )
}

/// The load average, to print beside every table (the machine is shared).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// utime + stime of `pid`, in clock ticks (USER_HZ, 100 on Linux).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`), or a count (`Threads:`).
pub fn status_field(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Logs in `n` times through the devserver's device grant (auto-approved), 16 at a time;
/// the refresh tokens.
pub async fn device_logins(server: &authdeck::devserver::DevServer, n: usize) -> Vec<String> {
    use futures::StreamExt;
    let http = reqwest::Client::new();
    let (dev_url, tok_url) = (server.url("/device_authorization"), server.url("/token"));
    futures::stream::iter(0..n)
        .map(|_| {
            let (http, dev_url, tok_url) = (http.clone(), dev_url.clone(), tok_url.clone());
            async move {
                let dev: serde_json::Value = http
                    .post(&dev_url)
                    .form(&[("client_id", "demo-public"), ("scope", "api")])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let code = dev["device_code"].as_str().unwrap().to_string();
                let tok: serde_json::Value = http
                    .post(&tok_url)
                    .form(&[
                        ("client_id", "demo-public"),
                        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                        ("device_code", code.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                tok["refresh_token"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no refresh token: {tok}"))
                    .to_string()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}
