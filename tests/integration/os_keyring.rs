//! The OS keyring as the vault key source (VAULT-7, VAULT-8), against a real Secret Service:
//! Debian's gnome-keyring in a private D-Bus session each test starts itself (a bus of its own
//! on a socket in a temp dir, no service activation, a fresh `login` keyring unlocked with a
//! password on stdin) and stops when it ends. No mock: if the programs are missing, the tests
//! fail and say which package to install.

use crate::support::agent::{Env, PASS};
use crate::support::{stderr, stdout};
use authdeck::devserver::{DevServer, DevServerConfig};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The programs the tests drive, with the Debian package of each.
const PROGRAMS: [(&str, &str); 3] = [
    ("dbus-daemon", "dbus-daemon"),
    ("gnome-keyring-daemon", "gnome-keyring"),
    ("secret-tool", "libsecret-tools"),
];

fn require_programs() {
    let missing: Vec<String> = PROGRAMS
        .iter()
        .filter(|(program, _)| {
            Command::new("sh")
                .args(["-c", &format!("command -v {program}")])
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .map(|(program, package)| format!("{program} (Debian package {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "these tests run a real Secret Service and need: {}; apt-get install them \
         (.ci/run installs them)",
        missing.join(", ")
    );
}

/// A private D-Bus session bus with gnome-keyring's Secret Service on it, both stopped on drop.
struct SecretService {
    dir: tempfile::TempDir,
    address: String,
    dbus: Child,
    keyring: Child,
}

impl SecretService {
    fn start() -> SecretService {
        require_programs();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        // A session bus of our own: no <servicedir>, so nothing is activated behind our back.
        let conf = dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .unwrap();
        let mut dbus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon runs");
        let mut address = String::new();
        BufReader::new(dbus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_string();
        if !address.starts_with("unix:") {
            let _ = dbus.kill();
            let _ = dbus.wait();
            panic!("dbus-daemon printed no address: {address:?}");
        }
        let home = dir.path().join("home");
        let run = dir.path().join("run");
        for d in [&home, &run] {
            std::fs::create_dir(d).unwrap();
            crate::support::agent::set_mode(d, 0o700);
        }
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_RUNTIME_DIR", &run)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon runs");
        // The new `login` keyring's password, then end of input: the keyring is unlocked.
        keyring
            .stdin
            .take()
            .unwrap()
            .write_all(b"test-keyring-password")
            .unwrap();
        let svc = SecretService {
            dir,
            address,
            dbus,
            keyring,
        };
        svc.wait_ready();
        svc
    }

    /// Until an item can be stored and read back (the daemon has taken its bus name).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let stored = self
                .secret_tool(&[
                    "store",
                    "--label=probe",
                    "service",
                    "probe",
                    "username",
                    "p",
                ])
                .stdin(Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    c.stdin.take().unwrap().write_all(b"ready")?;
                    c.wait()
                })
                .is_ok_and(|s| s.success());
            if stored && self.lookup("probe", "p").as_deref() == Some(&b"ready"[..]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gnome-keyring's Secret Service did not come up on {}",
                self.address
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `secret-tool ARGS` on this bus.
    fn secret_tool(&self, args: &[&str]) -> Command {
        let mut c = Command::new("secret-tool");
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// The secret of item (`service`, `username`), if there is one.
    fn lookup(&self, service: &str, user: &str) -> Option<Vec<u8>> {
        let out = self
            .secret_tool(&["lookup", "service", service, "username", user])
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    }

    /// Removes item (`service`, `username`).
    fn clear(&self, service: &str, user: &str) {
        let out = self
            .secret_tool(&["clear", "service", service, "username", user])
            .output()
            .unwrap();
        assert!(out.status.success(), "secret-tool clear failed");
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        for child in [&mut self.keyring, &mut self.dbus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `env`'s command with the session bus of `svc`.
fn on_bus(env: &Env, svc: &SecretService, args: &[&str]) -> Command {
    let mut c = env.cmd(args);
    c.env("DBUS_SESSION_BUS_ADDRESS", &svc.address)
        .env("AUTHDECK_AGENT", "off");
    c
}

/// The vault header's format version, key kind and keyring item name.
fn header(path: &Path) -> (u16, u8, String) {
    let b = std::fs::read(path).unwrap();
    let hex: String = b[24..40].iter().map(|x| format!("{x:02x}")).collect();
    (
        u16::from_le_bytes([b[8], b[9]]),
        b[10],
        format!("vault-{hex}"),
    )
}

fn one_line(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

async fn devserver() -> DevServer {
    DevServer::start(DevServerConfig::default()).await.unwrap()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// VAULT-7: `vault init --keyring` keeps a random key in the Secret Service; the header says
/// so (format 2, kind 3, the item's id); logins, `token` and the agent (at start, no unlock)
/// need no passphrase; the key appears in no output and no log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault7_init_keyring_then_tokens_and_the_agent_need_no_passphrase() {
    let srv = devserver().await;
    let env = Env::new(&srv.issuer());
    blocking(move || {
        let svc = SecretService::start();
        let out = on_bus(&env, &svc, &["vault", "init", "--keyring"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("the OS keyring"), "{}", stdout(&out));
        let vault = env.path("vault.bin");
        let (version, kind, item) = header(&vault);
        assert_eq!((version, kind), (2, 3), "format 2, key kind 3");
        let key = svc
            .lookup("authdeck", &item)
            .expect("the key is in the keyring");
        assert_eq!(key.len(), 32, "a raw 32-byte key");

        // A login and `token` with no passphrase anywhere, and no terminal.
        let mut login = on_bus(&env, &svc, &["login", "demo", "--mode", "paste"]);
        login.env_remove("AUTHDECK_PASSPHRASE");
        crate::support::paste_login(login);
        let out = on_bus(&env, &svc, &["token", "demo"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let token = stdout(&out).trim_end().to_string();
        assert!(!token.is_empty());

        // The agent opens it at start: unlocked, key "os_keyring", tokens at once; `lock`
        // says there is nothing to lock with.
        let agent = env.agent(&[("DBUS_SESSION_BUS_ADDRESS", &svc.address)]);
        let s = agent.call(r#"{"v":1,"verb":"status"}"#);
        assert_eq!(s["agent"]["state"], "unlocked", "{s}");
        assert_eq!(s["agent"]["key"], "os_keyring", "{s}");
        let r = agent.call(r#"{"v":1,"verb":"token","account":"demo"}"#);
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["token"], token.as_str());
        let r = agent.call(r#"{"v":1,"verb":"lock"}"#);
        assert_eq!(r["ok"], false, "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("OS keyring"),
            "{r}"
        );
        let log = agent.log_text();
        drop(agent);
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!log.contains(&hex) && !log.contains(&token), "{log}");
    })
    .await;
}

/// VAULT-7, VAULT-8: `vault passwd --to-keyring` moves a passphrase vault (and its backup)
/// under a keyring key; without a D-Bus session, and after the item was removed, commands
/// fail with one clear line and the vault and its backup are left exactly as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault7_vault8_passwd_to_keyring_then_a_missing_item_loses_nothing() {
    let srv = devserver().await;
    let env = Env::new(&srv.issuer());
    blocking(move || {
        let svc = SecretService::start();
        env.login();
        let vault = env.path("vault.bin");
        assert_eq!(header(&vault).1, 1, "a passphrase vault");
        let out = on_bus(&env, &svc, &["token", "demo"])
            .env("AUTHDECK_PASSPHRASE", PASS)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let token = stdout(&out).trim_end().to_string();

        let out = on_bus(&env, &svc, &["vault", "passwd", "--to-keyring"])
            .env("AUTHDECK_PASSPHRASE", PASS)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let (version, kind, item) = header(&vault);
        assert_eq!((version, kind), (2, 3));
        assert!(svc.lookup("authdeck", &item).is_some());
        // HARD-7: the backup was re-sealed under the new key too.
        assert_eq!(header(&env.path("vault.bin.bak")).2, item);

        // No passphrase needed any more; a passphrase in the environment is not used.
        let out = on_bus(&env, &svc, &["token", "demo"])
            .env("AUTHDECK_PASSPHRASE", "not the passphrase")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim_end(), token);

        let before = (
            std::fs::read(&vault).unwrap(),
            std::fs::read(env.path("vault.bin.bak")).unwrap(),
        );
        let unchanged = |what: &str| {
            let now = (
                std::fs::read(&vault).unwrap(),
                std::fs::read(env.path("vault.bin.bak")).unwrap(),
            );
            assert!(now == before, "{what}: the vault or its backup changed");
        };

        // VAULT-8: no D-Bus session (a headless server): one line that names the agent.
        let out = env
            .cmd(&["token", "demo"])
            .env("AUTHDECK_AGENT", "off")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = one_line(&out);
        assert!(err.contains("no OS keyring answers"), "{err}");
        assert!(err.contains("DBUS_SESSION_BUS_ADDRESS"), "{err}");
        assert!(
            err.contains("authdeck agent start") && err.contains("authdeck unlock"),
            "{err}"
        );
        unchanged("without D-Bus");

        // VAULT-8: the item removed from the keyring: one line naming it; nothing written.
        svc.clear("authdeck", &item);
        for args in [&["token", "demo"][..], &["refresh", "demo"][..]] {
            let out = on_bus(&env, &svc, args).output().unwrap();
            assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
            let err = one_line(&out);
            assert!(err.contains("holds no key"), "{err}");
            assert!(err.contains(&item), "{err}");
            assert!(err.contains(&vault.display().to_string()), "{err}");
            assert!(!err.contains(&token), "{err}");
        }
        unchanged("with the item gone");
        drop(svc);
    })
    .await;
}

/// VAULT-8: `vault init --keyring` where no keyring service answers creates nothing and says
/// to use the agent instead. No Secret Service is started (none is needed).
#[test]
fn vault8_init_keyring_without_dbus_says_to_use_the_agent() {
    let env = Env::new("http://127.0.0.1:9");
    let out = env.run(&["vault", "init", "--keyring"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = one_line(&out);
    assert!(err.contains("no OS keyring answers"), "{err}");
    assert!(err.contains("authdeck agent start"), "{err}");
    assert!(!env.path("vault.bin").exists(), "no vault was created");
}
