//! Vault benchmarks: open + decrypt 50 records with a key file and with a passphrase,
//! save of 50 records, and one Argon2id derivation per candidate parameter set.
//! Run: `cargo bench --bench vault`. Figures go in docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authdeck::secret::{AccessToken, Passphrase, RefreshToken};
use authdeck::vault::{Claims, FileStore, KdfParams, KeySource, Record, Store, StoredState, Vault};
use std::path::Path;
use std::time::{Duration, Instant};

/// CPU time of this thread (user + system), precise to the nanosecond.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn record(i: usize) -> Record {
    Record {
        provider: "github".into(),
        issuer: Some("https://issuer.example".into()),
        client_id: Some(format!("client-{i}")),
        access_token: Some(AccessToken::new(format!("gho_{i:0>36}"))),
        refresh_token: Some(RefreshToken::new(format!("ghr_{i:0>60}"))),
        token_type: Some("Bearer".into()),
        scopes: vec!["read:user".into(), "repo".into()],
        obtained_at: Some(1_700_000_000),
        expires_at: Some(1_700_003_600),
        claims: Claims {
            subject: Some(format!("{i}")),
            email: Some(format!("user{i}@example.com")),
            name: Some("Some User".into()),
            verified: true,
        },
        refresh_count: i as u64,
        state: StoredState::Valid,
        ..Record::default()
    }
}

/// Runs `f` `iters` times; prints and returns (wall per iter, CPU per iter).
fn measure(name: &str, iters: u32, mut f: impl FnMut()) -> (Duration, Duration) {
    f(); // warm up (page cache, allocator)
    let (w0, c0) = (Instant::now(), thread_cpu());
    for _ in 0..iters {
        f();
    }
    let wall = w0.elapsed() / iters;
    let cpu = (thread_cpu() - c0) / iters;
    println!(
        "| {name:<46} | {iters:>6} | {:>12.3} | {:>12.3} |",
        ms(wall),
        ms(cpu)
    );
    (wall, cpu)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn fill(vault: &Vault) {
    vault
        .update(|recs| {
            for i in 0..50 {
                recs.insert(format!("account-{i}"), record(i));
            }
            Ok::<_, authdeck::vault::VaultError>(())
        })
        .unwrap();
}

fn key_file(dir: &Path) -> KeySource {
    let path = dir.join("key");
    authdeck::vault::generate_key_file(&path).unwrap();
    KeySource::KeyFile(path)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!(
        "| operation                                      |  iters |  wall ms/op  |  CPU ms/op   |"
    );
    println!(
        "| ---------------------------------------------- | -----: | -----------: | -----------: |"
    );

    // Key file: open (reads the key file, checks the header) + decrypt 50 records.
    let kf = key_file(dir.path());
    let kf_path = dir.path().join("kf.vault");
    fill(&Vault::open(&kf_path, kf.clone()).unwrap());
    let (_, cpu) = measure("open + decrypt 50 records, key file", 2000, || {
        let v = Vault::open(&kf_path, kf.clone()).unwrap();
        assert_eq!(v.read().unwrap().len(), 50);
    });
    println!(
        "(target: key-file open + decrypt <= 1 ms CPU: {})",
        if cpu <= Duration::from_millis(1) {
            "met"
        } else {
            "MISSED"
        }
    );

    let v = Vault::open(&kf_path, kf.clone()).unwrap();
    measure("read 50 records, open handle, key file", 2000, || {
        assert_eq!(v.read().unwrap().len(), 50);
    });
    let store = FileStore::new(&kf_path, kf.clone());
    measure("save 50 records (lock, CAS, 2 fsyncs)", 200, || {
        let lock = store.lock().unwrap();
        let snap = store.load().unwrap().unwrap();
        store
            .save_if_generation(&lock, snap.generation, &snap.records)
            .unwrap();
    });
    measure("update: lock + read + save 50 records", 200, || {
        v.update(|recs| {
            if let Some(r) = recs.get_mut("account-0") {
                r.refresh_count += 1;
            }
            Ok::<_, authdeck::vault::VaultError>(())
        })
        .unwrap();
    });

    // Passphrase: each open derives the key with Argon2id (the header's parameters).
    let pp_path = dir.path().join("pp.vault");
    let pass = KeySource::Passphrase(Passphrase::new("correct horse battery staple"));
    fill(&Vault::open(&pp_path, pass.clone()).unwrap());
    measure(
        "open + decrypt 50 records, passphrase (default)",
        10,
        || {
            let v = Vault::open(&pp_path, pass.clone()).unwrap();
            assert_eq!(v.read().unwrap().len(), 50);
        },
    );

    // Candidate Argon2id parameter sets (one derivation each = one vault creation).
    for (m, t, p) in [
        (19 * 1024, 2, 1),
        (46 * 1024, 1, 1),
        (64 * 1024, 1, 1),
        (64 * 1024, 2, 1),
        (64 * 1024, 3, 1),
        (64 * 1024, 3, 4),
    ] {
        let params = KdfParams {
            m_cost_kib: m,
            t_cost: t,
            p_cost: p,
        };
        let path = dir.path().join(format!("kdf-{m}-{t}-{p}.vault"));
        let mut n = 0;
        measure(
            &format!("Argon2id m={} MiB t={t} p={p} (create)", m / 1024),
            5,
            || {
                n += 1;
                let path = path.with_extension(format!("{n}"));
                let store = FileStore::new(&path, pass.clone()).with_kdf_params(params);
                Vault::create_store(Box::new(store)).unwrap();
            },
        );
    }
}
