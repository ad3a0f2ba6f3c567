//! Integration tests: callback. The loopback listener driven over real sockets (CB-1..CB-12,
//! AUTHZ-4, AUTHZ-7).

use std::time::Duration;

use authdeck::oauth::callback::{CallbackError, CallbackListener, ListenerOptions, PendingLogin};
use authdeck::secret::CsrfState;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

/// Upper bound for any single wait in these tests.
const WAIT: Duration = Duration::from_secs(5);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .no_proxy()
        .build()
        .unwrap()
}

async fn listener(uri: &str) -> CallbackListener {
    listener_with(uri, ListenerOptions::default()).await
}

async fn listener_with(uri: &str, options: ListenerOptions) -> CallbackListener {
    CallbackListener::bind(&Url::parse(uri).unwrap(), options)
        .await
        .unwrap()
}

fn register(l: &CallbackListener, state: &str) -> PendingLogin {
    l.register(CsrfState::new(state), Some("https://issuer.example".into()))
        .unwrap()
}

/// The redirect URI with `query` appended.
fn hit(l: &CallbackListener, query: &str) -> String {
    let mut u = l.redirect_uri();
    u.set_query(Some(query));
    u.to_string()
}

async fn get(url: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let r = client().get(url).send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

async fn wait(p: PendingLogin) -> Result<authdeck::oauth::callback::CallbackResult, CallbackError> {
    tokio::time::timeout(WAIT, p.wait()).await.unwrap()
}

/// Sends raw bytes and returns everything the server answers before closing.
async fn raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // The server may answer and close before reading everything (431): ignore write errors.
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn port(l: &CallbackListener) -> u16 {
    l.redirect_uri().port().unwrap()
}

/// True once nothing accepts on 127.0.0.1:`port` (checked for up to [`WAIT`]).
async fn becomes_closed(port: u16) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn cb1_cb2_free_port_in_redirect_uri_and_success_page_cb11() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let uri = l.redirect_uri();
    assert_eq!(uri.host_str(), Some("127.0.0.1"));
    assert_ne!(uri.port(), Some(0));
    assert_eq!(uri.path(), "/callback");
    let p = register(&l, "state-one");

    let (status, headers, body) = get(&hit(
        &l,
        "code=the-code-123&state=state-one&iss=https%3A%2F%2Fissuer.example",
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let lower = body.to_ascii_lowercase();
    assert!(!lower.contains("<script") && !lower.contains("src=") && !lower.contains("href="));
    assert!(
        !body.contains("the-code-123") && !body.contains("state-one"),
        "{body}"
    );

    let r = wait(p).await.unwrap();
    assert_eq!(r.code.secret(), "the-code-123");
    assert_eq!(r.iss.as_deref(), Some("https://issuer.example"));
}

#[tokio::test]
async fn cb1_fixed_port_taken_names_the_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let e = CallbackListener::bind(
        &Url::parse(&format!("http://127.0.0.1:{port}/auth/callback")).unwrap(),
        ListenerOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, CallbackError::PortInUse { port: p } if p == port),
        "{e:?}"
    );
    assert!(e.to_string().contains(&port.to_string()), "{e}");
}

#[tokio::test]
async fn cb1_fixed_free_port_is_used() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let l = listener(&format!("http://127.0.0.1:{port}/auth/callback")).await;
    assert_eq!(
        l.redirect_uri().as_str(),
        format!("http://127.0.0.1:{port}/auth/callback")
    );
}

#[tokio::test]
async fn cb1_rejects_non_loopback_or_non_http_redirects() {
    for uri in [
        "http://0.0.0.0:0/cb",
        "http://192.168.1.10:0/cb",
        "http://example.com:0/cb",
        "https://127.0.0.1:0/cb",
        "http://[::]:0/cb",
    ] {
        let e = CallbackListener::bind(&Url::parse(uri).unwrap(), ListenerOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(e, CallbackError::InvalidRedirectUri(_)),
            "{uri}: {e:?}"
        );
    }
}

#[tokio::test]
async fn cb1_localhost_answers_on_ipv4_and_ipv6_when_available() {
    let l = listener("http://localhost:0/callback").await;
    let uri = l.redirect_uri();
    assert_eq!(
        uri.host_str(),
        Some("localhost"),
        "localhost kept as configured"
    );
    let port = port(&l);
    let p1 = register(&l, "s-v4");
    let p2 = register(&l, "s-v6");

    let (status, _, _) = get(&format!(
        "http://127.0.0.1:{port}/callback?code=a&state=s-v4"
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wait(p1).await.unwrap().code.secret(), "a");

    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    if ipv6 {
        let (status, _, _) = get(&format!("http://[::1]:{port}/callback?code=b&state=s-v6")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(wait(p2).await.unwrap().code.secret(), "b");
    } else {
        drop(p2);
    }
}

#[tokio::test]
async fn cb7_wrong_or_missing_state_is_400_and_login_keeps_waiting() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let p = register(&l, "good-state");
    for q in [
        "code=x&state=bad-state",
        "code=x",
        "code=x&state=",
        "code=x&state=good-state&state=bad",
    ] {
        let (status, _, body) = get(&hit(&l, q)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
        assert!(
            !body.contains("bad-state") && !body.contains("good-state"),
            "{body}"
        );
    }
    let (status, _, _) = get(&hit(&l, "code=real&state=good-state")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wait(p).await.unwrap().code.secret(), "real");
}

#[tokio::test]
async fn cb8_access_denied_ends_login_as_denied() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let p = register(&l, "st");
    let (status, headers, body) = get(&hit(
        &l,
        "error=access_denied&error_description=User+said+no&state=st",
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["cache-control"], "no-store");
    assert!(body.contains("denied"), "{body}");
    let e = wait(p).await.unwrap_err();
    assert!(
        matches!(&e, CallbackError::Denied { description: Some(d) } if d == "User said no"),
        "{e:?}"
    );
}

#[tokio::test]
async fn cb8_authz7_provider_error_is_escaped_in_page_and_error() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let p = register(&l, "st");
    let long = "z".repeat(3000);
    let q = format!(
        "error=invalid_scope&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E%1b{long}&error_uri=https%3A%2F%2Fevil&state=st"
    );
    let (status, _, body) = get(&hit(&l, &q)).await;
    // ERR-1: an error code other than access_denied ends the login too.
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("invalid_scope"), "{body}");
    assert!(!body.contains("<script>"), "{body}");
    assert!(body.contains("&lt;script&gt;"), "{body}");
    assert!(!body.contains(&long), "description truncated");
    assert!(
        !body.contains("https://evil"),
        "error_uri never shown as a link"
    );
    let e = wait(p).await.unwrap_err();
    let CallbackError::Provider { error, description } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(error, "invalid_scope");
    let d = description.as_deref().unwrap();
    assert!(!d.contains('\x1b') && d.len() < 400, "{d}");
    assert!(!e.to_string().contains('\x1b'));
}

#[tokio::test]
async fn cb9_valid_state_without_code_or_error_is_malformed() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let p = register(&l, "st");
    let (status, _, _) = get(&hit(&l, "state=st")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(matches!(wait(p).await, Err(CallbackError::Malformed)));
}

#[tokio::test]
async fn cb6_other_path_404_without_consuming_and_non_get_405() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let p = register(&l, "st");
    let port = port(&l);
    for path in ["/favicon.ico", "/", "/callback/", "/CALLBACK", "/callbackx"] {
        let (status, _, _) = get(&format!("http://127.0.0.1:{port}{path}?code=x&state=st")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let r = client()
        .post(hit(&l, "code=x&state=st"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Nothing consumed: the real redirect still completes the login.
    let (status, _, _) = get(&hit(&l, "code=ok&state=st")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wait(p).await.unwrap().code.secret(), "ok");
}

#[tokio::test]
async fn cb10_second_hit_after_completion_is_already_completed() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let p = register(&l, "first");
    // A second pending login keeps the listener open after the first finishes.
    let other = register(&l, "second");
    let (status, _, _) = get(&hit(&l, "code=c1&state=first")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wait(p).await.unwrap().code.secret(), "c1");
    let (status, _, body) = get(&hit(&l, "code=c2&state=first")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("already completed"), "{body}");
    drop(other);
}

#[tokio::test]
async fn authz3_authz5_several_pending_logins_are_routed_by_state() {
    let l = listener("http://127.0.0.1:0/cb").await;
    let logins: Vec<_> = (0..4)
        .map(|i| register(&l, &format!("state-{i}")))
        .collect();
    assert!(matches!(
        l.register(CsrfState::new("state-2"), None),
        Err(CallbackError::DuplicateState)
    ));
    // Answer in reverse order; each login gets its own code.
    for i in (0..4).rev() {
        let (status, _, _) = get(&hit(&l, &format!("code=code-{i}&state=state-{i}"))).await;
        assert_eq!(status, StatusCode::OK);
    }
    for (i, p) in logins.into_iter().enumerate() {
        assert_eq!(wait(p).await.unwrap().code.secret(), format!("code-{i}"));
    }
}

#[tokio::test]
async fn authz4_iss_mismatch_ends_login() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let p = register(&l, "st");
    let (status, _, _) = get(&hit(&l, "code=c&state=st&iss=https%3A%2F%2Fevil.example")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(matches!(wait(p).await, Err(CallbackError::IssuerMismatch)));
}

#[tokio::test]
async fn authz4_missing_iss_rejected_when_required() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let p = register(&l, "st");
    p.set_require_iss(true);
    let (status, _, _) = get(&hit(&l, "code=c&state=st")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(matches!(wait(p).await, Err(CallbackError::IssuerMismatch)));
}

#[tokio::test]
async fn cb5_foreign_host_header_is_400() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let p = register(&l, "st");
    let port = port(&l);
    for host in [
        format!("evil.example:{port}"),
        format!("localhost:{port}"),
        "127.0.0.1".to_string(),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
    ] {
        let req = format!(
            "GET /callback?code=x&state=st HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        );
        let resp = raw(port, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{host}: {resp}");
    }
    // No Host at all (HTTP/1.0).
    let resp = raw(port, b"GET /callback?code=x&state=st HTTP/1.0\r\n\r\n").await;
    assert!(
        resp.starts_with("HTTP/1.1 400") || resp.starts_with("HTTP/1.0 400"),
        "{resp}"
    );
    // The right Host still works: nothing was consumed.
    let req = format!("GET /callback?code=x&state=st HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    assert!(raw(port, req.as_bytes()).await.starts_with("HTTP/1.1 200"));
    assert_eq!(wait(p).await.unwrap().code.secret(), "x");
}

#[tokio::test]
async fn cb5_localhost_accepts_its_three_host_forms() {
    let l = listener("http://localhost:0/callback").await;
    let port = port(&l);
    let hosts = [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    let logins: Vec<_> = (0..3).map(|i| register(&l, &format!("s{i}"))).collect();
    for (i, host) in hosts.iter().enumerate() {
        let req = format!("GET /callback?code=c{i}&state=s{i} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let resp = raw(port, req.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{host}: {resp}");
    }
    for (i, p) in logins.into_iter().enumerate() {
        assert_eq!(wait(p).await.unwrap().code.secret(), format!("c{i}"));
    }
}

#[tokio::test]
async fn cb12_oversized_head_is_431_and_long_uri_is_414() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let p = register(&l, "st");
    let port = port(&l);
    let big = "a".repeat(10 * 1024);
    let req = format!("GET /callback HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: {big}\r\n\r\n");
    let resp = raw(port, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");

    let long = "q".repeat(5 * 1024);
    let (status, _, _) = get(&hit(&l, &format!("code=x&state=st&pad={long}"))).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    // Neither consumed the login.
    let (status, _, _) = get(&hit(&l, "code=y&state=st")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wait(p).await.unwrap().code.secret(), "y");
}

#[tokio::test]
async fn cb12_slow_request_head_is_cut_off() {
    let options = ListenerOptions {
        read_timeout: Duration::from_millis(300),
        ..ListenerOptions::default()
    };
    let l = listener_with("http://127.0.0.1:0/callback", options).await;
    let _p = register(&l, "st");
    let mut s = TcpStream::connect(("127.0.0.1", port(&l))).await.unwrap();
    s.write_all(b"GET /callback HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("connection must be closed by the read timeout")
        .ok();
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = String::from_utf8_lossy(&out);
    assert!(!text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn cb12_login_times_out_and_listener_closes() {
    let options = ListenerOptions {
        timeout: Duration::from_millis(200),
        ..ListenerOptions::default()
    };
    let l = listener_with("http://127.0.0.1:0/callback", options).await;
    let port = port(&l);
    let p = register(&l, "st");
    assert!(matches!(wait(p).await, Err(CallbackError::Timeout)));
    assert!(
        becomes_closed(port).await,
        "CB-3: port closed after the timeout"
    );
    assert!(matches!(
        l.register(CsrfState::new("n"), None),
        Err(CallbackError::Closed)
    ));
}

#[tokio::test]
async fn cb3_listener_closes_after_last_login() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let port = port(&l);
    let p1 = register(&l, "a");
    let p2 = register(&l, "b");
    get(&hit(&l, "code=1&state=a")).await;
    wait(p1).await.unwrap();
    // One login still pending: still open.
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_ok());
    get(&hit(&l, "code=2&state=b")).await;
    wait(p2).await.unwrap();
    assert!(
        becomes_closed(port).await,
        "CB-3: port closed after the last login"
    );
}

#[tokio::test]
async fn cb3_drop_closes_listener_and_fails_pending_login() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let port = port(&l);
    let p = register(&l, "st");
    drop(l);
    assert!(matches!(wait(p).await, Err(CallbackError::Closed)));
    assert!(becomes_closed(port).await);
}

#[tokio::test]
async fn cb3_cancelled_login_closes_listener() {
    let l = listener("http://127.0.0.1:0/callback").await;
    let port = port(&l);
    let p = register(&l, "st");
    drop(p);
    assert!(becomes_closed(port).await);
}
