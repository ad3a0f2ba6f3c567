//! `--export`: finding the tokens (from the account index when it is current, see
//! [`App::for_export`]) and rendering `export NAME=value` lines that are safe to `eval`,
//! whatever a server returned.
//!
//! Each format quotes values so that the shell reads them back as the same literal bytes and
//! never runs anything: `eval "$(authdeck --export)"` must be safe even for an access token
//! such as `a'$(touch pwned)'b`.

use super::refresh::token_if_not_due;
use super::{App, Result, Settings};
use crate::provider::{self, Index, Stamps};
use crate::secret::AccessToken;
use crate::vault::{Tokens, Vault};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Output formats of `authdeck --export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExportFormat {
    /// POSIX sh / bash / zsh: `export NAME='value'`.
    #[default]
    Sh,
    /// fish: `set -gx NAME 'value'`.
    Fish,
    /// PowerShell: `$env:NAME = 'value'`.
    Powershell,
    /// A `.env` file: `NAME='value'`.
    Dotenv,
    /// One JSON object `{"NAME": "value", ...}`.
    Json,
}

/// Why a variable could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// The variable name is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("'{0}' is not a valid environment variable name")]
    BadName(String),
    /// The value holds a byte no environment variable can carry, or that this format cannot
    /// represent without risk.
    #[error("the value of {name} cannot be represented safely in {format} format")]
    Unrepresentable {
        /// The variable name.
        name: String,
        /// The format asked for.
        format: &'static str,
    },
}

/// True for a portable environment variable name.
pub fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Renders `vars` (name, value) in `format`. Values are secrets: the caller passes them
/// straight from the secret wrapper and prints the result to stdout only.
pub fn render(format: ExportFormat, vars: &[(String, &str)]) -> Result<String, ExportError> {
    let mut out = String::new();
    if format == ExportFormat::Json {
        let map: serde_json::Map<String, serde_json::Value> = vars
            .iter()
            .map(|(k, v)| check_name(k).map(|()| (k.clone(), serde_json::Value::from(*v))))
            .collect::<Result<_, _>>()?;
        out.push_str(&serde_json::Value::Object(map).to_string());
        out.push('\n');
        return Ok(out);
    }
    for (name, value) in vars {
        out.push_str(&line(format, name, value)?);
        out.push('\n');
    }
    Ok(out)
}

/// One line (without the newline) for one variable.
pub fn line(format: ExportFormat, name: &str, value: &str) -> Result<String, ExportError> {
    check_name(name)?;
    if value.contains('\0') {
        return Err(unrepresentable(name, format));
    }
    let mut s = String::with_capacity(name.len() + value.len() + 16);
    match format {
        ExportFormat::Sh => {
            let _ = write!(s, "export {name}={}", sh_quote(value));
        }
        ExportFormat::Fish => {
            let _ = write!(s, "set -gx {name} {}", fish_quote(value));
        }
        ExportFormat::Powershell => {
            let _ = write!(s, "$env:{name} = {}", powershell_quote(value));
        }
        ExportFormat::Dotenv => {
            // dotenv dialects disagree on escapes inside quotes; refuse what they could
            // misread instead of guessing.
            if value.contains(['\'', '\n', '\r', '\\']) {
                return Err(unrepresentable(name, format));
            }
            let _ = write!(s, "{name}='{value}'");
        }
        ExportFormat::Json => {
            let _ = write!(
                s,
                "{}",
                serde_json::json!({ name: value }).to_string().as_str()
            );
        }
    }
    Ok(s)
}

/// Appends [`line()`] and a newline to `out`; the `sh` line is written in place, with no
/// allocation per line (`--export` prints one per account).
pub fn push_line(
    out: &mut String,
    format: ExportFormat,
    name: &str,
    value: &str,
) -> Result<(), ExportError> {
    if format != ExportFormat::Sh {
        out.push_str(&line(format, name, value)?);
        out.push('\n');
        return Ok(());
    }
    check_name(name)?;
    if value.contains('\0') {
        return Err(unrepresentable(name, format));
    }
    out.reserve(name.len() + value.len() + 12);
    out.push_str("export ");
    out.push_str(name);
    out.push('=');
    push_sh_quoted(out, value);
    out.push('\n');
    Ok(())
}

fn check_name(name: &str) -> Result<(), ExportError> {
    if valid_var_name(name) {
        Ok(())
    } else {
        Err(ExportError::BadName(name.to_string()))
    }
}

fn unrepresentable(name: &str, format: ExportFormat) -> ExportError {
    let format = match format {
        ExportFormat::Sh => "sh",
        ExportFormat::Fish => "fish",
        ExportFormat::Powershell => "powershell",
        ExportFormat::Dotenv => "dotenv",
        ExportFormat::Json => "json",
    };
    ExportError::Unrepresentable {
        name: name.to_string(),
        format,
    }
}

/// POSIX single quotes: nothing inside is special except `'`, which becomes `'\''`.
pub fn sh_quote(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    push_sh_quoted(&mut s, value);
    s
}

fn push_sh_quoted(out: &mut String, value: &str) {
    out.push('\'');
    let mut parts = value.split('\'');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for part in parts {
        out.push_str("'\\''");
        out.push_str(part);
    }
    out.push('\'');
}

/// fish single quotes: only `\'` and `\\` are escapes.
pub fn fish_quote(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// PowerShell verbatim strings: `'` doubles. PowerShell also treats the typographic single
/// quotes U+2018..U+201B as quote characters, so those double as well.
pub fn powershell_quote(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('\'');
    for c in value.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            s.push(c);
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// Where `--export` (and `token`) take their tokens from.
#[derive(Debug)]
pub enum Source {
    /// The account index answered for every account: (variable, token) pairs, in order, and
    /// the token fields they came from (for a caller that needs more of a record, such as
    /// `kube-credential`'s expiry).
    Indexed(Vec<(String, AccessToken)>, Arc<Tokens>),
    /// The account files were loaded (the index rewritten if it was stale): ask the app, which
    /// refreshes what is due and says what fails.
    Loaded(Box<App>),
}

/// The account index of the vault at `vault`: `<vault>.accounts`, beside it.
pub fn index_path(vault: &Path) -> PathBuf {
    let mut name = vault.file_name().unwrap_or_default().to_os_string();
    name.push(".accounts");
    vault.with_file_name(name)
}

/// What the account index answered, with the token fields it answered from, or the app with
/// the account files loaded.
pub(super) enum Opened<T> {
    /// The index was current and answered.
    Indexed(T, Arc<Tokens>),
    /// The files were loaded (the index rewritten if it was stale).
    Loaded(Box<App>),
}

impl App {
    /// Opens what `--export NAMES` needs (every logged-in account when `names` is empty): the
    /// tokens straight from the vault when the account index beside it is current and knows
    /// every account as valid and no token is due — no account file is read, nothing else is
    /// done — else the app with the accounts loaded (the export budget in
    /// docs/benchmarks.md: 50 accounts in ≤ 2 ms).
    pub fn for_export(
        config_dir: PathBuf,
        vault: Vault,
        names: &[String],
        settings: Settings,
    ) -> Result<Source> {
        let now = SystemTime::now();
        let opened = App::open_indexed(config_dir, vault, settings, |index, snap| {
            from_index(index, snap, names, now)
        })?;
        Ok(match opened {
            Opened::Indexed(vars, snap) => Source::Indexed(vars, snap),
            Opened::Loaded(app) => Source::Loaded(app),
        })
    }

    /// When the account index beside a local vault is current and `answer` can answer from it
    /// and the vault's token fields, that answer — no account file read and no full record
    /// parsed (docs/benchmarks.md, "`export` of 50 accounts beside a minimal program") — else
    /// the app with the account files loaded, the index rewritten first if it was stale.
    pub(super) fn open_indexed<T>(
        config_dir: PathBuf,
        vault: Vault,
        settings: Settings,
        answer: impl FnOnce(&Index, &Tokens) -> Option<T>,
    ) -> Result<Opened<T>> {
        // The index is a local cache beside a local vault; a shared vault has none.
        let index_path = vault.local_file().map(index_path);
        let index = index_path
            .as_deref()
            .and_then(|p| Index::read(p, &config_dir));
        if let Some(index) = &index {
            let tokens = vault.tokens()?;
            if let Some(answered) = answer(index, &tokens) {
                return Ok(Opened::Indexed(answered, tokens));
            }
        }
        let snap = match vault.take_opened() {
            Some(s) => Arc::new(s),
            None => Arc::new(vault.snapshot()?),
        };
        // Stamped before the files are read, so an edit made meanwhile leaves the index stale.
        let stamps = (index.is_none() && index_path.is_some())
            .then(|| Stamps::take(&config_dir))
            .flatten();
        let loaded = provider::load_accounts(&config_dir);
        if let (Some(stamps), Some(index_path)) = (stamps, &index_path) {
            // Only a cache: if it cannot be written, the next command loads the files again.
            let _ = Index::write(index_path, &config_dir, &stamps, &loaded, SystemTime::now());
        }
        let app = App::assemble(config_dir, loaded, vault, Some(snap), settings);
        Ok(Opened::Loaded(Box::new(app)))
    }
}

/// The tokens for `names` (every logged-in account when empty) if the index can answer for
/// all of them: each account valid, each token present and not due. `None` otherwise.
fn from_index(
    index: &Index,
    snap: &Tokens,
    names: &[String],
    now: SystemTime,
) -> Option<Vec<(String, AccessToken)>> {
    let logged_in: Vec<&str>;
    let names: Vec<&str> = if names.is_empty() {
        // The same accounts the loaded path exports: a token in the vault and a file.
        logged_in = snap
            .records
            .iter()
            .filter(|(name, r)| r.access_token.is_some() && index.has_file(name))
            .map(|(name, _)| name.as_str())
            .collect();
        logged_in
    } else {
        names.iter().map(String::as_str).collect()
    };
    names
        .into_iter()
        .map(|name| {
            let var = index.export_var(name)?;
            let token = token_if_not_due(name, snap.records.get(name), now)?.ok()?;
            Some((var.to_owned(), token))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a'$(touch pwned)'b";

    #[test]
    fn sh_quotes_hostile_value() {
        assert_eq!(sh_quote(HOSTILE), r#"'a'\''$(touch pwned)'\''b'"#);
        assert_eq!(
            line(ExportFormat::Sh, "X", "plain").unwrap(),
            "export X='plain'"
        );
        // `--export` writes the same lines in place.
        for value in [HOSTILE, "plain", "'", "''x'", ""] {
            for format in [ExportFormat::Sh, ExportFormat::Fish] {
                let mut out = String::from("before\n");
                push_line(&mut out, format, "X", value).unwrap();
                assert_eq!(
                    out,
                    format!("before\n{}\n", line(format, "X", value).unwrap())
                );
            }
        }
        assert!(push_line(&mut String::new(), ExportFormat::Sh, "1X", "v").is_err());
        assert!(push_line(&mut String::new(), ExportFormat::Sh, "X", "a\0b").is_err());
    }

    #[test]
    fn fish_escapes_backslash_and_quote() {
        assert_eq!(fish_quote(r"a\'b"), r"'a\\\'b'");
    }

    #[test]
    fn powershell_doubles_all_single_quotes() {
        assert_eq!(powershell_quote("a'b\u{2019}c"), "'a''b\u{2019}\u{2019}c'");
    }

    #[test]
    fn dotenv_refuses_ambiguous_values() {
        assert!(line(ExportFormat::Dotenv, "X", HOSTILE).is_err());
        assert_eq!(line(ExportFormat::Dotenv, "X", "a$b").unwrap(), "X='a$b'");
    }

    #[test]
    fn bad_names_and_nul_refused() {
        assert!(line(ExportFormat::Sh, "A;rm", "v").is_err());
        assert!(line(ExportFormat::Sh, "A", "v\0").is_err());
    }

    #[test]
    fn json_is_one_object() {
        let out = render(
            ExportFormat::Json,
            &[("A".into(), "1"), ("B".into(), HOSTILE)],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["B"], HOSTILE);
    }

    /// The real shell reads the value back byte for byte and runs nothing.
    #[test]
    fn sh_eval_round_trips_hostile_values() {
        let dir = tempfile::tempdir().unwrap();
        for value in [HOSTILE, "x\ny", "`id`", "$HOME", "\\'\"", "é ünï"] {
            let script = format!(
                "{}\nprintf %s \"$V\"",
                line(ExportFormat::Sh, "V", value).unwrap()
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg("eval \"$(cat)\"")
                .current_dir(dir.path())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(script.as_bytes())?;
                    c.wait_with_output()
                })
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), value);
        }
        assert!(!dir.path().join("pwned").exists());
    }

    /// A key-file vault holding `tokens` (name, token, expires_at) and one account file per name.
    fn fixture(tokens: &[(&str, &str, Option<i64>)]) -> (tempfile::TempDir, PathBuf, PathBuf) {
        use crate::vault::{KeySource, Record, StoredState, VaultError, generate_key_file};
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join("providers")).unwrap();
        let key = dir.path().join("vault.key");
        generate_key_file(&key).unwrap();
        let vault = dir.path().join("vault.bin");
        let v = Vault::create(&vault, KeySource::KeyFile(key.clone())).unwrap();
        for (name, token, expires_at) in tokens {
            std::fs::write(
                config.join("providers").join(format!("{name}.toml")),
                "extends = \"oidc\"\nissuer = \"https://as.example\"\nclient_id = \"x\"\n",
            )
            .unwrap();
            v.update(|r| {
                r.insert(
                    (*name).to_owned(),
                    Record {
                        access_token: Some(AccessToken::new(*token)),
                        // Obtained an hour ago: a token expiring within the refresh margin
                        // (10 % of its lifetime, at least 60 s) is due.
                        obtained_at: Some(crate::app::status::unix(SystemTime::now()) - 3600),
                        expires_at: *expires_at,
                        state: StoredState::Valid,
                        ..Record::default()
                    },
                );
                Ok::<_, VaultError>(())
            })
            .unwrap();
        }
        (dir, config, key)
    }

    fn open(config: &Path, key: &Path, names: &[String]) -> Source {
        use crate::vault::KeySource;
        let vault_path = config.parent().unwrap().join("vault.bin");
        let vault = Vault::open(vault_path, KeySource::KeyFile(key.to_path_buf())).unwrap();
        App::for_export(config.to_path_buf(), vault, names, Settings::default()).unwrap()
    }

    #[test]
    fn export_answers_from_the_index_once_the_files_have_settled() {
        let in_an_hour = crate::app::status::unix(SystemTime::now()) + 3600;
        let (_dir, config, key) = fixture(&[
            ("b-work", "tok-b", Some(in_an_hour)),
            ("a-home", "tok-a", None),
        ]);
        // Files younger than the racy window: loaded, and no index is written.
        assert!(matches!(open(&config, &key, &[]), Source::Loaded(_)));
        std::thread::sleep(crate::provider::index::RACY + std::time::Duration::from_millis(300));
        assert!(
            matches!(open(&config, &key, &[]), Source::Loaded(_)),
            "writes the index"
        );
        let Source::Indexed(vars, _) = open(&config, &key, &[]) else {
            panic!("a current index must answer");
        };
        let got: Vec<(&str, &str)> = vars.iter().map(|(k, t)| (k.as_str(), t.secret())).collect();
        assert_eq!(
            got,
            [
                ("A_HOME_ACCESS_TOKEN", "tok-a"),
                ("B_WORK_ACCESS_TOKEN", "tok-b")
            ]
        );
        let one = open(&config, &key, &["b-work".to_owned()]);
        assert!(matches!(&one, Source::Indexed(v, _) if v.len() == 1));
        // An account it does not know, or an edit, sends it back to the files.
        assert!(matches!(
            open(&config, &key, &["nobody".to_owned()]),
            Source::Loaded(_)
        ));
        let file = config.join("providers/a-home.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{text}export_var = \"HOME_TOKEN\"\n")).unwrap();
        let Source::Loaded(app) = open(&config, &key, &[]) else {
            panic!("an edited file must be read again");
        };
        assert_eq!(
            app.account("a-home").unwrap().export_var_name(),
            "HOME_TOKEN"
        );
    }

    #[test]
    fn a_due_or_missing_token_is_not_answered_from_the_index() {
        let index = Index::read(Path::new("/nonexistent/index"), Path::new("/x"));
        assert!(index.is_none());
        let soon = crate::app::status::unix(SystemTime::now()) + 30;
        let (_dir, config, key) = fixture(&[("due", "tok", Some(soon))]);
        std::thread::sleep(crate::provider::index::RACY + std::time::Duration::from_millis(300));
        assert!(
            matches!(open(&config, &key, &[]), Source::Loaded(_)),
            "writes the index"
        );
        // The index is current, but the token is due: the app must refresh it.
        assert!(matches!(open(&config, &key, &[]), Source::Loaded(_)));
        assert!(matches!(
            open(&config, &key, &["due".to_owned()]),
            Source::Loaded(_)
        ));
    }

    /// Writes the account index of `config` as if its files had settled long ago (no wait for
    /// the racy window).
    fn settled_index(config: &Path) {
        let stamps = Stamps::take(config).unwrap();
        let loaded = provider::load_accounts(config);
        let later = SystemTime::now() + crate::provider::index::RACY * 2;
        let path = index_path(&config.parent().unwrap().join("vault.bin"));
        assert!(Index::write(&path, config, &stamps, &loaded, later).unwrap());
    }

    /// GIT-1, GIT-2: `git-credential get` answers from a current index (no account file read)
    /// as the loaded accounts would, and an edited `git_urls` is honoured by the very next call.
    #[test]
    fn git_1_get_answers_from_the_index_and_an_edited_git_url_is_honoured_at_once() {
        use crate::app::access::GitSource;
        use crate::app::gitcred::Request;
        use crate::vault::KeySource;
        let in_an_hour = crate::app::status::unix(SystemTime::now()) + 3600;
        let (_dir, config, key) = fixture(&[
            ("forge", "tok-f", Some(in_an_hour)),
            ("other", "tok-o", Some(in_an_hour)),
        ]);
        let file = |name: &str| config.join("providers").join(format!("{name}.toml"));
        let base = std::fs::read_to_string(file("forge")).unwrap();
        let forge = |url: &str| format!("{base}git_urls = [\"{url}\"]\ngit_username = \"bot\"\n");
        std::fs::write(file("forge"), forge("https://git.example.com/group")).unwrap();
        std::fs::write(
            file("other"),
            format!("{base}git_urls = [\"https://git.example.com\"]\n"),
        )
        .unwrap();
        settled_index(&config);
        let req = |host: &str, path: Option<&str>| Request {
            protocol: Some("https".into()),
            host: Some(host.into()),
            path: path.map(Into::into),
            ..Request::default()
        };
        let git = |req: &Request| {
            let vault_path = config.parent().unwrap().join("vault.bin");
            let vault = Vault::open(vault_path, KeySource::KeyFile(key.clone())).unwrap();
            App::for_git(config.clone(), vault, req, Settings::default()).unwrap()
        };
        let in_group = req("git.example.com", Some("group/x.git"));
        let GitSource::Indexed(Some(a)) = git(&in_group) else {
            panic!("a current index must answer");
        };
        assert_eq!(
            (
                a.account.as_str(),
                a.username.as_str(),
                a.handed.token.secret()
            ),
            ("forge", "bot", "tok-f")
        );
        assert_eq!(a.handed.expires_at, Some(in_an_hour));
        let GitSource::Indexed(Some(a)) = git(&req("git.example.com", None)) else {
            panic!("the host-wide account must answer");
        };
        // GIT-2: no git_username: the template's convention.
        assert_eq!(
            (a.account.as_str(), a.username.as_str()),
            ("other", "oauth2")
        );
        assert!(matches!(
            git(&req("unknown.example.com", None)),
            GitSource::Indexed(None)
        ));
        // The group moved to another path: the very next request reads the files again and
        // no longer picks `forge` for it.
        std::fs::write(file("forge"), forge("https://git.example.com/moved")).unwrap();
        let GitSource::Loaded(app) = git(&in_group) else {
            panic!("an edited file must be read again");
        };
        assert_eq!(app.git_account(&in_group).as_deref(), Some("other"));
        // Once settled again, the index answers with the new URL.
        settled_index(&config);
        let GitSource::Indexed(Some(a)) = git(&req("git.example.com", Some("moved/y.git"))) else {
            panic!("the rewritten index must answer");
        };
        assert_eq!(a.account, "forge");
    }
}
