//! Integration tests: the exchange proxy behind load balancers: trusted proxies,
//! `X-Forwarded-For` and the PROXY protocol (PROXY-11..13 in docs/protocol.md), over real
//! loopback sockets from several source addresses (127.0.0.1 and 127.0.0.2 are both local on
//! Linux, so one machine has a "balancer" and a "stranger").
//!
//! The revoke route of a client without a revocation endpoint answers 501 without any upstream
//! call, after the rate limit: a cheap request that the limiter counts.

use authdeck::proxy::{CaptureSink, Proxy, ProxyConfig, ProxyHandle};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const BALANCER: &str = "127.0.0.1";
const STRANGER: &str = "127.0.0.2";

fn config(top: &str) -> String {
    format!(
        r#"rate_limit_per_minute = 2
{top}
[clients.app]
token_endpoint = "http://127.0.0.1:9/token"
client_id = "app"
client_secret = "forwarded-test-secret"
allow_inline_secret = true
redirect_uris = ["http://127.0.0.1:8765/callback"]
"#
    )
}

async fn start(top: &str) -> (ProxyHandle, Arc<CaptureSink>) {
    let config = ProxyConfig::from_str(&config(top), "fwd.toml").unwrap();
    let log = Arc::new(CaptureSink::default());
    let proxy = Proxy::build(&config, &|_| None, log.clone()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    (proxy.spawn(listener).unwrap(), log)
}

/// A connection from `source` (a local loopback address) to the proxy.
async fn connect_from(source: &str, proxy: &ProxyHandle) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(proxy.local_addr()).await.unwrap()
}

/// Sends `preamble` (a PROXY header, or nothing) and one revoke request with `xff` headers;
/// returns the status line's code, or `None` when the proxy closed without answering.
async fn revoke(source: &str, proxy: &ProxyHandle, preamble: &[u8], xff: &[&str]) -> Option<u16> {
    let mut s = connect_from(source, proxy).await;
    let body = r#"{"token":"some-token"}"#;
    let mut req = preamble.to_vec();
    req.extend_from_slice(
        format!(
            "POST /api/auth/revoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        )
        .as_bytes(),
    );
    for value in xff {
        req.extend_from_slice(format!("X-Forwarded-For: {value}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body.as_bytes());
    // The proxy may close early (a refused PROXY header): a failed write is an answer too.
    let _ = s.write_all(&req).await;
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "the proxy neither answered nor closed");
    let text = String::from_utf8_lossy(&reply);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// The `ip=` field of every access line, in order.
fn logged_ips(log: &CaptureSink) -> Vec<IpAddr> {
    log.lines()
        .into_iter()
        .filter(|(_, l)| l.starts_with("access "))
        .map(|(_, l)| {
            let word = l
                .split(' ')
                .find_map(|w| w.strip_prefix("ip="))
                .unwrap_or_else(|| panic!("no ip= in {l}"));
            word.parse()
                .unwrap_or_else(|_| panic!("ip= is not an address in {l}"))
        })
        .collect()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[tokio::test]
async fn forged_xff_from_an_untrusted_peer_changes_nothing_proxy_11() {
    // Only 10.0.0.0/8 is trusted: the loopback peer is a stranger whatever it claims.
    let (proxy, log) = start(r#"trusted_proxies = ["10.0.0.0/8"]"#).await;
    let forged = ["203.0.113.1", "203.0.113.2", "10.0.0.1, 203.0.113.3"];
    let mut statuses = Vec::new();
    for xff in forged {
        statuses.push(revoke(BALANCER, &proxy, b"", &[xff]).await);
    }
    // Two per minute per address: a new forged address each time did not buy a new quota.
    assert_eq!(statuses, [Some(501), Some(501), Some(429)]);
    assert_eq!(logged_ips(&log), ips(&[BALANCER, BALANCER, BALANCER]));
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn trusted_balancer_xff_gives_the_client_its_own_limit_proxy_12() {
    let (proxy, log) = start(r#"trusted_proxies = ["127.0.0.1/32"]"#).await;
    let mut statuses = Vec::new();
    // Two clients behind the balancer, two requests each: nobody is limited yet although
    // all four come from the balancer's address.
    for xff in [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.1",
        "198.51.100.2",
    ] {
        statuses.push(revoke(BALANCER, &proxy, b"", &[xff]).await);
    }
    // The first client's third: limited. The rightmost untrusted hop counts, not the
    // client's own forged left part.
    statuses.push(revoke(BALANCER, &proxy, b"", &["6.6.6.6, 198.51.100.1"]).await);
    // A stranger sending the same header is counted as itself and is not limited.
    statuses.push(revoke(STRANGER, &proxy, b"", &["198.51.100.2"]).await);
    // Several header lines form one list; the last one is the balancer's.
    statuses.push(revoke(BALANCER, &proxy, b"", &["6.6.6.6", "198.51.100.3"]).await);
    assert_eq!(
        statuses,
        [
            Some(501),
            Some(501),
            Some(501),
            Some(501),
            Some(429),
            Some(501),
            Some(501)
        ]
    );
    assert_eq!(
        logged_ips(&log),
        ips(&[
            "198.51.100.1",
            "198.51.100.2",
            "198.51.100.1",
            "198.51.100.2",
            "198.51.100.1",
            STRANGER,
            "198.51.100.3"
        ])
    );
    proxy.shutdown().await.unwrap();
}

fn v2_header(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = vec![
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0, 12,
    ];
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&3100u16.to_be_bytes());
    h
}

#[tokio::test]
async fn proxy_protocol_listener_proxy_13() {
    let (proxy, log) = start("trusted_proxies = [\"127.0.0.1/32\"]\nproxy_protocol = true").await;
    let v1 = b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 3100\r\n";
    assert_eq!(revoke(BALANCER, &proxy, v1, &[]).await, Some(501));
    let v2 = v2_header([198, 51, 100, 8], 40001);
    assert_eq!(revoke(BALANCER, &proxy, &v2, &[]).await, Some(501));
    // HAProxy's health checks with `check-send-proxy` send LOCAL: the balancer itself.
    let mut local = v2_header([0; 4], 0);
    local[12] = 0x20;
    assert_eq!(revoke(BALANCER, &proxy, &local, &[]).await, Some(501));
    // A stranger's PROXY header is read (it is framing) but its address is ignored.
    assert_eq!(revoke(STRANGER, &proxy, v1, &[]).await, Some(501));
    // No header, a malformed one, or one cut short: closed without an HTTP answer.
    assert_eq!(revoke(BALANCER, &proxy, b"", &[]).await, None);
    assert_eq!(
        revoke(
            BALANCER,
            &proxy,
            b"PROXY TCP4 198.51.100.7 nope 1 2\r\n",
            &[]
        )
        .await,
        None
    );
    // The PROXY source is the peer for X-Forwarded-For: an untrusted client's header is
    // ignored even on a trusted balancer's connection.
    let v1_again = b"PROXY TCP4 198.51.100.7 127.0.0.1 40002 3100\r\n";
    assert_eq!(
        revoke(BALANCER, &proxy, v1_again, &["203.0.113.50"]).await,
        Some(501)
    );
    // 198.51.100.7's third request in the minute.
    assert_eq!(revoke(BALANCER, &proxy, v1_again, &[]).await, Some(429));
    assert_eq!(
        logged_ips(&log),
        ips(&[
            "198.51.100.7",
            "198.51.100.8",
            BALANCER,
            STRANGER,
            "198.51.100.7",
            "198.51.100.7"
        ])
    );
    proxy.shutdown().await.unwrap();
}
