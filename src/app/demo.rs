//! `authdeck demo`: the embedded authorization server (`devserver`) on 127.0.0.1 with 30-second
//! tokens, a throwaway vault with a key file in a temporary directory, one account logged in
//! through the real flow (an internal client plays the browser against the real callback
//! listener) and one left logged out for the newcomer to try each login mode.

use super::login::{LoginEvent, LoginInput};
use super::mode::LoginMode;
use super::{App, AppError, Result, Settings};
use crate::devserver::{DevServer, DevServerConfig};
use crate::vault::{KeySource, Vault};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The account logged in at start.
pub const LIVE_ACCOUNT: &str = "demo";
/// The account left for the user to log in.
pub const SPARE_ACCOUNT: &str = "demo-device";

/// A running demo: dropping it stops the server and deletes the temporary directory.
#[derive(Debug)]
pub struct Demo {
    /// The app, configured for the demo accounts.
    pub app: App,
    /// The embedded authorization server.
    pub server: DevServer,
    dir: TempDir,
}

impl Demo {
    /// The temporary directory holding the config, the vault and its key file.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }
}

/// A directory removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> Result<TempDir> {
    let suffix: String = crate::secret::random_bytes::<6>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = std::env::temp_dir().join(format!("authdeck-demo-{suffix}"));
    create_private_dir(&path)?;
    Ok(TempDir(path))
}

fn create_private_dir(path: &Path) -> Result<()> {
    let io = |source| AppError::Io {
        what: format!("cannot create {}", path.display()),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(io)
}

/// The account files of the demo, pointing at `issuer`.
fn account_files(issuer: &str) -> [(String, String); 2] {
    let live = format!(
        "# The demo account: logged in at start; tokens live 30 s.\n\
         extends = \"oidc\"\n\
         display_name = \"Demo (embedded server)\"\n\
         issuer = \"{issuer}\"\n\
         client_id = \"demo-public\"\n\
         scopes = [\"openid\", \"email\", \"profile\", \"offline_access\"]\n"
    );
    let spare = format!(
        "# A second demo account: log in with browser, paste or device mode.\n\
         extends = \"oidc\"\n\
         display_name = \"Demo, logged out\"\n\
         issuer = \"{issuer}\"\n\
         client_id = \"demo-public\"\n\
         scopes = [\"openid\", \"email\", \"offline_access\"]\n"
    );
    [
        (format!("{LIVE_ACCOUNT}.toml"), live),
        (format!("{SPARE_ACCOUNT}.toml"), spare),
    ]
}

/// Starts the demo: server, config, vault, and the first login.
pub async fn start(token_ttl: Duration) -> Result<Demo> {
    let dir = temp_dir()?;
    let server = DevServer::start(DevServerConfig {
        access_token_ttl: token_ttl,
        auto_approve_device: true,
        device_interval_secs: 1,
        ..DevServerConfig::default()
    })
    .await
    .map_err(|source| AppError::Io {
        what: "cannot start the embedded authorization server".into(),
        source,
    })?;
    let providers = dir.0.join("config").join("providers");
    create_private_dir(&providers)?;
    for (file, text) in account_files(&server.issuer()) {
        std::fs::write(providers.join(file), text).map_err(|source| AppError::Io {
            what: "cannot write the demo account files".into(),
            source,
        })?;
    }
    let key_file = dir.0.join("vault.key");
    crate::vault::generate_key_file(&key_file)?;
    let vault = Vault::create(dir.0.join("vault.bin"), KeySource::KeyFile(key_file))?;
    let settings = Settings {
        login_timeout: Duration::from_secs(120),
        ..Settings::default()
    };
    let app = App::new(dir.0.join("config"), vault, settings)?;
    let demo = Demo { app, server, dir };
    login_as_browser(&demo.app, LIVE_ACCOUNT).await?;
    Ok(demo)
}

/// Logs `name` in through the real flow, with an internal HTTP client playing the browser:
/// it follows the authorization URL to the server, which approves at once, and delivers the
/// redirect to the real callback listener.
pub async fn login_as_browser(app: &App, name: &str) -> Result<Option<i64>> {
    let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
    let sink = |event: LoginEvent| {
        if let LoginEvent::AuthorizationUrl { url, .. } = event {
            tokio::spawn(play_browser(url));
        }
    };
    app.login(
        name,
        LoginInput {
            mode: LoginMode::Paste,
            pasted: None,
            cancel,
            browser: None,
            sink: &sink,
        },
    )
    .await
}

/// GET the authorization URL without following redirects, then GET the `Location` (our own
/// callback listener), as a browser would.
pub async fn play_browser(url: String) {
    let Ok(client) = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
    else {
        return;
    };
    let mut next = url;
    for _ in 0..5 {
        let Ok(resp) = client.get(&next).send().await else {
            return;
        };
        let Some(location) = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
        else {
            return;
        };
        next = location;
    }
}
