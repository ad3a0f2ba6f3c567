//! Choosing the login mode: a browser on a local desktop, VPS paste mode elsewhere (HL-1).

/// How a login is carried out.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LoginMode {
    /// Open the system browser; the loopback listener receives the redirect.
    Browser,
    /// VPS mode: print the URL (and a QR code), read the redirect URL or code from stdin,
    /// keep the listener running for `ssh -L`.
    Paste,
    /// The device authorization grant (RFC 8628).
    Device,
}

impl LoginMode {
    /// Every mode, in picker order.
    pub const ALL: [LoginMode; 3] = [Self::Browser, Self::Paste, Self::Device];

    /// The name used by `login --mode`.
    pub fn word(self) -> &'static str {
        match self {
            Self::Browser => "browser",
            Self::Paste => "paste",
            Self::Device => "device",
        }
    }
}

/// The default mode for this session: `browser` when a local display is available and the
/// session is not over SSH, otherwise `paste`. `env` looks up environment variables (tests pass
/// a map; production passes `std::env::var_os`).
pub fn default_mode(env: impl Fn(&str) -> Option<std::ffi::OsString>, macos: bool) -> LoginMode {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    if set("SSH_CONNECTION") || set("SSH_TTY") {
        return LoginMode::Paste;
    }
    if macos || set("DISPLAY") || set("WAYLAND_DISPLAY") {
        LoginMode::Browser
    } else {
        LoginMode::Paste
    }
}

/// The default mode for the current process.
pub fn detect() -> LoginMode {
    default_mode(|k| std::env::var_os(k), cfg!(target_os = "macos"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn mode(vars: &[(&str, &str)], macos: bool) -> LoginMode {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        default_mode(|k| map.get(k).map(Into::into), macos)
    }

    #[test]
    fn hl1_ssh_means_paste() {
        assert_eq!(
            mode(&[("DISPLAY", ":0"), ("SSH_CONNECTION", "1 2 3 4")], false),
            LoginMode::Paste
        );
        assert_eq!(mode(&[("SSH_TTY", "/dev/pts/1")], true), LoginMode::Paste);
    }

    #[test]
    fn hl1_display_or_macos_means_browser() {
        assert_eq!(mode(&[("DISPLAY", ":0")], false), LoginMode::Browser);
        assert_eq!(
            mode(&[("WAYLAND_DISPLAY", "w-0")], false),
            LoginMode::Browser
        );
        assert_eq!(mode(&[], true), LoginMode::Browser);
    }

    #[test]
    fn hl1_headless_linux_means_paste() {
        assert_eq!(mode(&[], false), LoginMode::Paste);
        assert_eq!(mode(&[("DISPLAY", "")], false), LoginMode::Paste);
    }
}
