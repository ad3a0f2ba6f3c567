//! The dashboard as the agent's client (AGENT-14): the real binary in a pseudo-terminal,
//! attached to a real agent serving a passphrase vault at the devserver.

use crate::pty::last_osc52;
use crate::support::agent::{Env, PASS};
use crate::support::{authorize_location, stderr, wait_until};
use authdeck::devserver::{DevServer, DevServerConfig};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// The row of `account` on the screen shows a valid token.
fn valid_row(screen: &str, account: &str) -> bool {
    screen
        .lines()
        .any(|l| l.split_whitespace().any(|w| w == account) && l.contains("✓ valid"))
}

/// AGENT-14: the dashboard attaches to a running agent. It lists the agent's accounts and shows
/// the agent unlocked; a refresh from the dashboard is made by the agent (one at the server,
/// logged by the agent); a paste login and a device login started from the dashboard complete
/// in the agent; `L` locks the agent and the passphrase prompt unlocks it again; quitting
/// leaves the agent running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_14_the_dashboard_is_a_client_of_the_agent() {
    let srv = DevServer::start(DevServerConfig {
        device_interval_secs: 1,
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let srv = std::sync::Arc::new(srv);
    let issuer = srv.issuer();
    let server = srv.clone();
    tokio::task::spawn_blocking(move || {
        let srv = server;
        let env = Env::new(&issuer);
        env.account_file("second", &issuer);
        env.account_file("third", &issuer);
        env.login();
        let agent = env.agent(&[]);
        let out = env.run_with_pass(&["unlock"], PASS);
        assert!(out.status.success(), "{}", stderr(&out));

        let mut s = env.pty(&[], &[], 120, 40);
        s.wait_for("the agent's accounts and the agent unlocked", WAIT, |sc| {
            valid_row(sc, "demo") && sc.contains("agent ✓ unlocked") && sc.contains("third")
        });

        // A refresh from the dashboard is the agent's: one at the server, in the agent's log.
        let before = srv.stats().refreshes;
        s.send("r");
        wait_until("the refresh at the server", WAIT, || {
            srv.stats().refreshes > before
        });
        s.wait_for_text("refreshed", WAIT);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(srv.stats().refreshes, before + 1, "exactly one refresh");
        wait_until("the agent to log the refresh", WAIT, || {
            agent.log_text().contains("refreshed")
        });

        // A paste login of `second` through the agent.
        s.send("j");
        s.send("l");
        s.wait_for_text("Paste", WAIT);
        s.send("p");
        s.wait_for_text("u URL alone", WAIT);
        s.send("c");
        let mut url = None;
        wait_until("the OSC 52 copy of the URL", WAIT, || {
            url = last_osc52(&s.raw_output()).filter(|u| u.contains("/authorize?"));
            url.is_some()
        });
        s.send("\t");
        s.send(&authorize_location(&url.unwrap()));
        s.send("\r");
        s.wait_for("second logged in", WAIT, |sc| valid_row(sc, "second"));
        let answer = agent.call(r#"{"v":1,"verb":"token","account":"second"}"#);
        assert_eq!(
            answer["ok"], true,
            "the agent holds second's token: {answer}"
        );

        // A device login of `third` through the agent: the code comes in the event.
        s.send("j");
        s.send("l");
        s.wait_for_text("Device", WAIT);
        s.send("v");
        let screen = s.wait_for_text("enter the code", WAIT);
        let code = screen
            .lines()
            .skip_while(|l| !l.contains("enter the code"))
            .nth(1)
            .and_then(|l| l.split_whitespace().find(|w| w.contains('-')))
            .map(|w| {
                w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                    .to_string()
            })
            .unwrap_or_else(|| panic!("no user code on:\n{screen}"));
        assert!(srv.approve_device(&code), "device code {code} unknown");
        s.wait_for("third logged in", WAIT, |sc| valid_row(sc, "third"));
        let answer = agent.call(r#"{"v":1,"verb":"token","account":"third"}"#);
        assert_eq!(
            answer["ok"], true,
            "the agent holds third's token: {answer}"
        );

        // `L` locks the agent; the dashboard says so and asks for the passphrase.
        s.send("L");
        s.wait_for("the agent locked", WAIT, |sc| {
            sc.contains("agent ✗ locked") && sc.contains("Unlock the vault")
        });
        let status = agent.call(r#"{"v":1,"verb":"status"}"#);
        assert_eq!(status["agent"]["state"], "locked", "{status}");
        s.send(PASS);
        s.send("\r");
        s.wait_for("the agent unlocked again", WAIT, |sc| {
            sc.contains("agent ✓ unlocked") && valid_row(sc, "demo")
        });

        // Quitting the dashboard leaves the agent running.
        s.send("q");
        assert!(s.wait_exit(WAIT).success());
        let status = agent.call(r#"{"v":1,"verb":"status"}"#);
        assert_eq!(status["ok"], true, "{status}");
        assert_eq!(status["agent"]["state"], "unlocked", "{status}");
        drop(agent);
    })
    .await
    .unwrap();
}

/// AGENT-15: a frame that is not a dashboard command, on an attached connection, gets the
/// protocol's error answer (never repeating a value) and then the connection closes; the agent
/// goes on serving. Raw frames over the socket, as a hostile client would send them.
#[test]
fn agent15_a_bad_command_frame_gets_its_error_answer_then_the_close() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixStream;
    let env = Env::new("http://127.0.0.1:9");
    let agent = env.agent(&[]);
    let big = "x".repeat(70 * 1024);
    let cases: Vec<(Vec<u8>, &str, bool)> = vec![
        (b"garbage\n".to_vec(), "bad_frame", false),
        (b"{\"v\":1,\"command\":\n".to_vec(), "bad_frame", false),
        (b"[\"refresh_all\"]\n".to_vec(), "bad_frame", false),
        (
            b"{\"v\":2,\"command\":\"quit\"}\n".to_vec(),
            "bad_version",
            false,
        ),
        (
            b"{\"command\":\"refresh_all\"}\n".to_vec(),
            "bad_version",
            false,
        ),
        (
            b"{\"v\":1,\"command\":\"fly_away\"}\n".to_vec(),
            "unknown_verb",
            false,
        ),
        (
            b"{\"v\":1,\"command\":{\"steal\":\"demo\"}}\n".to_vec(),
            "unknown_verb",
            false,
        ),
        (
            b"{\"v\":1,\"command\":{\"refresh\":7}}\n".to_vec(),
            "bad_request",
            false,
        ),
        (
            b"{\"v\":1,\"command\":{\"submit_passphrase\":12345678}}\n".to_vec(),
            "bad_request",
            false,
        ),
        (big.into_bytes(), "too_large", false),
        // Cut off without its newline (the dashboard closed its writing side).
        (
            b"{\"v\":1,\"command\":\"refresh_all\"}".to_vec(),
            "bad_frame",
            true,
        ),
    ];
    for (frame, want, half_close) in &cases {
        let mut s = UnixStream::connect(&agent.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"{\"v\":1,\"verb\":\"attach\"}\n").unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.contains("\"ok\":true"), "attach answer: {line}");
        // The agent may close before reading all of an oversize frame: the write may fail.
        let _ = s.write_all(frame);
        if *half_close {
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        // Events may come first; then exactly one error answer; then the end.
        let answer = loop {
            let mut line = String::new();
            let n = r.read_line(&mut line).unwrap();
            assert!(n > 0, "{want}: closed without an error answer");
            if !line.starts_with("{\"v\":1,\"event\"") {
                break line;
            }
        };
        let v: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
        assert_eq!(v["ok"], false, "{answer}");
        assert_eq!(v["error"]["code"], *want, "{answer}");
        assert!(!answer.contains("12345678"), "a value repeated: {answer}");
        assert!(!answer.contains("steal"), "a value repeated: {answer}");
        let mut rest = String::new();
        let _ = r.read_to_string(&mut rest);
        assert!(rest.is_empty(), "{want}: more after the error: {rest}");
    }
    // The agent serves on, an attached dashboard included.
    assert_eq!(agent.call(r#"{"v":1,"verb":"status"}"#)["ok"], true);
    let mut s = UnixStream::connect(&agent.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"{\"v\":1,\"verb\":\"attach\"}\n{\"v\":1,\"command\":\"refresh_all\"}\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("\"ok\":true"), "{line}");
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"v\":1,\"event\""), "{line}");
}

/// The seconds of the header's "locks in Ns", when shown.
fn locks_in(screen: &str) -> Option<u64> {
    let rest = &screen[screen.find("locks in ")? + "locks in ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    match rest[digits.len()..].chars().next() {
        Some('s') => digits.parse().ok(),
        Some('m') => digits.parse::<u64>().ok().map(|m| m * 60),
        _ => None,
    }
}

/// AGENT-14, AGENT-8: the header counts down to the agent's idle lock (`--lock-after`); a
/// command from the dashboard starts the count again; reaching zero locks the agent, and the
/// dashboard shows it locked with the passphrase prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent14_the_header_counts_down_to_the_agents_idle_lock() {
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let issuer = srv.issuer();
    tokio::task::spawn_blocking(move || {
        let env = Env::new(&issuer);
        env.login();
        let agent = env.agent_with(&["--lock-after", "15s"], &[]);
        let out = env.run_with_pass(&["unlock"], PASS);
        assert!(out.status.success(), "{}", stderr(&out));
        let mut s = env.pty(&[], &[], 120, 40);
        let screen = s.wait_for("the countdown to the lock", WAIT, |sc| {
            sc.contains("agent ✓ unlocked, locks in ") && valid_row(sc, "demo")
        });
        let first = locks_in(&screen).unwrap_or_else(|| panic!("no countdown on:\n{screen}"));
        assert!((6..=15).contains(&first), "locks in {first}s:\n{screen}");
        // It counts down.
        let screen = s.wait_for("the countdown to move", WAIT, |sc| {
            locks_in(sc).is_some_and(|n| n + 5 <= first)
        });
        let low = locks_in(&screen).unwrap();
        // A command from the dashboard is activity: the count starts again.
        s.send("r");
        s.wait_for("the countdown to start again", WAIT, |sc| {
            locks_in(sc).is_some_and(|n| n >= low + 3)
        });
        // Idle until zero: the agent locks by itself and the dashboard asks for the passphrase.
        s.wait_for("the agent locked by its idle time", WAIT, |sc| {
            sc.contains("agent ✗ locked") && sc.contains("Unlock the vault")
        });
        let status = agent.call(r#"{"v":1,"verb":"status"}"#);
        assert_eq!(status["agent"]["state"], "locked", "{status}");
        // Esc at the prompt quits; the agent goes on.
        s.send("\x1b");
        assert!(s.wait_exit(WAIT).success());
        assert_eq!(agent.call(r#"{"v":1,"verb":"status"}"#)["ok"], true);
    })
    .await
    .unwrap();
}

/// AGENT-16: the agent goes away under an attached dashboard, killed and then stopped. The
/// dashboard stays up on the same screen, says the agent is gone, answers a key at once, and
/// attaches again when an agent answers (a new passphrase agent: the prompt unlocks it, and a
/// refresh from the dashboard is made by the new agent). `q` quits cleanly while no agent
/// runs, and the terminal is restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent16_the_dashboard_outlives_its_agent_and_reattaches() {
    let srv = std::sync::Arc::new(DevServer::start(DevServerConfig::default()).await.unwrap());
    let issuer = srv.issuer();
    let server = srv.clone();
    tokio::task::spawn_blocking(move || {
        let srv = server;
        let env = Env::new(&issuer);
        env.login();
        let mut first = env.agent(&[]);
        let out = env.run_with_pass(&["unlock"], PASS);
        assert!(out.status.success(), "{}", stderr(&out));
        let mut s = env.pty(&[], &[], 120, 40);
        s.wait_for("attached", WAIT, |sc| {
            valid_row(sc, "demo") && sc.contains("agent ✓ unlocked")
        });

        // Killed: the dashboard says so, keeps its screen, and answers a key at once.
        first.child.kill().unwrap();
        first.child.wait().unwrap();
        s.wait_for("the agent gone", WAIT, |sc| {
            sc.contains("agent ✗ gone, reattaching") && valid_row(sc, "demo")
        });
        assert!(s.alternate_screen(), "the dashboard left its screen");
        s.send("r");
        s.wait_for_text("the agent is gone: nothing was done", WAIT);
        assert!(s.alternate_screen());

        // A new agent (locked: a passphrase vault): the dashboard attaches and asks.
        let second = env.agent(&[]);
        s.wait_for("reattached to a locked agent", WAIT, |sc| {
            sc.contains("agent ✗ locked") && sc.contains("Unlock the vault")
        });
        s.send(PASS);
        s.send("\r");
        s.wait_for("the new agent unlocked", WAIT, |sc| {
            sc.contains("agent ✓ unlocked") && valid_row(sc, "demo")
        });
        assert_eq!(
            second.call(r#"{"v":1,"verb":"status"}"#)["agent"]["state"],
            "unlocked"
        );
        let before = srv.stats().refreshes;
        s.send("r");
        wait_until("the new agent's refresh", WAIT, || {
            srv.stats().refreshes > before
        });
        wait_until("the new agent to log it", WAIT, || {
            second.log_text().contains("refreshed")
        });

        // Stopped: gone again; `q` quits while no agent runs, the terminal restored.
        let out = env.run(&["agent", "stop"]);
        assert!(out.status.success(), "{}", stderr(&out));
        s.wait_for_text("agent ✗ gone, reattaching", WAIT);
        s.send("q");
        assert!(s.wait_exit(WAIT).success());
        assert!(!s.alternate_screen(), "the terminal was not restored");
        drop(second);
    })
    .await
    .unwrap();
}

/// Headless Chromium, as the proxy's SPA test finds it.
/// Which of `pids` hold a listening TCP socket on `port` (from /proc: the socket's inode in
/// /proc/net/tcp, among each process's open files).
fn listening_on(port: u16, pids: &[u32]) -> Vec<u32> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let inodes: Vec<String> = tcp
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            let inode = f.get(9)?;
            (local == port && *f.get(3)? == "0A").then(|| format!("socket:[{inode}]"))
        })
        .collect();
    assert!(!inodes.is_empty(), "nothing listens on port {port}");
    pids.iter()
        .copied()
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| {
                    d.flatten().any(|e| {
                        std::fs::read_link(e.path())
                            .is_ok_and(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
                    })
                })
                .unwrap_or(false)
        })
        .collect()
}

/// AGENT-14, HARD-12: a browser-mode login started from the attached dashboard. The dashboard
/// opens `$BROWSER` (a real headless Chromium) on the private hand-off page; the login's
/// loopback listener is the agent's (it holds the socket, the dashboard does not); Chromium
/// follows the page to the devserver and back to that listener; the dashboard shows the
/// account valid, and its token is then served by the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent14_a_browser_login_from_the_dashboard_completes_at_the_agents_listener() {
    let chromium = crate::support::chromium();
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let issuer = srv.issuer();
    tokio::task::spawn_blocking(move || {
        let env = Env::new(&issuer);
        env.account_file("second", &issuer);
        env.login();
        let agent = env.agent(&[]);
        let out = env.run_with_pass(&["unlock"], PASS);
        assert!(out.status.success(), "{}", stderr(&out));

        // $BROWSER records the page it is given and waits for the test before it browses.
        let arg = env.path("browser-arg");
        let go = env.path("browser-go");
        let script = env.path("browser.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s' \"$1\" > '{arg}'\n\
                 i=0; while [ ! -e '{go}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n\
                 exec {chromium} --headless --no-sandbox --disable-gpu --no-first-run \
                 --user-data-dir='{profile}' --virtual-time-budget=10000 --dump-dom \"$1\" \
                 >/dev/null 2>&1\n",
                arg = arg.display(),
                go = go.display(),
                profile = env.path("chromium-profile").display(),
            ),
        )
        .unwrap();
        crate::support::agent::set_mode(&script, 0o755);

        let browser = script.display().to_string();
        let mut s = env.pty(&[], &[("BROWSER", &browser)], 120, 40);
        s.wait_for("attached", WAIT, |sc| {
            valid_row(sc, "demo") && sc.contains("agent ✓ unlocked") && sc.contains("second")
        });
        s.send("j");
        s.send("l");
        s.wait_for_text("Browser", WAIT);
        s.send("b");
        wait_until("the dashboard to start $BROWSER", WAIT, || {
            std::fs::read_to_string(&arg).is_ok_and(|a| !a.is_empty())
        });
        let page = std::fs::read_to_string(&arg).unwrap();
        let url = crate::support::handed_url(&page);
        let url = reqwest::Url::parse(&url).unwrap();
        let redirect = url
            .query_pairs()
            .find(|(k, _)| k == "redirect_uri")
            .map(|(_, v)| reqwest::Url::parse(&v).unwrap())
            .expect("a redirect_uri");
        assert_eq!(redirect.host_str(), Some("127.0.0.1"), "{redirect}");
        let port = redirect.port().unwrap();
        let dashboard = s.pid().unwrap();
        assert_eq!(
            listening_on(port, &[agent.child.id(), dashboard]),
            vec![agent.child.id()],
            "the loopback listener must be the agent's, not the dashboard's"
        );

        std::fs::write(&go, "").unwrap();
        s.wait_for("second logged in through the browser", WAIT, |sc| {
            valid_row(sc, "second")
        });
        let answer = agent.call(r#"{"v":1,"verb":"token","account":"second"}"#);
        assert_eq!(
            answer["ok"], true,
            "the agent holds second's token: {answer}"
        );
        // A plain `token` (no passphrase anywhere) gets it from the agent.
        let out = env.run(&["token", "second"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            crate::support::stdout(&out).trim_end(),
            answer["token"].as_str().unwrap()
        );
        s.send("q");
        assert!(s.wait_exit(WAIT).success());
    })
    .await
    .unwrap();
}

/// AGENT-16: an agent that stops answering without closing (paused with SIGSTOP) is taken for
/// gone after its heartbeat has been silent for 10 s: the dashboard says so and answers keys at
/// once. Resumed, it answers the pending reattach, and the dashboard shows it unlocked again
/// (it kept its key) with no prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent16_a_paused_agent_is_taken_for_gone_and_reattached_when_it_resumes() {
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let issuer = srv.issuer();
    tokio::task::spawn_blocking(move || {
        let env = Env::new(&issuer);
        env.login();
        let agent = env.agent(&[]);
        let out = env.run_with_pass(&["unlock"], PASS);
        assert!(out.status.success(), "{}", stderr(&out));
        let mut s = env.pty(&[], &[], 120, 40);
        s.wait_for("attached", WAIT, |sc| {
            valid_row(sc, "demo") && sc.contains("agent ✓ unlocked")
        });
        let pid = agent.child.id() as i32;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        let paused = Instant::now();
        s.wait_for("the paused agent taken for gone", WAIT, |sc| {
            sc.contains("agent ✗ gone, reattaching") && sc.contains("stopped answering")
        });
        assert!(
            paused.elapsed() >= Duration::from_secs(5),
            "taken for gone after {:?}: too soon for a 10 s silence",
            paused.elapsed()
        );
        s.send("r");
        s.wait_for_text("the agent is gone: nothing was done", WAIT);
        assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
        s.wait_for("reattached to the resumed agent", WAIT, |sc| {
            sc.contains("agent ✓ unlocked") && valid_row(sc, "demo")
        });
        s.send("q");
        assert!(s.wait_exit(WAIT).success());
        assert_eq!(
            agent.call(r#"{"v":1,"verb":"status"}"#)["agent"]["state"],
            "unlocked"
        );
    })
    .await
    .unwrap();
}
