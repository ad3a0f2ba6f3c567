//! The shared vault on a real 3-member etcd cluster (docs/etcd.md): compare-and-swap saves,
//! fenced account locks, one refresher per account across machines (processes of the real
//! binary with their own config dirs), member failures, killed and paused lock holders.

use crate::etcd_cluster::Cluster;
use crate::support::{stderr, stdout, wait_with_timeout};
use authdeck::devserver::{DevServer, DevServerConfig, Endpoint, Fault};
use authdeck::secret::{AccessToken, RefreshToken};
use authdeck::vault::{
    Backend, KdfParams, KeySource, Record, Records, Store, StoredState, VaultError,
    etcd::{EtcdConfig, EtcdStore},
    generate_key_file,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Test settings: short leases and request bounds keep failure cases fast.
fn config(cluster: &Cluster, prefix: &str) -> EtcdConfig {
    let mut c = EtcdConfig::new(cluster.endpoints(), prefix).unwrap();
    c.lease_ttl = Duration::from_secs(2);
    c.timeout = Duration::from_millis(1500);
    c.lock_wait = Duration::from_secs(30);
    c
}

pub(crate) fn key_file(dir: &Path) -> PathBuf {
    let key = dir.join("vault.key");
    generate_key_file(&key).unwrap();
    key
}

fn store(cfg: &EtcdConfig, key: &Path) -> EtcdStore {
    EtcdStore::with_kdf_params(
        cfg.clone(),
        KeySource::KeyFile(key.to_path_buf()),
        KdfParams::DEFAULT,
    )
    .unwrap()
}

pub(crate) fn record(rt: &str, access: &str, expires_at: i64, issuer: &str) -> Record {
    Record {
        provider: "oidc".into(),
        issuer: Some(issuer.to_string()),
        client_id: Some("demo-public".into()),
        access_token: Some(AccessToken::new(access)),
        refresh_token: Some(RefreshToken::new(rt)),
        token_type: Some("Bearer".into()),
        obtained_at: Some(now() - 3600),
        expires_at: Some(expires_at),
        state: StoredState::Valid,
        ..Record::default()
    }
}

/// ETCD-5: a save from a stale generation is a `Conflict`; ETCD-1: the stored value is the
/// file format's ciphertext (no token in it); ETCD-4: a save whose account lock key is gone
/// (its lease expired) is refused; an account lock excludes a second holder until dropped.
#[test]
fn etcd_cas_fence_and_account_lock_on_a_real_cluster() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let cfg = config(&cluster, "/cas");
    let a = authdeck::vault::Vault::create_store(Box::new(store(&cfg, &key))).unwrap();
    let b_store = store(&cfg, &key);
    let b = authdeck::vault::Vault::open_store(Box::new(store(&cfg, &key))).unwrap();
    a.update(|r| {
        r.insert(
            "x".into(),
            record("rt-secret-1", "at-secret-1", now() + 600, "i"),
        );
        Ok::<_, VaultError>(())
    })
    .unwrap();
    // ETCD-8: b's own read at open may answer for 50 ms; after that b sees the save.
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(b.generation().unwrap(), 2, "another handle sees the save");
    let raw = b_store.raw().unwrap().unwrap();
    assert!(raw.starts_with(b"AUTHDECK"), "the file format");
    assert!(
        !raw.windows(11).any(|w| w == b"rt-secret-1"),
        "ETCD-1: etcd holds ciphertext only"
    );

    // A stale writer: read generation 2, someone else saves 3, then it saves from 2.
    let snap = b.snapshot().unwrap();
    a.update(|r| {
        r.insert("z".into(), Record::default());
        Ok::<_, VaultError>(())
    })
    .unwrap();
    let lock = b_store.lock().unwrap();
    let err = b_store
        .save_if_generation(&lock, snap.generation, &snap.records)
        .unwrap_err();
    assert!(
        matches!(
            err,
            VaultError::Conflict {
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
    drop(lock);

    // Account lock: exclusive across stores; the second waits until the first is dropped.
    let held = b_store.lock_account("x").unwrap();
    let fence = held.fence().cloned().expect("etcd locks are fenced");
    let other = std::thread::spawn({
        let cfg = cfg.clone();
        let key = key.clone();
        move || {
            let s = store(&cfg, &key);
            let t = Instant::now();
            let l = s.lock_account("x").unwrap();
            drop(l);
            t.elapsed()
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    // Simulate the lease expiring under the holder: delete its lock key behind its back.
    delete_holder_key(&cluster, "/cas/locks/account/");
    let waited = other.join().unwrap();
    assert!(
        waited >= Duration::from_millis(700),
        "the second holder waited: {waited:?}"
    );
    let lock = b_store.lock().unwrap();
    let current = b_store.load().unwrap().unwrap();
    let mut records: Records = current.records.clone();
    records.insert("w".into(), Record::default());
    let err = b_store
        .save_fenced(&lock, current.generation, &records, &[fence])
        .unwrap_err();
    assert!(matches!(err, VaultError::LockLost { .. }), "{err}");
    assert_eq!(
        b_store.load().unwrap().unwrap().generation,
        current.generation,
        "nothing written"
    );
    drop(lock);
    drop(held);
}

/// Deletes the oldest key under `prefix` (the lock holder's) with a plain etcd client: what
/// the holder's lease expiring does.
fn delete_holder_key(cluster: &Cluster, prefix: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let urls: Vec<String> = cluster
            .endpoints()
            .iter()
            .map(|e| format!("http://{e}"))
            .collect();
        let mut c = etcd_client::Client::connect(urls, None).await.unwrap();
        let opts = etcd_client::GetOptions::new().with_prefix().with_sort(
            etcd_client::SortTarget::Create,
            etcd_client::SortOrder::Ascend,
        );
        let keys = c.get(prefix, Some(opts)).await.unwrap();
        assert_eq!(keys.kvs().len(), 2, "the holder's key and the waiter's");
        let holder = keys.kvs()[0].key().to_vec();
        c.delete(holder, None).await.unwrap();
    });
}

/// One "machine": its own config dir (account file + config.toml naming the cluster) and the
/// shared key file.
pub(crate) struct Machine {
    config: PathBuf,
    key: PathBuf,
    home: PathBuf,
}

impl Machine {
    pub(crate) fn new(
        root: &Path,
        i: usize,
        cluster: &Cluster,
        prefix: &str,
        issuer: &str,
        key: &Path,
    ) -> Self {
        let config = root.join(format!("machine{i}"));
        std::fs::create_dir_all(config.join("providers")).unwrap();
        std::fs::write(
            config.join("providers/acct.toml"),
            format!(
                "extends = \"oidc\"\nissuer = \"{issuer}\"\n\
                 authorization_endpoint = \"{issuer}/authorize\"\n\
                 token_endpoint = \"{issuer}/token\"\n\
                 client_id = \"demo-public\"\nscopes = [\"api\"]\n"
            ),
        )
        .unwrap();
        let endpoints: Vec<String> = cluster
            .endpoints()
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect();
        std::fs::write(
            config.join("config.toml"),
            format!(
                "[vault]\nbackend = \"etcd\"\nendpoints = [{}]\nprefix = \"{prefix}\"\n\
                 lease_ttl_secs = 2\ntimeout_ms = 1500\nlock_wait_secs = 60\n",
                endpoints.join(", ")
            ),
        )
        .unwrap();
        Machine {
            config,
            key: key.to_path_buf(),
            home: root.to_path_buf(),
        }
    }

    /// The machine's config dir.
    pub(crate) fn config_dir(&self) -> &Path {
        &self.config
    }

    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::support::bin());
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("AUTHDECK_CONFIG_DIR", &self.config)
            .env("AUTHDECK_KEY_FILE", &self.key)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args).spawn().unwrap()
    }
}

/// A shared etcd vault at `prefix` holding account `acct`, due now, with a real refresh token.
pub(crate) async fn shared_vault(cluster: &Cluster, prefix: &str, srv: &DevServer, key: &Path) {
    let rt = crate::support::device_login_refresh_token(srv).await;
    let backend = Backend::Etcd(Box::new(config(cluster, prefix)));
    let issuer = srv.issuer();
    let key = key.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let vault = backend.create(KeySource::KeyFile(key)).unwrap();
        vault
            .update(|r| {
                r.insert("acct".into(), record(&rt, "old-token", now() - 10, &issuer));
                Ok::<_, VaultError>(())
            })
            .unwrap();
    })
    .await
    .unwrap();
}

/// Three machines, ten `token` callers each, one due account with a rotating refresh token:
/// exactly one refresh reaches the server (REF-2 across machines, ETCD-3) and all 30 print
/// the same new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_three_machines_thirty_callers_one_refresh() {
    let cluster = Cluster::start();
    let srv = rotating_devserver().await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    shared_vault(&cluster, "/storm", &srv, &key).await;
    let machines: Vec<Machine> = (0..3)
        .map(|i| Machine::new(dir.path(), i, &cluster, "/storm", &srv.issuer(), &key))
        .collect();
    let before = srv.stats().refreshes;
    let outs = tokio::task::spawn_blocking(move || {
        let children: Vec<Child> = machines
            .iter()
            .flat_map(|m| (0..10).map(move |_| m.spawn(&["token", "acct"])))
            .collect();
        children
            .into_iter()
            .map(|c| wait_with_timeout(c, Duration::from_secs(60)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut tokens = std::collections::BTreeSet::new();
    for out in &outs {
        assert!(out.status.success(), "stderr: {}", stderr(out));
        tokens.insert(stdout(out).trim().to_string());
    }
    assert_eq!(
        tokens.len(),
        1,
        "every caller printed the same token: {tokens:?}"
    );
    let token = tokens.into_iter().next().unwrap();
    assert!(!token.is_empty() && token != "old-token", "{token}");
    assert_eq!(
        srv.stats().refreshes - before,
        1,
        "exactly one refresh request reached the server"
    );
}

/// Runs `args` on `m` and waits (bounded).
pub(crate) fn run(m: &Machine, args: &[&str]) -> std::process::Output {
    wait_with_timeout(m.spawn(args), Duration::from_secs(60))
}

/// The authorization server of the shared-vault tests: rotating refresh tokens (the case a
/// shared vault exists for), device logins approved at once.
pub(crate) async fn rotating_devserver() -> DevServer {
    DevServer::start(DevServerConfig {
        rotate_refresh_tokens: true,
        auto_approve_device: true,
        ..DevServerConfig::default()
    })
    .await
    .unwrap()
}

/// A setup shared by the failure cases: a cluster, a rotating devserver, one due account in
/// the vault and three machines.
struct World {
    cluster: Cluster,
    srv: DevServer,
    machines: Vec<Machine>,
    _dir: tempfile::TempDir,
}

async fn world(prefix: &str) -> World {
    let cluster = Cluster::start();
    let srv = rotating_devserver().await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    shared_vault(&cluster, prefix, &srv, &key).await;
    let machines = (0..3)
        .map(|i| Machine::new(dir.path(), i, &cluster, prefix, &srv.issuer(), &key))
        .collect();
    World {
        cluster,
        srv,
        machines,
        _dir: dir,
    }
}

/// Waits until the devserver has seen more than `n` token requests (bounded).
async fn token_request_arrived(srv: &DevServer, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while srv.stats().token_requests <= n {
        assert!(Instant::now() < deadline, "no token request arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(child: &Child, sig: i32) {
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill({sig})");
}

/// ETCD-6: with one member down everything works (a refresh included); with two down the
/// command fails fast with the clear error and exit 1; when they return it works again and
/// nothing was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd6_one_member_down_works_two_down_clear_error_then_recovery() {
    let mut w = world("/members").await;
    w.cluster.kill(0);
    let before = w.srv.stats().refreshes;
    let m = &w.machines[0];
    let out = tokio::task::block_in_place(|| run(m, &["token", "acct"]));
    assert!(out.status.success(), "one member down: {}", stderr(&out));
    let token = stdout(&out).trim().to_string();
    assert_ne!(token, "old-token");
    assert_eq!(w.srv.stats().refreshes, before + 1);

    w.cluster.kill(1);
    let started = Instant::now();
    let out = tokio::task::block_in_place(|| run(&w.machines[1], &["token", "acct"]));
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "two members down: exit 1");
    let err = stderr(&out);
    assert!(err.contains("vault backend unavailable"), "{err}");
    assert!(took < Duration::from_secs(20), "bounded: {took:?}");
    assert!(stdout(&out).is_empty(), "no token printed");

    w.cluster.restart(0);
    w.cluster.restart(1);
    tokio::task::block_in_place(|| w.cluster.wait_healthy(Duration::from_secs(30)));
    let out = tokio::task::block_in_place(|| run(&w.machines[2], &["token", "acct"]));
    assert!(out.status.success(), "recovered: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), token, "the same, saved token");
    let out = tokio::task::block_in_place(|| run(&w.machines[2], &["refresh", "acct"]));
    assert!(
        out.status.success(),
        "the refresh token still works: {}",
        stderr(&out)
    );
}

/// ETCD-3: a lock holder SIGKILLed in the middle of its token request delays the others only
/// until its lease expires; another machine then refreshes and the refresh token is not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd3_sigkilled_lock_holder_another_machine_refreshes_after_the_lease() {
    let w = world("/killed").await;
    let n = w.srv.stats().token_requests;
    w.srv
        .inject(Fault::Slow(Duration::from_secs(6)), 1, Endpoint::Token);
    let mut holder = w.machines[0].spawn(&["token", "acct"]);
    token_request_arrived(&w.srv, n).await;
    holder.kill().unwrap();
    let _ = holder.wait();
    let killed_at = Instant::now();
    let out = tokio::task::block_in_place(|| run(&w.machines[1], &["token", "acct"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let took = killed_at.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "waited for the 2 s lease, not for the killed request: {took:?}"
    );
    let token = stdout(&out).trim().to_string();
    assert_ne!(token, "old-token");
    // The rotated refresh token was saved: a forced refresh from a third machine works.
    let out = tokio::task::block_in_place(|| run(&w.machines[2], &["refresh", "acct"]));
    assert!(
        out.status.success(),
        "refresh token not lost: {}",
        stderr(&out)
    );
}

/// ETCD-4: a holder paused (SIGSTOP) past its lease loses the lock to another machine, which
/// refreshes; resumed (SIGCONT), its late request is refused by the server, it writes nothing
/// (no "needs login" over the other machine's rotation) and answers with the stored token
/// (ETCD-10); the other machine's rotated token stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd4_paused_holder_is_fenced_after_its_lease_expired() {
    let w = world("/paused").await;
    let n = w.srv.stats().token_requests;
    w.srv
        .inject(Fault::Slow(Duration::from_secs(5)), 1, Endpoint::Token);
    let stale = w.machines[0].spawn(&["token", "acct"]);
    token_request_arrived(&w.srv, n).await;
    signal(&stale, libc::SIGSTOP);
    let out = tokio::task::block_in_place(|| run(&w.machines[1], &["token", "acct"]));
    signal(&stale, libc::SIGCONT);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_string();
    assert_ne!(token, "old-token");
    let stale_out =
        tokio::task::block_in_place(|| wait_with_timeout(stale, Duration::from_secs(60)));
    assert!(
        stale_out.status.success(),
        "the stale holder takes the stored rotation: {}",
        stderr(&stale_out)
    );
    assert_eq!(stdout(&stale_out).trim(), token);
    // The vault still holds the other machine's token and a working refresh token.
    let out = tokio::task::block_in_place(|| run(&w.machines[2], &["token", "acct"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), token);
    let out = tokio::task::block_in_place(|| run(&w.machines[2], &["refresh", "acct"]));
    assert!(
        out.status.success(),
        "refresh token intact: {}",
        stderr(&out)
    );
}

/// ETCD-10: a holder paused past its lease *after* the server rotated its refresh token (the
/// answer held back) loses the lock to another machine, whose refresh with the old refresh
/// token is refused; resumed, the holder still saves the rotation it got, since nobody stored
/// newer tokens, so the chain is not broken: a third machine gets that token and refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd10_a_rotation_the_server_made_survives_a_lost_lock() {
    let w = world("/rescue").await;
    let n = w.srv.stats().token_requests;
    w.srv.inject(
        Fault::SlowAnswer(Duration::from_secs(5)),
        1,
        Endpoint::Token,
    );
    let holder = w.machines[0].spawn(&["token", "acct"]);
    token_request_arrived(&w.srv, n).await;
    signal(&holder, libc::SIGSTOP);
    // The lease (2 s) expires; the other machine takes the lock and sends the refresh token
    // the server has already rotated.
    let other = tokio::task::block_in_place(|| run(&w.machines[1], &["token", "acct"]));
    signal(&holder, libc::SIGCONT);
    assert_eq!(
        other.status.code(),
        Some(3),
        "the stale refresh token is refused: {}",
        stderr(&other)
    );
    let held = tokio::task::block_in_place(|| wait_with_timeout(holder, Duration::from_secs(60)));
    assert!(
        held.status.success(),
        "the holder keeps the rotation the server made: {}",
        stderr(&held)
    );
    let token = stdout(&held).trim().to_string();
    assert_ne!(token, "old-token");
    let out = tokio::task::block_in_place(|| run(&w.machines[2], &["token", "acct"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), token, "the rescued rotation was saved");
    let out = tokio::task::block_in_place(|| run(&w.machines[2], &["refresh", "acct"]));
    assert!(
        out.status.success(),
        "the refresh-token chain is unbroken: {}",
        stderr(&out)
    );
}

/// ETCD-6: the etcd leader killed while a refresh is in flight: the save rides out the
/// election, the rotation is not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd6_leader_killed_during_a_refresh_no_rotation_lost() {
    let mut w = world("/leader").await;
    let n = w.srv.stats().token_requests;
    w.srv
        .inject(Fault::Slow(Duration::from_millis(1500)), 1, Endpoint::Token);
    let child = w.machines[0].spawn(&["token", "acct"]);
    token_request_arrived(&w.srv, n).await;
    let leader = w.cluster.leader().expect("a leader");
    w.cluster.kill(leader);
    let out = tokio::task::block_in_place(|| wait_with_timeout(child, Duration::from_secs(60)));
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_string();
    assert_ne!(token, "old-token");
    w.cluster.restart(leader);
    let out = tokio::task::block_in_place(|| run(&w.machines[1], &["token", "acct"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), token, "the rotation was saved");
    let out = tokio::task::block_in_place(|| run(&w.machines[2], &["refresh", "acct"]));
    assert!(
        out.status.success(),
        "refresh token intact: {}",
        stderr(&out)
    );
}

/// ETCD-7: a store's change notifications report another writer's new generation without
/// polling.
#[test]
fn etcd7_watch_reports_new_generations() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let cfg = config(&cluster, "/watch");
    let writer = authdeck::vault::Vault::create_store(Box::new(store(&cfg, &key))).unwrap();
    let watcher = authdeck::vault::Vault::open_store(Box::new(store(&cfg, &key))).unwrap();
    let mut changes = watcher.changes().expect("etcd notifies");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for want in 2..=4u64 {
        writer
            .update(|r| {
                r.insert(format!("a{want}"), Record::default());
                Ok::<_, VaultError>(())
            })
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), changes.wait_for(|g| *g >= want))
                .await
                .expect("notified within 5 s")
                .unwrap();
        });
    }
    assert_eq!(*changes.borrow(), 4);
}

/// `vault migrate`: a file vault to etcd and back keeps every record byte-identical after
/// decryption (and the generation); `--dry-run` writes nothing; a target that already holds a
/// vault is refused and nothing changes; the source is moved aside only after the copy.
#[test]
fn etcd_migrate_file_to_etcd_and_back_keeps_every_record() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let file = dir.path().join("vault.bin");
    let vault = authdeck::vault::Vault::create(&file, KeySource::KeyFile(key.clone())).unwrap();
    vault
        .update(|r| {
            for i in 0..5 {
                let mut rec = record(
                    &format!("rt-{i}"),
                    &format!("at-{i}"),
                    now() + i,
                    "https://i",
                );
                rec.scopes = vec![format!("scope{i}"), "openid".into()];
                rec.refresh_count = i as u64;
                r.insert(format!("acct{i}"), rec);
            }
            Ok::<_, VaultError>(())
        })
        .unwrap();
    let original = vault.snapshot().unwrap();
    let json = |r: &Records| serde_json::to_string(r).unwrap();
    let url = cluster.url("/mig");
    let config_dir = dir.path().join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    let migrate = |from: &str, to: &str, extra: &[&str]| {
        let mut c = Command::new(crate::support::bin());
        c.args(["--vault", from, "vault", "migrate", "--to", to])
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("AUTHDECK_CONFIG_DIR", &config_dir)
            .env("AUTHDECK_KEY_FILE", &key);
        c.output().unwrap()
    };
    let etcd = store(&config(&cluster, "/mig"), &key);

    let out = migrate(file.to_str().unwrap(), &url, &["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("would migrate 5 account(s)"),
        "{}",
        stdout(&out)
    );
    assert!(!etcd.exists().unwrap(), "a dry run writes nothing");
    assert!(file.exists());

    let out = migrate(file.to_str().unwrap(), &url, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!file.exists(), "the source was moved aside");
    let aside = dir.path().join("vault.bin.migrated");
    assert!(aside.exists(), "{}", stdout(&out));
    let there = etcd.load().unwrap().unwrap();
    assert_eq!(there.generation, original.generation);
    assert_eq!(json(&there.records), json(&original.records));

    // A target that already holds a vault is refused; neither side changes.
    let out = migrate(aside.to_str().unwrap(), &url, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(aside.exists());

    let back = dir.path().join("back.bin");
    let out = migrate(&url, back.to_str().unwrap(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!etcd.exists().unwrap(), "the etcd copy was moved aside");
    let back_vault = authdeck::vault::Vault::open(&back, KeySource::KeyFile(key.clone())).unwrap();
    let returned = back_vault.snapshot().unwrap();
    assert_eq!(returned.generation, original.generation);
    assert_eq!(
        json(&returned.records),
        json(&original.records),
        "byte-identical"
    );

    // `vault init`, `path` and `passwd` act on the etcd vault a URL names (never on a file
    // called `etcd:`).
    let admin = |args: &[&str]| {
        let mut c = Command::new(crate::support::bin());
        c.args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("AUTHDECK_CONFIG_DIR", &config_dir)
            .env("AUTHDECK_KEY_FILE", &key);
        c.output().unwrap()
    };
    let init_url = cluster.url("/init");
    let out = admin(&["--vault", &init_url, "vault", "path"]);
    assert_eq!(stdout(&out).trim(), init_url);
    let out = admin(&["--vault", &init_url, "vault", "init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !dir.path().join("etcd:").exists(),
        "no file vault named after the URL"
    );
    let init_store = store(&config(&cluster, "/init"), &key);
    assert_eq!(init_store.load().unwrap().unwrap().generation, 1);
    let out = admin(&["--vault", &init_url, "vault", "init"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let new_key = dir.path().join("new.key");
    let out = admin(&[
        "--vault",
        &init_url,
        "vault",
        "passwd",
        "--new-key-file",
        new_key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rekeyed = store(&config(&cluster, "/init"), &new_key);
    assert_eq!(
        rekeyed.load().unwrap().unwrap().generation,
        2,
        "opens with the new key"
    );
    assert!(
        matches!(
            store(&config(&cluster, "/init"), &key).load(),
            Err(VaultError::WrongKey { .. })
        ),
        "not with the old one"
    );
}

/// ETCD-7: a dashboard driver on one machine sees another machine's refresh through the
/// watch, long before its periodic reload (set to a minute here), and logs it; the header gets
/// the backend's health.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd7_dashboard_driver_sees_another_machines_refresh_at_once() {
    use authdeck::app::driver::{DriverSettings, serve_with};
    use authdeck::app::view::{AppEvent, LogKind};
    use authdeck::app::{App, Settings};
    let w = world("/driver").await;
    let mut settings = Settings::default();
    settings.http.system_proxy = false;
    let open = |m: &Machine| {
        let backend = Backend::Etcd(Box::new(config(&w.cluster, "/driver")));
        let vault = backend
            .open_with(KeySource::KeyFile(m.key.clone()))
            .unwrap();
        App::new(m.config.clone(), vault, settings.clone()).unwrap()
    };
    let (dash, other) =
        tokio::task::block_in_place(|| (open(&w.machines[0]), open(&w.machines[1])));
    // The dashboard's account is not due for it: only the other machine refreshes.
    let (_cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(serve_with(
        std::sync::Arc::new(dash),
        cmd_rx,
        ev_tx,
        DriverSettings {
            reload_every: Duration::from_secs(60),
            tick: Duration::from_millis(200),
            ..DriverSettings::default()
        },
    ));
    let mut healthy = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !healthy && Instant::now() < deadline {
        if let Ok(Some(AppEvent::Backend(b))) =
            tokio::time::timeout(Duration::from_millis(200), ev_rx.recv()).await
        {
            healthy = b.healthy && b.backend.starts_with("etcd ");
        }
    }
    assert!(healthy, "the header got the backend's health");
    // Let the dashboard's own scheduler settle (the account is due, so it refreshes once).
    tokio::time::sleep(Duration::from_secs(2)).await;
    while ev_rx.try_recv().is_ok() {}
    let (_, how) = other.fresh_token("acct", true).await.unwrap();
    assert!(
        matches!(how, authdeck::app::refresh::Refreshed::Done { .. }),
        "{how:?}"
    );
    let saved = Instant::now();
    let mut seen = false;
    while !seen && saved.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(AppEvent::Log(entry))) =
            tokio::time::timeout(Duration::from_millis(200), ev_rx.recv()).await
        {
            seen = entry.account == "acct"
                && matches!(&entry.kind, LogKind::Info(m) if m.contains("another machine"));
        }
    }
    assert!(seen, "the refresh log shows the other machine's refresh");
    assert!(
        saved.elapsed() < Duration::from_secs(5),
        "through the watch, not the 60 s reload: {:?}",
        saved.elapsed()
    );
    driver.abort();
}

/// ETCD-8: a read reused from the last 50 ms never survives taking a lock: under an account
/// lock the store sees another machine's save at once.
#[test]
fn etcd8_reads_after_taking_a_lock_are_fresh() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let cfg = config(&cluster, "/fresh");
    let writer = authdeck::vault::Vault::create_store(Box::new(store(&cfg, &key))).unwrap();
    let reader = store(&cfg, &key);
    for round in 0..20u64 {
        assert_eq!(reader.generation().unwrap(), round + 1);
        writer
            .update(|r| {
                r.insert(format!("a{round}"), Record::default());
                Ok::<_, VaultError>(())
            })
            .unwrap();
        let lock = reader.lock_account("a").unwrap();
        assert_eq!(
            reader.generation().unwrap(),
            round + 2,
            "round {round}: fresh under the lock"
        );
        drop(lock);
    }
}

/// Kills a child process on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `openssl` with `args` in `dir`; panics with its stderr on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl; .ci/run installs it)");
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
fn make_certs(dir: &Path) {
    std::fs::write(
        dir.join("ext.cnf"),
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
         [server]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n\
         [client]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    let ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
    openssl(dir, &[&["genpkey"][..], &ec, &["-out", "ca.key"]].concat());
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=test-ca",
            "-days",
            "2",
            "-out",
            "ca.pem",
            "-config",
            "ext.cnf",
            "-extensions",
            "ca",
        ],
    );
    for n in ["server", "client"] {
        let key = format!("{n}.key");
        let csr = format!("{n}.csr");
        let pem = format!("{n}.pem");
        openssl(dir, &[&["genpkey"][..], &ec, &["-out", &key]].concat());
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                &key,
                "-subj",
                &format!("/CN={n}"),
                "-out",
                &csr,
                "-config",
                "ext.cnf",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                "ext.cnf",
                "-extensions",
                n,
            ],
        );
    }
}

/// TLS with client certificates (etcd `--client-cert-auth`), through `config.toml`'s
/// `ca_file`, `cert_file` and `key_file`: the vault works; without the client certificate the
/// command fails with the clear error (ETCD-6) and exit 1.
#[test]
fn etcd6_tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let peer = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client_url = format!("https://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let p = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let _etcd = KillOnDrop(
        Command::new("/usr/bin/etcd")
            .args([
                "--name",
                "t",
                "--data-dir",
                &p("data"),
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("t={peer_url}"),
                "--cert-file",
                &p("server.pem"),
                "--key-file",
                &p("server.key"),
                "--trusted-ca-file",
                &p("ca.pem"),
                "--client-cert-auth",
                "--logger",
                "zap",
                "--log-level",
                "error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd"),
    );
    let config_dir = dir.path().join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    let toml = |with_client_cert: bool| {
        let client = if with_client_cert {
            format!(
                "cert_file = \"{}\"\nkey_file = \"{}\"\n",
                p("client.pem"),
                p("client.key")
            )
        } else {
            String::new()
        };
        std::fs::write(
            config_dir.join("config.toml"),
            format!(
                "[vault]\nbackend = \"etcd\"\nendpoints = [\"127.0.0.1:{port}\"]\n\
                 prefix = \"/tls\"\nca_file = \"{}\"\n{client}timeout_ms = 1500\n",
                p("ca.pem")
            ),
        )
        .unwrap();
    };
    let key = key_file(dir.path());
    let run_cli = |args: &[&str]| {
        Command::new(crate::support::bin())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("AUTHDECK_CONFIG_DIR", &config_dir)
            .env("AUTHDECK_KEY_FILE", &key)
            .output()
            .unwrap()
    };
    toml(true);
    // The member needs a moment to serve; `vault init` is retried until then (bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = run_cli(&["vault", "init"]);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("etcd://127.0.0.1:{port}/tls")));
    let out = run_cli(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    toml(false);
    let out = run_cli(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("vault backend unavailable"),
        "{}",
        stderr(&out)
    );
}

/// ETCD-9: a process dials one member first (chosen by its pid); when that member is down the
/// first attempt fails and the retry balances over the others. With one member down, every one
/// of several processes (different pids, so some pick the dead member) gets its token quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd9_one_member_first_dial_falls_back_to_the_others() {
    let mut w = world("/firstdial").await;
    let out = tokio::task::block_in_place(|| run(&w.machines[0], &["token", "acct"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_string();
    w.cluster.kill(1);
    for i in 0..9 {
        let started = Instant::now();
        let out = tokio::task::block_in_place(|| run(&w.machines[i % 3], &["token", "acct"]));
        let took = started.elapsed();
        assert!(out.status.success(), "run {i}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), token, "run {i}: the stored token");
        assert!(took < Duration::from_secs(5), "run {i}: took {took:?}");
    }
}
