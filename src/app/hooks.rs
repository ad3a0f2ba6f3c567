//! Hooks: programs `config.toml` names for the scheduler's events, for people on a machine
//! with no desktop to show a notification (AGENT-12).
//!
//! ```toml
//! [hooks]
//! on_needs_login = ["/usr/local/bin/notify", "authdeck needs a login"]
//! on_refresh_failed = ["logger", "-t", "authdeck"]
//! on_refreshed = ["/home/me/bin/reload-mail"]
//! ```
//!
//! Each is an argv list, run without a shell, with `AUTHDECK_ACCOUNT`, `AUTHDECK_EVENT` and
//! `AUTHDECK_REASON` in its environment and no variable that could unlock the vault or holds a
//! token (HARD-2). A hook gets 10 s; then its process group is killed. A hook that fails is
//! reported and changes nothing else.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a hook may run before it is killed (AGENT-12).
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many hooks run at once; more wait their turn.
pub const MAX_RUNNING_HOOKS: usize = 4;

/// What happened to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    /// The refresh token was refused (`invalid_grant`, REF-6): the account needs a login.
    NeedsLogin,
    /// A refresh failed for another reason (transient or configuration).
    RefreshFailed,
    /// A refresh got a new token.
    Refreshed,
}

impl HookEvent {
    /// The value of `AUTHDECK_EVENT`.
    pub fn word(self) -> &'static str {
        match self {
            HookEvent::NeedsLogin => "needs_login",
            HookEvent::RefreshFailed => "refresh_failed",
            HookEvent::Refreshed => "refreshed",
        }
    }

    /// The key in `[hooks]`.
    pub fn key(self) -> &'static str {
        match self {
            HookEvent::NeedsLogin => "on_needs_login",
            HookEvent::RefreshFailed => "on_refresh_failed",
            HookEvent::Refreshed => "on_refreshed",
        }
    }
}

/// Why hooks could not be read or a hook did not succeed. No variant holds a secret: the
/// program is named by its first argument only.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// `config.toml` could not be read.
    #[error("cannot read {}: {source}", .file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The `[hooks]` table is not what this version understands.
    #[error("{}: [hooks]: {message}", .file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// What is wrong (one line).
        message: String,
    },
    /// The program could not be started.
    #[error("hook {key} ({program}) could not start: {source}")]
    Spawn {
        /// `on_…`.
        key: &'static str,
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The program exited unsuccessfully.
    #[error("hook {key} ({program}) failed: {status}")]
    Exit {
        /// `on_…`.
        key: &'static str,
        /// The program.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// The program ran out of time and was killed.
    #[error("hook {key} ({program}) ran over {secs} s and was killed", secs = .timeout.as_secs_f32())]
    Timeout {
        /// `on_…`.
        key: &'static str,
        /// The program.
        program: String,
        /// The time it had.
        timeout: Duration,
    },
}

/// The `[hooks]` table of `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Run when an account needs a login.
    #[serde(default)]
    pub on_needs_login: Option<Vec<String>>,
    /// Run when a refresh failed.
    #[serde(default)]
    pub on_refresh_failed: Option<Vec<String>>,
    /// Run when a refresh got a new token.
    #[serde(default)]
    pub on_refreshed: Option<Vec<String>>,
}

impl Hooks {
    /// The hooks of `<config_dir>/config.toml`; none when the file or the table is absent.
    pub fn load(config_dir: &Path) -> Result<Hooks, HookError> {
        let file = config_dir.join(crate::vault::backend::CONFIG_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Hooks::default()),
            Err(source) => return Err(HookError::Read { file, source }),
        };
        Hooks::parse(&text, &file)
    }

    /// The hooks in `config.toml` text (`file` names it in errors). Other tables are left to
    /// their readers.
    pub fn parse(text: &str, file: &Path) -> Result<Hooks, HookError> {
        let invalid = |message: String| HookError::Invalid {
            file: file.to_path_buf(),
            message: crate::text::sanitize(message.lines().next().unwrap_or_default(), 300),
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.message().into()))?;
        let Some(hooks) = table.get("hooks") else {
            return Ok(Hooks::default());
        };
        let hooks: Hooks = hooks
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.message().into()))?;
        for event in [
            HookEvent::NeedsLogin,
            HookEvent::RefreshFailed,
            HookEvent::Refreshed,
        ] {
            if hooks
                .argv(event)
                .is_some_and(|argv| argv.first().is_none_or(String::is_empty))
            {
                return Err(invalid(format!(
                    "{} needs a program: an argv list such as [\"/usr/bin/logger\", \"authdeck\"]",
                    event.key()
                )));
            }
        }
        Ok(hooks)
    }

    /// The argv configured for `event`.
    pub fn argv(&self, event: HookEvent) -> Option<&[String]> {
        match event {
            HookEvent::NeedsLogin => self.on_needs_login.as_deref(),
            HookEvent::RefreshFailed => self.on_refresh_failed.as_deref(),
            HookEvent::Refreshed => self.on_refreshed.as_deref(),
        }
    }

    /// True when no hook is configured.
    pub fn is_empty(&self) -> bool {
        self.on_needs_login.is_none()
            && self.on_refresh_failed.is_none()
            && self.on_refreshed.is_none()
    }
}

/// One hook to run: the event, the account and a one-line reason (no secret: the texts of
/// authdeck's errors carry none, LOG-1).
#[derive(Debug, Clone)]
pub struct HookCall {
    /// What happened.
    pub event: HookEvent,
    /// The account.
    pub account: String,
    /// Why, or what (one line).
    pub reason: String,
}

/// Runs `argv` for `call` and waits for it, at most `timeout` (AGENT-12). `scrub` names more
/// variables to keep from the child (the accounts' export variables, which may hold tokens
/// when the process was started from a shell that exported them).
pub async fn run(
    argv: &[String],
    call: &HookCall,
    scrub: &[String],
    timeout: Duration,
) -> Result<(), HookError> {
    let key = call.event.key();
    let Some((program, args)) = argv.split_first() else {
        return Ok(());
    };
    let program_name = crate::text::sanitize(program, 200);
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        // Its own process group, so a timeout kills what the hook started too.
        .process_group(0);
    // HARD-2: nothing that unlocks the vault or holds a token; nor the service manager's
    // socket (a hook must not speak for the agent).
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && (crate::process::is_secret_var(name) || scrub.iter().any(|s| s == name))
        {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("NOTIFY_SOCKET");
    crate::process::prepare_child(cmd.as_std_mut());
    cmd.env("AUTHDECK_ACCOUNT", &call.account)
        .env("AUTHDECK_EVENT", call.event.word())
        .env(
            "AUTHDECK_REASON",
            crate::text::sanitize(call.reason.lines().next().unwrap_or_default(), 500),
        );
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn {
        key,
        program: program_name.clone(),
        source,
    })?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(HookError::Exit {
            key,
            program: program_name,
            status,
        }),
        Ok(Err(source)) => Err(HookError::Spawn {
            key,
            program: program_name,
            source,
        }),
        Err(_) => {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: a signal to the process group the hook leads (created above).
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let _ = child.kill().await;
            Err(HookError::Timeout {
                key,
                program: program_name,
                timeout,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn call(event: HookEvent) -> HookCall {
        HookCall {
            event,
            account: "work".into(),
            reason: "line one\nline two \u{1b}[2J".into(),
        }
    }

    #[test]
    fn agent12_hooks_parse_from_config_toml_beside_other_tables() {
        let f = Path::new("config.toml");
        let h = Hooks::parse(
            "[vault]\nbackend = \"file\"\n[hooks]\non_refreshed = [\"/bin/true\", \"a b\"]\n",
            f,
        )
        .unwrap();
        assert_eq!(
            h.argv(HookEvent::Refreshed),
            Some(&["/bin/true".to_string(), "a b".to_string()][..])
        );
        assert_eq!(h.argv(HookEvent::NeedsLogin), None);
        assert!(Hooks::parse("", f).unwrap().is_empty());
        for (text, want) in [
            (
                "[hooks]\non_refreshed = \"notify-send hi\"\n",
                "invalid type",
            ),
            (
                "[hooks]\non_refreshed = []\n",
                "on_refreshed needs a program",
            ),
            ("[hooks]\non_login = [\"x\"]\n", "unknown field"),
        ] {
            let e = Hooks::parse(text, f).unwrap_err().to_string();
            assert!(e.starts_with("config.toml: [hooks]: "), "{e}");
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[tokio::test]
    async fn agent12_a_hook_gets_the_event_and_no_secret_variable() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "env > \"$0\"".to_string(),
            out.to_str().unwrap().to_string(),
        ];
        // The test's own environment is the hook's parent's; secret names are removed from it
        // by name, so set none here (tests share the process): check the three variables and
        // that the reason is one sanitised line.
        run(&argv, &call(HookEvent::RefreshFailed), &[], HOOK_TIMEOUT)
            .await
            .unwrap();
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(env.contains("AUTHDECK_ACCOUNT=work\n"), "{env}");
        assert!(env.contains("AUTHDECK_EVENT=refresh_failed\n"), "{env}");
        assert!(env.contains("AUTHDECK_REASON=line one\n"), "{env}");
        assert!(!env.contains("line two"), "{env}");
    }

    #[tokio::test]
    async fn agent12_a_failing_or_missing_hook_is_an_error_naming_it() {
        let e = run(
            &["/bin/sh".into(), "-c".into(), "exit 7".into()],
            &call(HookEvent::Refreshed),
            &[],
            HOOK_TIMEOUT,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("hook on_refreshed (/bin/sh) failed"), "{e}");
        assert!(e.contains('7'), "{e}");
        let e = run(
            &["/nonexistent/hook".into()],
            &call(HookEvent::NeedsLogin),
            &[],
            HOOK_TIMEOUT,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("on_needs_login (/nonexistent/hook) could not start"),
            "{e}"
        );
    }

    /// AGENT-12: a hook that runs over its time is killed, with what it started.
    #[tokio::test]
    async fn agent12_a_hook_over_its_time_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = "sleep 30 & echo $! > \"$0\"; wait".to_string();
        let t = Instant::now();
        let e = run(
            &[
                "/bin/sh".into(),
                "-c".into(),
                script,
                pidfile.to_str().unwrap().into(),
            ],
            &call(HookEvent::Refreshed),
            &[],
            Duration::from_millis(300),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("ran over 0.3 s and was killed"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild got SIGKILL too; give the kernel a moment to reap it.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for init.
            if stat.is_empty() || stat.split(' ').nth(2) == Some("Z") {
                break;
            }
            assert!(Instant::now() < deadline, "sleep {pid} still runs: {stat}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
