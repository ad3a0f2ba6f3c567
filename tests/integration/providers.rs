//! Integration tests: provider files (library) and `authdeck providers [check]` (binary).

use authdeck::oauth::AuthMethod;
use authdeck::provider::{self, Position};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/providers")
}

fn valid(name: &str) -> PathBuf {
    fixtures().join("valid").join(name)
}

fn invalid(name: &str) -> PathBuf {
    fixtures().join("invalid").join(name)
}

/// Each invalid fixture with the position and message substring it must produce.
const INVALID: &[(&str, usize, usize, &str)] = &[
    ("bad-toml.toml", 2, 26, "invalid TOML"),
    ("unknown-field.toml", 3, 1, "unknown field `scope`"),
    (
        "missing-endpoint.toml",
        1,
        1,
        "missing token_endpoint and no `issuer`",
    ),
    (
        "http-endpoint.toml",
        3,
        18,
        "uses http:// on the non-loopback host `auth.example.com`",
    ),
    (
        "redirect-not-loopback.toml",
        3,
        16,
        "is not a loopback address",
    ),
    ("unknown-template.toml", 2, 11, "unknown template `gogle`"),
    (
        "cycle-a.toml",
        1,
        11,
        "extends cycle: cycle-a -> cycle-b -> cycle-a",
    ),
    (
        "cycle-b.toml",
        1,
        11,
        "extends cycle: cycle-b -> cycle-a -> cycle-b",
    ),
    (
        "bad-client-auth.toml",
        3,
        15,
        "unknown variant `client_secret_post`",
    ),
    (
        "unknown-placeholder.toml",
        3,
        18,
        "placeholder `{tenant_id}`",
    ),
    ("missing-client-id.toml", 1, 1, "missing client_id"),
    ("bad-scope.toml", 3, 11, "invalid scope \"openid email\""),
    ("both-secrets.toml", 4, 21, "not both"),
];

#[test]
fn every_invalid_fixture_fails_at_its_position_with_its_message() {
    let on_disk = std::fs::read_dir(fixtures().join("invalid"))
        .unwrap()
        .count();
    assert_eq!(
        on_disk,
        INVALID.len(),
        "every invalid fixture is paired with its expectation"
    );
    for (file, line, column, needle) in INVALID {
        let path = invalid(file);
        let problems = provider::load_file(&path).expect_err(file);
        let p = &problems[0];
        assert_eq!(p.file, path.display().to_string(), "{file}");
        assert_eq!(
            p.position,
            Some(Position {
                line: *line,
                column: *column
            }),
            "{file}: {p}"
        );
        assert!(p.message.contains(needle), "{file}: {p}");
        assert!(p.is_error() && !p.hint.is_empty(), "{file}: {p}");
        let shown = p.to_string();
        assert!(
            shown.starts_with(&format!("{}:{line}:{column}: ", path.display())),
            "{shown}"
        );
        assert!(shown.contains("\n  hint: "), "{shown}");
    }
}

#[test]
fn unknown_field_and_template_hints_suggest_the_closest_name() {
    let p = &provider::load_file(&invalid("unknown-field.toml")).unwrap_err()[0];
    assert!(p.hint.contains("did you mean `scopes`"), "{p}");
    let p = &provider::load_file(&invalid("unknown-template.toml")).unwrap_err()[0];
    assert!(p.hint.contains("did you mean `google`"), "{p}");
}

#[test]
fn secrets_never_appear_in_problems_secret_1() {
    let problems = provider::load_file(&invalid("both-secrets.toml")).unwrap_err();
    for p in problems {
        assert!(!p.to_string().contains("fixture-secret-value"));
    }
}

#[test]
fn every_valid_fixture_loads() {
    for entry in std::fs::read_dir(fixtures().join("valid")).unwrap() {
        let path = entry.unwrap().path();
        let p = provider::load_file(&path).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        assert_eq!(p.source, provider::Source::File(path.clone()));
        assert!(p.client_id.is_some());
        assert!(
            p.token_endpoint.is_some() || p.needs_discovery(),
            "{}",
            p.name
        );
    }
}

#[test]
fn valid_fixtures_resolve_as_documented() {
    let g = provider::load_file(&valid("google-work.toml")).unwrap();
    assert_eq!(g.display_name, "Google (work)");
    assert_eq!(g.export_var_name(), "GDRIVE_TOKEN");
    assert_eq!(g.scopes.len(), 3);
    assert_eq!(g.auth_params.len(), 3, "template params plus login_hint");
    assert_eq!(
        g.client_secret_env.as_deref(),
        Some("AUTHDECK_TEST_UNSET_GOOGLE_SECRET")
    );
    assert!(g.client_secret.is_none());
    assert!(
        g.warnings[0].message.contains("is not set"),
        "{:?}",
        g.warnings
    );

    let ms = provider::load_file(&valid("microsoft-org.toml")).unwrap();
    assert!(
        ms.token_endpoint
            .unwrap()
            .as_str()
            .contains("/organizations/")
    );

    // Extending its own name means the bundled template.
    let dx = provider::load_file(&valid("dexcom-sandbox.toml")).unwrap();
    assert_eq!(dx.template.as_deref(), Some("dexcom-sandbox"));
    assert_eq!(
        dx.token_endpoint.unwrap().host_str(),
        Some("sandbox-api.dexcom.com")
    );

    // A sibling account file as the base: inherits its client id, replaces its scopes.
    let ci = provider::load_file(&valid("team-ci.toml")).unwrap();
    assert_eq!(ci.extends.as_deref(), Some("team-base"));
    assert_eq!(ci.template.as_deref(), Some("github"));
    assert_eq!(ci.client_id.as_deref(), Some("Iv1.team"));
    assert_eq!(ci.scopes, ["read:org"]);

    let local = provider::load_file(&valid("local-dev.toml")).unwrap();
    assert_eq!(local.client_auth, AuthMethod::Basic);
    assert_eq!(
        local.redirect_uri.as_ref().and_then(url::Url::port),
        Some(0)
    );
    assert_eq!(local.default_lifetime_secs, Some(600));
    assert_eq!(
        local.token_params.get("audience").map(String::as_str),
        Some("api")
    );
    assert_eq!(local.export_var_name(), "LOCAL_DEV_ACCESS_TOKEN");
}

#[test]
fn one_bad_file_does_not_hide_the_good_ones() {
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().join("providers");
    std::fs::create_dir(&dir).unwrap();
    for f in ["google-work.toml", "team-base.toml", "team-ci.toml"] {
        std::fs::copy(valid(f), dir.join(f)).unwrap();
    }
    std::fs::copy(invalid("unknown-field.toml"), dir.join("broken.toml")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not an account").unwrap();
    let loaded = provider::load_accounts(config.path());
    let names: Vec<&str> = loaded.accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["google-work", "team-base", "team-ci"]);
    assert!(loaded.has_errors());
    let errors: Vec<_> = loaded.problems.iter().filter(|p| p.is_error()).collect();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].file.ends_with("broken.toml"));
}

#[test]
fn an_account_extending_a_broken_sibling_says_so() {
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().join("providers");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("base.toml"),
        "extends = \"github\"\nclient_idd = \"x\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("child.toml"), "extends = \"base\"\n").unwrap();
    let loaded = provider::load_accounts(config.path());
    assert!(loaded.accounts.is_empty());
    let child = loaded
        .problems
        .iter()
        .find(|p| p.file.ends_with("child.toml"))
        .unwrap();
    assert_eq!(
        child.position,
        Some(Position {
            line: 1,
            column: 11
        })
    );
    assert!(child.message.contains("has errors"), "{child}");
}

#[cfg(unix)]
#[test]
fn inline_secret_in_a_world_readable_file_warns() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    std::fs::write(
        &path,
        "extends = \"google\"\nclient_id = \"x\"\nclient_secret = \"fixture-inline\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = provider::load_file(&path).unwrap();
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].message.contains("world-readable"));
    assert_eq!(
        p.warnings[0].position,
        Some(Position {
            line: 3,
            column: 17
        })
    );
    assert_eq!(
        p.client_secret.as_ref().map(|s| s.secret()),
        Some("fixture-inline")
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(provider::load_file(&path).unwrap().warnings.is_empty());
}

/// Runs the binary with HOME and XDG_CONFIG_HOME in a scratch directory, so a real user
/// configuration is never read.
fn authdeck(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authdeck"))
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("xdg"))
        .env_remove("AUTHDECK_CONFIG_DIR")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn providers_lists_templates_and_accounts_and_exits_0() {
    let home = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().join("providers");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(valid("microsoft-org.toml"), dir.join("work.toml")).unwrap();
    let out = authdeck(
        home.path(),
        &["--config", config.path().to_str().unwrap(), "providers"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for name in provider::TEMPLATE_NAMES {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{name} "))),
            "{name}: {stdout}"
        );
    }
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("work "))
        .unwrap();
    assert!(
        row.contains("microsoft") && row.contains("WORK_ACCESS_TOKEN"),
        "{row}"
    );
    assert!(
        row.contains(&dir.join("work.toml").display().to_string()),
        "{row}"
    );
    assert!(text(&out.stderr).is_empty());
}

#[test]
fn providers_reports_problems_and_exits_1() {
    let home = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().join("providers");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(valid("keycloak.toml"), dir.join("sso.toml")).unwrap();
    std::fs::copy(invalid("http-endpoint.toml"), dir.join("plain.toml")).unwrap();
    let out = authdeck(
        home.path(),
        &["--config", config.path().to_str().unwrap(), "providers"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout)
            .lines()
            .any(|l| l.trim_start().starts_with("sso "))
    );
    let stderr = text(&out.stderr);
    let expected = format!(
        "{}:3:18: `token_endpoint` uses http://",
        dir.join("plain.toml").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("  hint: "), "{stderr}");
}

#[test]
fn providers_uses_the_xdg_config_dir_without_config() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("xdg/authdeck/providers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(valid("keycloak.toml"), dir.join("from-xdg.toml")).unwrap();
    let out = authdeck(home.path(), &["providers"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("from-xdg"));
}

#[test]
fn providers_with_no_accounts_says_how_to_start() {
    let home = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let out = authdeck(
        home.path(),
        &["--config", config.path().to_str().unwrap(), "providers"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("(none)"));
}

#[test]
fn providers_check_valid_files_exits_0() {
    let home = tempfile::tempdir().unwrap();
    let files = [valid("local-dev.toml"), valid("team-ci.toml")];
    let args: Vec<&str> = ["providers", "check"]
        .into_iter()
        .chain(files.iter().map(|f| f.to_str().unwrap()))
        .collect();
    let out = authdeck(home.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("local-dev.toml: ok (account local-dev)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("team-ci.toml: ok (account team-ci, extends team-base)"),
        "{stdout}"
    );
}

#[test]
fn providers_check_reports_every_invalid_file_and_exits_1() {
    let home = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = INVALID
        .iter()
        .map(|(f, ..)| invalid(f))
        .chain([valid("keycloak.toml")])
        .collect();
    let mut args = vec!["providers", "check"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    let out = authdeck(home.path(), &args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for (file, line, column, needle) in INVALID {
        let head = format!("{}:{line}:{column}: ", invalid(file).display());
        let found = stderr.lines().find(|l| l.starts_with(&head));
        assert!(
            found.is_some_and(|l| l.contains(needle)),
            "{head}{needle} not in:\n{stderr}"
        );
    }
    assert!(
        text(&out.stdout).contains("keycloak.toml: ok"),
        "valid files still pass"
    );
}

#[test]
fn providers_check_a_missing_file_exits_1() {
    let home = tempfile::tempdir().unwrap();
    let out = authdeck(
        home.path(),
        &["providers", "check", "/nonexistent/authdeck/x.toml"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("/nonexistent/authdeck/x.toml: cannot read"));
}

#[test]
fn providers_check_without_files_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let out = authdeck(home.path(), &["providers", "check"]);
    assert_eq!(out.status.code(), Some(2));
}

#[cfg(unix)]
#[test]
fn linked_files_count_directories_and_huge_files_do_not() {
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().join("providers");
    std::fs::create_dir(&dir).unwrap();
    // A symbolic link to an account kept elsewhere (dotfile managers do this).
    let elsewhere = config.path().join("kept-elsewhere.toml");
    std::fs::copy(valid("google-work.toml"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join("linked.toml")).unwrap();
    // A directory that happens to end in .toml is not an account.
    std::fs::create_dir(dir.join("folder.toml")).unwrap();
    // A file far larger than any account is refused without being read whole.
    let huge = format!("display_name = \"{}\"\n", "x".repeat(1 << 20));
    std::fs::write(dir.join("huge.toml"), huge).unwrap();
    let loaded = provider::load_accounts(config.path());
    let names: Vec<&str> = loaded.accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["linked"]);
    let errors: Vec<String> = loaded
        .problems
        .iter()
        .filter(|p| p.is_error())
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("huge.toml"), "{}", errors[0]);
    assert!(errors[0].contains("larger than 1024 KiB"), "{}", errors[0]);
}
