//! The agent on a shared etcd vault (docs/etcd.md, AGENT-17): a real 3-member cluster on
//! loopback, the real binary as the agent of one "machine" and as a plain command on another.

use crate::etcd::{Machine, key_file, now, record, shared_vault};
use crate::etcd_cluster::Cluster;
use crate::support::{stderr, stdout, wait_until, wait_with_timeout};
use authdeck::devserver::{Endpoint, Fault};
use authdeck::secret::Passphrase;
use authdeck::vault::etcd::{EtcdConfig, EtcdStore};
use authdeck::vault::{KdfParams, KeySource, Vault, VaultError};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// The test's own handle on the shared vault, to read what was saved and to make the account
/// due again, as another machine's write would.
fn vault(cluster: &Cluster, prefix: &str, key: &Path) -> Vault {
    let cfg = EtcdConfig::new(cluster.endpoints(), prefix).unwrap();
    Vault::open_store(Box::new(
        EtcdStore::new(cfg, KeySource::KeyFile(key.to_path_buf())).unwrap(),
    ))
    .unwrap()
}

fn access_token(v: &Vault) -> String {
    v.read().unwrap()["acct"]
        .access_token
        .as_ref()
        .map(|t| t.secret().to_owned())
        .unwrap_or_default()
}

fn signal(pid: u32, sig: i32) {
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(rc, 0, "kill({sig})");
}

/// A foreground agent of machine `m` on its own socket, its log in a file; killed on drop.
struct EtcdAgent {
    child: std::process::Child,
    sock: PathBuf,
    log: PathBuf,
}

impl EtcdAgent {
    fn start(m: &Machine, dir: &Path) -> EtcdAgent {
        let n = std::fs::read_dir(dir).unwrap().count();
        let run = dir.join(format!("agent-run-{n}"));
        std::fs::create_dir_all(&run).unwrap();
        crate::support::agent::set_mode(&run, 0o700);
        let sock = run.join("agent.sock");
        let log = dir.join(format!("agent-{n}.log"));
        let child = m
            .cmd(&["agent"])
            .env("AUTHDECK_AGENT_SOCK", &sock)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let agent = EtcdAgent { child, sock, log };
        wait_until("the agent to answer", WAIT, || {
            UnixStream::connect(&agent.sock).is_ok()
        });
        agent
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn call(&self, frame: &str) -> serde_json::Value {
        crate::support::agent::call(&self.sock, frame)
    }
}

impl Drop for EtcdAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// AGENT-17, AGENT-11 on the etcd backend (ETCD-3, ETCD-4): an agent serving a shared etcd vault with a
/// key file (unlocked at start). Its scheduler refreshes a due account in the background and
/// the save reaches the cluster (another machine reads it, one refresh at the server); `token`
/// through the agent serves it. Then a background refresh of the agent is paused (SIGSTOP)
/// past its lease: another machine takes the account lock and refreshes; the agent's late
/// request is refused by the server and the agent writes nothing (ETCD-10), so the other
/// machine's rotation stays; the agent then serves that token and refreshes from the intact
/// refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent17_an_agent_on_an_etcd_vault_refreshes_in_the_background_through_the_fence() {
    let cluster = Cluster::start();
    let srv = crate::etcd::rotating_devserver().await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    shared_vault(&cluster, "/agent", &srv, &key).await;
    let issuer = srv.issuer();
    let srv = std::sync::Arc::new(srv);
    let server = srv.clone();
    tokio::task::spawn_blocking(move || {
        let srv = server;
        let m0 = Machine::new(dir.path(), 0, &cluster, "/agent", &issuer, &key);
        let m1 = Machine::new(dir.path(), 1, &cluster, "/agent", &issuer, &key);
        let shared = vault(&cluster, "/agent", &key);
        assert_eq!(access_token(&shared), "old-token");

        // The account is due: the agent refreshes it by itself, and the save is in etcd.
        let before = srv.stats().refreshes;
        let agent = EtcdAgent::start(&m0, dir.path());
        let status = agent.call(r#"{"v":1,"verb":"status"}"#);
        assert_eq!(status["agent"]["state"], "unlocked", "{status}");
        wait_until("the agent's background refresh in etcd", WAIT, || {
            access_token(&shared) != "old-token"
        });
        let t0 = access_token(&shared);
        assert_eq!(
            srv.stats().refreshes,
            before + 1,
            "one refresh, the agent's"
        );
        let answer = agent.call(r#"{"v":1,"verb":"token","account":"acct"}"#);
        assert_eq!(answer["token"], t0.as_str(), "{answer}");
        let out = wait_with_timeout(
            m0.cmd(&["token", "acct"])
                .env("AUTHDECK_AGENT_SOCK", &agent.sock)
                .spawn()
                .unwrap(),
            WAIT,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), t0, "`token` through the agent");

        // Due again (another machine's write); the agent's refresh is slow, and the agent is
        // paused while it waits, past its 2 s lease.
        let n = srv.stats().token_requests;
        srv.inject(Fault::Slow(Duration::from_secs(5)), 1, Endpoint::Token);
        shared
            .update(|r| {
                let rec = r.get_mut("acct").unwrap();
                rec.expires_at = Some(now() - 10);
                Ok::<_, VaultError>(())
            })
            .unwrap();
        wait_until("the agent's second refresh at the server", WAIT, || {
            srv.stats().token_requests > n
        });
        let by_other = |log: String| log.matches("already refreshed by another process").count();
        let seen = by_other(agent.log_text());
        signal(agent.child.id(), libc::SIGSTOP);
        let out = wait_with_timeout(
            m1.cmd(&["token", "acct"])
                .env("AUTHDECK_AGENT", "off")
                .spawn()
                .unwrap(),
            WAIT,
        );
        signal(agent.child.id(), libc::SIGCONT);
        assert!(out.status.success(), "{}", stderr(&out));
        let t1 = stdout(&out).trim().to_string();
        assert!(
            t1 != t0 && !t1.is_empty(),
            "the other machine refreshed: {t1}"
        );
        // The agent's late request reaches the server after the other machine's rotation and
        // is refused; the agent writes nothing and takes the stored rotation (ETCD-10).
        wait_until(
            "the agent to take the other machine's rotation",
            WAIT,
            || by_other(agent.log_text()) > seen,
        );
        assert!(
            !agent.log_text().contains("needs a login"),
            "{}",
            agent.log_text()
        );
        assert_eq!(
            access_token(&shared),
            t1,
            "the other machine's rotation stays"
        );

        // The agent serves what etcd holds, and refreshes with the intact refresh token.
        let answer = agent.call(r#"{"v":1,"verb":"token","account":"acct"}"#);
        assert_eq!(answer["token"], t1.as_str(), "{answer}");
        let answer = agent.call(r#"{"v":1,"verb":"refresh","accounts":["acct"]}"#);
        assert_eq!(answer["ok"], true, "{answer}");
        assert!(
            answer["failures"].as_array().is_none_or(Vec::is_empty),
            "{answer}"
        );
        // (This process may answer a read within 50 ms from its last one, ETCD-8.)
        wait_until("the agent's refresh in etcd", WAIT, || {
            access_token(&shared) != t1
        });
        let t2 = access_token(&shared);
        assert!(
            t2 != t1 && t2 != t0,
            "the agent's refresh saved: t0 {t0} t1 {t1} t2 {t2}: {answer}\n{}",
            agent.log_text()
        );
        let out = wait_with_timeout(
            m1.cmd(&["token", "acct"])
                .env("AUTHDECK_AGENT", "off")
                .spawn()
                .unwrap(),
            WAIT,
        );
        assert_eq!(stdout(&out).trim(), t2, "{}", stderr(&out));

        // A passphrase vault on etcd: the agent starts locked and `unlock` derives the key
        // against the header stored in etcd (AGENT-6); a wrong passphrase changes nothing.
        let pass = "etcd agent passphrase";
        let cfg = EtcdConfig::new(cluster.endpoints(), "/agent-pass").unwrap();
        let params = KdfParams {
            m_cost_kib: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        };
        let store =
            EtcdStore::with_kdf_params(cfg, KeySource::Passphrase(Passphrase::new(pass)), params)
                .unwrap();
        Vault::create_store(Box::new(store))
            .unwrap()
            .update(|r| {
                r.insert(
                    "acct".into(),
                    record("unused-rt", "pass-token", now() + 3600, &issuer),
                );
                Ok::<_, VaultError>(())
            })
            .unwrap();
        let m2 = Machine::new(dir.path(), 2, &cluster, "/agent-pass", &issuer, &key);
        let locked = EtcdAgent::start(&m2, dir.path());
        let status = locked.call(r#"{"v":1,"verb":"status"}"#);
        assert_eq!(status["agent"]["state"], "locked", "{status}");
        assert!(
            status["agent"]["vault"]
                .as_str()
                .is_some_and(|v| v.starts_with("etcd://")),
            "{status}"
        );
        let unlock = |p: &str| {
            wait_with_timeout(
                m2.cmd(&["unlock"])
                    .env("AUTHDECK_AGENT_SOCK", &locked.sock)
                    .env("AUTHDECK_PASSPHRASE", p)
                    .spawn()
                    .unwrap(),
                WAIT,
            )
        };
        let out = unlock("not the passphrase");
        assert!(!out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("wrong passphrase"),
            "{}",
            stderr(&out)
        );
        let out = unlock(pass);
        assert!(out.status.success(), "{}", stderr(&out));
        let answer = locked.call(r#"{"v":1,"verb":"token","account":"acct"}"#);
        assert_eq!(answer["token"], "pass-token", "{answer}");
    })
    .await
    .unwrap();
}
