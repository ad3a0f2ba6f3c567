use super::*;

const GOOD: &str = r#"
listen = "127.0.0.1:3100"
upstream_timeout_secs = 10
[clients.dashboard]
token_endpoint = "https://auth.example.com/oauth/token"
client_id = "e3382e78"
client_secret_env = "DASHBOARD_CLIENT_SECRET"
redirect_uris = ["http://localhost:3100/auth/callback"]
allowed_origins = ["http://localhost:3100"]
"#;

fn err(text: &str) -> String {
    ProxyConfig::from_str(text, "proxy.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn metrics_off_on_listen_or_separate_proxy_17() {
    let c = ProxyConfig::from_str(GOOD, "proxy.toml").unwrap();
    assert_eq!(c.metrics, MetricsMode::Off);
    let c = ProxyConfig::from_str(&format!("metrics = true\n{GOOD}"), "proxy.toml").unwrap();
    assert_eq!(c.metrics, MetricsMode::OnListen);
    let text = format!("metrics_listen = \"127.0.0.1:9100\"\n{GOOD}");
    let c = ProxyConfig::from_str(&text, "proxy.toml").unwrap();
    assert_eq!(
        c.metrics,
        MetricsMode::Separate("127.0.0.1:9100".parse().unwrap())
    );
    let e = err(&format!("metrics_listen = \"127.0.0.1:3100\"\n{GOOD}"));
    assert!(e.contains("must differ from listen"), "{e}");
    let e = err(&format!("metrics_listen = \"nowhere\"\n{GOOD}"));
    assert!(e.starts_with("proxy.toml:1:"), "{e}");
    let e = err(&format!(
        "metrics = false\nmetrics_listen = \"127.0.0.1:9100\"\n{GOOD}"
    ));
    assert!(e.contains("metrics = false"), "{e}");
}

#[test]
fn trusted_proxies_and_proxy_protocol_proxy_11_13() {
    let c = ProxyConfig::from_str(GOOD, "proxy.toml").unwrap();
    assert!(c.trusted_proxies.is_empty(), "nobody is trusted by default");
    assert!(!c.proxy_protocol);
    let text = format!(
        "trusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\", \"::1\"]\nproxy_protocol = true\n{GOOD}"
    );
    let c = ProxyConfig::from_str(&text, "proxy.toml").unwrap();
    assert!(c.proxy_protocol);
    assert!(c.trusted_proxies.contains("10.9.8.7".parse().unwrap()));
    assert!(c.trusted_proxies.contains("::1".parse().unwrap()));
    assert!(!c.trusted_proxies.contains("192.168.0.1".parse().unwrap()));
    let e = err(&format!("trusted_proxies = [\"10.0.0.1/8\"]\n{GOOD}"));
    assert!(e.starts_with("proxy.toml:1:"), "{e}");
    assert!(e.contains("host bits"), "{e}");
    let e = err(&format!("proxy_protocol = true\n{GOOD}"));
    assert!(e.contains("needs trusted_proxies"), "{e}");
}

#[test]
fn parses_the_documented_shape() {
    let c = ProxyConfig::from_str(GOOD, "proxy.toml").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:3100");
    assert_eq!(c.upstream_timeout, Duration::from_secs(10));
    assert_eq!(c.rate_limit_per_minute, DEFAULT_RATE_LIMIT_PER_MINUTE);
    let d = &c.clients["dashboard"];
    assert_eq!(d.client_id, "e3382e78");
    assert!(matches!(&d.secret, SecretSource::Env(v) if v == "DASHBOARD_CLIENT_SECRET"));
    assert_eq!(d.allowed_origins, ["http://localhost:3100"]);
    assert_eq!(d.location, "proxy.toml:4:1");
}

#[test]
fn unknown_field_has_file_line_col() {
    let text = GOOD.replace("client_id =", "client_idd =");
    let e = err(&text);
    assert!(e.starts_with("proxy.toml:6:1:"), "{e}");
    assert!(e.contains("client_idd"), "{e}");
}

#[test]
fn inline_secret_needs_opt_in() {
    let text = GOOD.replace(
        "client_secret_env = \"DASHBOARD_CLIENT_SECRET\"",
        "client_secret = \"s3cr3t-inline\"",
    );
    let e = err(&text);
    assert!(e.contains("allow_inline_secret"), "{e}");
    assert!(!e.contains("s3cr3t-inline"), "{e}");
    let ok = text.replace(
        "client_secret =",
        "allow_inline_secret = true\nclient_secret =",
    );
    let c = ProxyConfig::from_str(&ok, "p").unwrap();
    let s = c.clients["dashboard"]
        .secret
        .load("dashboard", &|_| None)
        .unwrap();
    assert_eq!(s.secret(), "s3cr3t-inline");
}

#[test]
fn missing_secret_source_is_refused_proxy_9() {
    let text = GOOD.replace("client_secret_env = \"DASHBOARD_CLIENT_SECRET\"\n", "");
    assert!(err(&text).contains("client_secret_env or client_secret_file"));
}

#[test]
fn unset_env_secret_is_refused_proxy_9() {
    let c = ProxyConfig::from_str(GOOD, "p").unwrap();
    let e = c.clients["dashboard"]
        .secret
        .load("dashboard", &|_| None)
        .unwrap_err();
    assert!(
        e.to_string().contains("DASHBOARD_CLIENT_SECRET is not set"),
        "{e}"
    );
    let e = c.clients["dashboard"]
        .secret
        .load("dashboard", &|_| Some(String::new()))
        .unwrap_err();
    assert!(e.to_string().contains("is empty"), "{e}");
}

#[test]
fn secret_file_trims_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "fileSecret\n").unwrap();
    let s = SecretSource::File(path).load("x", &|_| None).unwrap();
    assert_eq!(s.secret(), "fileSecret");
}

#[test]
fn endpoint_rules() {
    assert!(err(&GOOD.replace("https://auth", "http://auth")).contains("must use https"));
    assert!(
        err(&GOOD.replace("https://auth", "https://u:p@auth")).contains("user name or password")
    );
    let local = GOOD.replace("https://auth.example.com", "http://127.0.0.1:9");
    assert!(ProxyConfig::from_str(&local, "p").is_ok());
    let both = GOOD.replace("client_id =", "issuer = \"https://a.example\"\nclient_id =");
    assert!(err(&both).contains("only one of"));
    let provider = GOOD.replace(
        "token_endpoint = \"https://auth.example.com/oauth/token\"",
        "provider = \"google\"",
    );
    let c = ProxyConfig::from_str(&provider, "p").unwrap();
    assert_eq!(
        c.clients["dashboard"].endpoint,
        EndpointSource::TokenEndpoint(Url::parse("https://oauth2.googleapis.com/token").unwrap())
    );
}

#[test]
fn provider_templates_resolve_or_explain() {
    let with = |p: &str| {
        GOOD.replace(
            "token_endpoint = \"https://auth.example.com/oauth/token\"",
            &format!("provider = \"{p}\""),
        )
    };
    for (name, url) in [
        ("github", "https://github.com/login/oauth/access_token"),
        ("spotify", "https://accounts.spotify.com/api/token"),
        ("openai", "https://auth.openai.com/oauth/token"),
    ] {
        let c = ProxyConfig::from_str(&with(name), "p").unwrap();
        assert_eq!(
            c.clients["dashboard"].endpoint,
            EndpointSource::TokenEndpoint(Url::parse(url).unwrap()),
            "{name}"
        );
    }
    let e = err(&with("microsoft"));
    assert!(
        e.starts_with("proxy.toml:5:12: client 'dashboard': "),
        "{e}"
    );
    assert!(e.contains("[vars] (tenant)"), "{e}");
    assert!(
        e.contains("https://login.microsoftonline.com/common/oauth2/v2.0/token"),
        "{e}"
    );
    assert!(err(&with("dexcom")).contains("[vars] (base_url)"));
    assert!(err(&with("oidc")).contains("no fixed token endpoint"));
    let e = err(&with("nosuch"));
    assert!(e.contains("unknown provider template 'nosuch'"), "{e}");
    assert!(e.contains("google"), "{e}");
}

#[test]
fn origins_must_be_exact() {
    for bad in [
        "*",
        "http://localhost:3100/",
        "http://localhost:3100/app",
        "null",
    ] {
        let text = GOOD.replace("[\"http://localhost:3100\"]", &format!("[\"{bad}\"]"));
        assert!(err(&text).contains("scheme://host[:port]"), "{bad}");
    }
}

#[test]
fn other_errors() {
    assert!(err("listen = \"127.0.0.1:3100\"\n").contains("no clients"));
    assert!(
        err(&GOOD.replace("127.0.0.1:3100\"", "nowhere\"")).starts_with("proxy.toml:2:10: listen")
    );
    assert!(err(&GOOD.replace("= 10", "= 0")).contains("upstream_timeout_secs"));
    assert!(
        err(&GOOD.replace("[\"http://localhost:3100/auth/callback\"]", "[]"))
            .contains("redirect_uris")
    );
}

#[test]
fn revocation_endpoint_configured_from_template_or_none() {
    let c = ProxyConfig::from_str(GOOD, "p").unwrap();
    assert_eq!(c.clients["dashboard"].revocation_endpoint, None);
    let explicit = GOOD.replace(
        "client_id =",
        "revocation_endpoint = \"https://auth.example.com/oauth/revoke\"\nclient_id =",
    );
    let c = ProxyConfig::from_str(&explicit, "p").unwrap();
    assert_eq!(
        c.clients["dashboard"].revocation_endpoint,
        Some(Url::parse("https://auth.example.com/oauth/revoke").unwrap())
    );
    let google = GOOD.replace(
        "token_endpoint = \"https://auth.example.com/oauth/token\"",
        "provider = \"google\"",
    );
    let c = ProxyConfig::from_str(&google, "p").unwrap();
    assert_eq!(
        c.clients["dashboard"].revocation_endpoint,
        Some(Url::parse("https://oauth2.googleapis.com/revoke").unwrap()),
        "a template's revocation endpoint is used"
    );
    let github = google.replace("\"google\"", "\"github\"");
    let c = ProxyConfig::from_str(&github, "p").unwrap();
    assert_eq!(c.clients["dashboard"].revocation_endpoint, None);
    let e = err(&explicit.replace(
        "https://auth.example.com/oauth/revoke",
        "http://a.example/r",
    ));
    assert!(
        e.starts_with("proxy.toml:6:23: client 'dashboard': revocation_endpoint must use https"),
        "{e}"
    );
}
