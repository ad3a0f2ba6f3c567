//! The git credential helper protocol (gitcredentials(7), "credential helpers"): parsing what
//! git sends, choosing the account by `git_urls`, and writing the answer.
//!
//! Everything here is pure: the command line reads stdin, asks `app` for a fresh token and
//! writes stdout. A request git cannot have sent (oversize, a NUL, a line without `=`) is an
//! error the caller answers with empty output, so git falls through to its next helper
//! (GIT-3) and nothing secret is printed.

use crate::provider::GitUrl;
use crate::secret::AccessToken;
use std::fmt::Write as _;
use thiserror::Error;

/// The most a helper request may hold. git sends a few hundred bytes; anything near this is
/// not git (GIT-3).
pub const MAX_REQUEST: usize = 64 * 1024;

/// What git asks the helper to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Return a credential.
    Get,
    /// git tells the helper a credential worked: authdeck keeps nothing of it.
    Store,
    /// git tells the helper a credential was rejected: the access token is marked stale.
    Erase,
}

impl Operation {
    /// The operation named by git's argument.
    pub fn parse(arg: &str) -> Option<Operation> {
        match arg {
            "get" => Some(Operation::Get),
            "store" => Some(Operation::Store),
            "erase" => Some(Operation::Erase),
            _ => None,
        }
    }
}

/// Why a request is not one git sends.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RequestError {
    /// Over [`MAX_REQUEST`] bytes.
    #[error("the credential request is larger than {MAX_REQUEST} bytes")]
    TooLarge,
    /// A NUL byte, which gitcredentials(7) forbids in any value.
    #[error("the credential request holds a NUL byte")]
    Nul,
    /// A non-empty line without `=`.
    #[error("line {0} of the credential request is not key=value")]
    NotKeyValue(usize),
    /// Not UTF-8.
    #[error("the credential request is not UTF-8")]
    NotUtf8,
}

/// The attributes of one request that matter to authdeck.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `protocol`, e.g. `https`.
    pub protocol: Option<String>,
    /// `host`, with `:port` when git sent one.
    pub host: Option<String>,
    /// `path`, sent only with `credential.useHttpPath`.
    pub path: Option<String>,
    /// `username`, when the remote URL or config names one.
    pub username: Option<String>,
    /// `wwwauth[]` values (the server's `WWW-Authenticate` headers), for diagnostics only.
    pub wwwauth: Vec<String>,
    /// `url`, which git may send instead of the parts above.
    pub url: Option<String>,
    /// `password`, sent with `store` and `erase`: the token git used (`erase` marks it stale
    /// only if it is still the stored one).
    pub password: Option<AccessToken>,
}

/// Parses git's request: `key=value` lines up to a blank line or the end.
pub fn parse_request(bytes: &[u8]) -> Result<Request, RequestError> {
    if bytes.len() > MAX_REQUEST {
        return Err(RequestError::TooLarge);
    }
    if bytes.contains(&0) {
        return Err(RequestError::Nul);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| RequestError::NotUtf8)?;
    let mut req = Request::default();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(RequestError::NotKeyValue(i + 1));
        };
        let value = value.to_string();
        match key {
            "protocol" => req.protocol = Some(value),
            "host" => req.host = Some(value),
            "path" => req.path = Some(value),
            "username" => req.username = Some(value),
            "url" => req.url = Some(value),
            "wwwauth[]" => req.wwwauth.push(value),
            "password" => req.password = Some(AccessToken::new(value)),
            _ => {}
        }
    }
    if req.protocol.is_none() || req.host.is_none() {
        req.fill_from_url();
    }
    Ok(req)
}

impl Request {
    /// git ≥ 2.x may send `url=` alone: take protocol, host and path from it.
    fn fill_from_url(&mut self) {
        let Some(url) = self.url.as_deref().and_then(|u| url::Url::parse(u).ok()) else {
            return;
        };
        if self.protocol.is_none() {
            self.protocol = Some(url.scheme().to_string());
        }
        if let (None, Some(h)) = (&self.host, url.host_str()) {
            self.host = Some(match url.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            });
        }
        if self.path.is_none() {
            let p = url.path().trim_start_matches('/');
            if !p.is_empty() {
                self.path = Some(p.to_string());
            }
        }
    }
}

/// How specific `url` is when it matches `req`: the length of its path prefix plus one, or
/// `None` when it does not match. The longest match wins (GIT-1).
pub fn score(url: &GitUrl, req: &Request) -> Option<usize> {
    let protocol = req.protocol.as_deref()?;
    let host = req.host.as_deref()?.to_ascii_lowercase();
    if protocol != url.protocol || host != url.host {
        return None;
    }
    if url.path.is_empty() {
        return Some(1);
    }
    // Without credential.useHttpPath git sends no path: a path-scoped entry cannot be told
    // apart from another one on the same host, so it does not match.
    let path = req.path.as_deref()?.trim_matches('/');
    let rest = path.strip_prefix(url.path.as_str())?;
    if rest.is_empty() || rest.starts_with('/') {
        Some(url.path.len() + 1)
    } else {
        None
    }
}

/// Picks the account whose `git_urls` match `req` most specifically (GIT-1). Ties go to the
/// account that sorts first by name, so the choice never depends on directory order.
pub fn choose<'a, I>(req: &Request, accounts: I) -> Option<&'a str>
where
    I: IntoIterator<Item = (&'a str, &'a [GitUrl])>,
{
    let mut best: Option<(usize, &'a str)> = None;
    for (name, urls) in accounts {
        let Some(score) = urls.iter().filter_map(|u| score(u, req)).max() else {
            continue;
        };
        best = match best {
            Some((s, n)) if s > score || (s == score && n <= name) => Some((s, n)),
            _ => Some((score, name)),
        };
    }
    best.map(|(_, n)| n)
}

/// The username git sends with the token: the account's `git_username`, else the provider's
/// convention (GIT-2).
pub fn default_username(template: Option<&str>) -> &'static str {
    match template {
        // GitHub accepts any non-empty username with a token; its docs use x-access-token.
        Some("github") => "x-access-token",
        // GitLab documents "oauth2" as the username for an OAuth token over HTTPS.
        Some("gitlab") => "oauth2",
        _ => "oauth2",
    }
}

/// The answer to `get`: `username`, `password` and, for git ≥ 2.41, `password_expiry_utc`.
/// The token is written only here, to git's pipe.
pub fn answer(username: &str, token: &AccessToken, expires_at: Option<i64>) -> String {
    let mut out = String::with_capacity(token.secret().len() + 64);
    let _ = writeln!(out, "username={username}");
    let _ = writeln!(out, "password={}", token.secret());
    if let Some(t) = expires_at {
        let _ = writeln!(out, "password_expiry_utc={t}");
    }
    out
}

/// Whether a value can be written to git as one `key=value` line: no newline and no NUL,
/// which would let a server-chosen token inject another attribute.
pub fn safe_value(value: &str) -> bool {
    !value.contains(['\n', '\r', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(protocol: &str, host: &str, path: Option<&str>) -> Request {
        Request {
            protocol: Some(protocol.into()),
            host: Some(host.into()),
            path: path.map(Into::into),
            ..Request::default()
        }
    }

    #[test]
    fn parses_what_git_sends() {
        let r = parse_request(b"protocol=https\nhost=github.com\nusername=bob\npassword=x\n\n")
            .unwrap();
        assert_eq!(r.protocol.as_deref(), Some("https"));
        assert_eq!(r.host.as_deref(), Some("github.com"));
        assert_eq!(r.username.as_deref(), Some("bob"));
        assert_eq!(r.path, None);
    }

    #[test]
    fn url_alone_fills_the_parts() {
        let r = parse_request(b"url=https://git.example.com:8443/group/repo.git\n").unwrap();
        assert_eq!(r.protocol.as_deref(), Some("https"));
        assert_eq!(r.host.as_deref(), Some("git.example.com:8443"));
        assert_eq!(r.path.as_deref(), Some("group/repo.git"));
    }

    #[test]
    fn hostile_requests_are_errors() {
        assert_eq!(
            parse_request(b"protocol=https\nhost"),
            Err(RequestError::NotKeyValue(2))
        );
        assert_eq!(parse_request(b"host=a\0b\n"), Err(RequestError::Nul));
        assert_eq!(
            parse_request(&[0xff, b'=', b'\n']),
            Err(RequestError::NotUtf8)
        );
        let big = vec![b'a'; MAX_REQUEST + 1];
        assert_eq!(parse_request(&big), Err(RequestError::TooLarge));
    }

    #[test]
    fn lines_after_the_blank_line_are_ignored() {
        let r = parse_request(b"protocol=https\nhost=a\n\nhost=b\n").unwrap();
        assert_eq!(r.host.as_deref(), Some("a"));
    }

    #[test]
    fn longest_match_wins_and_paths_end_on_segments() {
        let any = [GitUrl::parse("https://gitlab.example.com").unwrap()];
        let group = [GitUrl::parse("https://gitlab.example.com/group/").unwrap()];
        let accounts = || [("any", &any[..]), ("group", &group[..])];
        let r = req("https", "gitlab.example.com", Some("group/repo.git"));
        assert_eq!(choose(&r, accounts()), Some("group"));
        let r = req("https", "gitlab.example.com", Some("groupie/repo.git"));
        assert_eq!(choose(&r, accounts()), Some("any"));
        let r = req("https", "gitlab.example.com", None);
        assert_eq!(choose(&r, accounts()), Some("any"));
        let r = req("http", "gitlab.example.com", None);
        assert_eq!(choose(&r, accounts()), None);
        let r = req("https", "GitLab.Example.com", Some("group"));
        assert_eq!(choose(&r, accounts()), Some("group"));
    }

    #[test]
    fn ports_must_match() {
        let u = [GitUrl::parse("https://git.example.com:8443").unwrap()];
        let accounts = [("a", &u[..])];
        assert_eq!(
            choose(&req("https", "git.example.com:8443", None), accounts),
            Some("a")
        );
        assert_eq!(
            choose(&req("https", "git.example.com", None), accounts),
            None
        );
    }

    #[test]
    fn ties_go_to_the_first_name() {
        let u = [GitUrl::parse("https://github.com").unwrap()];
        let a = [("zed", &u[..]), ("amy", &u[..])];
        assert_eq!(choose(&req("https", "github.com", None), a), Some("amy"));
    }

    #[test]
    fn the_answer_carries_expiry_and_never_a_second_attribute() {
        let t = AccessToken::new("gho_abc");
        let a = answer("x-access-token", &t, Some(1_900_000_000));
        assert_eq!(
            a,
            "username=x-access-token\npassword=gho_abc\npassword_expiry_utc=1900000000\n"
        );
        assert!(!safe_value("tok\nusername=evil"));
        assert!(safe_value("gho_abc"));
    }
}
