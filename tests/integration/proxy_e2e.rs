//! Integration tests: the exchange proxy end to end against real authorization
//! servers: the in-process devserver (a confidential `client_secret_basic` client whose secret
//! only the proxy holds), `oidc-provider`'s `client_secret_basic` client, and the real
//! `authdeck` binary logging in and refreshing through the proxy. Rule IDs (PROXY-1..10,
//! SECRET-3) are defined in docs/protocol.md.

use crate::oidc_provider::{
    BASIC_CLIENT, BASIC_CLIENT_ID, BASIC_CLIENT_SECRET, OidcProvider, browse_authorization,
    redirect_uri,
};
use crate::support::{stderr, wait_with_timeout};
use authdeck::devserver::{DevClient, DevServer, DevServerConfig, Endpoint, Fault};
use authdeck::oauth::AuthMethod;
use authdeck::oauth::pkce::PkcePair;
use authdeck::proxy::{CaptureSink, Proxy, ProxyConfig, ProxyHandle};
use base64::Engine;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use url::Url;

/// The devserver client's id and secret; the secret lives only in the proxy's config.
const DEV_CLIENT_ID: &str = "proxy-basic";
const DEV_SECRET: &str = "Pr0xy/Only:s3cret+value";
/// The environment variable the proxy config names (resolved by the test's closure).
const SECRET_ENV: &str = "E2E_CLIENT_SECRET";

/// A free loopback port: bind port 0, read it, release it.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Every form a leaked `secret` could take: raw, urlencoded, and inside a Basic header.
fn secret_needles(client_id: &str, secret: &str) -> Vec<String> {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", enc(client_id), enc(secret));
    vec![
        secret.to_owned(),
        enc(secret),
        base64::engine::general_purpose::STANDARD.encode(pair),
    ]
}

fn assert_no_secret(needles: &[String], what: &str, text: &str) {
    for needle in needles {
        assert!(
            !text.contains(needle.as_str()),
            "SECRET-3: {what} leaks the client secret: {text}"
        );
    }
}

/// A running proxy, its captured log, and the secret it must never reveal.
struct Harness {
    proxy: ProxyHandle,
    log: Arc<CaptureSink>,
    http: reqwest::Client,
    needles: Vec<String>,
}

/// A proxy response, already checked for the secret.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    json: serde_json::Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn str(&self, field: &str) -> &str {
        self.json[field].as_str().unwrap_or("")
    }
}

/// Starts a proxy in-process with one client `e2e` and the secret behind [`SECRET_ENV`].
async fn start_proxy(
    endpoint_line: &str,
    client_id: &str,
    secret: &str,
    redirect: &str,
    timeout_secs: u64,
) -> Harness {
    start_proxy_with(endpoint_line, client_id, secret, redirect, timeout_secs, "").await
}

/// As [`start_proxy`], with `extra` TOML appended (more `[clients.NAME]` tables).
async fn start_proxy_with(
    endpoint_line: &str,
    client_id: &str,
    secret: &str,
    redirect: &str,
    timeout_secs: u64,
    extra: &str,
) -> Harness {
    let text = format!(
        r#"upstream_timeout_secs = {timeout_secs}
[clients.e2e]
{endpoint_line}
client_id = "{client_id}"
client_secret_env = "{SECRET_ENV}"
redirect_uris = ["{redirect}"]
{extra}"#
    );
    let config = ProxyConfig::from_str(&text, "e2e.toml").unwrap();
    let log = Arc::new(CaptureSink::default());
    let owned = secret.to_owned();
    let env = move |name: &str| (name == SECRET_ENV).then(|| owned.clone());
    let proxy = Proxy::build(&config, &env, log.clone()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Harness {
        proxy: proxy.spawn(listener).unwrap(),
        log,
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap(),
        needles: secret_needles(client_id, secret),
    }
}

impl Harness {
    async fn post(&self, path: &str, body: &serde_json::Value) -> Answer {
        let url = format!("{}{path}", self.proxy.url());
        let resp = self.http.post(url).json(body).send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        for (name, value) in &headers {
            assert_no_secret(
                &self.needles,
                "a response header",
                &format!("{name}: {value:?}"),
            );
        }
        assert_no_secret(&self.needles, "a response body", &text);
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("proxy answered {status} with non-JSON ({e}): {text}"));
        Answer {
            status,
            headers,
            json,
        }
    }

    /// Every captured log line, checked for the secret and for `also` (codes, tokens).
    fn checked_log(&self, also: &[&str]) -> Vec<String> {
        let lines: Vec<String> = self.log.lines().into_iter().map(|(_, l)| l).collect();
        for line in &lines {
            assert_no_secret(&self.needles, "a log line", line);
            for needle in also.iter().filter(|n| !n.is_empty()) {
                assert!(
                    !line.contains(needle),
                    "log line leaks a credential: {line}"
                );
            }
        }
        lines
    }

    async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(10), self.proxy.shutdown())
            .await
            .unwrap()
            .unwrap();
    }
}

/// The `code` query parameter of a redirect `Location`.
fn code_of(location: &str) -> String {
    let url = Url::parse(location).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"))
}

/// An authorization URL for the code flow with PKCE S256.
fn authorization_url(endpoint: &str, client_id: &str, redirect: &str, challenge: &str) -> String {
    let mut url = Url::parse(endpoint).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid email")
        .append_pair("state", "e2e-state-value")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

// ---------------------------------------------------------------------------------------------
// Against the devserver.
// ---------------------------------------------------------------------------------------------

async fn devserver() -> DevServer {
    DevServer::start(DevServerConfig {
        clients: vec![DevClient::confidential(
            DEV_CLIENT_ID,
            DEV_SECRET,
            AuthMethod::Basic,
        )],
        ..DevServerConfig::default()
    })
    .await
    .unwrap()
}

/// GETs the devserver's authorization URL like a browser (it approves at once) and returns
/// a fresh code and its verifier.
async fn devserver_code(srv: &DevServer, redirect: &str) -> (String, String) {
    let pkce = PkcePair::generate();
    let url = authorization_url(
        &srv.url("/authorize"),
        DEV_CLIENT_ID,
        redirect,
        &pkce.challenge,
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = http.get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "authorize should redirect");
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    (code_of(&location), pkce.verifier.secret().to_owned())
}

async fn devserver_proxy(srv: &DevServer, redirect: &str, timeout_secs: u64) -> Harness {
    start_proxy(
        &format!("token_endpoint = \"{}\"", srv.url("/token")),
        DEV_CLIENT_ID,
        DEV_SECRET,
        redirect,
        timeout_secs,
    )
    .await
}

#[tokio::test]
async fn proxy_e2e_devserver_exchange_refresh_and_code_replay_proxy_3_4_5_secret_3() {
    let srv = devserver().await;
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let h = devserver_proxy(&srv, &redirect, 10).await;
    let (code, verifier) = devserver_code(&srv, &redirect).await;
    let body =
        serde_json::json!({"code": code, "code_verifier": verifier, "redirect_uri": redirect});

    let a = h.post("/api/auth/exchange", &body).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.header("cache-control"), Some("no-store"), "PROXY-4");
    assert_eq!(a.str("token_type"), "Bearer");
    assert!(a.json["expires_in"].as_u64().unwrap() > 0);
    let access = a.str("access_token").to_owned();
    let refresh = a.str("refresh_token").to_owned();
    assert!(!access.is_empty() && !refresh.is_empty(), "{}", a.json);
    let stats = srv.stats();
    assert_eq!(stats.code_exchanges, 1);
    assert_eq!(
        stats.last_client_auth.as_deref(),
        Some("basic"),
        "PROXY-3: the proxy authenticates with HTTP Basic"
    );

    // Refresh through the proxy: a new access token, rotated refresh token.
    let r = h
        .post(
            "/api/auth/refresh",
            &serde_json::json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let access2 = r.str("access_token").to_owned();
    assert!(!access2.is_empty());
    assert_ne!(access2, access, "a refresh gives a new access token");
    assert_eq!(srv.stats().refreshes, 1);

    // The same code again: the devserver's invalid_grant and status come back unchanged.
    let again = h.post("/api/auth/exchange", &body).await;
    assert_eq!(again.status, 400, "{}", again.json);
    assert_eq!(
        again.str("error"),
        "invalid_grant",
        "PROXY-5: passed through"
    );
    assert_eq!(srv.stats().code_exchanges, 1);

    let lines = h.checked_log(&[&code, &verifier, &access, &refresh, &access2]);
    let access_lines = lines.iter().filter(|l| l.starts_with("access ")).count();
    assert_eq!(access_lines, 3, "one access line per request: {lines:?}");
    h.stop().await;
}

#[tokio::test]
async fn proxy_e2e_devserver_upstream_500_is_502_and_slow_is_504_proxy_6() {
    let srv = devserver().await;
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let h = devserver_proxy(&srv, &redirect, 1).await;

    // 500 from the token endpoint → 502 with an RFC 6749-style body.
    let (code, verifier) = devserver_code(&srv, &redirect).await;
    let body =
        serde_json::json!({"code": code, "code_verifier": verifier, "redirect_uri": redirect});
    srv.inject(Fault::Status(500), 1, Endpoint::Token);
    let a = h.post("/api/auth/exchange", &body).await;
    assert_eq!(a.status, 502, "{}", a.json);
    assert!(!a.str("error").is_empty(), "{}", a.json);
    assert_eq!(a.header("cache-control"), Some("no-store"));

    // Slower than the 1 s upstream timeout → 504, well before the upstream answers.
    let (code2, verifier2) = devserver_code(&srv, &redirect).await;
    let body2 =
        serde_json::json!({"code": code2, "code_verifier": verifier2, "redirect_uri": redirect});
    srv.inject(Fault::Slow(Duration::from_secs(4)), 1, Endpoint::Token);
    let started = Instant::now();
    let b = h.post("/api/auth/exchange", &body2).await;
    let took = started.elapsed();
    assert_eq!(b.status, 504, "{}", b.json);
    assert!(!b.str("error").is_empty(), "{}", b.json);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "504 should come at the 1 s timeout, took {took:?}"
    );

    // Faults used up: the server recovers, and the first code (not consumed by the 500) works.
    let c = h.post("/api/auth/exchange", &body).await;
    assert_eq!(c.status, 200, "{}", c.json);
    let access = c.str("access_token").to_owned();

    let lines = h.checked_log(&[&code, &verifier, &code2, &verifier2, &access]);
    let statuses: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("access "))
        .filter_map(|l| l.split(' ').find(|w| w.starts_with("status=")))
        .collect();
    assert_eq!(
        statuses,
        ["status=502", "status=504", "status=200"],
        "{lines:?}"
    );
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Against oidc-provider's client_secret_basic client.
// ---------------------------------------------------------------------------------------------

/// A code from oidc-provider for the basic client, with its verifier.
async fn oidc_code(op: &OidcProvider, redirect: &str) -> (String, String) {
    let pkce = PkcePair::generate();
    let url = authorization_url(&op.url("/auth"), BASIC_CLIENT_ID, redirect, &pkce.challenge);
    let location = browse_authorization(&url).await.unwrap();
    (code_of(&location), pkce.verifier.secret().to_owned())
}

async fn oidc_proxy(op: &OidcProvider, redirect: &str) -> Harness {
    assert_eq!(BASIC_CLIENT.secret, Some(BASIC_CLIENT_SECRET));
    // `issuer`: the proxy discovers the token endpoint at startup.
    start_proxy(
        &format!("issuer = \"{}\"", op.issuer),
        BASIC_CLIENT_ID,
        BASIC_CLIENT_SECRET,
        redirect,
        10,
    )
    .await
}

#[tokio::test]
async fn proxy_e2e_oidc_provider_basic_client_exchange_and_refresh_proxy_3_4_secret_3() {
    let op = OidcProvider::shared().unwrap();
    let redirect = redirect_uri(free_port());
    let h = oidc_proxy(op, &redirect).await;
    let (code, verifier) = oidc_code(op, &redirect).await;
    let body =
        serde_json::json!({"code": code, "code_verifier": verifier, "redirect_uri": redirect});
    let a = h.post("/api/auth/exchange", &body).await;
    assert_eq!(a.status, 200, "{}; server: {}", a.json, op.stderr());
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(a.str("token_type"), "Bearer");
    assert!(
        !a.str("id_token").is_empty(),
        "openid scope gives an id_token"
    );
    let access = a.str("access_token").to_owned();
    let refresh = a.str("refresh_token").to_owned();
    assert!(!access.is_empty() && !refresh.is_empty(), "{}", a.json);

    let r = h
        .post(
            "/api/auth/refresh",
            &serde_json::json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let access2 = r.str("access_token").to_owned();
    assert!(!access2.is_empty());
    assert_ne!(access2, access);
    assert_ne!(r.str("refresh_token"), refresh, "oidc-provider rotates");

    // The same code again: oidc-provider's invalid_grant passed through with its 400.
    let again = h.post("/api/auth/exchange", &body).await;
    assert_eq!(again.status, 400, "{}", again.json);
    assert_eq!(again.str("error"), "invalid_grant");

    h.checked_log(&[&code, &verifier, &access, &refresh, &access2]);
    h.stop().await;
}

#[tokio::test]
async fn proxy_e2e_oidc_provider_wrong_verifier_is_invalid_grant_proxy_5() {
    let op = OidcProvider::shared().unwrap();
    let redirect = redirect_uri(free_port());
    let h = oidc_proxy(op, &redirect).await;
    let (code, _verifier) = oidc_code(op, &redirect).await;
    let wrong = PkcePair::generate();
    let body = serde_json::json!({
        "code": code,
        "code_verifier": wrong.verifier.secret(),
        "redirect_uri": redirect,
    });
    let a = h.post("/api/auth/exchange", &body).await;
    assert_eq!(a.status, 400, "{}", a.json);
    assert_eq!(a.str("error"), "invalid_grant", "{}", a.json);
    assert!(a.json.get("access_token").is_none());
    h.checked_log(&[&code, wrong.verifier.secret()]);
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// An authdeck account (the real binary) logging in and refreshing through the proxy.
// ---------------------------------------------------------------------------------------------

/// A config dir with account `demo` and a key-file vault.
struct Account {
    dir: tempfile::TempDir,
}

impl Account {
    fn new(provider_toml: &str) -> Account {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("config/providers");
        std::fs::create_dir_all(&providers).unwrap();
        std::fs::write(providers.join("demo.toml"), provider_toml).unwrap();
        authdeck::vault::generate_key_file(&dir.path().join("vault.key")).unwrap();
        Account { dir }
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

    fn run(&self, args: &[&str]) -> Output {
        let child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_with_timeout(child, Duration::from_secs(15))
    }

    /// `login demo --mode paste`, answering with the redirect the devserver sends us to.
    fn login_paste(&self) -> Output {
        crate::support::paste_login(self.cmd(&["login", "demo", "--mode", "paste"]))
    }
}

fn file_lacks(path: &Path, needles: &[String]) {
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert_no_secret(needles, &path.display().to_string(), &text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_e2e_authdeck_account_logs_in_and_refreshes_through_the_proxy_secret_3() {
    let srv = devserver().await;
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let h = devserver_proxy(&srv, &redirect, 10).await;
    // The account names no secret and no client authentication: only the proxy has them.
    let account = Account::new(&format!(
        "extends = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{DEV_CLIENT_ID}\"\n\
         client_auth = \"none\"\nscopes = [\"openid\", \"email\", \"offline_access\"]\n\
         redirect_uri = \"{redirect}\"\nexchange_proxy = \"{}\"\n",
        srv.issuer(),
        h.proxy.url(),
    ));
    let needles = h.needles.clone();
    let (account, tokens) = tokio::task::spawn_blocking(move || {
        let login = account.login_paste();
        assert_no_secret(&needles, "login stderr", &stderr(&login));
        let t1 = account.run(&["token", "demo"]);
        assert!(t1.status.success(), "token: {}", stderr(&t1));
        let refresh = account.run(&["refresh", "demo"]);
        assert!(refresh.status.success(), "refresh: {}", stderr(&refresh));
        assert_no_secret(&needles, "refresh stderr", &stderr(&refresh));
        let t2 = account.run(&["token", "demo"]);
        assert!(t2.status.success(), "token: {}", stderr(&t2));
        let tok = |o: &Output| String::from_utf8_lossy(&o.stdout).trim().to_owned();
        (account, (tok(&t1), tok(&t2)))
    })
    .await
    .unwrap();
    let (t1, t2) = tokens;
    assert!(!t1.is_empty());
    assert_ne!(
        t1, t2,
        "the refresh through the proxy gave a new access token"
    );

    let stats = srv.stats();
    assert_eq!(stats.code_exchanges, 1);
    assert_eq!(stats.refreshes, 1);
    assert_eq!(
        stats.last_client_auth.as_deref(),
        Some("basic"),
        "the devserver saw the proxy's Basic auth, not a public client"
    );
    // Every token request went through the proxy: one access line per grant.
    let lines = h.checked_log(&[&t1, &t2]);
    let through: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("access ") && l.contains("status=200"))
        .collect();
    assert_eq!(
        through.len(),
        2,
        "exchange + refresh via the proxy: {lines:?}"
    );

    // The account holds no secret: not in its TOML, not in the vault record.
    file_lacks(&account.path("config/providers/demo.toml"), &h.needles);
    file_lacks(&account.path("vault.bin"), &h.needles);
    let vault = authdeck::vault::Vault::open(
        account.path("vault.bin"),
        authdeck::vault::KeySource::KeyFile(account.path("vault.key")),
    )
    .unwrap();
    let record = vault.get("demo").unwrap().expect("a vault record for demo");
    assert!(
        record.client_secret.is_none(),
        "the vault holds no client secret"
    );
    assert_eq!(record.refresh_count, 1);
    assert_eq!(
        record.access_token.as_ref().map(|t| t.secret()),
        Some(t2.as_str())
    );
    h.stop().await;
}

/// With several proxy clients, `?client=NAME` on `exchange_proxy` selects one (PROXY-2,
/// SECRET-4); a refresh the server refuses (`invalid_grant`, passed through) leaves the account
/// needing a new login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_e2e_authdeck_account_selects_the_proxy_client_by_query_proxy_5() {
    let srv = devserver().await;
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    // A second client, `a-decoy` (a client_id the devserver does not know): with two clients
    // a request that names none is refused, so the login only works if `?client=e2e` is sent.
    let decoy = format!(
        "[clients.a-decoy]\ntoken_endpoint = \"{}\"\nclient_id = \"decoy\"\n\
         client_secret_env = \"{SECRET_ENV}\"\nredirect_uris = [\"{redirect}\"]\n",
        srv.url("/token")
    );
    let h = start_proxy_with(
        &format!("token_endpoint = \"{}\"", srv.url("/token")),
        DEV_CLIENT_ID,
        DEV_SECRET,
        &redirect,
        10,
        &decoy,
    )
    .await;
    let account = Account::new(&format!(
        "extends = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{DEV_CLIENT_ID}\"\n\
         scopes = [\"openid\", \"email\", \"offline_access\"]\n\
         redirect_uri = \"{redirect}\"\nexchange_proxy = \"{}/?client=e2e\"\n",
        srv.issuer(),
        h.proxy.url(),
    ));
    let account = tokio::task::spawn_blocking(move || {
        account.login_paste();
        account
    })
    .await
    .unwrap();
    assert_eq!(srv.stats().code_exchanges, 1);
    assert_eq!(srv.stats().last_client_auth.as_deref(), Some("basic"));

    srv.revoke_all();
    let (account, refused) = tokio::task::spawn_blocking(move || {
        let out = account.run(&["refresh", "demo"]);
        (account, out)
    })
    .await
    .unwrap();
    assert!(!refused.status.success(), "a revoked grant cannot refresh");
    assert!(
        stderr(&refused).contains("invalid_grant"),
        "{}",
        stderr(&refused)
    );
    assert_no_secret(&h.needles, "refresh stderr", &stderr(&refused));
    let out = tokio::task::spawn_blocking(move || account.run(&["token", "demo"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "needs login: {}", stderr(&out));
    let lines = h.checked_log(&[]);
    let clients: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("access "))
        .filter_map(|l| l.split(' ').find(|w| w.starts_with("client=")))
        .collect();
    assert_eq!(clients, ["client=e2e", "client=e2e"], "{lines:?}");
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Revocation through the proxy (POST /api/auth/revoke; REV-1..4, RFC 7009).
// ---------------------------------------------------------------------------------------------

/// A proxy in front of the devserver that also knows its revocation endpoint.
async fn devserver_revoking_proxy(srv: &DevServer, redirect: &str, timeout_secs: u64) -> Harness {
    start_proxy(
        &format!(
            "token_endpoint = \"{}\"\nrevocation_endpoint = \"{}\"",
            srv.url("/token"),
            srv.url("/revoke")
        ),
        DEV_CLIENT_ID,
        DEV_SECRET,
        redirect,
        timeout_secs,
    )
    .await
}

fn revoke_body(token: &str, hint: &str) -> serde_json::Value {
    serde_json::json!({"token": token, "token_type_hint": hint})
}

#[tokio::test]
async fn proxy_e2e_devserver_revoke_then_refresh_is_invalid_grant_rev1_rev2_proxy_6() {
    let srv = devserver().await;
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let h = devserver_revoking_proxy(&srv, &redirect, 1).await;
    let (code, verifier) = devserver_code(&srv, &redirect).await;
    let body =
        serde_json::json!({"code": code, "code_verifier": verifier, "redirect_uri": redirect});
    let a = h.post("/api/auth/exchange", &body).await;
    assert_eq!(a.status, 200, "{}", a.json);
    let access = a.str("access_token").to_owned();
    let refresh = a.str("refresh_token").to_owned();

    // The devserver authenticates the confidential client at /revoke: only the proxy can.
    let r = h
        .post("/api/auth/revoke", &revoke_body(&refresh, "refresh_token"))
        .await;
    assert_eq!((r.status, &r.json), (200, &serde_json::json!({})));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let stats = srv.stats();
    assert_eq!(stats.revocations, 1);
    assert_eq!(stats.last_client_auth.as_deref(), Some("basic"));

    // The provider now refuses the revoked refresh token.
    let refused = h
        .post(
            "/api/auth/refresh",
            &serde_json::json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.json);
    assert_eq!(refused.str("error"), "invalid_grant");
    assert_eq!(srv.stats().refreshes, 0);

    // RFC 7009 §2.2: an already invalid token is still a 200.
    let again = h
        .post("/api/auth/revoke", &revoke_body(&refresh, "refresh_token"))
        .await;
    assert_eq!(again.status, 200, "{}", again.json);

    // PROXY-6 on the revoke route: upstream 500 → 502, slower than the 1 s timeout → 504.
    srv.inject(Fault::Status(500), 1, Endpoint::Revoke);
    let b = h
        .post("/api/auth/revoke", &revoke_body(&access, "access_token"))
        .await;
    assert_eq!(b.status, 502, "{}", b.json);
    srv.inject(Fault::Slow(Duration::from_secs(4)), 1, Endpoint::Revoke);
    let started = Instant::now();
    let c = h
        .post("/api/auth/revoke", &revoke_body(&access, "access_token"))
        .await;
    assert_eq!(c.status, 504, "{}", c.json);
    assert!(started.elapsed() < Duration::from_secs(3));

    let lines = h.checked_log(&[&code, &verifier, &access, &refresh]);
    let revokes: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("access ") && l.contains("path=/api/auth/revoke"))
        .filter_map(|l| l.split(' ').find(|w| w.starts_with("status=")))
        .collect();
    assert_eq!(
        revokes,
        ["status=200", "status=200", "status=502", "status=504"],
        "{lines:?}"
    );
    h.stop().await;
}

/// The refresh token the vault holds for `demo`.
fn stored_refresh_token(account: &Account) -> String {
    let vault = authdeck::vault::Vault::open(
        account.path("vault.bin"),
        authdeck::vault::KeySource::KeyFile(account.path("vault.key")),
    )
    .unwrap();
    let record = vault.get("demo").unwrap().expect("a vault record for demo");
    record
        .refresh_token
        .expect("the login stored a refresh token")
        .secret()
        .to_owned()
}

fn proxy_account(srv: &DevServer, redirect: &str, h: &Harness) -> Account {
    // The account names no secret: only the proxy can authenticate the client, also at the
    // revocation endpoint (RFC 7009 §2.1).
    Account::new(&format!(
        "extends = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{DEV_CLIENT_ID}\"\n\
         client_auth = \"none\"\nscopes = [\"openid\", \"email\", \"offline_access\"]\n\
         redirect_uri = \"{redirect}\"\nexchange_proxy = \"{}\"\n",
        srv.issuer(),
        h.proxy.url(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_e2e_authdeck_revoke_goes_through_the_proxy_rev1_rev2_rev4() {
    let srv = devserver().await;
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let h = devserver_revoking_proxy(&srv, &redirect, 10).await;
    let account = proxy_account(&srv, &redirect, &h);
    let needles = h.needles.clone();
    let (refresh, revoke, token) = tokio::task::spawn_blocking(move || {
        let login = account.login_paste();
        assert_no_secret(&needles, "login stderr", &stderr(&login));
        let refresh = stored_refresh_token(&account);
        let revoke = account.run(&["revoke", "demo"]);
        let token = account.run(&["token", "demo"]);
        (refresh, revoke, token)
    })
    .await
    .unwrap();
    let err = stderr(&revoke);
    assert_eq!(revoke.status.code(), Some(0), "revoke: {err}");
    assert!(
        err.contains(
            "revoked the refresh and access tokens at the provider and removed them locally"
        ),
        "{err}"
    );
    assert_no_secret(&h.needles, "revoke stderr", &err);
    assert_eq!(
        token.status.code(),
        Some(3),
        "REV-4: removed locally: {}",
        stderr(&token)
    );

    // REV-1: refresh token first, then the access token, both through the proxy with Basic.
    let stats = srv.stats();
    assert_eq!(stats.revocations, 2);
    assert_eq!(stats.last_client_auth.as_deref(), Some("basic"));
    let lines = h.checked_log(&[&refresh]);
    let revokes = lines
        .iter()
        .filter(|l| l.starts_with("access ") && l.contains("path=/api/auth/revoke status=200"))
        .count();
    assert_eq!(revokes, 2, "{lines:?}");

    // The provider refuses the revoked refresh token.
    let refused = h
        .post(
            "/api/auth/refresh",
            &serde_json::json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.json);
    assert_eq!(refused.str("error"), "invalid_grant");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_e2e_authdeck_revoke_without_proxy_revocation_endpoint_removes_locally_rev4() {
    let srv = devserver().await;
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let h = devserver_proxy(&srv, &redirect, 10).await; // no revocation_endpoint
    let account = proxy_account(&srv, &redirect, &h);
    let (revoke, token) = tokio::task::spawn_blocking(move || {
        account.login_paste();
        (
            account.run(&["revoke", "demo"]),
            account.run(&["token", "demo"]),
        )
    })
    .await
    .unwrap();
    let err = stderr(&revoke);
    assert_eq!(revoke.status.code(), Some(0), "revoke: {err}");
    assert!(
        err.contains("the exchange proxy has no revocation endpoint for this client; tokens removed locally only"),
        "{err}"
    );
    assert_eq!(token.status.code(), Some(3), "{}", stderr(&token));
    assert_eq!(srv.stats().revocations, 0);
    let lines = h.checked_log(&[]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("path=/api/auth/revoke status=501")),
        "{lines:?}"
    );
    h.stop().await;
}

/// oidc-provider's `client_secret_basic` client: the revocation endpoint is discovered from
/// `issuer`; revoking through the proxy makes the refresh token `invalid_grant`.
#[tokio::test]
async fn proxy_e2e_oidc_provider_revoke_through_the_proxy_rev1_rev2() {
    let op = OidcProvider::shared().unwrap();
    let redirect = redirect_uri(free_port());
    let h = oidc_proxy(op, &redirect).await;
    let (code, verifier) = oidc_code(op, &redirect).await;
    let body =
        serde_json::json!({"code": code, "code_verifier": verifier, "redirect_uri": redirect});
    let a = h.post("/api/auth/exchange", &body).await;
    assert_eq!(a.status, 200, "{}; server: {}", a.json, op.stderr());
    let access = a.str("access_token").to_owned();
    let refresh = a.str("refresh_token").to_owned();

    let r = h
        .post("/api/auth/revoke", &revoke_body(&refresh, "refresh_token"))
        .await;
    assert_eq!(
        (r.status, &r.json),
        (200, &serde_json::json!({})),
        "{}",
        op.stderr()
    );
    let t = h
        .post("/api/auth/revoke", &revoke_body(&access, "access_token"))
        .await;
    assert_eq!(t.status, 200, "{}", t.json);
    let unknown = h
        .post(
            "/api/auth/revoke",
            &revoke_body("never-issued-token", "refresh_token"),
        )
        .await;
    assert_eq!(unknown.status, 200, "RFC 7009 §2.2: {}", unknown.json);

    let refused = h
        .post(
            "/api/auth/refresh",
            &serde_json::json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.json);
    assert_eq!(refused.str("error"), "invalid_grant");
    h.checked_log(&[&code, &verifier, &access, &refresh]);
    h.stop().await;
}
