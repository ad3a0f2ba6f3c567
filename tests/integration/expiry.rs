//! Token lifetime edge cases against the devserver (EXP-3, EXP-4, USE-2) and the dashboard
//! scheduler's wall clock: a token of unknown lifetime is announced once per login/refresh and
//! never refreshed on a timer; a forward clock jump (suspend, resume) refreshes what fell due
//! within a tick or two; a backward jump refreshes nothing.

use crate::support::{paste_login, stderr, stdout};
use authdeck::app::driver::{DriverSettings, serve_with};
use authdeck::app::view::{AppEvent, Badge, FailureKind, LogKind, UiCommand};
use authdeck::app::{App, Settings};
use authdeck::devserver::{DevServer, DevServerConfig, Endpoint, Fault};
use authdeck::secret::{AccessToken, PastedRedirect, RefreshToken};
use authdeck::vault::{KeySource, Record, StoredState, Vault, VaultError, generate_key_file};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The broken `expires_in` values of the spec's table (EXP-3); `None` = left out.
fn unusable_values() -> [Option<Value>; 4] {
    [None, Some(json!(0)), Some(json!(-5)), Some(json!("abc"))]
}

fn devserver_config(expires_in: Option<Value>) -> DevServerConfig {
    DevServerConfig {
        auto_approve_device: true,
        omit_expires_in: expires_in.is_none(),
        expires_in_value: expires_in,
        ..DevServerConfig::default()
    }
}

fn account_toml(issuer: &str, extra: &str) -> String {
    format!(
        "extends = \"oidc\"\nissuer = \"{issuer}\"\n\
         authorization_endpoint = \"{issuer}/authorize\"\n\
         token_endpoint = \"{issuer}/token\"\n\
         client_id = \"demo-public\"\nscopes = [\"api\"]\n{extra}"
    )
}

/// A temp dir with accounts `acc0..n` logged in at `srv` (real tokens from the device grant),
/// each record shaped by `shape(now)` → `(obtained_at, expires_at)`, and an app on it.
async fn setup(
    srv: &DevServer,
    n: usize,
    shape: impl Fn(i64) -> (i64, Option<i64>),
) -> (tempfile::TempDir, Arc<App>) {
    setup_with(srv, n, shape, Settings::default().refresh_concurrency).await
}

/// [`setup`] with at most `concurrency` refreshes at once.
async fn setup_with(
    srv: &DevServer,
    n: usize,
    shape: impl Fn(i64) -> (i64, Option<i64>),
    concurrency: usize,
) -> (tempfile::TempDir, Arc<App>) {
    let dir = tempfile::tempdir().unwrap();
    let providers = dir.path().join("config/providers");
    std::fs::create_dir_all(&providers).unwrap();
    let key = dir.path().join("vault.key");
    generate_key_file(&key).unwrap();
    let vault = Vault::create(dir.path().join("vault.bin"), KeySource::KeyFile(key)).unwrap();
    let mut records = Vec::new();
    for i in 0..n {
        let name = format!("acc{i}");
        std::fs::write(
            providers.join(format!("{name}.toml")),
            account_toml(&srv.issuer(), ""),
        )
        .unwrap();
        let tok = crate::support::device_login(srv).await;
        let (obtained, expires) = shape(unix(SystemTime::now()));
        let rec = Record {
            provider: "oidc".into(),
            issuer: Some(srv.issuer()),
            client_id: Some("demo-public".into()),
            access_token: Some(AccessToken::new(tok["access_token"].as_str().unwrap())),
            refresh_token: Some(RefreshToken::new(tok["refresh_token"].as_str().unwrap())),
            token_type: Some("Bearer".into()),
            scopes: vec!["api".into()],
            obtained_at: Some(obtained),
            expires_at: expires,
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
    settings.refresh_concurrency = concurrency;
    let app = App::new(dir.path().join("config"), vault, settings).unwrap();
    (dir, Arc::new(app))
}

/// A wall clock the test moves: real time plus an offset.
#[derive(Clone, Default)]
struct FakeClock(Arc<Mutex<i64>>);

impl FakeClock {
    fn set_offset_secs(&self, secs: i64) {
        *self.0.lock().unwrap() = secs;
    }

    fn settings(&self, tick: Duration) -> DriverSettings {
        let offset = self.0.clone();
        DriverSettings {
            clock: Arc::new(move || {
                let off = *offset.lock().unwrap();
                let now = SystemTime::now();
                if off >= 0 {
                    now + Duration::from_secs(off as u64)
                } else {
                    now - Duration::from_secs(off.unsigned_abs())
                }
            }),
            tick,
            ..DriverSettings::default()
        }
    }
}

/// The dashboard back end on `app` with `settings`: its command sender and event receiver.
fn start_driver(
    app: Arc<App>,
    settings: DriverSettings,
) -> (UnboundedSender<UiCommand>, UnboundedReceiver<AppEvent>) {
    let (cmd_tx, cmd_rx) = unbounded_channel();
    let (ev_tx, ev_rx) = unbounded_channel();
    tokio::spawn(serve_with(app, cmd_rx, ev_tx, settings));
    (cmd_tx, ev_rx)
}

/// Events until `pred` matches one (returned), or `None` after `within`.
async fn wait_for(
    events: &mut UnboundedReceiver<AppEvent>,
    within: Duration,
    mut pred: impl FnMut(&AppEvent) -> bool,
) -> Option<AppEvent> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) if pred(&ev) => return Some(ev),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Everything that arrives during `period`.
async fn collect_for(events: &mut UnboundedReceiver<AppEvent>, period: Duration) -> Vec<AppEvent> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + period;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
        out.push(ev);
    }
    out
}

fn is_refreshing(ev: &AppEvent) -> bool {
    matches!(ev, AppEvent::AccountUpdated(v) if v.state == Badge::Refreshing)
}

fn is_refreshed(ev: &AppEvent) -> bool {
    matches!(ev, AppEvent::Log(e) if matches!(e.kind, LogKind::Refreshed { .. }))
}

fn is_expiry_warning(ev: &AppEvent) -> bool {
    matches!(ev, AppEvent::Log(e) if matches!(&e.kind, LogKind::Info(m) if m.contains("did not say when the token expires")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exp3_devserver_sends_each_unusable_expires_in_as_configured() {
    for value in unusable_values() {
        let srv = DevServer::start(devserver_config(value.clone()))
            .await
            .unwrap();
        let tok = crate::support::device_login(&srv).await;
        assert!(tok["access_token"].is_string(), "{tok}");
        assert_eq!(tok.get("expires_in"), value.as_ref(), "{tok}");
    }
}

/// EXP-3 "never loop on refreshes": an account whose tokens have no usable `expires_in` is
/// refreshed when asked (once, with one warning line), and then the scheduler leaves it alone
/// for two simulated days (one simulated hour per tick), for each broken value of the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exp3_scheduler_never_refreshes_an_unknown_expiry_on_a_timer() {
    for value in unusable_values() {
        let srv = DevServer::start(devserver_config(value.clone()))
            .await
            .unwrap();
        let (_dir, app) = setup(&srv, 1, |now| (now, None)).await;
        let clock = FakeClock::default();
        let (cmds, mut events) =
            start_driver(app.clone(), clock.settings(Duration::from_millis(20)));
        // A manual refresh: exactly one request, one "expiry unknown" warning.
        cmds.send(UiCommand::Refresh("acc0".into())).unwrap();
        let done = wait_for(&mut events, Duration::from_secs(10), is_refreshed).await;
        match done {
            Some(AppEvent::Log(e)) => {
                assert_eq!(e.kind, LogKind::Refreshed { new_expiry: None }, "{value:?}")
            }
            other => panic!("{value:?}: no refresh logged: {other:?}"),
        }
        let warning = wait_for(&mut events, Duration::from_secs(2), is_expiry_warning).await;
        assert!(warning.is_some(), "{value:?}: no expiry warning");
        assert_eq!(srv.stats().refreshes, 1, "{value:?}");
        let rec = app.current().unwrap().records["acc0"].clone();
        assert_eq!(rec.expires_at, None, "{value:?}: stored as unknown");
        assert_eq!(rec.refresh_count, 1);
        // Two simulated days, an hour per 20 ms tick: no refresh, no second warning.
        let mut seen = Vec::new();
        for hour in 1..=48 {
            clock.set_offset_secs(hour * 3600);
            seen.extend(collect_for(&mut events, Duration::from_millis(20)).await);
        }
        assert!(
            !seen
                .iter()
                .any(|e| is_refreshing(e) || is_refreshed(e) || is_expiry_warning(e)),
            "{value:?}: the scheduler touched it: {seen:?}"
        );
        assert_eq!(srv.stats().refreshes, 1, "{value:?}: refreshed on a timer");
        assert_eq!(
            srv.stats().token_requests,
            2,
            "{value:?}: login + one refresh"
        );
        cmds.send(UiCommand::Quit).unwrap();
    }
}

/// USE-2 applies to an unknown expiry: the server expires the token (after 1 s on its own
/// clock, moved ahead rather than slept through) without
/// having said so; the next request gets a 401, refreshes once and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exp3_use2_unknown_expiry_refreshes_once_on_401() {
    let srv = DevServer::start(DevServerConfig {
        access_token_ttl: Duration::from_secs(1),
        ..devserver_config(Some(json!("abc")))
    })
    .await
    .unwrap();
    let (_dir, app) = setup(&srv, 1, |now| (now, None)).await;
    let req = authdeck::app::request::HttpRequest {
        method: "GET".into(),
        url: srv.url("/api/echo"),
        headers: Vec::new(),
        body: None,
    };
    let first = app.request("acc0", &req).await.unwrap();
    assert_eq!((first.status, first.refreshed_after_401), (200, false));
    srv.advance_clock(Duration::from_millis(1300));
    let second = app.request("acc0", &req).await.unwrap();
    assert_eq!((second.status, second.refreshed_after_401), (200, true));
    assert_eq!(srv.stats().refreshes, 1);
    assert_eq!(app.current().unwrap().records["acc0"].expires_at, None);
}

/// A laptop wakes up: the wall clock jumps forward past the account's refresh point and the
/// scheduler refreshes it within a couple of ticks. Then the clock jumps back two days: no
/// refresh at all, however many ticks pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exp4_scheduler_refreshes_after_a_forward_clock_jump_and_not_after_a_backward_one() {
    let tick = Duration::from_millis(200);
    let srv = DevServer::start(devserver_config(Some(json!(3600))))
        .await
        .unwrap();
    // Due in real time (100 s left of an hour: inside the 6 min margin)...
    let (_dir, app) = setup(&srv, 1, |now| (now - 3500, Some(now + 100))).await;
    // ...but the scheduler's clock is still the evening before the suspend.
    let clock = FakeClock::default();
    clock.set_offset_secs(-86_400);
    let (cmds, mut events) = start_driver(app.clone(), clock.settings(tick));
    let quiet = collect_for(&mut events, tick * 5).await;
    assert!(!quiet.iter().any(is_refreshing), "not due yet: {quiet:?}");
    assert_eq!(srv.stats().refreshes, 0);

    clock.set_offset_secs(0);
    let jumped = Instant::now();
    let started = wait_for(
        &mut events,
        tick * 3 + Duration::from_millis(400),
        is_refreshing,
    )
    .await;
    assert!(
        started.is_some(),
        "no refresh within 3 ticks of the jump ({:?})",
        jumped.elapsed()
    );
    let done = wait_for(&mut events, Duration::from_secs(10), is_refreshed).await;
    assert!(done.is_some(), "the refresh did not finish");
    assert_eq!(srv.stats().refreshes, 1);
    let rec = app.current().unwrap().records["acc0"].clone();
    assert!(rec.expires_at.unwrap() > unix(SystemTime::now()) + 3000);

    // Backwards by two days, then ahead to real time again: nothing is due either way.
    clock.set_offset_secs(-2 * 86_400);
    let mut seen = collect_for(&mut events, tick * 8).await;
    clock.set_offset_secs(0);
    seen.extend(collect_for(&mut events, tick * 4).await);
    assert!(
        !seen.iter().any(|e| is_refreshing(e) || is_refreshed(e)),
        "refresh after a backward jump: {seen:?}"
    );
    assert_eq!(srv.stats().refreshes, 1, "no refresh storm");
    cmds.send(UiCommand::Quit).unwrap();
}

/// REF-7: a refresh refused with `invalid_client` is a configuration error. The dashboard's
/// scheduler logs it once with what to fix and no next try, and does not come back to it on a
/// backoff however far the clock moves; a manual refresh tries once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ref7_scheduler_does_not_retry_invalid_client_on_a_backoff() {
    let tick = Duration::from_millis(100);
    let srv = DevServer::start(devserver_config(Some(json!(3600))))
        .await
        .unwrap();
    // Due now (100 s left of an hour), logged in with a real refresh token...
    let (dir, app) = setup(&srv, 1, |now| (now - 3500, Some(now + 100))).await;
    drop(app);
    // ...but the account file now names a client the server does not know.
    let file = dir.path().join("config/providers/acc0.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("demo-public", "no-such-client")).unwrap();
    let vault = Vault::open(
        dir.path().join("vault.bin"),
        KeySource::KeyFile(dir.path().join("vault.key")),
    )
    .unwrap();
    let mut settings = Settings::default();
    settings.http.system_proxy = false;
    let app = Arc::new(App::new(dir.path().join("config"), vault, settings).unwrap());

    let clock = FakeClock::default();
    let (cmds, mut events) = start_driver(app.clone(), clock.settings(tick));
    let failed = wait_for(
        &mut events,
        Duration::from_secs(10),
        |ev| matches!(ev, AppEvent::Log(e) if matches!(e.kind, LogKind::Failed { .. })),
    )
    .await
    .expect("the scheduled refresh did not fail");
    let AppEvent::Log(entry) = failed else {
        unreachable!()
    };
    let LogKind::Failed {
        reason,
        next_try,
        kind,
    } = entry.kind
    else {
        unreachable!()
    };
    assert_eq!(kind, FailureKind::Misconfigured, "{reason}");
    assert_eq!(
        next_try, None,
        "invalid_client must not be retried: {reason}"
    );
    assert!(
        reason.contains("invalid_client") && reason.contains("client_id"),
        "the log says what to fix: {reason}"
    );
    let attempts = srv.stats().token_requests;

    // Past any backoff step (15 s .. 5 min): still nothing.
    for offset in [20, 120, 400, 3000] {
        clock.set_offset_secs(offset);
        let seen = collect_for(&mut events, tick * 5).await;
        assert!(
            !seen.iter().any(is_refreshing),
            "retried {offset} s later: {seen:?}"
        );
    }
    assert_eq!(srv.stats().token_requests, attempts, "no request was sent");
    let rec = app.current().unwrap().records["acc0"].clone();
    assert!(
        matches!(&rec.state, StoredState::Error { message } if message.contains("client_id")),
        "{:?}",
        rec.state
    );

    // The user asks: one more try, refused the same way.
    cmds.send(UiCommand::Refresh("acc0".into())).unwrap();
    let again = wait_for(&mut events, Duration::from_secs(10), |ev| {
        matches!(ev, AppEvent::Log(e) if matches!(e.kind, LogKind::Failed { kind: FailureKind::Misconfigured, next_try: None, .. }))
    })
    .await;
    assert!(again.is_some(), "the manual refresh was not tried");
    assert_eq!(srv.stats().token_requests, attempts + 1);
    cmds.send(UiCommand::Quit).unwrap();
}

/// A probe the driver answers at once: a paste for an account with no login in progress gets a
/// notice back without any network or disk work.
async fn probe_latency(
    cmds: &UnboundedSender<UiCommand>,
    events: &mut UnboundedReceiver<AppEvent>,
) -> Duration {
    let sent = Instant::now();
    cmds.send(UiCommand::SubmitPaste {
        account: "no-such-login".into(),
        input: PastedRedirect::new("probe"),
    })
    .unwrap();
    let answer = wait_for(
        events,
        Duration::from_secs(5),
        |e| matches!(e, AppEvent::Notice { message, .. } if message.contains("no-such-login")),
    )
    .await;
    assert!(answer.is_some(), "the driver never answered the probe");
    sent.elapsed()
}

/// The dashboard stays responsive while 100 refreshes are in flight against a slow token
/// endpoint (2 s each): had the command loop waited on them, a command would take 2 s or more.
/// Measured on two busy cores: most answers within a few ms; the tail (100-200 ms) comes when
/// the refreshes finish together and each encrypts and fsyncs the vault on an async worker
/// (`App::fresh_token`). The limits leave room for a loaded CI machine and still catch a loop
/// that blocks on the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_answers_commands_while_100_slow_refreshes_are_in_flight() {
    const N: usize = 100;
    let slow = Duration::from_secs(2);
    let srv = DevServer::start(devserver_config(Some(json!(3600))))
        .await
        .unwrap();
    let (_dir, app) = setup(&srv, N, |now| (now, Some(now + 3600))).await;
    srv.inject(Fault::Slow(slow), N as u32, Endpoint::Token);
    // The scheduler is not involved: nothing is due.
    let (cmds, mut events) = start_driver(app.clone(), DriverSettings::default());
    assert!(probe_latency(&cmds, &mut events).await < Duration::from_secs(1));
    cmds.send(UiCommand::RefreshAll).unwrap();
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while srv.stats().refreshes < N as u64 && Instant::now() < deadline {
        latencies.push(probe_latency(&cmds, &mut events).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        srv.stats().refreshes,
        N as u64,
        "not all refreshes finished"
    );
    assert!(latencies.len() >= 10, "too few probes: {latencies:?}");
    latencies.sort();
    let worst = latencies[latencies.len() - 1];
    let median = latencies[latencies.len() / 2];
    assert!(
        worst < slow * 3 / 4,
        "a command waited about as long as a token request: {latencies:?}"
    );
    assert!(
        median < Duration::from_millis(100),
        "the median command took {median:?}: {latencies:?}"
    );
    cmds.send(UiCommand::Quit).unwrap();
}

/// "Refresh all" from the dashboard keeps to `refresh_concurrency` token requests at once:
/// 12 refreshes of 400 ms each, 3 at a time, take at least four rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_refresh_all_keeps_to_the_concurrency_limit() {
    const N: usize = 12;
    let slow = Duration::from_millis(400);
    let srv = DevServer::start(devserver_config(Some(json!(3600))))
        .await
        .unwrap();
    let (_dir, app) = setup_with(&srv, N, |now| (now, Some(now + 3600)), 3).await;
    srv.inject(Fault::Slow(slow), N as u32, Endpoint::Token);
    let (cmds, _events) = start_driver(app.clone(), DriverSettings::default());
    let started = Instant::now();
    cmds.send(UiCommand::RefreshAll).unwrap();
    let deadline = started + Duration::from_secs(20);
    while srv.stats().refreshes < N as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        srv.stats().refreshes,
        N as u64,
        "not all refreshes finished"
    );
    // Unthrottled, all 12 would be answered after one delay (400 ms).
    let took = started.elapsed();
    assert!(
        took >= slow * 4,
        "12 refreshes, 3 at a time, took only {took:?}"
    );
    cmds.send(UiCommand::Quit).unwrap();
}

/// A config dir, a key-file vault and an account `demo` for the real binary.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(issuer: &str, extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("config/providers");
        std::fs::create_dir_all(&providers).unwrap();
        std::fs::write(
            providers.join("demo.toml"),
            format!(
                "extends = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"demo-public\"\n\
                 scopes = [\"openid\", \"email\", \"offline_access\"]\n{extra}"
            ),
        )
        .unwrap();
        generate_key_file(&dir.path().join("vault.key")).unwrap();
        Env { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::support::bin());
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AUTHDECK_CONFIG_DIR", self.path("config"))
            .env("AUTHDECK_VAULT", self.path("vault.bin"))
            .env("AUTHDECK_KEY_FILE", self.path("vault.key"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.cmd(args).output().unwrap();
        (out.status.success(), stdout(&out), stderr(&out))
    }
}

fn warnings(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.starts_with("authdeck: warning:") && l.contains("did not say when"))
        .count()
}

/// EXP-3 in the CLI: `login` and `refresh` of a token of unknown lifetime print the warning
/// once each; `token`, `--export` and `status` never do. With `default_lifetime_secs` there is
/// nothing to warn about and the default is the expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_exp3_warns_once_per_login_and_refresh_never_on_token_or_export() {
    let srv = DevServer::start(devserver_config(Some(json!(-5))))
        .await
        .unwrap();
    let issuer = srv.issuer();
    tokio::task::spawn_blocking(move || {
        let env = Env::new(&issuer, "");
        let login = paste_login(env.cmd(&["login", "demo", "--mode", "paste"]));
        assert_eq!(warnings(&stderr(&login)), 1, "login: {}", stderr(&login));
        assert!(stderr(&login).contains("401"), "{}", stderr(&login));
        for args in [
            &["token", "demo"][..],
            &["--export"],
            &["status"],
            &["token", "demo"],
        ] {
            let (ok, _, err) = env.run(args);
            assert!(ok, "{args:?}: {err}");
            assert_eq!(warnings(&err), 0, "{args:?} warned: {err}");
        }
        let (ok, out, _) = env.run(&["status", "--json"]);
        assert!(ok);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (v[0]["state"].as_str(), v[0]["expires_in"].as_i64()),
            (Some("valid"), None)
        );
        let (ok, _, err) = env.run(&["refresh", "demo"]);
        assert!(ok, "{err}");
        assert_eq!(warnings(&err), 1, "refresh: {err}");
        assert!(err.contains("expiry unknown"), "{err}");

        // The same server, but the account file names a default lifetime.
        let env = Env::new(&issuer, "default_lifetime_secs = 600\n");
        let login = paste_login(env.cmd(&["login", "demo", "--mode", "paste"]));
        assert_eq!(warnings(&stderr(&login)), 0, "{}", stderr(&login));
        let (ok, out, _) = env.run(&["status", "--json"]);
        assert!(ok);
        let v: Value = serde_json::from_str(&out).unwrap();
        let left = v[0]["expires_in"].as_i64().unwrap();
        assert!((590..=600).contains(&left), "the default lifetime: {left}");
        let (ok, _, err) = env.run(&["refresh", "demo"]);
        assert!(ok && warnings(&err) == 0, "{err}");
    })
    .await
    .unwrap();
    assert_eq!(srv.stats().refreshes, 2);
}

/// AGENT-12: the dashboard's scheduler runs the hooks too (the same `app::driver` as the
/// agent's): a due account it refreshes fires `on_refreshed` with the account and the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent12_the_dashboard_scheduler_runs_hooks_too() {
    let srv = DevServer::start(devserver_config(Some(json!(3600))))
        .await
        .unwrap();
    let (dir, app) = setup(&srv, 1, |now| (now - 3500, Some(now + 100))).await;
    drop(app);
    let out = dir.path().join("hook.env");
    std::fs::write(
        dir.path().join("config/config.toml"),
        format!(
            "[hooks]\non_refreshed = ['/bin/sh', '-c', 'env > \"$0\"', '{}']\n",
            out.display()
        ),
    )
    .unwrap();
    let vault = Vault::open(
        dir.path().join("vault.bin"),
        KeySource::KeyFile(dir.path().join("vault.key")),
    )
    .unwrap();
    let mut settings = Settings::default();
    settings.http.system_proxy = false;
    let app = Arc::new(App::new(dir.path().join("config"), vault, settings).unwrap());
    let clock = FakeClock::default();
    let (cmds, mut events) = start_driver(app, clock.settings(Duration::from_millis(100)));
    let done = wait_for(&mut events, Duration::from_secs(10), is_refreshed).await;
    assert!(
        done.is_some(),
        "the scheduler did not refresh the due account"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let env = loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.contains("AUTHDECK_REASON=") {
            break text;
        }
        assert!(Instant::now() < deadline, "the hook did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(env.contains("AUTHDECK_ACCOUNT=acc0\n"), "{env}");
    assert!(env.contains("AUTHDECK_EVENT=refreshed\n"), "{env}");
    cmds.send(UiCommand::Quit).unwrap();
}

/// MACH-1 in the dashboard's back end: a machine account without a token is a "machine" row,
/// never "needs login"; the login key fetches its token with the client credentials grant
/// (no login flow); and the scheduler renews it when due like any refreshable account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mach_1_dashboard_machine_account_row_login_key_and_scheduled_renewal() {
    use authdeck::app::view::LoginMode;
    use authdeck::devserver::DevClient;
    use authdeck::oauth::AuthMethod;
    let srv = DevServer::start(DevServerConfig {
        clients: vec![DevClient::confidential(
            "svc",
            "svc-secret",
            AuthMethod::Basic,
        )],
        access_token_ttl: Duration::from_secs(4),
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let providers = dir.path().join("config/providers");
    std::fs::create_dir_all(&providers).unwrap();
    // SAFETY: this test's own variable name; no other test reads it.
    unsafe { std::env::set_var("AUTHDECK_MACH1_DASH_SECRET", "svc-secret") };
    std::fs::write(
        providers.join("svc.toml"),
        format!(
            "extends = \"oidc\"\nissuer = \"{0}\"\ntoken_endpoint = \"{0}/token\"\n\
             client_id = \"svc\"\nclient_auth = \"basic\"\n\
             client_secret_env = \"AUTHDECK_MACH1_DASH_SECRET\"\n\
             grant = \"client_credentials\"\nscopes = [\"api\"]\n",
            srv.issuer()
        ),
    )
    .unwrap();
    let key = dir.path().join("vault.key");
    generate_key_file(&key).unwrap();
    let vault = Vault::create(dir.path().join("vault.bin"), KeySource::KeyFile(key)).unwrap();
    let mut settings = Settings::default();
    settings.http.system_proxy = false;
    let app = Arc::new(App::new(dir.path().join("config"), vault, settings).unwrap());
    let settings = DriverSettings {
        tick: Duration::from_millis(50),
        ..DriverSettings::default()
    };
    let (cmds, mut events) = start_driver(app.clone(), settings);

    let row = |ev: &AppEvent| match ev {
        AppEvent::AccountsLoaded(rows) => rows.iter().find(|r| r.name == "svc").cloned(),
        AppEvent::AccountUpdated(r) if r.name == "svc" => Some(r.clone()),
        _ => None,
    };
    let first = wait_for(&mut events, Duration::from_secs(10), |ev| row(ev).is_some())
        .await
        .and_then(|ev| row(&ev))
        .expect("the machine account is listed");
    assert!(first.machine, "flagged as a machine account");
    assert_eq!(first.state, Badge::Machine, "not 'needs login'");

    cmds.send(UiCommand::Login {
        account: "svc".into(),
        mode: LoginMode::Browser,
    })
    .unwrap();
    let got = wait_for(&mut events, Duration::from_secs(20), |ev| {
        row(ev).is_some_and(|r| r.state == Badge::Valid)
    })
    .await;
    assert!(got.is_some(), "the login key fetched a token");
    assert_eq!(srv.stats().client_credentials, 1);
    assert_eq!(
        srv.stats().code_exchanges + srv.stats().device_polls,
        0,
        "no login flow"
    );

    // Four-second tokens are due after two (EXP-4): the scheduler renews it on its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    while srv.stats().client_credentials < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        srv.stats().client_credentials >= 2,
        "the scheduler renewed the machine token"
    );
    drop(cmds);
}
