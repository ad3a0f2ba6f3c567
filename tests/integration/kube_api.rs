//! A fake Kubernetes API server (HTTPS, self-signed) for the kubectl test: just enough discovery (`/api`, `/apis`,
//! `/api/v1`) for `kubectl get namespaces`, each request accepted only with a bearer token the
//! check accepts (an access token the devserver honours, or an ID token the test verifies).

use crate::support::BackgroundStub;
use authdeck::oauth::testutil::{Recorded, Reply};
use std::sync::{Arc, Mutex};

/// Bearer tokens the server saw, accepted or not.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub accepted: Vec<String>,
    pub refused: usize,
}

pub struct KubeApi {
    http: BackgroundStub,
    seen: Arc<Mutex<Seen>>,
}

impl KubeApi {
    /// Serves one namespace, `ns_name`, to requests whose bearer token passes `check`.
    pub fn start(ns_name: &str, check: impl Fn(&str) -> bool + Send + Sync + 'static) -> KubeApi {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (seen2, ns) = (seen.clone(), ns_name.to_string());
        let http = BackgroundStub::serve_tls(move |req| answer(req, &ns, &check, &seen2));
        KubeApi { http, seen }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.http.port())
    }

    /// The server's certificate, base64 of its PEM (kubeconfig's
    /// `certificate-authority-data`).
    pub fn ca_data(&self) -> String {
        use base64::Engine as _;
        let pem = self.http.ca_pem().unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(pem)
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

fn answer(req: &Recorded, ns: &str, check: &dyn Fn(&str) -> bool, seen: &Mutex<Seen>) -> Reply {
    let Some(token) = req.bearer().filter(|t| check(t)) else {
        seen.lock().unwrap().refused += 1;
        let status = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
        return Reply::json(401, status);
    };
    {
        let mut s = seen.lock().unwrap();
        if !s.accepted.contains(&token) {
            s.accepted.push(token);
        }
    }
    let body = match req.route() {
        "/api" => r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}"#.to_string(),
        "/apis" => r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#.to_string(),
        "/api/v1" => r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"namespaces","singularName":"namespace","namespaced":false,"kind":"Namespace","verbs":["get","list"],"shortNames":["ns"]}]}"#.to_string(),
        "/api/v1/namespaces" => format!(
            r#"{{"kind":"NamespaceList","apiVersion":"v1","metadata":{{"resourceVersion":"1"}},"items":[{{"metadata":{{"name":"{ns}","creationTimestamp":"2026-01-01T00:00:00Z"}},"status":{{"phase":"Active"}}}}]}}"#
        ),
        _ => {
            return Reply::json(
                404,
                r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#,
            );
        }
    };
    Reply::json(200, &body)
}
