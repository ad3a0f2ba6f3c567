//! authdeck as the token source of other programs, each the real program: `git` cloning and
//! fetching over smart HTTP through `authdeck git-credential`, `kubectl` listing namespaces
//! through `authdeck kube-credential`, `msmtp` sending mail with XOAUTH2 through
//! `passwordeval`, and bash completing account names. Every server checks the token at the
//! devserver, so only a token the authorization server issued gets through.

use crate::git_http::{self, GitServer};
use crate::kube_api::KubeApi;
use crate::resource::token_is_live;
use crate::smtp::SmtpServer;
use crate::support::{paste_login, stderr, stdout};
use authdeck::devserver::{DevServer, DevServerConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A home with a config dir, a key-file vault and accounts at one devserver.
struct Home {
    dir: tempfile::TempDir,
    issuer: String,
}

impl Home {
    fn new(issuer: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config/providers")).unwrap();
        authdeck::vault::generate_key_file(&dir.path().join("vault.key")).unwrap();
        Home {
            dir,
            issuer: issuer.to_owned(),
        }
    }

    /// Adds account `name` (an `oidc` account at the devserver) with `extra` TOML lines.
    fn account(&self, name: &str, extra: &str) {
        let text = format!(
            "extends = \"oidc\"\nissuer = \"{}\"\nclient_id = \"demo-public\"\n\
             scopes = [\"openid\", \"email\", \"offline_access\"]\n{extra}",
            self.issuer
        );
        std::fs::write(self.path(&format!("config/providers/{name}.toml")), text).unwrap();
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `program` with this home's environment only.
    fn program(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AUTHDECK_CONFIG_DIR", self.path("config"))
            .env("AUTHDECK_VAULT", self.path("vault.bin"))
            .env("AUTHDECK_KEY_FILE", self.path("vault.key"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null());
        c
    }

    fn authdeck(&self, args: &[&str]) -> Command {
        let mut c = self.program(crate::support::bin());
        c.args(args);
        c
    }

    fn login(&self, name: &str) {
        paste_login(self.authdeck(&["login", name, "--mode", "paste"]));
    }

    /// `git ARGS` with authdeck as the only credential helper and no prompt.
    fn git(&self, dir: &Path, args: &[&str]) -> Output {
        let helper = format!("!'{}' git-credential", crate::support::bin().display());
        let mut c = self.program("git");
        c.current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "false")
            .args(["-c", "credential.helper=", "-c"])
            .arg(format!("credential.helper={helper}"))
            .args(args);
        c.output().unwrap()
    }

    /// `authdeck git-credential OP` with `request` on stdin.
    fn credential(&self, op: &str, request: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .authdeck(&["git-credential", op])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // An oversize request is refused before it is read whole: the pipe may break.
        let _ = child.stdin.take().unwrap().write_all(request.as_bytes());
        crate::support::wait_with_timeout(child, Duration::from_secs(20))
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn short_lived() -> DevServerConfig {
    DevServerConfig {
        access_token_ttl: Duration::from_secs(4),
        ..DevServerConfig::default()
    }
}

fn require(program: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{program} is not installed: .ci/run installs it (see CONTRIBUTING.md)"
    );
}

/// GIT-1..4: git clones with a token from authdeck; once the token is due, the next fetch
/// gets a refreshed one with no prompt; the server saw only tokens the devserver honours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_clones_and_fetches_through_the_credential_helper_with_a_refresh() {
    require("git");
    let srv = DevServer::start(short_lived()).await.unwrap();
    let userinfo = srv.url("/userinfo");
    let home = Home::new(&srv.issuer());
    let (stats, srv) = blocking(move || {
        let repos = home.path("repos");
        std::fs::create_dir_all(&repos).unwrap();
        git_http::make_repo(&repos, "project", "one\n");
        let git = GitServer::start(&repos, userinfo);
        let prefix = git.url("");
        home.account(
            "forge",
            &format!(
                "git_urls = [\"{}\"]\ngit_username = \"bot\"\n",
                prefix.trim_end_matches('/')
            ),
        );
        home.account("other", "git_urls = [\"https://elsewhere.example\"]\n");
        home.login("forge");

        let clone = home.git(
            home.dir.path(),
            &["clone", "-q", &git.url("project.git"), "work"],
        );
        assert!(clone.status.success(), "clone: {}", stderr(&clone));
        let readme = std::fs::read_to_string(home.path("work/README")).unwrap();
        assert_eq!(readme, "one\n");
        assert_eq!(git.seen().tokens.len(), 1, "{:?}", git.seen());
        assert_eq!(git.seen().usernames, vec!["bot".to_string()]);

        // Past the refresh margin of a 4 s token (EXP-4: half its lifetime).
        git_http::push_commit(&repos, "project", "two\n");
        std::thread::sleep(Duration::from_millis(2500));
        let fetch = home.git(&home.path("work"), &["pull", "-q", "--ff-only"]);
        assert!(fetch.status.success(), "pull: {}", stderr(&fetch));
        assert_eq!(
            std::fs::read_to_string(home.path("work/README")).unwrap(),
            "two\n"
        );
        let seen = git.seen();
        assert_eq!(
            seen.tokens.len(),
            2,
            "a refreshed token on the fetch: {seen:?}"
        );
        (seen, srv)
    })
    .await;
    assert!(srv.stats().refreshes >= 1, "the fetch refreshed");
    assert!(
        stats.unauthorized >= 1,
        "git asks without a credential first"
    );
}

/// GIT-1, GIT-2 through the account index: once the files have settled, `git-credential get`
/// answers from the index beside the vault (as `token` does) and git clones with that token;
/// an edited `git_urls` is honoured by the very next request, so git gets nothing for a remote
/// the account no longer names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_1_credential_from_the_account_index_honours_an_edited_git_url_at_once() {
    require("git");
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let userinfo = srv.url("/userinfo");
    let home = Home::new(&srv.issuer());
    blocking(move || {
        let repos = home.path("repos");
        std::fs::create_dir_all(&repos).unwrap();
        git_http::make_repo(&repos, "project", "one\n");
        let git = GitServer::start(&repos, userinfo);
        let prefix = git.url("");
        let forge = |url: &str| format!("git_urls = [\"{url}\"]\ngit_username = \"bot\"\n");
        home.account("forge", &forge(prefix.trim_end_matches('/')));
        home.account("other", "git_urls = [\"https://elsewhere.example\"]\n");
        home.login("forge");
        // Older than the racy window: this request writes the index the next ones answer from.
        std::thread::sleep(authdeck::provider::index::RACY + Duration::from_millis(300));
        let host = prefix
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let req = format!("protocol=http\nhost={host}\npath=project.git\n\n");
        let first = home.credential("get", &req);
        assert!(
            stdout(&first).contains("username=bot\n"),
            "{}",
            stderr(&first)
        );
        let index = authdeck::app::export::index_path(&home.path("vault.bin"));
        let text = std::fs::read_to_string(&index).expect("the account index");
        assert!(text.contains(&host), "the index keeps git_urls: {text}");
        let token = stdout(&first)
            .lines()
            .find_map(|l| l.strip_prefix("password=").map(str::to_owned))
            .unwrap();
        assert!(!text.contains(&token), "no token in the index");

        let clone = home.git(
            home.dir.path(),
            &["clone", "-q", &git.url("project.git"), "work"],
        );
        assert!(clone.status.success(), "clone: {}", stderr(&clone));
        assert_eq!(git.seen().usernames, vec!["bot".to_string()]);
        assert_eq!(git.seen().tokens.len(), 1, "{:?}", git.seen());

        // The account now names another forge: at once, no credential for this one.
        home.account("forge", &forge("https://forge.example"));
        let after = home.credential("get", &req);
        assert_eq!(stdout(&after), "", "{}", stderr(&after));
        let fetch = home.git(&home.path("work"), &["fetch", "-q"]);
        assert!(
            !fetch.status.success(),
            "git must get no token for a remote the account no longer names"
        );
        let moved = home.credential("get", "protocol=https\nhost=forge.example\n\n");
        assert!(stdout(&moved).contains("password="), "{}", stderr(&moved));
    })
    .await;
}

/// MACH-1 with no vault yet: a machine account's first token creates the vault with the key
/// the environment names, as a first login does — a passphrase vault from
/// `AUTHDECK_PASSPHRASE_FILE` — and the next call is served from it. With no key at all and no
/// terminal, the command fails with one line saying how to give one, and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mach_1_first_machine_token_creates_a_passphrase_vault_like_a_first_login() {
    use authdeck::devserver::DevClient;
    use authdeck::oauth::AuthMethod;
    let srv = DevServer::start(DevServerConfig {
        clients: vec![DevClient::confidential(
            "svc",
            "svc-secret",
            AuthMethod::Basic,
        )],
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let issuer = srv.issuer();
    let srv = blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("config/providers");
        std::fs::create_dir_all(&providers).unwrap();
        std::fs::write(
            providers.join("svc.toml"),
            format!(
                "extends = \"oidc\"\nissuer = \"{issuer}\"\ntoken_endpoint = \"{issuer}/token\"\n\
                 client_id = \"svc\"\nclient_auth = \"basic\"\nclient_secret_env = \"SVC_SECRET\"\n\
                 grant = \"client_credentials\"\nscopes = [\"api\"]\n"
            ),
        )
        .unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "correct horse battery staple\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let vault = dir.path().join("vault.bin");
        let run = |with_pass: bool| {
            let mut c = Command::new(crate::support::bin());
            c.args(["token", "svc"])
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", dir.path())
                .env("AUTHDECK_CONFIG_DIR", dir.path().join("config"))
                .env("AUTHDECK_VAULT", &vault)
                .env("AUTHDECK_AGENT", "off")
                .env("SVC_SECRET", "svc-secret")
                .env("NO_PROXY", "127.0.0.1,localhost")
                .stdin(Stdio::null());
            if with_pass {
                c.env("AUTHDECK_PASSPHRASE_FILE", &pass);
            }
            c.output().unwrap()
        };
        let refused = run(false);
        assert!(!refused.status.success(), "no key: {}", stdout(&refused));
        assert_eq!(stdout(&refused), "");
        let err = stderr(&refused);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains("AUTHDECK_PASSPHRASE"), "says how: {err}");
        assert!(!vault.exists(), "nothing created without a key");

        let first = run(true);
        assert!(first.status.success(), "{}", stderr(&first));
        let token = stdout(&first).trim().to_owned();
        assert!(!token.is_empty());
        let header = std::fs::read(&vault).expect("the first token created the vault");
        assert_eq!(header[10], 1, "a passphrase vault (key kind 1)");
        let again = run(true);
        assert!(again.status.success(), "{}", stderr(&again));
        assert_eq!(stdout(&again).trim(), token, "served from the new vault");
        srv
    })
    .await;
    // The refused call fetched a token it could not keep (the vault's key is resolved when the
    // first save creates it); the second call fetched the one the third was served from.
    assert_eq!(srv.stats().client_credentials, 2);
}

/// GIT-3: no match, an unknown operation and a malformed request all print nothing (git falls
/// through to its next helper) and exit 0; `store` keeps nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_credential_falls_through_and_never_prints_a_secret() {
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let home = Home::new(&srv.issuer());
    blocking(move || {
        home.account("forge", "git_urls = [\"https://git.example.com/group\"]\n");
        home.login("forge");
        for (op, req) in [
            ("get", "protocol=https\nhost=unknown.example.com\n\n"),
            (
                "get",
                "protocol=https\nhost=git.example.com\npath=groupie/x.git\n\n",
            ),
            ("get", "protocol=https\nhost=git.example.com\n\n"),
            ("get", "protocol=https\nhost\n"),
            ("get", "host=git.example.com\0\n"),
            ("get", &format!("host={}\n", "x".repeat(70_000))),
            (
                "store",
                "protocol=https\nhost=git.example.com\npassword=abc\n\n",
            ),
            ("frobnicate", "protocol=https\nhost=git.example.com\n\n"),
        ] {
            let out = home.credential(op, req);
            assert_eq!(out.status.code(), Some(0), "{op}: {}", stderr(&out));
            assert_eq!(stdout(&out), "", "{op} {req:.60}: nothing on stdout");
        }
        let out = home.credential(
            "get",
            "protocol=https\nhost=git.example.com\npath=group/x.git\n\n",
        );
        assert!(stdout(&out).contains("password="), "{}", stderr(&out));
        assert!(stdout(&out).contains("username=oauth2\n"));
        assert!(stdout(&out).contains("password_expiry_utc="));
    })
    .await;
}

/// GIT-4: `erase` of the current token marks it stale, so the next `get` refreshes; the
/// refresh token survives; erasing a token that is no longer current changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_credential_erase_marks_stale_and_keeps_the_refresh_token() {
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let home = Home::new(&srv.issuer());
    let srv = blocking(move || {
        home.account("forge", "git_urls = [\"https://git.example.com\"]\n");
        home.login("forge");
        let req = "protocol=https\nhost=git.example.com\n\n";
        let password = |out: &Output| {
            stdout(out)
                .lines()
                .find_map(|l| l.strip_prefix("password=").map(str::to_owned))
                .unwrap()
        };
        let first = password(&home.credential("get", req));
        assert_eq!(
            password(&home.credential("get", req)),
            first,
            "valid: no refresh"
        );
        let erase = home.credential(
            "erase",
            &format!("protocol=https\nhost=git.example.com\npassword={first}\n\n"),
        );
        assert_eq!(erase.status.code(), Some(0), "{}", stderr(&erase));
        let second = password(&home.credential("get", req));
        assert_ne!(second, first, "erase made the next get refresh");
        // A stale erase (the old token) leaves the new one alone.
        home.credential(
            "erase",
            &format!("protocol=https\nhost=git.example.com\npassword={first}\n\n"),
        );
        assert_eq!(password(&home.credential("get", req)), second);
        let status = home.authdeck(&["status", "--json"]).output().unwrap();
        assert!(
            !stdout(&status).contains("needs_login"),
            "{}",
            stdout(&status)
        );
        srv
    })
    .await;
    assert_eq!(srv.stats().refreshes, 1);
}

/// KUBE-1/2: kubectl lists namespaces at an API server that accepts only a live devserver
/// token, with authdeck as its exec plugin, in both ExecCredential versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_namespaces_through_kube_credential() {
    require("kubectl");
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let userinfo = srv.url("/userinfo");
    let home = Home::new(&srv.issuer());
    blocking(move || {
        home.account("cluster", "");
        home.login("cluster");
        let api = KubeApi::start("authdeck-ok", move |t| token_is_live(&userinfo, t));
        for version in ["v1", "v1beta1"] {
            let kubeconfig = home.path(&format!("kubeconfig-{version}"));
            std::fs::write(
                &kubeconfig,
                format!(
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n\
                     \x20   certificate-authority-data: {}\n\
                     contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
                     current-context: c\nusers:\n- name: u\n  user:\n    exec:\n\
                     \x20     apiVersion: client.authentication.k8s.io/{version}\n\
                     \x20     command: {}\n      args: [kube-credential, cluster]\n\
                     \x20     interactiveMode: Never\n",
                    api.url(),
                    api.ca_data(),
                    crate::support::bin().display()
                ),
            )
            .unwrap();
            let out = home
                .program("kubectl")
                .env("KUBECONFIG", &kubeconfig)
                .args(["get", "namespaces", "-o", "name"])
                .output()
                .unwrap();
            assert!(out.status.success(), "kubectl ({version}): {}", stderr(&out));
            assert_eq!(stdout(&out).trim(), "namespace/authdeck-ok");
        }
        assert_eq!(api.seen().accepted.len(), 1, "one token, cached by kubectl or not");
    })
    .await;
}

/// KUBE-1: the ExecCredential answers in the version kubectl asks for, with an RFC 3339
/// expiry; an unknown version is an error, not a guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_credential_answers_in_the_requested_version() {
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let home = Home::new(&srv.issuer());
    blocking(move || {
        home.account("cluster", "");
        home.login("cluster");
        let run = |info: &str, extra: &[&str]| {
            let mut args = vec!["kube-credential", "cluster"];
            args.extend(extra);
            home.authdeck(&args)
                .env("KUBERNETES_EXEC_INFO", info)
                .output()
                .unwrap()
        };
        let out = run(
            r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":false}}"#,
            &[],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1beta1");
        let ts = v["status"]["expirationTimestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");
        let out = run(r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#, &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("v1alpha1"));
        assert!(stdout(&out).is_empty());
        // --id-token: the devserver's signed ID token, with its own expiry.
        let out = run(r#"{"apiVersion":"client.authentication.k8s.io/v1"}"#, &["--id-token"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"]["token"].as_str().unwrap().split('.').count(), 3);
    })
    .await;
}

/// SASL-1: msmtp sends a message through an SMTP server that accepts XOAUTH2 only with a live
/// devserver token, the token coming from `authdeck token` in `passwordeval`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msmtp_sends_mail_with_xoauth2_from_authdeck_token() {
    require("msmtp");
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let userinfo = srv.url("/userinfo");
    let home = Home::new(&srv.issuer());
    blocking(move || {
        home.account("mail", "");
        home.login("mail");
        let smtp = SmtpServer::start(userinfo);
        let rc = home.path("msmtprc");
        std::fs::write(
            &rc,
            format!(
                "account default\nhost 127.0.0.1\nport {}\ntls off\nauth xoauth2\n\
                 user someone@example.com\nfrom someone@example.com\n\
                 passwordeval \"'{}' token mail\"\n",
                smtp.port,
                crate::support::bin().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        use std::io::Write;
        let mut child = home
            .program("msmtp")
            .args(["-C", rc.to_str().unwrap(), "to@example.com"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"Subject: hello\n\nsent through authdeck\n")
            .unwrap();
        let out = crate::support::wait_with_timeout(child, Duration::from_secs(30));
        assert!(out.status.success(), "msmtp: {}", stderr(&out));
        let mailbox = smtp.mailbox();
        assert_eq!(mailbox.users, vec!["someone@example.com".to_string()]);
        assert_eq!(mailbox.refused, 0);
        assert!(mailbox.messages[0].contains("sent through authdeck"));
    })
    .await;
}

/// SASL-1: `token --format xoauth2|oauthbearer` prints the base64 SASL message the SMTP server
/// accepts, with the id_token's e-mail as the user unless `--user` says otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_sasl_strings() {
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let home = Home::new(&srv.issuer());
    blocking(move || {
        home.account("mail", "");
        home.login("mail");
        let raw = home.authdeck(&["token", "mail"]).output().unwrap();
        let token = stdout(&raw).trim().to_owned();
        for (format, user, expect_user) in [
            ("xoauth2", None, "demo@authdeck.invalid"),
            ("oauthbearer", Some("ops@example.com"), "ops@example.com"),
        ] {
            let mut args = vec!["token", "mail", "--format", format];
            if let Some(u) = user {
                args.extend(["--user", u]);
            }
            let out = home.authdeck(&args).output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            let (u, t) = crate::smtp::parse_sasl(stdout(&out).trim()).unwrap();
            assert_eq!((u.as_str(), t.as_str()), (expect_user, token.as_str()));
        }
    })
    .await;
}

/// Completion: bash, loading `authdeck completions bash`, completes account names from the
/// config dir as it is at TAB time, and command names.
#[test]
fn bash_completes_account_names_dynamically() {
    let home = Home::new("https://issuer.example");
    home.account("work-google", "");
    home.account("personal", "");
    let script = home.authdeck(&["completions", "bash"]).output().unwrap();
    assert!(script.status.success(), "{}", stderr(&script));
    std::fs::write(home.path("complete.bash"), &script.stdout).unwrap();
    let complete = |words: &str| {
        let probe = format!(
            "source '{}'\nCOMP_WORDS=({words})\nCOMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
             COMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n\
             _clap_complete_authdeck authdeck \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
            home.path("complete.bash").display()
        );
        let out = home.program("bash").arg("-c").arg(probe).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let mut words: Vec<String> = stdout(&out)
            .lines()
            .map(str::trim)
            .filter(|w| !w.starts_with('-'))
            .map(str::to_owned)
            .collect();
        words.sort();
        words
    };
    assert_eq!(
        complete("authdeck token ''"),
        vec!["personal", "work-google"]
    );
    assert_eq!(complete("authdeck kube-credential w"), vec!["work-google"]);
    home.account("work-gitlab", "");
    assert_eq!(
        complete("authdeck export work-"),
        vec!["work-gitlab", "work-google"]
    );
    assert!(complete("authdeck ex").contains(&"exec".to_string()));
}

/// The man page comes from the same clap definition: every command is in it.
#[test]
fn man_page_lists_every_command() {
    let home = Home::new("https://issuer.example");
    let out = home.authdeck(&["man"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH authdeck"),
        "{page:.200}"
    );
    for cmd in [
        "git\\-credential",
        "kube\\-credential",
        "export",
        "completions",
    ] {
        assert!(page.contains(cmd), "{cmd} missing from the man page");
    }
    let dir = home.path("man1");
    let out = home
        .authdeck(&["man", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.join("authdeck.1").exists());
    assert!(dir.join("authdeck-token.1").exists());
}

/// The scope the devserver granted to an access token (its `/api/…` echoes it).
fn granted_scope(srv_api: &str, token: &str) -> String {
    let v: serde_json::Value = reqwest::blocking::Client::new()
        .get(srv_api)
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["scope"].as_str().unwrap_or_default().to_owned()
}

/// REF-9: `token --scope` and `--resource` get narrower tokens with the refresh token, kept
/// beside the main token and reused while valid; a refusal leaves the account as it was; the
/// rotated refresh token is kept, so the main token still refreshes; `status` lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowed_tokens_per_scope_and_resource() {
    let srv = DevServer::start(DevServerConfig {
        resources: vec!["https://api.example.com/".into()],
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let api = srv.url("/api/echo");
    let home = Home::new(&srv.issuer());
    let srv = blocking(move || {
        home.account("work", "");
        home.login("work");
        let token = |args: &[&str]| {
            let mut all = vec!["token", "work"];
            all.extend(args);
            home.authdeck(&all).output().unwrap()
        };
        let main = stdout(&token(&[])).trim().to_owned();
        let out = token(&["--scope", "email openid"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let narrow = stdout(&out).trim().to_owned();
        assert_ne!(narrow, main);
        assert_eq!(granted_scope(&api, &narrow), "email openid");
        assert_eq!(
            stdout(&token(&["--scope", "openid email"])).trim(),
            narrow,
            "kept and reused"
        );
        assert_eq!(
            stdout(&token(&[])).trim(),
            main,
            "the main token is untouched"
        );

        // A scope outside the grant: a clear error, nothing changed.
        let out = token(&["--scope", "admin"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("invalid_scope"), "{}", stderr(&out));
        assert_eq!(stdout(&token(&[])).trim(), main);

        let out = token(&["--resource", "https://api.example.com/"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = token(&["--resource", "https://elsewhere.example.com/"]);
        assert!(stderr(&out).contains("invalid_target"), "{}", stderr(&out));
        let out = token(&["--resource", "graph"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("no resource \"graph\""),
            "{}",
            stderr(&out)
        );
        let out = token(&[
            "--scope",
            "openid",
            "--resource",
            "https://api.example.com/",
        ]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "conflicting options are a usage error"
        );

        // The refresh token rotated twice on the way; the main token still refreshes.
        let out = home.authdeck(&["refresh", "work"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));

        let status = home.authdeck(&["status"]).output().unwrap();
        assert!(
            stdout(&status).contains("+ scope=email openid"),
            "{}",
            stdout(&status)
        );
        let json = home.authdeck(&["status", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(v[0]["narrowed"].as_array().unwrap().len(), 2);

        // export and exec take the same options.
        let out = home
            .authdeck(&[
                "export",
                "work",
                "--scope",
                "openid email",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["WORK_ACCESS_TOKEN"], narrow.as_str());
        let out = home
            .authdeck(&[
                "exec",
                "work",
                "--scope",
                "openid email",
                "--",
                "sh",
                "-c",
                "printf %s \"$WORK_ACCESS_TOKEN\"",
            ])
            .output()
            .unwrap();
        assert_eq!(stdout(&out), narrow);
        // So does request: the API sees the narrowed token's scope, not the main token's.
        let out = home
            .authdeck(&["request", "work", &api, "--scope", "openid email"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["scope"], "email openid", "{v}");
        let out = home.authdeck(&["request", "work", &api]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_ne!(
            v["scope"], "email openid",
            "without options: the main token"
        );
        srv
    })
    .await;
    // One refresh per narrowed token obtained, one for `refresh work`.
    assert_eq!(srv.stats().refreshes, 3);
}

/// MACH-1: a machine account (`grant = "client_credentials"`) fetches its token with the
/// client's own credentials (Basic and post), caches it until due, makes one request for five
/// processes asking at once, needs no login, and `status` shows it as a machine account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_accounts_fetch_their_own_tokens() {
    use authdeck::devserver::DevClient;
    use authdeck::oauth::AuthMethod;
    let srv = DevServer::start(DevServerConfig {
        clients: vec![
            DevClient::public("demo-public"),
            DevClient::confidential("svc-basic", "s3cret-b", AuthMethod::Basic),
            DevClient::confidential("svc-post", "s3cret-p", AuthMethod::Post),
        ],
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let api = srv.url("/api/whoami");
    let issuer = srv.issuer();
    let home = Home::new(&issuer);
    let srv = blocking(move || {
        for (name, id, auth, var) in [
            ("svc", "svc-basic", "basic", "SVC_B"),
            ("svc2", "svc-post", "post", "SVC_P"),
        ] {
            std::fs::write(
                home.path(&format!("config/providers/{name}.toml")),
                format!(
                    "extends = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"{id}\"\n\
                     client_auth = \"{auth}\"\nclient_secret_env = \"{var}\"\n\
                     grant = \"client_credentials\"\nscopes = [\"api\"]\n"
                ),
            )
            .unwrap();
        }
        let run = |args: &[&str]| {
            home.authdeck(args)
                .env("SVC_B", "s3cret-b")
                .env("SVC_P", "s3cret-p")
                .output()
                .unwrap()
        };
        let status = run(&["status"]);
        assert!(
            stdout(&status).contains("machine (no token yet)"),
            "{}",
            stdout(&status)
        );
        assert!(!stdout(&status).contains("needs login"));

        // Five processes at once on an empty vault: one token request.
        let children: Vec<_> = (0..5)
            .map(|_| {
                home.authdeck(&["token", "svc"])
                    .env("SVC_B", "s3cret-b")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let tokens: Vec<String> = children
            .into_iter()
            .map(|c| {
                let out = crate::support::wait_with_timeout(c, Duration::from_secs(30));
                assert!(out.status.success(), "{}", stderr(&out));
                stdout(&out).trim().to_owned()
            })
            .collect();
        assert!(tokens.iter().all(|t| t == &tokens[0]), "{tokens:?}");
        let who: serde_json::Value = reqwest::blocking::Client::new()
            .get(&api)
            .bearer_auth(&tokens[0])
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(who["client_id"], "svc-basic");

        let out = run(&["token", "svc2"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            stdout(&run(&["token", "svc2"])),
            stdout(&out),
            "cached until due"
        );

        let out = run(&["login", "svc"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("machine account"), "{}", stderr(&out));
        let status = run(&["status"]);
        assert!(
            stdout(&status).contains("valid (machine)"),
            "{}",
            stdout(&status)
        );

        // Without the secret: a clear error naming the variable, no request.
        let out = home.authdeck(&["token", "svc2"]).output().unwrap();
        assert_eq!(
            stdout(&out),
            stdout(&run(&["token", "svc2"])),
            "stored token still served"
        );
        srv
    })
    .await;
    assert_eq!(srv.stats().client_credentials, 2, "one per account");
}

/// MACH-1: a machine account without a secret, or with `client_auth = "none"`, is refused by
/// validation with the field named.
#[test]
fn machine_account_needs_a_secret() {
    let home = Home::new("https://issuer.example");
    let file = home.path("config/providers/svc.toml");
    std::fs::write(
        &file,
        "extends = \"oidc\"\nissuer = \"https://issuer.example\"\nclient_id = \"svc\"\n\
         client_auth = \"none\"\ngrant = \"client_credentials\"\n",
    )
    .unwrap();
    let out = home
        .authdeck(&["providers", "check", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out) + &stdout(&out);
    assert!(err.contains("needs the client's secret"), "{err}");
    assert!(err.contains("client_auth = \"none\""), "{err}");
    assert!(err.contains("svc.toml:5:"), "{err}");
}

/// A private key made by `openssl genpkey` (`ec`: P-256, `rsa`: 2048 bits), PKCS#8, mode 0600.
fn openssl_key(dir: &std::path::Path, kind: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("{kind}.pem"));
    let args: &[&str] = match kind {
        "ec" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        _ => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    };
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .arg("-out")
        .arg(&path)
        .output()
        .expect("these tests need the openssl command (Debian: openssl; .ci/run installs it)");
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// MACH-2: machine accounts authenticate with `private_key_jwt`, ES256 and RS256 keys from
/// 0600 PEM files, and the devserver checks the assertion's signature and claims; a key file
/// others may read, a missing one, or a key the server does not know each fail clearly, and
/// the first two before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mach_2_private_key_jwt_machine_accounts() {
    use authdeck::devserver::DevClient;
    use authdeck::oauth::client_assertion::ClientKey;
    let keys = tempfile::tempdir().unwrap();
    let (ec, rsa) = (
        openssl_key(keys.path(), "ec"),
        openssl_key(keys.path(), "rsa"),
    );
    let public = |p: &std::path::Path| ClientKey::load(p, None).unwrap();
    let srv = DevServer::start(DevServerConfig {
        clients: vec![
            DevClient::public("demo-public"),
            DevClient::private_key_jwt("svc-ec", &public(&ec)),
            DevClient::private_key_jwt("svc-rsa", &public(&rsa)),
        ],
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let api = srv.url("/api/whoami");
    let issuer = srv.issuer();
    let home = Home::new(&issuer);
    let open = keys.path().join("open.pem");
    std::fs::copy(&ec, &open).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let missing = keys.path().join("missing.pem");
    let srv = blocking(move || {
        for (name, id, key) in [
            ("svc-ec", "svc-ec", &ec),
            ("svc-rsa", "svc-rsa", &rsa),
            ("svc-open", "svc-ec", &open),
            ("svc-missing", "svc-ec", &missing),
            ("svc-wrong", "svc-ec", &rsa),
        ] {
            std::fs::write(
                home.path(&format!("config/providers/{name}.toml")),
                format!(
                    "extends = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"{id}\"\n\
                     client_auth = \"private_key_jwt\"\nclient_key_file = \"{}\"\n\
                     client_key_id = \"k1\"\ngrant = \"client_credentials\"\nscopes = [\"api\"]\n",
                    key.display()
                ),
            )
            .unwrap();
        }
        for name in ["svc-ec", "svc-rsa"] {
            let out = home.authdeck(&["token", name]).output().unwrap();
            assert!(out.status.success(), "{name}: {}", stderr(&out));
            let who: serde_json::Value = reqwest::blocking::Client::new()
                .get(&api)
                .bearer_auth(stdout(&out).trim())
                .send()
                .unwrap()
                .json()
                .unwrap();
            assert_eq!(who["client_id"], name);
        }
        let out = home.authdeck(&["token", "svc-open"]).output().unwrap();
        assert_ne!(out.status.code(), Some(0));
        let err = stderr(&out);
        assert!(
            err.contains("chmod 600") && err.contains("open.pem"),
            "{err}"
        );
        let out = home.authdeck(&["token", "svc-missing"]).output().unwrap();
        assert_ne!(out.status.code(), Some(0));
        assert!(stderr(&out).contains("missing.pem"), "{}", stderr(&out));
        let out = home.authdeck(&["token", "svc-wrong"]).output().unwrap();
        assert_ne!(out.status.code(), Some(0));
        assert!(stderr(&out).contains("invalid_client"), "{}", stderr(&out));
        assert!(stdout(&out).is_empty());
        srv
    })
    .await;
    let stats = srv.stats();
    assert_eq!(stats.client_credentials, 2, "one per working account");
    assert_eq!(stats.last_client_auth.as_deref(), Some("private_key_jwt"));
}
