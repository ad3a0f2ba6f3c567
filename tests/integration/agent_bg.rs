//! The agent's background work end to end: the real binary, a passphrase vault, devservers.
//! The scheduler in the agent (AGENT-11): a forward clock jump, account files and other
//! processes' vault writes picked up without a restart, one refresh per due token however many
//! processes want it (REF-2), a SIGKILL mid-refresh; hooks (AGENT-12); readiness for a
//! service manager (AGENT-13).

use crate::support::agent::{Agent, Env, PASS, call, set_mode};
use crate::support::{blocking, devserver, stderr, stdout, wait_until};
use authdeck::devserver::{DevServerConfig, Endpoint, Fault};
use authdeck::secret::Passphrase;
use authdeck::vault::{KeySource, Vault};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn now() -> i64 {
    authdeck::app::status::unix(SystemTime::now())
}

fn vault(env: &Env) -> Vault {
    Vault::open(
        env.path("vault.bin"),
        KeySource::Passphrase(Passphrase::new(PASS)),
    )
    .unwrap()
}

/// Makes `name`'s token due in real time (an hour's token with 100 s left: inside the EXP-4
/// margin), as another process writing the vault would.
fn make_due(env: &Env, name: &str) {
    vault(env)
        .update(|records| {
            let r = records.get_mut(name).expect("logged in");
            r.obtained_at = Some(now() - 3500);
            r.expires_at = Some(now() + 100);
            Ok::<_, authdeck::vault::VaultError>(())
        })
        .unwrap();
}

fn token_frame(name: &str) -> String {
    format!(r#"{{"v":1,"verb":"token","account":"{name}"}}"#)
}

/// The agent's answer for `token NAME` once it is `ok` (account files are re-read every 2 s).
fn agent_token_eventually(agent: &Agent, name: &str) -> String {
    let mut last = serde_json::Value::Null;
    let found = (0..200).find_map(|_| {
        last = agent.call(&token_frame(name));
        if last["ok"] == true {
            return last["token"].as_str().map(String::from);
        }
        std::thread::sleep(Duration::from_millis(50));
        None
    });
    found.unwrap_or_else(|| panic!("the agent never served {name}: {last}"))
}

/// AGENT-11, EXP-4: the agent's scheduler reads the wall clock, so a forward jump (a laptop
/// resuming) refreshes what fell due at once. The agent's clock starts a day behind, where the
/// token is not due; the jump to real time, where it is, refreshes it within a tick or two,
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent11_a_forward_clock_jump_refreshes_at_once() {
    let srv = devserver(DevServerConfig::default()).await;
    let env = Env::new(&srv.issuer());
    blocking(move || {
        env.login();
        make_due(&env, "demo");
        let clock = env.path("clock-offset");
        std::fs::write(&clock, "-86400").unwrap();
        let agent = env.agent(&[
            ("AUTHDECK_PASSPHRASE", PASS),
            ("AUTHDECK_TEST_CLOCK_OFFSET_FILE", clock.to_str().unwrap()),
        ]);
        let s = agent.call(r#"{"v":1,"verb":"status"}"#);
        assert_eq!(s["agent"]["state"], "unlocked", "{s}");
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(srv.stats().refreshes, 0, "a day before, nothing is due");

        std::fs::write(&clock, "0").unwrap();
        let took = wait_until("a refresh after the jump", Duration::from_secs(10), || {
            srv.stats().refreshes >= 1
        });
        assert!(
            took < Duration::from_secs(5),
            "not at once: {took:?} after the jump"
        );
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(srv.stats().refreshes, 1, "exactly one refresh");
        let rec = vault(&env).get("demo").unwrap().unwrap();
        assert!(
            rec.expires_at.unwrap() > now() + 3000,
            "{:?}",
            rec.expires_at
        );
        wait_until("the log line", Duration::from_secs(5), || {
            agent.log_text().contains("refreshed")
        });
    })
    .await;
}

/// AGENT-11: without a restart, the agent serves what other processes wrote to the vault (by
/// its generation), an account whose file was added (and its scheduler refreshes it when
/// due), a changed account file, and forgets a removed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent11_account_files_and_other_processes_vault_writes_without_a_restart() {
    let srv = devserver(DevServerConfig::default()).await;
    let env = Env::new(&srv.issuer());
    let issuer = srv.issuer();
    blocking(move || {
        env.login();
        let agent = env.agent(&[("AUTHDECK_PASSPHRASE", PASS)]);
        let first = agent.call(&token_frame("demo"));
        assert_eq!(first["token"], env.direct_token("demo").as_str(), "{first}");

        // Another process refreshes: the agent's very next answer is the new token.
        let out = env
            .cmd(&["refresh", "demo"])
            .env("AUTHDECK_PASSPHRASE", PASS)
            .env("AUTHDECK_AGENT", "off")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let refreshed = env.direct_token("demo");
        assert_ne!(first["token"], refreshed.as_str());
        let r = agent.call(&token_frame("demo"));
        assert_eq!(r["token"], refreshed.as_str(), "{r}");

        // A new account file, logged in by another process: served, and refreshed when due.
        env.account_file("second", &issuer);
        env.login_account("second");
        let second = agent_token_eventually(&agent, "second");
        assert_eq!(second, env.direct_token("second"));
        let before = srv.stats().refreshes;
        make_due(&env, "second");
        wait_until(
            "the agent's scheduler refreshing the new account",
            Duration::from_secs(20),
            || srv.stats().refreshes > before,
        );
        assert_eq!(srv.stats().refreshes, before + 1);
        wait_until("its log line", Duration::from_secs(5), || {
            agent
                .log_text()
                .lines()
                .any(|l| l.contains("refreshed") && l.contains("second"))
        });
        assert!(
            agent.log_text().contains("reloaded"),
            "{}",
            agent.log_text()
        );

        // A changed account file: broken, then fixed.
        let demo_file = env.path("config/providers/demo.toml");
        let good = std::fs::read_to_string(&demo_file).unwrap();
        std::fs::write(&demo_file, format!("{good}no_such_field = 1\n")).unwrap();
        let mut last = serde_json::Value::Null;
        wait_until("the broken file to show", Duration::from_secs(10), || {
            last = agent.call(&token_frame("demo"));
            last["ok"] == false
        });
        let msg = last["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("demo.toml") && msg.contains("no_such_field"),
            "{last}"
        );
        std::fs::write(&demo_file, &good).unwrap();
        assert_eq!(agent_token_eventually(&agent, "demo"), refreshed);

        // A removed account file.
        std::fs::remove_file(env.path("config/providers/second.toml")).unwrap();
        wait_until("the removed account to go", Duration::from_secs(10), || {
            let r = agent.call(&token_frame("second"));
            r["ok"] == false
                && r["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("second"))
        });
        let log = agent.log_text();
        assert!(!log.contains(&refreshed) && !log.contains(PASS), "{log}");
    })
    .await;
}

/// REF-2 across every kind of process at once: an agent, a dashboard without an agent (the
/// real binary in a terminal, `AUTHDECK_AGENT=off`) and ten `token` processes want the same
/// three due tokens at the same moment. Each token is refreshed exactly once at its server
/// (one devserver per account, so the server's count is the account's), and every process
/// got that one new token. The agent's and the dashboard's clocks are held a day behind until
/// the moment the ten processes start, so all three kinds race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent11_ref2_agent_dashboard_and_ten_cli_processes_one_refresh_per_due_token() {
    let servers = vec![
        devserver(DevServerConfig::default()).await,
        devserver(DevServerConfig::default()).await,
        devserver(DevServerConfig::default()).await,
    ];
    let env = Env::new(&servers[0].issuer());
    std::fs::remove_file(env.path("config/providers/demo.toml")).unwrap();
    let names: Vec<String> = (0..servers.len()).map(|i| format!("acc{i}")).collect();
    for (name, srv) in names.iter().zip(&servers) {
        env.account_file(name, &srv.issuer());
    }
    blocking(move || {
        let old: Vec<String> = names
            .iter()
            .map(|n| {
                env.login_account(n);
                let t = env.direct_token(n);
                make_due(&env, n);
                t
            })
            .collect();
        assert!(servers.iter().all(|s| s.stats().refreshes == 0));
        let clock = env.path("clock-offset");
        std::fs::write(&clock, "-86400").unwrap();
        let clock_s = clock.to_str().unwrap();
        let agent = env.agent(&[
            ("AUTHDECK_PASSPHRASE", PASS),
            ("AUTHDECK_TEST_CLOCK_OFFSET_FILE", clock_s),
        ]);
        let mut dashboard = env.pty(
            &[],
            &[
                ("AUTHDECK_PASSPHRASE", PASS),
                ("AUTHDECK_AGENT", "off"),
                ("AUTHDECK_TEST_CLOCK_OFFSET_FILE", clock_s),
            ],
            120,
            30,
        );
        dashboard.wait_for(
            "the dashboard with its accounts",
            Duration::from_secs(20),
            |s| s.contains("acc0") && s.contains("acc2"),
        );
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            servers.iter().all(|s| s.stats().refreshes == 0),
            "a day before, nothing is due"
        );

        // Now: the clock jumps for the agent and the dashboard, and ten processes start.
        std::fs::write(&clock, "0").unwrap();
        let children: Vec<(usize, std::process::Child)> = (0..10)
            .map(|i| {
                let k = i % 3;
                let mut c = env.cmd(&["token", &format!("acc{k}")]);
                c.env("AUTHDECK_PASSPHRASE", PASS)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                // Half of them straight at the vault, half by whatever path `token` takes
                // when an agent runs.
                if i % 2 == 0 {
                    c.env("AUTHDECK_AGENT", "off");
                }
                (k, c.spawn().unwrap())
            })
            .collect();
        let mut got: Vec<Vec<String>> = vec![Vec::new(); 3];
        for (k, child) in children {
            let out = crate::support::wait_with_timeout(child, Duration::from_secs(60));
            assert!(out.status.success(), "acc{k}: {}", stderr(&out));
            got[k].push(stdout(&out).trim_end().to_string());
        }
        // Let the schedulers take their turn (a tick is 1 s; a reload 5 s).
        std::thread::sleep(Duration::from_secs(7));
        for (k, srv) in servers.iter().enumerate() {
            assert_eq!(
                srv.stats().refreshes,
                1,
                "acc{k}: one refresh at its server per due token"
            );
            let fresh = env.direct_token(&format!("acc{k}"));
            assert_ne!(fresh, old[k], "acc{k} was refreshed");
            for t in &got[k] {
                assert_eq!(t, &fresh, "acc{k}: every process got the one new token");
            }
            let r = agent.call(&token_frame(&format!("acc{k}")));
            assert_eq!(r["token"], fresh.as_str(), "{r}");
        }
        // The agent's scheduler took part: it refreshed each account, or found it refreshed
        // by another process once it had the lock.
        let log = agent.log_text();
        for k in 0..3 {
            assert!(
                log.lines()
                    .any(|l| l.contains(&format!("account=\"acc{k}\"")) && l.contains("refreshed")),
                "acc{k}: {log}"
            );
        }
        dashboard.send("q");
        dashboard.wait_exit(Duration::from_secs(10));
    })
    .await;
}

/// A SIGKILL of the agent while its refresh request is at the server: the vault is intact
/// (every account decrypts, nothing half-written), the account's refresh lock died with the
/// agent, and the next agent refreshes. The server keeps refresh tokens (no rotation), so the
/// request the killed agent never saw answered cannot have retired the stored one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent11_sigkill_mid_refresh_leaves_the_vault_intact_and_the_next_agent_refreshes() {
    let srv = devserver(DevServerConfig {
        rotate_refresh_tokens: false,
        ..DevServerConfig::default()
    })
    .await;
    let env = Env::new(&srv.issuer());
    let issuer = srv.issuer();
    blocking(move || {
        env.login();
        env.account_file("other", &issuer);
        env.login_account("other");
        make_due(&env, "demo");
        let before = vault(&env).read().unwrap();
        let requests = srv.stats().token_requests;
        srv.inject(Fault::Slow(Duration::from_secs(20)), 1, Endpoint::Token);
        let mut agent = env.agent(&[("AUTHDECK_PASSPHRASE", PASS)]);
        wait_until(
            "the agent's refresh request at the server",
            Duration::from_secs(15),
            || srv.stats().token_requests > requests,
        );
        std::thread::sleep(Duration::from_millis(300));
        agent.child.kill().unwrap();
        agent.child.wait().unwrap();
        assert_eq!(srv.stats().refreshes, 0, "killed while the server was slow");

        // Intact: every account decrypts, as it was before the agent started.
        let after = vault(&env).read().unwrap();
        assert_eq!(after, before, "the vault is exactly as before");
        let out = env
            .cmd(&["status", "--json"])
            .env("AUTHDECK_PASSPHRASE", PASS)
            .env("AUTHDECK_AGENT", "off")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for name in ["demo", "other"] {
            assert!(
                status
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["account"] == name
                        && a["has_refresh_token"] == true
                        && a["state"] != "needs_login"),
                "{name}: {status}"
            );
        }

        // The next agent replaces the stale socket, takes the lock and refreshes.
        let agent = env.agent(&[("AUTHDECK_PASSPHRASE", PASS)]);
        wait_until("the next agent's refresh", Duration::from_secs(15), || {
            vault(&env)
                .get("demo")
                .unwrap()
                .is_some_and(|r| r.expires_at.is_some_and(|e| e > now() + 3000))
        });
        let r = agent.call(&token_frame("demo"));
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["token"], env.direct_token("demo").as_str());
        assert!(agent.log_text().contains("replacing a stale socket"));
    })
    .await;
}

/// AGENT-12: `[hooks]` in config.toml run for the agent's scheduler events, without a shell,
/// with AUTHDECK_ACCOUNT, AUTHDECK_EVENT and AUTHDECK_REASON and without any secret: not the
/// passphrase, the etcd password or an account's exported token in the agent's environment,
/// nor any token of the vault. A hook that fails is logged and changes nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent12_hooks_fire_with_the_event_and_no_secret() {
    let srv = devserver(DevServerConfig::default()).await;
    let gone = Arc::new(devserver(DevServerConfig::default()).await);
    let env = Env::new(&srv.issuer());
    env.account_file("gone", &gone.issuer());
    let out_dir = env.path("hook-out");
    std::fs::create_dir(&out_dir).unwrap();
    let script = env.path("hook.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         out=\"$1\"; shift\n\
         env > \"$out/$AUTHDECK_EVENT.$AUTHDECK_ACCOUNT.env\"\n\
         printf '%s\\n' \"$@\" > \"$out/$AUTHDECK_EVENT.$AUTHDECK_ACCOUNT.args\"\n\
         if [ \"$AUTHDECK_EVENT\" = refreshed ]; then exit 3; fi\n",
    )
    .unwrap();
    set_mode(&script, 0o700);
    let (s, o) = (script.display(), out_dir.display());
    std::fs::write(
        env.path("config/config.toml"),
        format!(
            "[hooks]\n\
             on_refreshed = [\"{s}\", \"{o}\", \"one argument; $(not a shell)\"]\n\
             on_refresh_failed = [\"{s}\", \"{o}\"]\n\
             on_needs_login = [\"{s}\", \"{o}\"]\n"
        ),
    )
    .unwrap();
    let gone2 = gone.clone();
    blocking(move || {
        env.login();
        env.login_account("gone");
        let old_demo = env.direct_token("demo");
        make_due(&env, "demo");
        make_due(&env, "gone");
        gone2.revoke_all();
        let v = vault(&env).read().unwrap();
        let mut secrets: Vec<String> = vec![PASS.into(), "etcd-pw-0123".into(), old_demo.clone()];
        for r in v.values() {
            secrets.extend(r.access_token.as_ref().map(|t| t.secret().to_string()));
            secrets.extend(r.refresh_token.as_ref().map(|t| t.secret().to_string()));
        }
        let pass_file = env.path("pass");
        std::fs::write(&pass_file, PASS).unwrap();
        let agent = env.agent(&[
            ("AUTHDECK_PASSPHRASE", PASS),
            ("AUTHDECK_ETCD_PASSWORD", "etcd-pw-0123"),
            ("DEMO_ACCESS_TOKEN", &old_demo),
            ("NOTIFY_SOCKET", "@authdeck-hook-test-unused"),
        ]);
        let file = |event: &str, account: &str, ext: &str| {
            out_dir.join(format!("{event}.{account}.{ext}"))
        };
        let read_when_there = |p: &Path| {
            wait_until(&format!("{}", p.display()), Duration::from_secs(20), || {
                p.exists() && std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
            });
            std::thread::sleep(Duration::from_millis(100));
            std::fs::read_to_string(p).unwrap()
        };
        let refreshed = read_when_there(&file("refreshed", "demo", "env"));
        let needs_login = read_when_there(&file("needs_login", "gone", "env"));
        assert_eq!(
            std::fs::read_to_string(file("refreshed", "demo", "args")).unwrap(),
            "one argument; $(not a shell)\n",
            "argv as written, no shell"
        );
        // The hook that failed (exit 3) changed nothing: the refresh is in the vault.
        let rec = vault(&env).get("demo").unwrap().unwrap();
        assert_eq!(rec.refresh_count, 1);
        wait_until(
            "the failing hook in the log",
            Duration::from_secs(5),
            || agent.log_text().contains("hook on_refreshed"),
        );

        // A transient failure: the server answers 503 for a while.
        srv.inject(Fault::Status(503), 100, Endpoint::Token);
        make_due(&env, "demo");
        let failed = read_when_there(&file("refresh_failed", "demo", "env"));

        for (env_text, event, account) in [
            (&refreshed, "refreshed", "demo"),
            (&needs_login, "needs_login", "gone"),
            (&failed, "refresh_failed", "demo"),
        ] {
            let vars: Vec<&str> = env_text.lines().collect();
            assert!(
                vars.contains(&format!("AUTHDECK_ACCOUNT={account}").as_str()),
                "{env_text}"
            );
            assert!(
                vars.contains(&format!("AUTHDECK_EVENT={event}").as_str()),
                "{env_text}"
            );
            let reason = vars
                .iter()
                .find_map(|l| l.strip_prefix("AUTHDECK_REASON="))
                .unwrap_or_else(|| panic!("no reason: {env_text}"));
            assert!(!reason.is_empty(), "{event}");
            for name in [
                "AUTHDECK_PASSPHRASE",
                "AUTHDECK_ETCD_PASSWORD",
                "DEMO_ACCESS_TOKEN",
                "NOTIFY_SOCKET",
            ] {
                assert!(
                    !vars.iter().any(|l| l.starts_with(&format!("{name}="))),
                    "{event}: {name} reached the hook"
                );
            }
            for secret in &secrets {
                assert!(
                    !env_text.contains(secret.as_str()),
                    "{event}: a secret reached the hook"
                );
            }
        }
        let reason = |t: &str| {
            t.lines()
                .find_map(|l| l.strip_prefix("AUTHDECK_REASON="))
                .unwrap_or_default()
                .to_string()
        };
        assert!(reason(&needs_login).contains("login"), "{needs_login}");
        assert!(reason(&refreshed).contains("expires at"), "{refreshed}");
        assert!(reason(&failed).contains("503"), "{}", reason(&failed));
        // Still serving; REF-6 made `gone` need a login; the transient failure waits out a
        // backoff (AGENT-11).
        let r = agent.call(&token_frame("demo"));
        assert_eq!(r["ok"], true, "{r}");
        let r = agent.call(&token_frame("gone"));
        assert_eq!(r["error"]["code"], "needs_login", "{r}");
        let log = agent.log_text();
        assert!(
            log.lines().any(|l| l.contains("refresh failed")
                && l.contains("account=\"demo\"")
                && l.contains("kind=\"transient\"")
                && l.contains("next_try=")),
            "{log}"
        );
        for secret in &secrets {
            assert!(!log.contains(secret.as_str()), "a secret in the log");
        }
    })
    .await;
}

/// AGENT-13: with NOTIFY_SOCKET set (a path, or an `@abstract` name), the agent sends
/// `READY=1` once its socket answers, and `STOPPING=1` when it stops.
#[test]
fn agent13_sd_notify_ready_once_the_socket_answers() {
    use std::os::unix::net::UnixDatagram;
    let env = Env::new("http://127.0.0.1:9");
    let path = env.path("notify.sock");
    let by_path = UnixDatagram::bind(&path).unwrap();
    #[cfg(target_os = "linux")]
    let abstract_name = format!("authdeck-notify-{}-{}", std::process::id(), now());
    #[cfg(target_os = "linux")]
    let by_name = {
        use std::os::linux::net::SocketAddrExt;
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
        UnixDatagram::bind_addr(&addr).unwrap()
    };
    let mut cases = vec![(path.to_str().unwrap().to_string(), by_path)];
    #[cfg(target_os = "linux")]
    cases.push((format!("@{abstract_name}"), by_name));
    for (addr, listener) in cases {
        listener
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut child = env
            .cmd(&["agent"])
            .env("NOTIFY_SOCKET", &addr)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).expect("READY=1 within 20 s");
        assert_eq!(&buf[..n], b"READY=1", "{addr}");
        // Ready means answering, with no retry.
        let r = call(&env.sock(), r#"{"v":1,"verb":"status"}"#);
        assert_eq!(r["ok"], true, "{r}");
        let out = env.run(&["agent", "stop"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let n = listener.recv(&mut buf).expect("STOPPING=1");
        assert_eq!(&buf[..n], b"STOPPING=1", "{addr}");
        let status = child.wait().unwrap();
        assert!(status.success());
    }
}

/// The systemd user unit in contrib/ runs the agent in the foreground with readiness.
#[test]
fn agent13_the_systemd_unit_is_a_notify_service_of_the_foreground_agent() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/authdeck-agent.service"),
    )
    .unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    assert!(lines.contains(&"Type=notify"), "{unit}");
    assert!(lines.contains(&"NotifyAccess=main"), "{unit}");
    let exec = lines
        .iter()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    assert!(exec.ends_with("authdeck agent"), "{exec}");
}
