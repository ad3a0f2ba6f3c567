//! Process hardening (HARD-1): nothing of this process's memory ends up in a core dump or in
//! another process's hands through ptrace or `/proc/PID/mem`, and the children it starts do not
//! inherit what they have no business with.

use std::sync::OnceLock;

/// The core-size limit the process started with, restored in the children it runs (their
/// crashes are theirs to dump).
static ORIGINAL_CORE_LIMIT: OnceLock<Option<(u64, u64)>> = OnceLock::new();

/// Makes the process non-dumpable and sets its core-size limit to 0, so that a crash or a
/// `gcore` never writes the tokens and keys it holds to disk, and other processes of the same
/// user cannot read its memory (HARD-1). Called first thing in `main`; harmless to call twice.
/// Returns an error only when the kernel refused; callers go on (a warning at most).
pub fn harden() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        // SAFETY: plain system calls with valid arguments and a pointer to a local.
        unsafe {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            let original = (libc::getrlimit(libc::RLIMIT_CORE, &mut limit) == 0)
                .then_some((limit.rlim_cur, limit.rlim_max));
            let _ = ORIGINAL_CORE_LIMIT.set(original);
            // Only the soft limit: the hard one stays, so children can get theirs back.
            limit.rlim_cur = 0;
            if libc::setrlimit(libc::RLIMIT_CORE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            #[cfg(target_os = "linux")]
            if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // macOS has no dumpable flag: PT_DENY_ATTACH refuses debuggers (and task_for_pid
            // through them) for the rest of the process's life.
            #[cfg(target_os = "macos")]
            if libc::ptrace(libc::PT_DENY_ATTACH, 0, std::ptr::null_mut(), 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Prepares a child the process starts (`exec`'s command, the `$BROWSER` command): removes
/// every variable that unlocks the vault (HARD-2) and gives back the core-size limit the
/// process started with. The child's own dumpability is reset by `execve` already.
pub fn prepare_child(cmd: &mut std::process::Command) {
    for var in VAULT_UNLOCK_VARS {
        cmd.env_remove(var);
    }
    #[cfg(unix)]
    if let Some(Some((cur, max))) = ORIGINAL_CORE_LIMIT.get().copied() {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure only calls setrlimit, which is async-signal-safe, on a local.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: cur,
                    rlim_max: max,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &limit);
                Ok(())
            });
        }
    }
}

/// Gives back the core-size limit the process started with, just before it replaces itself
/// with another of authdeck's executables (`authdeck agent` running `authdeck-agent`): the new
/// image hardens itself first thing (HARD-1) and so records the same original limit for the
/// children it starts. Only when nothing secret is held yet.
pub fn restore_core_limit() {
    #[cfg(target_os = "linux")]
    if let Some(Some((cur, max))) = ORIGINAL_CORE_LIMIT.get().copied() {
        let limit = libc::rlimit {
            rlim_cur: cur,
            rlim_max: max,
        };
        // SAFETY: setrlimit with a pointer to a local.
        unsafe {
            libc::setrlimit(libc::RLIMIT_CORE, &limit);
        }
    }
}

/// True for a variable of authdeck's own that may hold a secret or lead to one: the vault's
/// passphrase and key variables (and any `AUTHDECK_PASSPHRASE…`), and every `AUTHDECK_…`
/// variable whose name says key, token, secret or password. Hooks start with none of them
/// (HARD-2).
pub fn is_secret_var(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("AUTHDECK_") else {
        return false;
    };
    VAULT_UNLOCK_VARS.contains(&name)
        || ["PASSPHRASE", "KEY", "TOKEN", "SECRET", "PASSWORD"]
            .iter()
            .any(|word| rest.contains(word))
}

/// The environment variables that unlock the vault: a child that saw them could decrypt every
/// account (HARD-2).
pub const VAULT_UNLOCK_VARS: [&str; 3] = [
    crate::vault::ENV_PASSPHRASE,
    crate::vault::ENV_PASSPHRASE_FILE,
    crate::vault::ENV_KEY_FILE,
];

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;

    /// HARD-1: after `harden`, the process is non-dumpable and its soft core limit is 0;
    /// a child prepared with `prepare_child` gets the original limit back and no vault
    /// variables (HARD-2). Run in a child process so the test binary itself stays as it is.
    #[test]
    fn harden_makes_the_process_undumpable_and_children_get_their_limit_back() {
        if std::env::var_os("AUTHDECK_HARDEN_CHILD").is_none() {
            let exe = std::env::current_exe().unwrap();
            let out = std::process::Command::new(exe)
                .args([
                    "--exact",
                    "process::tests::harden_makes_the_process_undumpable_and_children_get_their_limit_back",
                    "--nocapture",
                ])
                .env("AUTHDECK_HARDEN_CHILD", "1")
                .env("AUTHDECK_PASSPHRASE", "pw-never-inherited")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{text}");
            assert!(text.contains("1 passed"), "{text}");
            return;
        }
        let before = core_limit();
        harden().unwrap();
        // SAFETY: a query without arguments.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
        assert_eq!(core_limit().0, 0);
        let mut cmd = std::process::Command::new("sh");
        cmd.args([
            "-c",
            "ulimit -c; printf '%s' \"${AUTHDECK_PASSPHRASE-unset}\"",
        ]);
        prepare_child(&mut cmd);
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let expected = if before.0 == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            (before.0 / 1024).to_string()
        };
        assert_eq!(text, format!("{expected}\nunset"));
    }

    #[test]
    fn secret_variables_are_recognised_by_name() {
        for v in [
            "AUTHDECK_PASSPHRASE",
            "AUTHDECK_PASSPHRASE_FILE",
            "AUTHDECK_PASSPHRASE_OLD",
            "AUTHDECK_KEY_FILE",
            "AUTHDECK_ETCD_PASSWORD",
            "AUTHDECK_DEMO_TOKEN",
            "AUTHDECK_CLIENT_SECRET",
        ] {
            assert!(is_secret_var(v), "{v}");
        }
        for v in [
            "AUTHDECK_CONFIG_DIR",
            "AUTHDECK_VAULT",
            "PATH",
            "GITHUB_TOKEN_X",
        ] {
            assert!(!is_secret_var(v), "{v}");
        }
    }

    fn core_limit() -> (u64, u64) {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a pointer to a local.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) }, 0);
        (limit.rlim_cur, limit.rlim_max)
    }
}
