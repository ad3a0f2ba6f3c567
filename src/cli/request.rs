//! `authdeck request`: an authenticated HTTP request, refreshed once on 401.

use super::context::{Access, Locations, access, incomplete, open_app, run, token_request};
use crate::agent::protocol::Request;
use crate::app::AppError;
use crate::app::exit;
use crate::app::request::{HttpRequest, send_authenticated};
use clap::Args;
use std::io::Write;
use std::time::Duration;

/// `authdeck request NAME URL [-X METHOD] [-H 'K: V']... [-d DATA]`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The account whose token to send.
    pub name: String,
    /// The URL.
    pub url: String,
    /// HTTP method (default GET, or POST with -d).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// Extra header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Request body; `@FILE` reads a file, `@-` stdin.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Option<String>,
    /// Send a narrower token instead of the account's own (REF-9).
    #[command(flatten)]
    pub narrow: super::token_opts::NarrowArgs,
}

/// After a 401, a narrowed token is renewed by asking for one valid "forever": no stored
/// narrowed token is that fresh, so it is fetched again (REF-9).
const RENEW: Duration = Duration::from_secs(u32::MAX as u64);

/// Runs `request`: prints the body; exit 0 for 2xx, 1 otherwise (3 when a login is needed).
pub fn request(loc: &Locations, args: &RequestArgs) -> u8 {
    run(|rt| {
        let mut headers = Vec::new();
        for h in &args.headers {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| AppError::Config(format!("header '{h}' is not 'Name: value'")))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let body = match args.data.as_deref() {
            None => None,
            Some("@-") => {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map_err(|source| {
                    AppError::Io {
                        what: "cannot read stdin".into(),
                        source,
                    }
                })?;
                Some(buf)
            }
            Some(d) if d.starts_with('@') => {
                Some(std::fs::read(&d[1..]).map_err(|source| AppError::Io {
                    what: format!("cannot read {}", &d[1..]),
                    source,
                })?)
            }
            Some(d) => Some(d.as_bytes().to_vec()),
        };
        let method = args.method.clone().unwrap_or_else(|| {
            if body.is_some() {
                "POST".into()
            } else {
                "GET".into()
            }
        });
        let req = HttpRequest {
            method,
            url: args.url.clone(),
            headers,
            body,
        };
        // AGENT-9: the agent hands over the token (and refreshes it after a 401) when one
        // answers; the request itself goes from here either way.
        let via_agent = match access(loc)? {
            Access::Agent(mut link) => {
                let asked = args.narrow.request();
                let narrow = crate::agent::protocol::Narrow::from_request(&asked);
                let plain = token_request(&args.name, Duration::ZERO, &asked);
                let first = link.call(&plain)?;
                match first {
                    Some(first) => {
                        let mut first = Some(first);
                        let name = args.name.clone();
                        Some(rt.block_on(send_authenticated(&req, |force| {
                            let answer = match first.take() {
                                Some(r) if !force => Ok(Some(r)),
                                _ => link.call(|origin| Request::Token {
                                    account: name.clone(),
                                    min_valid: 0,
                                    force,
                                    narrow: narrow.clone(),
                                    id_token: false,
                                    origin,
                                }),
                            };
                            let token = answer.and_then(|r| {
                                r.and_then(|r| r.token).ok_or_else(|| incomplete("token"))
                            });
                            std::future::ready(token)
                        }))?)
                    }
                    None => None,
                }
            }
            Access::Direct => None,
        };
        let resp = match via_agent {
            Some(resp) => resp,
            None if args.narrow.request().is_empty() => {
                rt.block_on(open_app(loc, false)?.request(&args.name, &req))?
            }
            None => {
                let app = open_app(loc, false)?;
                let (name, narrow) = (&args.name, args.narrow.request());
                rt.block_on(send_authenticated(&req, |force| {
                    let (app, narrow) = (&app, &narrow);
                    async move {
                        let min = if force { RENEW } else { Duration::ZERO };
                        app.token_as_asked(name, narrow, min)
                            .await
                            .map(|(handed, _)| handed.token)
                    }
                }))?
            }
        };
        let _ = std::io::stdout().lock().write_all(&resp.body);
        if let Some(scope) = &resp.insufficient_scope {
            eprintln!(
                "authdeck: HTTP 403 insufficient_scope: the token lacks scope '{}' (not refreshed; log in with more scopes)",
                crate::text::sanitize(scope, 200)
            );
        } else if !(200..300).contains(&resp.status) {
            eprintln!("authdeck: HTTP {}", resp.status);
        }
        Ok(if (200..300).contains(&resp.status) {
            exit::OK
        } else {
            exit::ERROR
        })
    })
}
