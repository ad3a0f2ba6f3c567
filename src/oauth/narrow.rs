//! A narrower token than the account's own: another `scope`, an RFC 8707 `resource`, or an
//! `audience`, asked for with the refresh token (RFC 6749 §6; REF-9).

use url::Url;

/// What a narrower token is for. At least one field is set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Narrowing {
    /// Scopes, in the order given (sent space-separated).
    pub scope: Option<Vec<String>>,
    /// RFC 8707 resource indicator: an absolute URI without a fragment.
    pub resource: Option<Url>,
    /// An `audience` (Auth0 and others).
    pub audience: Option<String>,
}

impl Narrowing {
    /// Builds one from command-line text; `Err` says what is wrong.
    pub fn new(
        scope: Option<&str>,
        resource: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Narrowing, String> {
        let scope = match scope {
            Some(s) => {
                let list: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
                if list.is_empty() {
                    return Err("--scope is empty".into());
                }
                // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
                if let Some(bad) = list.iter().find(|t| !super::wire::is_scope_token(t)) {
                    return Err(format!("{bad:?} is not a valid scope (RFC 6749 §3.3)"));
                }
                Some(list)
            }
            None => None,
        };
        let resource = match resource {
            Some(r) => {
                let url = Url::parse(r)
                    .map_err(|e| format!("--resource {r:?} is not an absolute URI: {e}"))?;
                if url.fragment().is_some() {
                    return Err("--resource must not have a fragment (RFC 8707 §2)".into());
                }
                Some(url)
            }
            None => None,
        };
        let audience = match audience {
            Some(a) if a.trim().is_empty() || a.chars().any(char::is_control) => {
                return Err("--audience must be non-empty printable text".into());
            }
            other => other.map(str::to_owned),
        };
        if scope.is_none() && resource.is_none() && audience.is_none() {
            return Err("nothing to narrow: give --scope, --resource or --audience".into());
        }
        Ok(Narrowing {
            scope,
            resource,
            audience,
        })
    }

    /// The vault key of the token: the same request always gives the same key (scopes
    /// sorted), and different requests different keys.
    pub fn key(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.scope {
            let mut sorted = s.clone();
            sorted.sort();
            sorted.dedup();
            parts.push(format!("scope={}", sorted.join(" ")));
        }
        if let Some(r) = &self.resource {
            parts.push(format!("resource={r}"));
        }
        if let Some(a) = &self.audience {
            parts.push(format!("audience={a}"));
        }
        parts.join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_canonical() {
        let a = Narrowing::new(Some("b a"), None, None).unwrap();
        let b = Narrowing::new(Some("a  b a"), None, None).unwrap();
        assert_eq!(a.key(), "scope=a b");
        assert_eq!(a.key(), b.key());
        let r = Narrowing::new(None, Some("https://graph.microsoft.com"), None).unwrap();
        assert_eq!(r.key(), "resource=https://graph.microsoft.com/");
        let au = Narrowing::new(None, None, Some("api://x")).unwrap();
        assert_ne!(au.key(), r.key());
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(Narrowing::new(None, None, None).is_err());
        assert!(Narrowing::new(Some("  "), None, None).is_err());
        assert!(Narrowing::new(Some("a\"b"), None, None).is_err());
        assert!(Narrowing::new(None, Some("graph"), None).is_err());
        assert!(Narrowing::new(None, Some("https://x/#f"), None).is_err());
        assert!(Narrowing::new(None, None, Some("a\nb")).is_err());
    }
}
