//! Crash campaign (VAULT-4): the authdeck binary is SIGKILLed at random moments while it writes
//! the vault, in the four commands that write it: a paste-mode `login` (against the devserver),
//! `refresh`, `vault passwd` (to a new key file) and `logout`. After every kill the vault must
//! open with the right key (the old one, or for `passwd` the new one: exactly one of them), its
//! records must decode and be consistent, and its generation must not be below the highest one
//! already seen on disk (no committed save is lost). The backup must open with a key the vault
//! had or was offered, at a generation not above the vault's.
//!
//! `cargo test` runs 20 kills with the debug binary. `scripts/crash-campaign.sh` runs 1,000
//! against the release binary (`CRASH_KILLS`, `AUTHDECK_BIN`); figures in docs/crash-campaign.md.
//! `CRASH_SEED` replays a run; `CRASH_REPORT=FILE` writes the summary there too.

use crate::support::{authorize_location, stderr};
use authdeck::devserver::{DevServer, DevServerConfig};
use authdeck::vault::{KeySource, Snapshot, StoredState, Vault};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ACCOUNTS: [&str; 2] = ["alpha", "beta"];
/// Longest any one command may take before the campaign gives up on it.
const OP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Login,
    Refresh,
    Passwd,
    Logout,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::Refresh => "refresh",
            Op::Passwd => "vault passwd",
            Op::Logout => "logout",
        }
    }
}

/// xorshift64*: reproducible from `CRASH_SEED`, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Default)]
struct Tally {
    kills: BTreeMap<Op, u64>,
    completed: BTreeMap<Op, u64>,
    failed: BTreeMap<Op, u64>,
    corrupt: u64,
    lost: u64,
    /// Checks that found the backup sealed under a new key the vault never switched to: a
    /// `passwd` killed after it re-sealed the backup (HARD-7) and before the rename.
    backup_under_new_key: u64,
    /// Checks after which the vault warned of a rollback (HARD-8): a save killed after the
    /// backup was written and before the rename leaves both at the same generation.
    rollback_warnings: u64,
    problems: Vec<String>,
}

struct Campaign {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The key the vault is under now.
    key: PathBuf,
    /// Every key the vault has been under (the backup may be under an earlier one).
    keys: Vec<PathBuf>,
    /// Every new key file a `passwd` was given, adopted or not.
    offered: Vec<PathBuf>,
    next_key: u64,
    /// The highest generation seen on disk: committed, must never go back.
    committed: u64,
    rng: Rng,
    /// The longest recent run of each command, from the moment it starts writing: kills are
    /// spread over 0..=1.2 times this.
    window: BTreeMap<Op, Duration>,
    tally: Tally,
}

impl Campaign {
    fn new(issuer: &str, bin: PathBuf, seed: u64) -> Campaign {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("config/providers");
        std::fs::create_dir_all(&providers).unwrap();
        for name in ACCOUNTS {
            std::fs::write(
                providers.join(format!("{name}.toml")),
                format!(
                    "extends = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"demo-public\"\n\
                     scopes = [\"openid\", \"email\", \"offline_access\"]\n"
                ),
            )
            .unwrap();
        }
        let key = dir.path().join("key-0");
        authdeck::vault::generate_key_file(&key).unwrap();
        Campaign {
            bin,
            keys: vec![key.clone()],
            offered: Vec::new(),
            key,
            dir,
            next_key: 1,
            committed: 0,
            rng: Rng(seed | 1),
            window: BTreeMap::new(),
            tally: Tally::default(),
        }
    }

    fn vault_path(&self) -> PathBuf {
        self.dir.path().join("vault.bin")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AUTHDECK_CONFIG_DIR", self.dir.path().join("config"))
            .env("AUTHDECK_VAULT", self.vault_path())
            .env("AUTHDECK_KEY_FILE", &self.key)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    fn open(&self, key: &Path) -> Option<Snapshot> {
        let vault = Vault::open(self.vault_path(), KeySource::KeyFile(key.to_path_buf())).ok()?;
        vault.snapshot().ok()
    }

    /// The accounts holding tokens now (read with the current key).
    fn logged_in(&self) -> Vec<&'static str> {
        let Some(snap) = self.open(&self.key) else {
            return Vec::new();
        };
        ACCOUNTS
            .into_iter()
            .filter(|a| {
                snap.records
                    .get(*a)
                    .is_some_and(|r| r.state == StoredState::Valid && r.refresh_token.is_some())
            })
            .collect()
    }

    fn pick(&mut self) -> (Op, &'static str) {
        let logged_in = self.logged_in();
        let account = ACCOUNTS[self.rng.below(2) as usize];
        let op = match self.rng.below(4) {
            _ if logged_in.is_empty() => Op::Login,
            0 => Op::Login,
            1 => Op::Passwd,
            2 => Op::Logout,
            _ => Op::Refresh,
        };
        let account = match op {
            Op::Refresh | Op::Logout if !logged_in.contains(&account) => logged_in[0],
            _ => account,
        };
        (op, account)
    }

    /// Starts `op`; returns the child once it is about to write (for `login`: once the
    /// redirect has been pasted) and, for `passwd`, the new key file.
    fn start(&mut self, op: Op, account: &str) -> Option<(Child, Option<PathBuf>)> {
        match op {
            Op::Login => {
                let mut child = self
                    .cmd(&["login", account, "--mode", "paste"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut out = BufReader::new(child.stdout.take().unwrap());
                let mut url = String::new();
                if out.read_line(&mut url).is_err() || !url.starts_with("http://127.0.0.1:") {
                    let _ = child.kill();
                    let done = child.wait_with_output().unwrap();
                    self.tally
                        .problems
                        .push(format!("login printed no URL: {}", stderr(&done)));
                    return None;
                }
                let location = authorize_location(url.trim());
                let mut stdin = child.stdin.take().unwrap();
                writeln!(stdin, "{location}").unwrap();
                drop(stdin);
                // Keep stdout drained so a late line cannot block the child.
                std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
                Some((child, None))
            }
            Op::Refresh => Some((self.cmd(&["refresh", account]).spawn().unwrap(), None)),
            Op::Logout => Some((self.cmd(&["logout", account]).spawn().unwrap(), None)),
            Op::Passwd => {
                let new_key = self.dir.path().join(format!("key-{}", self.next_key));
                self.next_key += 1;
                self.offered.push(new_key.clone());
                let new_arg = new_key.to_str().unwrap().to_owned();
                let child = self
                    .cmd(&["vault", "passwd", "--new-key-file", &new_arg])
                    .spawn()
                    .unwrap();
                Some((child, Some(new_key)))
            }
        }
    }

    /// One command, SIGKILLed at a random moment unless it finishes first. Returns whether a
    /// live process was killed.
    fn step(&mut self, op: Op, account: &str, kill: bool) -> bool {
        let Some((mut child, new_key)) = self.start(op, account) else {
            return false;
        };
        let started = Instant::now();
        let window = self
            .window
            .get(&op)
            .copied()
            .unwrap_or(Duration::from_millis(150));
        let max_us = (window.as_micros() as u64).saturating_mul(6) / 5;
        let kill_at = started + Duration::from_micros(self.rng.below(max_us + 1));
        let mut killed = false;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let now = Instant::now();
            if kill && now >= kill_at {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed = true;
                break None;
            }
            assert!(now - started < OP_TIMEOUT, "{} hung", op.name());
            let left = if kill { kill_at - now } else { OP_TIMEOUT };
            std::thread::sleep(left.min(Duration::from_micros(200)));
        };
        let took = started.elapsed();
        match status {
            Some(s) => {
                let entry = self.window.entry(op).or_insert(took);
                // Follow the machine's speed both ways, slowly.
                *entry = (*entry * 7 + took) / 8;
                if s.success() {
                    *self.tally.completed.entry(op).or_default() += 1;
                } else {
                    // A refresh after an earlier kill can find its refresh token already
                    // rotated at the server (invalid_grant): a clean failure, not a vault fault.
                    *self.tally.failed.entry(op).or_default() += 1;
                }
            }
            None => *self.tally.kills.entry(op).or_default() += 1,
        }
        self.check(op, new_key, status.is_some_and(|s| s.success()));
        killed
    }

    /// After each command: exactly one candidate key opens the vault, the records are sound,
    /// nothing committed went back, and the backup opens with a known key.
    fn check(&mut self, op: Op, new_key: Option<PathBuf>, succeeded: bool) {
        let path = self.vault_path();
        if !path.exists() {
            if self.committed > 0 {
                self.tally.lost += 1;
                self.tally
                    .problems
                    .push(format!("after {}: the vault is gone", op.name()));
            }
            return;
        }
        let old = self.open(&self.key);
        let new = new_key.as_deref().and_then(|k| self.open(k));
        let snap = match (old, new) {
            (Some(s), None) => {
                if op == Op::Passwd && succeeded {
                    self.fault("passwd succeeded but the old key still opens".into());
                }
                s
            }
            (None, Some(s)) => {
                let k = new_key.unwrap();
                self.keys.push(k.clone());
                self.key = k;
                s
            }
            (Some(_), Some(_)) => {
                self.fault("both the old and the new key open the vault".into());
                return;
            }
            (None, None) => {
                self.tally.corrupt += 1;
                self.fault(format!(
                    "after {}: the vault opens with neither key",
                    op.name()
                ));
                return;
            }
        };
        if snap.generation < self.committed {
            self.tally.lost += 1;
            self.fault(format!(
                "after {}: generation {} is below the committed {}",
                op.name(),
                snap.generation,
                self.committed
            ));
        }
        self.committed = self.committed.max(snap.generation);
        for (name, r) in &snap.records {
            if r.state == StoredState::Valid && r.access_token.is_none() {
                self.fault(format!("{name}: valid without an access token"));
            }
        }
        if let Ok(vault) = Vault::open(&path, KeySource::KeyFile(self.key.clone()))
            && matches!(vault.rollback(), Ok(Some(_)))
        {
            self.tally.rollback_warnings += 1;
        }
        let bak = path.with_extension("bin.bak");
        if bak.exists() {
            let opens = |k: &PathBuf| {
                Vault::open(&bak, KeySource::KeyFile(k.clone()))
                    .and_then(|v| v.snapshot())
                    .ok()
            };
            let backup = match self.keys.iter().find_map(opens) {
                Some(b) => Some(b),
                None => {
                    let b = self.offered.iter().find_map(opens);
                    if b.is_some() {
                        self.tally.backup_under_new_key += 1;
                    }
                    b
                }
            };
            match backup {
                Some(b) if b.generation > snap.generation => self.fault(format!(
                    "after {}: the backup's generation {} is above the vault's {}",
                    op.name(),
                    b.generation,
                    snap.generation
                )),
                Some(_) => {}
                None => {
                    self.tally.corrupt += 1;
                    self.fault(format!("after {}: the backup opens with no key", op.name()));
                }
            }
        }
    }

    fn fault(&mut self, what: String) {
        eprintln!("crash campaign: {what}");
        self.tally.problems.push(what);
    }
}

fn run_campaign(issuer: &str, kills: u64, bin: PathBuf, seed: u64) -> (Tally, Duration, u64) {
    let mut c = Campaign::new(issuer, bin, seed);
    let started = Instant::now();
    let mut done = 0;
    let mut steps = 0;
    while done < kills {
        steps += 1;
        assert!(steps <= kills * 20 + 100, "too few kills landed: {done}");
        let (op, account) = c.pick();
        // Three of four commands are killed; the rest finish, so the state moves on.
        let kill = c.rng.below(4) != 0;
        if c.step(op, account, kill) {
            done += 1;
        }
    }
    // However few the kills, each command is killed at least once.
    for wanted in [Op::Login, Op::Refresh, Op::Passwd, Op::Logout] {
        let mut tries = 0;
        while !c.tally.kills.contains_key(&wanted) {
            tries += 1;
            assert!(tries <= 200, "no {} could be killed", wanted.name());
            let (op, account) = match (wanted, c.logged_in().first().copied()) {
                (Op::Refresh | Op::Logout, None) => (Op::Login, ACCOUNTS[0]),
                (Op::Refresh | Op::Logout, Some(a)) => (wanted, a),
                _ => (wanted, ACCOUNTS[0]),
            };
            c.step(op, account, true);
        }
    }
    (std::mem::take(&mut c.tally), started.elapsed(), c.committed)
}

fn summary(t: &Tally, took: Duration, generation: u64, seed: u64) -> String {
    let per_op = |m: &BTreeMap<Op, u64>| {
        [Op::Login, Op::Refresh, Op::Passwd, Op::Logout]
            .iter()
            .map(|op| format!("{} {}", op.name(), m.get(op).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "crash campaign: {} kills ({}) in {:.1} s; finished: {}; failed cleanly: {}; \
         corrupt {}, lost {}; backup under a new key not adopted {}, rollback warnings {}; \
         final generation {generation}; seed {seed}",
        t.kills.values().sum::<u64>(),
        per_op(&t.kills),
        took.as_secs_f64(),
        per_op(&t.completed),
        per_op(&t.failed),
        t.corrupt,
        t.lost,
        t.backup_under_new_key,
        t.rollback_warnings,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_campaign_sigkill_during_vault_writes_vault_4() {
    let kills = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let bin = std::env::var_os("AUTHDECK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(crate::support::bin);
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let server = DevServer::start(DevServerConfig::default()).await.unwrap();
    let issuer = server.issuer();
    let (tally, took, generation) =
        tokio::task::spawn_blocking(move || run_campaign(&issuer, kills, bin, seed))
            .await
            .unwrap();
    let line = summary(&tally, took, generation, seed);
    eprintln!("{line}");
    if let Ok(report) = std::env::var("CRASH_REPORT") {
        std::fs::write(report, format!("{line}\n")).unwrap();
    }
    assert_eq!(tally.corrupt, 0, "{line}\n{:#?}", tally.problems);
    assert_eq!(tally.lost, 0, "{line}\n{:#?}", tally.problems);
    assert!(tally.problems.is_empty(), "{line}\n{:#?}", tally.problems);
    assert_eq!(tally.kills.len(), 4, "every command is killed: {line}");
}
