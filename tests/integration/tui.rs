//! The dashboard end to end: the real binary (`authdeck demo`) in a real pseudo-terminal, its
//! screen parsed by vt100. Opens, logs in in paste mode, counts down, refreshes, quits cleanly.

use crate::pty::{PtySession, last_osc52};
use crate::support::authorize_location;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// A fresh machine: a config dir with account `work` at `issuer`, a key file and no vault yet;
/// the dashboard on it in a 100×`rows` pseudo-terminal (on its own vault even if an agent
/// answers at the default socket).
fn key_file_dashboard(issuer: &str, rows: u16) -> (tempfile::TempDir, PtySession) {
    let dir = tempfile::tempdir().unwrap();
    let providers = dir.path().join("config/providers");
    std::fs::create_dir_all(&providers).unwrap();
    std::fs::write(
        providers.join("work.toml"),
        format!(
            "extends = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"demo-public\"\nscopes = [\"openid\", \"email\"]\n"
        ),
    )
    .unwrap();
    let s = key_file_dashboard_in(dir.path(), 100, rows);
    (dir, s)
}

/// The dashboard in a `cols`×`rows` pseudo-terminal on `dir`: its `config/`, and a key-file
/// vault there (the key made on first use), on its own vault even if an agent answers at the
/// default socket.
fn key_file_dashboard_in(dir: &std::path::Path, cols: u16, rows: u16) -> PtySession {
    let key = dir.join("vault.key");
    if !key.exists() {
        authdeck::vault::generate_key_file(&key).unwrap();
    }
    let vault = dir.join("vault.bin");
    let d = dir.to_str().unwrap();
    let config = format!("{d}/config");
    PtySession::spawn(
        &crate::support::bin(),
        &[],
        &[
            ("HOME", d),
            ("AUTHDECK_AGENT", "off"),
            ("AUTHDECK_CONFIG_DIR", &config),
            ("AUTHDECK_VAULT", vault.to_str().unwrap()),
            ("AUTHDECK_KEY_FILE", key.to_str().unwrap()),
            ("NO_PROXY", "127.0.0.1"),
        ],
        cols,
        rows,
    )
}

/// The seconds shown in the "Expires in" column of `account`'s row, e.g. `26s` → 26.
fn countdown(screen: &str, account: &str) -> Option<u64> {
    let row = screen
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == account) && l.contains("valid"))?;
    row.split_whitespace()
        .find_map(|w| w.strip_suffix('s').and_then(|n| n.parse().ok()))
}

/// In an open login picker: chooses paste mode, copies the URL through OSC 52 (`c`), has the
/// authorization server approve it, and pastes the redirect into the dialog.
fn dashboard_paste_login(s: &mut PtySession) {
    s.wait_for_text("Paste", WAIT);
    s.send("p");
    s.wait_for_text("paste mode", WAIT);
    // The URL has arrived (the hint shows only then): `c` before it would copy nothing.
    s.wait_for_text("u URL alone", WAIT);
    s.send("c");
    let deadline = Instant::now() + WAIT;
    let url = loop {
        if let Some(u) = last_osc52(&s.raw_output()) {
            break u;
        }
        assert!(Instant::now() < deadline, "no OSC 52 copy of the URL");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(url.contains("/authorize?"), "copied URL: {url}");
    s.send("\t");
    s.send(&authorize_location(&url));
    s.send("\r");
}

#[test]
fn tui_demo_paste_login_countdown_refresh_and_clean_exit() {
    let home = tempfile::tempdir().unwrap();
    let home_s = home.path().to_str().unwrap();
    let mut s = PtySession::spawn(
        &crate::support::bin(),
        &["demo"],
        &[
            ("HOME", home_s),
            // The dashboard on its own vault even if an agent answers at the default socket.
            ("AUTHDECK_AGENT", "off"),
            ("NO_PROXY", "127.0.0.1"),
            ("TMPDIR", home_s),
        ],
        100,
        30,
    );
    // The dashboard opens with the live demo account valid.
    let screen = s.wait_for("the demo account valid", WAIT, |sc| {
        sc.contains("demo-device") && countdown(sc, "demo").is_some()
    });
    assert!(
        s.alternate_screen(),
        "the dashboard uses the alternate screen"
    );
    let first = countdown(&screen, "demo").unwrap();

    // Log the second account in with paste mode.
    s.send("j");
    s.wait_for_text("Demo, logged out", WAIT);
    s.send("l");
    dashboard_paste_login(&mut s);
    s.wait_for("the paste login to finish", WAIT, |sc| {
        sc.contains("logged in") && countdown(sc, "demo-device").is_some()
    });

    // The countdown ticks down.
    std::thread::sleep(Duration::from_millis(2200));
    let later = countdown(&s.screen(), "demo").expect("demo countdown");
    assert!(
        later < first,
        "countdown should decrease: {first} then {later}"
    );

    // A manual refresh of `demo` shows up in the refresh panel.
    s.send("k");
    s.send("r");
    s.wait_for("a refresh in the panel", WAIT, |sc| {
        sc.contains("refreshed")
    });

    // q quits and restores the terminal.
    s.send("q");
    let status = s.wait_exit(WAIT);
    assert!(status.success(), "exit status {status:?}");
    assert!(
        !s.alternate_screen(),
        "terminal restored to the main screen"
    );
    let main_screen = s.screen();
    assert!(
        !main_screen.contains("/authorize?"),
        "nothing of the login is left on the main screen:\n{main_screen}"
    );
}

#[test]
fn tui_asks_for_the_passphrase_inside_the_dashboard_and_again_when_wrong() {
    use authdeck::secret::{AccessToken, Passphrase};
    use authdeck::vault::{KeySource, Record, StoredState, Vault};
    let dir = tempfile::tempdir().unwrap();
    let providers = dir.path().join("config/providers");
    std::fs::create_dir_all(&providers).unwrap();
    std::fs::write(
        providers.join("work.toml"),
        "extends = \"oidc\"\nissuer = \"https://as.example\"\nclient_id = \"x\"\n",
    )
    .unwrap();
    let vault_path = dir.path().join("vault.bin");
    let vault = Vault::create(
        &vault_path,
        KeySource::Passphrase(Passphrase::new("right one")),
    )
    .unwrap();
    vault
        .update(|r| {
            r.insert(
                "work".into(),
                Record {
                    access_token: Some(AccessToken::new("tok")),
                    state: StoredState::Valid,
                    ..Record::default()
                },
            );
            Ok::<_, authdeck::vault::VaultError>(())
        })
        .unwrap();
    let d = dir.path().to_str().unwrap();
    let config = format!("{d}/config");
    let mut s = PtySession::spawn(
        &crate::support::bin(),
        &[],
        &[
            ("HOME", d),
            // The dashboard on its own vault even if an agent answers at the default socket.
            ("AUTHDECK_AGENT", "off"),
            ("AUTHDECK_CONFIG_DIR", &config),
            ("AUTHDECK_VAULT", vault_path.to_str().unwrap()),
        ],
        100,
        30,
    );
    s.wait_for_text("Passphrase", WAIT);
    s.send("wrong one\r");
    s.wait_for_text("Wrong passphrase", WAIT);
    s.send("right one\r");
    s.wait_for("the unlocked account list", WAIT, |sc| {
        sc.contains("work") && sc.contains("valid") && !sc.contains("Wrong passphrase")
    });
    let screen = s.screen();
    assert!(
        !screen.contains("right one"),
        "the passphrase is never shown"
    );
    s.send("q");
    assert!(s.wait_exit(WAIT).success());
    assert!(!s.alternate_screen());
}

/// Paste mode over SSH: `u` leaves the alternate screen and prints the authorization URL alone
/// on the normal screen, in one piece (no line break inserted, no box), as an OSC 8 hyperlink on
/// an xterm; any key brings the dashboard back with the dialog still open.
#[test]
fn tui_paste_mode_shows_the_url_alone_on_the_normal_screen() {
    let home = tempfile::tempdir().unwrap();
    let home_s = home.path().to_str().unwrap();
    // 80 columns: the URL is longer, so the terminal soft-wraps it.
    let mut s = PtySession::spawn(
        &crate::support::bin(),
        &["demo"],
        &[
            ("HOME", home_s),
            // The dashboard on its own vault even if an agent answers at the default socket.
            ("AUTHDECK_AGENT", "off"),
            ("NO_PROXY", "127.0.0.1"),
            ("TMPDIR", home_s),
        ],
        80,
        30,
    );
    s.wait_for("the demo accounts", WAIT, |sc| sc.contains("demo-device"));
    s.send("j");
    s.wait_for_text("Demo, logged out", WAIT);
    s.send("l");
    s.wait_for_text("Paste", WAIT);
    s.send("p");
    s.wait_for_text("u URL alone", WAIT);
    s.send("c");
    let deadline = Instant::now() + WAIT;
    let url = loop {
        if let Some(u) = last_osc52(&s.raw_output()) {
            break u;
        }
        assert!(Instant::now() < deadline, "no OSC 52 copy of the URL");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(url.len() > 80, "the URL is longer than a line: {url}");
    let before = s.raw_output().len();
    s.send("u");
    let screen = s.wait_for("the URL on the normal screen", WAIT, |sc| {
        sc.contains("Press any key to return")
    });
    assert!(
        !s.alternate_screen(),
        "the URL is shown on the normal screen"
    );
    // One piece: the screen's text (soft-wrapped rows joined) holds the whole URL, and the bytes
    // written hold it with no line break in it.
    assert!(screen.contains(&url), "URL not in one piece:\n{screen}");
    for box_char in ['│', '─', '┌', '└', '╭'] {
        assert!(
            !screen.contains(box_char),
            "a box on the normal screen:\n{screen}"
        );
    }
    let raw = s.raw_output();
    let written = String::from_utf8_lossy(&raw[before..]);
    assert!(
        written.contains(&format!("\x1b]8;;{url}\x1b\\{url}\x1b]8;;\x1b\\")),
        "an OSC 8 hyperlink on xterm-256color: {written:?}"
    );
    // Any key returns to the dashboard, the dialog still open.
    s.send(" ");
    s.wait_for("the dashboard back", WAIT, |sc| sc.contains("u URL alone"));
    assert!(s.alternate_screen());
    s.send("\x1b");
    s.wait_for("the dialog closed", WAIT, |sc| !sc.contains("u URL alone"));
    s.send("q");
    assert!(s.wait_exit(WAIT).success());
}

/// A first login from the dashboard on a fresh machine creates the vault with the configured
/// key (regression: the dashboard used to open a missing vault without a key source).
#[test]
fn tui_first_login_from_the_dashboard_creates_the_vault() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt
        .block_on(authdeck::devserver::DevServer::start(
            authdeck::devserver::DevServerConfig::default(),
        ))
        .unwrap();
    let (dir, mut s) = key_file_dashboard(&srv.issuer(), 30);
    let vault = dir.path().join("vault.bin");
    s.wait_for_text("needs login", WAIT);
    s.send("l");
    dashboard_paste_login(&mut s);
    s.wait_for("the login to finish", WAIT, |sc| {
        sc.contains("logged in") && countdown(sc, "work").is_some()
    });
    s.send("q");
    assert!(s.wait_exit(WAIT).success());
    assert!(vault.exists(), "the first login created the vault");
    drop(srv);
}

/// An account file that does not validate stays in the dashboard: a row with its error
/// (`FILE:LINE:COL`), counted in the header; one valid account reads "1 account".
#[test]
fn tui_invalid_account_file_is_a_row_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let providers = dir.path().join("config/providers");
    std::fs::create_dir_all(&providers).unwrap();
    std::fs::write(
        providers.join("work.toml"),
        "extends = \"oidc\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"c\"\n",
    )
    .unwrap();
    std::fs::write(
        providers.join("broken.toml"),
        "extends = \"google\"\nclient_id = \"c\"\nscope = [\"email\"]\n",
    )
    .unwrap();
    let mut s = key_file_dashboard_in(dir.path(), 240, 40);
    let screen = s.wait_for("the invalid row", WAIT, |sc| {
        sc.contains("2 accounts") && sc.contains("1 invalid") && sc.contains("broken")
    });
    assert!(screen.contains("invalid"), "{screen}");
    // The row is selected first (sorted by name): its details show the error and position.
    let screen = s.wait_for("the error", WAIT, |sc| sc.contains("broken.toml:3:1"));
    assert!(screen.contains("unknown field"), "{screen}");
    s.send("q");
    assert!(s.wait_exit(WAIT).success());

    std::fs::remove_file(providers.join("broken.toml")).unwrap();
    let mut s = key_file_dashboard_in(dir.path(), 240, 40);
    let screen = s.wait_for_text("1 account", WAIT);
    assert!(!screen.contains("1 accounts"), "{screen}");
    s.send("q");
    assert!(s.wait_exit(WAIT).success());
}

/// HARD-4 in the dashboard: a device answer with `expires_in` = 2^63 − 1 used to panic a
/// worker, after which the panic hook restored the terminal under a still-running dashboard
/// and `q` no longer worked. Now the code shows with a bounded countdown, Esc cancels, and `q`
/// quits cleanly.
#[test]
fn tui_hard4_a_huge_device_expires_in_leaves_the_dashboard_usable() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = rt
        .block_on(authdeck::devserver::DevServer::start(
            authdeck::devserver::DevServerConfig {
                hostile: authdeck::devserver::Hostile {
                    device_expires_in: Some(serde_json::json!(9_223_372_036_854_775_807_u64)),
                    ..Default::default()
                },
                ..Default::default()
            },
        ))
        .unwrap();
    let (_dir, mut s) = key_file_dashboard(&srv.issuer(), 40);
    s.wait_for_text("needs login", WAIT);
    s.send("l");
    s.wait_for_text("Device", WAIT);
    s.send("v");
    s.wait_for_text("waiting for approval", WAIT);
    assert!(s.alternate_screen(), "the dashboard is still on its screen");
    s.send("\x1b");
    std::thread::sleep(Duration::from_millis(300));
    s.send("q");
    let status = s.wait_exit(WAIT);
    assert!(status.success(), "exit status {status:?}");
    assert!(!s.alternate_screen(), "terminal restored");
    drop(srv);
}
