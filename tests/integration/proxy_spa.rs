//! Integration test: the browser front end of `examples/spa/` in Debian's headless Chromium
//! (driven by playwright-core, tests/interop/spa.mjs) against the real oidc-provider, with the
//! code exchange, refresh and revocation through `authdeck proxy` (PROXY-7/8 in a real
//! browser). The page is served from two origins: the one the proxy allows logs in; the other
//! gets through the provider's login but its exchange is blocked by CORS.
//!
//! The logged-in page's screenshot is kept as `target/tmp/spa-logged-in.png`.

use crate::oidc_provider::{BASIC_CLIENT_ID, BASIC_CLIENT_SECRET, OidcProvider};
use authdeck::oauth::testutil::{Reply, Stub};
use authdeck::proxy::{CaptureSink, Proxy, ProxyConfig};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const SECRET_ENV: &str = "SPA_PROXY_SECRET";

fn spa_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/spa")
}

/// The SPA's origin: the suite's one HTTP stub serving examples/spa (index.html also at
/// /callback) and `config.json`, once the test has set it.
async fn spa_origin(config: Arc<OnceLock<String>>) -> Stub {
    Stub::serve(move |req| {
        let (file, kind) = match req.route() {
            "/" | "/callback" => ("index.html", "text/html; charset=utf-8"),
            "/app.js" => ("app.js", "text/javascript"),
            "/style.css" => ("style.css", "text/css"),
            "/config.json" => ("", "application/json"),
            _ => ("404", "text/plain"),
        };
        let body = match file {
            "" => config.get().map(|c| c.as_bytes().to_vec()),
            "404" => None,
            name => std::fs::read(spa_dir().join(name)).ok(),
        };
        let reply = match body {
            Some(body) => Reply::bytes(200, body),
            None => Reply::bytes(404, Vec::new()),
        };
        reply
            .header("content-type", kind)
            .header("cache-control", "no-store")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spa_in_chromium_logs_in_refreshes_and_revokes_through_the_proxy_and_cors_blocks_another_origin_proxy_7_8()
 {
    let chromium = crate::support::chromium();
    let op = OidcProvider::start().unwrap();
    // The page's config names the proxy, whose config names the page's origins: the origins
    // start first and serve config.json once it is known.
    let spa_config = Arc::new(OnceLock::new());
    let allowed_origin = spa_origin(spa_config.clone()).await;
    let other_origin = spa_origin(spa_config.clone()).await;
    let (allowed, other) = (allowed_origin.base(), other_origin.base());

    let text = format!(
        r#"[clients.spa]
issuer = "{issuer}"
client_id = "{BASIC_CLIENT_ID}"
client_secret_env = "{SECRET_ENV}"
redirect_uris = ["{allowed}/callback", "{other}/callback"]
allowed_origins = ["{allowed}"]
"#,
        issuer = op.issuer
    );
    let config = ProxyConfig::from_str(&text, "spa.toml").unwrap();
    let log = Arc::new(CaptureSink::default());
    let env = |name: &str| (name == SECRET_ENV).then(|| BASIC_CLIENT_SECRET.to_owned());
    let proxy = Proxy::build(&config, &env, log.clone()).await.unwrap();
    let proxy = proxy
        .spawn(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .unwrap();

    let page_config = serde_json::json!({
        "authorization_endpoint": op.url("/auth"),
        "client_id": BASIC_CLIENT_ID,
        "scope": "openid email profile offline_access",
        "proxy": proxy.url(),
    });
    spa_config.set(page_config.to_string()).unwrap();

    let profile = tempfile::tempdir().unwrap();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let screenshot = shots.join("spa-logged-in.png");
    let _ = std::fs::remove_file(&screenshot);
    let interop = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let mut cmd = Command::new("node");
    cmd.arg("spa.mjs")
        .current_dir(&interop)
        .env("SPA_ALLOWED", &allowed)
        .env("SPA_OTHER", &other)
        .env("SPA_PROXY", proxy.url())
        .env("SPA_SCREENSHOT", &screenshot)
        .env("SPA_PROFILE", profile.path())
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let child = cmd.spawn().expect("node");
        let started = Instant::now();
        let out = child.wait_with_output().unwrap();
        assert!(started.elapsed() < Duration::from_secs(150));
        out
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let result: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no result line from spa.mjs: {stdout}\n{stderr}"));
    assert!(result["error"].is_null(), "{result:#}\n{stderr}");

    // Login from the allowed origin: the exchange went through the proxy.
    assert_eq!(
        result["login_status"], "Logged in as spa-user",
        "{result:#}"
    );
    let claims = &result["claims"];
    assert_eq!(claims["sub"], "spa-user");
    assert_eq!(claims["email"], "spa-user@example.test");
    assert_eq!(claims["iss"], op.issuer.as_str());
    assert_eq!(claims["aud"], BASIC_CLIENT_ID);
    let after_login = result["url_after_login"].as_str().unwrap();
    assert!(
        !after_login.contains("code="),
        "the code left the address bar: {after_login}"
    );
    // Refresh: a new access token; revoke: the provider then refuses the refresh token.
    assert_eq!(result["refresh_status"], "Refreshed");
    assert_ne!(result["fingerprint_login"], result["fingerprint_refresh"]);
    assert_eq!(result["revoke_status"], "Revoked and logged out");
    assert_eq!(result["refresh_after_revoke"]["status"], 400);
    assert_eq!(result["refresh_after_revoke"]["error"], "invalid_grant");
    // The other origin: the browser blocked the exchange (CORS), no session.
    let other_status = result["other_status"].as_str().unwrap();
    assert!(
        other_status.starts_with("exchange failed: ") && other_status.contains("Failed to fetch"),
        "{other_status}"
    );
    assert_eq!(result["other_session_hidden"], true);

    // The proxy's side: one exchange, refresh and two revocations served for the allowed
    // origin; for the other one only a refused preflight, never a POST (PROXY-8).
    let lines: Vec<String> = log.lines().into_iter().map(|(_, l)| l).collect();
    let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(
        count("access method=POST path=/api/auth/exchange status=200"),
        1,
        "{lines:?}"
    );
    assert_eq!(
        count("access method=POST path=/api/auth/refresh status=200"),
        1,
        "{lines:?}"
    );
    assert_eq!(
        count("access method=POST path=/api/auth/revoke status=200"),
        2,
        "{lines:?}"
    );
    assert_eq!(
        count("access method=OPTIONS path=/api/auth/exchange status=403"),
        1,
        "{lines:?}"
    );
    assert_eq!(
        count("access method=POST path=/api/auth/exchange"),
        1,
        "{lines:?}"
    );
    for line in &lines {
        assert!(!line.contains(BASIC_CLIENT_SECRET), "{line}");
    }

    // The screenshot of the logged-in page is a real PNG.
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 2_000,
        "{}",
        png.len()
    );
    eprintln!("screenshot: {}", screenshot.display());

    drop((allowed_origin, other_origin));
    proxy.shutdown().await.unwrap();
}
