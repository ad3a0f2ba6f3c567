//! Unit tests of the provider module: templates, merge rules, validation, naming.

use super::*;

fn account(text: &str) -> Provider {
    match parse_str("acct", "acct.toml", text) {
        Ok(p) => p,
        Err(problems) => panic!("unexpected problems: {problems:#?}"),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    match parse_str("acct", "acct.toml", text) {
        Ok(p) => panic!("expected problems, got {p:#?}"),
        Err(problems) => problems,
    }
}

#[track_caller]
fn assert_problem(text: &str, line: usize, column: usize, needle: &str) {
    let found = problems(text);
    assert!(
        found
            .iter()
            .any(|p| p.position == Some(Position { line, column }) && p.message.contains(needle)),
        "no problem at {line}:{column} containing {needle:?} in {found:#?}"
    );
}

fn url(u: &Option<Url>) -> &str {
    u.as_ref().map_or("", Url::as_str)
}

/// PROV-1: every bundled template has its section in docs/providers.md, with a source for
/// each assumption and what to register at the provider.
#[test]
fn prov1_every_template_is_documented_with_sources() {
    let doc = include_str!("../../docs/providers.md");
    for name in TEMPLATE_NAMES {
        let heading = doc
            .lines()
            .position(|l| l.starts_with("### ") && l.contains(&format!("`{name}`")))
            .unwrap_or_else(|| panic!("no section for {name}"));
        let section: Vec<&str> = doc
            .lines()
            .skip(heading + 1)
            .take_while(|l| !l.starts_with("### ") && !l.starts_with("## "))
            .collect();
        assert!(
            section.iter().any(|l| l.contains("**Register:**")),
            "{name}: what to register"
        );
        for row in section
            .iter()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| ---"))
        {
            let cells: Vec<&str> = row.split(" | ").collect();
            if cells.first() == Some(&"| assumption") {
                continue;
            }
            let source = cells.last().unwrap_or(&"").trim_end_matches('|').trim();
            assert!(!source.is_empty(), "{name}: no source in {row}");
        }
    }
}

#[test]
fn every_bundled_template_loads_and_validates() {
    let all = templates();
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, TEMPLATE_NAMES);
    for p in &all {
        assert_eq!(p.source, Source::Bundled);
        assert!(p.warnings.is_empty(), "{}: {:?}", p.name, p.warnings);
        assert!(p.pkce, "{}: PKCE is on by default (PKCE-3)", p.name);
        if p.name == "oidc" {
            assert!(p.token_endpoint.is_none() && p.issuer.is_none());
            continue;
        }
        for e in [&p.authorization_endpoint, &p.token_endpoint] {
            assert_eq!(e.as_ref().map(Url::scheme), Some("https"), "{}", p.name);
        }
    }
}

#[test]
fn bundled_templates_hold_no_client_secret_secret_1() {
    for name in TEMPLATE_NAMES {
        let text = template_text(name).unwrap_or_default();
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("client_secret ")),
            "{name}"
        );
        assert!(template(name).is_some_and(|p| p.client_secret.is_none()));
    }
}

#[test]
fn a_template_with_a_client_secret_is_rejected_secret_1() {
    let layer = parse_layer("t", "t.toml", "client_secret = \"s3cr3t-fixture\"\n").unwrap();
    let meta = Meta {
        source: Source::Bundled,
        template: None,
        extends: None,
        check_permissions: false,
    };
    let err = validate::finish(layer, Mode::Template, meta).unwrap_err();
    assert!(err[0].message.contains("SECRET-1"));
    assert!(!err[0].to_string().contains("s3cr3t-fixture"));
}

#[test]
fn google_asks_for_offline_access_and_consent() {
    let g = template("google").unwrap();
    assert_eq!(
        g.auth_params.get("access_type").map(String::as_str),
        Some("offline")
    );
    assert_eq!(
        g.auth_params.get("prompt").map(String::as_str),
        Some("consent")
    );
    assert_eq!(g.client_auth, AuthMethod::Post);
    assert_eq!(
        url(&g.token_endpoint),
        "https://oauth2.googleapis.com/token"
    );
}

#[test]
fn microsoft_tenant_defaults_to_common_and_is_selectable() {
    let m = template("microsoft").unwrap();
    assert_eq!(
        url(&m.authorization_endpoint),
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
    );
    assert!(m.scopes.iter().any(|s| s == "offline_access"));
    assert!(m.send_scope_on_refresh && m.client_auth == AuthMethod::None);
    for tenant in [
        "organizations",
        "consumers",
        "8eaef023-2b34-4da1-9baa-8bc8c9d6a490",
    ] {
        let p = account(&format!(
            "extends = \"microsoft\"\nclient_id = \"x\"\n[vars]\ntenant = \"{tenant}\"\n"
        ));
        assert_eq!(
            url(&p.token_endpoint),
            format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
        );
        assert!(url(&p.device_authorization_endpoint).contains(tenant));
    }
}

#[test]
fn github_quirks_are_data() {
    let g = template("github").unwrap();
    assert_eq!(g.token_response, TokenResponse::Form);
    assert!(g.device_authorization_endpoint.is_some());
    // OAuth-app tokens may never expire: no lifetime is invented (EXP-3).
    assert_eq!(g.default_lifetime_secs, None);
}

#[test]
fn gitlab_self_hosted_and_dexcom_sandbox() {
    let gl = account(
        "extends = \"gitlab\"\nclient_id = \"x\"\n[vars]\nbase_url = \"https://git.example.org\"\n",
    );
    assert_eq!(
        url(&gl.token_endpoint),
        "https://git.example.org/oauth/token"
    );
    assert_eq!(
        url(&template("gitlab").unwrap().token_endpoint),
        "https://gitlab.com/oauth/token"
    );
    let sandbox = template("dexcom-sandbox").unwrap();
    assert_eq!(
        url(&sandbox.authorization_endpoint),
        "https://sandbox-api.dexcom.com/v2/oauth2/login"
    );
    assert_eq!(sandbox.template.as_deref(), Some("dexcom"));
    let prod = template("dexcom").unwrap();
    assert_eq!(
        url(&prod.authorization_endpoint),
        "https://api.dexcom.com/v2/oauth2/login"
    );
    assert_eq!(prod.scopes, ["offline_access"]);
}

#[test]
fn openai_follows_the_codex_login() {
    let o = template("openai").unwrap();
    assert_eq!(url(&o.redirect_uri), "http://localhost:1455/auth/callback");
    assert_eq!(o.client_id.as_deref(), Some("app_EMoamEEZ73f0CkXaXp7hrann"));
    // PROV-4: the Codex CLI never uses discovery, so neither does the template.
    assert!(o.issuer.is_none() && !o.needs_discovery());
    assert_eq!(
        o.scopes,
        [
            "openid",
            "profile",
            "email",
            "offline_access",
            "api.connectors.read",
            "api.connectors.invoke"
        ]
    );
    for (k, v) in [
        ("id_token_add_organizations", "true"),
        ("codex_cli_simplified_flow", "true"),
        ("originator", "codex_cli_rs"),
    ] {
        assert_eq!(o.auth_params.get(k).map(String::as_str), Some(v), "{k}");
    }
}

#[test]
fn dexcom_regions_are_selectable() {
    for host in ["api.dexcom.com", "api.dexcom.eu", "api.dexcom.jp"] {
        let p = account(&format!(
            "extends = \"dexcom\"\nclient_id = \"x\"\nredirect_uri = \"http://127.0.0.1:8123/cb\"\n\
             [vars]\nbase_url = \"https://{host}\"\n"
        ));
        assert_eq!(
            url(&p.token_endpoint),
            format!("https://{host}/v2/oauth2/token")
        );
        assert_eq!(
            url(&p.authorization_endpoint),
            format!("https://{host}/v2/oauth2/login")
        );
    }
}

#[test]
fn prov7_dexcom_demands_a_fixed_redirect_uri_naming_the_field() {
    let found = problems("extends = \"dexcom\"\nclient_id = \"x\"\n");
    let p = found
        .iter()
        .find(|p| p.message.contains("missing redirect_uri"))
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!(p.position, Some(Position { line: 1, column: 1 }));
    assert!(p.message.contains("`dexcom` template"), "{}", p.message);
    assert!(p.hint.contains("register exactly that URI"), "{}", p.hint);
    assert_problem(
        "extends = \"dexcom-sandbox\"\nclient_id = \"x\"\nredirect_uri = \"http://127.0.0.1:0/cb\"\n",
        3,
        16,
        "redirect_uri needs a fixed port",
    );
}

#[test]
fn prov13_spotify_refuses_a_localhost_redirect_uri() {
    assert_problem(
        "extends = \"spotify\"\nclient_id = \"x\"\nredirect_uri = \"http://localhost:8123/cb\"\n",
        3,
        16,
        "loopback redirects must be IP literals",
    );
    account(
        "extends = \"spotify\"\nclient_id = \"x\"\nredirect_uri = \"http://127.0.0.1:8123/cb\"\n",
    );
    account("extends = \"spotify\"\nclient_id = \"x\"\nredirect_uri = \"http://[::1]:8123/cb\"\n");
    // Other templates keep localhost (OpenAI's registered redirect is one).
    account(
        "extends = \"gitlab\"\nclient_id = \"x\"\nredirect_uri = \"http://localhost:8123/cb\"\n",
    );
}

#[test]
fn prov2_github_device_grant_needs_no_secret_but_the_web_flow_does() {
    let g = template("github").unwrap();
    assert_eq!(g.client_auth, AuthMethod::Post);
    assert_eq!(g.device_client_auth, AuthMethod::None);
    // Unset, the device grant uses client_auth.
    let google = template("google").unwrap();
    assert_eq!(google.device_client_auth, AuthMethod::Post);
}

#[test]
fn prov3_github_revocation_url_names_the_client_id() {
    let g = account("extends = \"github\"\nclient_id = \"Iv1.abc\"\n");
    assert_eq!(
        url(&g.revocation_endpoint),
        "https://api.github.com/applications/Iv1.abc/token"
    );
    assert_eq!(g.revocation_format, RevocationFormat::Github);
    assert!(!g.vars.contains_key("client_id"), "not a user var");
    let ghes = account(
        "extends = \"github\"\nclient_id = \"c\"\n[vars]\napi_url = \"https://ghe.example/api/v3\"\n",
    );
    assert_eq!(
        url(&ghes.revocation_endpoint),
        "https://ghe.example/api/v3/applications/c/token"
    );
    let o = template("openai").unwrap();
    assert_eq!(o.revocation_format, RevocationFormat::Json);
    assert_eq!(
        url(&o.revocation_endpoint),
        "https://auth.openai.com/oauth/revoke"
    );
    assert_eq!(
        template("google").unwrap().revocation_format,
        RevocationFormat::Rfc7009
    );
    assert_problem(
        "extends = \"oidc\"\nissuer = \"https://as.example\"\nclient_id = \"c\"\nrevocation_format = \"delete\"\n",
        4,
        21,
        "invalid value",
    );
}

#[test]
fn prov5_prov6_gitlab_refresh_redirect_and_openai_fallback_port() {
    assert!(template("gitlab").unwrap().send_redirect_uri_on_refresh);
    assert!(!template("google").unwrap().send_redirect_uri_on_refresh);
    assert_eq!(template("openai").unwrap().redirect_fallback_ports, [1457]);
    assert_problem(
        "extends = \"openai\"\nredirect_fallback_ports = [1457, 70000]\n",
        2,
        34,
        "70000 is not a port",
    );
    // The problem points at the inherited list, in the template.
    let found = problems("extends = \"openai\"\nredirect_uri = \"http://127.0.0.1:0/cb\"\n");
    assert!(
        found.iter().any(|p| p.file == "<bundled>/openai.toml"
            && p.message.contains("needs a redirect_uri with a fixed port")),
        "{found:#?}"
    );
}

#[test]
fn prov8_prov9_google_issuer_aliases_and_error_hints() {
    let g = account("extends = \"google\"\nclient_id = \"x\"\n");
    assert_eq!(g.issuer_aliases, ["accounts.google.com"]);
    let hint = g
        .error_hint(HintStage::Refresh, "invalid_grant")
        .unwrap_or_default();
    assert!(
        hint.contains("7 days") && hint.contains("publish"),
        "{hint}"
    );
    let device = g
        .error_hint(HintStage::Device, "invalid_client")
        .unwrap_or_default();
    assert!(device.contains("TVs and Limited Input devices"), "{device}");
    assert_eq!(g.error_hint(HintStage::Login, "invalid_grant"), None);
    assert_problem(
        "extends = \"google\"\nclient_id = \"x\"\n[error_hints]\n\"later.invalid_grant\" = \"x\"\n",
        4,
        25,
        "not STAGE.ERROR_CODE",
    );
}

#[test]
fn prov11_microsoft_names_its_resources_and_accounts_add_their_own() {
    let m = account(
        "extends = \"microsoft\"\nclient_id = \"x\"\n[resources]\nmine = [\"api://mine/read\"]\n",
    );
    assert_eq!(
        m.resources.get("graph").map(Vec::as_slice),
        Some(&["https://graph.microsoft.com/.default".to_owned()][..])
    );
    assert!(m.resources.contains_key("outlook") && m.resources.contains_key("azure"));
    assert_eq!(
        m.resources.get("mine").map(Vec::as_slice),
        Some(&["api://mine/read".to_owned()][..])
    );
    assert_problem(
        "extends = \"microsoft\"\nclient_id = \"x\"\n[resources]\nbad = [\"a b\"]\n",
        4,
        8,
        "invalid scope",
    );
}

#[test]
fn merge_scalars_override_tables_merge_lists_replace() {
    let p = account(
        "extends = \"google\"\nclient_id = \"x\"\ndisplay_name = \"Mine\"\nscopes = [\"email\"]\n\
         [auth_params]\nlogin_hint = \"me@example.com\"\nprompt = \"select_account\"\n",
    );
    assert_eq!(p.display_name, "Mine");
    assert_eq!(p.scopes, ["email"], "lists replace");
    assert_eq!(
        p.auth_params.get("access_type").map(String::as_str),
        Some("offline"),
        "kept"
    );
    assert_eq!(
        p.auth_params.get("prompt").map(String::as_str),
        Some("select_account"),
        "overridden"
    );
    assert_eq!(
        p.auth_params.get("login_hint").map(String::as_str),
        Some("me@example.com"),
        "added"
    );
    assert_eq!(p.client_auth, AuthMethod::Post, "inherited scalar");
    assert_eq!(p.template.as_deref(), Some("google"));
}

#[test]
fn an_empty_parameter_value_removes_the_inherited_one() {
    let p = account("extends = \"google\"\nclient_id = \"x\"\n[auth_params]\nprompt = \"\"\n");
    assert!(!p.auth_params.contains_key("prompt"));
    assert!(p.auth_params.contains_key("access_type"));
}

#[test]
fn params_accept_numbers_and_booleans_as_text() {
    let p = account(
        "extends = \"oidc\"\nissuer = \"https://id.example\"\nclient_id = \"x\"\n[auth_params]\nmax_age = 0\nfoo = true\n",
    );
    assert_eq!(p.auth_params.get("max_age").map(String::as_str), Some("0"));
    assert_eq!(p.auth_params.get("foo").map(String::as_str), Some("true"));
    assert!(p.needs_discovery());
}

#[test]
fn secret_comes_from_the_environment_and_is_redacted() {
    // PATH is set in every test environment; its value stands in for a secret.
    let p = account("extends = \"google\"\nclient_id = \"x\"\nclient_secret_env = \"PATH\"\n");
    let path = std::env::var("PATH").unwrap();
    assert_eq!(
        p.client_secret.as_ref().map(ClientSecret::secret),
        Some(path.as_str())
    );
    assert!(!format!("{p:?}").contains(&path));
}

#[test]
fn inline_secret_with_client_auth_none_warns() {
    let p = account("extends = \"spotify\"\nclient_id = \"x\"\nclient_secret = \"fixture-s\"\n");
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].message.contains("never sent"));
    assert!(!p.warnings[0].to_string().contains("fixture-s"));
}

#[test]
fn export_var_name_defaults_to_upper_name() {
    let mut p = template("github").unwrap();
    p.name = "work-gh.2".to_owned();
    assert_eq!(p.export_var_name(), "WORK_GH_2_ACCESS_TOKEN");
    p.name = "1x".to_owned();
    assert_eq!(p.export_var_name(), "_1X_ACCESS_TOKEN");
    p.export_var = Some("GH_TOKEN".to_owned());
    assert_eq!(p.export_var_name(), "GH_TOKEN");
}

#[test]
fn validation_failures_point_at_the_value() {
    assert_problem(
        "extends = \"google\"\nclient_id = \"x\"\nexport_var = \"1BAD\"\n",
        3,
        14,
        "export_var",
    );
    assert_problem(
        "extends = \"google\"\nclient_id = \"x\"\ndefault_lifetime_secs = 0\n",
        3,
        25,
        "positive",
    );
    assert_problem(
        "extends = \"google\"\nclient_id = \"x\"\nissuer = \"ftp://x\"\n",
        3,
        10,
        "https://",
    );
    assert_problem(
        "extends = \"google\"\nclient_id = \"x\"\nissuer = \"not a url\"\n",
        3,
        10,
        "not a valid URL",
    );
    assert_problem(
        "extends = \"google\"\nclient_id = \"x\"\ntoken_endpoint = \"https://a/t#f\"\n",
        3,
        18,
        "fragment",
    );
    assert_problem(
        "extends = \"google\"\nclient_id = \"x\"\nscopes = [\"a\", 3]\n",
        3,
        16,
        "invalid value",
    );
    assert_problem(
        "extends = \"google\"\nclient_id = \"x\"\nredirect_uri = \"https://127.0.0.1/cb\"\n",
        3,
        16,
        "loopback",
    );
    assert_problem(
        "extends = \"google\"\nclient_id = \"x\"\ntoken_response = \"xml\"\n",
        3,
        18,
        "unknown variant",
    );
}

#[test]
fn every_unknown_field_is_reported_with_a_suggestion() {
    let found = problems("client_idd = \"x\"\nbanana = 1\n");
    assert_eq!(found.len(), 2);
    assert!(found[0].hint.contains("`client_id`"));
    assert!(
        found[1]
            .hint
            .contains("allowed fields: extends, display_name")
    );
}

#[test]
fn loopback_redirects_are_accepted_with_any_port() {
    for uri in [
        "http://127.0.0.1:0/callback",
        "http://[::1]:8080/cb",
        "http://localhost:1455/auth/callback",
    ] {
        let p = account(&format!(
            "extends = \"gitlab\"\nclient_id = \"x\"\nredirect_uri = \"{uri}\"\n"
        ));
        assert!(p.redirect_uri.is_some());
    }
}

#[test]
fn bad_account_names_are_rejected() {
    let err = parse_str("-x y", "-x y.toml", "extends = \"google\"\n").unwrap_err();
    assert!(err[0].message.contains("not a valid account name"));
}

#[test]
fn config_dir_prefers_the_override() {
    let dir = Path::new("/tmp/authdeck-test-config");
    assert_eq!(config_dir(Some(dir)).unwrap(), dir);
}
