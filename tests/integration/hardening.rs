//! The security review's findings, each driven through the real binary where a user meets it:
//! process hardening, private lock files, the passphrase file rule, the `.bak` after logout, and
//! the rollback warning. Rule IDs are defined in docs/protocol.md (HARD-…).

use crate::support::stderr;
use authdeck::secret::{AccessToken, RefreshToken};
use authdeck::vault::{KeySource, Record, StoredState, Vault, VaultError};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A config dir with one account `demo` at `issuer`, a key-file vault, and a private HOME.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new(issuer: &str, extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let providers = dir.path().join("config/providers");
        std::fs::create_dir_all(&providers).unwrap();
        std::fs::write(
            providers.join("demo.toml"),
            format!(
                "extends = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"demo-public\"\n\
                 scopes = [\"openid\", \"email\", \"offline_access\"]\n{extra}"
            ),
        )
        .unwrap();
        authdeck::vault::generate_key_file(&dir.path().join("vault.key")).unwrap();
        Env { dir }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `program` with this environment and nothing else from the test's.
    pub fn program(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
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

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.program(crate::support::bin());
        c.args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn vault(&self) -> Vault {
        Vault::open(
            self.path("vault.bin"),
            KeySource::KeyFile(self.path("vault.key")),
        )
        .unwrap()
    }

    /// Puts a logged-in record for `name` straight into the vault.
    pub fn seed(&self, name: &str, access: &str, refresh: Option<&str>) {
        self.vault()
            .update(|records| {
                records.insert(
                    name.to_string(),
                    Record {
                        provider: "oidc".into(),
                        access_token: Some(AccessToken::new(access)),
                        refresh_token: refresh.map(RefreshToken::new),
                        token_type: Some("Bearer".into()),
                        state: StoredState::Valid,
                        ..Record::default()
                    },
                );
                Ok::<_, VaultError>(())
            })
            .unwrap();
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// HARD-1: the running binary is non-dumpable and its core limit is 0. A non-dumpable
/// process's `/proc/PID/status` belongs to root, so the test runs the binary as another user (nobody
/// when the test is root) and watches the owner change; `/proc/PID/limits` shows the limit.
#[test]
fn hard1_the_binary_is_not_dumpable_and_writes_no_core() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    // SAFETY: plain queries.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // `providers check FIFO` blocks opening a FIFO nobody writes to, without touching a vault.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let fifo = dir.path().join("account.toml");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut cmd = Command::new(crate::support::bin());
    cmd.arg("providers")
        .arg("check")
        .arg(&fifo)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let runs_as = if uid == 0 {
        cmd.uid(65534).gid(65534);
        65534
    } else {
        let _ = gid;
        uid
    };
    let mut child = cmd.spawn().unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", child.id()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut owner = runs_as;
    while Instant::now() < deadline {
        // After exec the process is running our binary; give it time to reach `main`.
        owner = std::fs::metadata(proc_dir.join("status")).unwrap().uid();
        if owner == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let limits = std::fs::read_to_string(proc_dir.join("limits")).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(owner, 0, "the process stayed dumpable (owner {owner})");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let soft = core.split_whitespace().nth(4).unwrap();
    assert_eq!(soft, "0", "{core}");
}

/// HARD-5: the per-account refresh lock and its directory are 0600/0700 even under umask 000.
#[test]
fn hard5_account_lock_files_are_private_under_umask_000() {
    let env = Env::new("https://as.example", "");
    env.seed("demo", "tok-demo", None);
    let bin = crate::support::bin();
    let out = env
        .program("sh")
        .arg("-c")
        .arg(format!("umask 000; exec '{}' refresh demo", bin.display()))
        .output()
        .unwrap();
    // No refresh token: the token is kept, but the lock was taken first.
    let locks = env.path("locks");
    let lock = locks.join("demo.lock");
    assert!(lock.exists(), "{}", stderr(&out));
    assert_eq!(mode(&locks), 0o700);
    assert_eq!(mode(&lock), 0o600);
}

/// HARD-6: a passphrase file that others can read is refused with a clear message and no
/// secret in it; a private one works.
#[test]
fn hard6_a_readable_passphrase_file_is_refused() {
    let env = Env::new("https://as.example", "");
    let vault = env.path("pw-vault.bin");
    let pw = env.path("pw");
    std::fs::write(&pw, "correct horse battery\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = || {
        env.cmd(&["vault", "init"])
            .env("AUTHDECK_VAULT", &vault)
            .env_remove("AUTHDECK_KEY_FILE")
            .env("AUTHDECK_PASSPHRASE_FILE", &pw)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("correct horse"));
    assert!(!vault.exists());
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// HARD-7: after `logout`, the account's tokens are in neither the vault nor its `.bak`; the
/// other accounts stay in both.
#[test]
fn hard7_logout_purges_the_account_from_the_backup() {
    let env = Env::new("https://as.example", "");
    std::fs::write(
        env.path("config/providers/other.toml"),
        "extends = \"oidc\"\nissuer = \"https://as.example\"\nclient_id = \"x\"\n",
    )
    .unwrap();
    env.seed("demo", "at-demo", Some("rt-demo-secret"));
    env.seed("other", "at-other", Some("rt-other"));
    let out = env.run(&["logout", "demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bak = Vault::open(
        env.path("vault.bin.bak"),
        KeySource::KeyFile(env.path("vault.key")),
    )
    .unwrap()
    .read()
    .unwrap();
    assert!(!bak.contains_key("demo"), "logout left the tokens in .bak");
    assert!(bak.contains_key("other"));
    assert!(!env.vault().read().unwrap().contains_key("demo"));
}

/// HARD-8: a vault put back to an older copy (here: its own `.bak`) makes every command warn;
/// the next save clears it.
#[test]
fn hard8_a_rolled_back_vault_is_warned_about() {
    let env = Env::new("https://as.example", "");
    env.seed("demo", "at-1", None);
    env.seed("demo", "at-2", None);
    let out = env.run(&["status"]);
    assert!(!stderr(&out).contains("rolled back"), "{}", stderr(&out));
    std::fs::copy(env.path("vault.bin.bak"), env.path("vault.bin")).unwrap();
    let out = env.run(&["status"]);
    assert!(
        stderr(&out).contains("warning") && stderr(&out).contains("rolled back"),
        "{}",
        stderr(&out)
    );
    env.seed("demo", "at-3", None);
    let out = env.run(&["status"]);
    assert!(!stderr(&out).contains("rolled back"), "{}", stderr(&out));
}

/// HARD-8: the high-water mark, kept in the state directory, catches an old copy put back
/// without its `.bak` (the backup check alone cannot).
#[test]
fn hard8_the_high_water_mark_catches_an_old_copy() {
    let env = Env::new("https://as.example", "");
    std::fs::write(
        env.path("config/providers/other.toml"),
        "extends = \"oidc\"\nissuer = \"https://as.example\"\nclient_id = \"x\"\n",
    )
    .unwrap();
    env.seed("demo", "at-1", None);
    env.seed("other", "at-o", None);
    let old = std::fs::read(env.path("vault.bin")).unwrap();
    // A save through the binary raises the mark.
    let out = env.run(&["logout", "other"]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(env.path("vault.bin"), old).unwrap();
    std::fs::remove_file(env.path("vault.bin.bak")).unwrap();
    let out = env.run(&["status"]);
    assert!(
        stderr(&out).contains("below generation 3"),
        "{}",
        stderr(&out)
    );
}

/// HARD-2: `exec`'s command gets the token it asked for and none of the variables that
/// unlock the vault; the `$BROWSER` command of a browser login neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard2_children_never_see_the_vault_unlock_variables() {
    use authdeck::devserver::{DevServer, DevServerConfig};
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let env = Env::new(&srv.issuer(), "");
    tokio::task::spawn_blocking(move || {
        // exec: the child prints its whole environment.
        env.seed("demo", "tok-for-the-child", None);
        let pw = env.path("pw");
        std::fs::write(&pw, "unused\n").unwrap();
        let out = env
            .cmd(&["exec", "demo", "--", "env"])
            .env("AUTHDECK_PASSPHRASE", "pw-LEAKED-to-child")
            .env("AUTHDECK_PASSPHRASE_FILE", &pw)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let child_env = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(child_env.contains("DEMO_ACCESS_TOKEN=tok-for-the-child"));
        for var in [
            "AUTHDECK_PASSPHRASE=",
            "AUTHDECK_PASSPHRASE_FILE=",
            "AUTHDECK_KEY_FILE=",
        ] {
            assert!(!child_env.contains(var), "exec child saw {var}");
        }
        assert!(
            child_env.contains("AUTHDECK_VAULT="),
            "other variables pass"
        );

        // $BROWSER: the script records its environment and plays the browser.
        let env_file = env.path("browser-env.txt");
        let url_file = env.path("url.txt");
        let script = env.path("browser.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nenv > '{}'\nprintf %s \"$1\" > '{}'\n",
                env_file.display(),
                url_file.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let child = env
            .cmd(&["login", "demo", "--mode", "browser"])
            .env("BROWSER", &script)
            .env("AUTHDECK_PASSPHRASE", "pw-LEAKED-to-child")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&url_file).map_or(true, |u| u.is_empty()) {
            assert!(Instant::now() < deadline, "browser command never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        let target = std::fs::read_to_string(&url_file).unwrap();
        crate::support::open_like_a_browser(&target);
        let out = crate::support::wait_with_timeout(child, Duration::from_secs(20));
        assert!(out.status.success(), "{}", stderr(&out));
        let browser_env = std::fs::read_to_string(&env_file).unwrap();
        assert!(browser_env.contains("AUTHDECK_VAULT="));
        for var in ["AUTHDECK_PASSPHRASE=", "AUTHDECK_KEY_FILE="] {
            assert!(!browser_env.contains(var), "$BROWSER saw {var}");
        }
    })
    .await
    .unwrap();
}

/// HARD-11: a secret written as a bare number is refused by `providers check` and by `proxy`
/// without the value appearing in what they print.
#[test]
fn hard11_a_mistyped_secret_is_never_echoed() {
    let env = Env::new("https://as.example", "");
    let secret = "98765432101";
    let account = env.path("config/providers/leaky.toml");
    std::fs::write(
        &account,
        format!(
            "extends = \"oidc\"\nissuer = \"https://as.example\"\nclient_id = \"x\"\n\
             client_secret = {secret}\n"
        ),
    )
    .unwrap();
    let out = env
        .cmd(&["providers", "check"])
        .arg(&account)
        .output()
        .unwrap();
    let all = format!("{}{}", crate::support::stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("client_secret") || all.contains("value not shown"),
        "{all}"
    );
    assert!(
        !all.contains(secret),
        "providers check echoed the secret: {all}"
    );

    let proxy = env.path("proxy.toml");
    std::fs::write(
        &proxy,
        format!(
            "listen = \"127.0.0.1:0\"\n[clients.app]\ntoken_endpoint = \"https://as.example/token\"\n\
             client_id = \"x\"\nallow_inline_secret = true\nclient_secret = {secret}\n\
             redirect_uris = [\"http://127.0.0.1:1/cb\"]\nallowed_origins = [\"http://127.0.0.1:1\"]\n"
        ),
    )
    .unwrap();
    let child = env
        .cmd(&["proxy", "--config"])
        .arg(&proxy)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = crate::support::wait_with_timeout(child, Duration::from_secs(10));
    let all = format!("{}{}", crate::support::stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("value not shown"), "{all}");
    assert!(!all.contains(secret), "proxy echoed the secret: {all}");
}

/// AUTHZ-4: the devserver advertises `authorization_response_iss_parameter_supported` but
/// leaves `iss` out of the redirect: the loopback listener and paste mode both refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz4_a_redirect_without_the_advertised_iss_is_refused() {
    use authdeck::devserver::{DevServer, DevServerConfig, Hostile};
    let srv = DevServer::start(DevServerConfig {
        hostile: Hostile {
            omit_iss: true,
            ..Hostile::default()
        },
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let env = Env::new(&srv.issuer(), "");
    let srv = std::sync::Arc::new(srv);
    let stats = srv.clone();
    tokio::task::spawn_blocking(move || {
        for pasted in [true, false] {
            let mut child = env
                .cmd(&["login", "demo", "--mode", "paste"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut url = String::new();
            std::io::BufRead::read_line(&mut out, &mut url).unwrap();
            let location = crate::support::authorize_location(url.trim());
            assert!(!location.contains("iss="), "{location}");
            let mut stdin = child.stdin.take().unwrap();
            if pasted {
                std::io::Write::write_all(&mut stdin, format!("{location}\n").as_bytes()).unwrap();
            } else {
                // The browser reaches the loopback listener.
                let _ = reqwest::blocking::Client::builder()
                    .no_proxy()
                    .build()
                    .unwrap()
                    .get(&location)
                    .send();
            }
            let done = crate::support::wait_with_timeout(child, Duration::from_secs(20));
            drop(stdin);
            assert!(
                !done.status.success(),
                "pasted={pasted}: a redirect without iss was accepted"
            );
            assert!(stderr(&done).contains("iss"), "{}", stderr(&done));
            assert!(!env.vault().read().unwrap().contains_key("demo"));
        }
        assert_eq!(stats.stats().code_exchanges, 0, "no code was exchanged");
    })
    .await
    .unwrap();
}

/// HARD-10: logging in again as another user whose login brings no refresh token does not
/// keep the first user's refresh token or identity; the same user keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard10_a_new_login_does_not_inherit_another_users_refresh_token() {
    use authdeck::devserver::{DevServer, DevServerConfig, Hostile};
    let srv = std::sync::Arc::new(DevServer::start(DevServerConfig::default()).await.unwrap());
    let env = Env::new(&srv.issuer(), "");
    let s = srv.clone();
    tokio::task::spawn_blocking(move || {
        let login = || {
            crate::support::paste_login(env.cmd(&["login", "demo", "--mode", "paste"]));
        };
        s.set_hostile(Hostile {
            subject: Some("user-a".into()),
            email: Some("a@example.com".into()),
            ..Hostile::default()
        });
        login();
        let first = env.vault().read().unwrap()["demo"].clone();
        assert!(first.refresh_token.is_some());
        // The same user again, without a refresh token: the old one stays.
        s.set_hostile(Hostile {
            subject: Some("user-a".into()),
            email: Some("a@example.com".into()),
            omit_refresh_token: true,
            ..Hostile::default()
        });
        login();
        let again = env.vault().read().unwrap()["demo"].clone();
        assert_eq!(again.refresh_token, first.refresh_token);
        // Another user, no refresh token.
        s.set_hostile(Hostile {
            subject: Some("user-b".into()),
            email: Some("b@example.com".into()),
            omit_refresh_token: true,
            ..Hostile::default()
        });
        login();
        let b = env.vault().read().unwrap()["demo"].clone();
        assert_eq!(b.claims.email.as_deref(), Some("b@example.com"));
        assert!(
            b.refresh_token.is_none(),
            "B's record kept A's refresh token"
        );
        let before = s.stats().refreshes;
        let out = env.run(&["refresh", "demo"]);
        assert_eq!(
            s.stats().refreshes,
            before,
            "A's refresh token was sent: {}",
            stderr(&out)
        );
        // No ID token at all: no identity is shown.
        s.set_hostile(Hostile {
            omit_id_token: true,
            ..Hostile::default()
        });
        login();
        let anon = env.vault().read().unwrap()["demo"].clone();
        assert_eq!(anon.claims.email, None);
        let out = env.run(&["status"]);
        assert!(!crate::support::stdout(&out).contains("b@example.com"));
    })
    .await
    .unwrap();
}

/// HARD-13: under `ulimit -n 100`, 110 idle connections from one address neither starve
/// `/healthz` (asked from another loopback address) nor flood the log: that address gets a
/// share of the connections, the rest are closed at once, and the warning is throttled.
#[test]
fn hard13_idle_connections_from_one_address_do_not_starve_the_proxy() {
    use std::io::{BufRead, BufReader, Read};
    let env = Env::new("https://as.example", "");
    let config = env.path("proxy.toml");
    std::fs::write(
        &config,
        "[clients.app]\ntoken_endpoint = \"https://as.example/token\"\nclient_id = \"x\"\n\
         client_secret_env = \"APP_SECRET\"\nredirect_uris = [\"http://127.0.0.1:1/cb\"]\n\
         allowed_origins = [\"http://127.0.0.1:1\"]\n",
    )
    .unwrap();
    let mut child = env
        .program("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 100; exec '{}' proxy --config '{}' --listen 127.0.0.1:0",
            crate::support::bin().display(),
            config.display()
        ))
        .env("APP_SECRET", "s3cret")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr_pipe = child.stderr.take().unwrap();
    let child = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the proxy never said where it listens");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().to_owned();
        }
    };
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let idle: Vec<_> = (0..110)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // /healthz from another loopback address, with its own connection.
    let socket = socket2_connect_from("127.0.0.2", addr);
    let mut stream = socket.expect("cannot connect from 127.0.0.2");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "healthz starved: {reply:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    drop(idle);
    drop(child);
    let log = reader.join().unwrap();
    let warnings = log.iter().filter(|l| l.contains("WARN")).count();
    assert!(warnings <= 5, "{warnings} warnings: {log:#?}");
    assert!(
        log.iter().any(|l| l.contains("connection limit")),
        "{log:#?}"
    );
}

/// A TCP connection to `to` from the local address `from` (another loopback address).
fn socket2_connect_from(
    from: &str,
    to: std::net::SocketAddr,
) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    let from: std::net::Ipv4Addr = from.parse().unwrap();
    let std::net::SocketAddr::V4(to) = to else {
        panic!("IPv4 only");
    };
    // SAFETY: plain socket calls on a descriptor this function owns until it is wrapped.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let local = sockaddr(from, 0);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(fd, (&raw const local).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sockaddr(*to.ip(), to.port());
        if libc::connect(fd, (&raw const remote).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// HARD-4: a device answer with `expires_in` = 2^63 − 1 made `login --mode device` panic
/// (exit 101); now the lifetime is capped and the login completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard4_a_huge_device_expires_in_does_not_panic_the_cli() {
    use authdeck::devserver::{DevServer, DevServerConfig, Hostile};
    let srv = DevServer::start(DevServerConfig {
        auto_approve_device: true,
        device_interval_secs: 1,
        hostile: Hostile {
            device_expires_in: Some(serde_json::json!(9_223_372_036_854_775_807_u64)),
            ..Hostile::default()
        },
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let env = Env::new(&srv.issuer(), "");
    tokio::task::spawn_blocking(move || {
        let child = env
            .cmd(&["login", "demo", "--mode", "device"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = crate::support::wait_with_timeout(child, Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(env.vault().read().unwrap().contains_key("demo"));
    })
    .await
    .unwrap();
}

/// HARD-3: a 2 MiB token response is refused (not read into memory whole) and the login
/// fails cleanly with nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard3_a_huge_token_response_is_refused() {
    use authdeck::devserver::{DevServer, DevServerConfig, Hostile};
    let srv = DevServer::start(DevServerConfig {
        hostile: Hostile {
            token_padding: 2 << 20,
            ..Hostile::default()
        },
        ..DevServerConfig::default()
    })
    .await
    .unwrap();
    let env = Env::new(&srv.issuer(), "");
    tokio::task::spawn_blocking(move || {
        let mut child = env
            .cmd(&["login", "demo", "--mode", "paste"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut url = String::new();
        std::io::BufRead::read_line(&mut out, &mut url).unwrap();
        let location = crate::support::authorize_location(url.trim());
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, format!("{location}\n").as_bytes()).unwrap();
        let done = crate::support::wait_with_timeout(child, Duration::from_secs(20));
        drop(stdin);
        assert_eq!(done.status.code(), Some(1), "{}", stderr(&done));
        assert!(stderr(&done).contains("larger than"), "{}", stderr(&done));
        assert!(!env.vault().read().unwrap().contains_key("demo"));
    })
    .await
    .unwrap();
}

/// HARD-12: the browser command's argv carries neither `state` nor `nonce` (any local user can
/// read argv): it gets the path of a 0600 page in a 0700 directory that forwards to the
/// authorization URL, and the page is gone once the login ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard12_state_and_nonce_never_reach_the_browsers_argv() {
    use authdeck::devserver::{DevServer, DevServerConfig};
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let env = Env::new(&srv.issuer(), "");
    tokio::task::spawn_blocking(move || {
        let args_file = env.path("args.txt");
        let script = env.path("browser.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nstat -c '%a' \"$2\" \"$(dirname \"$2\")\" > '{0}.modes'\n\
                 printf '%s\\n' \"$@\" > '{0}.tmp' && mv '{0}.tmp' '{0}'\n",
                args_file.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let child = env
            .cmd(&["login", "demo", "--mode", "browser"])
            .env("BROWSER", format!("{} --flag %s", script.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !args_file.exists() {
            assert!(Instant::now() < deadline, "browser command never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        let args = std::fs::read_to_string(&args_file).unwrap();
        let args: Vec<&str> = args.lines().collect();
        assert_eq!(args.len(), 2, "{args:?}");
        assert_eq!(args[0], "--flag");
        let page = args[1];
        assert!(!page.contains("state") && !page.contains("nonce"), "{page}");
        let modes = std::fs::read_to_string(format!("{}.modes", args_file.display())).unwrap();
        assert_eq!(modes.split_whitespace().collect::<Vec<_>>(), ["600", "700"]);
        let url = crate::support::handed_url(page);
        assert!(url.contains("state=") && url.contains("nonce="), "{url}");
        crate::support::open_like_a_browser(page);
        let out = crate::support::wait_with_timeout(child, Duration::from_secs(20));
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!Path::new(page).exists(), "the page outlived the login");
        assert!(!Path::new(page).parent().unwrap().exists());
    })
    .await
    .unwrap();
}

/// PKCE-3: `pkce = false` was documented but ignored (PKCE was sent anyway); it is now refused
/// with a message naming the field, so the file and the behaviour agree.
#[test]
fn pkce3_pkce_false_is_refused_not_ignored() {
    let env = Env::new("https://as.example", "pkce = false\n");
    let file = env.path("config/providers/demo.toml");
    let out = env
        .cmd(&["providers", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let all = format!("{}{}", crate::support::stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("pkce = false"), "{all}");
    std::fs::write(
        &file,
        "extends = \"oidc\"\nissuer = \"https://as.example\"\nclient_id = \"x\"\npkce = true\n",
    )
    .unwrap();
    let out = env
        .cmd(&["providers", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// HARD-12 with a real browser: headless Chromium, given only the page's path by
/// `--mode browser`, follows it to the devserver and back to authdeck's loopback listener, and
/// the login completes. Skipped (with a note) where Chromium is not installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard12_a_real_browser_follows_the_private_page_to_a_login() {
    use authdeck::devserver::{DevServer, DevServerConfig};
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
    else {
        eprintln!("skipped: no Chromium installed");
        return;
    };
    let srv = DevServer::start(DevServerConfig::default()).await.unwrap();
    let env = Env::new(&srv.issuer(), "");
    tokio::task::spawn_blocking(move || {
        let profile = env.path("chromium-profile");
        let browser = format!(
            "{chromium} --headless --no-sandbox --disable-gpu --no-first-run \
             --user-data-dir={} --virtual-time-budget=10000 --dump-dom %s",
            profile.display()
        );
        let child = env
            .cmd(&["login", "demo", "--mode", "browser"])
            .env("BROWSER", browser)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = crate::support::wait_with_timeout(child, Duration::from_secs(60));
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(env.vault().read().unwrap().contains_key("demo"));
    })
    .await
    .unwrap();
}

/// HARD-9: a hostile server's ID token e-mail with escape sequences (colour, OSC 52 clipboard
/// write, BEL, CR) reaches `status` only as visible escapes; a scope or an access token with
/// one is refused at login; a device answer's user code or verification URI with one is
/// refused before anything is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard9_server_text_never_reaches_the_terminal_raw() {
    use authdeck::devserver::{DevServer, DevServerConfig, Hostile};
    let hostile = "evil\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}[31m@example.com\r";
    let srv = std::sync::Arc::new(
        DevServer::start(DevServerConfig {
            auto_approve_device: true,
            device_interval_secs: 1,
            hostile: Hostile {
                email: Some(hostile.into()),
                ..Hostile::default()
            },
            ..DevServerConfig::default()
        })
        .await
        .unwrap(),
    );
    let env = Env::new(&srv.issuer(), "");
    let s = srv.clone();
    tokio::task::spawn_blocking(move || {
        let raw = |out: &Output| {
            let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
            all.iter().any(|b| *b == 0x1b || *b == 0x07 || *b == b'\r')
        };
        crate::support::paste_login(env.cmd(&["login", "demo", "--mode", "paste"]));
        let out = env.run(&["status"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!raw(&out), "status printed raw escapes");
        assert!(
            crate::support::stdout(&out).contains("evil\\u{1b}]52;c;"),
            "{}",
            crate::support::stdout(&out)
        );
        let json = env.run(&["status", "--json"]);
        assert!(!raw(&json), "status --json printed raw escapes");

        for bad in [
            Hostile {
                scope: Some("openid \u{1b}[2J".into()),
                ..Hostile::default()
            },
            Hostile {
                access_token: Some("at\u{1b}]52;c;cHduZWQ=\u{7}".into()),
                ..Hostile::default()
            },
        ] {
            s.set_hostile(bad);
            let mut child = env
                .cmd(&["login", "demo", "--mode", "paste"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut url = String::new();
            std::io::BufRead::read_line(&mut out, &mut url).unwrap();
            let location = crate::support::authorize_location(url.trim());
            let mut stdin = child.stdin.take().unwrap();
            std::io::Write::write_all(&mut stdin, format!("{location}\n").as_bytes()).unwrap();
            let done = crate::support::wait_with_timeout(child, Duration::from_secs(20));
            drop(stdin);
            assert_eq!(done.status.code(), Some(1), "{}", stderr(&done));
            assert!(
                stderr(&done).contains("printable ASCII"),
                "{}",
                stderr(&done)
            );
            assert!(!raw(&done));
        }

        for bad in [
            Hostile {
                user_code: Some("WDJB\u{1b}]52;c;cHduZWQ=\u{7}".into()),
                ..Hostile::default()
            },
            Hostile {
                verification_uri_complete: Some("https://as.example/\u{1b}[2J".into()),
                ..Hostile::default()
            },
            Hostile {
                verification_uri: Some("http://attacker.example/device".into()),
                ..Hostile::default()
            },
        ] {
            s.set_hostile(bad);
            let child = env
                .cmd(&["login", "demo", "--mode", "device"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let done = crate::support::wait_with_timeout(child, Duration::from_secs(20));
            assert_eq!(done.status.code(), Some(1), "{}", stderr(&done));
            assert!(!raw(&done), "device login printed raw escapes");
            assert!(!crate::support::stdout(&done).contains("WDJB"));
        }
    })
    .await
    .unwrap();
}
