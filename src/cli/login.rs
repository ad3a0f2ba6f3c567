//! `authdeck login`: browser, paste or device; prints what the user must do.

use super::context::{Locations, open_app, run, warn_unknown_expiry};
use crate::app::exit;
use crate::app::login::{LoginEvent, LoginInput};
use crate::app::mode::{self, LoginMode};
use crate::app::status::{human_duration, unix};
use crate::secret::PastedRedirect;
use clap::Args;
use std::io::{IsTerminal, Write};
use std::time::SystemTime;

/// `authdeck login NAME [--mode browser|paste|device]`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The account (a file `providers/NAME.toml` in the config directory).
    pub name: String,
    /// How to log in; default: browser on a local desktop, paste over SSH or without display.
    #[arg(long, value_enum)]
    pub mode: Option<LoginMode>,
}

/// Runs `login`.
pub fn login(loc: &Locations, args: &LoginArgs) -> u8 {
    run(|rt| {
        let app = open_app(loc, true)?;
        let mode = args.mode.unwrap_or_else(mode::detect);
        let tty = std::io::stdout().is_terminal();
        let pasted = (mode == LoginMode::Paste).then(stdin_lines);
        let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
        let sink = move |event: LoginEvent| print_login_event(event, mode, tty);
        let input = LoginInput {
            mode,
            pasted,
            cancel,
            browser: std::env::var("BROWSER").ok(),
            sink: &sink,
        };
        let expires = rt.block_on(app.login(&args.name, input))?;
        let when = expires.map_or_else(
            || "does not say when it expires".to_string(),
            |exp| {
                format!(
                    "expires in {}",
                    human_duration(exp - unix(SystemTime::now()))
                )
            },
        );
        eprintln!("Logged in to {}; the access token {when}.", args.name);
        warn_unknown_expiry(&args.name, expires);
        Ok(exit::OK)
    })
}

fn print_login_event(event: LoginEvent, mode: LoginMode, tty: bool) {
    match event {
        LoginEvent::AuthorizationUrl {
            url,
            redirect_uri,
            browser_opened,
        } => {
            if mode == LoginMode::Browser {
                if browser_opened {
                    eprintln!("Opened your browser. If nothing happened, open this URL:");
                } else {
                    eprintln!("Could not open a browser. Open this URL:");
                }
            } else {
                eprintln!("Open this URL in a browser on any machine and log in:");
            }
            // The URL alone on its own line on stdout, so it can be copied or piped.
            println!("{url}");
            let _ = std::io::stdout().flush();
            if mode == LoginMode::Paste {
                if tty
                    && let Some(qr) = crate::ui::qr::QrArt::encode(&url).map(|q| q.lines.join("\n"))
                {
                    eprintln!("{qr}");
                }
                eprintln!(
                    "Then paste the URL your browser ends on (it starts with {redirect_uri}), or just the code, and press Enter."
                );
                eprintln!(
                    "(Or forward the port: the listener on {redirect_uri} keeps waiting, e.g. ssh -L.)"
                );
            }
        }
        LoginEvent::DeviceCode {
            user_code,
            verification_uri,
            verification_uri_complete,
            expires_in,
        } => {
            // HARD-9: checked when received; escaped here all the same, as all server text.
            let sanitize = crate::text::sanitize;
            eprintln!(
                "Go to {} and enter the code:",
                sanitize(&verification_uri, 500)
            );
            println!("{}", sanitize(&user_code, 100));
            if let Some(complete) = verification_uri_complete {
                eprintln!("(or open {})", sanitize(&complete, 500));
                if tty
                    && let Some(qr) =
                        crate::ui::qr::QrArt::encode(&complete).map(|q| q.lines.join("\n"))
                {
                    eprintln!("{qr}");
                }
            }
            eprintln!(
                "Waiting for approval (the code expires in {}).",
                human_duration(i64::try_from(expires_in).unwrap_or(i64::MAX))
            );
        }
        LoginEvent::PasteRejected(why) => eprintln!("Not accepted: {why}. Try again."),
        LoginEvent::Exchanging => eprintln!("Received the code; exchanging it for tokens."),
    }
}

/// Lines from stdin on a channel (a thread: stdin has no async reader that can be abandoned).
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<PastedRedirect> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        while stdin.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if tx
                .send(PastedRedirect::new(std::mem::take(&mut line)))
                .is_err()
            {
                break;
            }
        }
    });
    rx
}
