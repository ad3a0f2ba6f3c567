//! The dashboard as the agent's client (AGENT-14): the real binary in a pseudo-terminal,
//! attached to a real agent serving a passphrase vault at the devserver.

use crate::agent::{Env, PASS};
use crate::pty::PtySession;
use crate::support::{authorize_location, stderr};
use authdeck::devserver::{DevServer, DevServerConfig};
use base64::Engine;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn account_file(env: &Env, name: &str, issuer: &str) {
    std::fs::write(
        env.path(&format!("config/providers/{name}.toml")),
        format!(
            "extends = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"demo-public\"\n\
             scopes = [\"openid\", \"email\", \"offline_access\"]\n"
        ),
    )
    .unwrap();
}

/// The environment `Env::cmd` gives (no passphrase anywhere), for a pseudo-terminal session.
fn pty_env(env: &Env) -> Vec<(&'static str, String)> {
    vec![
        ("HOME", env.dir.path().display().to_string()),
        ("XDG_RUNTIME_DIR", env.path("run").display().to_string()),
        (
            "AUTHDECK_CONFIG_DIR",
            env.path("config").display().to_string(),
        ),
        (
            "AUTHDECK_VAULT",
            env.path("vault.bin").display().to_string(),
        ),
        ("NO_PROXY", "127.0.0.1,localhost".into()),
    ]
}

/// The text copied through OSC 52, the last one written.
fn last_osc52(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let start = text.rfind("\x1b]52;c;")? + "\x1b]52;c;".len();
    let rest = &text[start..];
    let end = rest.find(['\x07', '\x1b'])?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&rest[..end])
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The row of `account` on the screen shows a valid token.
fn valid_row(screen: &str, account: &str) -> bool {
    screen
        .lines()
        .any(|l| l.split_whitespace().any(|w| w == account) && l.contains("✓ valid"))
}

fn wait_until(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
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
        account_file(&env, "second", &issuer);
        account_file(&env, "third", &issuer);
        env.login();
        let agent = env.agent(&[]);
        let out = env.run_with_pass(&["unlock"], PASS);
        assert!(out.status.success(), "{}", stderr(&out));

        let envs = pty_env(&env);
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut s = PtySession::spawn(&crate::support::bin(), &[], &envs, 120, 40);
        s.wait_for("the agent's accounts and the agent unlocked", WAIT, |sc| {
            valid_row(sc, "demo") && sc.contains("agent ✓ unlocked") && sc.contains("third")
        });

        // A refresh from the dashboard is the agent's: one at the server, in the agent's log.
        let before = srv.stats().refreshes;
        s.send("r");
        wait_until("the refresh at the server", || {
            srv.stats().refreshes > before
        });
        s.wait_for_text("refreshed", WAIT);
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(srv.stats().refreshes, before + 1, "exactly one refresh");
        wait_until("the agent to log the refresh", || {
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
        wait_until("the OSC 52 copy of the URL", || {
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
