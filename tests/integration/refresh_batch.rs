//! `App::refresh_many` (the group-commit batch behind `refresh --all`) against the devserver:
//! REF-2 (one request per account, skipped when another process refreshed first), REF-3 (the
//! rotated refresh token is what is saved), REF-6 (a dead refresh token needs a new login).
//! In this binary, not the library's: the library's LOG-3 test watches the engine's log lines
//! and must not see these requests on other threads.

use authdeck::app::refresh::Refreshed;
use authdeck::app::{App, AppError, Settings};
use authdeck::devserver::{DevServer, DevServerConfig};
use authdeck::secret::{AccessToken, RefreshToken};
use authdeck::vault::{KeySource, Record, StoredState, Vault, VaultError, generate_key_file};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A temp dir with `n` due accounts (`acc0`..) logged in at `srv`, and an app on it.
/// The first `bogus` accounts get a refresh token the server never issued.
async fn setup(srv: &DevServer, n: usize, bogus: usize) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    let providers = dir.path().join("config/providers");
    std::fs::create_dir_all(&providers).unwrap();
    let key = dir.path().join("vault.key");
    generate_key_file(&key).unwrap();
    let path = dir.path().join("vault.bin");
    let vault = Vault::create(&path, KeySource::KeyFile(key.clone())).unwrap();
    let issuer = srv.issuer();
    let mut records = Vec::new();
    for i in 0..n {
        let name = format!("acc{i}");
        std::fs::write(
            providers.join(format!("{name}.toml")),
            format!(
                "extends = \"oidc\"\nissuer = \"{issuer}\"\n\
                 authorization_endpoint = \"{issuer}/authorize\"\n\
                 token_endpoint = \"{issuer}/token\"\n\
                 client_id = \"demo-public\"\nscopes = [\"api\"]\n"
            ),
        )
        .unwrap();
        let rt = if i < bogus {
            "never-issued".to_string()
        } else {
            crate::support::device_login_refresh_token(srv).await
        };
        let rec = Record {
            provider: "oidc".into(),
            issuer: Some(issuer.clone()),
            client_id: Some("demo-public".into()),
            access_token: Some(AccessToken::new(format!("old-{i}"))),
            refresh_token: Some(RefreshToken::new(rt)),
            token_type: Some("Bearer".into()),
            obtained_at: Some(now() - 3600),
            expires_at: Some(now() - 10),
            state: StoredState::Valid,
            ..Record::default()
        };
        records.push((name, rec));
    }
    vault
        .update(|r| {
            r.extend(records);
            Ok::<_, VaultError>(())
        })
        .unwrap();
    let mut settings = Settings::default();
    settings.http.system_proxy = false;
    settings.refresh_concurrency = 4;
    let app = App::new(dir.path().join("config"), vault, settings).unwrap();
    (dir, app)
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("acc{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ref2_ref3_refresh_many_group_commit_persists_every_rotated_token() {
    let srv = DevServer::start(DevServerConfig {
        auto_approve_device: true,
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let (_dir, app) = setup(&srv, 12, 0).await;
    let before = srv.stats().refreshes;
    let results = tokio::time::timeout(Duration::from_secs(15), app.refresh_many(&names(12)))
        .await
        .unwrap();
    assert_eq!(results.len(), 12);
    for (i, (name, r)) in results.iter().enumerate() {
        assert_eq!(
            name,
            &format!("acc{i}"),
            "results keep the order of the names"
        );
        assert!(
            matches!(r, Ok(Refreshed::Done { rotated: true, .. })),
            "{name}: {r:?}"
        );
    }
    assert_eq!(
        srv.stats().refreshes - before,
        12,
        "one request per account"
    );
    // REF-3: what was saved is the newest rotated token, so a second round works too (the
    // devserver rejects a rotated-out refresh token with invalid_grant).
    let records = Vault::open(app.vault().path(), key_of(&app))
        .unwrap()
        .read()
        .unwrap();
    for i in 0..12 {
        let rec = &records[&format!("acc{i}")];
        assert_eq!(rec.refresh_count, 1);
        assert_ne!(
            rec.access_token.as_ref().unwrap().secret(),
            format!("old-{i}")
        );
        assert!(rec.expires_at.unwrap() > now());
    }
    let again = tokio::time::timeout(Duration::from_secs(15), app.refresh_many(&names(12)))
        .await
        .unwrap();
    assert!(
        again
            .iter()
            .all(|(_, r)| matches!(r, Ok(Refreshed::Done { .. }))),
        "{again:?}"
    );
    assert_eq!(srv.stats().refreshes - before, 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ref6_refresh_many_invalid_grant_needs_login_others_refreshed() {
    let srv = DevServer::start(DevServerConfig {
        auto_approve_device: true,
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let (_dir, app) = setup(&srv, 4, 1).await;
    let results = tokio::time::timeout(Duration::from_secs(15), app.refresh_many(&names(4)))
        .await
        .unwrap();
    assert!(
        matches!(results[0].1, Err(AppError::RefreshRefused { .. })),
        "{:?}",
        results[0].1
    );
    for (name, r) in &results[1..] {
        assert!(matches!(r, Ok(Refreshed::Done { .. })), "{name}: {r:?}");
    }
    let records = app.current().unwrap();
    let dead = &records.records["acc0"];
    assert_eq!(dead.state, StoredState::NeedsLogin);
    assert!(
        dead.refresh_token.is_none(),
        "REF-6: the dead refresh token is dropped"
    );
    assert_eq!(records.records["acc1"].state, StoredState::Valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ref2_refresh_many_skips_an_account_another_process_refreshed_meanwhile() {
    let srv = DevServer::start(DevServerConfig {
        auto_approve_device: true,
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let (_dir, app) = setup(&srv, 2, 0).await;
    let app = Arc::new(app);
    // "Another process" holds acc0's refresh lock.
    let locks = app.vault().path().with_file_name("locks");
    std::fs::create_dir_all(&locks).unwrap();
    let held = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(locks.join("acc0.lock"))
        .unwrap();
    held.lock().unwrap();
    let before = srv.stats().refreshes;
    let batch = {
        let app = app.clone();
        // Its own thread and runtime: the batch's future borrows across `await`s, so it is run
        // with `block_on` as the CLI does rather than spawned.
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(app.refresh_many(&names(2)))
        })
    };
    // acc1 is not locked: once it is refreshed, the batch has its snapshot and acc0 waits.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while srv.stats().refreshes == before {
        assert!(
            std::time::Instant::now() < deadline,
            "acc1 was never refreshed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The other process refreshes acc0 and releases its lock.
    let other = Vault::open(app.vault().path(), key_of(&app)).unwrap();
    other
        .update(|r| {
            let rec = r.get_mut("acc0").unwrap();
            rec.access_token = Some(AccessToken::new("by-other"));
            rec.obtained_at = Some(now());
            rec.expires_at = Some(now() + 3600);
            Ok::<_, VaultError>(())
        })
        .unwrap();
    drop(held);
    let results = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || batch.join().unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(results[0].1.as_ref().unwrap(), &Refreshed::ByOther);
    assert!(matches!(results[1].1, Ok(Refreshed::Done { .. })));
    assert_eq!(srv.stats().refreshes - before, 1, "no request for acc0");
    let now_rec = &app.current().unwrap().records["acc0"];
    assert_eq!(now_rec.access_token.as_ref().unwrap().secret(), "by-other");
}

fn key_of(app: &App) -> KeySource {
    KeySource::KeyFile(app.vault().path().with_file_name("vault.key"))
}
