//! etcd authentication (docs/etcd.md, "Deploying a cluster"): a user whose role may read and
//! write only authdeck's prefix keeps the whole shared vault working — reads, the vault and
//! account locks, a refresh and its fenced save (ETCD-3, ETCD-4) — with the password from a file
//! or an environment variable; a wrong password or a user without rights on the prefix fails at
//! once with a clear error that never repeats the password (ETCD-6).

use crate::etcd::{Machine, key_file, now, record};
use crate::etcd_cluster::Cluster;
use crate::support::{stderr, stdout, wait_with_timeout};
use authdeck::devserver::DevServer;
use authdeck::vault::etcd::{EtcdConfig, config::PasswordSource};
use authdeck::vault::{Backend, KeySource, VaultError};
use etcd_client::{Client, Permission};
use std::path::Path;
use std::time::{Duration, Instant};

const PREFIX: &str = "/team";
const PASSWORD: &str = "deck-pw-LEAK-etcd";

/// Turns on authentication: `root` (required by etcd), a role limited to `PREFIX`, and user
/// `deck` with that role; `other` has a role on another prefix only.
async fn enable_auth(cluster: &Cluster) {
    let mut c = Client::connect(cluster.endpoints(), None).await.unwrap();
    c.user_add("root", "root-pw", None).await.unwrap();
    c.user_grant_role("root", "root").await.unwrap();
    for (role, prefix) in [("authdeck", PREFIX), ("elsewhere", "/elsewhere")] {
        c.role_add(role).await.unwrap();
        c.role_grant_permission(role, Permission::read_write(prefix).with_prefix())
            .await
            .unwrap();
    }
    c.user_add("deck", PASSWORD, None).await.unwrap();
    c.user_grant_role("deck", "authdeck").await.unwrap();
    c.user_add("other", PASSWORD, None).await.unwrap();
    c.user_grant_role("other", "elsewhere").await.unwrap();
    c.auth_enable().await.unwrap();
}

/// Creates the vault as user `deck` (password from `pw_file`) with one due account.
async fn seed(cluster: &Cluster, srv: &DevServer, key: &Path, pw_file: &Path) {
    let rt = crate::support::device_login_refresh_token(srv).await;
    let mut cfg = EtcdConfig::new(cluster.endpoints(), PREFIX).unwrap();
    cfg.user = Some("deck".into());
    cfg.password = PasswordSource::File(pw_file.to_path_buf());
    cfg.timeout = Duration::from_millis(1500);
    let (issuer, key) = (srv.issuer(), key.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let vault = Backend::Etcd(Box::new(cfg))
            .create(KeySource::KeyFile(key))
            .unwrap();
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

/// Adds the user lines to a machine's config.toml.
fn as_user(m: &Machine, user: &str, password_line: &str) {
    let path = m.config_dir().join("config.toml");
    let mut toml = std::fs::read_to_string(&path).unwrap();
    toml.push_str(&format!("user = \"{user}\"\n{password_line}\n"));
    std::fs::write(path, toml).unwrap();
}

fn run(m: &Machine, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = m.cmd(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    wait_with_timeout(cmd.spawn().unwrap(), Duration::from_secs(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_auth_user_limited_to_the_prefix_refreshes_and_bad_credentials_fail_clearly() {
    let cluster = Cluster::start();
    enable_auth(&cluster).await;
    let srv = crate::etcd::rotating_devserver().await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let pw_file = dir.path().join("etcd-password");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    seed(&cluster, &srv, &key, &pw_file).await;
    let issuer = srv.issuer();
    let machines: Vec<Machine> = (0..4)
        .map(|i| Machine::new(dir.path(), i, &cluster, PREFIX, &issuer, &key))
        .collect();

    // The password from a file: the due token is refreshed under the account lock and saved.
    as_user(
        &machines[0],
        "deck",
        &format!("password_file = \"{}\"", pw_file.display()),
    );
    let before = srv.stats().refreshes;
    let out = tokio::task::block_in_place(|| run(&machines[0], &["token", "acct"], &[]));
    assert!(out.status.success(), "as deck: {}", stderr(&out));
    let token = stdout(&out).trim().to_string();
    assert!(!token.is_empty() && token != "old-token", "{token}");
    assert_eq!(srv.stats().refreshes, before + 1, "one refresh");

    // The password from the environment (the default variable): the saved token is read.
    as_user(&machines[1], "deck", "");
    let out = tokio::task::block_in_place(|| {
        run(
            &machines[1],
            &["token", "acct"],
            &[("AUTHDECK_ETCD_PASSWORD", PASSWORD)],
        )
    });
    assert!(out.status.success(), "password from env: {}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        token,
        "the token the first machine saved"
    );

    // A wrong password: refused at once (not retried until the budget), exit 1, no password.
    as_user(&machines[2], "deck", "");
    let started = Instant::now();
    let out = tokio::task::block_in_place(|| {
        run(
            &machines[2],
            &["token", "acct"],
            &[("AUTHDECK_ETCD_PASSWORD", "wrong-pw-LEAK-etcd")],
        )
    });
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "wrong password: {err}");
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains("LEAK"), "no password in the message: {err}");
    assert!(stdout(&out).is_empty());
    assert!(took < Duration::from_secs(10), "refused at once: {took:?}");

    // A user whose role covers another prefix: a clear permission error.
    as_user(&machines[3], "other", "");
    let out = tokio::task::block_in_place(|| {
        run(
            &machines[3],
            &["token", "acct"],
            &[("AUTHDECK_ETCD_PASSWORD", PASSWORD)],
        )
    });
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "no rights on the prefix: {err}");
    assert!(err.contains("permission denied"), "{err}");
    assert!(!err.contains("LEAK"), "{err}");

    // Nothing was lost: the vault still works for the user with rights.
    let out = tokio::task::block_in_place(|| run(&machines[0], &["refresh", "acct"], &[]));
    assert!(out.status.success(), "still refreshes: {}", stderr(&out));
}
