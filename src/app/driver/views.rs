//! What the dashboard shows of each account ([`AccountView`]), built from its account file
//! and vault record, and the rows for account files that do not validate.

use crate::app::App;
use crate::app::schedule;
use crate::app::status::{from_unix, health};
use crate::app::view::{AccountView, Badge};
use crate::provider::{Provider, Source};
use crate::vault::{Record, Records};
use std::time::SystemTime;

/// The view of one account for the dashboard (no secrets).
pub fn account_view(p: &Provider, rec: Option<&Record>, now: SystemTime) -> AccountView {
    let mut v = AccountView::new(
        p.name.clone(),
        p.template.clone().unwrap_or_else(|| p.name.clone()),
    );
    v.display_name = p.display_name.clone();
    v.state = health(rec, now).into();
    v.provider_file = match &p.source {
        Source::File(path) => Some(path.clone()),
        Source::Bundled => None,
    };
    v.can_device = p.device_authorization_endpoint.is_some() || p.issuer.is_some();
    v.export_var = Some(p.export_var_name());
    v.machine = p.grant == crate::provider::AccountGrant::ClientCredentials;
    if v.machine && v.state == Badge::NeedsLogin {
        // MACH-1: a machine account without a token has simply not fetched one yet.
        v.state = Badge::Machine;
    }
    if let Some(r) = rec {
        v.expires_at = r.expires_at.map(from_unix);
        v.obtained_at = r.obtained_at.map(from_unix);
        v.identity = r.claims.email.clone().or_else(|| r.claims.subject.clone());
        v.scopes = r.scopes.clone();
        v.token_type = r.token_type.clone();
        v.refresh_count = u32::try_from(r.refresh_count).unwrap_or(u32::MAX);
        v.last_refresh = r.last_refresh.as_ref().map(|a| from_unix(a.at));
        v.next_refresh = r
            .obtained_at
            .and_then(|o| schedule::due_at(from_unix(o), r.expires_at.map(from_unix)));
        v.last_error = crate::app::status::last_error(r);
        v.has_refresh_token = r.refresh_token.is_some();
        let claims = [
            ("sub", &r.claims.subject),
            ("email", &r.claims.email),
            ("name", &r.claims.name),
        ];
        v.claims_verified = r.claims.verified;
        v.claims = claims
            .into_iter()
            .filter_map(|(k, val)| val.clone().map(|val| (k.to_string(), val)))
            .collect();
    }
    v
}

/// The views of every account, and a row for each account file that does not validate.
pub fn account_views(app: &App, records: &Records, now: SystemTime) -> Vec<AccountView> {
    let mut views: Vec<AccountView> = app
        .loaded()
        .accounts
        .iter()
        .map(|p| account_view(p, records.get(&p.name), now))
        .collect();
    views.extend(invalid_views(&app.loaded().problems));
    views.sort_by(|a, b| a.name.cmp(&b.name));
    views
}

/// One row per account file with errors: the account the user meant to have stays visible,
/// with its first problem as `FILE:LINE:COL: message` (and how many more there are).
pub fn invalid_views(problems: &[crate::provider::Problem]) -> Vec<AccountView> {
    let mut by_file: std::collections::BTreeMap<&str, Vec<&crate::provider::Problem>> =
        std::collections::BTreeMap::new();
    for p in problems.iter().filter(|p| p.is_error()) {
        by_file.entry(p.file.as_str()).or_default().push(p);
    }
    by_file
        .into_iter()
        .filter(|(file, _)| file.ends_with(".toml"))
        .filter_map(|(file, found)| {
            let path = std::path::Path::new(file);
            let name = path.file_stem()?.to_string_lossy().into_owned();
            let first = found.first()?.to_string();
            let first = first.lines().next().unwrap_or_default();
            let more = match found.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            let mut v = AccountView::new(name, "");
            v.state = Badge::Invalid;
            v.last_error = Some(format!("{first}{more}"));
            v.provider_file = Some(path.to_path_buf());
            Some(v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_account_file_becomes_a_row_with_file_line_col() {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("providers");
        std::fs::create_dir_all(&providers).unwrap();
        std::fs::write(
            providers.join("good.toml"),
            "extends = \"oidc\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"c\"\n",
        )
        .unwrap();
        std::fs::write(
            providers.join("broken.toml"),
            "extends = \"google\"\nclient_id = \"c\"\nscope = 1\ntypo = 2\n",
        )
        .unwrap();
        let loaded = crate::provider::load_accounts(dir.path());
        let rows = invalid_views(&loaded.problems);
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = &rows[0];
        assert_eq!((r.name.as_str(), r.state), ("broken", Badge::Invalid));
        let err = r.last_error.as_deref().unwrap_or_default();
        assert!(
            err.contains("broken.toml:3:1: unknown field `scope`"),
            "{err}"
        );
        assert!(err.ends_with("(and 1 more)"), "{err}");
        assert_eq!(
            r.provider_file.as_deref(),
            Some(providers.join("broken.toml").as_path())
        );
    }
}
