//! The account commands through the real binary against the in-process devserver: login in
//! each mode, token, status, --export (eval'd by sh and fish), refresh, revoke, logout,
//! request, exec, and single-flight refresh across ten processes.

use crate::support::{authorize_location, stderr, stdout, wait_with_timeout};
use authdeck::devserver::{DevServer, DevServerConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A config dir, a key-file vault and an account `demo` pointing at a devserver.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(issuer: &str) -> Env {
        Env::with_account(issuer, "demo", "")
    }

    fn with_account(issuer: &str, name: &str, extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("config/providers");
        std::fs::create_dir_all(&providers).unwrap();
        std::fs::write(
            providers.join(format!("{name}.toml")),
            format!(
                "extends = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"demo-public\"\n\
                 scopes = [\"openid\", \"email\", \"offline_access\"]\n{extra}"
            ),
        )
        .unwrap();
        let key = dir.path().join("vault.key");
        authdeck::vault::generate_key_file(&key).unwrap();
        Env { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.program(crate::support::bin().as_os_str());
        c.args(args);
        c
    }

    /// `program` with this environment (and nothing else from the test's).
    fn program(&self, program: &std::ffi::OsStr) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AUTHDECK_CONFIG_DIR", self.path("config"))
            .env("AUTHDECK_VAULT", self.path("vault.bin"))
            .env("AUTHDECK_KEY_FILE", self.path("vault.key"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `sh -c script` (or another shell) with this environment.
    fn shell(&self, shell: &str, script: &str) -> Output {
        let mut c = self.program(shell.as_ref());
        c.arg("-c").arg(script);
        c.output().unwrap()
    }

    fn token(&self) -> String {
        let out = self.run(&["token", "demo"]);
        assert!(out.status.success(), "token failed: {}", stderr(&out));
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }

    /// `login demo --mode paste`, answering with the redirect URL the server sends us to.
    fn login_paste(&self) {
        crate::support::paste_login(self.cmd(&["login", "demo", "--mode", "paste"]));
    }
}

async fn server(config: DevServerConfig) -> DevServer {
    DevServer::start(config).await.unwrap()
}

/// Runs blocking test code (child processes) off the runtime that serves the devserver.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_paste_login_then_token_status_export_refresh_logout() {
    let srv = server(DevServerConfig::default()).await;
    let env = Env::new(&srv.issuer());
    let stats_before = srv.stats();
    let env = blocking(move || {
        // No vault yet: a read says "needs login" (exit 3) and creates nothing.
        let out = env.run(&["token", "demo"]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(
            !env.path("vault.bin").exists(),
            "a read must not create the vault"
        );
        env.login_paste();
        env
    })
    .await;
    assert_eq!(srv.stats().code_exchanges, stats_before.code_exchanges + 1);
    let env = blocking(move || {
        let t1 = env.token();
        assert!(!t1.is_empty());
        // status --json
        let out = env.run(&["status", "--json"]);
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v[0]["account"], "demo");
        assert_eq!(v[0]["state"], "valid");
        assert_eq!(v[0]["identity"], "demo@authdeck.invalid");
        assert!(v[0]["expires_in"].as_i64().unwrap() > 3000);
        // --export eval'd by sh gives the same token back.
        let script = format!(
            "eval \"$('{}' --export)\"; printf %s \"$DEMO_ACCESS_TOKEN\"",
            crate::support::bin().display()
        );
        let out = env.shell("sh", &script);
        assert_eq!(stdout(&out), t1, "{}", stderr(&out));
        // refresh: a new token, and the status counts it.
        let out = env.run(&["refresh", "demo"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("refreshed"), "{}", stderr(&out));
        let t2 = env.token();
        assert_ne!(t1, t2, "refresh must give a new access token");
        // LOG-1: no token in anything the commands print besides `token` / `--export`.
        for args in [&["status"][..], &["status", "--json"], &["refresh", "demo"]] {
            let out = env.run(args);
            let all = format!("{}{}", stdout(&out), stderr(&out));
            let t3 = env.token();
            for t in [&t1, &t2, &t3] {
                assert!(!all.contains(t.as_str()), "`{args:?}` printed a token");
            }
        }
        let out = env.run(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v[0]["refresh_count"], 2, "two refreshes so far");
        // logout: needs login afterwards (exit 3).
        let out = env.run(&["logout", "demo"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = env.run(&["token", "demo"]);
        assert_eq!(out.status.code(), Some(3));
        env
    })
    .await;
    drop(env);
    assert_eq!(srv.stats().refreshes, 2);
}

/// Puts a record with `token` straight into the vault through the library.
fn seed(env: &Env, name: &str, token: &str) {
    use authdeck::secret::AccessToken;
    use authdeck::vault::{KeySource, Record, StoredState, Vault};
    let vault = Vault::open(
        env.path("vault.bin"),
        KeySource::KeyFile(env.path("vault.key")),
    )
    .unwrap();
    vault
        .update(|records| {
            records.insert(
                name.to_string(),
                Record {
                    provider: "oidc".into(),
                    access_token: Some(AccessToken::new(token)),
                    token_type: Some("Bearer".into()),
                    state: StoredState::Valid,
                    ..Record::default()
                },
            );
            Ok::<_, authdeck::vault::VaultError>(())
        })
        .unwrap();
}

#[test]
fn cli_export_of_a_hostile_token_is_eval_safe_in_sh_and_fish() {
    let hostile = "a'$(touch pwned)'b`touch pwned2`\"$HOME\\";
    let env = Env::new("https://as.example");
    seed(&env, "demo", hostile);
    let bin = crate::support::bin();
    let script = format!(
        "cd '{}' && eval \"$('{}' --export)\" && printf %s \"$DEMO_ACCESS_TOKEN\"",
        env.dir.path().display(),
        bin.display()
    );
    let out = env.shell("sh", &script);
    assert_eq!(stdout(&out), hostile, "{}", stderr(&out));
    assert!(!env.path("pwned").exists() && !env.path("pwned2").exists());
    if Command::new("fish").arg("--version").output().is_ok() {
        let script = format!(
            "cd '{}'; and '{}' --export --format fish | source; and printf %s \"$DEMO_ACCESS_TOKEN\"",
            env.dir.path().display(),
            bin.display()
        );
        let out = env.shell("fish", &script);
        assert_eq!(stdout(&out), hostile, "fish: {}", stderr(&out));
        assert!(!env.path("pwned").exists() && !env.path("pwned2").exists());
    }
}

#[test]
fn cli_export_names_a_failing_account_and_exits_partial() {
    let env = Env::new("https://as.example");
    seed(&env, "demo", "tok-good");
    std::fs::write(
        env.path("config/providers/other.toml"),
        "extends = \"oidc\"\nissuer = \"https://as.example\"\nclient_id = \"x\"\n",
    )
    .unwrap();
    let out = env.run(&["--export", "demo", "other"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), "export DEMO_ACCESS_TOKEN='tok-good'\n");
    assert!(stderr(&out).contains("other"));
}

#[test]
fn cli_export_and_token_from_the_account_index_see_every_edit() {
    let env = Env::new("https://as.example");
    seed(&env, "demo", "tok-demo");
    let index = authdeck::app::export::index_path(&env.path("vault.bin"));
    let loaded = env.run(&["--export"]);
    assert!(loaded.status.success(), "{}", stderr(&loaded));
    // Once the files are older than the racy window, the next run writes the index and the
    // runs after it answer from it: the same lines, the same token.
    std::thread::sleep(authdeck::provider::index::RACY + Duration::from_millis(300));
    assert_eq!(stdout(&env.run(&["--export"])), stdout(&loaded));
    assert!(index.exists(), "no index at {}", index.display());
    assert_eq!(
        stdout(&env.run(&["--export"])),
        "export DEMO_ACCESS_TOKEN='tok-demo'\n"
    );
    assert_eq!(env.token(), "tok-demo");
    // An edit shows at once.
    let file = env.path("config/providers/demo.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}export_var = \"RENAMED\"\n")).unwrap();
    assert_eq!(
        stdout(&env.run(&["--export"])),
        "export RENAMED='tok-demo'\n"
    );
    // A broken file is named, not hidden behind an old index.
    std::fs::write(&file, format!("{text}client_idd = \"typo\"\n")).unwrap();
    let out = env.run(&["--export"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("client_idd"), "{}", stderr(&out));
    let out = env.run(&["token", "demo"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("client_idd"), "{}", stderr(&out));
    // A removed account is no longer exported, whatever the vault still holds.
    std::fs::remove_file(&file).unwrap();
    let out = env.run(&["--export"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_request_exec_and_revoke() {
    let srv = server(DevServerConfig::default()).await;
    let env = Env::new(&srv.issuer());
    let userinfo = srv.url("/userinfo");
    let env = blocking(move || {
        env.login_paste();
        let out = env.run(&["request", "demo", &userinfo]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["email"], "demo@authdeck.invalid");
        // exec: the token in the environment, the exit code passed through.
        let token = env.token();
        let out = env.run(&[
            "exec",
            "demo",
            "--",
            "sh",
            "-c",
            "printf %s \"$DEMO_ACCESS_TOKEN\"; exit 7",
        ]);
        assert_eq!(out.status.code(), Some(7));
        assert_eq!(stdout(&out), token);
        let out = env.run(&["revoke", "demo"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = env.run(&["request", "demo", &userinfo]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "revoked: needs login; {}",
            stderr(&out)
        );
        env
    })
    .await;
    assert!(srv.stats().revocations >= 1);
    drop(env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_request_refreshes_once_on_401() {
    let srv = server(DevServerConfig::default()).await;
    let env = Env::new(&srv.issuer());
    let userinfo = srv.url("/userinfo");
    let env = blocking(move || {
        env.login_paste();
        env
    })
    .await;
    srv.inject(
        authdeck::devserver::Fault::Status(401),
        1,
        authdeck::devserver::Endpoint::Userinfo,
    );
    let before = srv.stats().refreshes;
    let env = blocking(move || {
        // USE-1: the devserver's userinfo takes the token only from `Authorization: Bearer`.
        let out = env.run(&["request", "demo", &userinfo]);
        assert!(out.status.success(), "USE-2: {}", stderr(&out));
        env
    })
    .await;
    assert_eq!(
        srv.stats().refreshes,
        before + 1,
        "USE-2: exactly one refresh"
    );
    drop(env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_device_login() {
    let srv = server(DevServerConfig {
        auto_approve_device: true,
        device_interval_secs: 1,
        ..DevServerConfig::default()
    })
    .await;
    let env = Env::new(&srv.issuer());
    blocking(move || {
        let child = env
            .cmd(&["login", "demo", "--mode", "device"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_with_timeout(child, Duration::from_secs(20));
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("enter the code"), "{}", stderr(&out));
        assert!(!env.token().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_browser_login_with_browser_command() {
    let srv = server(DevServerConfig::default()).await;
    let env = Env::new(&srv.issuer());
    blocking(move || {
        // $BROWSER records its argument; the test plays the browser from it. AUTHZ-1: it
        // arrives as the command's one argument (`$1`), no shell in between; HARD-12: it is
        // the path of a private page that forwards to the URL, not the URL.
        let url_file = env.path("url.txt");
        let script = env.path("browser.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf %s \"$1\" > '{}'\n", url_file.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let child = env
            .cmd(&["login", "demo", "--mode", "browser"])
            .env("BROWSER", &script)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !url_file.exists() || std::fs::read_to_string(&url_file).unwrap().is_empty() {
            assert!(Instant::now() < deadline, "browser command never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        let url = crate::support::handed_url(&std::fs::read_to_string(&url_file).unwrap());
        let location = authorize_location(&url);
        let page = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(location)
            .send()
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let out = wait_with_timeout(child, Duration::from_secs(20));
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!env.token().is_empty());
    })
    .await;
}

/// HL-2: paste mode prints the URL alone on the first line and keeps the loopback listener
/// running, so a redirect that reaches the listener (as through `ssh -L`) ends the login while
/// nothing is pasted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hl2_paste_mode_login_completes_through_the_listener() {
    let srv = server(DevServerConfig::default()).await;
    let env = Env::new(&srv.issuer());
    blocking(move || {
        let mut child = env
            .cmd(&["login", "demo", "--mode", "paste"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Held open and never written: the paste source stays silent.
        let stdin = child.stdin.take();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut url = String::new();
        std::io::BufRead::read_line(&mut out, &mut url).unwrap();
        assert!(
            url.starts_with("http://127.0.0.1:") && url.split_whitespace().count() == 1,
            "first stdout line: {url}"
        );
        let location = authorize_location(url.trim());
        let page = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(location)
            .send()
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let done = wait_with_timeout(child, Duration::from_secs(20));
        drop(stdin);
        assert!(done.status.success(), "{}", stderr(&done));
        assert!(!env.token().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_ten_parallel_token_calls_refresh_once() {
    // 4 s tokens: the EXP-4 margin is 2 s, so the token falls due 2 s after login.
    let srv = server(DevServerConfig {
        access_token_ttl: Duration::from_secs(4),
        ..DevServerConfig::default()
    })
    .await;
    let env = Env::new(&srv.issuer());
    let env = blocking(move || {
        env.login_paste();
        env
    })
    .await;
    let first = blocking({
        let out = env.run(&["status", "--json"]);
        move || out
    })
    .await;
    assert!(first.status.success());
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let before = srv.stats().refreshes;
    let env = Path::new(env.dir.path()).to_path_buf();
    let outputs = blocking(move || {
        let children: Vec<_> = (0..10)
            .map(|_| {
                Command::new(crate::support::bin())
                    .args(["token", "demo"])
                    .env("AUTHDECK_CONFIG_DIR", env.join("config"))
                    .env("AUTHDECK_VAULT", env.join("vault.bin"))
                    .env("AUTHDECK_KEY_FILE", env.join("vault.key"))
                    .env("NO_PROXY", "127.0.0.1")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|c| wait_with_timeout(c, Duration::from_secs(20)))
            .collect::<Vec<_>>()
    })
    .await;
    let tokens: std::collections::HashSet<String> = outputs
        .iter()
        .map(|o| {
            assert!(o.status.success(), "{}", stderr(o));
            stdout(o)
        })
        .collect();
    assert_eq!(
        srv.stats().refreshes - before,
        1,
        "REF-2: one refresh reaches the server"
    );
    assert_eq!(tokens.len(), 1, "all ten print the same new token");
}
