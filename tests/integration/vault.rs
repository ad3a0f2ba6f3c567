//! Integration tests: vault (VAULT-1..6). The crash and concurrency tests re-execute
//! this test binary as child processes through [`child_entry`].

use authdeck::secret::{AccessToken, ClientSecret, Passphrase, RefreshToken};
use authdeck::vault::{
    Claims, FileStore, KdfParams, KeyKind, KeySource, Record, Records, Store, StoredState, Vault,
    VaultError, generate_key_file,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_MODE: &str = "AUTHDECK_VAULT_TEST_CHILD";
const CHILD_VAULT: &str = "AUTHDECK_VAULT_TEST_PATH";
const CHILD_KEY: &str = "AUTHDECK_VAULT_TEST_KEY";

/// Argon2id parameters small enough for fast tests (the defaults are tested once, below).
const TINY: KdfParams = KdfParams {
    m_cost_kib: 8,
    t_cost: 1,
    p_cost: 1,
};

type R<T = ()> = Result<T, VaultError>;

fn key_file(dir: &Path, name: &str) -> KeySource {
    let path = dir.join(name);
    generate_key_file(&path).unwrap();
    KeySource::KeyFile(path)
}

fn pass(p: &str) -> KeySource {
    KeySource::Passphrase(Passphrase::new(p))
}

fn tiny_store(path: &Path, key: KeySource) -> Box<dyn Store> {
    Box::new(FileStore::new(path, key).with_kdf_params(TINY))
}

fn full_record() -> Record {
    Record {
        provider: "github".into(),
        issuer: Some("https://github.com".into()),
        client_id: Some("Iv1.abc".into()),
        access_token: Some(AccessToken::new("gho_access")),
        refresh_token: Some(RefreshToken::new("ghr_refresh")),
        token_type: Some("Bearer".into()),
        scopes: vec!["repo".into(), "read:user".into()],
        obtained_at: Some(1_700_000_000),
        expires_at: Some(1_700_003_600),
        claims: Claims {
            subject: Some("12345".into()),
            email: Some("me@example.com".into()),
            name: Some("Me".into()),
            verified: true,
        },
        id_token: Some(authdeck::secret::IdToken::new("eyJ.e30.sig")),
        last_refresh: Some(authdeck::vault::RefreshAttempt {
            at: 1_700_000_100,
            outcome: authdeck::vault::RefreshOutcome::Failed {
                message: "server_error".into(),
            },
        }),
        refresh_count: 3,
        state: StoredState::Error {
            message: "refresh failed".into(),
        },
        client_secret: Some(ClientSecret::new("cs-stored")),
        narrowed: [(
            "scope=Mail.Read".to_string(),
            authdeck::vault::NarrowedToken {
                access_token: Some(AccessToken::new("gho_narrow")),
                scopes: vec!["Mail.Read".into()],
                obtained_at: Some(1_700_000_000),
                expires_at: Some(1_700_003_600),
            },
        )]
        .into(),
        login_grant: Some(authdeck::vault::LoginGrant::Device),
        redirect_uri: Some("http://127.0.0.1:8123/callback".into()),
    }
}

fn put(vault: &Vault, name: &str, rec: Record) {
    vault
        .update(|r| -> R {
            r.insert(name.into(), rec);
            Ok(())
        })
        .unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn round_trip_key_file_all_fields_vault_6() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let key = key_file(dir.path(), "key");
    let vault = Vault::open(&path, key.clone()).unwrap();
    put(&vault, "work", full_record());
    let reopened = Vault::open(&path, key).unwrap();
    assert_eq!(reopened.get("work").unwrap(), Some(full_record()));
    assert_eq!(reopened.snapshot().unwrap().generation, 1);
    // VAULT-1: no token appears in the file in clear.
    let bytes = std::fs::read(&path).unwrap();
    for needle in ["gho_access", "ghr_refresh", "cs-stored", "me@example.com"] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()));
    }
}

#[test]
fn round_trip_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let vault = Vault::create_store(tiny_store(&path, pass("hunter2 hunter2"))).unwrap();
    put(&vault, "a", full_record());
    let again = Vault::open(&path, pass("hunter2 hunter2")).unwrap();
    assert_eq!(again.read().unwrap().len(), 1);
    let store = FileStore::new(&path, pass("x"));
    assert_eq!(store.key_kind().unwrap(), Some(KeyKind::Passphrase));
    assert_eq!(store.kdf_params().unwrap(), Some(TINY), "params read back");
}

#[test]
fn missing_vault_reads_empty_and_is_created_on_first_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("v");
    let vault = Vault::open(&path, key_file(dir.path(), "key")).unwrap();
    assert!(vault.read().unwrap().is_empty());
    assert_eq!(vault.get("x").unwrap(), None);
    assert!(!vault.exists().unwrap());
    assert!(!path.exists(), "a read never creates the vault");
    // An update that changes nothing does not create it either.
    vault.update(|_| -> R { Ok(()) }).unwrap();
    assert!(!path.exists());
    put(&vault, "x", Record::default());
    assert!(vault.exists().unwrap());
}

#[test]
fn wrong_passphrase_is_clear_and_leaves_file_untouched_vault_5() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let vault = Vault::create_store(tiny_store(&path, pass("right"))).unwrap();
    put(&vault, "a", full_record());
    let before = std::fs::read(&path).unwrap();
    let err = Vault::open(&path, pass("wrong")).unwrap_err();
    assert!(matches!(err, VaultError::WrongKey { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("wrong passphrase or key for vault {}", path.display())
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn wrong_key_file_and_wrong_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let vault = Vault::open(&path, key_file(dir.path(), "k1")).unwrap();
    put(&vault, "a", Record::default());
    let before = std::fs::read(&path).unwrap();
    let err = Vault::open(&path, key_file(dir.path(), "k2")).unwrap_err();
    assert!(matches!(err, VaultError::WrongKey { .. }), "{err}");
    let err = Vault::open(&path, pass("pw")).unwrap_err();
    assert!(matches!(err, VaultError::KeyKindMismatch { .. }), "{err}");
    assert!(err.to_string().contains("AUTHDECK_KEY_FILE"), "{err}");
    // A stale handle with the wrong key cannot write either.
    let wrong = FileStore::new(&path, key_file(dir.path(), "k3"));
    let lock = wrong.lock().unwrap();
    assert!(wrong.save_if_generation(&lock, 1, &Records::new()).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn key_file_with_loose_mode_is_refused_vault_4() {
    let dir = tempfile::tempdir().unwrap();
    let KeySource::KeyFile(kf) = key_file(dir.path(), "key") else {
        unreachable!()
    };
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let vault = Vault::open(dir.path().join("v"), KeySource::KeyFile(kf.clone())).unwrap();
    let err = vault
        .update(|r| -> R {
            r.insert("a".into(), Record::default());
            Ok(())
        })
        .unwrap_err();
    assert!(
        matches!(err, VaultError::KeyFileMode { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
    assert!(!dir.path().join("v").exists());
}

#[test]
fn permission_bits_vault_4() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("data").join("authdeck");
    let path = sub.join("v");
    let vault = Vault::open(&path, key_file(dir.path(), "key")).unwrap();
    put(&vault, "a", Record::default());
    put(&vault, "b", Record::default());
    assert_eq!(mode(&sub), 0o700, "vault directory");
    assert_eq!(mode(&path), 0o600, "vault file");
    assert_eq!(mode(&sub.join("v.bak")), 0o600, "backup file");
    assert_eq!(mode(&sub.join("v.lock")), 0o600, "lock file");
    // A vault someone loosened is tightened on the next open.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    vault.read().unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn default_argon2_params_are_read_back_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    Vault::create(&path, pass("default params")).unwrap();
    let store = FileStore::new(&path, pass("default params"));
    assert_eq!(store.kdf_params().unwrap(), Some(KdfParams::DEFAULT));
    const { assert!(KdfParams::DEFAULT.m_cost_kib >= 19 * 1024, "OWASP minimum") };
    // And the key derived from those header parameters opens it.
    assert_eq!(store.load().unwrap().unwrap().generation, 1);
}

#[test]
fn every_single_bit_flip_is_rejected_vault_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let key = key_file(dir.path(), "key");
    put(
        &Vault::open(&path, key.clone()).unwrap(),
        "a",
        Record::default(),
    );
    let good = std::fs::read(&path).unwrap();
    let bad = dir.path().join("flipped");
    for bit in 0..good.len() * 8 {
        let mut b = good.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&bad, &b).unwrap();
        let r = Vault::open(&bad, key.clone());
        assert!(r.is_err(), "flip of bit {bit} was accepted");
        assert_eq!(
            std::fs::read(&bad).unwrap(),
            b,
            "file touched after bit {bit}"
        );
    }
    assert!(Vault::open(&path, key).is_ok());
}

#[test]
fn truncation_at_every_length_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let key = key_file(dir.path(), "key");
    put(
        &Vault::open(&path, key.clone()).unwrap(),
        "a",
        full_record(),
    );
    let good = std::fs::read(&path).unwrap();
    let bad = dir.path().join("short");
    for len in 0..good.len() {
        std::fs::write(&bad, &good[..len]).unwrap();
        let err = Vault::open(&bad, key.clone()).unwrap_err();
        assert!(
            matches!(
                err,
                VaultError::Corrupt { .. } | VaultError::NotAVault { .. }
            ),
            "length {len}: {err}"
        );
    }
    // Extra bytes appended are rejected too.
    let mut long = good.clone();
    long.push(0);
    std::fs::write(&bad, &long).unwrap();
    assert!(Vault::open(&bad, key).is_err());
}

#[test]
fn tampered_vault_names_file_and_backup_and_is_never_overwritten_vault_5() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let key = key_file(dir.path(), "key");
    let vault = Vault::open(&path, key.clone()).unwrap();
    put(&vault, "a", Record::default());
    put(&vault, "b", Record::default());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = vault.read().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, VaultError::Corrupt { .. }), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("{}.bak", path.display())), "{msg}");
    let err = vault
        .update(|r| -> R {
            r.clear();
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, VaultError::Corrupt { .. }));
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "never overwritten");
    // The backup holds the previous generation and opens.
    let bak = Vault::open(dir.path().join("v.bak"), key).unwrap();
    let snap = bak.snapshot().unwrap();
    assert_eq!(snap.generation, 1);
    assert!(snap.records.contains_key("a") && !snap.records.contains_key("b"));
}

#[test]
fn stale_writer_loses_compare_and_swap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let key = key_file(dir.path(), "key");
    let store = FileStore::new(&path, key.clone());
    let lock = store.lock().unwrap();
    assert_eq!(
        store.save_if_generation(&lock, 0, &Records::new()).unwrap(),
        1
    );
    assert_eq!(
        store.save_if_generation(&lock, 1, &Records::new()).unwrap(),
        2
    );
    let err = store
        .save_if_generation(&lock, 1, &Records::new())
        .unwrap_err();
    assert!(
        matches!(
            err,
            VaultError::Conflict {
                expected: 1,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    // A second lock from another handle waits and then times out while the first is held.
    let other = FileStore::new(&path, key).with_lock_timeout(Duration::from_millis(50));
    assert!(matches!(other.lock(), Err(VaultError::LockTimeout { .. })));
    drop(lock);
    assert!(other.lock().is_ok());
}

#[test]
fn rekey_switches_from_passphrase_to_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let vault = Vault::create_store(tiny_store(&path, pass("old"))).unwrap();
    put(&vault, "a", full_record());
    let kf = key_file(dir.path(), "key");
    vault.rekey(kf.clone()).unwrap();
    assert!(matches!(
        Vault::open(&path, pass("old")),
        Err(VaultError::KeyKindMismatch { .. })
    ));
    let v2 = Vault::open(&path, kf).unwrap();
    assert_eq!(v2.get("a").unwrap(), Some(full_record()));
    // The same handle keeps working under the new key.
    put(&vault, "b", Record::default());
    assert_eq!(v2.read().unwrap().len(), 2);
}

#[test]
fn create_refuses_an_existing_vault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let key = key_file(dir.path(), "key");
    Vault::create(&path, key.clone()).unwrap();
    let before = std::fs::read(&path).unwrap();
    assert!(matches!(
        Vault::create(&path, key),
        Err(VaultError::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

// ---- child processes: crash and concurrency ----

/// The body of the child processes; does nothing unless started by a test below.
#[test]
#[ignore = "child process for the crash and concurrency tests"]
fn child_entry() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let path = PathBuf::from(std::env::var(CHILD_VAULT).unwrap());
    let key = KeySource::KeyFile(std::env::var(CHILD_KEY).unwrap().into());
    let vault = Vault::open(&path, key).unwrap();
    match mode.split_once(':') {
        None if mode == "crash" => loop {
            vault.update(crash_step).unwrap();
        },
        Some(("concurrent", id)) => {
            for j in 0..50u64 {
                vault
                    .update(|r| -> R {
                        r.insert(
                            format!("c{id}-{j}"),
                            Record {
                                refresh_count: j,
                                ..Record::default()
                            },
                        );
                        r.entry(format!("c{id}")).or_default().refresh_count += 1;
                        Ok(())
                    })
                    .unwrap();
            }
        }
        _ => panic!("unknown child mode {mode}"),
    }
}

/// One crash-test update: bumps the counter `n` in "meta" and writes slot `n % 64` with `n`.
fn crash_step(r: &mut Records) -> R {
    let meta = r.entry("meta".into()).or_default();
    meta.refresh_count += 1;
    let n = meta.refresh_count;
    r.insert(
        format!("k{}", n % 64),
        Record {
            refresh_count: n,
            access_token: Some(AccessToken::new(format!("at-{n}"))),
            ..Record::default()
        },
    );
    Ok(())
}

fn spawn_child(mode: &str, vault: &Path, key: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["vault::child_entry", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_MODE, mode)
        .env(CHILD_VAULT, vault)
        .env(CHILD_KEY, key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Checks a crash-test vault: the counter matches the generation, and the last 64 updates are
/// all present with their own values. Returns the counter.
fn check_complete_generation(vault: &Vault) -> u64 {
    let snap = vault.snapshot().unwrap();
    let n = snap.records.get("meta").map_or(0, |m| m.refresh_count);
    assert_eq!(snap.generation, n + 1, "generation and counter disagree");
    for j in n.saturating_sub(63).max(1)..=n {
        let rec = snap
            .records
            .get(&format!("k{}", j % 64))
            .expect("slot missing");
        assert_eq!(rec.refresh_count, j, "slot {} lost update {j}", j % 64);
        assert_eq!(
            rec.access_token.as_ref().unwrap().secret(),
            format!("at-{j}")
        );
    }
    n
}

#[test]
fn crash_test_sigkill_200_times_loses_nothing_vault_4() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let KeySource::KeyFile(kf) = key_file(dir.path(), "key") else {
        unreachable!()
    };
    let vault = Vault::open(&path, KeySource::KeyFile(kf.clone())).unwrap();
    put(&vault, "meta", Record::default()); // generation 1, counter 0
    let bak = Vault::open(dir.path().join("v.bak"), KeySource::KeyFile(kf.clone())).unwrap();
    let store = FileStore::new(&path, KeySource::KeyFile(kf.clone()));
    let started = Instant::now();
    // Four children save in a loop (taking turns on the lock); each round one of them is killed
    // and replaced, so process start-up overlaps with the others' saves and the test stays fast.
    let mut children: Vec<Child> = (0..4).map(|_| spawn_child("crash", &path, &kf)).collect();
    let mut last = 0;
    for round in 0..200u64 {
        // Wait for a save since the last kill, so every kill lands in a saving loop.
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.generation().unwrap() <= last + 1 {
            assert!(Instant::now() < deadline, "round {round}: no child saved");
            std::thread::sleep(Duration::from_micros(200));
        }
        // Pseudo-random delay from the clock (0-5 ms, a save or two).
        let seed = started.elapsed().subsec_nanos() as u64 ^ round.wrapping_mul(2_654_435_761);
        std::thread::sleep(Duration::from_micros(seed % 5000));
        let victim = &mut children[(seed as usize / 5000) % 4];
        victim.kill().unwrap(); // SIGKILL
        victim.wait().unwrap();
        let n = check_complete_generation(&vault);
        assert!(
            n >= last,
            "round {round}: counter went back from {last} to {n}"
        );
        last = n;
        // The backup is a complete, earlier-or-equal generation too.
        let b = check_complete_generation(&bak);
        assert!(b >= n.saturating_sub(1), "backup {b} too old for {n}");
        *victim = spawn_child("crash", &path, &kf);
    }
    for child in &mut children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let n = check_complete_generation(&vault);
    assert!(
        n >= 200,
        "the children made too little progress ({n} saves)"
    );
    eprintln!("crash test: {n} saves, 200 kills, {:?}", started.elapsed());
}

#[test]
fn concurrency_test_8_processes_50_updates_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let KeySource::KeyFile(kf) = key_file(dir.path(), "key") else {
        unreachable!()
    };
    Vault::create(&path, KeySource::KeyFile(kf.clone())).unwrap();
    let mut children: Vec<Child> = (0..8)
        .map(|i| spawn_child(&format!("concurrent:{i}"), &path, &kf))
        .collect();
    // 400 locked, fsynced saves: seconds on an idle machine, but CI runs this beside every
    // other test on two cores; the bound only has to catch a deadlock.
    let deadline = Instant::now() + Duration::from_secs(180);
    for child in &mut children {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "a child failed: {status}");
                break;
            }
            if Instant::now() > deadline {
                for c in &mut children {
                    let _ = c.kill();
                }
                panic!("children did not finish in time");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let snap = Vault::open(&path, KeySource::KeyFile(kf))
        .unwrap()
        .snapshot()
        .unwrap();
    assert_eq!(
        snap.generation,
        1 + 8 * 50,
        "every update saved exactly once"
    );
    for i in 0..8 {
        assert_eq!(snap.records[&format!("c{i}")].refresh_count, 50);
        for j in 0..50u64 {
            assert_eq!(snap.records[&format!("c{i}-{j}")].refresh_count, j);
        }
    }
}

// ---- the command line ----

fn authdeck(vault: &Path) -> Command {
    let mut cmd = Command::new(crate::support::bin());
    cmd.arg("--vault").arg(vault);
    for var in [
        "AUTHDECK_KEY_FILE",
        "AUTHDECK_PASSPHRASE",
        "AUTHDECK_PASSPHRASE_FILE",
        "AUTHDECK_VAULT",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

#[test]
fn cli_vault_path_init_and_passwd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v");
    let out = authdeck(&path).args(["vault", "path"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        path.display().to_string()
    );
    let env_path = Command::new(crate::support::bin())
        .args(["vault", "path"])
        .env("AUTHDECK_VAULT", &path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&env_path.stdout).trim(),
        path.display().to_string()
    );

    let kf = dir.path().join("key");
    let out = authdeck(&path)
        .args(["vault", "init", "--key-file"])
        .arg(&kf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&kf), 0o600);
    assert_eq!(std::fs::metadata(&kf).unwrap().len(), 32);
    assert!(Vault::open(&path, KeySource::KeyFile(kf.clone())).is_ok());
    // A second init refuses.
    let out = authdeck(&path).args(["vault", "init"]).output().unwrap();
    assert!(!out.status.success());

    // passwd: key file → passphrase from a file; the old key no longer opens it.
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "new passphrase\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = authdeck(&path)
        .args(["vault", "passwd", "--new-passphrase-file"])
        .arg(&pw)
        .env("AUTHDECK_KEY_FILE", &kf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Vault::open(&path, KeySource::KeyFile(kf.clone())).is_err());
    assert!(Vault::open(&path, pass("new passphrase")).is_ok());

    // Wrong passphrase: non-zero exit, clear message, no secret echoed, file untouched.
    let before = std::fs::read(&path).unwrap();
    let out = authdeck(&path)
        .args(["vault", "passwd", "--new-key-file"])
        .arg(dir.path().join("key2"))
        .env("AUTHDECK_PASSPHRASE", "not it")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong passphrase or key for vault"), "{err}");
    assert!(!err.contains("not it"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
