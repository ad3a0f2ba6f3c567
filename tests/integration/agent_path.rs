//! AGENT-9: every command through the agent and directly, compared byte for byte; a locked
//! agent (exit 5, and the offer to unlock on a terminal); one unlock then 100 `token` calls
//! with no passphrase anywhere; a socket forwarded like `ssh -R` to a "remote" side with an
//! empty config dir and no vault (AGENT-10).

use crate::support::agent::{Agent, Env, PASS, set_mode};
use crate::support::{blocking, stderr, stdout, wait_with_timeout};
use authdeck::devserver::{DevServer, DevServerConfig};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `support::agent::Env` with `git_urls` on the account, logged in, and an agent that is
/// unlocked.
fn unlocked(issuer: &str) -> (Env, Agent) {
    let env = Env::new(issuer);
    let file = env.path("config/providers/demo.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("git_urls = [\"https://git.example/\"]\n");
    std::fs::write(&file, text).unwrap();
    env.login();
    let agent = env.agent(&[]);
    let out = env.run_with_pass(&["unlock"], PASS);
    assert!(out.status.success(), "{}", stderr(&out));
    (env, agent)
}

/// `authdeck ARGS` with `stdin`, directly (`AUTHDECK_AGENT=off`, the passphrase in the
/// environment) or through the agent (no passphrase anywhere).
fn run(env: &Env, args: &[&str], stdin: &str, direct: bool) -> Output {
    let mut c = env.cmd(args);
    if direct {
        c.env("AUTHDECK_AGENT", "off")
            .env("AUTHDECK_PASSPHRASE", PASS);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    wait_with_timeout(child, Duration::from_secs(60))
}

/// Digits and time units masked, for output with times relative to now.
fn mask_digits(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.push(c);
        }
    }
    // A remaining time may cross a unit between the two runs ("1h 00m" then "59m 59s").
    for (from, to) in [
        ("#d #h", "#T"),
        ("#h #m", "#T"),
        ("#m #s", "#T"),
        ("#d", "#T"),
        ("#h", "#T"),
        ("#m", "#T"),
        ("#s", "#T"),
    ] {
        out = out.replace(from, to);
    }
    out
}

/// Runs `args` directly, then through the agent, and asserts the same stdout, stderr and exit
/// code; returns the agent's output.
#[track_caller]
fn same(env: &Env, args: &[&str], stdin: &str) -> Output {
    let direct = run(env, args, stdin, true);
    let agent = run(env, args, stdin, false);
    // `status` and `refresh` print times relative to now, which may tick between the two runs.
    let relative = matches!(args.first(), Some(&"status") | Some(&"refresh"));
    let text = |o: &Output| {
        let (out, err) = (stdout(o), stderr(o));
        if relative {
            (mask_digits(&out), mask_digits(&err))
        } else {
            (out, err)
        }
    };
    assert_eq!(
        (direct.status.code(), text(&direct)),
        (agent.status.code(), text(&agent)),
        "AGENT-9: `{}` differs between the direct path (left) and the agent (right)",
        args.join(" ")
    );
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_9_every_command_prints_the_same_through_the_agent_and_directly() {
    let srv = DevServer::start(DevServerConfig {
        resources: vec!["https://api.example.com/".into()],
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let issuer = srv.issuer();
    blocking(move || {
        let (env, agent) = unlocked(&issuer);
        let userinfo = format!("{issuer}/userinfo");
        let log_before = agent.log_text().lines().count();

        let out = same(&env, &["token", "demo"], "");
        assert!(out.status.success(), "{}", stderr(&out));
        let token = stdout(&out).trim().to_owned();
        assert!(!token.is_empty());
        for args in [
            &["token", "demo", "--min-valid", "10m"][..],
            &["token", "demo", "--format", "xoauth2"],
            &[
                "token",
                "demo",
                "--format",
                "oauthbearer",
                "--user",
                "me@example.com",
            ],
            &["token", "demo", "--scope", "openid email"],
            &["token", "demo", "--resource", "https://api.example.com/"],
            &["token", "demo", "--scope", "admin"],
            &["token", "nosuch"],
            &["--export"],
            &["--export", "demo", "--format", "fish"],
            &["export", "--format", "json"],
            &["export", "--format", "dotenv"],
            &["export", "--format", "powershell"],
            &["export", "demo", "nosuch"],
            &["export", "nosuch"],
            &["export", "demo", "--scope", "openid email"],
            &["export", "demo", "--scope", "admin"],
            &[
                "exec",
                "demo",
                "--",
                "sh",
                "-c",
                "printenv DEMO_ACCESS_TOKEN",
            ],
            &[
                "exec",
                "demo",
                "--scope",
                "openid",
                "--",
                "sh",
                "-c",
                "printenv DEMO_ACCESS_TOKEN",
            ],
            &["exec", "nosuch", "--", "true"],
            &["exec", "demo", "--", "sh", "-c", "exit 7"],
            &["request", "demo", &userinfo],
            &[
                "request",
                "demo",
                &format!("{issuer}/api/echo"),
                "-X",
                "POST",
                "-d",
                "x",
            ],
            &["request", "nosuch", &userinfo],
            &["status"],
            &["status", "--json"],
            &["kube-credential", "demo"],
            &["kube-credential", "demo", "--id-token"],
            &["kube-credential", "nosuch"],
            &["refresh", "demo"],
            &["refresh"],
            &["refresh", "--all"],
            &["refresh", "demo", "nosuch"],
        ] {
            same(&env, args, "");
        }
        let out = same(&env, &["--export"], "");
        assert!(
            stdout(&out).contains("DEMO_ACCESS_TOKEN="),
            "{}",
            stdout(&out)
        );
        let out = same(&env, &["exec", "demo", "--", "sh", "-c", "exit 7"], "");
        assert_eq!(out.status.code(), Some(7));
        let out = same(&env, &["export", "demo", "nosuch"], "");
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));

        // git's helper: a match, no match, a malformed request, and erase (GIT-4).
        let get = "protocol=https\nhost=git.example\n\n";
        let out = same(&env, &["git-credential", "get"], get);
        assert!(stdout(&out).contains("password="), "{}", stdout(&out));
        same(
            &env,
            &["git-credential", "get"],
            "protocol=https\nhost=other.example\n\n",
        );
        same(&env, &["git-credential", "get"], "no equals sign\n");
        same(&env, &["git-credential", "store"], get);
        let current = stdout(&run(&env, &["token", "demo"], "", false));
        let erase = format!(
            "protocol=https\nhost=git.example\npassword={}\n\n",
            current.trim()
        );
        same(&env, &["git-credential", "erase"], &erase);
        let after = stdout(&run(&env, &["token", "demo"], "", false));
        assert_ne!(
            after, current,
            "GIT-4 through the agent: the next token is a new one"
        );

        // logout and revoke change the vault: each path gets a fresh login.
        for verb in ["logout", "revoke"] {
            let direct = run(&env, &[verb, "demo"], "", true);
            env.login();
            let through = run(&env, &[verb, "demo"], "", false);
            assert_eq!(
                (direct.status.code(), stdout(&direct), stderr(&direct)),
                (through.status.code(), stdout(&through), stderr(&through)),
                "AGENT-9: `{verb} demo`"
            );
            assert!(direct.status.success(), "{}", stderr(&direct));
            // Logged out: the same "needs a login" both ways (exit 3).
            let out = same(&env, &["token", "demo"], "");
            assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
            same(&env, &["--export"], "");
            same(&env, &["status"], "");
            same(&env, &[verb, "demo"], "");
            env.login();
        }

        // The agent did the work: its log shows the requests' refreshes, never a token.
        let log = agent.log_text();
        assert!(log.lines().count() >= log_before, "{log}");
        assert!(!log.contains(&token), "LOG-3: no token in the agent's log");
        drop(agent);
    })
    .await;
}

/// AGENT-9: `AUTHDECK_AGENT=off` takes the vault even while an agent runs, and an agent of
/// another vault on this host sends the command back to its own vault (AGENT-10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_9_agent_10_off_and_another_vault_take_the_direct_path() {
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let issuer = srv.issuer();
    blocking(move || {
        let (env, agent) = unlocked(&issuer);
        env.run(&["lock"]);
        // Locked agent, AUTHDECK_AGENT=off: the vault directly, with the passphrase.
        let out = env
            .cmd(&["token", "demo"])
            .env("AUTHDECK_AGENT", "off")
            .env("AUTHDECK_PASSPHRASE", PASS)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        // Another vault (a copy, so the same token): the agent answers other_vault and the
        // command opens its own vault; a locked agent is never in the way.
        let copy = env.path("copy.bin");
        std::fs::copy(env.path("vault.bin"), &copy).unwrap();
        let out = env
            .cmd(&["token", "demo"])
            .env("AUTHDECK_VAULT", &copy)
            .env("AUTHDECK_PASSPHRASE", PASS)
            .output()
            .unwrap();
        assert!(out.status.success(), "AGENT-10: {}", stderr(&out));
        assert_eq!(stdout(&out), stdout(&direct(&env, &["token", "demo"])));
        drop(agent);
    })
    .await;
}

fn direct(env: &Env, args: &[&str]) -> Output {
    run(env, args, "", true)
}

/// AGENT-9: a locked agent, no terminal: how to unlock on stderr, nothing on stdout, exit 5,
/// for every command that needs a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_9_a_locked_agent_exits_5_with_how_to_unlock() {
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let issuer = srv.issuer();
    blocking(move || {
        let (env, agent) = unlocked(&issuer);
        let out = env.run(&["lock"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let want = "authdeck: the agent is locked: run `authdeck unlock`\n";
        for args in [
            &["token", "demo"][..],
            &["token", "demo", "--format", "xoauth2"],
            &["--export"],
            &["exec", "demo", "--", "true"],
            &["request", "demo", "http://127.0.0.1:9/"],
            &["status"],
            &["status", "--json"],
            &["refresh"],
            &["logout", "demo"],
            &["revoke", "demo"],
            &["kube-credential", "demo"],
        ] {
            let out = env.run(args);
            assert_eq!(
                (out.status.code(), stdout(&out), stderr(&out)),
                (Some(5), String::new(), want.to_owned()),
                "`{}`",
                args.join(" ")
            );
        }
        // GIT-3 still holds: git gets nothing and exit 0, the reason on stderr.
        let out = run(
            &env,
            &["git-credential", "get"],
            "protocol=https\nhost=git.example\n\n",
            false,
        );
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(stdout(&out), "");
        assert_eq!(stderr(&out), want);
        drop(agent);
    })
    .await;
}

/// AGENT-9: on a terminal a locked agent is unlocked right there, once: the passphrase is
/// asked for, sent to the agent, and the command goes on; a wrong one ends with exit 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_9_on_a_terminal_a_locked_agent_offers_to_unlock_once() {
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let issuer = srv.issuer();
    blocking(move || {
        let (env, agent) = unlocked(&issuer);
        let want = stdout(&direct(&env, &["token", "demo"])).trim().to_owned();
        env.run(&["lock"]);

        // A wrong passphrase: asked once, then exit 5 and still locked.
        let mut s = env.pty(&["token", "demo"], &[], 200, 20);
        s.wait_for_text("Vault passphrase:", Duration::from_secs(20));
        assert!(
            s.screen().contains("is locked; unlock it now"),
            "{}",
            s.screen()
        );
        s.send("not the passphrase\r");
        let status = s.wait_exit(Duration::from_secs(30));
        assert_eq!(status.exit_code(), 5, "{}", s.screen());
        let screen = s.screen();
        assert!(screen.contains("wrong passphrase"), "{screen}");
        assert_eq!(
            screen.matches("Vault passphrase:").count(),
            1,
            "offered once: {screen}"
        );
        assert_eq!(
            agent.call(r#"{"v":1,"verb":"status"}"#)["agent"]["state"],
            "locked"
        );

        // The right one: the agent is unlocked and the token printed.
        let mut s = env.pty(&["token", "demo"], &[], 200, 20);
        s.wait_for_text("Vault passphrase:", Duration::from_secs(20));
        s.send(&format!("{PASS}\r"));
        let status = s.wait_exit(Duration::from_secs(30));
        assert_eq!(status.exit_code(), 0, "{}", s.screen());
        assert!(s.screen().contains(&want), "{}", s.screen());
        assert!(!s.screen().contains(PASS), "the passphrase is not echoed");
        assert_eq!(
            agent.call(r#"{"v":1,"verb":"status"}"#)["agent"]["state"],
            "unlocked"
        );
        // Unlocked now: no prompt at all.
        let mut s = env.pty(&["status"], &[], 200, 20);
        let status = s.wait_exit(Duration::from_secs(30));
        assert_eq!(status.exit_code(), 0, "{}", s.screen());
        assert!(!s.screen().contains("passphrase"), "{}", s.screen());
        assert!(s.screen().contains("demo"), "{}", s.screen());
    })
    .await;
}

/// AGENT-6, AGENT-9: one unlock, then 100 `token` calls with no passphrase in any
/// environment and no terminal: each answered by the agent, none prompting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_9_one_unlock_then_a_hundred_tokens_with_no_prompt() {
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let issuer = srv.issuer();
    blocking(move || {
        let (env, agent) = unlocked(&issuer);
        let want = stdout(&direct(&env, &["token", "demo"]));
        let started = Instant::now();
        for i in 0..100 {
            let out = env.run(&["token", "demo"]);
            assert!(out.status.success(), "call {i}: {}", stderr(&out));
            assert_eq!(stdout(&out), want, "call {i}");
            assert_eq!(stderr(&out), "", "call {i}: nothing on stderr, no prompt");
        }
        eprintln!("100 token calls through the agent: {:?}", started.elapsed());
        drop(agent);
    })
    .await;
}

/// A `socat` forwarder from `remote` to `local`, as `ssh -R remote:local` makes; killed on
/// drop.
struct Forwarder(Child);

impl Forwarder {
    fn start(remote: &Path, local: &Path) -> Forwarder {
        assert!(
            Command::new("sh")
                .args(["-c", "command -v socat"])
                .output()
                .unwrap()
                .status
                .success(),
            "socat is required for the forwarding test (installed by .ci/run)"
        );
        let child = Command::new("socat")
            .arg(format!("UNIX-LISTEN:{},fork", remote.display()))
            .arg(format!("UNIX-CONNECT:{}", local.display()))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !remote.exists() {
            assert!(Instant::now() < deadline, "socat did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        Forwarder(child)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The "remote" side: an empty config dir, no vault, no passphrase, only the forwarded
/// socket.
fn remote_cmd(remote: &Path, home: &Path, args: &[&str], unshare_host: Option<&str>) -> Command {
    let mut c = match unshare_host {
        Some(host) => {
            let mut c = Command::new("unshare");
            c.args([
                "--uts",
                "sh",
                "-c",
                &format!("hostname {host} && exec \"$0\" \"$@\""),
            ])
            .arg(crate::support::bin());
            c
        }
        None => Command::new(crate::support::bin()),
    };
    let empty = home.join("config");
    std::fs::create_dir_all(&empty).unwrap();
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("AUTHDECK_CONFIG_DIR", &empty)
        .env("AUTHDECK_AGENT_SOCK", remote)
        .stdin(Stdio::null());
    c
}

/// Whether this machine lets the test give a child its own host name (root, a UTS namespace).
fn can_unshare_uts() -> bool {
    Command::new("unshare")
        .args(["--uts", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// AGENT-10 and SSH forwarding: through a socket forwarded like `ssh -R`, a side with no
/// vault and no account files gets `token` and `--export`; `agent status` names the serving
/// host; no refresh token ever reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_10_a_forwarded_socket_serves_a_side_with_no_vault() {
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let issuer = srv.issuer();
    blocking(move || {
        let (env, agent) = unlocked(&issuer);
        let want = stdout(&direct(&env, &["token", "demo"]));
        let export = stdout(&direct(&env, &["--export"]));
        let remote_home: PathBuf = env.path("remote");
        std::fs::create_dir(&remote_home).unwrap();
        set_mode(&remote_home, 0o700);
        let remote = remote_home.join("remote.sock");
        let _fwd = Forwarder::start(&remote, &agent.sock);

        let hosts: Vec<Option<&str>> = if can_unshare_uts() {
            vec![None, Some("remote-host")]
        } else {
            eprintln!("note: no UTS namespace here; the other-host case is not run");
            vec![None]
        };
        for host in hosts {
            let run = |args: &[&str]| {
                remote_cmd(&remote, &remote_home, args, host)
                    .output()
                    .unwrap()
            };
            let out = run(&["token", "demo"]);
            assert!(out.status.success(), "{host:?}: {}", stderr(&out));
            assert_eq!(stdout(&out), want);
            let out = run(&["--export"]);
            assert!(out.status.success(), "{host:?}: {}", stderr(&out));
            assert_eq!(stdout(&out), export);
            let out = run(&["status", "--json"]);
            assert!(out.status.success(), "{host:?}: {}", stderr(&out));
            assert!(!stdout(&out).contains(want.trim()), "status holds no token");

            let out = run(&["agent", "status", "--json"]);
            assert!(out.status.success(), "{}", stderr(&out));
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let here = authdeck::agent::socket::host_name();
            assert_eq!(s["host"], here.as_str(), "{s}");
            assert_eq!(s["client_socket"], remote.display().to_string());
            assert_eq!(s["forwarded"], host.is_some(), "{s}");
            let human = stdout(&run(&["agent", "status"]));
            match host {
                Some(h) => assert!(
                    human.contains(&format!("on host {here} (forwarded; this is {h})")),
                    "{human}"
                ),
                None => assert!(human.contains(&format!("on this host ({here})")), "{human}"),
            }
        }
        // Nothing was written on the remote side: no vault, no key, no refresh token.
        let mut files = Vec::new();
        for entry in walk(&remote_home) {
            if entry != remote {
                files.push(entry);
            }
        }
        assert!(
            files.iter().all(|p| p.is_dir()),
            "the remote side holds no files: {files:?}"
        );
        drop(agent);
    })
    .await;
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
