//! Each bundled template against a mimic of its provider (PROV-1): the devserver with the
//! provider's personality (its paths and documented quirks), the template loaded unchanged
//! except for its URLs, and the real `authdeck` binary doing what a user does: log in in every
//! mode the provider offers (paste mode is scriptable; the device grant is approved at the
//! mimic), refresh twice, revoke, and the provider's known error paths.

use crate::support::{authorize_location, bin, paste_login, stderr, stdout, wait_with_timeout};
use authdeck::devserver::{DevClient, DevServer, DevServerConfig, Personality};
use authdeck::oauth::AuthMethod;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// A config directory with one account file, a key-file vault, and extra environment.
struct Env {
    dir: tempfile::TempDir,
    name: String,
    vars: Vec<(String, String)>,
}

impl Env {
    fn new(name: &str, toml: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("config/providers");
        std::fs::create_dir_all(&providers).unwrap();
        std::fs::write(providers.join(format!("{name}.toml")), toml).unwrap();
        authdeck::vault::generate_key_file(&dir.path().join("vault.key")).unwrap();
        Env {
            dir,
            name: name.to_owned(),
            vars: Vec::new(),
        }
    }

    fn with_var(mut self, k: &str, v: &str) -> Env {
        self.vars.push((k.to_owned(), v.to_owned()));
        self
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AUTHDECK_CONFIG_DIR", self.path("config"))
            .env("AUTHDECK_VAULT", self.path("vault.bin"))
            .env("AUTHDECK_KEY_FILE", self.path("vault.key"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null());
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        wait_with_timeout(
            self.cmd(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
            Duration::from_secs(30),
        )
    }

    fn login_paste(&self) -> Output {
        paste_login(self.cmd(&["login", &self.name, "--mode", "paste"]))
    }

    /// `login --mode device`: reads the user code, approves it at the mimic, waits.
    fn login_device(&self, srv: &DevServer) -> Output {
        let mut child = self
            .cmd(&["login", &self.name, "--mode", "device"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut code = String::new();
        out.read_line(&mut code).unwrap();
        if !code.trim().is_empty() {
            assert!(srv.approve_device(code.trim()), "user code {code:?}");
        }
        wait_with_timeout(child, Duration::from_secs(30))
    }

    fn token(&self) -> String {
        let out = self.run(&["token", &self.name]);
        assert!(out.status.success(), "token: {}", stderr(&out));
        stdout(&out).trim_end().to_owned()
    }

    /// `refresh NAME`: must succeed; returns its stderr line.
    fn refresh(&self) -> String {
        let out = self.run(&["refresh", &self.name]);
        assert!(out.status.success(), "refresh: {}", stderr(&out));
        stderr(&out)
    }

    fn status(&self) -> serde_json::Value {
        let out = self.run(&["status", "--json"]);
        assert!(out.status.success(), "status: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0].clone()
    }

    /// `revoke NAME`: must succeed; returns its note. The account needs a login afterwards.
    fn revoke(&self) -> String {
        let out = self.run(&["revoke", &self.name]);
        assert!(out.status.success(), "revoke: {}", stderr(&out));
        let gone = self.run(&["token", &self.name]);
        assert_eq!(gone.status.code(), Some(3), "{}", stderr(&gone));
        stderr(&out)
    }
}

async fn mimic(template: &str, clients: Vec<DevClient>) -> Arc<DevServer> {
    mimic_with(template, clients, |_| {}).await
}

async fn mimic_with(
    template: &str,
    clients: Vec<DevClient>,
    tweak: impl FnOnce(&mut DevServerConfig),
) -> Arc<DevServer> {
    let mut config = DevServerConfig {
        clients,
        personality: Personality::for_template(template),
        device_interval_secs: 1,
        ..DevServerConfig::default()
    };
    assert!(config.personality.is_some(), "{template}");
    tweak(&mut config);
    Arc::new(DevServer::start(config).await.unwrap())
}

/// Runs blocking test code (child processes) off the runtime that serves the mimic.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn confidential(id: &str, secret: &str, auth: AuthMethod, redirects: &[&str]) -> DevClient {
    DevClient {
        redirect_uris: redirects.iter().map(|s| (*s).to_owned()).collect(),
        ..DevClient::confidential(id, secret, auth)
    }
}

fn public(id: &str, redirects: &[&str]) -> DevClient {
    DevClient {
        redirect_uris: redirects.iter().map(|s| (*s).to_owned()).collect(),
        ..DevClient::public(id)
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GitHub OAuth app (PROV-2, PROV-3, PROV-12): the web flow needs the secret and gets a token
/// that never expires and no refresh token; the device flow needs no secret; revocation is
/// GitHub's `DELETE /applications/{client_id}/token`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prov1_github_oauth_app_web_and_device_login_revoke() {
    let srv = mimic(
        "github",
        vec![confidential(
            "Iv1.mimic",
            "gh-secret",
            AuthMethod::Post,
            &[],
        )],
    )
    .await;
    let m = srv.issuer();
    let toml = format!(
        "extends = \"github\"\nclient_id = \"Iv1.mimic\"\nclient_secret_env = \"GH_SECRET\"\n\
         authorization_endpoint = \"{m}/login/oauth/authorize\"\n\
         token_endpoint = \"{m}/login/oauth/access_token\"\n\
         device_authorization_endpoint = \"{m}/login/device/code\"\n[vars]\napi_url = \"{m}\"\n"
    );
    let s = srv.clone();
    blocking(move || {
        // Without the secret the web flow cannot work: a clear local error, nothing sent.
        let env = Env::new("gh", &toml);
        let out = env
            .cmd(&["login", "gh", "--mode", "paste"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("needs a client secret"),
            "{}",
            stderr(&out)
        );
        // With it: a token of unknown expiry and no refresh token.
        let env = env.with_var("GH_SECRET", "gh-secret");
        env.login_paste();
        let st = env.status();
        assert_eq!(st["state"], "valid", "{st}");
        assert!(
            st["expires_in"].is_null(),
            "OAuth-app tokens never expire: {st}"
        );
        let t = env.token();
        for _ in 0..2 {
            assert!(env.refresh().contains("no refresh token"));
        }
        assert_eq!(env.token(), t);
        // GitHub's revocation API with Basic auth; the token is dead at the provider.
        let note = env.revoke();
        assert!(note.contains("revoked the access token"), "{note}");
        let user = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{}/user", s.issuer()))
            .bearer_auth(&t)
            .send()
            .unwrap();
        assert_eq!(user.status().as_u16(), 401);

        // Device flow without any secret (PROV-2).
        let env = Env::new("gh", &toml);
        let out = env.login_device(&s);
        assert!(out.status.success(), "device login: {}", stderr(&out));
        assert_eq!(env.status()["state"], "valid");
        // Revocation needs the secret: said clearly, tokens still removed locally (REV-4).
        let note = env.revoke();
        assert!(note.contains("client secret"), "{note}");
    })
    .await;
    assert_eq!(srv.stats().revocations, 1);
}

/// GitHub App user tokens (PROV-2, PROV-12): 8 h tokens with `expires_in` as a string,
/// single-use refresh tokens; a device login's tokens refresh without the secret; a reused
/// refresh token (a restored vault backup) is `bad_refresh_token`, answered with HTTP 200,
/// and the account needs a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prov1_github_app_rotation_device_refresh_and_bad_refresh_token() {
    let srv = mimic(
        "github-app",
        vec![confidential("Iv1.app", "app-secret", AuthMethod::Post, &[])],
    )
    .await;
    let m = srv.issuer();
    let toml = format!(
        "extends = \"github\"\nclient_id = \"Iv1.app\"\nclient_secret_env = \"GH_SECRET\"\n\
         authorization_endpoint = \"{m}/login/oauth/authorize\"\n\
         token_endpoint = \"{m}/login/oauth/access_token\"\n\
         device_authorization_endpoint = \"{m}/login/device/code\"\n[vars]\napi_url = \"{m}\"\n"
    );
    let s = srv.clone();
    blocking(move || {
        let env = Env::new("gh", &toml).with_var("GH_SECRET", "app-secret");
        env.login_paste();
        let exp = env.status()["expires_in"].as_i64().unwrap();
        assert!((28_700..=28_800).contains(&exp), "8 h from a string: {exp}");
        let t0 = env.token();
        let vault = std::fs::read(env.path("vault.bin")).unwrap();
        for _ in 0..2 {
            assert!(env.refresh().contains("refresh token rotated"));
        }
        assert_ne!(env.token(), t0);
        // A backup of the vault holds a spent refresh token.
        std::fs::write(env.path("vault.bin"), vault).unwrap();
        let _ = std::fs::remove_file(env.path("vault.bin.bak"));
        let out = env.run(&["refresh", "gh"]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("bad_refresh_token"),
            "{}",
            stderr(&out)
        );
        assert_eq!(env.status()["state"], "needs_login");

        // Device login and its refreshes with no secret anywhere (PROV-2).
        let env = Env::new("gh", &toml);
        let out = env.login_device(&s);
        assert!(out.status.success(), "device login: {}", stderr(&out));
        for _ in 0..2 {
            assert!(env.refresh().contains("refresh token rotated"));
        }
    })
    .await;
    assert_eq!(srv.stats().refreshes, 4);
}

fn google_toml(m: &str, extra: &str) -> String {
    format!(
        "extends = \"google\"\nclient_id = \"desktop.apps.googleusercontent.com\"\n\
         client_secret_env = \"G_SECRET\"\nissuer = \"{m}\"\n\
         authorization_endpoint = \"{m}/o/oauth2/v2/auth\"\ntoken_endpoint = \"{m}/token\"\n\
         revocation_endpoint = \"{m}/revoke\"\ndevice_authorization_endpoint = \"{m}/device/code\"\n\
         userinfo_endpoint = \"{m}/v1/userinfo\"\n{extra}"
    )
}

/// Google (PROV-8, PROV-9, PROV-10): the login ID token says `iss: accounts.google.com` and
/// verifies through the template's alias (and fails without it); refresh tokens do not
/// rotate; RFC 7009 revocation; the device flow refuses the desktop client with the hint and
/// works with a "TVs and Limited Input devices" client named in the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prov1_google_iss_variant_no_rotation_revoke_and_device_client() {
    let srv = mimic_with(
        "google",
        vec![
            confidential(
                "desktop.apps.googleusercontent.com",
                "g-secret",
                AuthMethod::Post,
                &[],
            ),
            confidential(
                "tv.apps.googleusercontent.com",
                "tv-secret",
                AuthMethod::Post,
                &[],
            ),
        ],
        |c| c.device_client_ids = Some(vec!["tv.apps.googleusercontent.com".into()]),
    )
    .await;
    let m = srv.issuer();
    let s = srv.clone();
    blocking(move || {
        let env = Env::new("g", &google_toml(&m, "")).with_var("G_SECRET", "g-secret");
        env.login_paste();
        let st = env.status();
        assert_eq!(st["identity"], "demo@authdeck.invalid", "{st}");
        let t0 = env.token();
        for _ in 0..2 {
            let line = env.refresh();
            assert!(
                line.contains("refreshed") && !line.contains("rotated"),
                "{line}"
            );
        }
        assert_ne!(env.token(), t0);
        assert!(
            env.revoke()
                .contains("revoked the refresh and access tokens")
        );

        // The same token without the alias: refused (DISC-5 is exact otherwise).
        let strict = Env::new("g", &google_toml(&m, "issuer_aliases = []\n"))
            .with_var("G_SECRET", "g-secret");
        let mut cmd = strict.cmd(&["login", "g", "--mode", "paste"]);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut url = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut url)
            .unwrap();
        let location = authorize_location(url.trim());
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{location}").unwrap();
        let out = wait_with_timeout(child, Duration::from_secs(30));
        assert!(!out.status.success());
        assert!(stderr(&out).contains("issuer mismatch"), "{}", stderr(&out));

        // Device login with the desktop client: Google's error and the fix (PROV-9).
        let out = env.login_device(&s);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("invalid_client") && err.contains("TVs and Limited Input devices"),
            "{err}"
        );
        // With a device client named in the account (PROV-10), and its refreshes.
        let tv = Env::new(
            "g",
            &google_toml(
                &m,
                "device_client_id = \"tv.apps.googleusercontent.com\"\n\
                 device_client_secret_env = \"TV_SECRET\"\n",
            ),
        )
        .with_var("G_SECRET", "g-secret")
        .with_var("TV_SECRET", "tv-secret");
        let out = tv.login_device(&s);
        assert!(out.status.success(), "device login: {}", stderr(&out));
        for _ in 0..2 {
            assert!(tv.refresh().contains("refreshed"));
        }
    })
    .await;
    // DISC-5 ran: the ID tokens were checked against the mimic's keys.
    assert!(srv.stats().jwks_requests > 0);
}

/// Google app in "Testing" (PROV-9): refresh tokens die 7 days after the login (the mimic's
/// clock moves); the refusal marks the account needs-login and names the cause and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prov9_google_testing_app_refresh_token_dies_after_7_days() {
    let srv = mimic(
        "google-testing",
        vec![confidential(
            "desktop.apps.googleusercontent.com",
            "g-secret",
            AuthMethod::Post,
            &[],
        )],
    )
    .await;
    let m = srv.issuer();
    let env = blocking(move || {
        let env = Env::new("g", &google_toml(&m, "")).with_var("G_SECRET", "g-secret");
        env.login_paste();
        env.refresh();
        env
    })
    .await;
    srv.advance_clock(Duration::from_secs(7 * 24 * 3600 + 1));
    blocking(move || {
        let out = env.run(&["refresh", "g"]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("invalid_grant") && err.contains("7 days") && err.contains("Publish app"),
            "{err}"
        );
        assert_eq!(env.status()["state"], "needs_login");
    })
    .await;
}

/// Microsoft (tenant paths, `scope` on refresh, rotation, no revocation): browser-less paste
/// and device logins of a public client, two rotating refreshes, a revoke that can only forget
/// locally; without `send_scope_on_refresh` the v2.0 endpoint refuses the refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prov1_microsoft_tenant_scope_on_refresh_rotation_no_revocation() {
    let srv = mimic("microsoft", vec![public("ms-public", &[])]).await;
    let m = srv.issuer();
    let toml = move |extra: &str| {
        format!(
            "extends = \"microsoft\"\nclient_id = \"ms-public\"\n\
             authorization_endpoint = \"{m}/{{tenant}}/oauth2/v2.0/authorize\"\n\
             token_endpoint = \"{m}/{{tenant}}/oauth2/v2.0/token\"\n\
             device_authorization_endpoint = \"{m}/{{tenant}}/oauth2/v2.0/devicecode\"\n\
             {extra}[vars]\ntenant = \"organizations\"\n"
        )
    };
    let s = srv.clone();
    blocking(move || {
        let env = Env::new("ms", &toml(""));
        env.login_paste();
        for _ in 0..2 {
            assert!(env.refresh().contains("refresh token rotated"));
        }
        let note = env.revoke();
        assert!(note.contains("no revocation endpoint"), "{note}");

        let env = Env::new("ms", &toml(""));
        let out = env.login_device(&s);
        assert!(out.status.success(), "device login: {}", stderr(&out));
        assert!(env.refresh().contains("refresh token rotated"));

        let no_scope = Env::new("ms", &toml("send_scope_on_refresh = false\n"));
        no_scope.login_paste();
        let out = no_scope.run(&["refresh", "ms"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("scope"), "{}", stderr(&out));
    })
    .await;
    assert!(srv.stats().refreshes >= 3);
}

/// GitLab (PROV-5): an exactly registered redirect, discovery and verified ID tokens, the
/// login's `redirect_uri` on every refresh, rotation, RFC 7009 revocation, the device grant;
/// a refresh without the `redirect_uri` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prov5_gitlab_refresh_carries_the_login_redirect_uri() {
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let srv = mimic("gitlab", vec![public("gl-app", &[&redirect])]).await;
    let m = srv.issuer();
    let toml = move |extra: &str| {
        format!(
            "extends = \"gitlab\"\nclient_id = \"gl-app\"\nredirect_uri = \"{redirect}\"\n{extra}\
             [vars]\nbase_url = \"{m}\"\n"
        )
    };
    let s = srv.clone();
    blocking(move || {
        let env = Env::new("gl", &toml(""));
        env.login_paste();
        for _ in 0..2 {
            assert!(env.refresh().contains("refresh token rotated"));
        }
        assert!(env.revoke().contains("revoked"));

        let env = Env::new("gl", &toml(""));
        let out = env.login_device(&s);
        assert!(out.status.success(), "device login: {}", stderr(&out));
        assert!(env.refresh().contains("refresh token rotated"));

        let without = Env::new("gl", &toml("send_redirect_uri_on_refresh = false\n"));
        without.login_paste();
        let out = without.run(&["refresh", "gl"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("redirect_uri"), "{}", stderr(&out));
    })
    .await;
    assert!(srv.stats().jwks_requests > 0, "DISC-5 ran");
}

/// Dexcom (PROV-7): an account without `redirect_uri` is invalid, naming the field; with the
/// registered one (US host, then the EU host via `[vars] base_url`) login, two single-use
/// refreshes, and a revoke that can only forget locally; another port is refused at the
/// authorization endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prov7_dexcom_exact_redirect_regions_single_use_refresh() {
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let clients = || {
        vec![confidential(
            "dx-client",
            "dx-secret",
            AuthMethod::Post,
            &[&redirect],
        )]
    };
    let us = mimic("dexcom", clients()).await;
    let eu = mimic("dexcom", clients()).await;
    let (us_url, eu_url) = (us.issuer(), eu.issuer());
    let redirect2 = redirect.clone();
    blocking(move || {
        let toml = |base: &str, redirect: Option<&str>| {
            let r = redirect.map_or(String::new(), |r| format!("redirect_uri = \"{r}\"\n"));
            format!(
                "extends = \"dexcom\"\nclient_id = \"dx-client\"\nclient_secret_env = \"DX\"\n{r}\
                 [vars]\nbase_url = \"{base}\"\n"
            )
        };
        let missing = Env::new("dx", &toml(&us_url, None));
        let file = missing.path("config/providers/dx.toml");
        let out = missing.run(&["providers", "check", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("missing redirect_uri"),
            "{}",
            stderr(&out)
        );
        for base in [&us_url, &eu_url] {
            let env = Env::new("dx", &toml(base, Some(&redirect2))).with_var("DX", "dx-secret");
            env.login_paste();
            for _ in 0..2 {
                assert!(env.refresh().contains("refresh token rotated"));
            }
            assert!(env.revoke().contains("no revocation endpoint"));
        }
        // A redirect that is not the registered one never gets a code.
        let other = format!("http://127.0.0.1:{}/callback", free_port());
        let env = Env::new("dx", &toml(&us_url, Some(&other))).with_var("DX", "dx-secret");
        let mut child = env
            .cmd(&["login", "dx", "--mode", "paste"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut url = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut url)
            .unwrap();
        let resp = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap()
            .get(url.trim())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let _ = child.kill();
        let _ = child.wait();
    })
    .await;
    assert_eq!((us.stats().refreshes, eu.stats().refreshes), (2, 2));
}

/// Spotify: the default redirect (an IP literal) is accepted on any port against the
/// registered portless URI; `localhost` is refused; refresh tokens are single use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prov1_spotify_ip_literal_loopback_and_single_use_refresh() {
    let srv = mimic(
        "spotify",
        vec![public("sp-app", &["http://127.0.0.1/callback"])],
    )
    .await;
    let m = srv.issuer();
    blocking(move || {
        let toml = format!(
            "extends = \"spotify\"\nclient_id = \"sp-app\"\n\
             authorization_endpoint = \"{m}/authorize\"\ntoken_endpoint = \"{m}/api/token\"\n"
        );
        let env = Env::new("sp", &toml);
        env.login_paste();
        for _ in 0..2 {
            assert!(env.refresh().contains("refresh token rotated"));
        }
        assert!(env.revoke().contains("no revocation endpoint"));
        // A localhost redirect is refused when the account is loaded (PROV-13)...
        let localhost = Env::new(
            "sp",
            &format!("{toml}redirect_uri = \"http://localhost:8123/callback\"\n"),
        );
        let file = localhost.path("config/providers/sp.toml");
        let out = localhost.run(&["providers", "check", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("must be IP literals"),
            "{}",
            stderr(&out)
        );
        // ...and by the mimic, as Spotify does, for anyone who sends one anyway.
        let url = format!(
            "{m}/authorize?response_type=code&client_id=sp-app&state=s\
             &redirect_uri=http%3A%2F%2Flocalhost%3A8123%2Fcallback\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
        );
        let resp = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "localhost is refused");
    })
    .await;
}

/// OpenAI (PROV-3, PROV-4, PROV-6): the template's own client id and fixed redirect, no
/// discovery (the mimic has none: a discovery request would fail the login), port 1457 when
/// 1455 is taken, rotating refreshes, JSON revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prov6_openai_fixed_ports_no_discovery_json_revocation() {
    // Hold 1455 so the login must fall back; if something else holds it, that does too.
    let held = std::net::TcpListener::bind("127.0.0.1:1455");
    if std::net::TcpListener::bind("127.0.0.1:1457").is_err() {
        panic!("port 1457 is taken on this machine: the OpenAI template cannot log in here");
    }
    let srv = mimic("openai", vec![public("app_EMoamEEZ73f0CkXaXp7hrann", &[])]).await;
    let m = srv.issuer();
    blocking(move || {
        let toml = format!(
            "extends = \"openai\"\nauthorization_endpoint = \"{m}/oauth/authorize\"\n\
             token_endpoint = \"{m}/oauth/token\"\nrevocation_endpoint = \"{m}/oauth/revoke\"\n"
        );
        let env = Env::new("oa", &toml);
        let mut child = env
            .cmd(&["login", "oa", "--mode", "paste"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut url = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut url)
            .unwrap();
        assert!(
            url.contains("redirect_uri=http%3A%2F%2Flocalhost%3A1457%2Fauth%2Fcallback"),
            "{url}"
        );
        for p in ["originator=codex_cli_rs", "codex_cli_simplified_flow=true"] {
            assert!(url.contains(p), "{p} in {url}");
        }
        let location = authorize_location(url.trim());
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{location}").unwrap();
        let out = wait_with_timeout(child, Duration::from_secs(30));
        assert!(out.status.success(), "login: {}", stderr(&out));
        for _ in 0..2 {
            assert!(env.refresh().contains("refresh token rotated"));
        }
        assert!(
            env.revoke()
                .contains("revoked the refresh and access tokens")
        );
        drop(held);
    })
    .await;
    let stats = srv.stats();
    assert_eq!((stats.revocations, stats.jwks_requests), (2, 0));
}
