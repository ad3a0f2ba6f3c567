//! Integration tests: the device authorization grant through the exchange proxy (PROXY-18,
//! PROXY-19) against the real `oidc-provider` with its `client_secret_basic` client, whose
//! secret only the proxy holds: first over plain HTTP, then `authdeck login --mode device` of
//! an `exchange_proxy` account (the real binary).

use crate::oidc_provider::{
    BASIC_CLIENT_ID, BASIC_CLIENT_SECRET, OidcProvider, approve_device, approve_device_with_code,
};
use authdeck::proxy::{CaptureSink, Proxy, ProxyConfig, ProxyHandle};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const SECRET_ENV: &str = "DEVICE_E2E_SECRET";

/// A proxy in front of oidc-provider (endpoints discovered from the issuer), plus a second
/// client `nodevice` with only a token endpoint.
async fn start_proxy(op: &OidcProvider) -> (ProxyHandle, Arc<CaptureSink>) {
    let text = format!(
        r#"[clients.op]
issuer = "{issuer}"
client_id = "{BASIC_CLIENT_ID}"
client_secret_env = "{SECRET_ENV}"
redirect_uris = ["http://127.0.0.1:8765/callback"]
[clients.nodevice]
token_endpoint = "{issuer}/token"
client_id = "{BASIC_CLIENT_ID}"
client_secret_env = "{SECRET_ENV}"
redirect_uris = ["http://127.0.0.1:8765/callback"]
"#,
        issuer = op.issuer
    );
    let config = ProxyConfig::from_str(&text, "device.toml").unwrap();
    let log = Arc::new(CaptureSink::default());
    let env = |name: &str| (name == SECRET_ENV).then(|| BASIC_CLIENT_SECRET.to_owned());
    let proxy = Proxy::build(&config, &env, log.clone()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    (proxy.spawn(listener).unwrap(), log)
}

async fn post(
    proxy: &ProxyHandle,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = http
        .post(format!("{}{path}", proxy.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn assert_no_secret(log: &CaptureSink) {
    for (_, line) in log.lines() {
        assert!(!line.contains(BASIC_CLIENT_SECRET), "{line}");
        assert!(!line.contains("basic secret"), "{line}");
    }
}

#[tokio::test]
async fn device_grant_through_the_proxy_against_oidc_provider_proxy_18_19() {
    let op = OidcProvider::shared().unwrap();
    let (proxy, log) = start_proxy(op).await;
    let (status, auth) = post(
        &proxy,
        "/api/auth/device",
        serde_json::json!({"client": "op", "scope": "openid email offline_access"}),
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    let device_code = auth["device_code"].as_str().unwrap().to_owned();
    assert!(auth["user_code"].as_str().is_some_and(|c| !c.is_empty()));
    let complete = auth["verification_uri_complete"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(complete.starts_with(&op.issuer), "{complete}");

    let poll = serde_json::json!({
        "client": "op", "grant_type": DEVICE_GRANT, "device_code": device_code,
    });
    // Not approved yet: oidc-provider's authorization_pending comes back with its status.
    let (status, pending) = post(&proxy, "/api/auth/exchange", poll.clone()).await;
    assert_eq!(
        (status, pending["error"].as_str()),
        (400, Some("authorization_pending"))
    );

    approve_device(&complete).await.unwrap();
    let (status, tokens) = post(&proxy, "/api/auth/exchange", poll.clone()).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(
        tokens["access_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(tokens["refresh_token"].as_str().is_some(), "{tokens}");
    // The code is used up: a replay is refused by the server and passed through.
    let (status, replay) = post(&proxy, "/api/auth/exchange", poll).await;
    assert_eq!(status, 400, "{replay}");

    // Bad input never reaches the server.
    let (status, body) = post(
        &proxy,
        "/api/auth/exchange",
        serde_json::json!({"client": "op", "grant_type": "password", "username": "x"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, body) = post(
        &proxy,
        "/api/auth/exchange",
        serde_json::json!({"client": "op", "grant_type": DEVICE_GRANT}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) = post(
        &proxy,
        "/api/auth/device",
        serde_json::json!({"client": "op", "scope": "bad\"scope"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // A client with no device endpoint at the proxy: 501, like revoke.
    let (status, body) = post(
        &proxy,
        "/api/auth/device",
        serde_json::json!({"client": "nodevice"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (501, Some("unsupported_operation"))
    );

    let lines: Vec<String> = log.lines().into_iter().map(|(_, l)| l).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("access method=POST path=/api/auth/device status=200 ")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains(&device_code)),
        "the device code is never logged (LOG-1)"
    );
    assert_no_secret(&log);
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authdeck_login_mode_device_goes_through_the_proxy_proxy_18_19() {
    let op = OidcProvider::shared().unwrap();
    let (proxy, log) = start_proxy(op).await;
    let dir = tempfile::tempdir().unwrap();
    let providers = dir.path().join("config/providers");
    std::fs::create_dir_all(&providers).unwrap();
    // The account holds no secret and authenticates as a public client would; only the proxy
    // can authenticate the confidential client.
    std::fs::write(
        providers.join("demo.toml"),
        format!(
            "extends = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{BASIC_CLIENT_ID}\"\n\
             client_auth = \"none\"\nscopes = [\"openid\", \"email\", \"offline_access\"]\n\
             redirect_uri = \"http://127.0.0.1:8765/callback\"\n\
             exchange_proxy = \"{}/?client=op\"\n",
            op.issuer,
            proxy.url()
        ),
    )
    .unwrap();
    authdeck::vault::generate_key_file(&dir.path().join("vault.key")).unwrap();
    let base = dir.path().to_owned();
    let cmd = move |args: &[&str]| {
        let mut c = Command::new(crate::support::bin());
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &base)
            .env("AUTHDECK_CONFIG_DIR", base.join("config"))
            .env("AUTHDECK_VAULT", base.join("vault.bin"))
            .env("AUTHDECK_KEY_FILE", base.join("vault.key"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let mut login = cmd(&["login", "demo", "--mode", "device"]).spawn().unwrap();
    let stdout = login.stdout.take().unwrap();
    let stderr = login.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(bool, String)>();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((true, line));
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send((false, line));
        }
    });
    // stdout: the user code; stderr: "Go to URI and enter the code:".
    let (mut user_code, mut uri) = (None, None);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while user_code.is_none() || uri.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (is_stdout, line) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no user code / URI from login: {seen:?}"));
        seen.push(line.clone());
        if is_stdout && user_code.is_none() {
            user_code = Some(line.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("Go to ") {
            uri = rest.strip_suffix(" and enter the code:").map(str::to_owned);
        }
    }
    let (user_code, uri) = (user_code.unwrap(), uri.unwrap());
    assert_eq!(uri, format!("{}/device", op.issuer));
    approve_device_with_code(&uri, &user_code).await.unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = login.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = login.kill();
                panic!("device login did not finish within 40 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let rest: Vec<String> = rx.try_iter().map(|(_, l)| l).collect();
    assert!(status.success(), "device login failed: {seen:?} {rest:?}");
    for line in seen.iter().chain(&rest) {
        assert!(!line.contains(BASIC_CLIENT_SECRET), "{line}");
    }
    let token = tokio::task::spawn_blocking(move || {
        let out = cmd(&["token", "demo"]).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
    })
    .await
    .unwrap();
    assert!(token.0 && !token.1.is_empty(), "token after device login");

    // Both steps went through the proxy, which authenticated the confidential client.
    let lines: Vec<String> = log.lines().into_iter().map(|(_, l)| l).collect();
    for path in ["/api/auth/device", "/api/auth/exchange"] {
        let prefix = format!("access method=POST path={path} status=200 ");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&prefix) && l.contains(" client=op ")),
            "{path}: {lines:?}"
        );
    }
    assert_no_secret(&log);
    proxy.shutdown().await.unwrap();
}
