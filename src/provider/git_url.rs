//! `git_urls` entries of an account file: which git remotes the account's token is for (the
//! matching itself is `app::gitcred`'s).

/// One `git_urls` entry: a protocol and host (with port), and optionally a path prefix that
/// matches on a segment boundary (GIT-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitUrl {
    /// `https` or `http`.
    pub protocol: String,
    /// Lower-case host, with `:port` when one was given.
    pub host: String,
    /// The path prefix without leading or trailing `/`; empty for the whole host.
    pub path: String,
}

impl GitUrl {
    /// Parses `https://host[:port][/path/prefix]`. No query, fragment or credentials.
    pub fn parse(text: &str) -> Result<GitUrl, String> {
        let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(format!(
                "the scheme must be https or http, not {}",
                url.scheme()
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("a git URL takes no query or fragment".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a git URL takes no user name or password".into());
        }
        let Some(host) = url.host_str() else {
            return Err("a git URL needs a host".into());
        };
        let host = match url.port() {
            Some(p) => format!("{}:{p}", host.to_ascii_lowercase()),
            None => host.to_ascii_lowercase(),
        };
        Ok(GitUrl {
            protocol: url.scheme().to_string(),
            host,
            path: url.path().trim_matches('/').to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_url_rules() {
        let u = GitUrl::parse("https://GitLab.example.com:8443/group/").unwrap();
        assert_eq!(u.host, "gitlab.example.com:8443");
        assert_eq!(u.path, "group");
        assert!(GitUrl::parse("ssh://github.com").is_err());
        assert!(GitUrl::parse("https://u:p@github.com").is_err());
        assert!(GitUrl::parse("https://github.com/?a=b").is_err());
        assert!(GitUrl::parse("github.com").is_err());
    }
}
