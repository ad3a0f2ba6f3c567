//! A git smart-HTTP server for the tests: `git http-backend` (the real CGI program shipped with
//! git) behind a small loopback HTTP server that lets a request through only with HTTP Basic
//! credentials whose password is an access token the devserver issued and still honours
//! (checked at the devserver's `/userinfo`, as a resource server would introspect it). The
//! HTTP server is the suite's one stub.

use crate::resource::token_is_live;
use crate::support::BackgroundStub;
use authdeck::oauth::testutil::{Recorded, Reply};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// What the server saw, for assertions.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Requests answered 401.
    pub unauthorized: usize,
    /// Requests passed to git http-backend.
    pub served: usize,
    /// Distinct tokens that were accepted, in order of first use.
    pub tokens: Vec<String>,
    /// Usernames sent with accepted tokens.
    pub usernames: Vec<String>,
}

/// The running server; stopped on drop.
pub struct GitServer {
    http: BackgroundStub,
    seen: Arc<Mutex<Seen>>,
}

impl GitServer {
    /// Serves the bare repositories under `root`; tokens are checked at `userinfo`.
    pub fn start(root: &Path, userinfo: String) -> GitServer {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (seen2, root) = (seen.clone(), root.to_path_buf());
        let http = BackgroundStub::serve(move |req| answer(req, &root, &userinfo, &seen2));
        GitServer { http, seen }
    }

    /// The URL of repository `name` (a bare repo under the root).
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.http.port())
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

fn answer(req: &Recorded, root: &Path, userinfo: &str, seen: &Mutex<Seen>) -> Reply {
    let creds = req
        .basic()
        .filter(|(_, token)| token_is_live(userinfo, token));
    let Some((user, token)) = creds else {
        seen.lock().unwrap().unauthorized += 1;
        return Reply::text(401, "")
            .header("Content-Type", "text/plain")
            .header("WWW-Authenticate", "Basic realm=\"authdeck-test\"");
    };
    {
        let mut s = seen.lock().unwrap();
        s.served += 1;
        if !s.tokens.contains(&token) {
            s.tokens.push(token.clone());
        }
        if !s.usernames.contains(&user) {
            s.usernames.push(user.clone());
        }
    }
    match run_backend(root, req, &user) {
        Ok(cgi) => cgi_response(&cgi),
        Err(e) => Reply::text(502, &e.to_string()).header("Content-Type", "text/plain"),
    }
}

fn run_backend(root: &Path, req: &Recorded, user: &str) -> std::io::Result<Vec<u8>> {
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &req.method)
        .env("PATH_INFO", req.route())
        .env("QUERY_STRING", req.query())
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", req.bytes.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(ct) = req.header("content-type") {
        cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(ce) = req.header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", ce);
    }
    if let Some(p) = req.header("git-protocol") {
        cmd.env("GIT_PROTOCOL", p);
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let body = req.bytes.clone();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    Ok(out.stdout)
}

/// A CGI answer (headers, a blank line, the body) as an HTTP response.
fn cgi_response(cgi: &[u8]) -> Reply {
    let split = cgi
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| cgi.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return Reply::text(502, "no CGI headers").header("Content-Type", "text/plain");
    };
    let head = String::from_utf8_lossy(&cgi[..end]);
    // `Status: 404 Not Found`; 200 when the program leaves it out.
    let status = head
        .lines()
        .filter_map(|h| h.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("status"))
        .and_then(|(_, v)| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(200);
    let mut reply = Reply::bytes(status, cgi[end + sep..].to_vec());
    for (k, v) in head.lines().filter_map(|h| h.split_once(':')) {
        if !k.eq_ignore_ascii_case("status") {
            reply = reply.header(k.trim(), v.trim());
        }
    }
    reply
}

/// Runs `git ARGS` in `dir` with a fixed identity and no user or system config.
fn git(dir: &Path, home: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bare repository `name.git` under `root` with one commit holding `README` = `content`.
pub fn make_repo(root: &Path, name: &str, content: &str) -> PathBuf {
    let work = root.join(format!("{name}-work"));
    std::fs::create_dir_all(&work).unwrap();
    git(&work, root, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README"), content).unwrap();
    git(&work, root, &["add", "README"]);
    git(&work, root, &["commit", "-q", "-m", "first"]);
    let bare = root.join(format!("{name}.git"));
    let (w, b) = (work.to_str().unwrap(), bare.to_str().unwrap());
    git(root, root, &["clone", "-q", "--bare", w, b]);
    bare
}

/// Adds a commit with `README` = `content` to the bare repo (for a later fetch to see).
pub fn push_commit(root: &Path, name: &str, content: &str) {
    let work = root.join(format!("{name}-work"));
    std::fs::write(work.join("README"), content).unwrap();
    git(&work, root, &["commit", "-q", "-am", "next"]);
    let bare = root.join(format!("{name}.git"));
    git(&work, root, &["push", "-q", bare.to_str().unwrap(), "main"]);
}
