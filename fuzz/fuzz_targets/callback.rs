//! The loopback callback: a raw HTTP request head (parsed by httparse, hyper's parser) handed
//! to the listener's handler with one login pending, or a line pasted in paste mode
//! (`app::login::check_pasted`).
//!
//! Properties: no panic; a login completes only with status 200, exactly one matching `state`
//! (CB-7) and exactly one non-empty `code`, and an `iss` equal to the issuer when one is
//! required or given (AUTHZ-4); every page is the fixed template with all input HTML-escaped
//! (CB-11) and never shows the code; a pasted line yields a non-empty code only with the right
//! `state` (and, where required or expected, the right `iss`), and its refusals never show the
//! code.
#![no_main]

use authdeck::app::login::{IssuerCheck, check_pasted};
use authdeck::oauth::callback::fuzzing::{PATH, PORT, answer};
use authdeck::secret::CsrfState;
use authdeck_fuzz::{Input, distinctive};
use libfuzzer_sys::fuzz_target;

const STATE: &str = "fuzz-state-2b7d1c0e9a";
const ISSUER: &str = "https://issuer.example";
/// `<` in the page template: a page with more reflected markup from the request.
const TEMPLATE_TAGS: usize = 14;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let flags = input.byte();
    let require_iss = flags & 1 != 0;
    let issuer = (flags & 2 != 0).then_some(ISSUER);
    if mode % 2 == 0 {
        listener(input.rest(), issuer, require_iss);
    } else if let Ok(line) = std::str::from_utf8(input.rest()) {
        pasted(
            line,
            IssuerCheck {
                expected: issuer,
                required: require_iss,
            },
        );
    }
});

fn listener(head: &[u8], issuer: Option<&str>, require_iss: bool) {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(head) else {
        return; // hyper answers 400 itself
    };
    let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
        return;
    };
    let mut builder = http::Request::builder().method(method).uri(target);
    for h in parsed.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    let Ok(req) = builder.body(()) else {
        return; // not a valid http::Request: hyper refuses it before the handler
    };
    let a = answer(&req, STATE, issuer, require_iss);
    assert_eq!(
        a.body.matches('<').count(),
        TEMPLATE_TAGS,
        "unescaped markup in the page: {}",
        a.body
    );
    let query = req.uri().query().unwrap_or("");
    let values = |key: &str| -> Vec<String> {
        form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .collect()
    };
    match &a.outcome {
        Some(Ok(result)) => {
            assert_eq!(a.status, 200);
            assert_eq!(req.uri().path(), PATH);
            assert_eq!(values("state"), [STATE], "CB-7");
            assert_eq!(values("code"), [result.code.secret()]);
            assert!(!result.code.is_empty());
            assert!(values("error").is_empty());
            if require_iss {
                assert_eq!(result.iss.as_deref(), Some(ISSUER), "AUTHZ-4: iss required");
            }
            if let (Some(iss), Some(expected)) = (&result.iss, issuer) {
                assert_eq!(iss, expected, "AUTHZ-4");
            }
        }
        Some(Err(_)) | None => assert_ne!(a.status, 200, "200 without a finished login"),
    }
    // The code leaks if the page shows it, unless the same request with another code gives
    // a page that shows it too (it is then part of the fixed text or of reflected text).
    let codes = values("code");
    if codes
        .iter()
        .any(|c| distinctive(c) && a.body.contains(c.as_str()))
    {
        let other = with_codes_replaced(query);
        let mut builder = http::Request::builder()
            .method(req.method())
            .uri(format!("{}?{other}", req.uri().path()));
        for (name, value) in req.headers() {
            builder = builder.header(name, value);
        }
        let b = answer(
            &builder.body(()).expect("same head"),
            STATE,
            issuer,
            require_iss,
        );
        for c in codes.iter().filter(|c| distinctive(c)) {
            assert!(
                !a.body.contains(c.as_str()) || b.body.contains(c.as_str()),
                "the page shows the code"
            );
        }
    }
}

/// `query` with every `code` value replaced by a string of the same length that shares no
/// character with it.
fn with_codes_replaced(query: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == "code" {
            let filler = if v.contains('\u{1}') {
                "\u{2}"
            } else {
                "\u{1}"
            };
            out.append_pair(&k, &filler.repeat(v.chars().count()));
        } else {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

fn pasted(line: &str, issuer: IssuerCheck<'_>) {
    let redirect = format!("http://127.0.0.1:{PORT}{PATH}");
    let state = CsrfState::new(STATE);
    match check_pasted(line, &redirect, &state, issuer) {
        Ok(code) => {
            assert!(!code.is_empty());
            if line.contains("://") {
                let url = url::Url::parse(line.trim()).expect("accepted URLs parse");
                assert!(
                    url.query_pairs().any(|(k, v)| k == "state" && v == STATE),
                    "CB-7: a pasted URL without the login's state was accepted"
                );
                // The last `iss` counts in paste mode.
                let iss = url.query_pairs().filter(|(k, _)| k == "iss").last();
                if issuer.required {
                    assert!(
                        iss.is_some(),
                        "AUTHZ-4: a pasted URL without iss was accepted"
                    );
                }
                if let (Some((_, iss)), Some(expected)) = (iss, issuer.expected) {
                    assert_eq!(iss, expected, "AUTHZ-4: a pasted URL from another issuer");
                }
            }
        }
        Err(refusal) => {
            let shown = format!("{refusal:?}");
            let Ok(url) = url::Url::parse(line.trim()) else {
                return;
            };
            let codes: Vec<String> = url
                .query_pairs()
                .filter(|(k, v)| k == "code" && distinctive(v) && shown.contains(v.as_ref()))
                .map(|(_, v)| v.into_owned())
                .collect();
            if codes.is_empty() {
                return;
            }
            // As for the page: a leak only if another code would not be shown in its place.
            let mut other = url.clone();
            other.set_query(Some(&with_codes_replaced(url.query().unwrap_or(""))));
            let again = format!(
                "{:?}",
                check_pasted(other.as_str(), &redirect, &state, issuer)
            );
            for c in codes {
                assert!(again.contains(&c), "a refusal shows the code");
            }
        }
    }
}
