//! The agent end to end: the real binary, a passphrase vault, the devserver. Socket rules
//! (AGENT-1, AGENT-5), the peer check as another uid (AGENT-2), hostile frames (AGENT-3),
//! unlock / lock and the wrong-passphrase delay (AGENT-6, AGENT-7), start / status / stop.

use crate::support::agent::{Agent, Env, PASS, set_mode};
use crate::support::{blocking, devserver, stderr, stdout, wait_with_timeout};
use authdeck::devserver::DevServerConfig;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The direct path's token of `demo` (no agent), for comparison.
fn direct_token(env: &Env) -> String {
    env.direct_token("demo")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent6_agent7_unlock_once_lock_and_wrong_passphrase_delay() {
    let srv = devserver(DevServerConfig::default()).await;
    let env = Env::new(&srv.issuer());
    blocking(move || {
        env.login();
        let want = direct_token(&env);
        let agent = env.agent(&[]);
        // AGENT-1: the default directory under XDG_RUNTIME_DIR, created 0700.
        let meta = std::fs::metadata(env.path("run/authdeck")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        // Locked at start: a passphrase vault and no passphrase in the agent's environment.
        let r = agent.call(r#"{"v":1,"verb":"token","account":"demo"}"#);
        assert_eq!(r["ok"], false);
        assert_eq!(r["error"]["code"], "locked", "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("authdeck unlock")
        );
        let s = agent.call(r#"{"v":1,"verb":"status"}"#);
        assert_eq!(s["agent"]["state"], "locked", "{s}");
        assert_eq!(s["agent"]["non_dumpable"], true, "HARD-1 in the agent");
        assert!(
            s.get("accounts").is_none(),
            "nothing about accounts while locked"
        );

        // AGENT-7: wrong passphrases wait longer each time, and change nothing.
        let vault_before = std::fs::read(env.path("vault.bin")).unwrap();
        let mut waits = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let out = env.run_with_pass(&["unlock"], "not the passphrase");
            waits.push(t.elapsed());
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            assert!(
                stderr(&out).contains("wrong passphrase"),
                "{}",
                stderr(&out)
            );
        }
        assert!(waits[0] >= Duration::from_millis(200), "{waits:?}");
        assert!(waits[1] >= Duration::from_millis(400), "{waits:?}");
        assert!(waits[2] >= Duration::from_millis(800), "{waits:?}");
        assert_eq!(std::fs::read(env.path("vault.bin")).unwrap(), vault_before);
        assert_eq!(
            agent.call(r#"{"v":1,"verb":"status"}"#)["agent"]["state"],
            "locked"
        );

        // AGENT-6: one unlock, then tokens with no passphrase anywhere.
        let out = env.run_with_pass(&["unlock"], PASS);
        assert!(out.status.success(), "{}", stderr(&out));
        for _ in 0..3 {
            let r = agent.call(r#"{"v":1,"verb":"token","account":"demo"}"#);
            assert_eq!(r["ok"], true, "{r}");
            assert_eq!(r["token"], want.as_str());
        }
        let s = agent.call(r#"{"v":1,"verb":"status"}"#);
        assert_eq!(s["agent"]["state"], "unlocked");
        assert_eq!(s["agent"]["key"], "passphrase");
        assert_eq!(s["accounts"][0]["account"], "demo");
        // AGENT-4: no refresh token, id token or key anywhere in the status answer.
        let text = s.to_string();
        assert!(!text.contains("refresh_token\":\""), "{text}");
        assert!(!text.contains(&want), "status carries no access token");

        // Lock: locked again, and the next unlock needs the passphrase again.
        let out = env.run(&["lock"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let r = agent.call(r#"{"v":1,"verb":"token","account":"demo"}"#);
        assert_eq!(r["error"]["code"], "locked");
        let out = env.run(&["unlock"]);
        assert_eq!(out.status.code(), Some(1), "no terminal, no passphrase");

        // LOG-3: the agent's log holds neither the token nor any passphrase.
        let log = agent.log_text();
        assert!(log.contains("wrong passphrase"), "{log}");
        assert!(!log.contains(&want), "{log}");
        assert!(
            !log.contains(PASS) && !log.contains("not the passphrase"),
            "{log}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent5_start_status_stop_one_agent_per_vault_and_stale_sockets() {
    let srv = devserver(DevServerConfig::default()).await;
    let env = Env::new(&srv.issuer());
    blocking(move || {
        env.login();
        // `agent start` detaches, returns once the socket answers and prints its path; with the
        // passphrase in its environment it unlocks the agent too.
        let _stop = StopOnDrop(&env);
        let out = start_detached(&env);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), env.sock().display().to_string());
        let out = env.run(&["agent", "status", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["state"], "unlocked", "{s}");
        assert_eq!(s["forwarded"], false);
        assert_eq!(s["vault"], env.path("vault.bin").display().to_string());
        let lock_at = s["lock_at"].as_i64().unwrap();
        let now = authdeck::app::status::unix(std::time::SystemTime::now());
        assert!((now + 500..=now + 601).contains(&lock_at), "{s}");
        let pid = s["pid"].as_i64().unwrap();
        let human = env.run(&["agent", "status"]);
        assert!(stdout(&human).contains("this host"), "{}", stdout(&human));
        assert!(stdout(&human).contains("unlocked"), "{}", stdout(&human));

        // A second start says which agent runs.
        let out = env.run(&["agent", "start"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains(&format!("already runs at {}", env.sock().display()))
                && stderr(&out).contains(&format!("pid {pid}")),
            "{}",
            stderr(&out)
        );
        // One agent per vault, even on another socket.
        let other = env.path("run/other.sock");
        let out = env
            .cmd(&["agent"])
            .env("AUTHDECK_AGENT_SOCK", &other)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("already serves vault")
                && stderr(&out).contains(&format!("pid {pid}")),
            "{}",
            stderr(&out)
        );
        assert!(!other.exists());

        let out = env.run(&["agent", "stop"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!env.sock().exists(), "the socket is removed");
        let out = env.run(&["agent", "status"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("no agent answers"),
            "{}",
            stderr(&out)
        );

        // A killed agent leaves its socket; the next one replaces it.
        let mut agent = env.agent(&[]);
        agent.child.kill().unwrap();
        agent.child.wait().unwrap();
        assert!(env.sock().exists(), "SIGKILL leaves the socket behind");
        let agent = env.agent(&[]);
        let s = agent.call(r#"{"v":1,"verb":"status"}"#);
        assert_eq!(s["agent"]["pid"], agent.child.id());
        assert!(agent.log_text().contains("replacing a stale socket"));
        drop(agent);
        // Something that is not a socket is never removed.
        std::fs::remove_file(env.sock()).ok();
        std::fs::write(env.sock(), b"precious").unwrap();
        let out = env.run(&["agent"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("not a socket"), "{}", stderr(&out));
        assert_eq!(std::fs::read(env.sock()).unwrap(), b"precious");
    })
    .await;
}

/// Stops a detached agent however the test ends.
struct StopOnDrop<'a>(&'a Env);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["agent", "stop"]);
    }
}

#[test]
fn agent1_a_loose_or_foreign_socket_directory_is_refused() {
    let env = Env::new("http://127.0.0.1:9");
    let dir = env.path("run/authdeck");
    std::fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o755);
    let out = env.run(&["agent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("refusing agent directory") && stderr(&out).contains("0755"),
        "{}",
        stderr(&out)
    );
    assert!(!env.sock().exists());
    // Owned by another user: only testable as root (chown).
    if unsafe { libc::geteuid() } == 0 {
        set_mode(&dir, 0o700);
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let out = env.run(&["agent"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("not by you"), "{}", stderr(&out));
    }
}

/// AGENT-3: 1,000 hostile frames, each answered with its error code (or dropped when the
/// connection is cut mid-frame), and the agent still answers afterwards.
#[test]
fn agent3_a_thousand_hostile_frames_then_the_agent_still_answers() {
    let env = Env::new("http://127.0.0.1:9");
    let agent = env.agent(&[]);
    let big = "x".repeat(70 * 1024);
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (b"garbage\n".to_vec(), Some("bad_frame")),
        (b"{\"v\":1,\"verb\":\"token\"\n".to_vec(), Some("bad_frame")),
        (b"[1,2,3]\n".to_vec(), Some("bad_frame")),
        (b"\xff\xfe\x00\x01\n".to_vec(), Some("bad_frame")),
        (
            b"{\"v\":2,\"verb\":\"status\"}\n".to_vec(),
            Some("bad_version"),
        ),
        (b"{\"verb\":\"status\"}\n".to_vec(), Some("bad_version")),
        (
            b"{\"v\":1,\"verb\":\"give_me_everything\"}\n".to_vec(),
            Some("unknown_verb"),
        ),
        (
            b"{\"v\":1,\"verb\":\"token\",\"account\":[]}\n".to_vec(),
            Some("bad_request"),
        ),
        (big.as_bytes().to_vec(), Some("too_large")),
        (b"{\"v\":1,\"verb\":\"sta".to_vec(), None),
    ];
    for i in 0..1000 {
        let (frame, want) = &cases[i % cases.len()];
        let mut s = UnixStream::connect(&agent.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(frame).unwrap();
        if want.is_none() {
            // Cut mid-frame: the agent just drops the connection.
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        if let Some(code) = want {
            let v: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
            assert_eq!(v["error"]["code"], *code, "case {i}: {answer}");
            assert_eq!(answer.lines().count(), 1, "closed after the error answer");
        }
    }
    // Several requests on one connection still work, and the agent answers everyone.
    let mut s = UnixStream::connect(&agent.sock).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..3 {
        s.write_all(b"{\"v\":1,\"verb\":\"status\"}\n").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.contains("\"ok\":true"), "{line}");
    }
    let v = agent.call(r#"{"v":1,"verb":"status"}"#);
    assert_eq!(v["ok"], true);
}

/// AGENT-2: a process of another user that reaches the socket is refused and logged, and
/// learns nothing. Needs root (to become another uid with setpriv) and socat.
#[test]
fn agent2_a_connection_from_another_uid_is_refused() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to connect as another uid");
        return;
    }
    for tool in ["setpriv", "socat"] {
        assert!(
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .output()
                .unwrap()
                .status
                .success(),
            "{tool} is required (installed by .ci/run)"
        );
    }
    let env = Env::new("http://127.0.0.1:9");
    // A socket other users can reach (the default directory would stop them before the
    // agent sees them): a world-traversable directory, the socket opened up after binding.
    let open_dir = env.path("open");
    std::fs::create_dir(&open_dir).unwrap();
    set_mode(env.dir.path(), 0o755);
    set_mode(&open_dir, 0o755);
    let sock = open_dir.join("agent.sock");
    let agent = env.agent(&[("AUTHDECK_AGENT_SOCK", sock.to_str().unwrap())]);
    set_mode(&sock, 0o666);
    // socat only reads (-u): the agent answers before reading anything from a stranger.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "socat",
            "-u",
            "-T5",
        ])
        .arg(format!("UNIX-CONNECT:{}", sock.display()))
        .arg("-")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let answer = stdout(&out);
    assert!(
        answer.contains("\"forbidden\""),
        "{answer} / {}",
        stderr(&out)
    );
    assert!(
        !answer.contains("vault"),
        "nothing about the agent: {answer}"
    );
    let log = agent.log_text();
    assert!(
        log.contains("refused a connection from another user") && log.contains("65534"),
        "{log}"
    );
    // Its own user is still served.
    assert_eq!(agent.call(r#"{"v":1,"verb":"status"}"#)["ok"], true);
}

/// AGENT-8: `--lock-after` locks an idle agent by itself; `status` says when it will.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent8_lock_after_idle_time() {
    let srv = devserver(DevServerConfig::default()).await;
    let env = Env::new(&srv.issuer());
    blocking(move || {
        env.login();
        let agent = env.agent_with(&["--lock-after", "2s"], &[]);
        let out = env.run_with_pass(&["unlock"], PASS);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("locks after"), "{}", stderr(&out));
        let s = agent.call(r#"{"v":1,"verb":"status"}"#);
        assert!(s["agent"]["lock_at"].is_i64(), "{s}");
        // Requests keep it open…
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(700));
            let r = agent.call(r#"{"v":1,"verb":"token","account":"demo"}"#);
            assert_eq!(r["ok"], true, "{r}");
        }
        // …idle time locks it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = agent.call(r#"{"v":1,"verb":"status"}"#);
            if s["agent"]["state"] == "locked" {
                break;
            }
            assert!(Instant::now() < deadline, "never locked: {s}");
            std::thread::sleep(Duration::from_millis(200));
        }
        let r = agent.call(r#"{"v":1,"verb":"token","account":"demo"}"#);
        assert_eq!(r["error"]["code"], "locked");
        assert!(agent.log_text().contains("reason=\"idle\"") || agent.log_text().contains("idle"));
    })
    .await;
}

/// The command name of a running process (`/proc/PID/comm`, readable even for a non-dumpable
/// process): the executable's file name, at most 15 bytes.
fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// AGENT-18: `authdeck agent` becomes `authdeck-agent` (exec: the same pid) when it sits beside
/// `authdeck` in the same version, in the foreground and through `agent start`; it is hardened
/// (HARD-1), unlocks from the environment at start (AGENT-6) and serves tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent18_the_agent_is_authdeck_agent_when_it_sits_beside_authdeck() {
    let srv = devserver(DevServerConfig::default()).await;
    let env = Env::new(&srv.issuer());
    blocking(move || {
        assert!(
            crate::support::bin()
                .with_file_name("authdeck-agent")
                .is_file(),
            "cargo builds authdeck-agent beside authdeck"
        );
        env.login();
        let direct = direct_token(&env);
        let agent = env.agent(&[("AUTHDECK_PASSPHRASE", PASS)]);
        let pid = agent.child.id();
        assert_eq!(comm_of(pid), "authdeck-agent", "{}", agent.log_text());
        let s = agent.call(r#"{"v":1,"verb":"status"}"#);
        assert_eq!(s["agent"]["pid"], pid, "{s}");
        assert_eq!(s["agent"]["state"], "unlocked", "{s}");
        assert_eq!(s["agent"]["non_dumpable"], true, "{s}");
        let r = agent.call(r#"{"v":1,"verb":"token","account":"demo"}"#);
        assert_eq!(r["token"], direct.as_str(), "{r}");
        drop(agent);

        let _stop = StopOnDrop(&env);
        let out = start_detached(&env);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = env.run(&["agent", "status", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["state"], "unlocked", "{s}");
        assert!(s["lock_at"].is_i64(), "--lock-after passed on: {s}");
        let pid = u32::try_from(s["pid"].as_u64().unwrap()).unwrap();
        assert_eq!(comm_of(pid), "authdeck-agent");
        let out = env.run(&["token", "demo"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), direct);
    })
    .await;
}

/// AGENT-18: an `authdeck-agent` beside `authdeck` that answers another version is only asked
/// `--version`; the agent runs in the `authdeck` process and serves as before.
#[test]
fn agent18_an_authdeck_agent_of_another_version_is_not_run() {
    let env = Env::new("http://127.0.0.1:9");
    let dir = env.path("bin");
    std::fs::create_dir(&dir).unwrap();
    let authdeck = dir.join("authdeck");
    if std::fs::hard_link(crate::support::bin(), &authdeck).is_err() {
        std::fs::copy(crate::support::bin(), &authdeck).unwrap();
    }
    let asked = env.path("asked");
    std::fs::write(
        dir.join("authdeck-agent"),
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\necho 'authdeck-agent 0.0.0-other'\n",
            asked.display()
        ),
    )
    .unwrap();
    set_mode(&dir.join("authdeck-agent"), 0o755);
    let template = env.cmd(&[]);
    let log = env.path("agent-other.log");
    let mut c = Command::new(&authdeck);
    c.arg("agent")
        .env_clear()
        .envs(template.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let agent = Agent {
        child: c.spawn().unwrap(),
        sock: env.sock(),
        log,
    };
    agent.wait_ready();
    assert_eq!(
        comm_of(agent.child.id()),
        "authdeck",
        "{}",
        agent.log_text()
    );
    let s = agent.call(r#"{"v":1,"verb":"status"}"#);
    assert_eq!(s["agent"]["state"], "no_vault", "{s}");
    assert_eq!(
        std::fs::read_to_string(&asked).unwrap(),
        "--version\n",
        "only the version check ran"
    );
}

/// `agent start --lock-after 10m` with the passphrase in its environment (so it unlocks too);
/// returns once the command exits.
fn start_detached(env: &Env) -> std::process::Output {
    wait_with_timeout(
        env.cmd(&["agent", "start", "--lock-after", "10m"])
            .env("AUTHDECK_PASSPHRASE", PASS)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(30),
    )
}
