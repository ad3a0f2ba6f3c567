//! Fake accounts in every state: for snapshot tests, the render benchmark and a manual look
//! at the dashboard before `app` exists. Deterministic for a given `now`. Test support only
//! (`cfg(test)` or the `test-support` feature): not in a release build.

use super::state::{DashboardState, Theme, log_entry};
use crate::app::view::{AccountView, Badge, LogKind};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// A fixed instant (2026-11-23 14:03:21 UTC) so that previews and snapshots never change.
pub fn preview_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_442_601)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn account(name: &str, provider: &str, display: &str, now: SystemTime) -> AccountView {
    let mut a = AccountView::new(name, provider);
    a.display_name = display.to_owned();
    a.provider_file = Some(PathBuf::from(format!(
        "/home/ada/.config/authdeck/providers/{name}.toml"
    )));
    a.export_var = Some(format!(
        "{}_ACCESS_TOKEN",
        name.to_uppercase().replace('-', "_")
    ));
    a.state = Badge::Valid;
    a.token_type = Some("Bearer".to_owned());
    a.obtained_at = Some(now - secs(1800));
    a.expires_at = Some(now + secs(1800));
    a.has_refresh_token = true;
    a
}

/// Seven accounts, one per state and more, with a few log lines.
pub fn preview_accounts(now: SystemTime) -> Vec<AccountView> {
    let mut github = account("github", "github", "GitHub", now);
    github.expires_at = Some(now + secs(2 * 3600 + 3 * 60 + 10));
    github.identity = Some("ada@example.com".to_owned());
    github.scopes = vec!["read:user".into(), "repo".into()];
    github.refresh_count = 3;
    github.last_refresh = Some(now - secs(600));
    github.can_device = true;
    github.claims = vec![
        ("iss".into(), "https://github.com".into()),
        ("sub".into(), "4711".into()),
    ];

    let mut google = account("google-work", "google", "Google", now);
    google.expires_at = Some(now + secs(245));
    google.state = Badge::Expiring;
    google.identity = Some("ada@work.example".to_owned());
    google.scopes = vec!["openid".into(), "email".into(), "profile".into()];
    google.next_refresh = Some(now + secs(5));
    google.can_device = true;
    google.claims = vec![
        ("iss".into(), "https://accounts.google.com".into()),
        ("email".into(), "ada@work.example".into()),
        ("aud".into(), "1234.apps.googleusercontent.com".into()),
    ];

    let mut ms = account("microsoft", "microsoft", "Microsoft", now);
    ms.state = Badge::Refreshing;
    ms.expires_at = Some(now + secs(29));
    ms.identity = Some("ada@contoso.example".to_owned());

    let mut demo = account("demo", "devserver", "authdeck demo", now);
    demo.state = Badge::Expired;
    demo.expires_at = Some(now - secs(12));
    demo.identity = Some("demo-user".to_owned());
    demo.has_refresh_token = false;

    let mut gitlab = account("gitlab", "gitlab", "GitLab", now);
    gitlab.state = Badge::Error;
    gitlab.expires_at = Some(now - secs(3 * 86_400));
    gitlab.last_error = Some("refresh failed: server error (HTTP 503), retrying".to_owned());
    gitlab.identity = Some("ada".to_owned());

    let mut slack = AccountView::new("slack", "slack");
    slack.display_name = "Slack".to_owned();

    let mut forever = account("legacy-api", "generic", "", now);
    forever.expires_at = None;
    forever.identity = Some("svc-legacy".to_owned());

    vec![github, google, ms, demo, gitlab, slack, forever]
}

/// The preview dashboard: mixed accounts, a few refresh-panel lines, colour on.
pub fn preview_state(now: SystemTime) -> DashboardState {
    let mut s = DashboardState::new(preview_accounts(now), now, Theme { color: true });
    for e in [
        log_entry(
            now - secs(600),
            "github",
            LogKind::Refreshed {
                new_expiry: Some(now + secs(7390)),
            },
        ),
        log_entry(now - secs(600), "github", LogKind::Rotated),
        log_entry(
            now - secs(300),
            "gitlab",
            LogKind::Failed {
                reason: "server error (HTTP 503)".into(),
                next_try: Some(now + secs(30)),
                kind: crate::app::view::FailureKind::Transient,
            },
        ),
        log_entry(now - secs(120), "old-account", LogKind::Revoked),
        log_entry(
            now - secs(4),
            "microsoft",
            LogKind::Info("refresh started".into()),
        ),
    ] {
        s.log.push_back(e);
    }
    s
}

/// `n` accounts cycling through every state: for the render benchmark.
pub fn many_accounts(n: usize, now: SystemTime) -> Vec<AccountView> {
    let base = preview_accounts(now);
    (0..n)
        .filter_map(|i| {
            let mut a = base.get(i % base.len())?.clone();
            a.name = format!("{}-{i:04}", a.name);
            a.expires_at = a.expires_at.map(|e| e + secs(i as u64));
            Some(a)
        })
        .collect()
}
